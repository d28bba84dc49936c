//! Namespace-crossing syscalls: setns, unshare, clone/clone3 with CLONE_NEW*.
//!
//! Syscall tracepoints (CONFIG_FTRACE_SYSCALLS, every distribution kernel): the entry records the
//! arguments and the namespaces before the call per thread; `sys_exit_pending` (syscalls.rs)
//! emits one event with the result and the namespaces after it, so the agent sees what was
//! actually joined or created. Every process is watched here, host ones included: the agent's
//! process table and namespace ownership need them, and these calls are rare.

use aya_ebpf::{
    helpers::bpf_probe_read_user, macros::btf_tracepoint, programs::BtfTracePointContext,
};
use escapewatch_common::{
    abi::{CLONE_NEW_MASK, CLONE_NEWTIME},
    event::NS_COUNT,
    kind::EventKind,
    programs::ProgramId,
};

use super::SysArgs;
use crate::helpers::{
    emit::run,
    pending,
    task::{ERR_READ, current, read_namespaces},
};

#[inline(always)]
fn enter(kind: EventKind, flags: u64, fd: i64) -> Result<(), i64> {
    let mut before = [0u32; NS_COUNT];
    read_namespaces(current(), &mut before);
    pending::put(kind, 0, [flags, fd as u64, 0, 0], before)
}

/// `setns(int fd, int nstype)`, 3.0+. Every call is recorded, failed ones included: an attempt
/// to join a host namespace is worth knowing about.
#[btf_tracepoint(function = "sys_enter")]
pub fn sys_enter_setns(ctx: BtfTracePointContext) -> u32 {
    run(ProgramId::SysEnterSetns, || setns(&ctx))
}

#[inline(always)]
pub fn setns(a: &impl SysArgs) -> Result<(), i64> {
    enter(EventKind::Setns, a.arg(1)?, a.arg(0)? as i32 as i64)
}

/// `unshare(unsigned long flags)`, 2.6.16+. Only calls that create a namespace.
#[btf_tracepoint(function = "sys_enter")]
pub fn sys_enter_unshare(ctx: BtfTracePointContext) -> u32 {
    run(ProgramId::SysEnterUnshare, || unshare(&ctx))
}

#[inline(always)]
pub fn unshare(a: &impl SysArgs) -> Result<(), i64> {
    let flags = a.arg(0)?;
    if flags & (CLONE_NEW_MASK | CLONE_NEWTIME) == 0 {
        return Ok(());
    }
    enter(EventKind::Unshare, flags, -1)
}

/// `clone(unsigned long flags, ...)` (flags come first on x86_64 and i386 alike). Only
/// namespace-creating clones; plain forks are seen by `sched_process_fork`.
#[btf_tracepoint(function = "sys_enter")]
pub fn sys_enter_clone(ctx: BtfTracePointContext) -> u32 {
    run(ProgramId::SysEnterClone, || clone(&ctx))
}

#[inline(always)]
pub fn clone(a: &impl SysArgs) -> Result<(), i64> {
    let flags = a.arg(0)?;
    if flags & CLONE_NEW_MASK == 0 {
        return Ok(());
    }
    enter(EventKind::CloneNewNamespace, flags, -1)
}

/// `clone3(struct clone_args *uargs, size_t size)`, 5.3+; `flags` is the first u64 of
/// clone_args, read from user memory.
#[btf_tracepoint(function = "sys_enter")]
pub fn sys_enter_clone3(ctx: BtfTracePointContext) -> u32 {
    run(ProgramId::SysEnterClone3, || clone3(&ctx))
}

#[inline(always)]
pub fn clone3(a: &impl SysArgs) -> Result<(), i64> {
    let uargs = a.arg(0)? as *const u64;
    // SAFETY: user pointer validated by the helper.
    let flags = unsafe { bpf_probe_read_user(uargs) }.map_err(|_| ERR_READ)?;
    if flags & (CLONE_NEW_MASK | CLONE_NEWTIME) == 0 {
        return Ok(());
    }
    enter(EventKind::CloneNewNamespace, flags, -1)
}
