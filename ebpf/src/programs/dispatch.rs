//! The two programs every syscall of every task runs: tp_btf on the generic `sys_enter` and
//! `sys_exit` tracepoints (5.5+). Nothing else is attached to a syscall tracepoint.
//!
//! - A 64-bit syscall continues by tail call into entry N (its number) of `SYS_ENTER_TAILS` /
//!   `SYS_EXIT_TAILS`, where the agent put the watched syscalls' own programs. An unwatched
//!   syscall finds an empty entry and costs these two short programs, nothing more: none of the
//!   per-syscall tracepoints' perf path (about +95 ns a program here), no second program.
//! - The 32-bit entry of x86-64 (`int 0x80`, sysenter, the 32-bit `syscall`), which any 64-bit
//!   process may use with the i386 syscall numbers and which the per-syscall tracepoints never
//!   report (the kernel's `trace_get_syscall_nr` hides compat calls), is decoded here: while
//!   `thread_info.status` has `TS_COMPAT`, the i386 arguments, read from the saved registers,
//!   go to the very entry and exit logic of the 64-bit programs. One classification, two entries.

use aya_ebpf::{
    helpers::bpf_probe_read_user, macros::btf_tracepoint, programs::BtfTracePointContext,
};
use escapewatch_common::{
    abi::{PT_REGS_ORIG_AX, TS_COMPAT, i386},
    config::OFFSET_NONE,
    event::rename,
    kind::EventKind,
    programs::{COMPAT_ENTER_MADVISE, COMPAT_EXIT_OPEN, COMPAT_EXIT_WRITE, ProgramId},
};

use super::{CompatArgs, SysArgs, memory, mount, namespace, open, races, socket, syscalls};
use crate::{
    cfg,
    helpers::{
        emit::run,
        pending,
        task::{ERR_READ, KPtr, current_btf, load_btf},
    },
    maps::{SYS_ENTER_TAILS, SYS_EXIT_TAILS},
};

/// Whether the current task is inside a 32-bit syscall. False where the kernel has no
/// `thread_info.status` (the agent leaves the offset unset there).
#[inline(always)]
fn in_compat_syscall() -> bool {
    let off = cfg!(task_ti_status);
    if off == OFFSET_NONE {
        return false;
    }
    // A direct load, not a probe read: every syscall of every task pays this test twice, and
    // a helper call plus `copy_from_kernel_nofault` cost about 45 ns of it (BPF stats).
    // SAFETY: thread_info.status (thread_info is task_struct's first member) at its BTF offset.
    let status: u32 = unsafe { load_btf(current_btf(), off) };
    status & TS_COMPAT != 0
}

/// The arguments of i386 `socketcall(int call, unsigned long *args)`: 32-bit words in the
/// caller's memory.
struct SocketcallArgs {
    args: u64,
}

impl SysArgs for SocketcallArgs {
    #[inline(always)]
    fn arg(&self, n: usize) -> Result<u64, i64> {
        let word = (self.args + 4 * n as u64) as *const u32;
        // SAFETY: user pointer validated by the helper.
        unsafe { bpf_probe_read_user(word) }
            .map(u64::from)
            .map_err(|_| ERR_READ)
    }
}

/// `trace_sys_enter(struct pt_regs *regs, long id)`: every syscall entry.
#[btf_tracepoint(function = "sys_enter")]
pub fn sys_enter(ctx: BtfTracePointContext) -> u32 {
    let id: u64 = ctx.arg(1);
    if !in_compat_syscall() {
        // SAFETY: the same context, handed to a program of the same hook; returns only if
        // the entry is empty (a syscall nobody watches) or out of range (`id` -1, say).
        unsafe { SYS_ENTER_TAILS.tail_call(&ctx, id as u32) };
        return 0;
    }
    if id == i386::MADVISE {
        // Here, not in the closure below: the kernel allows a tail call only in a function
        // returning int, and the closure may be compiled as a function of its own.
        // SAFETY: as above.
        unsafe { SYS_ENTER_TAILS.tail_call(&ctx, COMPAT_ENTER_MADVISE) };
        return 0;
    }
    run(ProgramId::SysEnter, || {
        let regs: KPtr = ctx.arg(0);
        let a = CompatArgs { regs };
        match id {
            i386::OPEN => open::open(&a),
            i386::OPENAT => open::openat(&a),
            i386::OPENAT2 => open::openat2(&a),
            i386::MOUNT => mount::mount(&a),
            i386::OPEN_TREE => mount::open_tree(&a),
            i386::MOVE_MOUNT => mount::move_mount(&a),
            i386::FSOPEN => mount::fsopen(&a),
            i386::FSCONFIG => mount::fsconfig(&a),
            i386::FSMOUNT => mount::fsmount(&a),
            i386::SETNS => namespace::setns(&a),
            i386::UNSHARE => namespace::unshare(&a),
            i386::CLONE => namespace::clone(&a),
            i386::CLONE3 => namespace::clone3(&a),
            i386::PTRACE => syscalls::ptrace(&a),
            i386::PROCESS_VM_WRITEV => syscalls::process_vm_writev(&a),
            i386::BPF => syscalls::bpf(&a),
            i386::OPEN_BY_HANDLE_AT => syscalls::open_by_handle_at(&a),
            i386::USERFAULTFD => syscalls::userfaultfd(&a),
            i386::INIT_MODULE => syscalls::init_module(&a),
            i386::FINIT_MODULE => syscalls::finit_module(&a),
            i386::IOPL => syscalls::iopl(&a),
            i386::IOPERM => syscalls::ioperm(&a),
            i386::KEXEC_LOAD => syscalls::kexec_load(&a),
            i386::CONNECT => socket::connect(&a),
            i386::RENAME => races::renames(ProgramId::SysEnter, &a, rename::ENTRY_RENAME),
            i386::RENAMEAT => races::renames(ProgramId::SysEnter, &a, rename::ENTRY_RENAMEAT),
            i386::RENAMEAT2 => races::renames(ProgramId::SysEnter, &a, rename::ENTRY_RENAMEAT2),
            i386::WRITE => memory::write_enter(a.arg(0)?, a.arg(2)?, None),
            // The 64-bit offset comes in two registers, low half first.
            i386::PWRITE64 => {
                memory::write_enter(a.arg(0)?, a.arg(2)?, Some(a.arg(3)? | a.arg(4)? << 32))
            }
            i386::WRITEV => memory::write_enter(a.arg(0)?, memory::COUNT_VECTORED, None),
            i386::PWRITEV | i386::PWRITEV2 => memory::write_enter(
                a.arg(0)?,
                memory::COUNT_VECTORED,
                Some(a.arg(3)? | a.arg(4)? << 32),
            ),
            i386::SPLICE => memory::splice(a.arg(0)?, a.arg(2)?),
            i386::TEE => memory::tee(a.arg(0)?, a.arg(1)?),
            i386::SOCKETCALL if a.arg(0)? == i386::SYS_CONNECT => {
                socket::connect(&SocketcallArgs { args: a.arg(1)? })
            }
            _ => Ok(()),
        }
    })
}

/// `trace_sys_exit(struct pt_regs *regs, long ret)`: every syscall exit. A 64-bit syscall
/// continues in its exit program, found by the number the entry left in `orig_ax`. For a
/// 32-bit one, what the entry recorded says which exit logic applies; an open continues in
/// [`compat_sys_exit_open`] by a tail call (one program for both would take the 6.1 verifier
/// past its stack and instruction limits).
#[btf_tracepoint(function = "sys_exit")]
pub fn sys_exit(ctx: BtfTracePointContext) -> u32 {
    if !in_compat_syscall() {
        let regs: *const u8 = ctx.arg(0);
        // SAFETY: a field of the BTF-typed saved registers at a constant offset (a direct
        // load the verifier checks against `struct pt_regs`).
        let nr = unsafe { core::ptr::read_volatile(regs.add(PT_REGS_ORIG_AX).cast::<u64>()) };
        // SAFETY: as in [`sys_enter`].
        unsafe { SYS_EXIT_TAILS.tail_call(&ctx, nr as u32) };
        return 0;
    }
    let tail = match pending::kind() {
        Some(k) if k == EventKind::FileOpen as u32 => Some(COMPAT_EXIT_OPEN),
        Some(k) if k == EventKind::MemWrite as u32 || k == EventKind::PipeWrite as u32 => {
            Some(COMPAT_EXIT_WRITE)
        }
        _ => None,
    };
    if let Some(index) = tail {
        // Here, not in the closure below (see `sys_enter`). SAFETY: the same context, handed
        // to a program of the same hook; returns only if the array entry is missing.
        unsafe { SYS_EXIT_TAILS.tail_call(&ctx, index) };
        return 0;
    }
    run(ProgramId::SysExit, || {
        const P: ProgramId = ProgramId::SysExit;
        let rc: i64 = ctx.arg(1);
        if mount::exit_mount(P, rc) || socket::exit_connect(P, rc) {
            return Ok(());
        }
        if let Some(p) = pending::take() {
            syscalls::exit_pending(P, &p, rc);
        }
        Ok(())
    })
}

/// The exit of a 32-bit open: the second half of [`sys_exit`], never attached.
#[btf_tracepoint(function = "sys_exit")]
pub fn compat_sys_exit_open(ctx: BtfTracePointContext) -> u32 {
    run(ProgramId::CompatSysExitOpen, || {
        let Some(p) = pending::take() else {
            return Ok(());
        };
        open::exit_open(ProgramId::CompatSysExitOpen, &p, ctx.arg(1))
    })
}

/// The exit of a 32-bit write to a marked object: the other second half of [`sys_exit`].
#[btf_tracepoint(function = "sys_exit")]
pub fn compat_sys_exit_write(ctx: BtfTracePointContext) -> u32 {
    run(ProgramId::CompatSysExitWrite, || {
        if let Some(p) = pending::take() {
            memory::exit_write(ProgramId::CompatSysExitWrite, &p, ctx.arg(1));
        }
        Ok(())
    })
}

/// A 32-bit madvise: the Dirty COW discard checks of [`memory::sys_enter_madvise`] and
/// [`memory::sys_enter_madvise_special`], entered by tail call from [`sys_enter`].
#[btf_tracepoint(function = "sys_enter")]
pub fn compat_sys_enter_madvise(ctx: BtfTracePointContext) -> u32 {
    run(ProgramId::CompatSysEnterMadvise, || {
        const P: ProgramId = ProgramId::CompatSysEnterMadvise;
        let a = CompatArgs { regs: ctx.arg(0) };
        memory::madvise_file(P, &a)?;
        memory::madvise_special(P, &a)
    })
}
