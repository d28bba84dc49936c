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
/// The read-only global holding [`crate::config::KernelConfig`].
pub const CONFIG_GLOBAL: &str = "CONFIG";

/// Default ring buffer sizes in bytes (power of two, multiple of the page size).
pub const RING_CRITICAL_DEFAULT_BYTES: u32 = 1 << 20;
pub const RING_LIFECYCLE_DEFAULT_BYTES: u32 = 4 << 20;
/// Threads that can be inside a watched syscall at once before the oldest entry is evicted.
pub const PENDING_SYSCALLS_ENTRIES: u32 = 16384;
/// Slots of [`PROGRAM_ERRORS`].
pub const PROGRAM_SLOTS: u32 = 64;
