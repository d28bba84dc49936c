//! Rules on single watched syscalls: ptrace across the container boundary, kernel module loads,
//! open_by_handle_at, bpf, userfaultfd.

use serde_json::json;

use super::{
    RuleInfo, files,
    simple::{Finding, who, workload},
};
use crate::{
    detect::Severity,
    model::{Container, Event, NsOwner, Payload, TargetProcess},
};

/// A workload's watched syscall.
struct Call<'a> {
    container: &'a Container,
    name: &'a str,
    ret: i64,
    args: &'a [u64; 4],
    target: Option<&'a TargetProcess>,
}

fn syscall(e: &Event) -> Option<Call<'_>> {
    let Payload::Syscall {
        name,
        ret,
        args,
        target,
    } = &e.data
    else {
        return None;
    };
    Some(Call {
        container: workload(e)?,
        name,
        ret: *ret,
        args,
        target: target.as_ref(),
    })
}

/// "the host" / "container X" when `owner` is outside container `c`.
pub fn outside(owner: &NsOwner, c: &Container) -> Option<String> {
    match owner {
        NsOwner::Host => Some("the host".into()),
        NsOwner::Container { id, runtime } if *id != c.id => {
            Some(format!("{} container {id}", runtime.as_str()))
        }
        _ => None,
    }
}

pub static PTRACE: RuleInfo = RuleInfo {
    id: "ptrace-cross-container",
    severity: Severity::Critical,
    mitre: "T1055.008",
    title: "Container process ptraced a process outside its container",
    explanation: "A process in a container attached to, or wrote the memory of, a process of \
        the host or of another container with ptrace. Controlling a host process is a full \
        escape: its code, credentials and namespaces are the attacker's. Possible only with a \
        shared PID namespace and CAP_SYS_PTRACE. Check the target process (details) and the \
        container's configuration.",
    event_kinds: &["syscall:ptrace"],
};

const PTRACE_REQUESTS: [(u64, &str); 5] = [
    (4, "PTRACE_POKETEXT"),
    (5, "PTRACE_POKEDATA"),
    (6, "PTRACE_POKEUSER"),
    (16, "PTRACE_ATTACH"),
    (0x4206, "PTRACE_SEIZE"),
];

pub fn ptrace(e: &Event) -> Option<Finding> {
    let Call {
        container: c,
        name,
        ret,
        args,
        target,
    } = syscall(e)?;
    if name != "ptrace" || ret != 0 {
        return None;
    }
    let target = target?;
    let whose = outside(&target.owner, c)?;
    let request = PTRACE_REQUESTS
        .iter()
        .find(|(r, _)| *r == args[0])
        .map_or("ptrace", |(_, n)| n);
    Some(Finding::new(
        format!(
            "{} used {request} on {} (pid {}) of {whose}: it controls a process outside its container; treat that process as compromised.",
            who(e, c),
            target.comm,
            target.pid
        ),
        json!({ "request": request, "target": target, "target_owner": whose, "addr": args[2] }),
    ))
}

pub static MODULE_LOAD: RuleInfo = RuleInfo {
    id: "kernel-module-load",
    severity: Severity::Critical,
    mitre: "T1547.006",
    title: "Container tried to load a kernel module",
    explanation: "A process in a container called init_module or finit_module. A loaded module \
        is code in the host kernel: nothing stays isolated. Attempts count, failed ones \
        included. Check the module file or image (args), the container's CAP_SYS_MODULE, and \
        `lsmod` on the host.",
    event_kinds: &["syscall:init_module", "syscall:finit_module"],
};

pub fn module_load(e: &Event) -> Option<Finding> {
    let Call {
        container: c,
        name,
        ret,
        ..
    } = syscall(e)?;
    if name != "init_module" && name != "finit_module" {
        return None;
    }
    let outcome = if ret == 0 { "loaded" } else { "tried to load" };
    Some(Finding::new(
        format!(
            "{} {outcome} a kernel module with {name}; check lsmod on the host.",
            who(e, c)
        ),
        json!({ "syscall": name, "ret": ret }),
    ))
}

pub static OPEN_BY_HANDLE: RuleInfo = RuleInfo {
    id: "open-by-handle-at",
    severity: Severity::Critical,
    mitre: "T1611",
    title: "Container called open_by_handle_at (shocker)",
    explanation: "open_by_handle_at opens a file by its handle, bypassing the path and so the \
        container's root: with CAP_DAC_READ_SEARCH a container can brute-force handles and \
        read any file of the host filesystem (the 'shocker' exploit). No ordinary workload \
        needs it. Check the container's capabilities; attempts count.",
    event_kinds: &["syscall:open_by_handle_at"],
};

pub fn open_by_handle(e: &Event) -> Option<Finding> {
    let Call {
        container: c,
        name,
        ret,
        ..
    } = syscall(e)?;
    if name != "open_by_handle_at" {
        return None;
    }
    Some(Finding::new(
        format!(
            "{} called open_by_handle_at (ret {ret}): file access around the container root ('shocker'); check its capabilities.",
            who(e, c)
        ),
        json!({ "syscall": name, "ret": ret }),
    ))
}

pub static BPF: RuleInfo = RuleInfo {
    id: "bpf-from-container",
    severity: Severity::High,
    mitre: "T1611",
    title: "Container loaded or attached an eBPF program",
    explanation: "A process in a container used bpf() to load or attach a program. eBPF \
        programs run in the host kernel and can read any process's memory or hide activity; \
        from a container this needs CAP_BPF/CAP_SYS_ADMIN. Check the container's capabilities \
        and `bpftool prog` on the host.",
    event_kinds: &["syscall:bpf"],
};

const BPF_CMDS: [(u64, &str); 4] = [
    (5, "BPF_PROG_LOAD"),
    (8, "BPF_PROG_ATTACH"),
    (17, "BPF_RAW_TRACEPOINT_OPEN"),
    (28, "BPF_LINK_CREATE"),
];

pub fn bpf(e: &Event) -> Option<Finding> {
    let Call {
        container: c,
        name,
        ret,
        args,
        ..
    } = syscall(e)?;
    if name != "bpf" {
        return None;
    }
    let cmd = BPF_CMDS
        .iter()
        .find(|(v, _)| *v == args[0])
        .map_or("bpf", |(_, n)| n);
    Some(Finding::new(
        format!(
            "{} called bpf({cmd}) (ret {ret}); check `bpftool prog` on the host.",
            who(e, c)
        ),
        json!({ "command": cmd, "ret": ret }),
    ))
}

pub static USERFAULTFD: RuleInfo = RuleInfo {
    id: "userfaultfd-in-container",
    severity: Severity::Low,
    mitre: "T1068",
    title: "Container created a userfaultfd",
    explanation: "userfaultfd lets a process pause the kernel in the middle of a page fault, \
        the standard tool for winning kernel race conditions in exploits. Some runtimes \
        (checkpoint/restore, some JVMs) use it legitimately. Low on its own; raise attention \
        when exploit-like alerts from the same container follow.",
    event_kinds: &["syscall:userfaultfd", "file_open"],
};

pub fn userfaultfd(e: &Event) -> Option<Finding> {
    let Some(Call {
        container: c,
        name,
        ret,
        ..
    }) = syscall(e)
    else {
        return files::userfaultfd_device(e);
    };
    if name != "userfaultfd" || ret < 0 {
        return None;
    }
    Some(Finding::new(
        format!(
            "{} created a userfaultfd (an exploit race primitive).",
            who(e, c)
        ),
        json!({ "syscall": name, "ret": ret }),
    ))
}
