//! The detector defends itself: a squatted metrics port, a detached program and an agent
//! killed and restarted are each loud, and none of them switches detection off.

use std::{
    net::TcpListener,
    process::Command,
    time::{Duration, Instant},
};

use escapewatch_integration::{
    agent::{Agent, work_dir},
    escape::nsenter_escape,
};

const WAIT: Duration = Duration::from_secs(20);
/// The agent's metrics bind retry interval (`metrics::BIND_RETRY`), plus slack.
const BIND_RETRY: Duration = Duration::from_secs(13);

#[test]
fn a_taken_metrics_port_does_not_stop_detection() {
    let dir = work_dir("metrics-port-taken");
    let squatter = TcpListener::bind("127.0.0.1:0").expect("bind a port first");
    let addr = squatter.local_addr().unwrap().to_string();
    // Before the fix the agent exited here ("cannot listen for metrics on …") and never sent
    // READY=1. Now it starts, and systemd's READY=1 is sent: detection is up.
    let mut agent = Agent::start_on(&dir, Some(""), &addr);
    let down = agent.wait_for_stderr("metrics are not served", WAIT);
    assert!(down.contains("ERROR"), "logged as an error: {down}");
    assert!(down.contains(&addr), "names the address: {down}");

    let mut host = Command::new("sleep").arg("300").spawn().expect("sleep");
    let (c, pid) = nsenter_escape(host.id());
    let alert = agent.wait_for_alert(WAIT, |a| a["process"]["pid"] == pid);
    assert_eq!(alert["rule"], "namespace-join-host");
    drop(c);
    let _ = host.kill();
    let _ = host.wait();

    // The port is freed: /metrics comes up within the retry interval, and shows the outage.
    let freed = Instant::now();
    drop(squatter);
    agent.wait_for_stderr("metrics listening on http://", BIND_RETRY);
    assert!(freed.elapsed() < BIND_RETRY);
    assert_eq!(agent.metrics_addr(), addr);
    assert_eq!(agent.metric_sum("escapewatch_metrics_listener_up", ""), 1.0);
    assert!(agent.metric_sum("escapewatch_metrics_bind_failures_total", "") >= 1.0);
    assert_eq!(
        agent.metric_sum("escapewatch_alerts_total", "rule=\"namespace-join-host\""),
        1.0
    );
    assert_eq!(agent.http_get("/readyz").trim(), "ready");
    agent.stop();
}
