pub mod compat;
pub mod effects;
pub mod floor;
pub mod iouring;
pub mod lifecycle;
pub mod memory;
pub mod mount;
pub mod namespace;
pub mod open;
pub mod socket;
pub mod syscalls;
pub mod sysctl;

use aya_ebpf::{EbpfContext as _, programs::TracePointContext};
use escapewatch_common::abi::I386_SYSCALL_ARG_REGS;

use crate::helpers::task::{KPtr, read};

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

/// The arguments of a syscall, wherever they were read from: a sys_enter_* tracepoint record
/// (64-bit entry) or the saved registers of an i386 entry ([`compat`]). Every watched syscall's
/// entry logic takes this, so both entries run the same code.
pub trait SysArgs {
    fn arg(&self, n: usize) -> Result<u64, i64>;
}

impl SysArgs for TracePointContext {
    #[inline(always)]
    fn arg(&self, n: usize) -> Result<u64, i64> {
        arg(self, n)
    }
}

/// Arguments of an i386 syscall, from the caller's saved `struct pt_regs`: the low 32 bits of
/// ebx, ecx, edx, esi, edi, ebp, zero-extended (pointers and flags are 32-bit there).
pub struct CompatArgs {
    pub regs: KPtr,
}

impl SysArgs for CompatArgs {
    #[inline(always)]
    fn arg(&self, n: usize) -> Result<u64, i64> {
        let off = *I386_SYSCALL_ARG_REGS
            .get(n)
            .ok_or(crate::helpers::task::ERR_READ)?;
        read::<u64>(self.regs, off as u32).map(|r| r & 0xffff_ffff)
    }
}
