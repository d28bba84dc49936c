//! Issue K, module autoload from real runc containers: an unprivileged container's socket() of
//! an address family no module registered makes the host kernel call request_module
//! ("net-pf-N"), seen on the module_request tracepoint. The family numbers are ones no module
//! exists for (13 was AF_NETBEUI, 14 AF_SECURITY: nothing implements them), so nothing is
//! ever loaded; the guests' busybox has no modprobe anyway. Benign look-alikes: the host
//! asking the same, ordinary AF_INET/AF_UNIX sockets in a container. On a kernel without
//! loadable modules (this host's 6.18), there is nothing to see: the tests assert that the
//! agent says so, with the reason, and starts ready. Run through `cargo xtask test` (root).

use std::path::Path;

use escapewatch_integration::{
    agent::{Agent, work_dir},
    escape::{WAIT, check_hooks, finish, sh},
    runc::{Bundle, Container, unique_id},
    scenario::{check_alert, with_primitives},
};
use serde_json::Value;

const RULE: &str = "kernel-module-autoload";
/// What the container asks for (a family no module provides).
const FAMILY: u32 = 13;
/// What the host asks for in the benign half (another such family).
const HOST_FAMILY: i32 = 14;
/// SOCK_DGRAM.
const DGRAM: u32 = 2;

/// Whether this kernel has loadable modules (then it has the module_request tracepoint).
fn has_modules() -> bool {
    Path::new("/proc/modules").exists()
}

/// A default (unprivileged) busybox container with the primitives binary.
fn unprivileged(name: &str) -> Container {
    with_primitives(Bundle::busybox(name).expect("bundle"))
        .run_detached(&unique_id("ewt"))
        .expect("run container")
}

/// Without CONFIG_MODULES: the agent reports the program not attached because the kernel has
/// no module support (the reason in its start-up hook report), is ready all the same, and the
/// rule's program is not counted as a failure.
fn assert_reported_absent(agent: &mut Agent) {
    let line = agent.wait_for_stderr("\"module_request\"", WAIT);
    assert!(line.contains("not attached"), "{line}");
    assert!(
        line.contains("no loadable module support") && line.contains("CONFIG_MODULES off"),
        "the reason is missing: {line}"
    );
    assert!(!agent.attached("module_request"), "{line}");
    assert_eq!(agent.http_get("/readyz").trim(), "ready");
    let failed = agent.metric_sum("escapewatch_programs_failed", "raw_tracepoint");
    assert!(failed == 0.0, "raw tracepoint programs failed: {failed}");
}

/// The container's `primitives socket FAMILY DGRAM` alert, checked field by field.
fn wait_for_request(agent: &Agent, cgroup: &str) -> Value {
    let module = format!("net-pf-{FAMILY}");
    let alert = agent.wait_for_alert(WAIT, |a| {
        a["rule"] == RULE && a["container"]["id"] == cgroup && a["details"]["module"] == module
    });
    check_alert(&alert, RULE, cgroup, "unknown");
    check_hooks(agent, &alert);
    assert_eq!(alert["process"]["comm"], "primitives", "{alert:#}");
    assert_eq!(alert["details"]["socket_family"], FAMILY, "{alert:#}");
    assert_eq!(
        alert["details"]["trigger"], "a socket of an unregistered address family or protocol",
        "{alert:#}"
    );
    assert_eq!(alert["details"]["wait"], true, "{alert:#}");
    assert!(
        alert["summary"]
            .as_str()
            .unwrap()
            .contains(&format!("\"{module}\"")),
        "{alert:#}"
    );
    let hooks = escapewatch_integration::escape::cited_hooks(agent, &alert);
    assert!(
        hooks.iter().any(|h| h == "raw_tracepoint/module_request"),
        "{hooks:?}"
    );
    alert
}

/// An unprivileged container creates a socket of a family no module registered: the kernel
/// asks modprobe for net-pf-13 on its behalf, and the agent alerts with the module name and
/// the container.
#[test]
fn modreq_socket_of_an_unregistered_family_is_alerted() {
    let dir = work_dir("modreq-socket");
    let mut agent = Agent::start(&dir);
    if !has_modules() {
        assert_reported_absent(&mut agent);
        finish(agent, "modreq-socket");
        return;
    }
    let c = unprivileged("modreq-socket");
    let cgroup = c.cgroup_path().unwrap();
    let out = sh(&c, &format!("primitives socket {FAMILY} {DGRAM}"));
    eprintln!("modreq-socket: {out}");
    let alert = wait_for_request(&agent, &cgroup);
    let event_id = alert["event_ids"][0].as_u64().unwrap();
    let event = agent.wait_for_event(WAIT, |e| e["id"] == event_id);
    assert_eq!(event["data"]["kind"], "module_request", "{event:#}");
    assert_eq!(
        event["data"]["module"],
        format!("net-pf-{FAMILY}"),
        "{event:#}"
    );
    drop(c);
    finish(agent, "modreq-socket");
}

/// The host itself asking for a module (its own socket() of an unregistered family), and a
/// container's ordinary AF_INET and AF_UNIX sockets, give no alert; the container's later
/// unregistered family is the barrier that proves the agent was watching.
#[test]
fn modreq_host_requests_and_ordinary_sockets_stay_silent() {
    let dir = work_dir("modreq-benign");
    let mut agent = Agent::start(&dir);
    if !has_modules() {
        assert_reported_absent(&mut agent);
        finish(agent, "modreq-benign");
        return;
    }
    // SAFETY: a plain socket() of a family nothing implements: EAFNOSUPPORT after the request.
    let fd = unsafe { libc::socket(HOST_FAMILY, libc::SOCK_DGRAM, 0) };
    assert!(fd < 0, "family {HOST_FAMILY} has an implementation here");
    let c = unprivileged("modreq-benign");
    let cgroup = c.cgroup_path().unwrap();
    let out = sh(
        &c,
        &format!(
            "primitives socket {} {}; primitives socket {} {}; primitives socket {} {}",
            libc::AF_INET,
            libc::SOCK_STREAM,
            libc::AF_INET,
            libc::SOCK_DGRAM,
            libc::AF_UNIX,
            libc::SOCK_STREAM
        ),
    );
    eprintln!("modreq-benign: {out}");
    assert!(out.contains("fd "), "the ordinary sockets failed: {out}");
    sh(&c, &format!("primitives socket {FAMILY} {DGRAM}"));
    wait_for_request(&agent, &cgroup);
    let autoloads: Vec<Value> = agent
        .alerts()
        .into_iter()
        .filter(|a| a["rule"] == RULE)
        .collect();
    assert_eq!(autoloads.len(), 1, "{autoloads:#?}");
    assert!(
        !agent
            .alerts()
            .iter()
            .any(|a| a["details"]["module"] == format!("net-pf-{HOST_FAMILY}")),
        "the host's own request alerted"
    );
    drop(c);
    finish(agent, "modreq-benign");
}
