use std::{
    io::{Read, Write},
    os::unix::net::UnixListener,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use prometheus::{IntCounterVec, Opts};

use super::{docker::parse_response, oci::digest_from_images_ls, *};
use crate::model::Runtime;

fn counts() -> IntCounterVec {
    IntCounterVec::new(Opts::new("t", "t"), &["result"]).unwrap()
}

fn tempdir(name: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let d = std::env::temp_dir().join(format!(
        "ew-workload-{}-{name}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn docker_container(ch: char) -> Container {
    Container {
        id: ch.to_string().repeat(64),
        runtime: Runtime::Docker,
        pod_uid: None,
    }
}

/// The shape of a Docker 20.10 inspect (trimmed), as docker sends it: chunked.
const INSPECT: &str = r#"{"Id":"aaaa","Name":"/web-1","Image":"sha256:668f1ab8820ffd4e3ff6a43adddf1379e08e77c4185bdea556244a7978811ba2","Config":{"Image":"ewtest:1","Labels":{"team":"red","io.kubernetes.pod.name":"web-7f9c","io.kubernetes.pod.namespace":"shop","io.kubernetes.pod.uid":"0d6b2c9e-1111-2222-3333-444455556666","io.kubernetes.container.name":"web"}}}"#;

fn chunked(body: &str) -> String {
    let (a, b) = body.split_at(body.len() / 2);
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{a}\r\n{:x}\r\n{b}\r\n0\r\n\r\n",
        a.len(),
        b.len()
    )
}

/// A fake Docker socket: answers every request with `respond(path)`, or never when None.
fn fake_docker(
    sock: &Path,
    respond: impl Fn(&str) -> Option<String> + Send + 'static,
) -> std::sync::mpsc::Receiver<String> {
    let listener = UnixListener::bind(sock).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming() {
            let mut s = s.unwrap();
            // The whole request: closing with unread bytes resets the client's connection.
            let mut raw = Vec::new();
            let mut buf = [0u8; 4096];
            while !raw.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => raw.extend_from_slice(&buf[..n]),
                }
            }
            let req = String::from_utf8_lossy(&raw).into_owned();
            let path = req.split(' ').nth(1).unwrap_or_default().to_owned();
            let _ = tx.send(path.clone());
            match respond(&path) {
                Some(r) => {
                    let _ = s.write_all(r.as_bytes());
                }
                // Never answer (and keep the connection open).
                None => held.push(s),
            }
        }
    });
    rx
}

fn wait_for(cache: &WorkloadCache, c: &Container) -> Option<Workload> {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        if let Some(w) = cache.get(c) {
            return Some(w);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    None
}

/// A fake engine at `sock` that answers [`INSPECT`] for container `c` and 404 for anything
/// else; the requests it gets.
fn serve_inspect(sock: &Path, c: &Container) -> std::sync::mpsc::Receiver<String> {
    let want = format!("/containers/{}/json", c.id);
    fake_docker(sock, move |p| {
        Some(if p == want {
            chunked(INSPECT)
        } else {
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".into()
        })
    })
}

#[test]
fn http_responses_are_read_chunked_or_plain() {
    let (status, body) = parse_response(chunked(INSPECT).as_bytes()).unwrap();
    assert_eq!(status, 200);
    assert_eq!(body, INSPECT.as_bytes());
    let (status, body) =
        parse_response(b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\n{}").unwrap();
    assert_eq!((status, &body[..]), (404, &b"{}"[..]));
    assert!(
        parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nff\r\nab").is_err()
    );
    assert!(parse_response(b"garbage").is_err());
}

#[test]
fn docker_metadata_fills_the_cache_in_the_background() {
    let dir = tempdir("docker");
    let sock = dir.join("docker.sock");
    let c = docker_container('a');
    let requests = serve_inspect(&sock, &c);
    let counts = counts();
    let cache = WorkloadCache::start(
        vec![Box::new(DockerApi::new(sock, Duration::from_millis(500)))],
        WorkloadConfig::default(),
        counts.clone(),
    )
    .unwrap();
    // The first look is a miss: nothing waits for the runtime.
    assert_eq!(cache.get(&c), None);
    let w = wait_for(&cache, &c).expect("filled");
    assert_eq!(
        requests.recv().unwrap(),
        format!("/containers/{}/json", c.id)
    );
    assert_eq!(w.container_id, c.id);
    assert_eq!(w.source, "docker");
    assert_eq!(w.name, "web-1");
    assert_eq!(w.image, "ewtest:1");
    assert!(w.image_digest.starts_with("sha256:668f1ab8"));
    assert_eq!(w.labels["team"], "red");
    let pod = w.pod.unwrap();
    assert_eq!(
        (
            pod.name.as_str(),
            pod.namespace.as_str(),
            pod.container.as_str()
        ),
        ("web-7f9c", "shop", "web")
    );
    assert_eq!(pod.uid, "0d6b2c9e-1111-2222-3333-444455556666");
    // A container docker does not know is cached as unknown and not asked again at once.
    let other = docker_container('b');
    assert_eq!(cache.get(&other), None);
    let start = Instant::now();
    while counts.with_label_values(&["unknown"]).get() == 0 {
        assert!(start.elapsed() < Duration::from_secs(5));
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(cache.get(&other), None);
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(requests.try_iter().count(), 1, "asked once");
    assert_eq!(counts.with_label_values(&["found"]).get(), 1);
}

#[test]
fn a_runtime_that_never_answers_blocks_nothing_and_is_counted() {
    let dir = tempdir("stalled");
    let sock = dir.join("docker.sock");
    let _requests = fake_docker(&sock, |_| None);
    let counts = counts();
    let cache = WorkloadCache::start(
        vec![Box::new(DockerApi::new(sock, Duration::from_millis(200)))],
        WorkloadConfig {
            queue: 4,
            ..WorkloadConfig::default()
        },
        counts.clone(),
    )
    .unwrap();
    // 100 containers while the thread is stuck on the first: every look returns at once.
    let start = Instant::now();
    let mut slowest = Duration::ZERO;
    for i in 0..100u32 {
        let c = Container {
            id: format!("{i:064x}"),
            runtime: Runtime::Docker,
            pod_uid: None,
        };
        let t = Instant::now();
        assert_eq!(cache.get(&c), None);
        slowest = slowest.max(t.elapsed());
    }
    assert!(
        slowest < Duration::from_millis(20),
        "a look took {slowest:?}"
    );
    assert!(start.elapsed() < Duration::from_millis(200));
    // The queue holds 4 (and the thread one): the rest were dropped, counted.
    assert!(counts.with_label_values(&["dropped"]).get() >= 90);
    let start = Instant::now();
    while counts.with_label_values(&["error"]).get() == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "no timeout counted"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn an_absent_socket_is_an_error_for_docker_containers_only_and_the_cache_stays_bounded() {
    let dir = tempdir("bounded");
    let counts = counts();
    let cache = WorkloadCache::start(
        vec![Box::new(DockerApi::new(
            dir.join("missing.sock"),
            Duration::from_millis(100),
        ))],
        WorkloadConfig {
            max_entries: 8,
            ..WorkloadConfig::default()
        },
        counts.clone(),
    )
    .unwrap();
    // Pods of a containerd or CRI-O node, where no docker runs: no error.
    for i in 0..100u32 {
        let c = Container {
            id: format!("{i:064x}"),
            runtime: Runtime::Kubernetes,
            pod_uid: None,
        };
        let _ = cache.get(&c);
        std::thread::sleep(Duration::from_millis(1));
        assert!(cache.len() <= 8, "{}", cache.len());
    }
    wait_until(|| counts.with_label_values(&["unknown"]).get() >= 1);
    assert_eq!(counts.with_label_values(&["error"]).get(), 0);
    // A Docker container whose daemon's socket is gone: counted.
    let _ = cache.get(&Container {
        id: format!("{:064x}", 1000),
        runtime: Runtime::Docker,
        pod_uid: None,
    });
    wait_until(|| counts.with_label_values(&["error"]).get() == 1);
}

#[test]
fn podmans_api_service_is_asked_about_podman_containers_only() {
    let dir = tempdir("podman");
    let sock = dir.join("podman.sock");
    let podman = Container {
        id: "c".repeat(64),
        runtime: Runtime::Podman,
        pod_uid: None,
    };
    let requests = serve_inspect(&sock, &podman);
    let counts = counts();
    let cache = WorkloadCache::start(
        vec![
            // Docker's socket is absent: podman containers are not Docker's error.
            Box::new(DockerApi::new(
                dir.join("docker.sock"),
                Duration::from_millis(200),
            )),
            Box::new(DockerApi::podman(sock, Duration::from_millis(500))),
        ],
        WorkloadConfig::default(),
        counts.clone(),
    )
    .unwrap();
    assert_eq!(cache.get(&podman), None);
    let w = wait_for(&cache, &podman).expect("filled");
    assert_eq!(
        requests.recv().unwrap(),
        format!("/containers/{}/json", podman.id)
    );
    assert_eq!(w.source, "podman");
    assert_eq!(w.name, "web-1");
    assert_eq!(w.image, "ewtest:1");
    assert_eq!(counts.with_label_values(&["error"]).get(), 0);
    // A Docker container is not podman's to answer: no request reaches its socket.
    let _ = cache.get(&docker_container('d'));
    wait_until(|| counts.with_label_values(&["error"]).get() == 1);
    assert!(requests.try_recv().is_err());
    // podman's service not running is no fault.
    let counts = self::counts();
    let cache = WorkloadCache::start(
        vec![Box::new(DockerApi::podman(
            dir.join("absent.sock"),
            Duration::from_millis(100),
        ))],
        WorkloadConfig::default(),
        counts.clone(),
    )
    .unwrap();
    let _ = cache.get(&podman);
    wait_until(|| counts.with_label_values(&["unknown"]).get() >= 1);
    assert_eq!(counts.with_label_values(&["error"]).get(), 0);
}

/// Waits (5 s at most) until `ok`, which must then hold.
fn wait_until(ok: impl Fn() -> bool) {
    let start = std::time::Instant::now();
    while !ok() {
        assert!(start.elapsed() < Duration::from_secs(5), "never held");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

#[test]
fn runc_and_crun_state_dirs_give_the_bundle_annotations() {
    let dir = tempdir("oci");
    let bundle = dir.join("bundles/b1");
    write(
        &bundle.join("config.json"),
        r#"{"ociVersion":"1.0.2","annotations":{"org.opencontainers.image.ref.name":"registry.example/app:1.2","org.opencontainers.image.base.digest":"sha256:abcd","team":"blue"}}"#,
    );
    write(
        &dir.join("runc/ewt-1-2-3/state.json"),
        &format!(
            r#"{{"id":"ewt-1-2-3","config":{{"labels":["bundle={}"]}}}}"#,
            bundle.display()
        ),
    );
    write(
        &dir.join("crun/ewt-9/status"),
        &format!(r#"{{"bundle":"{}","pid":1}}"#, bundle.display()),
    );
    let mut s = OciState::new(vec![dir.join("runc"), dir.join("crun")]);
    for id in ["/ewt-1-2-3", "/ewt-9"] {
        let c = Container {
            id: id.into(),
            runtime: Runtime::Unknown,
            pod_uid: None,
        };
        let w = s.lookup(&c).unwrap().expect(id);
        assert_eq!(w.name, id.trim_start_matches('/'));
        assert_eq!(w.image, "registry.example/app:1.2");
        assert_eq!(w.image_digest, "sha256:abcd");
        assert_eq!(w.labels["team"], "blue");
        assert_eq!(w.pod, None);
    }
    let none = Container {
        id: "/../etc".into(),
        runtime: Runtime::Unknown,
        pod_uid: None,
    };
    assert!(s.lookup(&none).unwrap().is_none());
}

#[test]
fn containerd_bundles_of_cri_and_ctr_containers() {
    let dir = tempdir("containerd");
    let id = "c".repeat(64);
    write(
        &dir.join(format!("k8s.io/{id}/config.json")),
        r#"{"annotations":{"io.kubernetes.cri.container-name":"web","io.kubernetes.cri.image-name":"docker.io/library/nginx:1.25","io.kubernetes.cri.sandbox-name":"web-7f9c","io.kubernetes.cri.sandbox-namespace":"shop","io.kubernetes.cri.sandbox-uid":"0d6b2c9e"}}"#,
    );
    write(
        &dir.join("ewt/probe2/config.json"),
        r#"{"annotations":{"team":"blue"}}"#,
    );
    let mut s = ContainerdBundles::new(dir.clone(), None, Duration::from_millis(100));
    let cri = Container {
        id: id.clone(),
        runtime: Runtime::Containerd,
        pod_uid: Some("0d6b2c9e".into()),
    };
    let w = s.lookup(&cri).unwrap().unwrap();
    assert_eq!(
        (w.name.as_str(), w.image.as_str()),
        ("web", "docker.io/library/nginx:1.25")
    );
    let pod = w.pod.unwrap();
    assert_eq!(
        (pod.name.as_str(), pod.namespace.as_str(), pod.uid.as_str()),
        ("web-7f9c", "shop", "0d6b2c9e")
    );
    let ctr = Container {
        id: "/ewt/probe2".into(),
        runtime: Runtime::Unknown,
        pod_uid: None,
    };
    let w = s.lookup(&ctr).unwrap().unwrap();
    assert_eq!(w.name, "probe2");
    assert_eq!(w.labels["team"], "blue");
    assert_eq!(
        w.image, "",
        "a ctr container's image is only known from ctr"
    );
}

#[test]
fn the_digest_is_read_from_ctr_images_ls() {
    let table = "REF                        TYPE                                                 DIGEST                                                                  SIZE    PLATFORMS   LABELS \n\
docker.io/library/ewtest:1 application/vnd.docker.distribution.manifest.v2+json sha256:95f2bb5cb35f93b1fdfa5c8995de2db85471b98f5992445bc487ad594d219e46 1.9 MiB linux/amd64 -\n";
    assert_eq!(
        digest_from_images_ls(table, "docker.io/library/ewtest:1"),
        "sha256:95f2bb5cb35f93b1fdfa5c8995de2db85471b98f5992445bc487ad594d219e46"
    );
    assert_eq!(digest_from_images_ls(table, "other:1"), "");
}

mod posture_of {
    use serde_json::json;

    use super::super::posture::{OciConfig, from_docker, from_oci};
    use crate::model::posture::{HostNamespace, MountClass, Posture, Seccomp};

    /// The posture of `config` (namespace paths: `/proc/1/ns/*` is the host's).
    fn oci(config: serde_json::Value) -> Posture {
        let c: OciConfig = serde_json::from_value(config).unwrap();
        from_oci(&c, false, |_, path| path.starts_with("/proc/1/"))
    }

    /// `runc spec`'s namespaces, seccomp set, runc's default capabilities.
    fn spec(extra: impl FnOnce(&mut serde_json::Value)) -> serde_json::Value {
        let mut v = json!({
            "process": {
                "capabilities": {
                    "bounding": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                    "effective": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
                },
                "apparmorProfile": "docker-default"
            },
            "linux": {
                "namespaces": [
                    {"type": "pid"}, {"type": "network"}, {"type": "ipc"},
                    {"type": "uts"}, {"type": "mount"}, {"type": "cgroup"}
                ],
                "seccomp": {"defaultAction": "SCMP_ACT_ERRNO"}
            },
            "mounts": [
                {"destination": "/proc", "type": "proc", "source": "proc"},
                {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["ro"]}
            ]
        });
        extra(&mut v);
        v
    }

    #[test]
    fn a_default_bundle_has_no_finding() {
        let p = oci(spec(|_| {}));
        assert_eq!(
            p,
            Posture {
                privileged: false,
                host_namespaces: vec![],
                capabilities_added: vec![],
                seccomp: Seccomp::Filtered,
                apparmor: "docker-default".into(),
                sensitive_mounts: vec![],
            }
        );
        assert!(p.is_default(), "{:?}", p.findings());
    }

    #[test]
    fn every_capability_is_privileged_and_caps_beyond_the_default_are_added() {
        let all = super::super::posture::ALL_CAPS.to_vec();
        let p = oci(spec(|v| {
            v["process"]["capabilities"]["bounding"] = json!(all);
            v["linux"]["seccomp"] = serde_json::Value::Null;
        }));
        assert!(p.privileged);
        assert!(p.has_capability("CAP_SYS_ADMIN"));
        assert_eq!(p.seccomp, Seccomp::Unconfined);
        let cis: Vec<&str> = p.findings().iter().map(|f| f.cis).collect();
        assert_eq!(cis, ["5.4", "5.21"]);
        let p = oci(spec(|v| {
            v["process"]["capabilities"]["effective"] = json!(["CAP_SYS_PTRACE", "sys_admin"]);
        }));
        assert!(!p.privileged);
        assert_eq!(p.capabilities_added, ["CAP_SYS_ADMIN", "CAP_SYS_PTRACE"]);
        assert_eq!(p.findings()[0].cis, "5.3");
        assert_eq!(p.findings()[0].detail, "CAP_SYS_ADMIN,CAP_SYS_PTRACE");
    }

    #[test]
    fn a_missing_namespace_or_a_path_to_the_hosts_is_shared_with_the_host() {
        let p = oci(spec(|v| {
            v["linux"]["namespaces"] = json!([
                {"type": "network", "path": "/proc/1/ns/net"},
                {"type": "ipc", "path": "/proc/4242/ns/ipc"},
                {"type": "mount"}, {"type": "cgroup"}
            ]);
            v["process"]["apparmorProfile"] = json!("unconfined");
        }));
        assert_eq!(
            p.host_namespaces,
            [
                HostNamespace::Pid,
                HostNamespace::Network,
                HostNamespace::Uts
            ]
        );
        let cis: Vec<&str> = p.findings().iter().map(|f| f.cis).collect();
        assert_eq!(cis, ["5.1", "5.9", "5.15", "5.20"]);
        assert_eq!(p.findings()[0].detail, "unconfined");
    }

    #[test]
    fn sensitive_mounts_are_judged_on_the_host_side_source() {
        let p = oci(spec(|v| {
            let mounts = v["mounts"].as_array_mut().unwrap();
            for (src, dst) in [
                ("/", "/host"),
                ("/var/run/docker.sock", "/sock"),
                ("/srv/x/containerd.sock", "/c.sock"),
                ("/etc/", "/hostetc"),
                ("/var", "/v"),
                ("/var/lib/docker/overlay2", "/o"),
                ("/proc", "/hostproc"),
                ("/tmp/data", "/etc"),
                ("/var/lib/mysql", "/root"),
                ("/home/u/docker.socket", "/var/run/docker.sock"),
            ] {
                mounts.push(json!({"destination": dst, "type": "bind", "source": src,
                    "options": ["rbind", "ro"]}));
            }
            // Not a bind: the container's own tmpfs at a host-looking path.
            mounts.push(json!({"destination": "/etc", "type": "tmpfs", "source": "/etc"}));
        }));
        let got: Vec<(&str, &str, MountClass)> = p
            .sensitive_mounts
            .iter()
            .map(|m| (m.source.as_str(), m.destination.as_str(), m.class))
            .collect();
        assert_eq!(
            got,
            [
                ("/", "/host", MountClass::HostRoot),
                ("/var/run/docker.sock", "/sock", MountClass::RuntimeSocket),
                (
                    "/srv/x/containerd.sock",
                    "/c.sock",
                    MountClass::RuntimeSocket
                ),
                ("/etc/", "/hostetc", MountClass::HostEtc),
                ("/var", "/v", MountClass::HostRoot),
                ("/var/lib/docker/overlay2", "/o", MountClass::RuntimeState),
                ("/proc", "/hostproc", MountClass::HostProc),
            ]
        );
        assert!(p.sensitive_mounts.iter().all(|m| m.read_only));
        let cis: Vec<&str> = p.findings().iter().map(|f| f.cis).collect();
        assert_eq!(cis, ["5.5", "5.5", "5.5", "5.5", "5.5", "5.31", "5.31"]);
    }

    #[test]
    fn docker_inspect_host_config_maps_to_the_same_posture() {
        let h = serde_json::from_value(json!({
            "Privileged": false,
            "CapAdd": ["SYS_ADMIN", "NET_RAW"],
            "SecurityOpt": ["seccomp=unconfined", "apparmor=unconfined"],
            "PidMode": "host", "NetworkMode": "bridge", "IpcMode": "private",
            "UTSMode": "host", "CgroupnsMode": "private"
        }))
        .unwrap();
        let mounts: Vec<_> = serde_json::from_value(json!([
            {"Type": "bind", "Source": "/var/run/docker.sock", "Destination": "/d.sock", "RW": true},
            {"Type": "volume", "Source": "/var/lib/docker/volumes/x/_data", "Destination": "/data", "RW": true},
            {"Type": "bind", "Source": "/srv/app", "Destination": "/app", "RW": false}
        ]))
        .unwrap();
        let p = from_docker(&h, &mounts, "docker-default");
        assert!(!p.privileged);
        assert_eq!(p.capabilities_added, ["CAP_SYS_ADMIN"]);
        assert_eq!(p.host_namespaces, [HostNamespace::Pid, HostNamespace::Uts]);
        assert_eq!(p.seccomp, Seccomp::Unconfined);
        assert_eq!(p.apparmor, "unconfined");
        assert_eq!(p.sensitive_mounts.len(), 1);
        assert_eq!(p.sensitive_mounts[0].class, MountClass::RuntimeSocket);
        assert!(!p.sensitive_mounts[0].read_only);
        let h = serde_json::from_value(json!({"Privileged": true})).unwrap();
        let p = from_docker(&h, &[], "");
        assert!(p.privileged && p.has_capability("CAP_SYS_MODULE"));
        assert_eq!(
            (p.seccomp, p.apparmor.as_str()),
            (Seccomp::Unconfined, "unconfined")
        );
        let h = serde_json::from_value(json!({})).unwrap();
        let p = from_docker(&h, &[], "docker-default");
        assert!(p.is_default(), "{:?}", p.findings());
    }
}
