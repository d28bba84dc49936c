//! Metadata read from files the runtimes keep: containerd's task bundles (the OCI
//! `config.json` of `/run/containerd/io.containerd.runtime.v2.task/<namespace>/<id>/`, whose
//! annotations carry the labels, and under CRI the image and the pod), the image of a
//! container `ctr` made (from `ctr containers info`, bounded in time: its bundle does not
//! name it), and runc/crun state directories of bare OCI bundles.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use serde::Deserialize;

use super::{
    LookupError, Source, pod_of,
    posture::{OciConfig, from_oci, is_host_namespace},
};
use crate::model::{Container, Runtime, Workload, posture::Posture};

/// Largest state or config file read.
const MAX_FILE: u64 = 1 << 20;

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>, LookupError> {
    use std::io::Read;
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(LookupError::Io {
                what: path.display().to_string(),
                source,
            });
        }
    };
    let mut text = Vec::new();
    f.take(MAX_FILE)
        .read_to_end(&mut text)
        .map_err(|source| LookupError::Io {
            what: path.display().to_string(),
            source,
        })?;
    serde_json::from_slice(&text)
        .map(Some)
        .map_err(|e| LookupError::Bad {
            what: path.display().to_string(),
            problem: e.to_string(),
        })
}

#[derive(Deserialize, Default)]
struct Spec {
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

/// The posture of the bundle config at `path` (None: no such file).
pub fn bundle_posture(path: &Path) -> Result<Option<Posture>, LookupError> {
    Ok(read_json::<OciConfig>(path)?.map(|c| from_oci(&c, true, is_host_namespace)))
}

/// A name a runtime could have given the container: a file name, no path.
fn safe_name(s: &str) -> bool {
    !s.is_empty() && s != "." && s != ".." && !s.contains('/')
}

/// `(namespace, id)` pairs under which containerd may know `c`.
fn containerd_candidates(c: &Container) -> Vec<(String, String)> {
    match c.runtime {
        Runtime::Containerd | Runtime::Kubernetes => vec![("k8s.io".into(), c.id.clone())],
        // `ctr -n NS run … ID` puts its tasks in cgroup /NS/ID (not a known layout: the id is
        // the cgroup path).
        Runtime::Unknown => {
            let parts: Vec<&str> = c.id.split('/').filter(|p| !p.is_empty()).collect();
            match parts.as_slice() {
                [.., ns, id] if safe_name(ns) && safe_name(id) => {
                    vec![((*ns).to_owned(), (*id).to_owned())]
                }
                _ => Vec::new(),
            }
        }
        _ => Vec::new(),
    }
}

pub struct ContainerdBundles {
    state: PathBuf,
    /// containerd's API socket, for `ctr`; None: `ctr` is not asked.
    address: Option<PathBuf>,
    timeout: Duration,
}

impl ContainerdBundles {
    pub fn new(state: PathBuf, address: Option<PathBuf>, timeout: Duration) -> Self {
        ContainerdBundles {
            state,
            address,
            timeout,
        }
    }
}

impl Source for ContainerdBundles {
    fn name(&self) -> &'static str {
        "containerd"
    }

    fn lookup(&mut self, c: &Container) -> Result<Option<Workload>, LookupError> {
        for (ns, id) in containerd_candidates(c) {
            let config = self.state.join(&ns).join(&id).join("config.json");
            let Some(spec) = read_json::<Spec>(&config)? else {
                continue;
            };
            let posture = bundle_posture(&config)?;
            let mut labels = spec.annotations;
            let mut image = labels
                .get("io.kubernetes.cri.image-name")
                .cloned()
                .unwrap_or_default();
            let mut image_digest = String::new();
            if let Some(addr) = &self.address
                && addr.exists()
            {
                if let Some(info) =
                    ctr_json::<CtrInfo>(addr, &ns, &["containers", "info", &id], self.timeout)?
                {
                    if image.is_empty() {
                        image = info.image;
                    }
                    for (k, v) in info.labels {
                        labels.entry(k).or_insert(v);
                    }
                }
                if !image.is_empty() {
                    image_digest = ctr_image_digest(addr, &ns, &image, self.timeout)?;
                }
            }
            let name = labels
                .get("io.kubernetes.cri.container-name")
                .cloned()
                .unwrap_or_else(|| id.clone());
            return Ok(Some(Workload {
                container_id: c.id.clone(),
                source: "containerd".into(),
                name,
                image,
                image_digest,
                pod: pod_of(&labels),
                labels,
                posture,
            }));
        }
        Ok(None)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CtrInfo {
    #[serde(default)]
    image: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

/// Run `ctr` with a deadline; its standard output, or None when it failed or took too long.
fn ctr(
    addr: &Path,
    ns: &str,
    args: &[&str],
    timeout: Duration,
) -> Result<Option<Vec<u8>>, LookupError> {
    let what = format!("ctr -n {ns} {}", args.join(" "));
    let mut child = match Command::new("ctr")
        .arg("--address")
        .arg(addr)
        .args(["--namespace", ns])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(c) => c,
        // No ctr on this host: nothing to ask.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(LookupError::Io { what, source }),
    };
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                use std::io::Read;
                let mut out = Vec::new();
                if let Some(s) = child.stdout.take() {
                    let _ = s.take(MAX_FILE).read_to_end(&mut out);
                }
                return Ok(status.success().then_some(out));
            }
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(LookupError::Bad {
                    what,
                    problem: format!("no answer in {timeout:?}"),
                });
            }
            Err(source) => return Err(LookupError::Io { what, source }),
        }
    }
}

fn ctr_json<T: for<'de> Deserialize<'de>>(
    addr: &Path,
    ns: &str,
    args: &[&str],
    timeout: Duration,
) -> Result<Option<T>, LookupError> {
    let Some(out) = ctr(addr, ns, args, timeout)? else {
        return Ok(None);
    };
    serde_json::from_slice(&out)
        .map(Some)
        .map_err(|e| LookupError::Bad {
            what: format!("ctr {}", args.join(" ")),
            problem: e.to_string(),
        })
}

/// The manifest digest of `image` from `ctr images ls name==IMAGE` (a table: REF TYPE DIGEST …).
fn ctr_image_digest(
    addr: &Path,
    ns: &str,
    image: &str,
    timeout: Duration,
) -> Result<String, LookupError> {
    let filter = format!("name=={image}");
    let Some(out) = ctr(addr, ns, &["images", "ls", &filter], timeout)? else {
        return Ok(String::new());
    };
    Ok(digest_from_images_ls(&String::from_utf8_lossy(&out), image))
}

pub fn digest_from_images_ls(table: &str, image: &str) -> String {
    table
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|cols| cols.first() == Some(&image))
        .and_then(|cols| {
            cols.iter()
                .find(|c| c.starts_with("sha256:"))
                .map(|s| (*s).to_owned())
        })
        .unwrap_or_default()
}

/// runc (`<root>/<id>/state.json`) and crun (`<root>/<id>/status`) state directories: the
/// bundle they name, and its `config.json` annotations.
pub struct OciState {
    roots: Vec<PathBuf>,
}

impl OciState {
    pub fn new(roots: Vec<PathBuf>) -> Self {
        OciState { roots }
    }
}

#[derive(Deserialize)]
struct RuncState {
    config: RuncConfig,
}

#[derive(Deserialize)]
struct RuncPid {
    #[serde(default)]
    init_process_pid: u32,
}

/// The directory names under `dir` that are safe container ids.
fn ids_under(dir: &Path) -> Vec<String> {
    let mut ids: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| safe_name(n))
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    ids
}

impl OciState {
    /// The containers of the state roots whose init process runs (crun's: whose state
    /// exists), each with its metadata and posture (`escapewatch audit`).
    pub fn running(&mut self) -> Vec<(String, Result<Option<Workload>, LookupError>)> {
        let mut out = Vec::new();
        for root in self.roots.clone() {
            for id in ids_under(&root) {
                let runc = read_json::<RuncPid>(&root.join(&id).join("state.json"));
                if let Ok(Some(s)) = runc
                    && (s.init_process_pid == 0
                        || !Path::new(&format!("/proc/{}", s.init_process_pid)).exists())
                {
                    continue;
                }
                let c = Container {
                    id: id.clone(),
                    runtime: Runtime::Unknown,
                    pod_uid: None,
                };
                out.push((id, self.lookup(&c)));
            }
        }
        out
    }
}

impl ContainerdBundles {
    /// containerd's tasks (`<state>/<namespace>/<id>`), each with its metadata and posture
    /// (`escapewatch audit`).
    pub fn running(&mut self) -> Vec<(String, Result<Option<Workload>, LookupError>)> {
        let mut out = Vec::new();
        for ns in ids_under(&self.state.clone()) {
            for id in ids_under(&self.state.join(&ns)) {
                let c = Container {
                    id: format!("/{ns}/{id}"),
                    runtime: Runtime::Unknown,
                    pod_uid: None,
                };
                out.push((id, self.lookup(&c)));
            }
        }
        out
    }
}

#[derive(Deserialize)]
struct RuncConfig {
    #[serde(default)]
    labels: Vec<String>,
}

#[derive(Deserialize)]
struct CrunStatus {
    bundle: PathBuf,
}

impl OciState {
    pub fn bundle_of(&self, root: &Path, id: &str) -> Result<Option<PathBuf>, LookupError> {
        let dir = root.join(id);
        if let Some(s) = read_json::<RuncState>(&dir.join("state.json"))? {
            return Ok(s
                .config
                .labels
                .iter()
                .find_map(|l| l.strip_prefix("bundle="))
                .map(PathBuf::from));
        }
        Ok(read_json::<CrunStatus>(&dir.join("status"))?.map(|s| s.bundle))
    }
}

impl Source for OciState {
    fn name(&self) -> &'static str {
        "oci-state"
    }

    fn lookup(&mut self, c: &Container) -> Result<Option<Workload>, LookupError> {
        // The runtime's id is the last component of a cgroup-path id, or the 64-hex id.
        let id = c.id.rsplit('/').next().unwrap_or_default();
        if !safe_name(id) {
            return Ok(None);
        }
        for root in &self.roots {
            let Some(bundle) = self.bundle_of(root, id)? else {
                continue;
            };
            let config = bundle.join("config.json");
            let labels = read_json::<Spec>(&config)?.unwrap_or_default().annotations;
            let posture = bundle_posture(&config)?;
            let get = |k: &str| labels.get(k).cloned().unwrap_or_default();
            return Ok(Some(Workload {
                container_id: c.id.clone(),
                source: "oci-state".into(),
                name: id.to_owned(),
                image: get("org.opencontainers.image.ref.name"),
                image_digest: get("org.opencontainers.image.base.digest"),
                pod: pod_of(&labels),
                labels,
                posture,
            }));
        }
        Ok(None)
    }
}
