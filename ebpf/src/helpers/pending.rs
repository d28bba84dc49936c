//! Syscall entry → exit hand-over, per thread.

use aya_ebpf::helpers::bpf_get_current_pid_tgid;
use escapewatch_common::{event::NS_COUNT, kind::EventKind};

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

/// Take what the entry of this thread's syscall left, if anything.
#[inline(always)]
pub fn take() -> Option<Pending> {
    let tid = tid();
    // SAFETY: the value is copied out before the entry is removed.
    let pending = unsafe { PENDING_SYSCALLS.get(tid) }.copied()?;
    let _ = PENDING_SYSCALLS.remove(tid);
    Some(pending)
}
