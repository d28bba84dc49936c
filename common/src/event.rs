//! Event records written by the eBPF programs. Every record starts with [`EventHeader`].

use crate::{ARGS_LEN, COMM_LEN, PATH_LEN, abi};

/// Namespace slots carried in every header, in this order.
pub const NS_COUNT: usize = 8;

/// Index of a namespace type in [`EventHeader::ns`] and in the config offset arrays.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(
    feature = "user",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "lowercase")
)]
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
            NsType::Mnt => abi::CLONE_NEWNS,
            NsType::Pid => abi::CLONE_NEWPID,
            NsType::Net => abi::CLONE_NEWNET,
            NsType::Uts => abi::CLONE_NEWUTS,
            NsType::Ipc => abi::CLONE_NEWIPC,
            NsType::User => abi::CLONE_NEWUSER,
            NsType::Cgroup => abi::CLONE_NEWCGROUP,
            NsType::Time => abi::CLONE_NEWTIME,
        }
    }
}

/// Header flag: at least one namespace inode could not be read (reported as 0).
pub const HDR_FLAG_NS_PARTIAL: u32 = 1 << 0;
/// Header flag: credentials could not be read (uid/gid/caps are 0).
pub const HDR_FLAG_CRED_PARTIAL: u32 = 1 << 1;

/// Header flags bits 8..16: the [`crate::programs::ProgramId`] of the program that wrote the
/// record, plus one (0: not recorded). Tells which hook served an event (tracepoint, fentry,
/// kprobe, LSM) without a layout change.
pub const HDR_PROGRAM_SHIFT: u32 = 8;
pub const HDR_PROGRAM_MASK: u32 = 0xff << HDR_PROGRAM_SHIFT;

/// The header flag bits naming program `id`.
pub const fn header_program_bits(id: u32) -> u32 {
    ((id + 1) << HDR_PROGRAM_SHIFT) & HDR_PROGRAM_MASK
}

/// The program id recorded in header `flags`, if any.
pub const fn header_program(flags: u32) -> Option<u32> {
    match (flags & HDR_PROGRAM_MASK) >> HDR_PROGRAM_SHIFT {
        0 => None,
        n => Some(n - 1),
    }
}

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
/// Flag of [`ExecEvent::flags`]: the parent is a kernel thread: the kernel itself started this
/// program (a usermode helper: core_pattern pipe, cgroup release_agent, modprobe, uevent helper).
pub const EXEC_FLAG_KERNEL_PARENT: u32 = 1 << 2;
/// Flag of [`ExecEvent::flags`]: the mount the executed file was reached through shows its
/// whole filesystem (`mnt_root` is the superblock's root), not a bind-mounted subtree.
pub const EXEC_FLAG_EXE_WHOLE_FS: u32 = 1 << 3;

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
    /// Mount namespace inode of the mount the task's cwd and root lie in
    /// (`real_mount(fs->pwd.mnt)->mnt_ns->ns.inum`, likewise `fs->root`); 0 when unreadable or
    /// the mount is in no namespace (detached).
    pub cwd_mnt_ns: u32,
    pub root_mnt_ns: u32,
    /// The executed file (`bprm->file`, after the binfmt resolved it; for a script, the
    /// script itself): inode number, ctime (CLOCK_REALTIME, kernel-set on every change of
    /// content or metadata; utimensat cannot set it back), link count (0: a memfd or a deleted
    /// file), `s_dev` and `s_magic` of its superblock. All 0 when unreadable.
    pub exe_ino: u64,
    pub exe_ctime_sec: i64,
    pub exe_ctime_nsec: u32,
    pub exe_nlink: u32,
    pub exe_dev: u32,
    pub exe_magic: u32,
    /// `s_dev` of the superblock of the task's root directory (`fs->root.mnt->mnt_sb`).
    pub root_dev: u32,
    /// Mount namespace inode of the mount the executed file was reached through
    /// (`real_mount(bprm->file->f_path.mnt)->mnt_ns`); 0 when unreadable or detached.
    pub exe_mnt_ns: u32,
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

/// Bytes of a dentry name carried in events (longer names are cut).
pub const NAME_LEN: usize = 64;
/// Bytes of a filesystem type name.
pub const FSTYPE_LEN: usize = 32;
/// Bytes of a Unix socket path (sun_path).
pub const SUN_PATH_LEN: usize = 108;

/// Which mount-family syscall a [`MountEvent`] is about.
pub mod mount_call {
    pub const MOUNT: u32 = 1;
    pub const OPEN_TREE: u32 = 2;
    pub const MOVE_MOUNT: u32 = 3;
    pub const FSOPEN: u32 = 4;
    /// fsconfig(FSCONFIG_SET_STRING, "source", …).
    pub const FSCONFIG_SOURCE: u32 = 5;
    /// fsmount(2): a detached mount of a filesystem context, usable without move_mount.
    pub const FSMOUNT: u32 = 6;
}

/// Key of the `RUNTIME_INODES` map: a file by device and inode number (kernel encoding of the
/// device: major << 20 | minor, as in `super_block.s_dev`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct InodeKey {
    pub dev: u32,
    pub _pad: u32,
    pub ino: u64,
}

/// `EventKind::Mount`, emitted when the syscall returns. Strings are what the caller passed.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MountEvent {
    pub header: EventHeader,
    pub ret: i64,
    /// mount: MS_* flags; open_tree/move_mount/fsopen: their flags.
    pub flags: u64,
    /// `mount_call::*`.
    pub call: u32,
    /// `super_block.s_dev` (kernel encoding) of what was mounted, where the kernel says: the
    /// superblock behind the descriptor fsmount/open_tree returned or move_mount moved. 0: not
    /// known (mount(2), fsopen, fsconfig, a failed call).
    pub dev: u32,
    pub source: [u8; PATH_LEN],
    pub target: [u8; PATH_LEN],
    pub fstype: [u8; FSTYPE_LEN],
    /// What a bind mount that succeeded (mount(2) with MS_BIND, move_mount) attached, as the
    /// kernel resolved it, whatever the strings said: the newest mount of the caller's mount
    /// namespace, its root (the source: inode, `s_dev`, `s_magic`, `i_mode`, `i_rdev`, dentry
    /// name and its parent's) and the dentry it covers. Valid when `bound` has
    /// `BOUND_KNOWN`.
    pub src_ino: u64,
    pub src_dev: u32,
    pub src_magic: u32,
    pub src_mode: u32,
    pub src_rdev: u32,
    /// `BOUND_*`.
    pub bound: u32,
    pub _pad_bound: u32,
    pub src_name: [u8; NAME_LEN],
    pub src_parent: [u8; NAME_LEN],
    /// The name of the dentry the new mount covers (the target, as the kernel resolved it).
    pub mountpoint: [u8; NAME_LEN],
}

/// Flag of [`MountEvent::bound`]: the `src_*` and `mountpoint` fields were read.
pub const BOUND_KNOWN: u32 = 1 << 0;
/// Flag of [`MountEvent::bound`]: the mount's root is the very dentry it covers (a path bound
/// onto itself, as runtimes do to make a path read-only).
pub const BOUND_ONTO_ITSELF: u32 = 1 << 1;

/// Why a [`FileOpenEvent`] was emitted (bits of `FileOpenEvent::class`).
pub mod open_class {
    /// The open failed with an errno worth reporting; only `path` is valid.
    pub const FAILED: u32 = 1 << 0;
    /// A procfs entry by name (sysrq-trigger, kcore, kallsyms, sched_debug, PID/mem).
    pub const PROC_ENTRY: u32 = 1 << 1;
    /// A cgroup v1 `release_agent` or `notify_on_release` file.
    pub const CGROUP_RELEASE: u32 = 1 << 2;
    /// Anything on debugfs or tracefs.
    pub const DEBUGFS: u32 = 1 << 3;
    /// The binfmt_misc filesystem.
    pub const BINFMT_MISC: u32 = 1 << 4;
    /// A block device.
    pub const BLOCK_DEVICE: u32 = 1 << 5;
    /// /dev/mem, /dev/kmem or /dev/port (char 1:1, 1:2, 1:4).
    pub const MEM_DEVICE: u32 = 1 << 6;
    /// An inode the agent registered as a container runtime binary.
    pub const RUNTIME_BINARY: u32 = 1 << 7;
    /// The file lives in a mount namespace other than the opener's.
    pub const FOREIGN_MNT_NS: u32 = 1 << 8;
    /// sysfs `uevent_helper` (a usermode-helper path).
    pub const UEVENT_HELPER: u32 = 1 << 9;
    /// The /dev/userfaultfd device.
    pub const USERFAULTFD_DEV: u32 = 1 << 10;
    /// Opened for writing on selinuxfs, securityfs (AppArmor, IMA, ...) or smackfs: the host's
    /// LSM and integrity policy.
    pub const SECURITY_POLICY: u32 = 1 << 11;
    /// Opened for writing on sysfs under `kernel/`, `module/` or `firmware/`, or on procfs
    /// under `irq/` or `bus/` (not `bus/pci/`), by the top directory below the
    /// filesystem's root (`FileOpenEvent::top`).
    pub const KERNEL_INTERFACE: u32 = 1 << 12;
    /// Raw hardware behind the kernel's back: an MSR device (char `MSR_MAJOR`:*, whatever its
    /// name), a sysfs regular file named `config` or `resource<N>[_wc]` (a PCI device's
    /// configuration space and BARs; the agent checks the parent is a PCI address) or a procfs
    /// file named `BB.F`-like under /proc/bus/pci (the agent checks the directories).
    pub const HARDWARE: u32 = 1 << 13;
}

/// `EventKind::FileOpen`: an open (openat, openat2, open) of a watched object returned.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileOpenEvent {
    pub header: EventHeader,
    /// The fd, or -errno.
    pub ret: i64,
    /// O_* flags passed.
    pub open_flags: u32,
    /// `open_class::*` bits.
    pub class: u32,
    /// super_block.s_magic of the opened file's filesystem.
    pub fs_magic: u32,
    /// inode.i_mode.
    pub i_mode: u32,
    /// inode.i_rdev (kernel encoding, [`abi::kernel_dev`]).
    pub rdev: u32,
    /// file.f_mode (FMODE_* bits).
    pub f_mode: u32,
    pub ino: u64,
    /// super_block.s_dev (kernel encoding).
    pub dev: u32,
    /// Mount namespace inode of the mount the file was opened through (0 = none/unknown).
    pub file_mnt_ns: u32,
    /// Dentry names of the file, its parent and its grandparent.
    pub name: [u8; NAME_LEN],
    pub parent: [u8; NAME_LEN],
    pub grandparent: [u8; NAME_LEN],
    /// The path string the caller passed.
    pub path: [u8; PATH_LEN],
    /// Components from the root of the file's filesystem (its superblock's root dentry) down
    /// to the file: 1 = in the root itself; 0 = not walked or deeper than the walk goes.
    pub depth: u32,
    pub _pad: u32,
    /// The first of them (the top directory below the filesystem root: `kernel` for
    /// /sys/kernel/..., `irq` for /proc/irq/...), whatever mount point or bind mount the
    /// file was opened through; empty when `depth` is 0.
    pub top: [u8; NAME_LEN],
}

/// `EventKind::SysctlWrite`: a write to /proc/sys seen by the cgroup/sysctl program.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SysctlEvent {
    pub header: EventHeader,
    /// Full name with slashes, e.g. `kernel/core_pattern`.
    pub name: [u8; NAME_LEN],
    /// The new value as written (not NUL-terminated when `value_len` = its size).
    pub value: [u8; 128],
    pub value_len: u32,
    pub _pad: u32,
}

/// `EventKind::Madvise`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MadviseEvent {
    pub header: EventHeader,
    pub start: u64,
    pub len: u64,
    pub advice: u32,
    pub _pad: u32,
    /// The mapping at `start`: vm_flags, bounds and file.
    pub vm_flags: u64,
    pub vm_start: u64,
    pub vm_end: u64,
    pub file_ino: u64,
    pub file_dev: u32,
    pub _pad2: u32,
    pub file_name: [u8; NAME_LEN],
}

/// Bits of `MemWriteEvent::vma` (only known when the target is the writer itself).
pub mod vma_bits {
    pub const FOUND: u32 = 1 << 0;
    pub const FILE_BACKED: u32 = 1 << 1;
    pub const WRITABLE: u32 = 1 << 2;
    pub const SHARED: u32 = 1 << 3;
}

/// `EventKind::MemWrite`: a write (write, pwrite64, writev, pwritev, pwritev2) through a
/// /proc/PID/mem file returned, whatever descriptor number or process held it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemWriteEvent {
    pub header: EventHeader,
    pub ret: i64,
    /// Address written (the file position).
    pub addr: u64,
    /// Bytes asked (write, pwrite64) or, for the vectored writes, bytes written.
    pub len: u64,
    /// Process whose memory is written: the writer's own tgid when the file is its own mem
    /// (the kernel compares the mm at the write), else the /proc/PID directory name — a pid in
    /// the writer's pid namespace (`MEMW_PID_IN_WRITER_NS`) — or, with neither flag, the host
    /// tgid of a process that opened its own mem and handed the descriptor on.
    pub target_pid: u32,
    /// `vma_bits::*` of the mapping at `addr` when the target is the writer.
    pub vma: u32,
    pub file_ino: u64,
    pub file_name: [u8; NAME_LEN],
    /// `MEMW_*`.
    pub flags: u32,
    pub _pad: u32,
}

/// Flag of [`MemWriteEvent::flags`]: the target is the writer itself.
pub const MEMW_SELF: u32 = 1 << 0;
/// Flag of [`MemWriteEvent::flags`]: `target_pid` is as the writer's pid namespace numbers it.
pub const MEMW_PID_IN_WRITER_NS: u32 = 1 << 1;

/// `EventKind::CowFault`: the kernel's fault handler was asked for a forced write (FOLL_FORCE:
/// /proc/PID/mem or ptrace POKE) into a read-only, private, file-backed mapping — the
/// copy-on-write break Dirty COW races. Seen in `handle_mm_fault`, whatever syscall led there.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CowFaultEvent {
    pub header: EventHeader,
    /// Faulting address.
    pub addr: u64,
    /// `FAULT_FLAG_*` the fault was raised with.
    pub fault_flags: u32,
    /// `COW_FAULT_*`.
    pub flags: u32,
    pub vm_flags: u64,
    pub vm_start: u64,
    pub vm_end: u64,
    pub file_ino: u64,
    pub file_dev: u32,
    pub _pad: u32,
    pub file_name: [u8; NAME_LEN],
}

/// Flag of [`CowFaultEvent::flags`]: the mapping belongs to another process's memory (the
/// ptrace variant: the tracer's write faults in the tracee's mm).
pub const COW_FAULT_REMOTE_MM: u32 = 1 << 0;

/// `EventKind::TaskChanged`: the kernel is about to give a container task credentials beyond
/// its current ones, other namespaces, or was asked by it for what lockdown guards
/// (`task_change::LOCKED_DOWN`). For the first two: credentials beyond
/// its current ones (`commit_creds`), or other namespaces outside a setns or unshare syscall
/// (`switch_task_namespaces`): what a kernel exploit does, whichever bug it used. The header
/// describes the task with what it is being given (its new uid, gid and effective
/// capabilities, or its new namespaces), so that every post-condition rule judges it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskChangedEvent {
    pub header: EventHeader,
    /// `task_change::*`.
    pub change: u32,
    /// `LOCKED_DOWN`: the kernel's `enum lockdown_reason` value (its numbering differs
    /// between kernels: the agent names it from the kernel's BTF). 0 otherwise.
    pub reason: u32,
    /// The effective capabilities and uid the task had before (`CREDS`; 0 otherwise).
    pub old_cap_effective: u64,
    pub old_uid: u32,
    pub _pad2: u32,
}

/// What a [`TaskChangedEvent`] is about.
pub mod task_change {
    pub const CREDS: u32 = 1;
    pub const NAMESPACES: u32 = 2;
    /// `security_locked_down(reason)` (lsm/locked_down): the kernel asked whether lockdown
    /// allows what the task is about to do (port I/O, MSR writes, kexec, /dev/mem, PCI
    /// writes, ...). Nothing changes; the header is the task as it is.
    pub const LOCKED_DOWN: u32 = 3;
}

/// Which syscall a [`SyscallEvent`] is about.
pub mod syscall_id {
    pub const PTRACE: u32 = 1;
    pub const PROCESS_VM_WRITEV: u32 = 2;
    pub const BPF: u32 = 3;
    pub const OPEN_BY_HANDLE_AT: u32 = 4;
    pub const USERFAULTFD: u32 = 5;
    pub const INIT_MODULE: u32 = 6;
    pub const FINIT_MODULE: u32 = 7;
    pub const IOPL: u32 = 8;
    pub const IOPERM: u32 = 9;
    pub const KEXEC_LOAD: u32 = 10;
    pub const KEXEC_FILE_LOAD: u32 = 11;
    /// The rename family (rename, renameat, renameat2, io_uring's IORING_OP_RENAMEAT), counted
    /// in the kernel per process: see [`super::rename`].
    pub const RENAME: u32 = 12;
}

/// `Syscall` records of [`syscall_id::RENAME`] are counts, not calls: the kernel counts a
/// process's exchanges (renameat2 with RENAME_EXCHANGE) and, apart, its plain renames onto one
/// destination (by a hash of the name passed), per window of [`WINDOW_NS`]; a record goes out
/// when a count reaches a power of 16 (exchanges: 1, 16, 256, …; plain renames from 256 on).
/// `args` are [`COUNT`], [`FLAGS`], [`WINDOW_NS`] and [`ENTRY`] (the low byte an `ENTRY_*`,
/// bits 32.. the destination hash of a plain rename).
pub mod rename {
    pub const COUNT: usize = 0;
    pub const FLAGS: usize = 1;
    /// Index of the args slot: ns from the window's first counted call to this one.
    pub const ELAPSED: usize = 2;
    pub const ENTRY: usize = 3;
    pub const WINDOW_NS: u64 = 1_000_000_000;
    /// The first count of a plain-rename destination that is reported (16^2).
    pub const PLAIN_FIRST_REPORT: u64 = 256;
    pub const ENTRY_RENAME: u64 = 1;
    pub const ENTRY_RENAMEAT: u64 = 2;
    pub const ENTRY_RENAMEAT2: u64 = 3;
    pub const ENTRY_IOURING: u64 = 4;

    /// Whether `count` is one the kernel reports: 1, 16, 256, 4096, …
    pub const fn reported(count: u64) -> bool {
        // One bit set, at a position that is a multiple of 4.
        count & count.wrapping_sub(1) == 0 && count & 0x1111_1111_1111_1111 != 0
    }

    const _: () = assert!(reported(1) && reported(16) && reported(256) && reported(65536));
    const _: () = assert!(!reported(0) && !reported(2) && !reported(32) && !reported(255));
}

/// `EventKind::Syscall`: a watched syscall returned; `args` are its first four arguments.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyscallEvent {
    pub header: EventHeader,
    pub ret: i64,
    /// `syscall_id::*`.
    pub id: u32,
    pub _pad: u32,
    pub args: [u64; 4],
}

/// `EventKind::PipeWrite`: a write into a pipe that a read-only regular file was spliced into.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PipeWriteEvent {
    pub header: EventHeader,
    pub ret: i64,
    pub fd: u32,
    /// f_mode of the spliced file (FMODE_WRITE clear).
    pub file_f_mode: u32,
    pub file_ino: u64,
    pub file_dev: u32,
    pub _pad: u32,
    pub file_name: [u8; NAME_LEN],
    pub file_parent: [u8; NAME_LEN],
}

/// [`PipeWriteEvent::fd`] of a write that named its file, not a descriptor number: an io_uring
/// request, whose struct file is known at completion but whose fd (if it had one) is not.
pub const FD_NONE: u32 = u32::MAX;

/// `EventKind::UnixConnect`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectEvent {
    pub header: EventHeader,
    pub ret: i64,
    /// The socket reached (when the connect succeeded and its listener bound a path): the
    /// inode of that path and its device, and the name the listener bound it as, which no
    /// symlink, bind mount or link the container made changes. 0 / empty otherwise.
    pub peer_ino: u64,
    pub peer_dev: u32,
    /// The connecting descriptor.
    pub fd: u32,
    /// The path the caller passed.
    pub path: [u8; SUN_PATH_LEN],
    pub _pad: u32,
    pub peer_name: [u8; NAME_LEN],
}

/// connect(2) of an IPv4/IPv6 socket to a port of the watched set: the destination as the
/// caller passed it (network byte order address, port in host order) and the result.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetConnectEvent {
    pub header: EventHeader,
    pub ret: i64,
    /// `AF_INET` or `AF_INET6`.
    pub family: u16,
    pub port: u16,
    /// The connecting descriptor.
    pub fd: u32,
    /// IPv4 in the first 4 bytes, or the IPv6 address.
    pub addr: [u8; 16],
}

/// What connect(2)'s entry keeps of an IPv4/IPv6 destination on a watched port.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct NetConnectPending {
    pub family: u16,
    pub port: u16,
    pub fd: u32,
    pub addr: [u8; 16],
}

/// Longest module name `request_module` asks for that a record keeps (the kernel builds it in
/// a `MODULE_NAME_LEN`, 56-byte, buffer; longer names are cut and NUL-terminated here).
pub const MODULE_NAME_LEN: usize = 64;

/// The kernel asked for a module on behalf of the current task (`request_module`: a socket
/// family or protocol, a tty line discipline, a crypto algorithm, a filesystem type...), as
/// the `module_request` tracepoint reports it, whether or not the module exists.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModuleRequestEvent {
    pub header: EventHeader,
    /// The name asked for (`net-pf-38`, `tty-ldisc-16`, `crypto-foo`, `fs-bar`...), NUL-ended.
    pub name: [u8; MODULE_NAME_LEN],
    /// 1: the caller waits for modprobe (`request_module`), 0: it does not (`_nowait`).
    pub wait: u32,
    pub _pad: u32,
}

const _: () = assert!(core::mem::size_of::<ModuleRequestEvent>() == 112 + MODULE_NAME_LEN + 8);
const _: () = assert!(core::mem::size_of::<NetConnectEvent>() == 144);
const _: () = assert!(core::mem::size_of::<NetConnectPending>() == 24);
const _: () = assert!(core::mem::size_of::<EventHeader>() == 112);
const _: () = assert!(core::mem::size_of::<MountEvent>() == 904);
const _: () = assert!(core::mem::size_of::<FileOpenEvent>() == 608 + 8 + NAME_LEN);
const _: () = assert!(core::mem::size_of::<SysctlEvent>() == 312);
const _: () = assert!(core::mem::size_of::<MadviseEvent>() == 240);
const _: () = assert!(core::mem::size_of::<MemWriteEvent>() == 224);
const _: () = assert!(core::mem::size_of::<SyscallEvent>() == 160);
const _: () = assert!(core::mem::size_of::<CowFaultEvent>() == 112 + 56 + NAME_LEN);
const _: () = assert!(core::mem::size_of::<PipeWriteEvent>() == 272);
const _: () = assert!(core::mem::size_of::<ConnectEvent>() == 312);
const _: () = assert!(core::mem::size_of::<ExecEvent>() == 936);
const _: () = assert!(core::mem::size_of::<ForkEvent>() == 120);
const _: () = assert!(core::mem::size_of::<ExitEvent>() == 120);
const _: () = assert!(core::mem::size_of::<NamespaceEvent>() == 168);
const _: () = assert!(core::mem::size_of::<TaskChangedEvent>() == 136);
// Records are submitted to ring buffers, which align to 8 bytes.
const _: () = assert!(core::mem::align_of::<EventHeader>() == 8);
