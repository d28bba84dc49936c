//! The alert: the output contract users alert and allowlist on.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::model::{Container, Event, Pod, Runtime, Workload, posture::Posture};

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertContainer {
    pub id: String,
    pub runtime: Runtime,
    /// The container's name as its runtime knows it (`docker ps` NAMES, the CRI container
    /// name). Absent when the runtime's metadata was not (yet) available.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Image reference (`busybox:latest`, `registry/app:1.2`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub image: String,
    /// Image digest (`sha256:…`): the image id, or the repo digest where the runtime has one.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub image_digest: String,
    /// The container's labels (OCI annotations for containerd and bare bundles).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Kubernetes pod uid, from the cgroup path, when it names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_uid: Option<String>,
    /// The Kubernetes pod, from the runtime's labels (`io.kubernetes.pod.*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<Pod>,
    /// The container's security posture from its runtime's configuration (privileged, host
    /// namespaces, added capabilities, seccomp, AppArmor, sensitive mounts). Absent when the
    /// runtime's metadata was not (yet) available.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub posture: Option<Posture>,
}

/// Which node raised an alert, and with which agent. From the event-log header, so replay
/// names the node the events were recorded on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertNode {
    /// The node's name: config `node.name`, else `NODE_NAME`, else the hostname.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    pub hostname: String,
    /// Version of the agent that recorded the events.
    pub agent_version: String,
    /// Version of this alert shape (`schema/alert.schema.json`).
    pub schema_version: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertProcess {
    pub pid: u32,
    pub ppid: u32,
    pub comm: String,
    pub exe: String,
    pub uid: u32,
}

/// One alert line. Field order is the JSON order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Alert {
    /// Stable id (a UUID): a hash of host, boot, rule, time and event ids, so the same alert
    /// replayed from the event log has the same id. Absent in alert logs written before it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    /// Time of the triggering event (RFC 3339, ns).
    pub time: String,
    pub rule: String,
    pub severity: Severity,
    /// One sentence a person can act on.
    pub summary: String,
    /// MITRE ATT&CK technique id.
    pub mitre: String,
    /// The node and agent; absent in alert logs written before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<AlertNode>,
    /// Absent when the process is not in a container.
    pub container: Option<AlertContainer>,
    pub process: AlertProcess,
    /// Rule-specific facts.
    pub details: serde_json::Value,
    /// Ids of the events in the event log that triggered the alert.
    pub event_ids: Vec<u64>,
    /// What happened, why it matters, what to check next.
    pub explanation: String,
    /// A summary of identical alerts within the coalescing window (the first of them went
    /// out on its own before); absent on every other alert.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coalesced: Option<Coalesced>,
}

/// How many identical alerts a summary stands for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Coalesced {
    /// Alerts in the window, the first included.
    pub count: u64,
    pub first_time: String,
    pub last_time: String,
    /// The first alert's `event_ids` (this alert's are the last one's).
    pub first_event_ids: Vec<u64>,
}

impl AlertContainer {
    pub fn from_container(c: &Container) -> Self {
        AlertContainer {
            id: c.id.clone(),
            runtime: c.runtime,
            name: String::new(),
            image: String::new(),
            image_digest: String::new(),
            labels: BTreeMap::new(),
            pod_uid: c.pod_uid.clone(),
            pod: None,
            posture: None,
        }
    }

    /// The container of `event`, with the workload metadata recorded with it when that is
    /// about the same container.
    pub fn of_event(event: &Event) -> Option<Self> {
        let c = event.container.as_ref()?;
        let mut a = Self::from_container(c);
        if let Some(w) = event.workload.as_ref().filter(|w| w.container_id == c.id) {
            a.add_workload(w);
        }
        Some(a)
    }

    pub fn add_workload(&mut self, w: &Workload) {
        // A container found by its namespaces only (`ctr run` puts it in cgroup /NS/ID) is
        // named by the runtime that knew it.
        if self.runtime == Runtime::Unknown {
            match w.source.as_str() {
                "docker" => self.runtime = Runtime::Docker,
                "containerd" => self.runtime = Runtime::Containerd,
                _ => {}
            }
        }
        self.name.clone_from(&w.name);
        self.image.clone_from(&w.image);
        self.image_digest.clone_from(&w.image_digest);
        self.labels.clone_from(&w.labels);
        self.pod.clone_from(&w.pod);
        self.posture.clone_from(&w.posture);
        if self.pod_uid.is_none() {
            self.pod_uid = w
                .pod
                .as_ref()
                .map(|p| p.uid.clone())
                .filter(|u| !u.is_empty());
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
