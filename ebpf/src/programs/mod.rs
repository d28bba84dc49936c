pub mod dispatch;
pub mod effects;
pub mod floor;
pub mod iouring;
pub mod lifecycle;
pub mod lockdown;
pub mod memory;
pub mod module;
pub mod mount;
pub mod namespace;
pub mod open;
pub mod races;
pub mod socket;
pub mod syscalls;
pub mod sysctl;

use aya_ebpf::programs::BtfTracePointContext;
use escapewatch_common::abi::{I386_SYSCALL_ARG_REGS, X86_64_SYSCALL_ARG_REGS};

use crate::helpers::task::{KPtr, read};

/// Argument `n` of a 64-bit syscall, in a program on the generic `sys_enter` tracepoint
/// (`trace_sys_enter(struct pt_regs *regs, long id)`, tp_btf since 5.5).
///
/// `regs` is a BTF-typed pointer there and the offset a constant, so this is one direct load
/// the verifier checks against `struct pt_regs`: no bpf_probe_read helper call.
#[inline(always)]
pub fn arg(ctx: &BtfTracePointContext, n: usize) -> Result<u64, i64> {
    let regs: *const u8 = ctx.arg(0);
    let off = match n {
        0 => X86_64_SYSCALL_ARG_REGS[0],
        1 => X86_64_SYSCALL_ARG_REGS[1],
        2 => X86_64_SYSCALL_ARG_REGS[2],
        3 => X86_64_SYSCALL_ARG_REGS[3],
        4 => X86_64_SYSCALL_ARG_REGS[4],
        _ => X86_64_SYSCALL_ARG_REGS[5],
    };
    // SAFETY: an aligned u64 field of the syscall's saved registers, checked by the verifier.
    Ok(unsafe { core::ptr::read_volatile(regs.add(off).cast::<u64>()) })
}

/// Return value of a syscall, in a program on the generic `sys_exit` tracepoint
/// (`trace_sys_exit(struct pt_regs *regs, long ret)`).
#[inline(always)]
pub fn ret(ctx: &BtfTracePointContext) -> Result<i64, i64> {
    Ok(ctx.arg(1))
}

/// The arguments of a syscall, wherever they were read from: the saved registers of a 64-bit
/// entry (a tail-called syscall program) or of an i386 entry ([`compat`]). Every watched
/// syscall's entry logic takes this, so both entries run the same code.
pub trait SysArgs {
    fn arg(&self, n: usize) -> Result<u64, i64>;
}

impl SysArgs for BtfTracePointContext {
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
