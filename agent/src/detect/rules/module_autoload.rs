//! Module autoload from a container: the kernel asked modprobe for a module on a container
//! task's behalf (request_module), whichever API led there — a socket family or protocol
//! nobody registered, a tty line discipline, an AF_ALG algorithm, a filesystem type. Seen on
//! the kernel's module_request tracepoint, so the effect is judged, not the syscall.

use escapewatch_common::kind::EventKind;
use serde_json::json;

use super::{
    Check, Fixtures, Input, RuleInfo,
    simple::{Finding, who, workload},
};
use crate::{
    detect::Severity,
    model::{Event, Payload},
};

/// What made the kernel ask, by the prefix of the name it built (the `request_module` call
/// sites: net/socket.c, net/socket.c protocols, drivers/tty/tty_ldisc.c, crypto/api.c,
/// fs/filesystems.c, fs/char_dev.c / block, fs/exec.c, net/core/dev_ioctl.c, rtnetlink).
const TRIGGERS: &[(&str, &str)] = &[
    (
        "net-pf-",
        "a socket of an unregistered address family or protocol",
    ),
    ("tty-ldisc-", "a tty line discipline"),
    ("crypto-", "a crypto algorithm (AF_ALG bind)"),
    ("fs-", "a filesystem type (mount -t)"),
    ("char-major-", "a character device"),
    ("block-major-", "a block device"),
    ("binfmt-", "an executable format"),
    ("netdev-", "a network device"),
    ("rtnl-link-", "a network link type"),
    ("rtnl-", "a netlink family"),
    ("nfnetlink-", "a netfilter subsystem"),
    ("nf-", "a netfilter extension"),
];

/// The trigger a requested module name says, or None for another name.
fn trigger(module: &str) -> Option<&'static str> {
    TRIGGERS
        .iter()
        .find(|(prefix, _)| module.starts_with(prefix))
        .map(|&(_, what)| what)
}

/// The socket address family of a `net-pf-N` or `net-pf-N-proto-M[-type-T]` request.
fn socket_family(module: &str) -> Option<u32> {
    let rest = module.strip_prefix("net-pf-")?;
    rest.split('-').next()?.parse().ok()
}

pub struct ModuleAutoload;

impl Check for ModuleAutoload {
    const INFO: &'static RuleInfo = &RuleInfo {
        id: "kernel-module-autoload",
        severity: Severity::High,
        mitre: "T1611",
        title: "Container made the host kernel autoload a module",
        scope: "every request_module() the kernel makes for a container task (module_request tracepoint): socket families and protocols, line disciplines, AF_ALG algorithms, filesystem types, whichever syscall or io_uring request led there (kernels with loadable modules)",
        explanation: "A process in a container made the host kernel ask modprobe for a \
            module (request_module): it created a socket of an address family or protocol no \
            loaded module provides (socket(AF_x) asks for net-pf-N), set a tty line \
            discipline (tty-ldisc-N), bound an AF_ALG socket to an algorithm (crypto-NAME), \
            mounted a filesystem type (fs-NAME), or similar. An unprivileged container cannot \
            load a module itself, but autoload loads one for it, chosen by the container, into \
            the host kernel that every container shares. That is how most kernel escapes begin: \
            rarely used, little audited protocol code becomes reachable and the container then \
            attacks it (CVE-2017-7308 AF_PACKET, CVE-2017-6074 DCCP, CVE-2010-3904 RDS, \
            CVE-2021-43267 TIPC, CVE-2022-0435 TIPC, CVE-2023-32233 nf_tables). The request is \
            the alert, whether or not the module exists. Check the module name and \
            `lsmod` on the host; blacklist the family (`install <module> /bin/false` in \
            modprobe.d) or set kernel.modules_disabled once the host's modules are loaded.",
        inputs: &[Input::Kind(EventKind::ModuleRequest)],
        fixtures: Fixtures::Unavailable(
            "module autoload exists only on kernels with loadable modules: the QEMU guests of \
             `cargo xtask vm-test` (this host's kernel has no CONFIG_MODULES and no \
             module_request tracepoint), and the guests' event logs do not leave the guest",
        ),
        ..RuleInfo::BASE
    };

    fn check(e: &Event) -> Option<Finding> {
        let Payload::ModuleRequest { module, wait } = &e.data else {
            return None;
        };
        let c = workload(e)?;
        let what = trigger(module).unwrap_or("a module");
        let family = socket_family(module);
        let mut details = json!({ "module": module, "trigger": what, "wait": wait });
        if let Some(f) = family {
            details["socket_family"] = json!(f);
        }
        Some(Finding::new(
            format!(
                "{} made the host kernel request module {module:?} ({what}): module autoload puts code the container chose into the shared kernel; check lsmod on the host and blacklist it.",
                who(e, c),
            ),
            details,
        ))
    }

    #[cfg(test)]
    fn examples() -> Vec<super::examples::Example> {
        use super::examples::{Example, by_runtime, in_container, on_host};
        let request = |module: &str| Payload::ModuleRequest {
            module: module.into(),
            wait: true,
        };
        vec![
            Example::alert(
                "socket() of an unregistered family",
                vec![in_container("exploit", request("net-pf-38"))],
                |a| {
                    assert_eq!(a.details["module"], "net-pf-38");
                    assert_eq!(a.details["socket_family"], 38);
                    assert_eq!(
                        a.details["trigger"],
                        "a socket of an unregistered address family or protocol"
                    );
                    assert_eq!(a.details["wait"], true);
                    assert!(a.summary.contains("\"net-pf-38\""), "{}", a.summary);
                },
            ),
            Example::alert(
                "a protocol of a family",
                vec![in_container(
                    "exploit",
                    request("net-pf-10-proto-132-type-1"),
                )],
                |a| assert_eq!(a.details["socket_family"], 10),
            ),
            Example::alert(
                "a line discipline",
                vec![in_container("exploit", request("tty-ldisc-16"))],
                |a| {
                    assert_eq!(a.details["trigger"], "a tty line discipline");
                    assert!(a.details.get("socket_family").is_none(), "{}", a.details);
                },
            ),
            Example::alert(
                "an AF_ALG algorithm",
                vec![in_container("exploit", request("crypto-xts(aes)"))],
                |a| assert_eq!(a.details["trigger"], "a crypto algorithm (AF_ALG bind)"),
            ),
            Example::alert(
                "a name of no known call site",
                vec![in_container("exploit", request("dummy0"))],
                |a| assert_eq!(a.details["trigger"], "a module"),
            ),
            Example::silent(
                "the host's own request, the runtime's, a socket event",
                vec![
                    on_host("ip", request("net-pf-38")),
                    by_runtime(request("fs-overlay")),
                    in_container(
                        "nc",
                        Payload::NetConnect {
                            ret: 0,
                            addr: std::net::IpAddr::from([10, 0, 0, 1]),
                            port: 80,
                            fd: 3,
                            dest: crate::model::NetDest::Other,
                            host_net_ns: false,
                        },
                    ),
                ],
            ),
        ]
    }
}
