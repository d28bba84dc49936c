//! Namespace-crossing syscalls: setns, unshare, clone/clone3 with CLONE_NEW*.
//!
//! Syscall tracepoints (CONFIG_FTRACE_SYSCALLS, every distribution kernel): the entry records the
//! arguments and the namespaces before the call per thread, the exit emits one event with the
//! result and the namespaces after it, so the agent sees what was actually joined or created.
//! Layout relied on: `struct trace_event_raw_sys_enter { struct trace_entry ent; long id;
//! unsigned long args[6]; }` (args at byte 16) and `..._sys_exit { ent; long id; long ret; }`
//! (ret at byte 16); stable since the syscall tracepoints appeared (2.6.33).

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_get_current_task, bpf_probe_read_user},
    macros::tracepoint,
    programs::TracePointContext,
};
use escapewatch_common::{
    event::{NS_COUNT, NamespaceEvent, clone_flags},
    kind::EventKind,
    programs::ProgramId,
};

use crate::{
    helpers::{
        emit::{emit, run},
        task::{ERR_READ, KPtr, read_namespaces},
    },
    maps::{EVENTS_CRITICAL, PENDING_SYSCALLS, PendingNs},
};

const ARGS_OFFSET: usize = 16;
const RET_OFFSET: usize = 16;

#[inline(always)]
fn arg(ctx: &TracePointContext, n: usize) -> Result<u64, i64> {
    // SAFETY: reads inside the tracepoint record, whose layout is documented above.
    unsafe { ctx.read_at::<u64>(ARGS_OFFSET + 8 * n) }.map_err(|e| e as i64)
}

#[inline(always)]
fn current() -> KPtr {
    // SAFETY: helper without arguments.
    unsafe { bpf_get_current_task() as KPtr }
}

/// Remember the arguments and the namespaces of this thread at syscall entry.
#[inline(always)]
fn enter(flags: u64, fd: i32) -> Result<(), i64> {
    let tid = bpf_get_current_pid_tgid() as u32;
    let mut pending = PendingNs {
        flags,
        fd,
        _pad: 0,
        ns_before: [0; NS_COUNT],
    };
    read_namespaces(current(), &mut pending.ns_before);
    PENDING_SYSCALLS
        .insert(tid, pending, 0)
        .map_err(|e| e as i64)
}

/// At syscall exit: emit the event if the entry was recorded (the clone child also passes
/// through sys_exit_clone, but has no entry).
#[inline(always)]
fn exit(ctx: &TracePointContext, kind: EventKind) -> Result<(), i64> {
    let tid = bpf_get_current_pid_tgid() as u32;
    // SAFETY: the value is copied out before the entry is removed.
    let Some(pending) = (unsafe { PENDING_SYSCALLS.get(tid) }).copied() else {
        return Ok(());
    };
    let _ = PENDING_SYSCALLS.remove(tid);
    // SAFETY: reads inside the tracepoint record.
    let ret: i64 = unsafe { ctx.read_at::<i64>(RET_OFFSET) }.map_err(|e| e as i64)?;
    emit::<NamespaceEvent>(&EVENTS_CRITICAL, kind, current(), |ev| {
        ev.ret = ret;
        ev.flags = pending.flags;
        ev.fd = pending.fd;
        ev._pad = 0;
        ev.ns_before = pending.ns_before;
    });
    Ok(())
}

/// `setns(int fd, int nstype)`, 3.0+. Every call is recorded, failed ones included: an attempt
/// to join a host namespace is worth knowing about.
#[tracepoint(category = "syscalls", name = "sys_enter_setns")]
pub fn sys_enter_setns(ctx: TracePointContext) -> u32 {
    run(ProgramId::SysEnterSetns, || {
        enter(arg(&ctx, 1)?, arg(&ctx, 0)? as i32)
    })
}

#[tracepoint(category = "syscalls", name = "sys_exit_setns")]
pub fn sys_exit_setns(ctx: TracePointContext) -> u32 {
    run(ProgramId::SysExitSetns, || exit(&ctx, EventKind::Setns))
}

/// `unshare(unsigned long flags)`, 2.6.16+. Only calls that create a namespace.
#[tracepoint(category = "syscalls", name = "sys_enter_unshare")]
pub fn sys_enter_unshare(ctx: TracePointContext) -> u32 {
    run(ProgramId::SysEnterUnshare, || {
        let flags = arg(&ctx, 0)?;
        if flags & (clone_flags::CLONE_NEW_MASK | clone_flags::CLONE_NEWTIME) == 0 {
            return Ok(());
        }
        enter(flags, -1)
    })
}

#[tracepoint(category = "syscalls", name = "sys_exit_unshare")]
pub fn sys_exit_unshare(ctx: TracePointContext) -> u32 {
    run(ProgramId::SysExitUnshare, || exit(&ctx, EventKind::Unshare))
}

/// `clone(unsigned long flags, ...)` (x86_64 argument order). Only namespace-creating clones;
/// plain forks are seen by `sched_process_fork`.
#[tracepoint(category = "syscalls", name = "sys_enter_clone")]
pub fn sys_enter_clone(ctx: TracePointContext) -> u32 {
    run(ProgramId::SysEnterClone, || {
        let flags = arg(&ctx, 0)?;
        if flags & clone_flags::CLONE_NEW_MASK == 0 {
            return Ok(());
        }
        enter(flags, -1)
    })
}

#[tracepoint(category = "syscalls", name = "sys_exit_clone")]
pub fn sys_exit_clone(ctx: TracePointContext) -> u32 {
    run(ProgramId::SysExitClone, || {
        exit(&ctx, EventKind::CloneNewNamespace)
    })
}

/// `clone3(struct clone_args *uargs, size_t size)`, 5.3+; `flags` is the first u64 of
/// clone_args, read from user memory.
#[tracepoint(category = "syscalls", name = "sys_enter_clone3")]
pub fn sys_enter_clone3(ctx: TracePointContext) -> u32 {
    run(ProgramId::SysEnterClone3, || {
        let uargs = arg(&ctx, 0)? as *const u64;
        // SAFETY: user pointer validated by the helper.
        let flags = unsafe { bpf_probe_read_user(uargs) }.map_err(|_| ERR_READ)?;
        if flags & (clone_flags::CLONE_NEW_MASK | clone_flags::CLONE_NEWTIME) == 0 {
            return Ok(());
        }
        enter(flags, -1)
    })
}

#[tracepoint(category = "syscalls", name = "sys_exit_clone3")]
pub fn sys_exit_clone3(ctx: TracePointContext) -> u32 {
    run(ProgramId::SysExitClone3, || {
        exit(&ctx, EventKind::CloneNewNamespace)
    })
}
