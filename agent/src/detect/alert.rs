//! The alert: the output contract users alert and allowlist on.

use serde::{Deserialize, Serialize};

use crate::model::{Container, Event, Runtime};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertContainer {
    pub id: String,
    pub runtime: Runtime,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertProcess {
    pub pid: u32,
    pub ppid: u32,
    pub comm: String,
    pub exe: String,
    pub uid: u32,
}

/// One alert line. Field order is the JSON order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Alert {
    /// Time of the triggering event (RFC 3339, ns).
    pub time: String,
    pub rule: String,
    pub severity: Severity,
    /// One sentence a person can act on.
    pub summary: String,
    /// MITRE ATT&CK technique id.
    pub mitre: String,
    /// Absent when the process is not in a container.
    pub container: Option<AlertContainer>,
    pub process: AlertProcess,
    /// Rule-specific facts.
    pub details: serde_json::Value,
    /// Ids of the events in the event log that triggered the alert.
    pub event_ids: Vec<u64>,
    /// What happened, why it matters, what to check next.
    pub explanation: String,
}

impl AlertContainer {
    pub fn from_container(c: &Container) -> Self {
        AlertContainer {
            id: c.id.clone(),
            runtime: c.runtime,
        }
    }
}

impl AlertProcess {
    pub fn from_event(e: &Event) -> Self {
        AlertProcess {
            pid: e.process.pid,
            ppid: e.process.ppid,
            comm: e.process.comm.clone(),
            exe: e.process.exe.clone(),
            uid: e.process.uid,
        }
    }
}
