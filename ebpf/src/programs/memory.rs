//! Copy-on-write abuse: the Dirty COW race (madvise(MADV_DONTNEED) on a read-only private file
//! mapping racing forced writes through /proc/PID/mem) and Dirty Pipe (a read-only file spliced
//! into a pipe, then the pipe written).
//!
//! Only what a rule needs crosses to userspace: madvise with MADV_DONTNEED whose mapping is
//! file-backed and not writable (found with bpf_find_vma, 5.17+); writes only to descriptors
//! the open and splice programs marked. The write path is the hottest syscall there is: until
//! some descriptor was marked it costs one array read.

use core::ffi::c_void;

use aya_ebpf::{
    helpers::generated::{bpf_find_vma, bpf_get_current_task_btf},
    macros::{fentry, kprobe, tracepoint},
    programs::{FEntryContext, ProbeContext, TracePointContext},
};
use escapewatch_common::{
    abi::{
        FAULT_FLAG_REMOTE, FAULT_FLAG_WRITE, FMODE_WRITE, MADV_DONTNEED, S_IFIFO, S_IFMT, S_IFREG,
        VM_SHARED, VM_WRITE,
    },
    event::{
        COW_FAULT_REMOTE_MM, CowFaultEvent, MEMW_SELF, MadviseEvent, MemWriteEvent, NAME_LEN,
        NS_COUNT, PipeWriteEvent, vma_bits,
    },
    kind::EventKind,
    programs::ProgramId,
};

use super::{arg, ret};
use crate::{
    cfg,
    helpers::{
        emit::{emit, run},
        files::{FileInfo, dentry_name, dentry_parent, fd_file, file_info},
        pending::{self, tgid},
        task::{ERR_READ, KPtr, current, is_candidate, read, read_ptr},
    },
    maps::{
        Budget, EVENTS_CRITICAL, MADVISE_BUDGET, MADVISE_PER_WINDOW, MADVISE_WINDOW_NS,
        MARK_PIPE_SPLICED, MARK_PROC_MEM, MARKED_FDS, MARKS_PRESENT, MappingKey, SCRATCH_MARK,
    },
};

/// What bpf_find_vma's callback copies out of the vm_area_struct.
#[repr(C)]
#[derive(Default)]
struct Vma {
    flags: u64,
    start: u64,
    end: u64,
    file: u64,
}

extern "C" fn vma_callback(_task: *mut c_void, vma: *mut c_void, data: *mut c_void) -> i64 {
    let vma = vma as KPtr;
    // SAFETY: `data` is the &mut Vma passed to bpf_find_vma below.
    let out = unsafe { &mut *(data as *mut Vma) };
    out.flags = read(vma, cfg!(vma_vm_flags)).unwrap_or(0);
    out.start = read(vma, cfg!(vma_vm_start)).unwrap_or(0);
    out.end = read(vma, cfg!(vma_vm_end)).unwrap_or(0);
    out.file = read_ptr(vma, cfg!(vma_vm_file)).map_or(0, |f| f as u64);
    0
}

/// The identity of a mapping's file (zeros and an empty name when it could not be read).
#[inline(always)]
fn mapped_file(info: Option<FileInfo>, ino: &mut u64, dev: &mut u32, name: &mut [u8; NAME_LEN]) {
    name[0] = 0;
    match info {
        Some(i) => {
            *ino = i.ino;
            *dev = i.dev;
            dentry_name(i.dentry, name);
        }
        None => {
            *ino = 0;
            *dev = 0;
        }
    }
}

/// The current task's mapping at `addr`, if any.
#[inline(always)]
fn find_vma(addr: u64) -> Option<Vma> {
    let mut vma = Vma::default();
    // SAFETY: the BTF task pointer of the current task, a static callback and a stack context.
    let rc = unsafe {
        bpf_find_vma(
            bpf_get_current_task_btf(),
            addr,
            vma_callback as *mut c_void,
            (&mut vma as *mut Vma).cast(),
            0,
        )
    };
    (rc == 0).then_some(vma)
}

/// Whether this event about the mapping at `vm_start` is one of the first few of its window.
#[inline(always)]
fn within_budget(vm_start: u64) -> bool {
    let key = MappingKey {
        vm_start,
        tgid: tgid(),
        _pad: 0,
    };
    // SAFETY: bpf_ktime_get_boot_ns has no preconditions.
    let now = unsafe { aya_ebpf::helpers::bpf_ktime_get_boot_ns() };
    if let Some(b) = MADVISE_BUDGET.get_ptr_mut(key) {
        // SAFETY: a value of our map; a racing CPU at worst lets one more through.
        let b = unsafe { &mut *b };
        if now.saturating_sub(b.window_start_ns) >= MADVISE_WINDOW_NS {
            b.window_start_ns = now;
            b.count = 1;
            return true;
        }
        b.count = b.count.saturating_add(1);
        return b.count <= MADVISE_PER_WINDOW;
    }
    let fresh = Budget {
        window_start_ns: now,
        count: 1,
        _pad: 0,
    };
    let _ = MADVISE_BUDGET.insert(key, fresh, 0);
    true
}

/// `madvise(unsigned long start, size_t len, int behavior)`: MADV_DONTNEED on a read-only
/// file-backed mapping only — the Dirty COW discard half. (Anonymous and special mappings,
/// MADV_DONTNEED_LOCKED and a per-mapping budget made this program too complex for the 6.1
/// verifier — over a million instructions — so they wait for a leaner layout; the fault
/// programs below already take every private read-only mapping.)
#[tracepoint(category = "syscalls", name = "sys_enter_madvise")]
pub fn sys_enter_madvise(ctx: TracePointContext) -> u32 {
    run(ProgramId::SysEnterMadvise, || {
        if arg(&ctx, 2)? != MADV_DONTNEED || !is_candidate() {
            return Ok(());
        }
        let start = arg(&ctx, 0)?;
        let len = arg(&ctx, 1)?;
        let Some(vma) = find_vma(start) else {
            return Ok(());
        };
        if vma.file == 0 || vma.flags & VM_WRITE != 0 {
            return Ok(());
        }
        let info = file_info(vma.file as KPtr).ok();
        emit::<MadviseEvent>(
            &EVENTS_CRITICAL,
            ProgramId::SysEnterMadvise,
            EventKind::Madvise,
            current(),
            |ev| {
                ev.start = start;
                ev.len = len;
                ev.advice = MADV_DONTNEED as u32;
                ev._pad = 0;
                ev.vm_flags = vma.flags;
                ev.vm_start = vma.start;
                ev.vm_end = vma.end;
                ev._pad2 = 0;
                mapped_file(info, &mut ev.file_ino, &mut ev.file_dev, &mut ev.file_name);
            },
        );
        Ok(())
    })
}

#[inline(always)]
fn marks_present() -> bool {
    MARKS_PRESENT.get(0).is_some_and(|v| *v != 0)
}

#[inline(always)]
fn mark_key(fd: u64) -> u64 {
    (u64::from(tgid()) << 32) | (fd & 0xffff_ffff)
}

/// A write to a marked fd: remember what the exit needs. `pos` is pwrite64's offset. Callers
/// check [`marks_present`] first: until a descriptor was ever marked, nothing else runs.
#[inline(always)]
fn write_enter(fd: u64, count: u64, pos: Option<u64>) -> Result<(), i64> {
    // SAFETY: the mark is copied out immediately.
    let Some(mark) = (unsafe { MARKED_FDS.get(mark_key(fd)) }).copied() else {
        return Ok(());
    };
    let file = fd_file(current(), fd)?;
    let info = file_info(file)?;
    // The fd number may have been closed and reused since it was marked.
    if info.ino != mark.file_ino && mark.kind == MARK_PROC_MEM {
        return Ok(());
    }
    match mark.kind {
        MARK_PROC_MEM => {
            let addr = match pos {
                Some(p) => p,
                None => read::<u64>(file, cfg!(file_f_pos))?,
            };
            pending::put(
                EventKind::MemWrite,
                0,
                [
                    fd,
                    addr,
                    count,
                    u64::from(mark.target_pid) | (u64::from(mark.flags) << 32),
                ],
                [0; NS_COUNT],
            )
        }
        MARK_PIPE_SPLICED if info.mode & S_IFMT == S_IFIFO => {
            pending::put(EventKind::PipeWrite, 0, [fd, 0, count, 0], [0; NS_COUNT])
        }
        _ => Ok(()),
    }
}

/// `write(unsigned int fd, const char *buf, size_t count)`.
#[tracepoint(category = "syscalls", name = "sys_enter_write")]
pub fn sys_enter_write(ctx: TracePointContext) -> u32 {
    run(ProgramId::SysEnterWrite, || {
        if !marks_present() {
            return Ok(());
        }
        write_enter(arg(&ctx, 0)?, arg(&ctx, 2)?, None)
    })
}

/// `pwrite64(unsigned int fd, const char *buf, size_t count, loff_t pos)`.
#[tracepoint(category = "syscalls", name = "sys_enter_pwrite64")]
pub fn sys_enter_pwrite64(ctx: TracePointContext) -> u32 {
    run(ProgramId::SysEnterPwrite64, || {
        if !marks_present() {
            return Ok(());
        }
        write_enter(arg(&ctx, 0)?, arg(&ctx, 2)?, Some(arg(&ctx, 3)?))
    })
}

/// Attached to sys_exit_write and sys_exit_pwrite64.
#[tracepoint(category = "syscalls", name = "sys_exit_write_family")]
pub fn sys_exit_write_family(ctx: TracePointContext) -> u32 {
    run(ProgramId::SysExitWrite, || {
        if !marks_present() {
            return Ok(());
        }
        let Some(p) = pending::take() else {
            return Ok(());
        };
        let rc = ret(&ctx)?;
        let [fd, addr, count, target] = p.args;
        // SAFETY: the mark is copied out immediately.
        let Some(mark) = (unsafe { MARKED_FDS.get(mark_key(fd)) }).copied() else {
            return Ok(());
        };
        if p.kind == EventKind::MemWrite as u32 {
            let mut bits = 0;
            let mut file_ino = 0;
            let mut file_name = [0u8; NAME_LEN];
            let flags = (target >> 32) as u32;
            if flags & MEMW_SELF != 0
                && let Some(vma) = find_vma(addr)
            {
                bits |= vma_bits::FOUND;
                if vma.flags & VM_WRITE != 0 {
                    bits |= vma_bits::WRITABLE;
                }
                if vma.flags & VM_SHARED != 0 {
                    bits |= vma_bits::SHARED;
                }
                if vma.file != 0 {
                    bits |= vma_bits::FILE_BACKED;
                    if let Ok(i) = file_info(vma.file as KPtr) {
                        file_ino = i.ino;
                        dentry_name(i.dentry, &mut file_name);
                    }
                }
            }
            emit::<MemWriteEvent>(
                &EVENTS_CRITICAL,
                ProgramId::SysExitWrite,
                EventKind::MemWrite,
                current(),
                |ev| {
                    ev.ret = rc;
                    ev.addr = addr;
                    ev.len = count;
                    ev.target_pid = target as u32;
                    ev.vma = bits;
                    ev.file_ino = file_ino;
                    ev.file_name = file_name;
                    ev.flags = flags;
                    ev._pad = 0;
                },
            );
        } else if p.kind == EventKind::PipeWrite as u32 {
            emit::<PipeWriteEvent>(
                &EVENTS_CRITICAL,
                ProgramId::SysExitWrite,
                EventKind::PipeWrite,
                current(),
                |ev| {
                    ev.ret = rc;
                    ev.fd = fd as u32;
                    ev.file_f_mode = mark.file_f_mode;
                    ev.file_ino = mark.file_ino;
                    ev.file_dev = mark.file_dev;
                    ev._pad = 0;
                    ev.file_name = mark.file_name;
                    ev.file_parent = mark.file_parent;
                },
            );
        }
        Ok(())
    })
}

/// `splice(int fd_in, loff_t *off_in, int fd_out, loff_t *off_out, size_t len, unsigned
/// flags)`: a regular file opened read-only spliced into a pipe marks the pipe.
#[tracepoint(category = "syscalls", name = "sys_enter_splice")]
pub fn sys_enter_splice(ctx: TracePointContext) -> u32 {
    run(ProgramId::SysEnterSplice, || {
        if !is_candidate() {
            return Ok(());
        }
        let task = current();
        let fd_out = arg(&ctx, 2)?;
        let input = file_info(fd_file(task, arg(&ctx, 0)?)?)?;
        if input.mode & S_IFMT != S_IFREG || input.f_mode & FMODE_WRITE != 0 {
            return Ok(());
        }
        let output = file_info(fd_file(task, fd_out)?)?;
        if output.mode & S_IFMT != S_IFIFO {
            return Ok(());
        }
        let scratch = SCRATCH_MARK.get_ptr_mut(0).ok_or(ERR_READ)?;
        // SAFETY: this CPU's scratch slot.
        let mark = unsafe { &mut *scratch };
        mark.kind = MARK_PIPE_SPLICED;
        mark.target_pid = 0;
        mark.flags = 0;
        mark._pad = 0;
        mark.file_ino = input.ino;
        mark.file_dev = input.dev;
        mark.file_f_mode = input.f_mode;
        dentry_name(input.dentry, &mut mark.file_name);
        mark.file_parent[0] = 0;
        if let Ok(parent) = dentry_parent(input.dentry) {
            dentry_name(parent, &mut mark.file_parent);
        }
        MARKED_FDS
            .insert(mark_key(fd_out), mark, 0)
            .map_err(|e| e as i64)?;
        MARKS_PRESENT.set(0, 1u32, 0).map_err(|e| e as i64)
    })
}

/// `handle_mm_fault(struct vm_area_struct *vma, unsigned long address, unsigned int flags,
/// struct pt_regs *regs)`: a GUP write fault (FAULT_FLAG_REMOTE: /proc/PID/mem, ptrace POKE,
/// never an ordinary store) into a mapping without VM_WRITE is a forced write — FOLL_FORCE — and
/// into a private mapping (a file, anonymous memory, the vDSO) it breaks copy-on-write: the
/// Dirty COW half that the kernel itself sees, whichever syscall led there. Every other fault
/// returns after one flags test; a race's millions of faults pass a per-mapping budget.
#[inline(always)]
fn cow_fault(program: ProgramId, vma: KPtr, addr: u64, fault_flags: u32) -> Result<(), i64> {
    let want = FAULT_FLAG_WRITE | FAULT_FLAG_REMOTE;
    if fault_flags & want != want || !is_candidate() {
        return Ok(());
    }
    let vm_flags: u64 = read(vma, cfg!(vma_vm_flags))?;
    if vm_flags & (VM_WRITE | VM_SHARED) != 0 {
        return Ok(());
    }
    let vm_start = read(vma, cfg!(vma_vm_start)).unwrap_or(0);
    if !within_budget(vm_start) {
        return Ok(());
    }
    // A file, anonymous memory or a special mapping (the vDSO): all break copy-on-write.
    let info = read_ptr(vma, cfg!(vma_vm_file))
        .ok()
        .and_then(|file| file_info(file).ok());
    let task = current();
    let remote = read_ptr(vma, cfg!(vma_vm_mm)).ok() != read_ptr(task, cfg!(task_mm)).ok();
    let vm_end = read(vma, cfg!(vma_vm_end)).unwrap_or(0);
    emit::<CowFaultEvent>(&EVENTS_CRITICAL, program, EventKind::CowFault, task, |ev| {
        ev.addr = addr;
        ev.fault_flags = fault_flags;
        ev.flags = if remote { COW_FAULT_REMOTE_MM } else { 0 };
        ev.vm_flags = vm_flags;
        ev.vm_start = vm_start;
        ev.vm_end = vm_end;
        ev._pad = 0;
        mapped_file(info, &mut ev.file_ino, &mut ev.file_dev, &mut ev.file_name);
    });
    Ok(())
}

/// The BPF trampoline variant (5.5+, the cheapest way in).
#[fentry(function = "handle_mm_fault")]
pub fn fentry_handle_mm_fault(ctx: FEntryContext) -> i32 {
    run(ProgramId::FentryHandleMmFault, || {
        cow_fault(
            ProgramId::FentryHandleMmFault,
            ctx.arg::<*const u8>(0),
            ctx.arg::<u64>(1),
            ctx.arg::<u32>(2),
        )
    }) as i32
}

/// The kprobe variant, for kernels whose trampolines are unavailable.
#[kprobe]
pub fn kprobe_handle_mm_fault(ctx: ProbeContext) -> u32 {
    run(ProgramId::KprobeHandleMmFault, || {
        cow_fault(
            ProgramId::KprobeHandleMmFault,
            ctx.arg::<*const u8>(0).ok_or(ERR_READ)?,
            ctx.arg::<u64>(1).ok_or(ERR_READ)?,
            ctx.arg::<u32>(2).ok_or(ERR_READ)?,
        )
    })
}
