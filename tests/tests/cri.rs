//! The CRI metadata source against a CRI stub: no CRI-O package exists for Debian 12, and
//! kubelet cannot run here, so a gRPC server on a Unix socket plays CRI-O's
//! `runtime.v1.RuntimeService/ContainerStatus`. Its replies are encoded by hand from
//! `k8s.io/cri-api` `api.proto`'s field numbers (not by the agent's message types), and it
//! decodes the agent's request the same way. The containers are real runc containers in
//! CRI-O's cgroupfs layout (`/kubepods/besteffort/pod<uid>/crio-<id>`); the stub's verbose
//! `info` carries each container's real OCI config as `runtimeSpec`, which the posture is
//! read from.

use std::{
    collections::HashMap,
    fs,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, mpsc},
};

use escapewatch_integration::{
    agent::{Agent, work_dir},
    escape::{WAIT, sh},
    runc::{Bundle, Container, random_hex64},
    scenario::{check_alert, with_primitives},
};
use serde_json::{Value, json};

fn varint(mut v: usize, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A length-delimited protobuf field.
fn field(tag: u32, bytes: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    varint(((tag << 3) | 2) as usize, &mut v);
    varint(bytes.len(), &mut v);
    v.extend_from_slice(bytes);
    v
}

fn map_entry(tag: u32, k: &str, v: &str) -> Vec<u8> {
    field(
        tag,
        &[field(1, k.as_bytes()), field(2, v.as_bytes())].concat(),
    )
}

/// What the stub says of one container.
struct Known {
    name: String,
    image: String,
    image_ref: String,
    labels: Vec<(String, String)>,
    spec: Value,
}

/// ContainerStatusResponse { status = 1 { id = 1, metadata = 2 { name = 1 }, image = 8
/// { image = 1 }, image_ref = 9, labels = 12 }, info = 2 { "info": {"runtimeSpec": …} } }.
fn encode_reply(id: &str, k: &Known) -> Vec<u8> {
    let mut status = field(1, id.as_bytes());
    status.extend(field(2, &field(1, k.name.as_bytes())));
    status.extend(field(8, &field(1, k.image.as_bytes())));
    status.extend(field(9, k.image_ref.as_bytes()));
    for (key, value) in &k.labels {
        status.extend(map_entry(12, key, value));
    }
    let info = json!({ "sandboxID": "0".repeat(64), "runtimeSpec": k.spec }).to_string();
    let mut reply = field(1, &status);
    reply.extend(map_entry(2, "info", &info));
    reply
}

/// ContainerStatusRequest { container_id = 1, verbose = 2 }, decoded by hand.
fn decode_request(msg: &[u8]) -> (String, bool) {
    assert_eq!(msg[0], 0x0a, "field 1 (container_id) first: {msg:?}");
    let len = msg[1] as usize;
    let id = String::from_utf8(msg[2..2 + len].to_vec()).unwrap();
    let verbose = msg[2 + len..] == [0x10, 1];
    (id, verbose)
}

/// A request the stub answered: its path, container id and verbose flag.
type Seen = (String, String, bool);

struct Stub {
    known: Arc<Mutex<HashMap<String, Known>>>,
    seen: mpsc::Receiver<Seen>,
    socket: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Stub {
    fn start(socket: &Path) -> Stub {
        let _ = fs::remove_file(socket);
        let known: Arc<Mutex<HashMap<String, Known>>> = Arc::default();
        let (tx, seen) = mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let path = socket.to_owned();
        let k = known.clone();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let listener = rt.block_on(async { tokio::net::UnixListener::bind(&path).unwrap() });
        let thread = std::thread::spawn(move || {
            rt.block_on(async move {
                tokio::select! {
                    _ = stopped => {}
                    _ = accept_loop(listener, k, tx) => {}
                }
            });
        });
        Stub {
            known,
            seen,
            socket: socket.to_owned(),
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Stop answering and remove the socket: CRI-O gone.
    fn shut(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        let _ = fs::remove_file(&self.socket);
    }
}

impl Drop for Stub {
    fn drop(&mut self) {
        self.shut();
    }
}

async fn accept_loop(
    listener: tokio::net::UnixListener,
    known: Arc<Mutex<HashMap<String, Known>>>,
    tx: mpsc::Sender<Seen>,
) {
    loop {
        let Ok((s, _)) = listener.accept().await else {
            return;
        };
        let known = known.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            let Ok(mut conn) = h2::server::handshake(s).await else {
                return;
            };
            while let Some(Ok((req, mut respond))) = conn.accept().await {
                let path = req.uri().path().to_owned();
                let mut body = req.into_body();
                let mut data = Vec::new();
                while let Some(Ok(c)) = body.data().await {
                    let _ = body.flow_control().release_capacity(c.len());
                    data.extend_from_slice(&c);
                }
                assert_eq!(data[0], 0, "an uncompressed gRPC frame");
                let len = u32::from_be_bytes(data[1..5].try_into().unwrap()) as usize;
                assert_eq!(data.len(), 5 + len);
                let (id, verbose) = decode_request(&data[5..]);
                let _ = tx.send((path.clone(), id.clone(), verbose));
                let reply = known.lock().unwrap().get(&id).map(|k| encode_reply(&id, k));
                let head = http::Response::builder()
                    .status(200)
                    .header("content-type", "application/grpc");
                match reply {
                    Some(msg) if path == "/runtime.v1.RuntimeService/ContainerStatus" => {
                        let mut send = respond
                            .send_response(head.body(()).unwrap(), false)
                            .unwrap();
                        let mut frame = vec![0];
                        frame.extend((msg.len() as u32).to_be_bytes());
                        frame.extend(msg);
                        send.send_data(frame.into(), false).unwrap();
                        let mut trailers = http::HeaderMap::new();
                        trailers.insert("grpc-status", "0".parse().unwrap());
                        send.send_trailers(trailers).unwrap();
                    }
                    _ => {
                        // A trailers-only reply: NOT_FOUND.
                        let head = head
                            .header("grpc-status", "5")
                            .header("grpc-message", "container not found")
                            .body(())
                            .unwrap();
                        let _ = respond.send_response(head, true);
                    }
                }
            }
        });
    }
}

const POD_UID: &str = "6f1f2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5b";

/// A runc container in CRI-O's cgroupfs layout, its id the 64 hex CRI-O gives; `known`
/// (if any) is what the stub will say of it, given its real OCI config before it starts.
fn crio_container(
    name: &str,
    edit: impl FnOnce(Bundle) -> Bundle,
    stub: &Stub,
    known: Option<Known>,
) -> (Container, String) {
    let id = random_hex64();
    let b = with_primitives(Bundle::busybox(name).expect("bundle"))
        .cgroups_path(&format!("/kubepods/besteffort/pod{POD_UID}/crio-{id}"));
    let b = edit(b);
    if let Some(mut k) = known {
        k.spec = b.config().clone();
        stub.known.lock().unwrap().insert(id.clone(), k);
    }
    let c = b.run_detached(&id).expect("run container");
    (c, id)
}

fn config(dir: &Path, crio: &Path) -> String {
    format!(
        "[workload]\ncrio_socket = \"{}\"\ndocker_socket = \"{}\"\ncontainerd_socket = \"{}\"\n",
        crio.display(),
        dir.join("no-docker.sock").display(),
        dir.join("no-containerd.sock").display(),
    )
}

fn recon(agent: &Agent, id: &str, c: &Container) -> Value {
    sh(c, "head -c 64 /proc/kallsyms >/dev/null");
    let a = agent.wait_for_alert(WAIT, |a| {
        a["rule"] == "kernel-debug-recon" && a["container"]["id"] == id
    });
    check_alert(&a, "kernel-debug-recon", id, "cri-o");
    a
}

#[test]
fn cri_metadata_and_posture_of_a_crio_container_are_in_its_alert_and_a_lost_socket_is_counted() {
    let dir = work_dir("cri-stub");
    let socket = dir.join("crio.sock");
    let mut stub = Stub::start(&socket);
    let mut agent = Agent::start_with(&dir, Some(&config(&dir, &socket)));
    let digest = format!("sha256:{}", "ab".repeat(32));
    let known = Known {
        name: "web".into(),
        image: "registry.example/shop/web:1.4".into(),
        image_ref: format!("registry.example/shop/web@{digest}"),
        labels: vec![
            ("io.kubernetes.pod.name".into(), "web-0".into()),
            ("io.kubernetes.pod.namespace".into(), "shop".into()),
            ("io.kubernetes.pod.uid".into(), POD_UID.into()),
            ("io.kubernetes.container.name".into(), "web".into()),
            ("app".into(), "web".into()),
        ],
        spec: Value::Null,
    };
    let (privileged, pid) = crio_container(
        "cri-privileged",
        |b| b.add_capabilities(&["SYS_ADMIN", "SYS_PTRACE"]),
        &stub,
        Some(known),
    );
    // The metadata is asked when the container starts: wait for it.
    let started = agent.wait_for_event(WAIT, |e| {
        e["data"]["kind"] == "container_started" && e["container"]["id"] == pid.as_str()
    });
    assert_eq!(started["workload"]["source"], "cri", "{started:#}");
    let a = recon(&agent, &pid, &privileged);
    let w = &a["container"];
    assert_eq!(w["name"], "web");
    assert_eq!(w["image"], "registry.example/shop/web:1.4");
    assert_eq!(w["image_digest"], digest.as_str());
    assert_eq!(w["labels"]["app"], "web");
    assert_eq!(
        w["pod"],
        json!({"name": "web-0", "namespace": "shop", "uid": POD_UID, "container": "web"}),
        "{a:#}"
    );
    assert_eq!(a["container"]["pod_uid"], POD_UID, "{a:#}");
    let p = &a["container"]["posture"];
    let added = p["capabilities_added"].as_array().unwrap();
    assert!(added.contains(&json!("CAP_SYS_ADMIN")), "{a:#}");
    assert!(added.contains(&json!("CAP_SYS_PTRACE")), "{a:#}");
    assert_eq!(p["seccomp"], "unconfined", "{a:#}");
    assert!(a["node"]["name"].as_str().is_some_and(|n| !n.is_empty()));
    // The agent asked CRI-O's RPC, verbose, for that container.
    let asked: Vec<Seen> = stub.seen.try_iter().collect();
    assert!(
        asked.contains(&(
            "/runtime.v1.RuntimeService/ContainerStatus".into(),
            pid.clone(),
            true
        )),
        "{asked:?}"
    );

    // CRI-O gone: a new CRI-O container's alert goes out without metadata, counted.
    stub.shut();
    let (second, sid) = crio_container("cri-after-loss", |b| b, &stub, None);
    let b = recon(&agent, &sid, &second);
    assert!(b["container"]["name"].is_null(), "{b:#}");
    assert!(b["container"]["pod"].is_null(), "{b:#}");
    assert_eq!(b["container"]["pod_uid"], POD_UID, "{b:#}");
    assert!(agent.metric_sum("escapewatch_workload_metadata_total", "result=\"error\"") >= 1.0);
    assert!(agent.metric_sum("escapewatch_workload_metadata_total", "result=\"miss\"") >= 1.0);
    agent.stop();
    agent.assert_replay_reproduces_alerts("cri-stub");
    drop((privileged, second));
}
