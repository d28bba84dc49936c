//! Watched single syscalls from container candidates (ptrace, process_vm_writev, bpf,
//! open_by_handle_at, userfaultfd, init_module, finit_module, iopl, ioperm, kexec_load,
//! kexec_file_load) and the one exit program that
//! emits every syscall recorded at entry in `PENDING_SYSCALLS`.

use aya_ebpf::{macros::btf_tracepoint, programs::BtfTracePointContext};
use escapewatch_common::{
    abi::{
        BPF_LINK_CREATE, BPF_PROG_ATTACH, BPF_PROG_LOAD, BPF_RAW_TRACEPOINT_OPEN, PTRACE_ATTACH,
        PTRACE_POKEDATA, PTRACE_POKETEXT, PTRACE_POKEUSER, PTRACE_SEIZE, x86_64,
    },
    event::{NS_COUNT, NamespaceEvent, SyscallEvent, syscall_id},
    kind::EventKind,
    programs::ProgramId,
};

use super::{SysArgs, ret};
use crate::{
    helpers::{
        budget,
        emit::{emit, run},
        pending,
        task::{CURRENT, is_candidate},
    },
    maps::Pending,
};

/// Record the first `N` (at most four) arguments of this syscall for the exit, from candidates
/// only. `N` must not exceed the syscall's argument count: the kernel refuses to attach a
/// program that reads past its tracepoint's record.
#[inline(always)]
fn watch<const N: usize>(a: &impl SysArgs, id: u32) -> Result<(), i64> {
    if !is_candidate() {
        return Ok(());
    }
    let read = |i: usize| if i < N { a.arg(i) } else { Ok(0) };
    let args = [read(0)?, read(1)?, read(2)?, read(3)?];
    pending::put(EventKind::Syscall, id, args, [0; NS_COUNT])
}

/// `ptrace(long request, long pid, unsigned long addr, unsigned long data)`: attaching and
/// poking only.
#[btf_tracepoint(function = "sys_enter")]
pub fn sys_enter_ptrace(ctx: BtfTracePointContext) -> u32 {
    run(ProgramId::SysEnterPtrace, || ptrace(&ctx))
}

#[inline(always)]
pub fn ptrace(a: &impl SysArgs) -> Result<(), i64> {
    match a.arg(0)? {
        PTRACE_ATTACH | PTRACE_SEIZE | PTRACE_POKETEXT | PTRACE_POKEDATA | PTRACE_POKEUSER => {
            watch::<4>(a, syscall_id::PTRACE)
        }
        _ => Ok(()),
    }
}

/// `process_vm_writev(pid, local_iov, liovcnt, remote_iov, ...)`, 3.2+.
#[btf_tracepoint(function = "sys_enter")]
pub fn sys_enter_process_vm_writev(ctx: BtfTracePointContext) -> u32 {
    run(ProgramId::SysEnterProcessVmWritev, || {
        process_vm_writev(&ctx)
    })
}

#[inline(always)]
pub fn process_vm_writev(a: &impl SysArgs) -> Result<(), i64> {
    watch::<4>(a, syscall_id::PROCESS_VM_WRITEV)
}

/// `bpf(int cmd, union bpf_attr *attr, unsigned int size)`: loading and attaching programs.
#[btf_tracepoint(function = "sys_enter")]
pub fn sys_enter_bpf(ctx: BtfTracePointContext) -> u32 {
    run(ProgramId::SysEnterBpf, || bpf(&ctx))
}

#[inline(always)]
pub fn bpf(a: &impl SysArgs) -> Result<(), i64> {
    match a.arg(0)? {
        BPF_PROG_LOAD | BPF_PROG_ATTACH | BPF_RAW_TRACEPOINT_OPEN | BPF_LINK_CREATE => {
            watch::<3>(a, syscall_id::BPF)
        }
        _ => Ok(()),
    }
}

/// `open_by_handle_at(int mount_fd, struct file_handle *handle, int flags)`, 2.6.39+.
#[btf_tracepoint(function = "sys_enter")]
pub fn sys_enter_open_by_handle_at(ctx: BtfTracePointContext) -> u32 {
    run(ProgramId::SysEnterOpenByHandleAt, || {
        open_by_handle_at(&ctx)
    })
}

#[inline(always)]
pub fn open_by_handle_at(a: &impl SysArgs) -> Result<(), i64> {
    watch::<3>(a, syscall_id::OPEN_BY_HANDLE_AT)
}

/// `userfaultfd(int flags)`, 4.3+.
#[btf_tracepoint(function = "sys_enter")]
pub fn sys_enter_userfaultfd(ctx: BtfTracePointContext) -> u32 {
    run(ProgramId::SysEnterUserfaultfd, || userfaultfd(&ctx))
}

#[inline(always)]
pub fn userfaultfd(a: &impl SysArgs) -> Result<(), i64> {
    watch::<1>(a, syscall_id::USERFAULTFD)
}

/// `init_module(void *umod, unsigned long len, const char *uargs)`; absent without
/// CONFIG_MODULES (then this program does not attach and the rule says so).
#[btf_tracepoint(function = "sys_enter")]
pub fn sys_enter_init_module(ctx: BtfTracePointContext) -> u32 {
    run(ProgramId::SysEnterInitModule, || init_module(&ctx))
}

#[inline(always)]
pub fn init_module(a: &impl SysArgs) -> Result<(), i64> {
    watch::<3>(a, syscall_id::INIT_MODULE)
}

/// `finit_module(int fd, const char *uargs, int flags)`, 3.8+; absent without CONFIG_MODULES.
#[btf_tracepoint(function = "sys_enter")]
pub fn sys_enter_finit_module(ctx: BtfTracePointContext) -> u32 {
    run(ProgramId::SysEnterFinitModule, || finit_module(&ctx))
}

#[inline(always)]
pub fn finit_module(a: &impl SysArgs) -> Result<(), i64> {
    watch::<3>(a, syscall_id::FINIT_MODULE)
}

/// `iopl(unsigned int level)` and `ioperm(unsigned long from, unsigned long num, int
/// turn_on)`: asking for port I/O rights (what `LOCKDOWN_IOPORT` guards). Raising the level or
/// turning ports on only; iopl(0) and ioperm(.., 0) give rights up. One program for both (the
/// dispatcher enters it at either number; the tracepoint's `id` says which).
#[btf_tracepoint(function = "sys_enter")]
pub fn sys_enter_ioport(ctx: BtfTracePointContext) -> u32 {
    run(ProgramId::SysEnterIoport, || {
        let nr: u64 = ctx.arg(1);
        if nr == u64::from(x86_64::IOPL) {
            iopl(&ctx)
        } else {
            ioperm(&ctx)
        }
    })
}

#[inline(always)]
pub fn iopl(a: &impl SysArgs) -> Result<(), i64> {
    if a.arg(0)? as u32 == 0 {
        return Ok(());
    }
    watch::<1>(a, syscall_id::IOPL)
}

#[inline(always)]
pub fn ioperm(a: &impl SysArgs) -> Result<(), i64> {
    if a.arg(2)? as u32 == 0 {
        return Ok(());
    }
    watch::<3>(a, syscall_id::IOPERM)
}

/// `kexec_load(entry, nr_segments, segments, flags)` and `kexec_file_load(kernel_fd,
/// initrd_fd, cmdline_len, cmdline, flags)`: loading a kernel to boot into (what
/// `LOCKDOWN_KEXEC` guards). Every call, refused ones included.
#[btf_tracepoint(function = "sys_enter")]
pub fn sys_enter_kexec(ctx: BtfTracePointContext) -> u32 {
    run(ProgramId::SysEnterKexec, || {
        let nr: u64 = ctx.arg(1);
        if nr == u64::from(x86_64::KEXEC_LOAD) {
            kexec_load(&ctx)
        } else {
            kexec_file_load(&ctx)
        }
    })
}

#[inline(always)]
pub fn kexec_load(a: &impl SysArgs) -> Result<(), i64> {
    watch::<4>(a, syscall_id::KEXEC_LOAD)
}

/// The four first arguments: kernel_fd, initrd_fd, cmdline_len, cmdline (flags is the fifth).
#[inline(always)]
pub fn kexec_file_load(a: &impl SysArgs) -> Result<(), i64> {
    watch::<4>(a, syscall_id::KEXEC_FILE_LOAD)
}

/// Attached to the sys_exit tracepoint of every syscall above and of setns, unshare, clone and
/// clone3: emits what the entry recorded, with the return value. A clone child also passes
/// through sys_exit_clone, but has no entry.
#[btf_tracepoint(function = "sys_exit")]
pub fn sys_exit_pending(ctx: BtfTracePointContext) -> u32 {
    run(ProgramId::SysExitPending, || {
        let Some(p) = pending::take() else {
            return Ok(());
        };
        exit_pending(ProgramId::SysExitPending, &p, ret(&ctx)?);
        Ok(())
    })
}

/// Emit the namespace call or watched syscall `p` recorded at entry, which returned `rc`.
#[inline(always)]
pub fn exit_pending(program: ProgramId, p: &Pending, rc: i64) {
    let Ok(kind) = EventKind::try_from(p.kind) else {
        return;
    };
    match kind {
        EventKind::Setns | EventKind::Unshare | EventKind::CloneNewNamespace => {
            let Some(ring) = budget::namespace_call(kind, rc) else {
                return;
            };
            emit::<NamespaceEvent>(ring, program, kind, CURRENT, |ev| {
                ev.ret = rc;
                ev.flags = p.args[0];
                ev.fd = p.args[1] as i32;
                ev._pad = 0;
                ev.ns_before = p.ns_before;
            });
        }
        EventKind::Syscall => {
            let Some(ring) = budget::by_result(kind, rc) else {
                return;
            };
            emit::<SyscallEvent>(ring, program, kind, CURRENT, |ev| {
                ev.ret = rc;
                ev.id = p.id;
                ev._pad = 0;
                ev.args = p.args;
            });
        }
        _ => {}
    }
}
