//! One fan-out feeding every output sink (webhooks, syslog): the pipeline hands each alert to
//! [`Fanout::publish`], which only ever queues it. Each sink has its own bounded queue and
//! thread; a full queue drops the alert for that sink and counts it
//! (`escapewatch_sink_alerts_total{sink,result="dropped"}`), so a slow or dead sink never
//! blocks detection, the event log or the other sinks.

use std::sync::{
    Arc,
    mpsc::{Receiver, SyncSender, TrySendError, sync_channel},
};

use prometheus::IntCounterVec;
use tracing::warn;

use crate::detect::Alert;

/// What a sink does with one alert (in its own thread: it may take its time).
pub trait Output: Send {
    fn send(&mut self, alert: &Alert, counts: &SinkCounts) -> Result<(), OutputError>;
}

#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("{what}: {message}")]
    Failed { what: String, message: String },
}

/// The counters of one sink.
#[derive(Clone)]
pub struct SinkCounts {
    name: String,
    counts: IntCounterVec,
}

impl SinkCounts {
    pub fn inc(&self, result: &str) {
        self.counts.with_label_values(&[&self.name, result]).inc();
    }

    pub fn get(&self, result: &str) -> u64 {
        self.counts.with_label_values(&[&self.name, result]).get()
    }
}

struct Handle {
    name: String,
    queue: SyncSender<Arc<Alert>>,
    counts: SinkCounts,
}

/// Every output sink of the agent.
#[derive(Default)]
pub struct Fanout {
    sinks: Vec<Handle>,
}

impl Fanout {
    /// Add `output` as `name` with a queue of `queue` alerts and its thread.
    pub fn add(
        &mut self,
        name: &str,
        queue: usize,
        mut output: Box<dyn Output>,
        counts: IntCounterVec,
    ) -> Result<(), std::io::Error> {
        let (tx, rx): (SyncSender<Arc<Alert>>, Receiver<Arc<Alert>>) = sync_channel(queue);
        let counts = SinkCounts {
            name: name.to_owned(),
            counts,
        };
        for r in ["sent", "dropped", "failed", "retried"] {
            counts.inc_by_zero(r);
        }
        let thread_counts = counts.clone();
        let thread_name = name.to_owned();
        std::thread::Builder::new()
            .name(format!("sink-{name}"))
            .spawn(move || {
                for alert in rx {
                    match output.send(&alert, &thread_counts) {
                        Ok(()) => thread_counts.inc("sent"),
                        Err(e) => {
                            thread_counts.inc("failed");
                            warn!(sink = thread_name, error = %e, rule = alert.rule, "an output sink lost an alert (escapewatch_sink_alerts_total counts them)");
                        }
                    }
                }
            })?;
        self.sinks.push(Handle {
            name: name.to_owned(),
            queue: tx,
            counts,
        });
        Ok(())
    }

    /// Queue `alert` for every sink; never waits.
    pub fn publish(&self, alert: &Alert) {
        if self.sinks.is_empty() {
            return;
        }
        let alert = Arc::new(alert.clone());
        for s in &self.sinks {
            match s.queue.try_send(alert.clone()) {
                Ok(()) => {}
                Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                    s.counts.inc("dropped");
                }
            }
        }
    }

    pub fn names(&self) -> Vec<&str> {
        self.sinks.iter().map(|s| s.name.as_str()).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.sinks.is_empty()
    }
}

impl SinkCounts {
    fn inc_by_zero(&self, result: &str) {
        self.counts.with_label_values(&[&self.name, result]);
    }
}
