//! The Container Runtime Interface: `runtime.v1.RuntimeService/ContainerStatus` (verbose)
//! over a CRI socket, the API kubelet itself uses, served by CRI-O (`/run/crio/crio.sock`)
//! and by containerd's CRI plugin (on containerd's own socket).
//!
//! One unary gRPC call per lookup, over HTTP/2 (`h2`), bounded in time as a whole. The
//! messages are the subset of `k8s.io/cri-api` `pkg/apis/runtime/v1/api.proto` the agent
//! reads, with that file's field numbers (protobuf skips every other field). The verbose
//! reply's `info["info"]` is a JSON object whose `runtimeSpec` is the container's OCI
//! config (containerd and CRI-O both give it): the posture is read from it as from a bundle.

use std::{collections::BTreeMap, path::PathBuf, time::Duration};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde::Deserialize;

use super::{
    LookupError, Source, pod_of,
    posture::{OciConfig, from_oci, is_host_namespace},
};
use crate::model::{Container, Runtime, Workload};

/// The RPC asked.
pub const CONTAINER_STATUS: &str = "/runtime.v1.RuntimeService/ContainerStatus";
/// Largest reply read (a verbose status is a few tens of KiB).
const MAX_RESPONSE: usize = 4 << 20;
/// gRPC's NOT_FOUND: the runtime does not know the container.
const GRPC_NOT_FOUND: u32 = 5;
/// gRPC's UNIMPLEMENTED: a containerd without its CRI plugin (Docker's, say).
const GRPC_UNIMPLEMENTED: u32 = 12;

#[derive(Clone, PartialEq, prost::Message)]
pub struct ContainerStatusRequest {
    #[prost(string, tag = "1")]
    pub container_id: String,
    #[prost(bool, tag = "2")]
    pub verbose: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ContainerStatusResponse {
    #[prost(message, optional, tag = "1")]
    pub status: Option<ContainerStatus>,
    #[prost(map = "string, string", tag = "2")]
    pub info: std::collections::HashMap<String, String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ContainerStatus {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(message, optional, tag = "2")]
    pub metadata: Option<ContainerMetadata>,
    #[prost(message, optional, tag = "8")]
    pub image: Option<ImageSpec>,
    #[prost(string, tag = "9")]
    pub image_ref: String,
    #[prost(btree_map = "string, string", tag = "12")]
    pub labels: BTreeMap<String, String>,
    #[prost(btree_map = "string, string", tag = "13")]
    pub annotations: BTreeMap<String, String>,
    #[prost(string, tag = "17")]
    pub image_id: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ContainerMetadata {
    #[prost(string, tag = "1")]
    pub name: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ImageSpec {
    #[prost(string, tag = "1")]
    pub image: String,
    #[prost(string, tag = "18")]
    pub user_specified_image: String,
}

/// `info["info"]` of a verbose status: the part read.
#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct VerboseInfo {
    runtime_spec: Option<OciConfig>,
}

/// A CRI endpoint: CRI-O's, or containerd's (whose CRI plugin shares its socket).
pub struct CriApi {
    socket: PathBuf,
    timeout: Duration,
    /// Whether this socket is CRI-O's (a CRI-O container whose socket is gone is an error).
    crio: bool,
    rt: Option<tokio::runtime::Runtime>,
}

impl CriApi {
    pub fn new(socket: PathBuf, timeout: Duration, crio: bool) -> Self {
        CriApi {
            socket,
            timeout,
            crio,
            rt: None,
        }
    }

    fn what(&self, id: &str) -> String {
        format!("CRI {} ContainerStatus {id}", self.socket.display())
    }

    /// One unary call: the reply's message, or None for NOT_FOUND.
    fn call(&mut self, id: &str) -> Result<Option<ContainerStatusResponse>, LookupError> {
        let what = self.what(id);
        let io = |source| LookupError::Io {
            what: what.clone(),
            source,
        };
        if self.rt.is_none() {
            self.rt = Some(
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(io)?,
            );
        }
        let request = ContainerStatusRequest {
            container_id: id.to_owned(),
            verbose: true,
        };
        let socket = self.socket.clone();
        let timeout = self.timeout;
        let rt = self.rt.as_ref().expect("built above");
        let reply = rt.block_on(async move {
            tokio::time::timeout(timeout, unary(&socket, CONTAINER_STATUS, &request)).await
        });
        let (status, message, body) = match reply {
            Err(_) => {
                return Err(io(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "no complete reply in time",
                )));
            }
            Ok(Err(CallError::Io(e))) => return Err(io(e)),
            Ok(Err(CallError::Bad(problem))) => return Err(LookupError::Bad { what, problem }),
            Ok(Ok(r)) => r,
        };
        match status {
            0 => {}
            GRPC_NOT_FOUND | GRPC_UNIMPLEMENTED => return Ok(None),
            s => {
                return Err(LookupError::Bad {
                    what,
                    problem: format!("gRPC status {s}: {message}"),
                });
            }
        }
        let reply = grpc_message(&body)
            .and_then(|m| {
                <ContainerStatusResponse as prost::Message>::decode(m).map_err(|e| e.to_string())
            })
            .map_err(|problem| LookupError::Bad {
                what: what.clone(),
                problem,
            })?;
        Ok(Some(reply))
    }
}

impl Source for CriApi {
    fn name(&self) -> &'static str {
        "cri"
    }

    fn lookup(&mut self, c: &Container) -> Result<Option<Workload>, LookupError> {
        let id_ok = c.id.len() == 64 && c.id.bytes().all(|b| b.is_ascii_hexdigit());
        let serves = matches!(
            c.runtime,
            Runtime::CriO | Runtime::Containerd | Runtime::Kubernetes
        );
        if !id_ok || !serves {
            return Ok(None);
        }
        if !self.socket.exists() {
            // CRI-O's container (its cgroup says so) with CRI-O's socket gone: the operator
            // must see it. containerd's CRI may be off, and a Kubernetes container may be
            // another runtime's: no error.
            if self.crio && c.runtime == Runtime::CriO {
                return Err(LookupError::Io {
                    what: format!("CRI-O socket {}", self.socket.display()),
                    source: std::io::ErrorKind::NotFound.into(),
                });
            }
            return Ok(None);
        }
        let Some(reply) = self.call(&c.id)? else {
            return Ok(None);
        };
        from_status(&c.id, &reply)
            .map(Some)
            .map_err(|problem| LookupError::Bad {
                what: self.what(&c.id),
                problem,
            })
    }
}

/// The workload a verbose ContainerStatus reply gives.
pub fn from_status(id: &str, reply: &ContainerStatusResponse) -> Result<Workload, String> {
    let status = reply.status.as_ref().ok_or("the reply has no status")?;
    if status.id != id {
        return Err(format!("the reply is about container {:?}", status.id));
    }
    // Kubelet's labels name the pod; annotations carry what it gave the runtime besides.
    let mut keys = status.annotations.clone();
    keys.extend(status.labels.clone());
    let image = status.image.as_ref();
    let image_name = image
        .map(|i| {
            if i.user_specified_image.is_empty() {
                i.image.clone()
            } else {
                i.user_specified_image.clone()
            }
        })
        .unwrap_or_default();
    let posture = match reply.info.get("info") {
        Some(info) => serde_json::from_str::<VerboseInfo>(info)
            .map_err(|e| format!("verbose info: {e}"))?
            .runtime_spec
            .map(|spec| from_oci(&spec, true, is_host_namespace)),
        None => None,
    };
    Ok(Workload {
        container_id: id.to_owned(),
        source: "cri".into(),
        name: status
            .metadata
            .as_ref()
            .map(|m| m.name.clone())
            .unwrap_or_default(),
        image: image_name,
        image_digest: digest_of(&status.image_ref),
        labels: status.labels.clone(),
        pod: pod_of(&keys),
        posture,
    })
}

/// The digest an `image_ref` names: `repo@sha256:…` or a bare `sha256:…` (an image id).
fn digest_of(image_ref: &str) -> String {
    match image_ref.rsplit_once('@') {
        Some((_, d)) => d.to_owned(),
        None if image_ref.starts_with("sha256:") => image_ref.to_owned(),
        None => String::new(),
    }
}

#[derive(Debug)]
enum CallError {
    Io(std::io::Error),
    Bad(String),
}

impl From<h2::Error> for CallError {
    fn from(e: h2::Error) -> Self {
        match e.get_io() {
            Some(io) => CallError::Io(std::io::Error::new(io.kind(), e.to_string())),
            None => CallError::Bad(format!("HTTP/2: {e}")),
        }
    }
}

/// A gRPC message frame: not compressed, a 4-byte big-endian length, the message.
pub fn grpc_frame(message: &impl prost::Message) -> Bytes {
    let mut out = BytesMut::with_capacity(5 + message.encoded_len());
    out.put_u8(0);
    out.put_u32(message.encoded_len() as u32);
    message.encode(&mut out).expect("BytesMut grows as needed");
    out.freeze()
}

/// The one message of a unary reply's body.
fn grpc_message(body: &[u8]) -> Result<&[u8], String> {
    let mut b = body;
    if b.len() < 5 {
        return Err(format!("a reply of {} bytes has no gRPC frame", b.len()));
    }
    let compressed = b.get_u8();
    let len = b.get_u32() as usize;
    if compressed != 0 {
        return Err("the reply is compressed, which was not asked for".into());
    }
    if b.len() != len {
        return Err(format!(
            "the gRPC frame says {len} bytes, the body has {}",
            b.len()
        ));
    }
    Ok(b)
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// POST `path` with `request` to the gRPC server on Unix socket `socket`: the grpc-status,
/// its message and the reply body.
async fn unary(
    socket: &std::path::Path,
    path: &str,
    request: &impl prost::Message,
) -> Result<(u32, String, Vec<u8>), CallError> {
    let stream = tokio::net::UnixStream::connect(socket)
        .await
        .map_err(CallError::Io)?;
    let (client, connection) = h2::client::handshake(stream).await?;
    // The connection's task ends with the call, however it ends (an error, or the caller's
    // timeout dropping this future): a hung runtime leaves no connection behind.
    let _driver = AbortOnDrop(tokio::spawn(async move {
        let _ = connection.await;
    }));
    let mut client = client.ready().await?;
    let req = http::Request::builder()
        .method("POST")
        // The authority is not looked at over a Unix socket; gRPC clients send "localhost".
        .uri(format!("http://localhost{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("user-agent", "escapewatch")
        .body(())
        .map_err(|e| CallError::Bad(e.to_string()))?;
    let (reply, mut send) = client.send_request(req, false)?;
    send.send_data(grpc_frame(request), true)?;
    let reply = reply.await?;
    let (head, mut body) = reply.into_parts();
    if head.status != http::StatusCode::OK {
        return Err(CallError::Bad(format!("HTTP status {}", head.status)));
    }
    let mut data = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk?;
        let _ = body.flow_control().release_capacity(chunk.len());
        data.extend_from_slice(&chunk);
        if data.len() > MAX_RESPONSE {
            return Err(CallError::Bad("reply larger than 4 MiB".into()));
        }
    }
    // grpc-status comes in the trailers, or in the headers of a trailers-only reply.
    let trailers = body.trailers().await?;
    let headers = trailers.as_ref().unwrap_or(&head.headers);
    let status = headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| CallError::Bad("the reply has no grpc-status".into()))?;
    let message = headers
        .get("grpc-message")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    Ok((status, message, data))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reply encoded by hand from api.proto's field numbers, not by the structs above.
    #[test]
    fn a_hand_encoded_status_reply_decodes_to_the_workload() {
        fn field(tag: u8, bytes: &[u8]) -> Vec<u8> {
            let mut v = vec![(tag << 3) | 2];
            let mut n = bytes.len();
            while n >= 0x80 {
                v.push((n as u8) | 0x80);
                n >>= 7;
            }
            v.push(n as u8);
            v.extend_from_slice(bytes);
            v
        }
        let id = "a".repeat(64);
        let mut status = field(1, id.as_bytes());
        status.extend(field(2, &field(1, b"web")));
        status.extend(field(8, &field(1, b"docker.io/library/nginx:1.27")));
        status.extend(field(9, b"docker.io/library/nginx@sha256:abcd"));
        status.extend(field(
            12,
            &[field(1, b"io.kubernetes.pod.name"), field(2, b"web-0")].concat(),
        ));
        status.extend(field(
            12,
            &[field(1, b"io.kubernetes.pod.namespace"), field(2, b"shop")].concat(),
        ));
        let info = r#"{"runtimeSpec":{"process":{"capabilities":{}},"linux":{"namespaces":[]},"mounts":[]}}"#;
        let mut reply = field(1, &status);
        reply.extend(field(
            2,
            &[field(1, b"info"), field(2, info.as_bytes())].concat(),
        ));
        let decoded =
            <ContainerStatusResponse as prost::Message>::decode(reply.as_slice()).unwrap();
        let w = from_status(&id, &decoded).unwrap();
        assert_eq!(w.source, "cri");
        assert_eq!(w.name, "web");
        assert_eq!(w.image, "docker.io/library/nginx:1.27");
        assert_eq!(w.image_digest, "sha256:abcd");
        let pod = w.pod.unwrap();
        assert_eq!(
            (pod.name.as_str(), pod.namespace.as_str()),
            ("web-0", "shop")
        );
        assert!(w.posture.is_some());
        assert!(from_status(&"b".repeat(64), &decoded).is_err());
    }

    #[test]
    fn a_request_frame_has_the_grpc_prefix_and_the_fields() {
        let f = grpc_frame(&ContainerStatusRequest {
            container_id: "ab".into(),
            verbose: true,
        });
        assert_eq!(&f[..], &[0, 0, 0, 0, 6, 0x0a, 2, b'a', b'b', 0x10, 1]);
        assert_eq!(grpc_message(&f).unwrap(), &f[5..]);
        assert!(grpc_message(&f[..7]).is_err());
    }

    /// A runtime that accepts and never answers: the lookup fails within its bound, counted
    /// as an error, and leaves no connection open.
    #[test]
    fn a_runtime_that_never_answers_fails_the_lookup_within_its_bound() {
        let dir = std::env::temp_dir().join(format!("ew-cri-hang-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let sock = dir.join("crio.sock");
        let _ = std::fs::remove_file(&sock);
        let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let held = std::thread::spawn(move || {
            let (conn, _) = listener.accept().unwrap();
            // Keep the connection open, silent, until the client has given up and closed it.
            let mut buf = [0u8; 4096];
            let mut conn = conn;
            while std::io::Read::read(&mut conn, &mut buf).unwrap_or(0) > 0 {}
        });
        let mut api = CriApi::new(sock, Duration::from_millis(200), true);
        let c = Container {
            id: "c".repeat(64),
            runtime: Runtime::CriO,
            pod_uid: None,
        };
        let t = std::time::Instant::now();
        let e = api.lookup(&c).unwrap_err();
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        assert!(
            t.elapsed() >= Duration::from_millis(200),
            "{e} after {:?}",
            t.elapsed()
        );
        assert!(e.to_string().contains("in time"), "{e}");
        // The client's end is closed once the lookup is over: the server's read loop ends.
        drop(api);
        held.join().unwrap();
        let _ = std::fs::remove_dir_all(dir);
    }
}
