//! The programs in the eBPF object: their ids (for the error counters), ELF names and the hook
//! each attaches to. The loader walks [`PROGRAMS`]; the eBPF side counts errors by [`ProgramId`].

/// Index of a program in the `PROGRAM_ERRORS` array.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProgramId {
    SchedProcessExec = 0,
    SchedProcessFork = 1,
    SchedProcessExit = 2,
    SysEnterSetns = 3,
    SysExitSetns = 4,
    SysEnterUnshare = 5,
    SysExitUnshare = 6,
    SysEnterClone = 7,
    SysExitClone = 8,
    SysEnterClone3 = 9,
    SysExitClone3 = 10,
}

/// Where a program attaches. The variants are ordered from most to least precise; families
/// that have alternatives list several candidates and the loader keeps the first that attaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    /// BTF-typed raw tracepoint (tp_btf), 5.5+.
    BtfTracepoint { name: &'static str },
    /// Raw tracepoint, 4.17+.
    RawTracepoint { name: &'static str },
    /// Classic tracepoint under tracefs `events/<category>/<name>`.
    Tracepoint {
        category: &'static str,
        name: &'static str,
    },
}

impl Hook {
    /// Short hook-type name used in logs, metrics and `escapewatch rules`.
    pub const fn kind_name(&self) -> &'static str {
        match self {
            Hook::BtfTracepoint { .. } => "tp_btf",
            Hook::RawTracepoint { .. } => "raw_tracepoint",
            Hook::Tracepoint { .. } => "tracepoint",
        }
    }
}

/// A program of the object: its id, its function (ELF symbol) name and its hook.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProgramSpec {
    pub id: ProgramId,
    pub name: &'static str,
    pub hook: Hook,
    /// What the program contributes, for the operator reading the attach report.
    pub family: &'static str,
    /// Whether the agent can do its job without it (false: loading fails if it cannot attach).
    pub required: bool,
}

const fn syscall(id: ProgramId, name: &'static str, tp: &'static str) -> ProgramSpec {
    ProgramSpec {
        id,
        name,
        hook: Hook::Tracepoint {
            category: "syscalls",
            name: tp,
        },
        family: "namespace",
        required: false,
    }
}

pub const PROGRAMS: [ProgramSpec; 11] = [
    ProgramSpec {
        id: ProgramId::SchedProcessExec,
        name: "sched_process_exec",
        hook: Hook::RawTracepoint {
            name: "sched_process_exec",
        },
        family: "lifecycle",
        required: true,
    },
    ProgramSpec {
        id: ProgramId::SchedProcessFork,
        name: "sched_process_fork",
        hook: Hook::RawTracepoint {
            name: "sched_process_fork",
        },
        family: "lifecycle",
        required: true,
    },
    ProgramSpec {
        id: ProgramId::SchedProcessExit,
        name: "sched_process_exit",
        hook: Hook::RawTracepoint {
            name: "sched_process_exit",
        },
        family: "lifecycle",
        required: true,
    },
    syscall(
        ProgramId::SysEnterSetns,
        "sys_enter_setns",
        "sys_enter_setns",
    ),
    syscall(ProgramId::SysExitSetns, "sys_exit_setns", "sys_exit_setns"),
    syscall(
        ProgramId::SysEnterUnshare,
        "sys_enter_unshare",
        "sys_enter_unshare",
    ),
    syscall(
        ProgramId::SysExitUnshare,
        "sys_exit_unshare",
        "sys_exit_unshare",
    ),
    syscall(
        ProgramId::SysEnterClone,
        "sys_enter_clone",
        "sys_enter_clone",
    ),
    syscall(ProgramId::SysExitClone, "sys_exit_clone", "sys_exit_clone"),
    syscall(
        ProgramId::SysEnterClone3,
        "sys_enter_clone3",
        "sys_enter_clone3",
    ),
    syscall(
        ProgramId::SysExitClone3,
        "sys_exit_clone3",
        "sys_exit_clone3",
    ),
];

const _: () = {
    let mut i = 0;
    while i < PROGRAMS.len() {
        assert!(PROGRAMS[i].id as usize == i);
        assert!((PROGRAMS[i].id as u32) < crate::maps::PROGRAM_SLOTS);
        i += 1;
    }
};
