//! Sysctl writes (/proc/sys), with the name and the value written.
//!
//! cgroup/sysctl (5.2+) attached to the cgroup2 root sees every sysctl access of every process
//! under it, with the new value before the kernel applies it; it always allows the write (the
//! agent detects, it does not enforce).

use aya_ebpf::{
    helpers::generated::{bpf_sysctl_get_name, bpf_sysctl_get_new_value},
    macros::cgroup_sysctl,
    programs::SysctlContext,
};
use escapewatch_common::{
    event::{NAME_LEN, SysctlEvent},
    kind::EventKind,
    programs::ProgramId,
};

use crate::{
    helpers::{
        emit::{emit, run},
        task::current,
    },
    maps::EVENTS_CRITICAL,
};

/// Full name with slashes ("kernel/core_pattern"), not only the base name.
const BPF_F_SYSCTL_FULL_NAME: u64 = 0;

#[cgroup_sysctl]
pub fn sysctl_write(ctx: SysctlContext) -> i32 {
    run(ProgramId::SysctlWrite, || {
        // SAFETY: the context pointer the kernel passed.
        if unsafe { (*ctx.sysctl).write } == 0 {
            return Ok(());
        }
        emit::<SysctlEvent>(
            &EVENTS_CRITICAL,
            ProgramId::SysctlWrite,
            EventKind::SysctlWrite,
            current(),
            |ev| {
                ev._pad = 0;
                // SAFETY: helpers write at most the given lengths into the event's buffers.
                let n = unsafe {
                    bpf_sysctl_get_name(
                        ctx.sysctl,
                        ev.name.as_mut_ptr().cast(),
                        NAME_LEN as u64,
                        BPF_F_SYSCTL_FULL_NAME,
                    )
                };
                if n < 0 {
                    ev.name[0] = 0;
                }
                let len = ev.value.len();
                // SAFETY: as above.
                let v = unsafe {
                    bpf_sysctl_get_new_value(ctx.sysctl, ev.value.as_mut_ptr().cast(), len as u64)
                };
                // -E2BIG: the value was cut to fit.
                ev.value_len = if v < 0 { len as u32 } else { v as u32 };
            },
        );
        Ok(())
    });
    1
}
