//! The kernel's lockdown check, `security_locked_down(enum lockdown_reason what)`: called
//! before everything lockdown guards (port I/O rights, MSR writes, kexec, /dev/mem and
//! /dev/port, PCI config writes and BAR maps, debugfs writes, perf kernel data, bpf kernel
//! reads, ACPI tables, module parameters, hibernation...), whether or not lockdown is on. A
//! container task that gets there held the capability its call needed: the effect-level view
//! of the class, with the kernel's reason, whichever entry led there. The reason's numbering
//! differs between kernels; the agent names it from the kernel's BTF. Never denies.

use aya_ebpf::{macros::lsm, programs::LsmContext};
use escapewatch_common::{
    event::{TaskChangedEvent, task_change},
    kind::EventKind,
    programs::ProgramId,
};

use crate::helpers::{
    budget,
    emit::{emit, run},
    task::{CURRENT, is_candidate},
};

#[lsm(hook = "locked_down")]
pub fn lsm_locked_down(ctx: LsmContext) -> i32 {
    run(ProgramId::LsmLockedDown, || {
        if !is_candidate() {
            return Ok(());
        }
        let reason: u64 = ctx.arg(0);
        let Some(ring) = budget::attempt(EventKind::TaskChanged) else {
            return Ok(());
        };
        emit::<TaskChangedEvent>(
            ring,
            ProgramId::LsmLockedDown,
            EventKind::TaskChanged,
            CURRENT,
            |ev| {
                ev.change = task_change::LOCKED_DOWN;
                ev.reason = reason as u32;
                ev.old_cap_effective = 0;
                ev.old_uid = 0;
                ev._pad2 = 0;
            },
        );
        Ok(())
    }) as i32
}
