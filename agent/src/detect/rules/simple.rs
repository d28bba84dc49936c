//! Stateless rules: a predicate over one event that, when it holds, says what to report.

use serde_json::Value;

use super::{Rule, RuleInfo, alert};
use crate::{
    detect::{Alert, AlertContainer},
    model::{Container, Event},
};

/// What a stateless rule found in an event.
pub struct Finding {
    /// One sentence a person can act on.
    pub summary: String,
    pub details: Value,
    /// The container to report, when it is not the event's own (a usermode helper started by
    /// the kernel on behalf of a container).
    pub container: Option<Container>,
}

impl Finding {
    pub fn new(summary: String, details: Value) -> Self {
        Finding {
            summary,
            details,
            container: None,
        }
    }
}

pub struct Simple {
    pub info: &'static RuleInfo,
    pub check: fn(&Event) -> Option<Finding>,
}

impl Rule for Simple {
    fn info(&self) -> &'static RuleInfo {
        self.info
    }

    fn process(&mut self, event: &Event, out: &mut Vec<Alert>) {
        if let Some(f) = (self.check)(event) {
            let mut a = alert(self.info, event, f.summary, f.details);
            if let Some(c) = f.container {
                a.container = Some(AlertContainer::from_container(&c));
            }
            out.push(a);
        }
    }
}

/// The container of a workload process: in a container and not the runtime doing its work.
pub fn workload(e: &Event) -> Option<&Container> {
    if e.process.runtime_helper {
        None
    } else {
        e.container.as_ref()
    }
}

/// First 12 characters of a 64-hex id (as `docker ps` shows); paths stay whole.
pub fn short(id: &str) -> &str {
    if id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        &id[..12]
    } else {
        id
    }
}

/// "nsenter (pid 42) in docker container 3f2c0a8e5b7d".
pub fn who(e: &Event, c: &Container) -> String {
    format!(
        "{} (pid {}) in {} container {}",
        e.process.comm,
        e.process.pid,
        c.runtime.as_str(),
        short(&c.id)
    )
}
