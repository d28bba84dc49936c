//! Every map of the object, and the read-only config global (falco's maps.h idea: one place).

use aya_ebpf::{
    macros::map,
    maps::{LruHashMap, PerCpuArray, RingBuf},
};
use escapewatch_common::{
    config::KernelConfig,
    event::NS_COUNT,
    kind::KIND_SLOTS,
    maps::{
        PENDING_SYSCALLS_ENTRIES, PROGRAM_SLOTS, RING_CRITICAL_DEFAULT_BYTES,
        RING_LIFECYCLE_DEFAULT_BYTES,
    },
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

/// Low-volume, security-relevant kinds (namespace changes; later the escape primitives).
#[map]
pub static EVENTS_CRITICAL: RingBuf = RingBuf::with_byte_size(RING_CRITICAL_DEFAULT_BYTES, 0);

/// High-volume process lifecycle kinds. Separate so a fork storm cannot crowd out the above.
#[map]
pub static EVENTS_LIFECYCLE: RingBuf = RingBuf::with_byte_size(RING_LIFECYCLE_DEFAULT_BYTES, 0);

/// Records lost because a ring-buffer reserve failed, by event kind id.
#[map]
pub static LOST_BY_KIND: PerCpuArray<u64> = PerCpuArray::with_max_entries(KIND_SLOTS, 0);

/// Errors inside programs (a kernel read that failed), by `ProgramId`.
#[map]
pub static PROGRAM_ERRORS: PerCpuArray<u64> = PerCpuArray::with_max_entries(PROGRAM_SLOTS, 0);

/// What a thread passed into a watched namespace syscall, kept until the syscall returns.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct PendingNs {
    pub flags: u64,
    pub fd: i32,
    pub _pad: u32,
    pub ns_before: [u32; NS_COUNT],
}

/// Keyed by thread id. LRU so a thread killed inside the syscall cannot leak an entry forever.
#[map]
pub static PENDING_SYSCALLS: LruHashMap<u32, PendingNs> =
    LruHashMap::with_max_entries(PENDING_SYSCALLS_ENTRIES, 0);

/// Add one to slot `index` of a per-CPU counter array.
#[inline(always)]
pub fn count(map: &PerCpuArray<u64>, index: u32) {
    if let Some(slot) = map.get_ptr_mut(index) {
        // SAFETY: per-CPU slot of this CPU; programs do not migrate while they run.
        unsafe { *slot += 1 };
    }
}
