//! Every map of the object, and the read-only config global (falco's maps.h idea: one place).

use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LruHashMap, PerCpuArray, ProgramArray, RingBuf},
};
use escapewatch_common::{
    config::KernelConfig,
    event::{
        ConnectEvent, FileOpenEvent, InodeKey, MountEvent, NAME_LEN, NS_COUNT, NetConnectPending,
    },
    kind::KIND_SLOTS,
    maps::{
        ATTEMPT_BUDGET_ENTRIES, AttemptBudget, AttemptKey, PENDING_SYSCALLS_ENTRIES, PROGRAM_SLOTS,
        RING_ATTEMPTS_DEFAULT_BYTES, RING_CRITICAL_DEFAULT_BYTES, RING_LIFECYCLE_DEFAULT_BYTES,
        RUNTIME_INODES_ENTRIES, WATCHED_PORTS_ENTRIES,
    },
    programs::{IOURING_TAIL_SLOTS, SYSCALL_TAIL_SLOTS},
};

/// Filled in by the agent at load time (offsets from the running kernel's BTF). Read it only
/// through [`cfg!`](crate::cfg): the compiler would otherwise fold the compiled-in value.
#[unsafe(no_mangle)]
pub static CONFIG: KernelConfig = KernelConfig::UNCONFIGURED;

/// Read one field of [`CONFIG`] so that the load-time value, not the compiled one, is used.
#[macro_export]
macro_rules! cfg {
    ($($field:tt)+) => {
        $crate::maps::read_config(core::ptr::addr_of!($crate::maps::CONFIG.$($field)+))
    };
}

/// Volatile read of a field of [`CONFIG`] (see [`cfg!`](crate::cfg)).
#[inline(always)]
pub fn read_config<T: Copy>(field: *const T) -> T {
    // SAFETY: only ever called with a pointer to a field of the CONFIG static.
    unsafe { core::ptr::read_volatile(field) }
}

/// Low-volume, security-relevant kinds (namespace changes, escape primitives).
#[map]
pub static EVENTS_CRITICAL: RingBuf = RingBuf::with_byte_size(RING_CRITICAL_DEFAULT_BYTES, 0);

/// High-volume process lifecycle kinds. Separate so a fork storm cannot crowd out the above.
#[map]
pub static EVENTS_LIFECYCLE: RingBuf = RingBuf::with_byte_size(RING_LIFECYCLE_DEFAULT_BYTES, 0);

/// Attempt-class records (failed opens, failed or no-op namespace calls, failed watched
/// syscalls), within each container's budget (helpers/budget.rs). Its own buffer: attempts can
/// fill it, never EVENTS_CRITICAL.
#[map]
pub static EVENTS_ATTEMPTS: RingBuf = RingBuf::with_byte_size(RING_ATTEMPTS_DEFAULT_BYTES, 0);

/// Attempt records per (cgroup, kind) in the current window, and those not sent.
#[map]
pub static ATTEMPT_BUDGET: LruHashMap<AttemptKey, AttemptBudget> =
    LruHashMap::with_max_entries(ATTEMPT_BUDGET_ENTRIES, 0);

/// Attempt records not sent because their container was over budget, by event kind id.
#[map]
pub static BUDGETED_BY_KIND: PerCpuArray<u64> = PerCpuArray::with_max_entries(KIND_SLOTS, 0);

/// Records lost because a ring-buffer reserve failed, by event kind id.
#[map]
pub static LOST_BY_KIND: PerCpuArray<u64> = PerCpuArray::with_max_entries(KIND_SLOTS, 0);

/// Errors inside programs (a kernel read that failed), by `ProgramId`.
#[map]
pub static PROGRAM_ERRORS: PerCpuArray<u64> = PerCpuArray::with_max_entries(PROGRAM_SLOTS, 0);

/// What a thread passed into a watched syscall, kept until the syscall returns.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Pending {
    /// The `EventKind` to emit at exit.
    pub kind: u32,
    /// For `EventKind::Syscall`: the `syscall_id`.
    pub id: u32,
    pub args: [u64; 4],
    /// Namespaces at entry (namespace kinds).
    pub ns_before: [u32; NS_COUNT],
}

/// Keyed by thread id. LRU so a thread killed inside the syscall cannot leak an entry forever.
#[map]
pub static PENDING_SYSCALLS: LruHashMap<u32, Pending> =
    LruHashMap::with_max_entries(PENDING_SYSCALLS_ENTRIES, 0);

/// Mount-family arguments (strings read at entry, where the kernel reads them too).
#[map]
pub static PENDING_MOUNT: LruHashMap<u32, MountEvent> = LruHashMap::with_max_entries(1024, 0);

/// connect(2) socket paths read at entry.
#[map]
pub static PENDING_CONNECT: LruHashMap<u32, ConnectEvent> = LruHashMap::with_max_entries(1024, 0);

/// connect(2) IPv4/IPv6 destinations on a watched port, read at entry.
#[map]
pub static PENDING_NET_CONNECT: LruHashMap<u32, NetConnectPending> =
    LruHashMap::with_max_entries(1024, 0);

/// Destination ports (host order) whose IPv4/IPv6 connects are reported: the runtime and
/// orchestrator API ports of the agent's config (filled by the loader).
#[map]
pub static WATCHED_PORTS: HashMap<u16, u8> = HashMap::with_max_entries(WATCHED_PORTS_ENTRIES, 0);

/// FileOpen records the LSM file_open hook assembled inside an open syscall; the syscall's
/// exit completes them with the return value and sends them.
#[map]
pub static PENDING_OPEN: LruHashMap<u32, FileOpenEvent> = LruHashMap::with_max_entries(1024, 0);

/// Per-CPU scratch space for records too large for the 512-byte stack.
#[map]
pub static SCRATCH_OPEN: PerCpuArray<FileOpenEvent> = PerCpuArray::with_max_entries(1, 0);
#[map]
pub static SCRATCH_MOUNT: PerCpuArray<MountEvent> = PerCpuArray::with_max_entries(1, 0);
#[map]
pub static SCRATCH_CONNECT: PerCpuArray<ConnectEvent> = PerCpuArray::with_max_entries(1, 0);

/// One per-CPU word that values pass through to become unknown to the verifier
/// ([`crate::helpers::opaque`]).
#[map]
pub static OPAQUE: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// What a marked file descriptor is.
pub const MARK_PROC_MEM: u32 = 1;
pub const MARK_PIPE_SPLICED: u32 = 2;

/// An open object the write path must look at: a /proc/PID/mem file, or a pipe a read-only
/// file was spliced into (with that file's identity).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Mark {
    pub kind: u32,
    /// /proc/PID/mem: the host tgid of the opener when it opened its own memory (`flags` has
    /// `MEMW_SELF`), else the /proc/PID directory's number (`MEMW_PID_IN_WRITER_NS`).
    pub target_pid: u32,
    /// `MEMW_*` as seen by the opener, for /proc/PID/mem marks.
    pub flags: u32,
    pub _pad: u32,
    /// The marked object's own inode: checked at write time, so an inode address reused after
    /// the marked one was freed (the entry outlives it until the LRU drops it) never matches.
    pub obj_ino: u64,
    pub obj_dev: u32,
    pub _pad2: u32,
    /// The file the mark is about: /proc/PID/mem itself, or the file spliced into the pipe.
    pub file_ino: u64,
    pub file_dev: u32,
    pub file_f_mode: u32,
    pub file_name: [u8; NAME_LEN],
    pub file_parent: [u8; NAME_LEN],
}

/// Key: the kernel address of the marked object's `struct inode` (`file->f_inode`). The mark
/// follows the object, not a descriptor number: dup/dup2/dup3/F_DUPFD, fork, SCM_RIGHTS and a
/// reopen of the pipe through /proc/PID/fd/N all reach it. LRU: nothing removes a mark when the
/// object is released (no cheap hook for that here); stale entries age out, and `obj_ino`/
/// `obj_dev` keep a reused address from matching.
#[map]
pub static MARKED_FDS: LruHashMap<u64, Mark> = LruHashMap::with_max_entries(4096, 0);
#[map]
pub static SCRATCH_MARK: PerCpuArray<Mark> = PerCpuArray::with_max_entries(1, 0);

/// A mapping a process discards pages of or forces writes into: (tgid, vm_start), and which
/// of the two (`EventKind`), so that each half of the race has its own budget.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct MappingKey {
    pub vm_start: u64,
    pub tgid: u32,
    pub kind: u32,
}

/// How many discards of one mapping were reported in the current window.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Budget {
    pub window_start_ns: u64,
    pub count: u32,
    pub _pad: u32,
}

/// The Dirty COW race discards and forces writes millions of times: per mapping and half, only
/// the first [`MADVISE_PER_WINDOW`] discards and forced-write faults of each window reach the
/// ring buffer (the rule needs 3 of each).
#[map]
pub static MADVISE_BUDGET: LruHashMap<MappingKey, Budget> = LruHashMap::with_max_entries(4096, 0);
pub const MADVISE_PER_WINDOW: u32 = 4;
pub const MADVISE_WINDOW_NS: u64 = 500_000_000;

/// Slot 0 becomes 1 once any fd was ever marked: until then the write path, the hottest
/// syscall there is, returns after one array read.
#[map]
pub static MARKS_PRESENT: Array<u32> = Array::with_max_entries(1, 0);

/// Container runtime binaries (filled by the agent): a write-open of one is an attack on the
/// runtime (CVE-2019-5736 pattern).
#[map]
pub static RUNTIME_INODES: HashMap<InodeKey, u8> =
    HashMap::with_max_entries(RUNTIME_INODES_ENTRIES, 0);

/// Add one to slot `index` of a per-CPU counter array.
#[inline(always)]
pub fn count(map: &PerCpuArray<u64>, index: u32) {
    if let Some(slot) = map.get_ptr_mut(index) {
        // SAFETY: per-CPU slot of this CPU; programs do not migrate while they run.
        unsafe { *slot += 1 };
    }
}

/// The programs the `sys_enter` dispatcher enters by bpf_tail_call, filled by the agent at
/// load (`programs::SYS_ENTER_TAILS`): entry N is x86-64 syscall N's entry logic; from
/// `SYSCALL_TAIL_INTERNAL` on, second halves (`COMPAT_ENTER_MADVISE`, `ENTER_MADVISE_SPECIAL`).
#[map]
pub static SYS_ENTER_TAILS: ProgramArray = ProgramArray::with_max_entries(SYSCALL_TAIL_SLOTS, 0);

/// The same for the `sys_exit` dispatcher (`programs::SYS_EXIT_TAILS`): entry N is x86-64
/// syscall N's exit logic, then `COMPAT_EXIT_OPEN` and `COMPAT_EXIT_WRITE`.
#[map]
pub static SYS_EXIT_TAILS: ProgramArray = ProgramArray::with_max_entries(SYSCALL_TAIL_SLOTS, 0);

/// The judgements the io_uring completion dispatcher enters by bpf_tail_call, filled by the
/// agent at load (`programs::IOURING_TAILS`): entry N judges requests of opcode N.
#[map]
pub static IOURING_TAILS: ProgramArray = ProgramArray::with_max_entries(IOURING_TAIL_SLOTS, 0);
