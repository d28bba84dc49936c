//! Runtime and orchestrator APIs reached over the network or through abstract Unix sockets
//! (issue K): a container connecting to the Docker/kubelet API ports of its node, and to an
//! abstract socket of the host's network namespace (containerd-shim, CVE-2020-15257).

use escapewatch_common::{event::FD_NONE, kind::EventKind};
use serde_json::json;

use super::{
    Check, Fixtures, Input, RuleInfo,
    simple::{Finding, who, workload},
};
use crate::{
    detect::Severity,
    model::{Event, NetDest, Payload},
};

/// -EINPROGRESS: a non-blocking connect under way.
const EINPROGRESS: i64 = -115;

pub struct RuntimeApiNetwork;

impl Check for RuntimeApiNetwork {
    const INFO: &'static RuleInfo = &RuleInfo {
        id: "runtime-api-network-access",
        severity: Severity::High,
        mitre: "T1610",
        title: "Container connected to a runtime or orchestrator API port of its node",
        scope: "IPv4/IPv6 connect (connect(2), 32-bit socketcall; any other active open, io_uring's IORING_OP_CONNECT and TCP Fast Open included, by the socket leaving TCP_CLOSE for TCP_SYN_SENT) to a watched API port (Docker 2375/2376, kubelet 10250/10255/10248; `runtime_api.ports`) on the node's own addresses, or on loopback from the host's network namespace; attempts and successes",
        explanation: "A process in a container connected, or tried to connect, to a port where \
            the node serves a container runtime or orchestrator API (Docker's TCP API, the \
            kubelet), at one of the node's own addresses or, sharing the host's network \
            namespace, at its loopback. An unauthenticated Docker API or kubelet lets the \
            caller start a privileged container or run commands in any pod: root on the node. \
            Check whether the API is exposed without authentication, what the process sent, \
            and why the container shares the host's network (ret 0: connected; -115: a \
            connect under way, which is what an active open made without connect(2), by \
            io_uring or TCP Fast Open, is reported as; other negative values: refused \
            attempts).",
        inputs: &[Input::Kind(EventKind::NetConnect)],
        fixtures: Fixtures::Recorded(&["runtime-api-port"]),
        ..RuleInfo::BASE
    };

    fn check(e: &Event) -> Option<Finding> {
        let Payload::NetConnect {
            ret,
            addr,
            port,
            fd,
            dest,
            host_net_ns,
        } = &e.data
        else {
            return None;
        };
        let c = workload(e)?;
        // A loopback in the container's own network namespace is its own.
        let reached = match dest {
            NetDest::Node => "the node's address",
            NetDest::Loopback if *host_net_ns => "the host's loopback",
            _ => return None,
        };
        // connect(2) names its descriptor; an active open seen by its effect has none.
        let entry = if *fd == FD_NONE {
            "active open"
        } else {
            "connect"
        };
        let outcome = match *ret {
            0 => "connected",
            EINPROGRESS => "attempted (in progress)",
            _ => "attempted",
        };
        Some(Finding::new(
            format!(
                "{} {outcome} to {addr}:{port}, {reached}: a runtime or orchestrator API port; find out what it asked.",
                who(e, c)
            ),
            json!({
                "addr": addr.to_string(),
                "port": port,
                "dest": reached,
                "connected": *ret == 0,
                "ret": ret,
                "host_net_ns": host_net_ns,
                "entry": entry,
            }),
        ))
    }

    #[cfg(test)]
    fn examples() -> Vec<super::examples::Example> {
        use super::examples::{Example, in_container, on_host};
        let connect = |ret, addr: &str, port, dest, host_net_ns| Payload::NetConnect {
            ret,
            addr: addr.parse().unwrap(),
            port,
            fd: 3,
            dest,
            host_net_ns,
        };
        vec![
            Example::alert(
                "the Docker API on the host's loopback, from a container in the host's network",
                vec![in_container(
                    "curl",
                    connect(0, "127.0.0.1", 2375, NetDest::Loopback, true),
                )],
                |a| {
                    assert_eq!(a.details["port"], 2375);
                    assert_eq!(a.details["connected"], true);
                    assert_eq!(a.details["entry"], "connect");
                },
            ),
            Example::alert(
                "the kubelet at the node's address, a non-blocking attempt",
                vec![in_container(
                    "curl",
                    connect(-115, "10.0.2.15", 10250, NetDest::Node, false),
                )],
                |a| {
                    assert_eq!(a.details["connected"], false);
                    assert_eq!(a.details["ret"], -115);
                },
            ),
            Example::alert(
                "the Docker API at the node's address, opened without connect(2) (io_uring, TCP Fast Open)",
                vec![in_container(
                    "curl",
                    Payload::NetConnect {
                        ret: -115,
                        addr: "10.0.2.15".parse().unwrap(),
                        port: 2376,
                        fd: FD_NONE,
                        dest: NetDest::Node,
                        host_net_ns: false,
                    },
                )],
                |a| {
                    assert_eq!(a.details["entry"], "active open");
                    assert_eq!(a.details["port"], 2376);
                },
            ),
            Example::silent(
                "the container's own loopback, another host's 2375, and the host itself",
                vec![
                    in_container(
                        "app",
                        connect(0, "127.0.0.1", 2375, NetDest::Loopback, false),
                    ),
                    in_container("app", connect(0, "10.9.9.9", 2375, NetDest::Other, false)),
                    on_host(
                        "docker",
                        connect(0, "127.0.0.1", 2375, NetDest::Loopback, true),
                    ),
                ],
            ),
        ]
    }
}

pub struct HostAbstractSocket;

impl Check for HostAbstractSocket {
    const INFO: &'static RuleInfo = &RuleInfo {
        id: "runtime-shim-abstract-socket",
        severity: Severity::Critical,
        mitre: "T1611",
        title: "Container connected to an abstract Unix socket of the host's network namespace",
        scope: "connect(2) (and 32-bit socketcall) of a container process to an abstract Unix name while in the host's network namespace (containerd-shim's API, CVE-2020-15257), any name",
        explanation: "A process in a container that shares the host's network namespace \
            connected to an abstract Unix socket (a name, not a file: no mount or permission \
            guards it). Abstract names live in the network namespace, so this one belongs to \
            the host: containerd-shim's API before 1.3.9/1.4.3 (CVE-2020-15257) lets its \
            caller start a container as root on the host, and other host daemons listen the \
            same way. Check the name, which host process listens on it (`ss -xlp`), and why \
            the container runs with the host's network.",
        inputs: &[Input::Kind(EventKind::UnixConnect)],
        fixtures: Fixtures::Recorded(&["host-abstract-socket"]),
        ..RuleInfo::BASE
    };

    fn check(e: &Event) -> Option<Finding> {
        let Payload::UnixConnect {
            ret: 0,
            path,
            abstract_name: true,
            host_net_ns: true,
            ..
        } = &e.data
        else {
            return None;
        };
        let c = workload(e)?;
        let shim = path.contains("containerd-shim");
        Some(Finding::new(
            format!(
                "{} connected to the host's abstract socket @{path}{}: it reaches a host daemon's API from the container.",
                who(e, c),
                if shim { " (containerd-shim)" } else { "" }
            ),
            json!({ "name": path, "containerd_shim": shim }),
        ))
    }

    #[cfg(test)]
    fn examples() -> Vec<super::examples::Example> {
        use super::examples::{Example, in_container, on_host};
        let connect = |ret, name: &str, host_net_ns| Payload::UnixConnect {
            ret,
            path: name.into(),
            peer: None,
            abstract_name: true,
            host_net_ns,
            runtime_socket: None,
        };
        vec![
            Example::alert(
                "containerd-shim's abstract socket from a container in the host's network",
                vec![in_container(
                    "ctr",
                    connect(0, "/containerd-shim/k8s.io/abc/shim.sock", true),
                )],
                |a| {
                    assert_eq!(a.details["name"], "/containerd-shim/k8s.io/abc/shim.sock");
                    assert_eq!(a.details["containerd_shim"], true);
                },
            ),
            Example::alert(
                "any other host abstract name: nothing is exempt by name",
                vec![in_container("nc", connect(0, "innocent", true))],
                |a| assert_eq!(a.details["containerd_shim"], false),
            ),
            Example::silent(
                "the container's own abstract socket, a refused connect, and the host",
                vec![
                    in_container("app", connect(0, "/containerd-shim/x.sock", false)),
                    in_container("app", connect(-111, "/containerd-shim/x.sock", true)),
                    on_host("containerd", connect(0, "/containerd-shim/x.sock", true)),
                ],
            ),
        ]
    }
}
