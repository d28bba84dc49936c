//! Syscall entry → exit hand-over, per thread.

use aya_ebpf::{helpers::bpf_get_current_pid_tgid, maps::LruHashMap};
use escapewatch_common::{event::NS_COUNT, kind::EventKind, programs::ProgramId};

use super::{
    emit::{Record, output_in_place},
    task::CURRENT,
};
use crate::maps::{PENDING_SYSCALLS, Pending};

#[inline(always)]
pub fn tid() -> u32 {
    bpf_get_current_pid_tgid() as u32
}

#[inline(always)]
pub fn tgid() -> u32 {
    (bpf_get_current_pid_tgid() >> 32) as u32
}

/// Remember `args` for the exit of this thread's syscall.
#[inline(always)]
pub fn put(
    kind: EventKind,
    id: u32,
    args: [u64; 4],
    ns_before: [u32; NS_COUNT],
) -> Result<(), i64> {
    let pending = Pending {
        kind: kind as u32,
        id,
        args,
        ns_before,
    };
    PENDING_SYSCALLS
        .insert(tid(), pending, 0)
        .map_err(|e| e as i64)
}

/// The `EventKind` the entry of this thread's syscall recorded, if any (left in place).
#[inline(always)]
pub fn kind() -> Option<u32> {
    // SAFETY: a plain read of this thread's own entry.
    unsafe { PENDING_SYSCALLS.get(tid()) }.map(|p| p.kind)
}

/// Take what the entry of this thread's syscall left, if anything.
#[inline(always)]
pub fn take() -> Option<Pending> {
    let tid = tid();
    // SAFETY: the value is copied out before the entry is removed.
    let pending = unsafe { PENDING_SYSCALLS.get(tid) }.copied()?;
    let _ = PENDING_SYSCALLS.remove(tid);
    Some(pending)
}

/// The record this thread's syscall entry left in `map`, sent with the syscall's result `rc`
/// (written by `set_ret`) and removed; a failure goes as an attempt (helpers/budget.rs). Returns
/// whether there was one.
#[inline(always)]
pub fn emit_recorded<T: Record>(
    map: &LruHashMap<u32, T>,
    program: ProgramId,
    kind: EventKind,
    rc: i64,
    set_ret: impl FnOnce(&mut T, i64),
) -> bool {
    let tid = tid();
    let Some(rec) = map.get_ptr_mut(tid) else {
        return false;
    };
    // SAFETY: this thread's own entry, sent and removed below.
    set_ret(unsafe { &mut *rec }, rc);
    // A failed call is an attempt, under its container's budget (budget.rs).
    if let Some(ring) = super::budget::by_result(kind, rc) {
        output_in_place(ring, program, kind, CURRENT, rec);
    }
    let _ = map.remove(tid);
    true
}
