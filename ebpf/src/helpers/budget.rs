//! Per-container budgets for attempt-class records, and the ring each record goes to.
//!
//! A failed open, a refused setns or a setns into namespaces already held costs a container a
//! microsecond; a flood of them must not cost another container's escape. Successes that
//! matter (a setns or unshare that changed the caller's namespaces, a clone into new
//! namespaces, an open of a watched object, a mount, connect or watched syscall that succeeded)
//! go to EVENTS_CRITICAL, never budgeted. Attempts (failed calls, no-op joins) go to
//! EVENTS_ATTEMPTS, at most `ATTEMPTS_PER_WINDOW` per container, kind and window; the rest are
//! not sent but counted per container (ATTEMPT_BUDGET, which the agent reads and turns into
//! `detector-overloaded`) and per kind (BUDGETED_BY_KIND, never evicted).

use aya_ebpf::{
    helpers::{bpf_get_current_cgroup_id, bpf_ktime_get_boot_ns},
    maps::RingBuf,
};
use escapewatch_common::{
    event::NS_COUNT,
    kind::EventKind,
    maps::{ATTEMPT_WINDOW_NS, ATTEMPTS_PER_WINDOW, AttemptBudget, AttemptKey},
};

use super::task::{current, read_namespaces};
use crate::maps::{ATTEMPT_BUDGET, BUDGETED_BY_KIND, EVENTS_ATTEMPTS, EVENTS_CRITICAL, count};

/// The ring for an attempt record of `kind` from the current task, or None when its container
/// is over budget (then counted).
#[inline(always)]
pub fn attempt(kind: EventKind) -> Option<&'static RingBuf> {
    if over_budget(kind as u32) {
        None
    } else {
        Some(&EVENTS_ATTEMPTS)
    }
}

/// Count one attempt record of `kind` for the current task's cgroup; whether it is over the
/// budget (then counted as not sent). Not inlined, nor is the namespace check below: their
/// stack slots would otherwise sit in the frames of the open and compat exits, which the 6.1
/// verifier's 512-byte limit on a chain of calls does not leave room for.
#[inline(never)]
fn over_budget(kind: u32) -> bool {
    let key = AttemptKey {
        // SAFETY: helpers without arguments.
        cgroup_id: unsafe { bpf_get_current_cgroup_id() },
        kind,
        _pad: 0,
    };
    let now = unsafe { bpf_ktime_get_boot_ns() };
    let Some(b) = ATTEMPT_BUDGET.get_ptr_mut(key) else {
        let fresh = AttemptBudget {
            window_start_ns: now,
            count: 1,
            _pad: 0,
            suppressed: 0,
        };
        let _ = ATTEMPT_BUDGET.insert(key, fresh, 0);
        return false;
    };
    // SAFETY: a value of our map; a racing CPU at worst lets one more record through.
    let b = unsafe { &mut *b };
    if now.saturating_sub(b.window_start_ns) >= ATTEMPT_WINDOW_NS {
        b.window_start_ns = now;
        b.count = 1;
        return false;
    }
    b.count = b.count.saturating_add(1);
    if b.count <= ATTEMPTS_PER_WINDOW {
        return false;
    }
    // Not atomic (this target's core has no 64-bit fetch_add): two CPUs of one container may
    // count one record once; BUDGETED_BY_KIND, per CPU, counts every one.
    b.suppressed = b.suppressed.wrapping_add(1);
    count(&BUDGETED_BY_KIND, kind);
    true
}

/// The ring for the record of a call of `kind` that returned `rc`: a success to the critical
/// ring, a failure as an attempt.
#[inline(always)]
pub fn by_result(kind: EventKind, rc: i64) -> Option<&'static RingBuf> {
    if rc >= 0 {
        Some(&EVENTS_CRITICAL)
    } else {
        attempt(kind)
    }
}

/// The ring for a namespace call of `kind` that returned `rc`, made by a task whose namespaces
/// were `before`: a success that changed the caller's namespaces (or cloned into new ones) to
/// the critical ring; a refused call, and a setns that joined namespaces the caller already
/// held (which a container may repeat as fast as a refused one), as an attempt.
#[inline(always)]
pub fn namespace_call(
    kind: EventKind,
    rc: i64,
    before: &[u32; NS_COUNT],
) -> Option<&'static RingBuf> {
    if rc >= 0 && kind == EventKind::Setns && holds_already(before) {
        return attempt(kind);
    }
    by_result(kind, rc)
}

/// Whether the current task's namespaces are all still `before`. Not inlined, for the stack
/// of the compat exit (see [`over_budget`]).
#[inline(never)]
fn holds_already(before: &[u32; NS_COUNT]) -> bool {
    let mut now = [0u32; NS_COUNT];
    if !read_namespaces(current(), &mut now) {
        return false;
    }
    let mut same = true;
    let mut i = 0;
    while i < NS_COUNT {
        same &= now[i] == before[i];
        i += 1;
    }
    same
}
