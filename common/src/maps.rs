//! Names and default sizes of the maps shared by the eBPF object and the agent.

/// Ring buffer for security-relevant, low-volume kinds (namespace changes, later the escape
/// primitives). Kept apart from lifecycle events so a fork storm cannot crowd them out.
pub const RING_CRITICAL: &str = "EVENTS_CRITICAL";
/// Ring buffer for high-volume process lifecycle kinds (exec, fork, exit).
pub const RING_LIFECYCLE: &str = "EVENTS_LIFECYCLE";
/// Per-CPU array of u64 indexed by event kind id: records lost because a reserve failed.
pub const LOST_BY_KIND: &str = "LOST_BY_KIND";
/// Per-CPU array of u64 indexed by [`crate::maps::ProgramId`]: errors inside programs.
pub const PROGRAM_ERRORS: &str = "PROGRAM_ERRORS";
/// Per-thread state between a syscall's entry and its exit.
pub const PENDING_SYSCALLS: &str = "PENDING_SYSCALLS";
/// Hash of (dev, ino) of container runtime binaries, filled by the agent.
pub const RUNTIME_INODES: &str = "RUNTIME_INODES";
/// Capacity of [`RUNTIME_INODES`].
pub const RUNTIME_INODES_ENTRIES: u32 = 256;
/// Hash of watched destination ports (host order) of IPv4/IPv6 connects, filled by the agent
/// from `runtime_api_ports`.
pub const WATCHED_PORTS: &str = "WATCHED_PORTS";
/// Capacity of [`WATCHED_PORTS`].
pub const WATCHED_PORTS_ENTRIES: u32 = 64;
/// The read-only global holding [`crate::config::KernelConfig`].
pub const CONFIG_GLOBAL: &str = "CONFIG";

/// Default ring buffer sizes in bytes (power of two, multiple of the page size).
pub const RING_CRITICAL_DEFAULT_BYTES: u32 = 1 << 20;
pub const RING_LIFECYCLE_DEFAULT_BYTES: u32 = 4 << 20;
/// Threads that can be inside a watched syscall at once before the oldest entry is evicted.
pub const PENDING_SYSCALLS_ENTRIES: u32 = 16384;
/// Slots of [`PROGRAM_ERRORS`].
pub const PROGRAM_SLOTS: u32 = 64;

/// Ring buffer for attempt-class records: failed opens, namespace calls and watched syscalls
/// that failed or changed nothing. Apart from [`RING_CRITICAL`], so no flood of attempts can
/// take the room of a successful setns, mount or open of a watched object.
pub const RING_ATTEMPTS: &str = "EVENTS_ATTEMPTS";
pub const RING_ATTEMPTS_DEFAULT_BYTES: u32 = 1 << 18;
/// LRU hash [`AttemptKey`] → [`AttemptBudget`]: attempt records per container and kind, and
/// those not sent because the container was over its budget.
pub const ATTEMPT_BUDGET: &str = "ATTEMPT_BUDGET";
pub const ATTEMPT_BUDGET_ENTRIES: u32 = 4096;
/// Per-CPU array of u64 indexed by event kind id: attempt records not sent (over budget), every
/// one, whatever happened to the per-container entry since.
pub const BUDGETED_BY_KIND: &str = "BUDGETED_BY_KIND";
/// Attempt records each container may send per window and kind; the rest are counted only.
pub const ATTEMPTS_PER_WINDOW: u32 = 64;
pub const ATTEMPT_WINDOW_NS: u64 = 1_000_000_000;

/// Key of [`ATTEMPT_BUDGET`]: the cgroup (v2) id of the caller and the `EventKind` id.
///
/// The cgroup, not the mount namespace: any process that may create a user namespace gets a
/// fresh mount namespace with one unshare(2), so a mount-namespace key would hand a flooder a
/// new budget per call; moving to another cgroup needs write access to a cgroup filesystem,
/// which a container does not have unless it was given its cgroup tree read-write. The agent
/// already attributes cgroup ids to containers.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AttemptKey {
    pub cgroup_id: u64,
    pub kind: u32,
    pub _pad: u32,
}

/// Value of [`ATTEMPT_BUDGET`].
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttemptBudget {
    pub window_start_ns: u64,
    /// Records of the current window, sent or not.
    pub count: u32,
    pub _pad: u32,
    /// Records not sent since this entry was created.
    pub suppressed: u64,
}

const _: () = assert!(core::mem::size_of::<AttemptKey>() == 16);
const _: () = assert!(core::mem::size_of::<AttemptBudget>() == 24);
