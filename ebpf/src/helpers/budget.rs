//! Per-container budgets for attempt-class records, and the ring each record goes to.
//!
//! A failed open, a refused setns or a setns that stays inside the container costs a container
//! a microsecond; a flood of them must not cost another container's escape. Successes that
//! matter (a setns that left the container's mount namespace, namespaces made, an open of a
//! watched object, a mount, connect or watched syscall that succeeded) go to EVENTS_CRITICAL,
//! never budgeted. Attempts (failed calls, setns that stay inside) go to
//! EVENTS_ATTEMPTS, at most `ATTEMPTS_PER_WINDOW` per container, kind and window; the rest are
//! not sent but counted per container (ATTEMPT_BUDGET, which the agent reads and turns into
//! `detector-overloaded`) and per kind (BUDGETED_BY_KIND, never evicted).

use aya_ebpf::{
    helpers::{bpf_get_current_cgroup_id, bpf_ktime_get_boot_ns},
    maps::RingBuf,
};
use escapewatch_common::{
    kind::EventKind,
    maps::{ATTEMPT_WINDOW_NS, ATTEMPTS_PER_WINDOW, AttemptBudget, AttemptKey},
};

use super::task::is_candidate;
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

/// The ring for a namespace call of `kind` that returned `rc`. Refused calls are attempts. So
/// is a setns after which the task is still in a container's mount namespace: inside user
/// namespaces of its own an unprivileged container may join and rejoin namespaces as fast as
/// it likes. A setns that leaves the task in the host's mount namespace (the escape), the
/// host's own calls (the runtimes') and namespaces made by unshare or clone go to the
/// critical ring: the agent must see every namespace made, or a reused inode number would be
/// taken for another container's namespace.
#[inline(always)]
pub fn namespace_call(kind: EventKind, rc: i64) -> Option<&'static RingBuf> {
    if rc >= 0 && kind == EventKind::Setns && is_candidate() {
        return attempt(kind);
    }
    by_result(kind, rc)
}
