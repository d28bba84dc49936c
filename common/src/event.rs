//! Event records written by the eBPF programs. Every record starts with [`EventHeader`].

use crate::{ARGS_LEN, COMM_LEN, PATH_LEN};

/// Namespace slots carried in every header, in this order.
pub const NS_COUNT: usize = 8;

/// Index of a namespace type in [`EventHeader::ns`] and in the config offset arrays.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NsType {
    Mnt = 0,
    /// `nsproxy->pid_ns_for_children`: the pid namespace new children are created in. It is the
    /// task's own pid namespace except after unshare(CLONE_NEWPID)/setns(pid).
    Pid = 1,
    Net = 2,
    Uts = 3,
    Ipc = 4,
    /// From the task's credentials (`cred->user_ns`), not from nsproxy.
    User = 5,
    Cgroup = 6,
    Time = 7,
}

impl NsType {
    pub const ALL: [NsType; NS_COUNT] = [
        NsType::Mnt,
        NsType::Pid,
        NsType::Net,
        NsType::Uts,
        NsType::Ipc,
        NsType::User,
        NsType::Cgroup,
        NsType::Time,
    ];

    /// The name used by /proc/PID/ns and by nsenter.
    pub const fn name(self) -> &'static str {
        match self {
            NsType::Mnt => "mnt",
            NsType::Pid => "pid",
            NsType::Net => "net",
            NsType::Uts => "uts",
            NsType::Ipc => "ipc",
            NsType::User => "user",
            NsType::Cgroup => "cgroup",
            NsType::Time => "time",
        }
    }

    /// The CLONE_NEW* flag of this namespace type (clone, unshare and setns's nstype).
    pub const fn clone_flag(self) -> u64 {
        match self {
            NsType::Mnt => clone_flags::CLONE_NEWNS,
            NsType::Pid => clone_flags::CLONE_NEWPID,
            NsType::Net => clone_flags::CLONE_NEWNET,
            NsType::Uts => clone_flags::CLONE_NEWUTS,
            NsType::Ipc => clone_flags::CLONE_NEWIPC,
            NsType::User => clone_flags::CLONE_NEWUSER,
            NsType::Cgroup => clone_flags::CLONE_NEWCGROUP,
            NsType::Time => clone_flags::CLONE_NEWTIME,
        }
    }
}

/// The CLONE_NEW* flags from include/uapi/linux/sched.h.
pub mod clone_flags {
    pub const CLONE_NEWTIME: u64 = 0x0000_0080;
    pub const CLONE_NEWNS: u64 = 0x0002_0000;
    pub const CLONE_NEWCGROUP: u64 = 0x0200_0000;
    pub const CLONE_NEWUTS: u64 = 0x0400_0000;
    pub const CLONE_NEWIPC: u64 = 0x0800_0000;
    pub const CLONE_NEWUSER: u64 = 0x1000_0000;
    pub const CLONE_NEWPID: u64 = 0x2000_0000;
    pub const CLONE_NEWNET: u64 = 0x4000_0000;
    /// Any namespace-creating flag. CLONE_NEWTIME is left out for clone(2): there its bit is
    /// CSIGNAL territory (0x80 is part of the exit signal); clone3 and unshare check it apart.
    pub const CLONE_NEW_MASK: u64 = CLONE_NEWNS
        | CLONE_NEWCGROUP
        | CLONE_NEWUTS
        | CLONE_NEWIPC
        | CLONE_NEWUSER
        | CLONE_NEWPID
        | CLONE_NEWNET;
}

/// Header flag: at least one namespace inode could not be read (reported as 0).
pub const HDR_FLAG_NS_PARTIAL: u32 = 1 << 0;
/// Header flag: credentials could not be read (uid/gid/caps are 0).
pub const HDR_FLAG_CRED_PARTIAL: u32 = 1 << 1;

/// Common first part of every record. Describes the task the event is about.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventHeader {
    /// [`crate::SCHEMA_VERSION`] of the writer.
    pub schema_version: u16,
    /// `size_of::<EventHeader>()` of the writer; a second guard against layout drift.
    pub header_size: u16,
    /// [`crate::kind::EventKind`] as u32.
    pub kind: u32,
    /// CLOCK_BOOTTIME nanoseconds when the event was recorded.
    pub ktime_ns: u64,
    /// Process id (task->tgid) in the initial pid namespace.
    pub tgid: u32,
    /// Thread id (task->pid) in the initial pid namespace.
    pub tid: u32,
    /// Process id of the real parent.
    pub ppid: u32,
    /// Real uid and gid (cred->uid, cred->gid) as seen from the initial user namespace.
    pub uid: u32,
    pub gid: u32,
    /// `HDR_FLAG_*`.
    pub flags: u32,
    /// Boot-time start of the process (group leader's start_boottime, ns): with `tgid`, an
    /// identity that survives pid reuse. /proc/PID/stat field 22 is the same clock in ticks.
    pub start_time_ns: u64,
    /// cgroup v2 id of the task (the inode number of its cgroup2 directory).
    pub cgroup_id: u64,
    /// Effective capability mask.
    pub cap_effective: u64,
    /// Namespace inode numbers indexed by [`NsType`].
    pub ns: [u32; NS_COUNT],
    /// task->comm, NUL-padded.
    pub comm: [u8; COMM_LEN],
}

/// Flag of [`ExecEvent::flags`]: the file name did not fit.
pub const EXEC_FLAG_FILENAME_TRUNCATED: u32 = 1 << 0;
/// Flag of [`ExecEvent::flags`]: the argument vector did not fit.
pub const EXEC_FLAG_ARGS_TRUNCATED: u32 = 1 << 1;

/// `EventKind::ProcessExec`: the header describes the task after the new image is in place.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExecEvent {
    pub header: EventHeader,
    /// `bprm->filename` as passed to execve, relative to the task's mount namespace.
    pub filename: [u8; PATH_LEN],
    /// The argument vector, NUL-separated, as the new image sees it.
    pub args: [u8; ARGS_LEN],
    /// Valid bytes of `args`.
    pub args_len: u32,
    /// `EXEC_FLAG_*`.
    pub flags: u32,
}

/// `EventKind::ProcessFork`: the header describes the NEW process (the child).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ForkEvent {
    pub header: EventHeader,
    /// tgid of the task that called fork/clone (differs from `header.ppid` with CLONE_PARENT).
    pub creator_tgid: u32,
    pub _pad: u32,
}

/// `EventKind::ProcessExit`: the process's leader thread is exiting.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExitEvent {
    pub header: EventHeader,
    /// task->exit_code (wait status encoding).
    pub exit_code: i32,
    pub _pad: u32,
}

/// `EventKind::Setns`, `Unshare`, `CloneNewNamespace`, emitted when the syscall returns. The
/// header holds the namespaces AFTER the call; `ns_before` those at entry. The namespaces a
/// setns actually joined are the slots that differ.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NamespaceEvent {
    pub header: EventHeader,
    /// Syscall return value (child pid for clone).
    pub ret: i64,
    /// setns: nstype; unshare: flags; clone/clone3: clone flags.
    pub flags: u64,
    /// setns: the fd passed; otherwise -1.
    pub fd: i32,
    pub _pad: u32,
    pub ns_before: [u32; NS_COUNT],
}

const _: () = assert!(core::mem::size_of::<EventHeader>() == 112);
const _: () = assert!(core::mem::size_of::<ExecEvent>() == 888);
const _: () = assert!(core::mem::size_of::<ForkEvent>() == 120);
const _: () = assert!(core::mem::size_of::<ExitEvent>() == 120);
const _: () = assert!(core::mem::size_of::<NamespaceEvent>() == 168);
// Records are submitted to ring buffers, which align to 8 bytes.
const _: () = assert!(core::mem::align_of::<EventHeader>() == 8);
