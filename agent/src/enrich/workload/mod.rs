//! Workload metadata (container name, image, labels, Kubernetes pod) from the container
//! runtimes, keyed by container id and cached.
//!
//! The event path only ever reads the cache ([`WorkloadCache::get`]): a container not in it
//! is queued for a background thread (a bounded queue; a full queue drops the request and
//! counts it) and the event goes on without metadata, counted as a miss. The thread asks the
//! sources in turn — the Docker Engine API over its Unix socket, the CRI (CRI-O, containerd's
//! CRI plugin), containerd's task bundles,
//! runc/crun state directories — each bounded in time, and fills the cache (bounded in
//! entries; failures are cached too and retried after a while). What an event carried is
//! recorded with it in the event log, so replay never asks a runtime.

mod cri;
mod docker;
mod oci;
pub mod posture;

use std::{
    collections::{HashMap, VecDeque},
    path::PathBuf,
    sync::{
        Arc, Mutex,
        mpsc::{Receiver, SyncSender, TrySendError, sync_channel},
    },
    time::{Duration, Instant},
};

use prometheus::IntCounterVec;
use tracing::debug;

pub use cri::{
    CONTAINER_STATUS, ContainerMetadata, ContainerStatus, ContainerStatusRequest,
    ContainerStatusResponse, CriApi, ImageSpec, grpc_frame,
};
pub use docker::DockerApi;
pub use oci::{ContainerdBundles, OciState, bundle_posture};

use crate::model::{Container, Pod, Workload};

/// One place metadata can come from.
pub trait Source: Send {
    /// What `Workload::source` says.
    fn name(&self) -> &'static str;
    /// The metadata of `c`, `Ok(None)` when this source does not know it. Must return within
    /// its own time bound.
    fn lookup(&mut self, c: &Container) -> Result<Option<Workload>, LookupError>;
}

#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}: {problem}")]
    Bad { what: String, problem: String },
}

/// Bounds of the cache and of the lookups.
#[derive(Debug, Clone)]
pub struct WorkloadConfig {
    /// Containers remembered (found or not); the oldest entry goes first.
    pub max_entries: usize,
    /// Lookups waiting for the thread; more are dropped (and counted).
    pub queue: usize,
    /// A container no source knew is asked again after this long.
    pub retry_after: Duration,
}

impl Default for WorkloadConfig {
    fn default() -> Self {
        WorkloadConfig {
            max_entries: 4096,
            queue: 256,
            retry_after: Duration::from_secs(30),
        }
    }
}

/// Where the runtimes keep their sockets and state (config `[workload]`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuntimePaths {
    /// Ask the runtimes at all.
    pub enabled: bool,
    pub docker_socket: PathBuf,
    /// podman's API service (`podman system service`, podman.socket): Docker's API.
    pub podman_socket: PathBuf,
    /// containerd's API socket; its CRI plugin (Kubernetes) answers CRI calls there too.
    pub containerd_socket: PathBuf,
    /// CRI-O's CRI socket.
    pub crio_socket: PathBuf,
    /// containerd's task bundles (`<state>/io.containerd.runtime.v2.task`).
    pub containerd_tasks: PathBuf,
    /// runc and crun state roots (`--root`); docker's is `/run/docker/runtime-runc/moby`,
    /// containerd's `/run/containerd/runc/<namespace>`.
    pub oci_state: Vec<PathBuf>,
    /// Time bound of one request to a runtime, ms.
    pub timeout_ms: u64,
}

impl Default for RuntimePaths {
    fn default() -> Self {
        RuntimePaths {
            enabled: true,
            docker_socket: PathBuf::from("/var/run/docker.sock"),
            podman_socket: PathBuf::from("/run/podman/podman.sock"),
            containerd_socket: PathBuf::from("/run/containerd/containerd.sock"),
            crio_socket: PathBuf::from("/run/crio/crio.sock"),
            containerd_tasks: PathBuf::from("/run/containerd/io.containerd.runtime.v2.task"),
            oci_state: vec![PathBuf::from("/run/runc"), PathBuf::from("/run/crun")],
            timeout_ms: 500,
        }
    }
}

/// The sources of `paths`: Docker's and podman's sockets, the CRI (CRI-O's socket and
/// containerd's), containerd's bundles, runc and crun state.
pub fn host_sources(paths: &RuntimePaths) -> Vec<Box<dyn Source>> {
    let timeout = Duration::from_millis(paths.timeout_ms);
    vec![
        Box::new(DockerApi::new(paths.docker_socket.clone(), timeout)),
        Box::new(DockerApi::podman(paths.podman_socket.clone(), timeout)),
        Box::new(CriApi::new(paths.crio_socket.clone(), timeout, true)),
        Box::new(CriApi::new(paths.containerd_socket.clone(), timeout, false)),
        Box::new(ContainerdBundles::new(
            paths.containerd_tasks.clone(),
            Some(paths.containerd_socket.clone()),
            // ctr is a process start: give it more than a socket request.
            timeout * 4,
        )),
        Box::new(OciState::new(paths.oci_state.clone())),
    ]
}

enum Entry {
    Pending,
    Found(Box<Workload>),
    Unknown { since: Instant },
}

struct Inner {
    map: HashMap<String, Entry>,
    /// Insertion order, for eviction.
    order: VecDeque<String>,
    /// Containers whose metadata was found and not yet taken by [`WorkloadCache::take_found`]
    /// (bounded: the oldest go first).
    found: VecDeque<(Container, Workload)>,
}

/// Found containers kept for the pipeline's `container_started` reports.
const MAX_FOUND: usize = 1024;

/// The cache the event path reads and the lookup thread fills.
#[derive(Clone)]
pub struct WorkloadCache {
    inner: Arc<Mutex<Inner>>,
    requests: SyncSender<Container>,
    config: WorkloadConfig,
    /// `escapewatch_workload_metadata_total{result}`: alerts with (hit) and without (miss)
    /// metadata; lookups dropped (queue full), found, unknown (no source knew it), and
    /// source errors (a socket absent, refused or slow).
    counts: IntCounterVec,
}

impl WorkloadCache {
    /// Start the lookup thread over `sources`.
    pub fn start(
        sources: Vec<Box<dyn Source>>,
        config: WorkloadConfig,
        counts: IntCounterVec,
    ) -> Result<Self, std::io::Error> {
        let (tx, rx) = sync_channel(config.queue);
        let cache = WorkloadCache {
            inner: Arc::new(Mutex::new(Inner {
                map: HashMap::new(),
                order: VecDeque::new(),
                found: VecDeque::new(),
            })),
            requests: tx,
            config,
            counts,
        };
        let worker = cache.clone();
        std::thread::Builder::new()
            .name("workload-meta".into())
            .spawn(move || worker.serve(rx, sources))?;
        Ok(cache)
    }

    fn count(&self, result: &str) {
        self.counts.with_label_values(&[result]).inc();
    }

    /// The metadata of `c` if the cache has it; never waits for a runtime. A container not
    /// yet asked about (or whose failure is old) is queued.
    pub fn get(&self, c: &Container) -> Option<Workload> {
        let mut inner = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match inner.map.get(&c.id) {
            Some(Entry::Found(w)) => return Some((**w).clone()),
            Some(Entry::Pending) => {}
            Some(Entry::Unknown { since }) if since.elapsed() < self.config.retry_after => {}
            _ => match self.requests.try_send(c.clone()) {
                Ok(()) => {
                    if !inner.map.contains_key(&c.id) {
                        inner.order.push_back(c.id.clone());
                    }
                    inner.map.insert(c.id.clone(), Entry::Pending);
                    evict(&mut inner, self.config.max_entries);
                }
                Err(TrySendError::Full(_)) => self.count("dropped"),
                Err(TrySendError::Disconnected(_)) => {}
            },
        }
        None
    }

    /// Count an alert about a container that went out with (`hit`) or without (`miss`) its
    /// metadata.
    pub fn count_alert(&self, had_metadata: bool) {
        self.count(if had_metadata { "hit" } else { "miss" });
    }

    fn serve(self, rx: Receiver<Container>, mut sources: Vec<Box<dyn Source>>) {
        for c in rx {
            let mut found = None;
            for s in &mut sources {
                match s.lookup(&c) {
                    Ok(Some(w)) => {
                        found = Some(w);
                        break;
                    }
                    Ok(None) => {}
                    Err(e) => {
                        self.count("error");
                        debug!(container = c.id, source = s.name(), error = %e, "workload lookup failed");
                    }
                }
            }
            self.count(if found.is_some() { "found" } else { "unknown" });
            let mut inner = self
                .inner
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            // Evicted while it was looked up: not put back (the bound holds).
            if !inner.map.contains_key(&c.id) {
                continue;
            }
            let entry = match found {
                Some(mut w) => {
                    w.container_id.clone_from(&c.id);
                    // The first time a runtime named it: the pipeline reports its start.
                    inner.found.push_back((c.clone(), w.clone()));
                    if inner.found.len() > MAX_FOUND {
                        inner.found.pop_front();
                    }
                    Entry::Found(Box::new(w))
                }
                None => Entry::Unknown {
                    since: Instant::now(),
                },
            };
            inner.map.insert(c.id.clone(), entry);
        }
    }

    /// The containers found since the last call, oldest first, each with its metadata (and
    /// posture), for the pipeline's `container_started` reports.
    pub fn take_found(&self) -> Vec<(Container, Workload)> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .found
            .drain(..)
            .collect()
    }

    /// Entries held (for tests and the metrics).
    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .map
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn evict(inner: &mut Inner, max: usize) {
    while inner.map.len() > max {
        match inner.order.pop_front() {
            Some(old) => {
                inner.map.remove(&old);
            }
            None => break,
        }
    }
}

/// The Kubernetes pod named by a container's labels or annotations: kubelet's
/// `io.kubernetes.pod.*` labels (dockershim, cri-dockerd) or containerd/CRI-O's
/// `io.kubernetes.cri.sandbox-*` annotations.
pub fn pod_of(labels: &std::collections::BTreeMap<String, String>) -> Option<Pod> {
    let get = |keys: &[&str]| {
        keys.iter()
            .find_map(|k| labels.get(*k))
            .cloned()
            .unwrap_or_default()
    };
    let name = get(&["io.kubernetes.pod.name", "io.kubernetes.cri.sandbox-name"]);
    let namespace = get(&[
        "io.kubernetes.pod.namespace",
        "io.kubernetes.cri.sandbox-namespace",
    ]);
    if name.is_empty() && namespace.is_empty() {
        return None;
    }
    Some(Pod {
        name,
        namespace,
        uid: get(&["io.kubernetes.pod.uid", "io.kubernetes.cri.sandbox-uid"]),
        container: get(&[
            "io.kubernetes.container.name",
            "io.kubernetes.cri.container-name",
        ]),
    })
}

#[cfg(test)]
mod tests;
