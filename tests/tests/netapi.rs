//! Issue K, runtime and orchestrator APIs reached over the network or abstract sockets: a
//! container in the host's network namespace connecting to a host abstract socket (the
//! containerd-shim class, CVE-2020-15257) and to the Docker API port on the host's loopback; a
//! container in its own network namespace trying the node's address; a runtime socket
//! bind-mounted under a name that says nothing, known by its inode. Every listener is made by
//! the test itself on the host. Run through `cargo xtask test` (root; agents never overlap).

use std::{
    fs,
    net::{IpAddr, TcpListener},
    os::{
        linux::net::SocketAddrExt,
        unix::net::{SocketAddr, UnixListener},
    },
    path::Path,
    process::Command,
};

use escapewatch_integration::{
    agent::{Agent, work_dir},
    escape::{WAIT, check_hooks, finish, privileged, scenario, scenario_with_config, sh},
    scenario::check_alert,
};
use serde_json::Value;

/// The alert was served by connect(2)'s exit program (the x86-64 syscall entry; reached by a
/// tail call from the one sys_exit dispatcher).
fn assert_served_by_connect_exit(agent: &Agent, alert: &Value) {
    let hooks = escapewatch_integration::escape::cited_hooks(agent, alert);
    assert!(
        hooks.iter().any(|h| h.ends_with("/sys_exit_connect")),
        "{hooks:?}"
    );
}

/// A host process listens on the abstract name `\0containerd-shim/test-xyz.sock`; a container
/// sharing the host's network namespace connects to it. The name is looked up in the
/// caller's network namespace, which the kernel reports (nsproxy->net_ns): the host's.
#[test]
fn a_container_in_the_host_network_reaches_a_host_abstract_socket() {
    let name = "containerd-shim/test-xyz.sock";
    let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let listener = UnixListener::bind_addr(&addr).expect("abstract listener on the host");
    let (agent, alert, c) = scenario(
        "host-abstract-socket",
        "runtime-shim-abstract-socket",
        |b| b.share_host_namespace("network"),
        |c| sh(c, &format!("primitives abstract-connect {name}")),
    );
    assert_eq!(alert["severity"], "critical", "{alert:#}");
    assert_eq!(alert["details"]["name"], name, "{alert:#}");
    assert_eq!(alert["details"]["containerd_shim"], true, "{alert:#}");
    assert_eq!(alert["process"]["comm"], "primitives", "{alert:#}");
    assert_served_by_connect_exit(&agent, &alert);
    drop(listener);
    drop(c);
    finish(agent, "host-abstract-socket");
}

/// A host listener on 127.0.0.1:2375 (the Docker API's port); a container in the host's
/// network namespace connects to it: its loopback is the host's.
#[test]
fn a_container_in_the_host_network_reaches_the_docker_api_port() {
    let listener = TcpListener::bind("127.0.0.1:2375").expect("listen on 127.0.0.1:2375");
    let (agent, alert, c) = scenario(
        "runtime-api-port",
        "runtime-api-network-access",
        |b| b.share_host_namespace("network"),
        |c| sh(c, "primitives tcp-connect 127.0.0.1 2375"),
    );
    let d = &alert["details"];
    assert_eq!(d["addr"], "127.0.0.1", "{alert:#}");
    assert_eq!(d["port"], 2375, "{alert:#}");
    assert_eq!(d["connected"], true, "{alert:#}");
    assert_eq!(d["ret"], 0, "{alert:#}");
    assert_eq!(d["dest"], "the host's loopback", "{alert:#}");
    assert_eq!(d["host_net_ns"], true, "{alert:#}");
    assert_eq!(alert["process"]["comm"], "primitives", "{alert:#}");
    assert_served_by_connect_exit(&agent, &alert);
    drop(listener);
    drop(c);
    finish(agent, "runtime-api-port");
}

/// The host's first non-loopback IPv4 address (the kernel's local table of PID 1's network).
fn node_address() -> Option<IpAddr> {
    let fib = fs::read_to_string("/proc/1/net/fib_trie").ok()?;
    let mut last = None;
    for line in fib.lines().map(str::trim) {
        if let Some(a) = line.strip_prefix("|-- ") {
            last = a.parse::<IpAddr>().ok();
        } else if line.starts_with("/32 host LOCAL")
            && let Some(a) = last.filter(|a| !a.is_loopback())
        {
            return Some(a);
        }
    }
    None
}

/// Benign look-alikes in a container's own network namespace: a listener on its own loopback
/// at 127.0.0.1:2375 and on its own abstract name `containerd-shim/own.sock`, each connected
/// to. Both connects are seen (their events are waited for) and give no alert. Then the same
/// container tries the node's own address on port 10250 (the kubelet's): not reachable from an
/// unconnected namespace, the attempt is the evidence, and it is alerted as an attempt.
/// A node address to aim at: the host's own, else one the test gives the host on a dummy
/// interface (a bare VM guest has only loopback), removed by the returned guard.
fn node_address_or_dummy() -> Option<(IpAddr, Option<Dummy>)> {
    if let Some(a) = node_address() {
        return Some((a, None));
    }
    let ip = |args: &[&str]| {
        Command::new("ip")
            .args(args)
            .status()
            .is_ok_and(|s| s.success())
    };
    let made = ip(&["link", "add", "ewtest0", "type", "dummy"])
        && ip(&["addr", "add", "192.0.2.77/32", "dev", "ewtest0"])
        && ip(&["link", "set", "ewtest0", "up"]);
    if !made {
        let _ = ip(&["link", "del", "ewtest0"]);
        return None;
    }
    Some(("192.0.2.77".parse().unwrap(), Some(Dummy)))
}

struct Dummy;

impl Drop for Dummy {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", "ewtest0"]).status();
    }
}

#[test]
fn a_containers_own_loopback_and_abstract_socket_are_silent_the_nodes_address_is_not() {
    // Before the agent starts: it reads the node's addresses then (and every 10 s).
    let node = node_address_or_dummy();
    let dir = work_dir("netapi-benign");
    let mut agent = Agent::start(&dir);
    let c = privileged("netapi-benign", |b| b);
    let cgroup = c.cgroup_path().expect("cgroup");
    let out = sh(
        &c,
        "ip link set lo up 2>/dev/null; primitives tcp-own 2375; \
         primitives abstract-own containerd-shim/own.sock",
    );
    let mine = |e: &Value, kind: &str| e["data"]["kind"] == kind && e["container"]["id"] == cgroup;
    let tcp = agent.wait_for_event(WAIT, |e| mine(e, "net_connect"));
    assert_eq!(tcp["data"]["dest"], "loopback", "{tcp:#} {out}");
    assert_eq!(tcp["data"]["port"], 2375, "{tcp:#}");
    assert!(tcp["data"].get("host_net_ns").is_none(), "{tcp:#}");
    let own = agent.wait_for_event(WAIT, |e| {
        mine(e, "unix_connect") && e["data"]["abstract"] == true
    });
    assert_eq!(own["data"]["path"], "containerd-shim/own.sock", "{own:#}");
    assert_eq!(own["data"]["ret"], 0, "{own:#} {out}");
    assert_eq!(agent.alerts(), Vec::<Value>::new(), "{out}");

    let Some((node, _dummy)) = node else {
        eprintln!("no node address and no dummy interface (no `ip`): the attempt half is not run");
        drop(c);
        agent.stop();
        assert_eq!(agent.alerts(), Vec::<Value>::new());
        return;
    };
    let out = sh(&c, &format!("primitives tcp-connect {node} 10250"));
    let alert = agent.wait_for_alert(WAIT, |a| a["rule"] == "runtime-api-network-access");
    check_alert(&alert, "runtime-api-network-access", &cgroup, "unknown");
    let d = &alert["details"];
    assert_eq!(d["addr"], node.to_string(), "{alert:#} {out}");
    assert_eq!(d["port"], 10250, "{alert:#}");
    assert_eq!(d["dest"], "the node's address", "{alert:#}");
    assert_eq!(d["connected"], false, "{alert:#}");
    assert!(d["ret"].as_i64().unwrap() < 0, "{alert:#}");
    assert_eq!(d["host_net_ns"], false, "{alert:#}");
    check_hooks(&agent, &alert);
    drop(c);
    agent.stop();
    assert_eq!(agent.alerts().len(), 1, "{:#?}", agent.alerts());
}

/// A runtime API socket at a host path no rule names (`/run/ewtest/x.sock`, given to the agent
/// as a runtime socket in its config), bind-mounted into the container as `/tmp/notdocker`:
/// neither the name used nor the name bound says docker. The kernel reports the inode of the
/// socket the connect reached (the peer's bound path, unix_sk(peer)->path.dentry); the agent
/// stat'ed the host socket at start: the same device and inode.
#[test]
fn a_runtime_socket_under_another_name_is_known_by_its_inode() {
    let dir = Path::new("/run/ewtest");
    fs::create_dir_all(dir).unwrap();
    let sock = dir.join("x.sock");
    let _ = fs::remove_file(&sock);
    let listener = UnixListener::bind(&sock).expect("listen");
    let (agent, alert, c) = scenario_with_config(
        "runtime-socket-inode",
        "runtime-socket-access",
        "[runtime_api]\nsockets = [\"/run/ewtest/x.sock\"]\n",
        |b| b.bind_mount(&sock, "/tmp/notdocker", true),
        |c| sh(c, "primitives unix-connect /tmp/notdocker"),
    );
    assert_eq!(alert["details"]["socket"], "/tmp/notdocker", "{alert:#}");
    assert_eq!(
        alert["details"]["host_socket"], "/run/ewtest/x.sock",
        "{alert:#}"
    );
    assert!(alert["details"].get("bound_as").is_none(), "{alert:#}");
    assert_eq!(alert["process"]["comm"], "primitives", "{alert:#}");
    assert_served_by_connect_exit(&agent, &alert);
    drop(listener);
    let _ = fs::remove_file(&sock);
    drop(c);
    finish(agent, "runtime-socket-inode");
}
