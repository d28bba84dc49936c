//! Stateless rules: a predicate over one event that, when it holds, says what to report.

use std::marker::PhantomData;

use serde_json::Value;

use super::{Declared, Rule, RuleInfo, alert};
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

/// A stateless rule: a predicate over one event.
pub trait Check: Send + 'static {
    const INFO: &'static RuleInfo;
    fn check(e: &Event) -> Option<Finding>;
    /// See [`super::Declared::examples`].
    #[cfg(test)]
    fn examples() -> Vec<super::examples::Example>;
}

/// A [`Check`] as a [`Rule`].
pub struct Simple<C>(PhantomData<C>);

impl<C> Default for Simple<C> {
    fn default() -> Self {
        Simple(PhantomData)
    }
}

impl<C: Check> Rule for Simple<C> {
    fn info(&self) -> &'static RuleInfo {
        C::INFO
    }

    fn inputs_only(&self) -> bool {
        true
    }

    fn process(&mut self, event: &Event, out: &mut Vec<Alert>) {
        if let Some(f) = C::check(event) {
            let mut a = alert(C::INFO, event, f.summary, f.details);
            if let Some(c) = f.container {
                a.container = Some(AlertContainer::from_container(&c));
            }
            out.push(a);
        }
    }
}

impl<C: Check> Declared for Simple<C> {
    const INFO: &'static RuleInfo = C::INFO;
    #[cfg(test)]
    fn examples() -> Vec<super::examples::Example> {
        C::examples()
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
