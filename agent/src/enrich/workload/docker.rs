//! The Docker Engine API: `GET /containers/<id>/json` over its Unix socket, HTTP/1.1 by hand
//! (one request per connection, `Connection: close`), bounded in time and size. podman's API
//! service answers the same request on its own socket (its Docker-compatible endpoints), so
//! one client serves both, each for the containers its cgroup layout names.

use std::{
    collections::BTreeMap,
    io::{Read, Write},
    os::unix::net::UnixStream,
    path::PathBuf,
    time::Duration,
};

use serde::Deserialize;

use super::{
    LookupError, Source, pod_of,
    posture::{HostConfig, InspectMount, from_docker},
};
use crate::model::{Container, Runtime, Workload};

/// Largest response read (an inspect is a few KiB).
const MAX_RESPONSE: u64 = 1 << 20;

pub struct DockerApi {
    socket: PathBuf,
    timeout: Duration,
    /// Which engine answers there: Docker, or podman's compatible service.
    engine: Engine,
}

/// An engine that speaks the Docker Engine API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    Docker,
    Podman,
}

impl DockerApi {
    pub fn new(socket: PathBuf, timeout: Duration) -> Self {
        DockerApi {
            socket,
            timeout,
            engine: Engine::Docker,
        }
    }

    /// podman's API service (`podman system service`), which answers Docker's requests.
    pub fn podman(socket: PathBuf, timeout: Duration) -> Self {
        DockerApi {
            socket,
            timeout,
            engine: Engine::Podman,
        }
    }

    fn get(&self, path: &str) -> Result<(u16, Vec<u8>), LookupError> {
        let what = format!("{} GET {path}", self.socket.display());
        let io = |source| LookupError::Io {
            what: what.clone(),
            source,
        };
        let mut s = UnixStream::connect(&self.socket).map_err(io)?;
        s.set_read_timeout(Some(self.timeout)).map_err(io)?;
        s.set_write_timeout(Some(self.timeout)).map_err(io)?;
        // One write: a request in pieces is a request a strict server may read in part.
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: docker\r\nUser-Agent: escapewatch\r\nConnection: close\r\n\r\n"
        );
        s.write_all(request.as_bytes()).map_err(io)?;
        let mut raw = Vec::new();
        // A deadline for the whole response, not only for each read.
        let deadline = std::time::Instant::now() + self.timeout;
        let mut buf = [0u8; 8192];
        loop {
            if std::time::Instant::now() > deadline {
                return Err(io(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "response not complete in time",
                )));
            }
            let n = s.read(&mut buf).map_err(io)?;
            if n == 0 {
                break;
            }
            raw.extend_from_slice(&buf[..n]);
            if raw.len() as u64 > MAX_RESPONSE {
                return Err(LookupError::Bad {
                    what,
                    problem: "response larger than 1 MiB".into(),
                });
            }
        }
        parse_response(&raw).map_err(|problem| LookupError::Bad { what, problem })
    }
}

/// Status and body of an HTTP/1.1 response read to its end (identity or chunked body).
pub fn parse_response(raw: &[u8]) -> Result<(u16, Vec<u8>), String> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no end of headers")?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| "headers are not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let chunked = lines.any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let body = &raw[end + 4..];
    if !chunked {
        return Ok((status, body.to_vec()));
    }
    let mut out = Vec::new();
    let mut rest = body;
    loop {
        let eol = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("chunk size line not terminated")?;
        let size_text = std::str::from_utf8(&rest[..eol]).map_err(|_| "bad chunk size")?;
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| "bad chunk size")?;
        rest = &rest[eol + 2..];
        if size == 0 {
            return Ok((status, out));
        }
        if rest.len() < size + 2 {
            return Err("truncated chunk".into());
        }
        out.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Inspect {
    #[serde(default)]
    name: String,
    /// The image id (`sha256:…`).
    #[serde(default)]
    image: String,
    #[serde(default)]
    config: Option<InspectConfig>,
    #[serde(default)]
    host_config: Option<HostConfig>,
    #[serde(default)]
    mounts: Option<Vec<InspectMount>>,
    #[serde(default)]
    app_armor_profile: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InspectConfig {
    #[serde(default)]
    image: String,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
}

/// The workload of an inspect response body from `engine`.
fn from_inspect(body: &[u8], engine: Engine) -> Result<Workload, String> {
    let i: Inspect = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let (image, labels) = i
        .config
        .map(|c| (c.image, c.labels.unwrap_or_default()))
        .unwrap_or_default();
    Ok(Workload {
        container_id: String::new(),
        source: engine.name().into(),
        name: i.name.trim_start_matches('/').to_owned(),
        image,
        image_digest: i.image,
        pod: pod_of(&labels),
        labels,
        posture: i.host_config.as_ref().map(|h| {
            from_docker(
                h,
                i.mounts.as_deref().unwrap_or_default(),
                &i.app_armor_profile,
            )
        }),
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Listed {
    id: String,
}

impl DockerApi {
    /// Every running container Docker has, with its metadata and posture (`escapewatch
    /// audit`). Ok(empty) when the socket does not exist.
    pub fn running(&self) -> Result<Vec<(String, Workload)>, LookupError> {
        if !self.socket.exists() {
            return Ok(Vec::new());
        }
        let bad = |what: String, problem: String| LookupError::Bad { what, problem };
        let (status, body) = self.get("/containers/json")?;
        if status != 200 {
            return Err(bad(
                format!("{} ps", self.engine.name()),
                format!("HTTP status {status}"),
            ));
        }
        let listed: Vec<Listed> = serde_json::from_slice(&body)
            .map_err(|e| bad(format!("{} ps", self.engine.name()), e.to_string()))?;
        let mut out = Vec::new();
        for l in listed {
            let (status, body) = self.get(&format!("/containers/{}/json", l.id))?;
            if status != 200 {
                continue;
            }
            let mut w = from_inspect(&body, self.engine)
                .map_err(|p| bad(format!("{} inspect {}", self.engine.name(), l.id), p))?;
            w.container_id.clone_from(&l.id);
            out.push((l.id, w));
        }
        Ok(out)
    }
}

impl Engine {
    fn name(self) -> &'static str {
        match self {
            Engine::Docker => "docker",
            Engine::Podman => "podman",
        }
    }

    /// Whether containers of `runtime` (by their cgroup layout) may be this engine's.
    fn serves(self, runtime: Runtime) -> bool {
        match self {
            Engine::Docker => matches!(runtime, Runtime::Docker | Runtime::Kubernetes),
            Engine::Podman => runtime == Runtime::Podman,
        }
    }
}

impl Source for DockerApi {
    fn name(&self) -> &'static str {
        self.engine.name()
    }

    fn lookup(&mut self, c: &Container) -> Result<Option<Workload>, LookupError> {
        // Docker and podman name their containers by 64 hex; under Kubernetes (cri-dockerd)
        // too.
        let id_ok = c.id.len() == 64 && c.id.bytes().all(|b| b.is_ascii_hexdigit());
        if !id_ok || !self.engine.serves(c.runtime) {
            return Ok(None);
        }
        if !self.socket.exists() {
            // A Docker container (its cgroup says so) whose daemon's socket is gone: the
            // runtime was lost or the configured path is wrong, which the operator must see.
            // A Kubernetes container may be containerd's or CRI-O's: no docker, no error.
            // podman has no daemon: its API service runs only where it was enabled
            // (podman.socket), and its absence is no fault.
            if c.runtime == Runtime::Docker {
                return Err(LookupError::Io {
                    what: format!("docker socket {}", self.socket.display()),
                    source: std::io::ErrorKind::NotFound.into(),
                });
            }
            return Ok(None);
        }
        let (status, body) = self.get(&format!("/containers/{}/json", c.id))?;
        match status {
            200 => from_inspect(&body, self.engine)
                .map(Some)
                .map_err(|problem| LookupError::Bad {
                    what: format!("{} inspect {}", self.engine.name(), c.id),
                    problem,
                }),
            404 => Ok(None),
            s => Err(LookupError::Bad {
                what: format!("{} inspect {}", self.engine.name(), c.id),
                problem: format!("HTTP status {s}"),
            }),
        }
    }
}
