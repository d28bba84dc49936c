pub mod lifecycle;
pub mod memory;
pub mod mount;
pub mod namespace;
pub mod open;
pub mod socket;
pub mod syscalls;
pub mod sysctl;

use aya_ebpf::{EbpfContext as _, programs::TracePointContext};

/// Layout relied on by every syscall tracepoint: `struct trace_event_raw_sys_enter { struct
/// trace_entry ent; long id; unsigned long args[6]; }` (args at byte 16) and `..._sys_exit {
/// ent; long id; long ret; }` (ret at byte 16); stable since syscall tracepoints appeared
/// (2.6.33).
const ARGS_OFFSET: usize = 16;
const RET_OFFSET: usize = 16;

/// Argument `n` of a sys_enter_* tracepoint.
///
/// A direct load from the context, which the verifier allows for tracepoint programs at a
/// constant, aligned offset inside the record: no bpf_probe_read helper call (about 20 ns each
/// on the hottest syscalls, write and openat).
#[inline(always)]
pub fn arg(ctx: &TracePointContext, n: usize) -> Result<u64, i64> {
    // SAFETY: an aligned u64 inside the tracepoint record, whose layout is documented above.
    Ok(unsafe {
        core::ptr::read(
            ctx.as_ptr()
                .cast::<u8>()
                .add(ARGS_OFFSET + 8 * n)
                .cast::<u64>(),
        )
    })
}

/// Return value of a sys_exit_* tracepoint (a direct context load, as [`arg`]).
#[inline(always)]
pub fn ret(ctx: &TracePointContext) -> Result<i64, i64> {
    // SAFETY: an aligned i64 inside the tracepoint record.
    Ok(unsafe { core::ptr::read(ctx.as_ptr().cast::<u8>().add(RET_OFFSET).cast::<i64>()) })
}
