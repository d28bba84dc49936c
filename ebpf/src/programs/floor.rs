//! The raw-syscall design floor, for `cargo xtask bench` only (`escapewatch bench-floor`
//! attaches these two; the agent never does: they are not in common's PROGRAMS table).
//!
//! Two raw tracepoints on the generic `sys_enter`/`sys_exit` that drop every syscall after one
//! map lookup: the architecture of a detector that sees all syscalls through one pair of
//! programs and filters in the kernel (Falco's modern probe), before any of its work. What an
//! operation costs with these attached is the floor escapewatch's hook set must stay below.

use aya_ebpf::{
    macros::{map, raw_tracepoint},
    maps::Array,
    programs::RawTracePointContext,
};

/// The one lookup every syscall makes: an "is this syscall interesting" table of one entry,
/// always zero (nothing is).
#[map]
static FLOOR_INTERESTING: Array<u32> = Array::with_max_entries(1, 0);

/// One lookup, then drop: what every syscall pays under the design floor.
#[inline(always)]
fn drop_after_lookup() -> u32 {
    if let Some(p) = FLOOR_INTERESTING.get_ptr(0) {
        // SAFETY: a value of our array map. Read volatile so the lookup and the read stay.
        let _interesting = unsafe { core::ptr::read_volatile(p) };
    }
    0
}

#[raw_tracepoint(tracepoint = "sys_enter")]
pub fn floor_sys_enter(_ctx: RawTracePointContext) -> u32 {
    drop_after_lookup()
}

#[raw_tracepoint(tracepoint = "sys_exit")]
pub fn floor_sys_exit(_ctx: RawTracePointContext) -> u32 {
    drop_after_lookup()
}
