//! The syscalls a record can name: the watched syscalls of [`crate::event::SyscallEvent`] and
//! the mount-family calls of [`crate::event::MountEvent`], as typed enums over their wire ids.
//! Userspace decodes them with `TryFrom<u32>`; their serde names are the ones the event log
//! has always written.

use crate::{
    event::{mount_call, syscall_id, task_change},
    programs::ProgramId,
};

/// A wire id that this build does not know.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnknownCall(pub u32);

macro_rules! calls {
    ($(#[$meta:meta])* $ty:ident { $($(#[$doc:meta])* $name:ident = $id:path => $label:literal,)+ }) => {
        $(#[$meta])*
        #[repr(u32)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[cfg_attr(
            feature = "user",
            derive(serde::Serialize, serde::Deserialize),
            serde(rename_all = "snake_case")
        )]
        pub enum $ty {
            $($(#[$doc])* $name = $id,)+
        }

        impl $ty {
            pub const ALL: &'static [$ty] = &[$($ty::$name,)+];

            /// The syscall's name (as the event log writes it).
            pub const fn name(self) -> &'static str {
                match self {
                    $($ty::$name => $label,)+
                }
            }
        }

        impl TryFrom<u32> for $ty {
            type Error = UnknownCall;

            fn try_from(value: u32) -> Result<Self, UnknownCall> {
                match value {
                    $(v if v == $id => Ok($ty::$name),)+
                    other => Err(UnknownCall(other)),
                }
            }
        }
    };
}

calls! {
    /// A syscall of the `Syscall` event kind.
    WatchedSyscall {
        Ptrace = syscall_id::PTRACE => "ptrace",
        ProcessVmWritev = syscall_id::PROCESS_VM_WRITEV => "process_vm_writev",
        Bpf = syscall_id::BPF => "bpf",
        OpenByHandleAt = syscall_id::OPEN_BY_HANDLE_AT => "open_by_handle_at",
        Userfaultfd = syscall_id::USERFAULTFD => "userfaultfd",
        InitModule = syscall_id::INIT_MODULE => "init_module",
        FinitModule = syscall_id::FINIT_MODULE => "finit_module",
        /// rename, renameat, renameat2 and io_uring's renameat, counted per process.
        Rename = syscall_id::RENAME => "rename",
        Iopl = syscall_id::IOPL => "iopl",
        Ioperm = syscall_id::IOPERM => "ioperm",
        KexecLoad = syscall_id::KEXEC_LOAD => "kexec_load",
        KexecFileLoad = syscall_id::KEXEC_FILE_LOAD => "kexec_file_load",
    }
}

calls! {
    /// The call of a `Mount` event.
    MountCall {
        Mount = mount_call::MOUNT => "mount",
        OpenTree = mount_call::OPEN_TREE => "open_tree",
        MoveMount = mount_call::MOVE_MOUNT => "move_mount",
        Fsopen = mount_call::FSOPEN => "fsopen",
        /// fsconfig(FSCONFIG_SET_STRING, "source", …).
        Fsconfig = mount_call::FSCONFIG_SOURCE => "fsconfig",
        Fsmount = mount_call::FSMOUNT => "fsmount",
    }
}

calls! {
    /// What a `TaskChanged` event is about.
    TaskChange {
        /// commit_creds: the task's credentials grew.
        Creds = task_change::CREDS => "creds",
        /// switch_task_namespaces outside setns/unshare.
        Namespaces = task_change::NAMESPACES => "namespaces",
        /// security_locked_down: the kernel's lockdown check for what the task asked.
        LockedDown = task_change::LOCKED_DOWN => "locked_down",
    }
}

impl WatchedSyscall {
    /// The program whose records carry this syscall.
    pub const fn program(self) -> ProgramId {
        match self {
            WatchedSyscall::Ptrace => ProgramId::SysEnterPtrace,
            WatchedSyscall::ProcessVmWritev => ProgramId::SysEnterProcessVmWritev,
            WatchedSyscall::Bpf => ProgramId::SysEnterBpf,
            WatchedSyscall::OpenByHandleAt => ProgramId::SysEnterOpenByHandleAt,
            WatchedSyscall::Userfaultfd => ProgramId::SysEnterUserfaultfd,
            WatchedSyscall::InitModule => ProgramId::SysEnterInitModule,
            WatchedSyscall::FinitModule => ProgramId::SysEnterFinitModule,
            WatchedSyscall::Rename => ProgramId::SysEnterRename,
            WatchedSyscall::Iopl | WatchedSyscall::Ioperm => ProgramId::SysEnterIoport,
            WatchedSyscall::KexecLoad | WatchedSyscall::KexecFileLoad => ProgramId::SysEnterKexec,
        }
    }
}

// Every watched syscall's program produces `Syscall` records.
const _: () = {
    let mut i = 0;
    while i < WatchedSyscall::ALL.len() {
        let Some(p) = crate::programs::ProgramSpec::by_id(WatchedSyscall::ALL[i].program() as u32)
        else {
            panic!("a watched syscall's program is missing");
        };
        assert!(p.kinds.len() == 1 && p.kinds[0] as u32 == crate::kind::EventKind::Syscall as u32);
        i += 1;
    }
};
