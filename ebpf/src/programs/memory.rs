//! Copy-on-write abuse: the Dirty COW race (madvise(MADV_DONTNEED) on a read-only private file
//! mapping racing forced writes through /proc/PID/mem) and Dirty Pipe (a read-only file spliced
//! into a pipe, then the pipe written).
//!
//! Only what a rule needs crosses to userspace: discards (MADV_DONTNEED, MADV_DONTNEED_LOCKED)
//! of private mappings that are not writable (found with bpf_find_vma, 5.17+), a few per
//! mapping each window; writes (every flavour) only to objects the open and splice programs
//! marked — marks follow the inode behind the fd, not the fd number. The write path is the
//! hottest syscall there is: until some object was marked it costs one array read.

use core::ffi::c_void;

use aya_ebpf::{
    helpers::generated::{bpf_find_vma, bpf_get_current_task_btf},
    macros::{btf_tracepoint, fentry, kprobe},
    programs::{BtfTracePointContext, FEntryContext, ProbeContext},
};
use escapewatch_common::{
    abi::{
        FAULT_FLAG_REMOTE, FAULT_FLAG_WRITE, FMODE_WRITE, MADV_DONTNEED, MADV_DONTNEED_LOCKED,
        S_IFIFO, S_IFMT, S_IFREG, VM_READ, VM_SHARED, VM_WRITE,
    },
    event::{
        COW_FAULT_REMOTE_MM, CowFaultEvent, MEMW_SELF, MadviseEvent, MemWriteEvent, NAME_LEN,
        NS_COUNT, PipeWriteEvent, vma_bits,
    },
    kind::EventKind,
    programs::{ENTER_MADVISE_SPECIAL, ProgramId},
};

use super::{SysArgs, arg, ret};
use crate::{
    cfg,
    helpers::{
        emit::{emit, run},
        files::{FileInfo, dentry_name, dentry_parent, fd_file, file_info},
        pending::{self, tgid},
        task::{CURRENT, ERR_READ, KPtr, current, is_candidate, read, read_or_zero, read_ptr},
    },
    maps::{
        Budget, EVENTS_CRITICAL, MADVISE_BUDGET, MADVISE_PER_WINDOW, MADVISE_WINDOW_NS,
        MARK_PIPE_SPLICED, MARK_PROC_MEM, MARKED_FDS, MARKS_PRESENT, MappingKey, Mark, Pending,
        SCRATCH_MARK, SYS_ENTER_TAILS,
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
    out.flags = read_or_zero(vma, cfg!(vma_vm_flags));
    out.start = read_or_zero(vma, cfg!(vma_vm_start));
    out.end = read_or_zero(vma, cfg!(vma_vm_end));
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

/// Whether this record of `kind` (a discard or a forced-write fault) about the mapping at
/// `vm_start` is one of the first few of its window. Each kind has its own count: one half of
/// the race must not use up the other's records.
#[inline(always)]
fn within_budget(vm_start: u64, kind: EventKind) -> bool {
    let key = MappingKey {
        vm_start,
        tgid: tgid(),
        kind: kind as u32,
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

/// A discard advice: MADV_DONTNEED, or MADV_DONTNEED_LOCKED (5.18+), which discards the same
/// pages and also locked ones.
#[inline(always)]
fn discards(advice: u64) -> bool {
    advice == MADV_DONTNEED || advice == MADV_DONTNEED_LOCKED
}

/// `madvise(unsigned long start, size_t len, int behavior)`: a discard on a read-only private
/// file-backed mapping — the Dirty COW discard half. The race discards millions of times, so at
/// most MADVISE_PER_WINDOW records per mapping each window leave the kernel (a race in one
/// container must not fill the ring another container's escape needs). Mappings that are no
/// file are [`sys_enter_madvise_special`]'s.
#[btf_tracepoint(function = "sys_enter")]
pub fn sys_enter_madvise(ctx: BtfTracePointContext) -> u32 {
    let rc = run(ProgramId::SysEnterMadvise, || {
        madvise_file(ProgramId::SysEnterMadvise, &ctx)
    });
    // The no-file half continues in a program of its own (one for both is too much for the
    // 6.1 verifier). Here, not in the closure: only a function returning int may tail-call.
    // SAFETY: the same context, handed to a program of the same hook; returns only if the
    // array entry is missing.
    unsafe { SYS_ENTER_TAILS.tail_call(&ctx, ENTER_MADVISE_SPECIAL) };
    rc
}

/// The file-backed half of a discard with arguments `a` (any syscall entry).
#[inline(always)]
pub fn madvise_file(program: ProgramId, a: &impl SysArgs) -> Result<(), i64> {
    madvise_discard(program, a, true)
}

/// `madvise` again, for the discard half of Dirty COW on mappings that are no file: private
/// anonymous memory made read-only, and special mappings such as the vDSO (scumjr's
/// dirtycow-vdso, the Docker escape of seed 000). A program of its own that
/// [`sys_enter_madvise`] tail-calls, each small enough for the 6.1 verifier, with the same
/// budget.
#[btf_tracepoint(function = "sys_enter")]
pub fn sys_enter_madvise_special(ctx: BtfTracePointContext) -> u32 {
    run(ProgramId::SysEnterMadviseSpecial, || {
        madvise_special(ProgramId::SysEnterMadviseSpecial, &ctx)
    })
}

/// The no-file half of a discard with arguments `a` (any syscall entry).
#[inline(always)]
pub fn madvise_special(program: ProgramId, a: &impl SysArgs) -> Result<(), i64> {
    madvise_discard(program, a, false)
}

/// A discard with arguments `a` of a mapping that is backed by a file (`file_backed`) or not:
/// sent when the mapping is private and never writable, what a forced write would copy
/// (mappings without a file must be readable too: the vDSO, anonymous memory made read-only).
#[inline(always)]
fn madvise_discard(program: ProgramId, a: &impl SysArgs, file_backed: bool) -> Result<(), i64> {
    let advice = a.arg(2)?;
    if !discards(advice) || !is_candidate() {
        return Ok(());
    }
    let start = a.arg(0)?;
    let Some(vma) = find_vma(start) else {
        return Ok(());
    };
    let backing = if file_backed {
        vma.file != 0
    } else {
        vma.file == 0 && vma.flags & VM_READ != 0
    };
    if !backing
        || vma.flags & (VM_WRITE | VM_SHARED) != 0
        || !within_budget(vma.start, EventKind::Madvise)
    {
        return Ok(());
    }
    let info = if file_backed {
        file_info(vma.file as KPtr).ok()
    } else {
        None
    };
    emit_madvise(program, start, a.arg(1)?, advice, &vma, info);
    Ok(())
}

/// The Madvise record of a discard of `len` bytes at `start` in mapping `vma` (backed by the
/// file `info`, if any).
#[inline(always)]
fn emit_madvise(
    program: ProgramId,
    start: u64,
    len: u64,
    advice: u64,
    vma: &Vma,
    info: Option<FileInfo>,
) {
    emit::<MadviseEvent>(
        &EVENTS_CRITICAL,
        program,
        EventKind::Madvise,
        CURRENT,
        |ev| {
            ev.start = start;
            ev.len = len;
            ev.advice = advice as u32;
            ev._pad = 0;
            ev.vm_flags = vma.flags;
            ev.vm_start = vma.start;
            ev.vm_end = vma.end;
            ev._pad2 = 0;
            mapped_file(info, &mut ev.file_ino, &mut ev.file_dev, &mut ev.file_name);
        },
    );
}

#[inline(always)]
pub(crate) fn marks_present() -> bool {
    MARKS_PRESENT.get(0).is_some_and(|v| *v != 0)
}

/// The key of `file`'s mark in MARKED_FDS: the address of its inode (see [`MARKED_FDS`]).
#[inline(always)]
pub(crate) fn mark_key(file: KPtr) -> Result<u64, i64> {
    read_ptr(file, cfg!(file_f_inode)).map(|inode| inode as u64)
}

/// Mark the object behind `file` for the write path.
#[inline(always)]
pub(crate) fn set_mark(file: KPtr, mark: &Mark) -> Result<(), i64> {
    MARKED_FDS
        .insert(mark_key(file)?, mark, 0)
        .map_err(|e| e as i64)?;
    MARKS_PRESENT.set(0, 1u32, 0).map_err(|e| e as i64)
}

/// `count` of the vectored writes: the size is the sum of an iovec array the entry does not
/// walk, so the exit reports the bytes the kernel wrote instead.
pub(crate) const COUNT_VECTORED: u64 = u64::MAX;

/// `pwritev2`'s `pos` meaning "at the file position", as writev.
const POS_CURRENT: u64 = u64::MAX;

/// The entry half of every write flavour (write, pwrite64, writev, pwritev, pwritev2; a
/// compat entry can call it with the arguments it decoded): a write to an object the open and
/// splice programs marked leaves what the exit needs. `count` is the byte count, or
/// [`COUNT_VECTORED`]; `pos` the explicit offset (None: at the file position).
///
/// Until some object was ever marked this is one array read. After that, the fd's file and
/// inode pointers and one hash lookup; the mark follows the object, so a dup'ed, inherited or
/// passed descriptor, whatever its number, still hits it.
#[inline(always)]
pub(crate) fn write_enter(fd: u64, count: u64, pos: Option<u64>) -> Result<(), i64> {
    if !marks_present() {
        return Ok(());
    }
    // A bad or closed fd is the write's own EBADF, no error of ours.
    let Ok(file) = fd_file(current(), fd) else {
        return Ok(());
    };
    if let Some((kind, args)) = write_target(file, fd, count, pos)? {
        pending::put(kind, 0, args, [0; NS_COUNT])?;
    }
    Ok(())
}

/// The judgement of a write of `count` bytes (or [`COUNT_VECTORED`]) at `pos` (None: at the
/// file position) through `file` (at descriptor `fd`), for every way a write is made (the write
/// syscalls of either entry, io_uring's write requests): when it reaches a marked object, the
/// record kind and arguments that [`emit_write`] turns into its record once the result is
/// known.
#[inline(always)]
pub(crate) fn write_target(
    file: KPtr,
    fd: u64,
    count: u64,
    pos: Option<u64>,
) -> Result<Option<(EventKind, [u64; 4])>, i64> {
    let Ok(key) = mark_key(file) else {
        return Ok(None);
    };
    // SAFETY: the mark is copied out immediately.
    let Some(mark) = (unsafe { MARKED_FDS.get(key) }).copied() else {
        return Ok(None);
    };
    let info = file_info(file)?;
    // The inode was freed and its address reused since it was marked.
    if info.ino != mark.obj_ino || info.dev != mark.obj_dev {
        return Ok(None);
    }
    Ok(match mark.kind {
        MARK_PROC_MEM => {
            let addr = match pos {
                Some(p) if p != POS_CURRENT => p,
                _ => read::<u64>(file, cfg!(file_f_pos))?,
            };
            let (target, flags) = mem_target(file, &mark);
            Some((
                EventKind::MemWrite,
                [
                    fd,
                    addr,
                    count,
                    u64::from(target) | (u64::from(flags) << 32),
                ],
            ))
        }
        MARK_PIPE_SPLICED if info.mode & S_IFMT == S_IFIFO => {
            Some((EventKind::PipeWrite, [fd, key, count, 0]))
        }
        _ => None,
    })
}

/// Whose memory a write through the /proc/PID/mem `file` lands in, as (pid, `MEMW_*`), decided
/// by the writer, not the opener: mem_open keeps the target's mm in private_data, so the writer's
/// own mm there is its own memory, whoever opened it. A descriptor its opener got for its own
/// memory and then handed on (fork, SCM_RIGHTS) writes the opener (a host tgid, no flag);
/// otherwise the /proc/PID directory's number as the opener saw it.
#[inline(always)]
fn mem_target(file: KPtr, mark: &Mark) -> (u32, u32) {
    let target_mm = read_ptr(file, cfg!(file_private_data)).ok();
    if target_mm.is_some() && target_mm == read_ptr(current(), cfg!(task_mm)).ok() {
        (tgid(), MEMW_SELF)
    } else if mark.flags & MEMW_SELF != 0 {
        (mark.target_pid, 0)
    } else {
        (mark.target_pid, mark.flags & !MEMW_SELF)
    }
}

/// `write(unsigned int fd, const char *buf, size_t count)`.
#[btf_tracepoint(function = "sys_enter")]
pub fn sys_enter_write(ctx: BtfTracePointContext) -> u32 {
    run(ProgramId::SysEnterWrite, || {
        write_enter(arg(&ctx, 0)?, arg(&ctx, 2)?, None)
    })
}

/// `pwrite64(unsigned int fd, const char *buf, size_t count, loff_t pos)`.
#[btf_tracepoint(function = "sys_enter")]
pub fn sys_enter_pwrite64(ctx: BtfTracePointContext) -> u32 {
    run(ProgramId::SysEnterPwrite64, || {
        write_enter(arg(&ctx, 0)?, arg(&ctx, 2)?, Some(arg(&ctx, 3)?))
    })
}

/// `writev(unsigned long fd, const struct iovec *vec, unsigned long vlen)` (2.6.33+, as every
/// syscall tracepoint).
#[btf_tracepoint(function = "sys_enter")]
pub fn sys_enter_writev(ctx: BtfTracePointContext) -> u32 {
    run(ProgramId::SysEnterWritev, || {
        write_enter(arg(&ctx, 0)?, COUNT_VECTORED, None)
    })
}

/// `pwritev(unsigned long fd, const struct iovec *vec, unsigned long vlen, unsigned long
/// pos_l, unsigned long pos_h)`: on 64-bit, pos_l is the whole offset.
#[btf_tracepoint(function = "sys_enter")]
pub fn sys_enter_pwritev(ctx: BtfTracePointContext) -> u32 {
    run(ProgramId::SysEnterPwritev, || {
        write_enter(arg(&ctx, 0)?, COUNT_VECTORED, Some(arg(&ctx, 3)?))
    })
}

/// `pwritev2(unsigned long fd, const struct iovec *vec, unsigned long vlen, unsigned long
/// pos_l, unsigned long pos_h, rwf_t flags)` (4.6+): pos -1 writes at the file position.
#[btf_tracepoint(function = "sys_enter")]
pub fn sys_enter_pwritev2(ctx: BtfTracePointContext) -> u32 {
    run(ProgramId::SysEnterPwritev2, || {
        write_enter(arg(&ctx, 0)?, COUNT_VECTORED, Some(arg(&ctx, 3)?))
    })
}

/// Attached to the exits of write, pwrite64, writev, pwritev and pwritev2.
#[btf_tracepoint(function = "sys_exit")]
pub fn sys_exit_write_family(ctx: BtfTracePointContext) -> u32 {
    run(ProgramId::SysExitWrite, || {
        if !marks_present() {
            return Ok(());
        }
        let Some(p) = pending::take() else {
            return Ok(());
        };
        exit_write(ProgramId::SysExitWrite, &p, ret(&ctx)?);
        Ok(())
    })
}

/// The exit of a write to a marked object the entry recorded as `p`, which returned `rc`.
#[inline(always)]
pub(crate) fn exit_write(program: ProgramId, p: &Pending, rc: i64) {
    emit_write(program, p.kind, rc, p.args);
}

/// The record of a write [`write_target`] judged as `kind` with `args`, which returned `rc`.
#[inline(always)]
pub(crate) fn emit_write(program: ProgramId, kind: u32, rc: i64, args: [u64; 4]) {
    if kind == EventKind::MemWrite as u32 {
        emit_mem_write(program, rc, args);
    } else if kind == EventKind::PipeWrite as u32 {
        let [fd, key, _, _] = args;
        // SAFETY: the mark is copied out immediately.
        let Some(mark) = (unsafe { MARKED_FDS.get(key) }).copied() else {
            return;
        };
        emit::<PipeWriteEvent>(
            &EVENTS_CRITICAL,
            program,
            EventKind::PipeWrite,
            CURRENT,
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
}

/// The MemWrite record of a write the entry kept as `[fd, addr, count, target | flags << 32]`.
#[inline(always)]
fn emit_mem_write(program: ProgramId, rc: i64, args: [u64; 4]) {
    let [_, addr, count, target] = args;
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
    let len = if count == COUNT_VECTORED {
        rc.max(0) as u64
    } else {
        count
    };
    emit::<MemWriteEvent>(
        &EVENTS_CRITICAL,
        program,
        EventKind::MemWrite,
        CURRENT,
        |ev| {
            ev.ret = rc;
            ev.addr = addr;
            ev.len = len;
            ev.target_pid = target as u32;
            ev.vma = bits;
            ev.file_ino = file_ino;
            ev.file_name = file_name;
            ev.flags = flags;
            ev._pad = 0;
        },
    );
}

/// `splice(int fd_in, loff_t *off_in, int fd_out, loff_t *off_out, size_t len, unsigned
/// flags)`: a regular file opened read-only spliced into a pipe marks the pipe — its inode, so
/// every descriptor of it, in any process, is watched. A marked pipe spliced into another pipe
/// passes its mark on.
#[btf_tracepoint(function = "sys_enter")]
pub fn sys_enter_splice(ctx: BtfTracePointContext) -> u32 {
    run(ProgramId::SysEnterSplice, || {
        splice(arg(&ctx, 0)?, arg(&ctx, 2)?)
    })
}

/// splice's entry, from `fd_in` into `fd_out`.
#[inline(always)]
pub(crate) fn splice(fd_in: u64, fd_out: u64) -> Result<(), i64> {
    if !is_candidate() {
        return Ok(());
    }
    let task = current();
    judge_splice(fd_file(task, fd_in)?, fd_file(task, fd_out)?)
}

/// A splice from `source` into `pipe`, however made (the syscall of either entry,
/// IORING_OP_SPLICE): a read-only regular file marks the pipe; a marked pipe passes its mark on
/// (which is also tee's judgement).
#[inline(always)]
pub(crate) fn judge_splice(source: KPtr, pipe: KPtr) -> Result<(), i64> {
    let input = file_info(source)?;
    let output = file_info(pipe)?;
    if output.mode & S_IFMT != S_IFIFO {
        return Ok(());
    }
    match input.mode & S_IFMT {
        S_IFIFO => return pass_mark_on(source, &input, pipe, &output),
        S_IFREG if input.f_mode & FMODE_WRITE == 0 => {}
        _ => return Ok(()),
    }
    let scratch = SCRATCH_MARK.get_ptr_mut(0).ok_or(ERR_READ)?;
    // SAFETY: this CPU's scratch slot.
    let mark = unsafe { &mut *scratch };
    mark.kind = MARK_PIPE_SPLICED;
    mark.target_pid = 0;
    mark.flags = 0;
    mark._pad = 0;
    mark.obj_ino = output.ino;
    mark.obj_dev = output.dev;
    mark._pad2 = 0;
    mark.file_ino = input.ino;
    mark.file_dev = input.dev;
    mark.file_f_mode = input.f_mode;
    dentry_name(input.dentry, &mut mark.file_name);
    mark.file_parent[0] = 0;
    if let Ok(parent) = dentry_parent(input.dentry) {
        dentry_name(parent, &mut mark.file_parent);
    }
    set_mark(pipe, mark)
}

/// `tee(int fdin, int fdout, size_t len, unsigned int flags)`: duplicates pipe buffers into
/// another pipe, the spliced file's page cache page and its flags among them.
#[btf_tracepoint(function = "sys_enter")]
pub fn sys_enter_tee(ctx: BtfTracePointContext) -> u32 {
    run(ProgramId::SysEnterTee, || tee(arg(&ctx, 0)?, arg(&ctx, 1)?))
}

/// tee's entry, from `fd_in` into `fd_out`.
#[inline(always)]
pub(crate) fn tee(fd_in: u64, fd_out: u64) -> Result<(), i64> {
    if !marks_present() || !is_candidate() {
        return Ok(());
    }
    let task = current();
    let source = fd_file(task, fd_in)?;
    let pipe = fd_file(task, fd_out)?;
    pass_mark_on(source, &file_info(source)?, pipe, &file_info(pipe)?)
}

/// Pipe-to-pipe splice and tee copy buffers, not bytes: when the `source` pipe is marked, the
/// `pipe` it feeds holds the same page and gets the same mark (with its own identity).
#[inline(always)]
fn pass_mark_on(source: KPtr, input: &FileInfo, pipe: KPtr, output: &FileInfo) -> Result<(), i64> {
    if input.mode & S_IFMT != S_IFIFO || output.mode & S_IFMT != S_IFIFO {
        return Ok(());
    }
    let Some(marked) = MARKED_FDS.get_ptr(mark_key(source)?) else {
        return Ok(());
    };
    let scratch = SCRATCH_MARK.get_ptr_mut(0).ok_or(ERR_READ)?;
    // SAFETY: a value of our map copied into this CPU's scratch slot.
    let mark = unsafe {
        *scratch = *marked;
        &mut *scratch
    };
    if mark.kind != MARK_PIPE_SPLICED || mark.obj_ino != input.ino || mark.obj_dev != input.dev {
        return Ok(());
    }
    mark.obj_ino = output.ino;
    mark.obj_dev = output.dev;
    set_mark(pipe, mark)
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
    let vm_start = read_or_zero(vma, cfg!(vma_vm_start));
    if !within_budget(vm_start, EventKind::CowFault) {
        return Ok(());
    }
    // A file, anonymous memory or a special mapping (the vDSO): all break copy-on-write.
    let info = read_ptr(vma, cfg!(vma_vm_file))
        .ok()
        .and_then(|file| file_info(file).ok());
    let task = current();
    let remote = read_ptr(vma, cfg!(vma_vm_mm)).ok() != read_ptr(task, cfg!(task_mm)).ok();
    let vm_end = read_or_zero(vma, cfg!(vma_vm_end));
    emit::<CowFaultEvent>(
        &EVENTS_CRITICAL,
        program,
        EventKind::CowFault,
        CURRENT,
        |ev| {
            ev.addr = addr;
            ev.fault_flags = fault_flags;
            ev.flags = if remote { COW_FAULT_REMOTE_MM } else { 0 };
            ev.vm_flags = vm_flags;
            ev.vm_start = vm_start;
            ev.vm_end = vm_end;
            ev._pad = 0;
            mapped_file(info, &mut ev.file_ino, &mut ev.file_dev, &mut ev.file_name);
        },
    );
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
