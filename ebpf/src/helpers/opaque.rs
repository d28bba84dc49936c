//! Values the verifier should stop tracking.
//!
//! The verifier walks every path of a program, and two paths meet (one of them is pruned) only
//! when their states match. A value computed by branches, such as which watched classes an
//! open file has, is a different constant on every path, so each path verifies everything after
//! it again: the open exit had about 120 such values and cost 150,000 verified instructions,
//! ten seconds of start-up under the 6.1 verifier in QEMU. A value loaded from map memory is an
//! unknown scalar to the verifier, the same on every path, so the paths meet right after.

use crate::maps::OPAQUE;

/// `v`, unknown to the verifier from here on. 0 if the per-CPU slot is missing (never: index 0
/// of a one-entry array), so that path ends at the caller's "nothing to do" check.
#[inline(always)]
pub fn opaque(v: u64) -> u64 {
    let Some(slot) = OPAQUE.get_ptr_mut(0) else {
        return 0;
    };
    // SAFETY: this CPU's own slot; volatile so the compiler keeps the round trip through
    // memory that the verifier must see.
    unsafe {
        core::ptr::write_volatile(slot, v);
        core::ptr::read_volatile(slot)
    }
}
