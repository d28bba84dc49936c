//! Severity by posture: a primitive is raised one step when the container's posture (read from
//! its runtime's configuration at start) is what makes it a real escape. One table, applied by
//! the engine to every rule's alerts before the operator's policy (whose severity override
//! still wins), and printed in the README.

use super::{Alert, Severity};
use crate::model::posture::{HostNamespace, Posture};

/// One row: the rules it raises, the condition on the posture, and why (said in the alert).
pub struct Raise {
    pub rules: &'static [&'static str],
    pub when: fn(&Posture) -> bool,
    /// `privileged or CAP_SYS_ADMIN`: what made it count.
    pub why: &'static str,
}

fn sys_admin(p: &Posture) -> bool {
    p.has_capability("CAP_SYS_ADMIN")
}

/// The table (README "Severity by posture").
pub const RAISES: &[Raise] = &[
    Raise {
        rules: &[
            "mount-host-device",
            "procfs-mount-in-container",
            "cgroup-release-agent-write",
            "core-pattern-write",
            "usermode-helper-from-container",
            "namespace-unshare-user",
        ],
        when: sys_admin,
        why: "privileged or CAP_SYS_ADMIN: mounts and host-global kernel files are writable",
    },
    Raise {
        rules: &[
            "ptrace-cross-container",
            "host-fs-via-proc-root",
            "proc-mem-write",
        ],
        when: |p| p.shares_host(HostNamespace::Pid),
        why: "host PID namespace: host processes and their /proc/PID/root are in reach",
    },
    Raise {
        rules: &["ptrace-cross-container", "proc-mem-write"],
        when: |p| p.has_capability("CAP_SYS_PTRACE"),
        why: "CAP_SYS_PTRACE: ptrace and /proc/PID/mem of other processes are permitted",
    },
    Raise {
        rules: &["open-by-handle-at"],
        when: |p| p.has_capability("CAP_DAC_READ_SEARCH"),
        why: "CAP_DAC_READ_SEARCH: open_by_handle_at reaches host files (shocker)",
    },
    Raise {
        rules: &["kernel-module-load"],
        when: |p| p.has_capability("CAP_SYS_MODULE"),
        why: "CAP_SYS_MODULE: the kernel accepts a module from the container",
    },
    Raise {
        rules: &["bpf-from-container"],
        when: |p| p.has_capability("CAP_BPF") || p.has_capability("CAP_SYS_ADMIN"),
        why: "CAP_BPF or CAP_SYS_ADMIN: eBPF programs and maps of the host are in reach",
    },
    Raise {
        rules: &["raw-block-device-open", "kernel-memory-access"],
        when: |p| p.privileged || p.has_capability("CAP_SYS_RAWIO"),
        why: "privileged or CAP_SYS_RAWIO: raw disk and memory access is permitted",
    },
    Raise {
        rules: &["runtime-socket-access"],
        when: |p| {
            p.sensitive_mounts
                .iter()
                .any(|m| m.class == crate::model::posture::MountClass::RuntimeSocket)
        },
        why: "a runtime socket is bind-mounted: its API starts privileged containers",
    },
    Raise {
        rules: &["container-sensitive-mount"],
        when: |p| {
            p.sensitive_mounts.iter().any(|m| {
                matches!(
                    m.class,
                    crate::model::posture::MountClass::HostRoot
                        | crate::model::posture::MountClass::RuntimeSocket
                )
            })
        },
        why: "the host root or a runtime socket is mounted: the host is one command away",
    },
];

/// The first row raising `rule` for `posture`.
pub fn raise_for(rule: &str, posture: &Posture) -> Option<&'static Raise> {
    RAISES
        .iter()
        .find(|r| r.rules.contains(&rule) && (r.when)(posture))
}

impl Severity {
    /// One step up (critical stays critical).
    pub fn raised(self) -> Severity {
        match self {
            Severity::Low => Severity::Medium,
            Severity::Medium => Severity::High,
            Severity::High | Severity::Critical => Severity::Critical,
        }
    }
}

/// Raise `alert` by its container's posture (recorded with the event it came from), noting
/// why in `details.severity_raised_by`.
pub fn apply(alert: &mut Alert) {
    let Some(posture) = alert.container.as_ref().and_then(|c| c.posture.as_ref()) else {
        return;
    };
    if let Some(r) = raise_for(&alert.rule, posture) {
        alert.severity = alert.severity.raised();
        if let Some(d) = alert.details.as_object_mut() {
            d.insert("severity_raised_by".into(), r.why.into());
        }
    }
}

/// The README's table of [`RAISES`].
pub fn markdown_table() -> String {
    let mut s = String::from("| rules | raised one step when |\n|---|---|\n");
    for r in RAISES {
        let rules: Vec<String> = r.rules.iter().map(|id| format!("`{id}`")).collect();
        s.push_str(&format!("| {} | {} |\n", rules.join(", "), r.why));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::rules;

    #[test]
    fn the_readme_posture_table_is_the_table() {
        let readme = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"),
        )
        .unwrap();
        let begin = readme
            .find("<!-- posture:begin")
            .expect("posture:begin marker");
        let begin = begin + readme[begin..].find('\n').unwrap() + 1;
        let end = readme
            .find("<!-- posture:end -->")
            .expect("posture:end marker");
        assert_eq!(
            readme[begin..end],
            markdown_table(),
            "README's posture table is stale; put this between the markers:\n{}",
            markdown_table()
        );
    }

    #[test]
    fn every_rule_the_table_names_is_catalogued() {
        for r in RAISES {
            for id in r.rules {
                assert!(rules::info(id).is_some(), "{id} is not a rule");
            }
        }
    }

    #[test]
    fn a_default_posture_raises_nothing_and_a_privileged_one_raises_mounts() {
        let default = Posture::default();
        assert!(RAISES.iter().all(|r| !(r.when)(&default)));
        let privileged = Posture {
            privileged: true,
            ..Posture::default()
        };
        assert!(raise_for("cgroup-release-agent-write", &privileged).is_some());
        assert!(raise_for("ptrace-cross-container", &privileged).is_some());
        let host_pid = Posture {
            host_namespaces: vec![HostNamespace::Pid],
            ..Posture::default()
        };
        assert!(raise_for("host-fs-via-proc-root", &host_pid).is_some());
        assert!(raise_for("cgroup-release-agent-write", &host_pid).is_none());
        assert_eq!(Severity::High.raised(), Severity::Critical);
        assert_eq!(Severity::Low.raised(), Severity::Medium);
    }
}
