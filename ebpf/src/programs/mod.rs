pub mod lifecycle;
pub mod memory;
pub mod mount;
pub mod namespace;
pub mod open;
pub mod socket;
pub mod syscalls;
pub mod sysctl;

use aya_ebpf::programs::TracePointContext;

/// Layout relied on by every syscall tracepoint: `struct trace_event_raw_sys_enter { struct
/// trace_entry ent; long id; unsigned long args[6]; }` (args at byte 16) and `..._sys_exit {
/// ent; long id; long ret; }` (ret at byte 16); stable since syscall tracepoints appeared
/// (2.6.33).
const ARGS_OFFSET: usize = 16;
const RET_OFFSET: usize = 16;

/// Argument `n` of a sys_enter_* tracepoint.
#[inline(always)]
pub fn arg(ctx: &TracePointContext, n: usize) -> Result<u64, i64> {
    // SAFETY: reads inside the tracepoint record, whose layout is documented above.
    unsafe { ctx.read_at::<u64>(ARGS_OFFSET + 8 * n) }.map_err(|e| e as i64)
}

/// Return value of a sys_exit_* tracepoint.
#[inline(always)]
pub fn ret(ctx: &TracePointContext) -> Result<i64, i64> {
    // SAFETY: reads inside the tracepoint record.
    unsafe { ctx.read_at::<i64>(RET_OFFSET) }.map_err(|e| e as i64)
}
