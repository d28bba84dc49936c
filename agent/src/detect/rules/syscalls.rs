//! Rules on single watched syscalls: ptrace across the container boundary, kernel module loads,
//! open_by_handle_at, bpf, userfaultfd.

use escapewatch_common::abi::{
    BPF_LINK_CREATE, BPF_PROG_ATTACH, BPF_PROG_LOAD, BPF_RAW_TRACEPOINT_OPEN, PTRACE_ATTACH,
    PTRACE_POKEDATA, PTRACE_POKETEXT, PTRACE_POKEUSER, PTRACE_SEIZE,
};
use serde_json::json;

use super::{
    Check, Fixtures, Input, KernelDependency, KernelFeature, RuleInfo, Without, files,
    simple::{Finding, who, workload},
};
use crate::{
    detect::Severity,
    model::{Container, Event, NsOwner, Payload, TargetProcess, WatchedSyscall as S},
};

/// A workload's watched syscall.
struct Call<'a> {
    container: &'a Container,
    name: S,
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
        name: *name,
        ret: *ret,
        args,
        target: target.as_ref(),
    })
}

/// A workload's call of one of `names`.
fn one_of<'a>(e: &'a Event, names: &[S]) -> Option<Call<'a>> {
    syscall(e).filter(|c| names.contains(&c.name))
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

/// The name of a request or command among `names`, else `fallback`.
fn named(names: &[(u64, &'static str)], value: u64, fallback: &'static str) -> &'static str {
    names
        .iter()
        .find(|(v, _)| *v == value)
        .map_or(fallback, |(_, n)| n)
}

pub struct Ptrace;

const PTRACE_REQUESTS: [(u64, &str); 5] = [
    (PTRACE_POKETEXT, "PTRACE_POKETEXT"),
    (PTRACE_POKEDATA, "PTRACE_POKEDATA"),
    (PTRACE_POKEUSER, "PTRACE_POKEUSER"),
    (PTRACE_ATTACH, "PTRACE_ATTACH"),
    (PTRACE_SEIZE, "PTRACE_SEIZE"),
];

impl Check for Ptrace {
    const INFO: &'static RuleInfo = &RuleInfo {
        id: "ptrace-cross-container",
        severity: Severity::Critical,
        mitre: "T1055.008",
        title: "Container process ptraced a process outside its container",
        scope: "ptrace attach/poke from a container to a process outside it",
        explanation: "A process in a container attached to, or wrote the memory of, a process \
            of the host or of another container with ptrace. Controlling a host process is a \
            full escape: its code, credentials and namespaces are the attacker's. Possible only \
            with a shared PID namespace and CAP_SYS_PTRACE. Check the target process (details) \
            and the container's configuration.",
        inputs: &[Input::Syscall(S::Ptrace)],
        fixtures: Fixtures::Recorded(&["ptrace", "compat-ptrace"]),
        ..RuleInfo::BASE
    };

    fn check(e: &Event) -> Option<Finding> {
        let call = one_of(e, &[S::Ptrace])?;
        if call.ret != 0 {
            return None;
        }
        let target = call.target?;
        let whose = outside(&target.owner, call.container)?;
        let request = named(&PTRACE_REQUESTS, call.args[0], "ptrace");
        Some(Finding::new(
            format!(
                "{} used {request} on {} (pid {}) of {whose}: it controls a process outside its container; treat that process as compromised.",
                who(e, call.container),
                target.comm,
                target.pid
            ),
            json!({ "request": request, "target": target, "target_owner": whose, "addr": call.args[2] }),
        ))
    }

    #[cfg(test)]
    fn examples() -> Vec<super::examples::Example> {
        use super::examples::{Example, in_container, own_container, target};
        let ptrace = |request, owner| {
            in_container(
                "gdb",
                call(
                    S::Ptrace,
                    0,
                    [request, 77, 0x1000, 0],
                    Some(target(77, "sleep", owner)),
                ),
            )
        };
        vec![
            Example::alert(
                "PTRACE_ATTACH to a host process",
                vec![ptrace(PTRACE_ATTACH, NsOwner::Host)],
                |a| {
                    assert_eq!(a.details["request"], "PTRACE_ATTACH");
                    assert_eq!(a.details["target"]["pid"], 77);
                    assert_eq!(a.details["target_owner"], "the host");
                    assert_eq!(a.details["addr"], 0x1000);
                },
            ),
            Example::silent(
                "gdb on a process of its own container, or of an unknown one",
                vec![
                    ptrace(PTRACE_ATTACH, own_container()),
                    ptrace(PTRACE_POKEDATA, NsOwner::Unknown),
                ],
            ),
        ]
    }
}

pub struct ModuleLoad;

impl Check for ModuleLoad {
    const INFO: &'static RuleInfo = &RuleInfo {
        id: "kernel-module-load",
        severity: Severity::Critical,
        mitre: "T1547.006",
        title: "Container tried to load a kernel module",
        scope: "init_module / finit_module from a container (attempts count; not applicable on kernels without modules)",
        explanation: "A process in a container called init_module or finit_module. A loaded \
            module is code in the host kernel: nothing stays isolated. Attempts count, failed \
            ones included. Check the module file or image (args), the container's \
            CAP_SYS_MODULE, and `lsmod` on the host.",
        inputs: &[
            Input::Syscall(S::InitModule),
            Input::Syscall(S::FinitModule),
        ],
        kernel: &[KernelDependency {
            feature: KernelFeature::Modules,
            without: Without::NotApplicable,
            text: "this kernel is built without module support (CONFIG_MODULES off): it has no \
                init_module/finit_module tracepoints and cannot load a module at all",
        }],
        fixtures: Fixtures::Unavailable(
            "the module test runs only in the QEMU guests of `cargo xtask vm-test` (this host has \
             CONFIG_MODULES off), and the guests' event logs do not leave the guest",
        ),
        ..RuleInfo::BASE
    };

    fn check(e: &Event) -> Option<Finding> {
        let call = one_of(e, &[S::InitModule, S::FinitModule])?;
        let outcome = if call.ret == 0 {
            "loaded"
        } else {
            "tried to load"
        };
        let name = call.name.name();
        Some(Finding::new(
            format!(
                "{} {outcome} a kernel module with {name}; check lsmod on the host.",
                who(e, call.container)
            ),
            json!({ "syscall": name, "ret": call.ret }),
        ))
    }

    #[cfg(test)]
    fn examples() -> Vec<super::examples::Example> {
        use super::examples::{Example, by_runtime, in_container};
        vec![
            Example::alert(
                "a refused finit_module",
                vec![in_container(
                    "insmod",
                    call(S::FinitModule, -1, [3, 0, 0, 0], None),
                )],
                |a| {
                    assert_eq!(a.details["syscall"], "finit_module");
                    assert_eq!(a.details["ret"], -1);
                    assert!(a.summary.contains("tried to load"), "{}", a.summary);
                },
            ),
            Example::silent(
                "another syscall, and the runtime",
                vec![
                    in_container("insmod", call(S::Bpf, 0, [0; 4], None)),
                    by_runtime(call(S::InitModule, 0, [0; 4], None)),
                ],
            ),
        ]
    }
}

pub struct OpenByHandle;

impl Check for OpenByHandle {
    const INFO: &'static RuleInfo = &RuleInfo {
        id: "open-by-handle-at",
        severity: Severity::Critical,
        mitre: "T1611",
        title: "Container called open_by_handle_at (shocker)",
        scope: "open_by_handle_at from a container (\"shocker\")",
        explanation: "open_by_handle_at opens a file by its handle, bypassing the path and so \
            the container's root: with CAP_DAC_READ_SEARCH a container can brute-force handles \
            and read any file of the host filesystem (the 'shocker' exploit). No ordinary \
            workload needs it. Check the container's capabilities; attempts count.",
        inputs: &[Input::Syscall(S::OpenByHandleAt)],
        fixtures: Fixtures::Recorded(&["shocker"]),
        ..RuleInfo::BASE
    };

    fn check(e: &Event) -> Option<Finding> {
        let call = one_of(e, &[S::OpenByHandleAt])?;
        Some(Finding::new(
            format!(
                "{} called open_by_handle_at (ret {}): file access around the container root ('shocker'); check its capabilities.",
                who(e, call.container),
                call.ret
            ),
            json!({ "syscall": call.name, "ret": call.ret }),
        ))
    }

    #[cfg(test)]
    fn examples() -> Vec<super::examples::Example> {
        use super::examples::{Example, in_container, on_host};
        let shocker = call(S::OpenByHandleAt, -1, [3, 0, 0, 0], None);
        vec![
            Example::alert(
                "a refused attempt",
                vec![in_container("shocker", shocker.clone())],
                |a| {
                    assert_eq!(a.details["syscall"], "open_by_handle_at");
                    assert_eq!(a.details["ret"], -1);
                },
            ),
            Example::silent(
                "a host backup tool using handles",
                vec![on_host("xfsdump", shocker)],
            ),
        ]
    }
}

pub struct Bpf;

const BPF_CMDS: [(u64, &str); 4] = [
    (BPF_PROG_LOAD, "BPF_PROG_LOAD"),
    (BPF_PROG_ATTACH, "BPF_PROG_ATTACH"),
    (BPF_RAW_TRACEPOINT_OPEN, "BPF_RAW_TRACEPOINT_OPEN"),
    (BPF_LINK_CREATE, "BPF_LINK_CREATE"),
];

impl Check for Bpf {
    const INFO: &'static RuleInfo = &RuleInfo {
        id: "bpf-from-container",
        severity: Severity::High,
        mitre: "T1611",
        title: "Container loaded or attached an eBPF program",
        scope: "bpf() program load/attach from a container",
        explanation: "A process in a container used bpf() to load or attach a program. eBPF \
            programs run in the host kernel and can read any process's memory or hide \
            activity; from a container this needs CAP_BPF/CAP_SYS_ADMIN. Check the container's \
            capabilities and `bpftool prog` on the host.",
        inputs: &[Input::Syscall(S::Bpf)],
        fixtures: Fixtures::Recorded(&["bpf", "compat-bpf"]),
        ..RuleInfo::BASE
    };

    fn check(e: &Event) -> Option<Finding> {
        let call = one_of(e, &[S::Bpf])?;
        let cmd = named(&BPF_CMDS, call.args[0], "bpf");
        Some(Finding::new(
            format!(
                "{} called bpf({cmd}) (ret {}); check `bpftool prog` on the host.",
                who(e, call.container),
                call.ret
            ),
            json!({ "command": cmd, "ret": call.ret }),
        ))
    }

    #[cfg(test)]
    fn examples() -> Vec<super::examples::Example> {
        use super::examples::{Example, by_runtime, on_host};
        use crate::detect::rules::examples::in_container;
        let load = call(S::Bpf, 5, [BPF_PROG_LOAD, 0, 0, 0], None);
        vec![
            Example::alert(
                "BPF_PROG_LOAD",
                vec![in_container("bpftool", load.clone())],
                |a| {
                    assert_eq!(a.details["command"], "BPF_PROG_LOAD");
                    assert_eq!(a.details["ret"], 5);
                },
            ),
            Example::silent(
                "the host's own eBPF tools, and runc's seccomp filter setup",
                vec![on_host("bpftool", load.clone()), by_runtime(load)],
            ),
        ]
    }
}

pub struct Userfaultfd;

impl Check for Userfaultfd {
    const INFO: &'static RuleInfo = &RuleInfo {
        id: "userfaultfd-in-container",
        severity: Severity::Low,
        mitre: "T1068",
        title: "Container created a userfaultfd",
        scope: "userfaultfd (syscall or /dev/userfaultfd) from a container",
        explanation: "userfaultfd lets a process pause the kernel in the middle of a page \
            fault, the standard tool for winning kernel race conditions in exploits. Some \
            runtimes (checkpoint/restore, some JVMs) use it legitimately. Low on its own; raise \
            attention when exploit-like alerts from the same container follow.",
        inputs: &[
            Input::Syscall(S::Userfaultfd),
            Input::Kind(escapewatch_common::kind::EventKind::FileOpen),
        ],
        fixtures: Fixtures::Recorded(&["userfaultfd"]),
        ..RuleInfo::BASE
    };

    fn check(e: &Event) -> Option<Finding> {
        let Some(call) = syscall(e) else {
            return files::userfaultfd_device(e);
        };
        if call.name != S::Userfaultfd || call.ret < 0 {
            return None;
        }
        Some(Finding::new(
            format!(
                "{} created a userfaultfd (an exploit race primitive).",
                who(e, call.container)
            ),
            json!({ "syscall": call.name, "ret": call.ret }),
        ))
    }

    #[cfg(test)]
    fn examples() -> Vec<super::examples::Example> {
        use super::examples::{Example, in_container, open};
        use crate::model::OpenClass;
        vec![
            Example::alert(
                "the syscall",
                vec![in_container(
                    "exploit",
                    call(S::Userfaultfd, 3, [0; 4], None),
                )],
                |a| {
                    assert_eq!(a.details["syscall"], "userfaultfd");
                    assert_eq!(a.details["ret"], 3);
                },
            ),
            Example::alert(
                "the device",
                vec![in_container(
                    "exploit",
                    open("/dev/userfaultfd", &[OpenClass::UserfaultfdDevice], true, 3),
                )],
                |a| assert_eq!(a.details["path"], "/dev/userfaultfd"),
            ),
            Example::silent(
                "a refused call, and /dev/zero",
                vec![
                    in_container("java", call(S::Userfaultfd, -1, [0; 4], None)),
                    in_container("java", open("/dev/zero", &[], false, 3)),
                ],
            ),
        ]
    }
}

#[cfg(test)]
fn call(name: S, ret: i64, args: [u64; 4], target: Option<TargetProcess>) -> Payload {
    Payload::Syscall {
        name,
        ret,
        args,
        target,
    }
}
