//! Module autoload: `request_module()` asks modprobe for a module on the current task's
//! behalf (a socket family or protocol nobody registered, a tty line discipline, an AF_ALG
//! algorithm, a filesystem type...). A container that makes the host kernel load a module
//! widens the host's attack surface with code it chose: the effect, whichever API led there.
//! Records the name asked for; whether the module exists does not matter. Never denies.

use aya_ebpf::{
    helpers::bpf_probe_read_kernel_str_bytes, macros::raw_tracepoint,
    programs::RawTracePointContext,
};
use escapewatch_common::{event::ModuleRequestEvent, kind::EventKind, programs::ProgramId};

use crate::helpers::{
    budget,
    emit::{emit, run},
    task::{CURRENT, KPtr, is_candidate},
};

/// `trace_module_request(char *name, bool wait, unsigned long ip)` in `__request_module`
/// (kernel/module/kmod.c), raw tracepoint since 4.17 (tracepoint since 2.6.33); only on
/// CONFIG_MODULES kernels. Runs in the requesting task's context, before modprobe starts.
#[raw_tracepoint(tracepoint = "module_request")]
pub fn module_request(ctx: RawTracePointContext) -> u32 {
    run(ProgramId::ModuleRequest, || {
        if !is_candidate() {
            return Ok(());
        }
        let name: KPtr = ctx.arg(0);
        let wait: u64 = ctx.arg(1);
        let Some(ring) = budget::attempt(EventKind::ModuleRequest) else {
            return Ok(());
        };
        emit::<ModuleRequestEvent>(
            ring,
            ProgramId::ModuleRequest,
            EventKind::ModuleRequest,
            CURRENT,
            |ev| {
                ev.wait = u32::from(wait & 0xff != 0);
                ev._pad = 0;
                // SAFETY: probe read into a fixed buffer; the helper bounds and NUL-ends it.
                if unsafe { bpf_probe_read_kernel_str_bytes(name, &mut ev.name) }.is_err() {
                    ev.name[0] = 0;
                }
            },
        );
        Ok(())
    })
}
