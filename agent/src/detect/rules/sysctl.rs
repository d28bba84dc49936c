//! Writes to host kernel settings: kernel.core_pattern, and every other /proc/sys write.

use escapewatch_common::kind::EventKind;
use serde_json::json;

use super::{
    Check, Fixtures, Input, RuleInfo, files,
    simple::{Finding, who, workload},
};
use crate::{
    detect::Severity,
    model::{Container, Event, Payload},
};

struct Write<'a> {
    name: &'a str,
    value: &'a str,
    namespaced: bool,
    truncated: bool,
}

fn sysctl(e: &Event) -> Option<Write<'_>> {
    let Payload::SysctlWrite {
        name,
        value,
        namespaced,
        truncated,
    } = &e.data
    else {
        return None;
    };
    Some(Write {
        name,
        value,
        namespaced: *namespaced,
        truncated: *truncated,
    })
}

const CORE_PATTERN: &str = "kernel.core_pattern";

/// Who in a container made a write of a host-global setting: its workload, or the runtime
/// itself setting the container up (`true`). The runtime writes only the namespaced sysctls
/// the container's config asks for (net.*, kernel.shm*, …): a host-global one written by it is
/// a write a symlink or mount redirected (CVE-2025-52881), and is reported like the
/// workload's.
fn writer(e: &Event) -> Option<(&Container, bool)> {
    match workload(e) {
        Some(c) => Some((c, false)),
        None if e.process.runtime_helper => e.container.as_ref().map(|c| (c, true)),
        None => None,
    }
}

/// The alert's details; `by_runtime` only in the runtime's own writes.
fn details(w: &Write<'_>, runtime: bool) -> serde_json::Value {
    let mut d = json!({ "sysctl": w.name, "value": w.value, "truncated": w.truncated });
    if runtime {
        d["by_runtime"] = true.into();
    }
    d
}

/// "nsenter (pid 42) in docker container …", or the runtime's own process setting it up.
fn writer_name(e: &Event, c: &Container, runtime: bool) -> String {
    if runtime {
        format!(
            "the container runtime ({}, pid {}) setting up {} container {}",
            e.process.comm,
            e.process.pid,
            c.runtime.as_str(),
            super::simple::short(&c.id)
        )
    } else {
        who(e, c)
    }
}

pub struct CorePattern;

impl Check for CorePattern {
    const INFO: &'static RuleInfo = &RuleInfo {
        id: "core-pattern-write",
        severity: Severity::Critical,
        mitre: "T1611",
        title: "Container wrote kernel.core_pattern",
        scope: "kernel.core_pattern written from a container, or by the runtime setting one up (a redirected write); the value is in the alert",
        explanation: "kernel.core_pattern is global: when it starts with `|`, the host kernel \
            runs that program as root for every crashing process on the machine. A container \
            that writes it (with a writable /proc/sys) and then crashes a process of its own \
            escapes — the program path usually points into the container through \
            /proc/%P/root. Check the value (details), restore the host's, and look for a \
            usermode-helper alert that follows. The runtime itself never writes it: a write \
            by runc or crun while setting the container up is one a symlink or mount \
            redirected (CVE-2025-52881), and is reported as well.",
        inputs: &[Input::Kind(EventKind::SysctlWrite)],
        fixtures: Fixtures::Recorded(&["core-pattern"]),
        ..RuleInfo::BASE
    };

    fn check(e: &Event) -> Option<Finding> {
        let w = sysctl(e)?;
        if w.name != CORE_PATTERN {
            return None;
        }
        let (c, runtime) = writer(e)?;
        Some(Finding::new(
            format!(
                "{} set kernel.core_pattern to {:?}{}: the host kernel will run it as root on the next crash; restore the host's value now.",
                writer_name(e, c, runtime),
                w.value,
                if runtime {
                    " (a redirected write: runtimes never write it)"
                } else {
                    ""
                },
            ),
            details(&w, runtime),
        ))
    }

    #[cfg(test)]
    fn examples() -> Vec<super::examples::Example> {
        use super::examples::{Example, by_runtime, in_container, on_host};
        let pattern = "|/proc/%P/root/bin/busybox touch /tmp/escaped";
        vec![
            Example::alert(
                "a pipe to a container binary",
                vec![in_container("sh", write(CORE_PATTERN, pattern, false))],
                |a| {
                    assert_eq!(a.details["sysctl"], CORE_PATTERN);
                    assert_eq!(
                        a.details["value"],
                        "|/proc/%P/root/bin/busybox touch /tmp/escaped"
                    );
                    assert_eq!(a.details["truncated"], false);
                },
            ),
            Example::alert(
                "runc itself, its write redirected (CVE-2025-52881)",
                vec![by_runtime(write(CORE_PATTERN, "|/tmp/x", false))],
                |a| {
                    assert_eq!(a.details["by_runtime"], true);
                    assert_eq!(a.details["value"], "|/tmp/x");
                    assert!(
                        a.summary
                            .starts_with("the container runtime (runc:[2:INIT], pid 4242)"),
                        "{}",
                        a.summary
                    );
                },
            ),
            Example::silent(
                "systemd-coredump set by the host, and another sysctl",
                vec![
                    on_host(
                        "sysctl",
                        write(CORE_PATTERN, "|/lib/systemd/systemd-coredump", false),
                    ),
                    in_container("sh", write("kernel.core_uses_pid", "1", false)),
                ],
            ),
        ]
    }
}

pub struct SysctlWrite;

impl Check for SysctlWrite {
    const INFO: &'static RuleInfo = &RuleInfo {
        id: "sysctl-write-from-container",
        severity: Severity::High,
        mitre: "T1611",
        title: "Container changed a host kernel setting",
        scope: "any other host sysctl, binfmt_misc or uevent_helper write from a container, or a host-global sysctl by the runtime setting one up (its own namespaced sysctls excepted)",
        explanation: "A process in a container wrote a kernel setting that is not namespaced: \
            /proc/sys (kernel.modprobe and kernel.hotplug name programs the kernel runs as root, \
            vm.* and kernel.* change the whole host), the binfmt_misc registry, or \
            /sys/kernel/uevent_helper. Settings of namespaces the container owns (its net.*, its \
            hostname) are not reported. The runtime (runc, crun) setting a container up writes \
            only the namespaced sysctls its config asks for: a host-global one written by it \
            (`by_runtime`) was redirected by a symlink or mount (CVE-2025-52881) or landed in \
            a namespace of the host. Check the value written (details) and restore the \
            host's.",
        inputs: &[
            Input::Kind(EventKind::SysctlWrite),
            Input::Kind(EventKind::FileOpen),
        ],
        fixtures: Fixtures::Recorded(&["sysctl", "runtime-sysctl"]),
        ..RuleInfo::BASE
    };

    fn check(e: &Event) -> Option<Finding> {
        let Some(w) = sysctl(e) else {
            return files::kernel_setting_file(e);
        };
        if w.name == CORE_PATTERN || w.namespaced {
            return None;
        }
        let (c, runtime) = writer(e)?;
        Some(Finding::new(
            format!(
                "{} set host kernel setting {} to {:?}{}; check it and restore the host's value.",
                writer_name(e, c, runtime),
                w.name,
                w.value,
                if runtime {
                    " (the runtime writes only the container's namespaced sysctls: a redirected or host-namespace write)"
                } else {
                    ""
                },
            ),
            details(&w, runtime),
        ))
    }

    #[cfg(test)]
    fn examples() -> Vec<super::examples::Example> {
        use super::examples::{Example, by_runtime, in_container, on_host, open};
        use crate::model::OpenClass;
        vec![
            Example::alert(
                "vm.swappiness",
                vec![in_container("sh", write("vm.swappiness", "10", false))],
                |a| {
                    assert_eq!(a.details["sysctl"], "vm.swappiness");
                    assert_eq!(a.details["value"], "10");
                    assert!(a.details["by_runtime"].is_null());
                },
            ),
            Example::alert(
                "runc writing a config sysctl that landed in the host's network namespace",
                vec![by_runtime(write("net.ipv4.ip_forward", "1", false))],
                |a| {
                    assert_eq!(a.details["sysctl"], "net.ipv4.ip_forward");
                    assert_eq!(a.details["by_runtime"], true);
                },
            ),
            Example::alert(
                "a binfmt_misc registration",
                vec![in_container(
                    "sh",
                    open(
                        "/proc/sys/fs/binfmt_misc/register",
                        &[OpenClass::BinfmtMisc],
                        true,
                        3,
                    ),
                )],
                |a| assert_eq!(a.details["path"], "/proc/sys/fs/binfmt_misc/register"),
            ),
            Example::silent(
                "its own net.* and hostname, core_pattern (its own rule), the host's sysctl",
                vec![
                    in_container("sysctl", write("net.ipv4.ip_forward", "1", true)),
                    in_container("hostname", write("kernel.hostname", "web", true)),
                    in_container("sh", write(CORE_PATTERN, "core", false)),
                    on_host("sysctl", write("vm.swappiness", "10", false)),
                    by_runtime(write("net.ipv4.ip_unprivileged_port_start", "0", true)),
                    in_container(
                        "cat",
                        open(
                            "/proc/sys/fs/binfmt_misc/status",
                            &[OpenClass::BinfmtMisc],
                            false,
                            3,
                        ),
                    ),
                ],
            ),
        ]
    }
}

#[cfg(test)]
fn write(name: &str, value: &str, namespaced: bool) -> Payload {
    Payload::SysctlWrite {
        name: name.into(),
        value: value.into(),
        namespaced,
        truncated: false,
    }
}
