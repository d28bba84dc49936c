//! The programs in the eBPF object: their ids (for the error counters), ELF names, the hook each
//! attaches to and the event kinds it produces. The loader walks [`PROGRAMS`]; the eBPF side
//! counts errors by [`ProgramId`]; `escapewatch rules` maps rules to hooks through `kinds`.

use crate::kind::EventKind;

macro_rules! program_ids {
    ($($name:ident = $id:literal,)+) => {
        /// Index of a program in the `PROGRAM_ERRORS` array.
        #[repr(u32)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum ProgramId {
            $($name = $id,)+
        }

        impl TryFrom<u32> for ProgramId {
            type Error = u32;

            fn try_from(value: u32) -> Result<Self, u32> {
                match value {
                    $($id => Ok(ProgramId::$name),)+
                    other => Err(other),
                }
            }
        }
    };
}

program_ids! {
    SchedProcessExec = 0,
    SchedProcessFork = 1,
    SchedProcessExit = 2,
    SysEnterSetns = 3,
    SysEnterUnshare = 4,
    SysEnterClone = 5,
    SysEnterClone3 = 6,
    SysExitPending = 7,
    SysEnterMount = 8,
    SysEnterOpenTree = 9,
    SysEnterMoveMount = 10,
    SysEnterFsopen = 11,
    SysEnterFsconfig = 12,
    SysExitMount = 13,
    SysEnterOpenat = 14,
    SysEnterOpenat2 = 15,
    SysEnterOpen = 16,
    SysExitOpen = 17,
    SysctlWrite = 18,
    SysEnterMadvise = 19,
    SysEnterWrite = 20,
    SysEnterPwrite64 = 21,
    SysExitWrite = 22,
    SysEnterSplice = 23,
    SysEnterPtrace = 24,
    SysEnterProcessVmWritev = 25,
    SysEnterBpf = 26,
    SysEnterOpenByHandleAt = 27,
    SysEnterUserfaultfd = 28,
    SysEnterInitModule = 29,
    SysEnterFinitModule = 30,
    SysEnterConnect = 31,
    SysExitConnect = 32,
    FentryHandleMmFault = 33,
    KprobeHandleMmFault = 34,
    LsmFileOpen = 35,
    SysEnter = 36,
    SysExit = 37,
    IouringCompleteOpen = 38,
    CompatSysExitOpen = 39,
    SysEnterFsmount = 40,
    SysEnterWritev = 41,
    SysEnterPwritev = 42,
    SysEnterPwritev2 = 43,
    SysEnterTee = 44,
    SysEnterMadviseSpecial = 45,
    CompatSysExitWrite = 46,
    CompatSysEnterMadvise = 47,
    FentryCommitCreds = 48,
    FentrySwitchTaskNamespaces = 49,
    IouringCompleteWrite = 50,
    IouringCompleteMadvise = 51,
    IouringCompleteConnect = 52,
    IouringComplete = 53,
    SysEnterIoport = 55,
    SysEnterKexec = 56,
    LsmLockedDown = 57,
    SysEnterRename = 58,
    IouringCompleteRename = 59,
    ModuleRequest = 60,
    InetSockSetState = 61,
}

/// Where a program attaches. Families with alternatives list several programs in preference
/// order under one `group`; the loader keeps the first that attaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    /// BTF-typed raw tracepoint (tp_btf), 5.5+.
    BtfTracepoint { name: &'static str },
    /// Raw tracepoint, 4.17+.
    RawTracepoint { name: &'static str },
    /// Classic tracepoints under tracefs `events/<category>/<name>`; one program may serve
    /// several (the same handler for many syscall exits).
    Tracepoint {
        category: &'static str,
        names: &'static [&'static str],
    },
    /// cgroup/sysctl on the cgroup2 root, 5.2+: every sysctl access with its new value.
    CgroupSysctl,
    /// fentry on a kernel function (BPF trampoline, 5.5+; needs BTF and ftrace).
    FEntry { function: &'static str },
    /// kprobe on a kernel function (CONFIG_KPROBES).
    KProbe { function: &'static str },
    /// BPF LSM hook (5.7+, CONFIG_BPF_LSM and `bpf` in the active LSM list).
    Lsm { hook: &'static str },
    /// A watched syscall's entry (`exit` false) or exit logic: a tp_btf program on the generic
    /// `sys_enter`/`sys_exit` tracepoint that is never attached itself. The syscall
    /// dispatchers enter it by tail call at the entries `numbers` (x86-64 syscall numbers) of
    /// [`SYS_ENTER_TAILS`] or [`SYS_EXIT_TAILS`], so a syscall nobody watches runs no program
    /// beyond the dispatcher and takes no per-syscall tracepoint's perf path.
    Syscall { exit: bool, numbers: &'static [u32] },
    /// No attach point: entry `index` of [`SYS_ENTER_TAILS`] (`exit` false) or
    /// [`SYS_EXIT_TAILS`], which another program of the same hook enters by bpf_tail_call (a
    /// program's second half, verified on its own).
    TailCall { exit: bool, index: u32 },
    /// An io_uring request's judgement: a program for the `io_uring_complete` tracepoint that
    /// is never attached itself. The completion dispatcher (`iouring_complete`) enters it by
    /// tail call at the entries `opcodes` of [`IOURING_TAILS`], so a completion of any other
    /// request runs one program, not one per judgement.
    IouringOp { opcodes: &'static [u32] },
}

impl Hook {
    /// Short hook-type name used in logs, metrics and `escapewatch rules`.
    pub const fn kind_name(&self) -> &'static str {
        match self {
            Hook::BtfTracepoint { .. } => "tp_btf",
            Hook::RawTracepoint { .. } => "raw_tracepoint",
            Hook::Tracepoint { .. } => "tracepoint",
            Hook::CgroupSysctl => "cgroup_sysctl",
            Hook::FEntry { .. } => "fentry",
            Hook::KProbe { .. } => "kprobe",
            Hook::Lsm { .. } => "lsm",
            Hook::Syscall { .. } => "syscall",
            Hook::TailCall { .. } => "tail_call",
            Hook::IouringOp { .. } => "io_uring",
        }
    }

    /// The generic tracepoint a syscall-dispatched program is loaded for (its context is that
    /// tracepoint's), or None for other hooks.
    pub const fn syscall_tracepoint(&self) -> Option<&'static str> {
        match self {
            Hook::Syscall { exit, .. } | Hook::TailCall { exit, .. } => {
                Some(if *exit { "sys_exit" } else { "sys_enter" })
            }
            _ => None,
        }
    }
}

/// A program of the object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProgramSpec {
    pub id: ProgramId,
    /// Function (ELF symbol) name.
    pub name: &'static str,
    pub hook: Hook,
    /// The capability it serves; alternatives share a group.
    pub group: &'static str,
    /// Event kinds this program (or the exit program of its group) produces.
    pub kinds: &'static [EventKind],
    /// Whether the agent can do its job without it (false: loading fails if it cannot attach).
    pub required: bool,
    /// For a precision hook a kernel may refuse (fentry, kprobe, LSM): what serves its rules
    /// when it cannot attach. Empty for programs without a stand-in.
    pub fallback: &'static str,
}

impl ProgramSpec {
    /// `hook-type/program`, e.g. `fentry/fentry_handle_mm_fault`: the label events, logs and
    /// metrics carry to say which hook served.
    pub fn label(&self) -> (&'static str, &'static str) {
        (self.hook.kind_name(), self.name)
    }

    pub const fn by_id(id: u32) -> Option<&'static ProgramSpec> {
        // Ids are in increasing order but may leave gaps (numbers reserved for programs of
        // other branches): a search, not an index.
        let mut i = 0;
        while i < PROGRAMS.len() {
            if PROGRAMS[i].id as u32 == id {
                return Some(&PROGRAMS[i]);
            }
            i += 1;
        }
        None
    }
}

/// Which of the dispatcher's sides tail-calls a syscall program.
#[derive(Clone, Copy)]
enum Side {
    Enter,
    Exit,
}

/// A syscall program, tail-called by the dispatcher of `side` for `numbers`.
const fn syscall(
    id: ProgramId,
    name: &'static str,
    side: Side,
    numbers: &'static [u32],
    group: &'static str,
    kinds: &'static [EventKind],
) -> ProgramSpec {
    ProgramSpec {
        id,
        name,
        hook: Hook::Syscall {
            exit: matches!(side, Side::Exit),
            numbers,
        },
        group,
        kinds,
        required: false,
        fallback: "",
    }
}

const fn raw(id: ProgramId, name: &'static str, kind: &'static [EventKind]) -> ProgramSpec {
    ProgramSpec {
        id,
        name,
        hook: Hook::RawTracepoint { name },
        group: name,
        kinds: kind,
        required: true,
        fallback: "",
    }
}

use crate::abi::{
    IORING_OP_CONNECT, IORING_OP_MADVISE, IORING_OP_OPENAT, IORING_OP_OPENAT2, IORING_OP_RENAMEAT,
    IORING_OP_SPLICE, IORING_OP_TEE, IORING_OP_WRITE, IORING_OP_WRITE_FIXED, IORING_OP_WRITEV,
    IORING_OP_WRITEV_FIXED, x86_64 as X,
};
use EventKind as K;
use ProgramId as P;

const NS: &[EventKind] = &[K::Setns, K::Unshare, K::CloneNewNamespace];
const SYSCALL: &[EventKind] = &[K::Syscall];
const MOUNT: &[EventKind] = &[K::Mount];

pub const PROGRAMS: &[ProgramSpec] = &[
    raw(P::SchedProcessExec, "sched_process_exec", &[K::ProcessExec]),
    raw(P::SchedProcessFork, "sched_process_fork", &[K::ProcessFork]),
    raw(P::SchedProcessExit, "sched_process_exit", &[K::ProcessExit]),
    syscall(
        P::SysEnterSetns,
        "sys_enter_setns",
        Side::Enter,
        &[X::SETNS],
        "setns",
        &[K::Setns],
    ),
    syscall(
        P::SysEnterUnshare,
        "sys_enter_unshare",
        Side::Enter,
        &[X::UNSHARE],
        "unshare",
        &[K::Unshare],
    ),
    syscall(
        P::SysEnterClone,
        "sys_enter_clone",
        Side::Enter,
        &[X::CLONE],
        "clone",
        &[K::CloneNewNamespace],
    ),
    syscall(
        P::SysEnterClone3,
        "sys_enter_clone3",
        Side::Enter,
        &[X::CLONE3],
        "clone3",
        &[K::CloneNewNamespace],
    ),
    syscall(
        P::SysExitPending,
        "sys_exit_pending",
        Side::Exit,
        &[
            X::SETNS,
            X::UNSHARE,
            X::CLONE,
            X::CLONE3,
            X::PTRACE,
            X::PROCESS_VM_WRITEV,
            X::BPF,
            X::OPEN_BY_HANDLE_AT,
            X::USERFAULTFD,
            X::INIT_MODULE,
            X::FINIT_MODULE,
            X::IOPL,
            X::IOPERM,
            X::KEXEC_LOAD,
            X::KEXEC_FILE_LOAD,
        ],
        "syscall-exit",
        NS,
    ),
    syscall(
        P::SysEnterMount,
        "sys_enter_mount",
        Side::Enter,
        &[X::MOUNT],
        "mount",
        MOUNT,
    ),
    syscall(
        P::SysEnterOpenTree,
        "sys_enter_open_tree",
        Side::Enter,
        &[X::OPEN_TREE],
        "open_tree",
        MOUNT,
    ),
    syscall(
        P::SysEnterMoveMount,
        "sys_enter_move_mount",
        Side::Enter,
        &[X::MOVE_MOUNT],
        "move_mount",
        MOUNT,
    ),
    syscall(
        P::SysEnterFsopen,
        "sys_enter_fsopen",
        Side::Enter,
        &[X::FSOPEN],
        "fsopen",
        MOUNT,
    ),
    syscall(
        P::SysEnterFsconfig,
        "sys_enter_fsconfig",
        Side::Enter,
        &[X::FSCONFIG],
        "fsconfig",
        MOUNT,
    ),
    syscall(
        P::SysExitMount,
        "sys_exit_mount_family",
        Side::Exit,
        &[
            X::MOUNT,
            X::OPEN_TREE,
            X::MOVE_MOUNT,
            X::FSOPEN,
            X::FSCONFIG,
            X::FSMOUNT,
        ],
        "mount-exit",
        MOUNT,
    ),
    syscall(
        P::SysEnterOpenat,
        "sys_enter_openat",
        Side::Enter,
        &[X::OPENAT],
        "openat",
        &[K::FileOpen],
    ),
    syscall(
        P::SysEnterOpenat2,
        "sys_enter_openat2",
        Side::Enter,
        &[X::OPENAT2],
        "openat2",
        &[K::FileOpen],
    ),
    syscall(
        P::SysEnterOpen,
        "sys_enter_open",
        Side::Enter,
        &[X::OPEN],
        "open",
        &[K::FileOpen],
    ),
    syscall(
        P::SysExitOpen,
        "sys_exit_open_family",
        Side::Exit,
        &[X::OPENAT, X::OPENAT2, X::OPEN],
        "open-exit",
        &[K::FileOpen],
    ),
    ProgramSpec {
        id: P::SysctlWrite,
        name: "sysctl_write",
        hook: Hook::CgroupSysctl,
        group: "sysctl",
        kinds: &[K::SysctlWrite],
        required: false,
        fallback: "",
    },
    syscall(
        P::SysEnterMadvise,
        "sys_enter_madvise",
        Side::Enter,
        &[X::MADVISE],
        "madvise",
        &[K::Madvise],
    ),
    syscall(
        P::SysEnterWrite,
        "sys_enter_write",
        Side::Enter,
        &[X::WRITE],
        "write",
        &[K::MemWrite, K::PipeWrite],
    ),
    syscall(
        P::SysEnterPwrite64,
        "sys_enter_pwrite64",
        Side::Enter,
        &[X::PWRITE64],
        "pwrite64",
        &[K::MemWrite, K::PipeWrite],
    ),
    syscall(
        P::SysExitWrite,
        "sys_exit_write_family",
        Side::Exit,
        &[X::WRITE, X::PWRITE64, X::WRITEV, X::PWRITEV, X::PWRITEV2],
        "write-exit",
        &[K::MemWrite, K::PipeWrite],
    ),
    syscall(
        P::SysEnterSplice,
        "sys_enter_splice",
        Side::Enter,
        &[X::SPLICE],
        "splice",
        &[K::PipeWrite],
    ),
    syscall(
        P::SysEnterPtrace,
        "sys_enter_ptrace",
        Side::Enter,
        &[X::PTRACE],
        "ptrace",
        SYSCALL,
    ),
    syscall(
        P::SysEnterProcessVmWritev,
        "sys_enter_process_vm_writev",
        Side::Enter,
        &[X::PROCESS_VM_WRITEV],
        "process_vm_writev",
        SYSCALL,
    ),
    syscall(
        P::SysEnterBpf,
        "sys_enter_bpf",
        Side::Enter,
        &[X::BPF],
        "bpf",
        SYSCALL,
    ),
    syscall(
        P::SysEnterOpenByHandleAt,
        "sys_enter_open_by_handle_at",
        Side::Enter,
        &[X::OPEN_BY_HANDLE_AT],
        "open_by_handle_at",
        SYSCALL,
    ),
    syscall(
        P::SysEnterUserfaultfd,
        "sys_enter_userfaultfd",
        Side::Enter,
        &[X::USERFAULTFD],
        "userfaultfd",
        SYSCALL,
    ),
    syscall(
        P::SysEnterInitModule,
        "sys_enter_init_module",
        Side::Enter,
        &[X::INIT_MODULE],
        "init_module",
        SYSCALL,
    ),
    syscall(
        P::SysEnterFinitModule,
        "sys_enter_finit_module",
        Side::Enter,
        &[X::FINIT_MODULE],
        "finit_module",
        SYSCALL,
    ),
    syscall(
        P::SysEnterConnect,
        "sys_enter_connect",
        Side::Enter,
        &[X::CONNECT],
        "connect",
        &[K::UnixConnect, K::NetConnect],
    ),
    syscall(
        P::SysExitConnect,
        "sys_exit_connect",
        Side::Exit,
        &[X::CONNECT],
        "connect-exit",
        &[K::UnixConnect, K::NetConnect],
    ),
    // The copy-on-write break itself, whatever led there (/proc/PID/mem, ptrace POKE): the
    // best hook first; the loader keeps the first of the group that attaches.
    ProgramSpec {
        id: P::FentryHandleMmFault,
        name: "fentry_handle_mm_fault",
        hook: Hook::FEntry {
            function: "handle_mm_fault",
        },
        group: "cow-fault",
        kinds: &[K::CowFault],
        required: false,
        fallback: COW_FALLBACK,
    },
    ProgramSpec {
        id: P::KprobeHandleMmFault,
        name: "kprobe_handle_mm_fault",
        hook: Hook::KProbe {
            function: "handle_mm_fault",
        },
        group: "cow-fault",
        kinds: &[K::CowFault],
        required: false,
        fallback: COW_FALLBACK,
    },
    // Every open path (io_uring, open_by_handle_at, exec included) with the struct file the
    // kernel is about to hand out; the open syscall exits report its return value.
    ProgramSpec {
        id: P::LsmFileOpen,
        name: "lsm_file_open",
        hook: Hook::Lsm { hook: "file_open" },
        group: "file-open-lsm",
        kinds: &[K::FileOpen],
        required: false,
        fallback: "the open/openat/openat2 syscall programs (exits read the struct file behind the returned fd) and, for io_uring, its completion tracepoint",
    },
    // The syscall dispatchers: every syscall of every task runs these two and nothing else
    // unless it is watched. A 64-bit syscall continues by tail call into its own program (the
    // Syscall hooks above); a 32-bit one (`int 0x80`, which the per-syscall tracepoints do
    // not see) is handed to the same entry and exit logic here.
    dispatcher(P::SysEnter, "sys_enter"),
    dispatcher(P::SysExit, "sys_exit"),
    // Opens made by io_uring (no open syscall): the file behind the completed descriptor. Stands
    // by where lsm_file_open (same group, preferred) attached, which sees those opens itself.
    ProgramSpec {
        id: P::IouringCompleteOpen,
        name: "iouring_complete_open",
        hook: Hook::IouringOp {
            opcodes: &[IORING_OP_OPENAT as u32, IORING_OP_OPENAT2 as u32],
        },
        group: "file-open-lsm",
        kinds: &[K::FileOpen],
        required: false,
        fallback: "",
    },
    // The open half of compat_sys_exit, entered by a tail call only for a 32-bit open: one
    // program for both halves takes the 6.1 verifier past its limits, two on sys_exit would
    // cost every syscall a second run.
    ProgramSpec {
        id: P::CompatSysExitOpen,
        name: "compat_sys_exit_open",
        hook: Hook::TailCall {
            exit: true,
            index: COMPAT_EXIT_OPEN,
        },
        group: "compat_sys_exit_open",
        kinds: &[K::FileOpen],
        required: false,
        fallback: "",
    },
    syscall(
        P::SysEnterFsmount,
        "sys_enter_fsmount",
        Side::Enter,
        &[X::FSMOUNT],
        "fsmount",
        MOUNT,
    ),
    // The vectored write flavours reach marked objects like write and pwrite64 (their exits
    // are sys_exit_write_family's).
    syscall(
        P::SysEnterWritev,
        "sys_enter_writev",
        Side::Enter,
        &[X::WRITEV],
        "writev",
        &[K::MemWrite, K::PipeWrite],
    ),
    syscall(
        P::SysEnterPwritev,
        "sys_enter_pwritev",
        Side::Enter,
        &[X::PWRITEV],
        "pwritev",
        &[K::MemWrite, K::PipeWrite],
    ),
    syscall(
        P::SysEnterPwritev2,
        "sys_enter_pwritev2",
        Side::Enter,
        &[X::PWRITEV2],
        "pwritev2",
        &[K::MemWrite, K::PipeWrite],
    ),
    // A marked pipe tee'd into another pipe marks that one (splice between pipes is
    // sys_enter_splice's).
    syscall(
        P::SysEnterTee,
        "sys_enter_tee",
        Side::Enter,
        &[X::TEE],
        "tee",
        &[K::PipeWrite],
    ),
    // The Dirty COW discard half on mappings that are no file (anonymous, vDSO), entered by
    // tail call at the end of sys_enter_madvise (one program for both is too much for 6.1).
    ProgramSpec {
        id: P::SysEnterMadviseSpecial,
        name: "sys_enter_madvise_special",
        hook: Hook::TailCall {
            exit: false,
            index: ENTER_MADVISE_SPECIAL,
        },
        group: "madvise-special",
        kinds: &[K::Madvise],
        required: false,
        fallback: "",
    },
    // The write half of compat_sys_exit, entered by tail call for a 32-bit write to a marked
    // object.
    ProgramSpec {
        id: P::CompatSysExitWrite,
        name: "compat_sys_exit_write",
        hook: Hook::TailCall {
            exit: true,
            index: COMPAT_EXIT_WRITE,
        },
        group: "compat_sys_exit_write",
        kinds: &[K::MemWrite, K::PipeWrite],
        required: false,
        fallback: "",
    },
    // The madvise part of compat_sys_enter, entered by tail call for a 32-bit madvise: both
    // halves of the Dirty COW discard check (file-backed and no file) in one program.
    ProgramSpec {
        id: P::CompatSysEnterMadvise,
        name: "compat_sys_enter_madvise",
        hook: Hook::TailCall {
            exit: false,
            index: COMPAT_ENTER_MADVISE,
        },
        group: "compat_sys_enter_madvise",
        kinds: &[K::Madvise],
        required: false,
        fallback: "",
    },
    // The effect of a kernel exploit, at the moment the kernel commits it: credentials grown
    // (commit_creds), namespaces switched outside setns/unshare (switch_task_namespaces).
    ProgramSpec {
        id: P::FentryCommitCreds,
        name: "fentry_commit_creds",
        hook: Hook::FEntry {
            function: "commit_creds",
        },
        group: "commit-creds",
        kinds: &[K::TaskChanged],
        required: false,
        fallback: CHECKPOINT_FALLBACK,
    },
    ProgramSpec {
        id: P::FentrySwitchTaskNamespaces,
        name: "fentry_switch_task_namespaces",
        hook: Hook::FEntry {
            function: "switch_task_namespaces",
        },
        group: "switch-task-namespaces",
        kinds: &[K::TaskChanged],
        required: false,
        fallback: CHECKPOINT_FALLBACK,
    },
    // Writes, splices and tees made by io_uring (no syscall): judged at completion by the
    // write-family and splice logic. No LSM twin: always attached.
    iouring(
        P::IouringCompleteWrite,
        "iouring_complete_write",
        &[
            IORING_OP_WRITE as u32,
            IORING_OP_WRITE_FIXED as u32,
            IORING_OP_WRITEV as u32,
            IORING_OP_WRITEV_FIXED as u32,
            IORING_OP_SPLICE as u32,
            IORING_OP_TEE as u32,
        ],
        &[K::MemWrite, K::PipeWrite],
    ),
    // madvise made by io_uring: the Dirty COW discard half, judged like sys_enter_madvise and
    // sys_enter_madvise_special.
    iouring(
        P::IouringCompleteMadvise,
        "iouring_complete_madvise",
        &[IORING_OP_MADVISE as u32],
        &[K::Madvise],
    ),
    // connect made by io_uring: judged by the socket it reached, like connect(2)'s exit.
    iouring(
        P::IouringCompleteConnect,
        "iouring_complete_connect",
        &[IORING_OP_CONNECT as u32],
        &[K::UnixConnect],
    ),
    // The one program on io_uring's completion tracepoint: it reads the request's opcode and
    // tail-calls the judgement of that opcode, if any (the IouringOp programs above).
    ProgramSpec {
        id: P::IouringComplete,
        name: "iouring_complete",
        hook: Hook::Tracepoint {
            category: "io_uring",
            names: &["io_uring_complete"],
        },
        group: "iouring_complete",
        kinds: &[
            K::FileOpen,
            K::MemWrite,
            K::PipeWrite,
            K::Madvise,
            K::UnixConnect,
            K::Syscall,
        ],
        required: false,
        fallback: "",
    },
    // What kernel lockdown guards, asked for by a container (attempts count: a container
    // without the capability gets EPERM before the kernel's lockdown check): port I/O rights
    // (iopl, ioperm) and kexec (kexec_load, kexec_file_load). One program per pair; the
    // syscall number tells them apart.
    syscall(
        P::SysEnterIoport,
        "sys_enter_ioport",
        Side::Enter,
        &[X::IOPL, X::IOPERM],
        "ioport",
        SYSCALL,
    ),
    syscall(
        P::SysEnterKexec,
        "sys_enter_kexec",
        Side::Enter,
        &[X::KEXEC_LOAD, X::KEXEC_FILE_LOAD],
        "kexec",
        SYSCALL,
    ),
    // The kernel's own lockdown check (security_locked_down), called for everything lockdown
    // guards whether or not lockdown is on: port I/O, MSR writes, kexec, /dev/mem and
    // /dev/port, PCI config writes and BAR maps, debugfs, perf, bpf kernel reads, ACPI
    // tables, hibernation, module parameters... The effect-level view of the whole class,
    // with the kernel's reason; it sees only callers that passed their capability check.
    ProgramSpec {
        id: P::LsmLockedDown,
        name: "lsm_locked_down",
        hook: Hook::Lsm {
            hook: "locked_down",
        },
        group: "locked-down",
        kinds: &[K::TaskChanged],
        required: false,
        fallback: LOCKDOWN_FALLBACK,
    },
    // The rename family, counted per process in the kernel (exchanges, and plain renames onto
    // one destination): a swap loop racing a runtime costs a few records a second.
    syscall(
        P::SysEnterRename,
        "sys_enter_rename",
        Side::Enter,
        &[X::RENAME, X::RENAMEAT, X::RENAMEAT2],
        "rename",
        SYSCALL,
    ),
    // io_uring's renameat, counted with the syscalls'.
    iouring(
        P::IouringCompleteRename,
        "iouring_complete_rename",
        &[IORING_OP_RENAMEAT as u32],
        SYSCALL,
    ),
    // Module autoload: every request_module() the kernel makes in a task's context (socket
    // families and protocols, line disciplines, crypto algorithms, filesystem types), the
    // effect whichever API asked. Absent on kernels without CONFIG_MODULES, which load none.
    ProgramSpec {
        id: P::ModuleRequest,
        name: "module_request",
        hook: Hook::RawTracepoint {
            name: "module_request",
        },
        group: "module_request",
        kinds: &[K::ModuleRequest],
        required: false,
        fallback: "",
    },
    // The effect of every IPv4/IPv6 active open, whatever made it (connect(2), io_uring's
    // IORING_OP_CONNECT, TCP Fast Open's sendto/sendmsg): the socket leaving TCP_CLOSE for
    // TCP_SYN_SENT, to a watched port. connect(2)'s own programs report theirs (and the attempts
    // refused before the socket moves); this one reports the rest.
    ProgramSpec {
        id: P::InetSockSetState,
        name: "inet_sock_set_state",
        hook: Hook::BtfTracepoint {
            name: "inet_sock_set_state",
        },
        group: "inet_sock_set_state",
        kinds: &[K::NetConnect],
        required: false,
        // Not a precision hook (tp_btf is on every supported kernel): no stand-in is named.
        // Without it, only connect(2) and socketcall's programs see these connects: io_uring
        // (IORING_OP_CONNECT) and TCP Fast Open (sendto/sendmsg with MSG_FASTOPEN) opens not.
        fallback: "",
    },
];

/// An io_uring request judgement, in a group of its own.
const fn iouring(
    id: ProgramId,
    name: &'static str,
    opcodes: &'static [u32],
    kinds: &'static [EventKind],
) -> ProgramSpec {
    ProgramSpec {
        id,
        name,
        hook: Hook::IouringOp { opcodes },
        group: name,
        kinds,
        required: false,
        fallback: "",
    }
}

/// The program array of the io_uring completion dispatcher, indexed by request opcode
/// (`enum io_uring_op`, below 64 up to 6.18).
pub const IOURING_TAILS: &str = "IOURING_TAILS";
pub const IOURING_TAIL_SLOTS: u32 = 128;

/// The program arrays the syscall dispatchers tail-call into: entry N of each is the entry or
/// exit logic of x86-64 syscall N; the entries from [`SYSCALL_TAIL_INTERNAL`] on are the second
/// halves of programs. One array per tracepoint: a kernel refuses tail calls between programs
/// of different attach points.
pub const SYS_ENTER_TAILS: &str = "SYS_ENTER_TAILS";
pub const SYS_EXIT_TAILS: &str = "SYS_EXIT_TAILS";
/// Entries of each array: x86-64 has fewer than 512 syscalls.
pub const SYSCALL_TAIL_SLOTS: u32 = 528;
pub const SYSCALL_TAIL_INTERNAL: u32 = 512;
pub const COMPAT_EXIT_OPEN: u32 = SYSCALL_TAIL_INTERNAL;
pub const COMPAT_EXIT_WRITE: u32 = SYSCALL_TAIL_INTERNAL + 1;
pub const COMPAT_ENTER_MADVISE: u32 = SYSCALL_TAIL_INTERNAL;
pub const ENTER_MADVISE_SPECIAL: u32 = SYSCALL_TAIL_INTERNAL + 1;

/// What the dispatchers serve: every kind a watched syscall produces.
const COMPAT_KINDS: &[EventKind] = &[
    K::Setns,
    K::Unshare,
    K::CloneNewNamespace,
    K::Mount,
    K::FileOpen,
    K::Syscall,
    K::UnixConnect,
    K::NetConnect,
    K::MemWrite,
    K::PipeWrite,
];

const fn dispatcher(id: ProgramId, tracepoint: &'static str) -> ProgramSpec {
    ProgramSpec {
        id,
        name: tracepoint,
        hook: Hook::BtfTracepoint { name: tracepoint },
        group: tracepoint,
        kinds: COMPAT_KINDS,
        required: true,
        fallback: "",
    }
}

const LOCKDOWN_FALLBACK: &str = "the iopl/ioperm and kexec_load/kexec_file_load syscall programs and the open programs' hardware class (MSR devices, PCI config and BAR files): the listed entries only, without the kernel's reason";
const CHECKPOINT_FALLBACK: &str =
    "the post-condition checks at the task's next exec, fork, exit or any other event";
const COW_FALLBACK: &str = "the write-family syscall programs on marked /proc/PID/mem files with bpf_find_vma, and the ptrace tracepoint";

const _: () = {
    let mut i = 0;
    while i < PROGRAMS.len() {
        // Increasing ids, each once; gaps allowed (see `ProgramSpec::by_id`).
        assert!(i == 0 || PROGRAMS[i].id as u32 > PROGRAMS[i - 1].id as u32);
        assert!((PROGRAMS[i].id as u32) < crate::maps::PROGRAM_SLOTS);
        i += 1;
    }
};
