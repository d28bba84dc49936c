//! `escapewatch audit`: the posture of every running container, read from the runtimes' own
//! state (Docker's API, containerd's task bundles, runc/crun state directories), with the CIS
//! Docker Benchmark (v1.3.1) item each finding maps to. Needs no eBPF: only read access to
//! the runtimes' state.

use serde::Serialize;

use crate::{
    enrich::workload::{ContainerdBundles, DockerApi, LookupError, RuntimePaths},
    model::{
        Workload,
        posture::{Finding, Posture},
    },
};

/// One container of the audit.
#[derive(Debug, Clone, Serialize)]
pub struct AuditRow {
    /// The runtime's id of it.
    pub id: String,
    /// Where it was read: `docker`, `containerd`, `oci-state`.
    pub source: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub image: String,
    pub posture: Posture,
    pub findings: Vec<Finding>,
}

/// A source that could not be read (the others still are).
#[derive(Debug, Clone, Serialize)]
pub struct AuditProblem {
    pub source: &'static str,
    pub error: String,
}

#[derive(Debug, Default, Serialize)]
pub struct Audit {
    pub containers: Vec<AuditRow>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<AuditProblem>,
}

impl Audit {
    fn add(&mut self, source: &'static str, id: String, w: Result<Option<Workload>, LookupError>) {
        match w {
            Ok(Some(w)) => {
                // One container seen by two runtimes (Docker's runc state, containerd's
                // `moby` namespace) is listed once, by the first (the richer) source.
                if self.containers.iter().any(|r| r.id == id) {
                    return;
                }
                let posture = w.posture.unwrap_or_default();
                self.containers.push(AuditRow {
                    id,
                    source: w.source,
                    name: w.name,
                    image: w.image,
                    findings: posture.findings(),
                    posture,
                });
            }
            Ok(None) => {}
            Err(e) => self.problems.push(AuditProblem {
                source,
                error: e.to_string(),
            }),
        }
    }
}

/// Audit the runtimes at `paths`.
pub fn audit(paths: &RuntimePaths) -> Audit {
    let timeout = std::time::Duration::from_millis(paths.timeout_ms);
    let mut out = Audit::default();
    for (source, api) in [
        (
            "docker",
            DockerApi::new(paths.docker_socket.clone(), timeout),
        ),
        (
            "podman",
            DockerApi::podman(paths.podman_socket.clone(), timeout),
        ),
    ] {
        match api.running() {
            Ok(list) => {
                for (id, w) in list {
                    out.add(source, id, Ok(Some(w)));
                }
            }
            Err(e) => out.add(source, String::new(), Err(e)),
        }
    }
    let mut containerd = ContainerdBundles::new(
        paths.containerd_tasks.clone(),
        Some(paths.containerd_socket.clone()),
        timeout * 4,
    );
    for (id, w) in containerd.running() {
        out.add("containerd", id, w);
    }
    let mut oci = crate::enrich::workload::OciState::new(paths.oci_state.clone());
    for (id, w) in oci.running() {
        out.add("oci-state", id, w);
    }
    out.containers.sort_by(|a, b| a.id.cmp(&b.id));
    out
}

/// The audit as a table: one line per finding, the container's first columns on its first.
pub fn table(a: &Audit) -> String {
    let mut s = format!(
        "{:<14} {:<10} {:<20} {:<5} {}\n",
        "CONTAINER", "SOURCE", "NAME", "CIS", "FINDING"
    );
    for r in &a.containers {
        let id = r.id.get(..12).filter(|_| r.id.len() == 64).unwrap_or(&r.id);
        let name = if r.name.is_empty() { "-" } else { &r.name };
        if r.findings.is_empty() {
            s += &format!("{id:<14} {:<10} {name:<20} {:<5} none\n", r.source, "-");
        }
        for (i, f) in r.findings.iter().enumerate() {
            let (id, src, name) = if i == 0 {
                (id, r.source.as_str(), name)
            } else {
                ("", "", "")
            };
            s += &format!(
                "{id:<14} {src:<10} {name:<20} {:<5} {}: {}\n",
                f.cis, f.title, f.detail
            );
        }
    }
    for p in &a.problems {
        s += &format!("warning: {} not read: {}\n", p.source, p.error);
    }
    s
}
