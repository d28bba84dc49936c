//! Writes to host kernel settings: kernel.core_pattern, and every other /proc/sys write.

use serde_json::json;

use super::{
    RuleInfo, files,
    simple::{Finding, who, workload},
};
use crate::{
    detect::Severity,
    model::{Event, Payload},
};

pub static CORE_PATTERN: RuleInfo = RuleInfo {
    id: "core-pattern-write",
    severity: Severity::Critical,
    mitre: "T1611",
    title: "Container wrote kernel.core_pattern",
    explanation: "kernel.core_pattern is global: when it starts with `|`, the host kernel runs \
        that program as root for every crashing process on the machine. A container that \
        writes it (with a writable /proc/sys) and then crashes a process of its own escapes — \
        the program path usually points into the container through /proc/%P/root. Check the \
        value (details), restore the host's, and look for a usermode-helper alert that follows.",
    event_kinds: &["sysctl_write"],
};

pub static SYSCTL_WRITE: RuleInfo = RuleInfo {
    id: "sysctl-write-from-container",
    severity: Severity::High,
    mitre: "T1611",
    title: "Container changed a host kernel setting",
    explanation: "A process in a container wrote a kernel setting that is not namespaced: \
        /proc/sys (kernel.modprobe and kernel.hotplug name programs the kernel runs as root, \
        vm.* and kernel.* change the whole host), the binfmt_misc registry, or \
        /sys/kernel/uevent_helper. Settings of namespaces the container owns (its net.*, its \
        hostname) are not reported. Check the value written (details) and restore the host's.",
    event_kinds: &["sysctl_write", "file_open"],
};

fn sysctl(e: &Event) -> Option<(&str, &str, bool, bool)> {
    let Payload::SysctlWrite {
        name,
        value,
        namespaced,
        truncated,
    } = &e.data
    else {
        return None;
    };
    Some((name, value, *namespaced, *truncated))
}

pub fn core_pattern(e: &Event) -> Option<Finding> {
    let (name, value, _, truncated) = sysctl(e)?;
    if name != "kernel.core_pattern" {
        return None;
    }
    let c = workload(e)?;
    Some(Finding::new(
        format!(
            "{} set kernel.core_pattern to {value:?}: the host kernel will run it as root on the next crash; restore the host's value now.",
            who(e, c)
        ),
        json!({ "sysctl": name, "value": value, "truncated": truncated }),
    ))
}

pub fn sysctl_write(e: &Event) -> Option<Finding> {
    let Some((name, value, namespaced, truncated)) = sysctl(e) else {
        return files::kernel_setting_file(e);
    };
    if name == "kernel.core_pattern" || namespaced {
        return None;
    }
    let c = workload(e)?;
    Some(Finding::new(
        format!(
            "{} set host kernel setting {name} to {value:?}; check it and restore the host's value.",
            who(e, c)
        ),
        json!({ "sysctl": name, "value": value, "truncated": truncated }),
    ))
}
