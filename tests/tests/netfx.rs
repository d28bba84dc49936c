//! Issue K's network family by its effect: a container's TCP socket starting an active open to
//! a watched runtime/orchestrator API port, whichever entry made it. io_uring's
//! IORING_OP_CONNECT and TCP Fast Open (sendto with MSG_FASTOPEN) make no connect(2); the
//! kernel's `inet_sock_set_state` tracepoint (TCP_CLOSE -> TCP_SYN_SENT) sees them. A plain
//! connect(2) is still one alert. The benign look-alike: the same opens to the container's own
//! loopback. Every listener is made by the test itself.

use std::{fs, net::TcpListener};

use escapewatch_integration::{
    agent::{Agent, read_jsonl, work_dir},
    escape::{WAIT, cited_hooks, finish, privileged, scenario_by_another_entry, sh},
    scenario::check_alert,
};
use serde_json::Value;

const RULE: &str = "runtime-api-network-access";
/// `fd` of an open seen by its effect (no descriptor).
const FD_NONE: u64 = u32::MAX as u64;
const FASTOPEN: &str = "/proc/sys/net/ipv4/tcp_fastopen";

/// The client bit of net.ipv4.tcp_fastopen set (without it sendto(MSG_FASTOPEN) fails with
/// EOPNOTSUPP before any connect), restored on drop.
struct FastOpenClient(Option<String>);

impl FastOpenClient {
    fn enable() -> FastOpenClient {
        let old = fs::read_to_string(FASTOPEN).expect("tcp_fastopen");
        let v: u32 = old.trim().parse().expect("tcp_fastopen value");
        if v & 1 != 0 {
            return FastOpenClient(None);
        }
        fs::write(FASTOPEN, (v | 1).to_string()).expect("enable the Fast Open client");
        FastOpenClient(Some(old))
    }
}

impl Drop for FastOpenClient {
    fn drop(&mut self) {
        if let Some(old) = &self.0 {
            let _ = fs::write(FASTOPEN, old.trim());
        }
    }
}

/// The alert of an active open seen by its effect, field by field, from container `cgroup`
/// in the host's network namespace to the host's loopback at `port`.
fn assert_active_open(agent: &Agent, alert: &Value, cgroup: &str, port: u16) {
    check_alert(alert, RULE, cgroup, "unknown");
    let d = &alert["details"];
    assert_eq!(d["addr"], "127.0.0.1", "{alert:#}");
    assert_eq!(d["port"], port, "{alert:#}");
    assert_eq!(d["dest"], "the host's loopback", "{alert:#}");
    assert_eq!(d["host_net_ns"], true, "{alert:#}");
    assert_eq!(d["entry"], "active open", "{alert:#}");
    assert_eq!(d["ret"], -115, "{alert:#}");
    assert_eq!(d["connected"], false, "{alert:#}");
    assert_eq!(alert["process"]["comm"], "primitives", "{alert:#}");
    let hooks = cited_hooks(agent, alert);
    assert_eq!(hooks, vec!["tp_btf/inet_sock_set_state"], "{alert:#}");
}

/// An IORING_OP_CONNECT request of a TCP socket to the Docker API port on the host's
/// loopback, from a container in the host's network namespace: no connect(2) is made.
#[test]
fn netfx_an_io_uring_connect_to_the_docker_port_is_alerted() {
    let listener = TcpListener::bind("127.0.0.1:2375").expect("listen on 127.0.0.1:2375");
    let mut out = String::new();
    let (agent, alert, c) = scenario_by_another_entry(
        "netfx-iouring",
        RULE,
        |b| b.share_host_namespace("network"),
        |c| {
            out = sh(c, "primitives tcp-uring-connect 127.0.0.1 2375");
            out.clone()
        },
    );
    assert!(out.contains("connected (0)"), "{out}");
    assert_active_open(&agent, &alert, &c.cgroup_path().expect("cgroup"), 2375);
    drop(listener);
    drop(c);
    finish(agent, "netfx-iouring");
}

/// TCP Fast Open to the kubelet's port on the host's loopback: sendto(MSG_FASTOPEN) on an
/// unconnected socket connects it without connect(2).
#[test]
fn netfx_a_fast_open_to_the_kubelet_port_is_alerted() {
    let _tfo = FastOpenClient::enable();
    let listener = TcpListener::bind("127.0.0.1:10250").expect("listen on 127.0.0.1:10250");
    let mut out = String::new();
    let (agent, alert, c) = scenario_by_another_entry(
        "netfx-fastopen",
        RULE,
        |b| b.share_host_namespace("network"),
        |c| {
            out = sh(c, "primitives tcp-fastopen 127.0.0.1 10250");
            out.clone()
        },
    );
    assert!(
        out.contains("fast open 127.0.0.1:10250: connected"),
        "{out}"
    );
    assert_active_open(&agent, &alert, &c.cgroup_path().expect("cgroup"), 10250);
    drop(listener);
    drop(c);
    finish(agent, "netfx-fastopen");
}

/// A plain connect(2) moves the socket to TCP_SYN_SENT too: it is still one event and one
/// alert, connect(2)'s (with its result and descriptor). The barrier is a later io_uring open
/// to another watched port, reported by the same program and ring a second report of the
/// connect would have taken.
#[test]
fn netfx_a_plain_connect_gives_exactly_one_alert() {
    let l1 = TcpListener::bind("127.0.0.1:2376").expect("listen on 127.0.0.1:2376");
    let l2 = TcpListener::bind("127.0.0.1:10255").expect("listen on 127.0.0.1:10255");
    let mut agent = Agent::start(&work_dir("netfx-one-alert"));
    let c = privileged("netfx-one-alert", |b| b.share_host_namespace("network"));
    let cgroup = c.cgroup_path().expect("cgroup");
    let out = sh(&c, "primitives tcp-connect 127.0.0.1 2376");
    let alert = agent.wait_for_alert(WAIT, |a| a["rule"] == RULE && a["details"]["port"] == 2376);
    check_alert(&alert, RULE, &cgroup, "unknown");
    let d = &alert["details"];
    assert_eq!(d["addr"], "127.0.0.1", "{alert:#} {out}");
    assert_eq!(d["entry"], "connect", "{alert:#}");
    assert_eq!(d["ret"], 0, "{alert:#}");
    assert_eq!(d["connected"], true, "{alert:#}");
    let hooks = cited_hooks(&agent, &alert);
    assert!(
        hooks.iter().all(|h| h.ends_with("/sys_exit_connect")),
        "{hooks:?}"
    );
    let out = sh(&c, "primitives tcp-uring-connect 127.0.0.1 10255");
    let barrier =
        agent.wait_for_alert(WAIT, |a| a["rule"] == RULE && a["details"]["port"] == 10255);
    assert_active_open(&agent, &barrier, &cgroup, 10255);
    drop(c);
    agent.stop();
    let alerts = agent.alerts();
    assert_eq!(alerts.len(), 2, "{alerts:#?} {out}");
    let events: Vec<Value> = read_jsonl(&agent.event_log)
        .into_iter()
        .filter(|e| {
            e["data"]["kind"] == "net_connect"
                && e["container"]["id"] == cgroup
                && e["data"]["port"] == 2376
        })
        .collect();
    assert_eq!(events.len(), 1, "{events:#?}");
    drop((l1, l2));
}

/// Benign look-alikes in a container's own network namespace: a listener on its own
/// 127.0.0.1:2375 and :2376, opened by io_uring and by Fast Open. Both opens are seen (their
/// events, without a descriptor, are waited for) and give no alert: that loopback is the
/// container's. Then a container in the host's network opens the host's 10248 by io_uring,
/// through the same program: that alert is the barrier, and the only one.
#[test]
fn netfx_io_uring_and_fast_open_to_the_containers_own_loopback_are_silent() {
    let _tfo = FastOpenClient::enable();
    let mut agent = Agent::start(&work_dir("netfx-benign"));
    let c = privileged("netfx-benign", |b| b);
    let cgroup = c.cgroup_path().expect("cgroup");
    let out = sh(
        &c,
        "primitives tcp-own-via uring 2375; primitives tcp-own-via fastopen 2376",
    );
    for port in [2375, 2376] {
        let e = agent.wait_for_event(WAIT, |e| {
            e["data"]["kind"] == "net_connect"
                && e["container"]["id"] == cgroup
                && e["data"]["port"] == port
        });
        assert_eq!(e["data"]["dest"], "loopback", "{e:#} {out}");
        assert_eq!(e["data"]["addr"], "127.0.0.1", "{e:#}");
        assert_eq!(e["data"]["fd"], FD_NONE, "{e:#}");
        assert!(e["data"].get("host_net_ns").is_none(), "{e:#}");
        assert_eq!(e["hook"], "tp_btf/inet_sock_set_state", "{e:#}");
    }
    let listener = TcpListener::bind("127.0.0.1:10248").expect("listen on 127.0.0.1:10248");
    let host = privileged("netfx-benign-barrier", |b| {
        b.share_host_namespace("network")
    });
    let host_cgroup = host.cgroup_path().expect("cgroup");
    let out2 = sh(&host, "primitives tcp-uring-connect 127.0.0.1 10248");
    let barrier = agent.wait_for_alert(WAIT, |a| a["rule"] == RULE);
    assert_eq!(
        barrier["container"]["id"], host_cgroup,
        "{barrier:#} {out} {out2}"
    );
    assert_active_open(&agent, &barrier, &host_cgroup, 10248);
    drop((c, host));
    agent.stop();
    assert_eq!(agent.alerts().len(), 1, "{:#?}", agent.alerts());
    drop(listener);
}
