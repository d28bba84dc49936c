//! File opens from container candidates that reach kernel objects a container should not touch.
//!
//! The exit looks at what was actually opened — the struct file behind the returned fd: its
//! filesystem magic, inode type and device, dentry names, mount namespace — instead of matching
//! the path string the caller passed, so symlinks, relative paths, `..` and /proc/PID/root
//! detours cannot hide the target. Failed opens with a telling errno (ENXIO from /dev/mem,
//! EPERM, EACCES, ETXTBSY) carry the caller's path instead.
//!
//! On kernels with BPF LSM, `lsm/file_open` classifies instead: it sees the struct file of every
//! open path (io_uring, open_by_handle_at, exec included) before the kernel hands it out. Inside
//! an open syscall it leaves the record for the syscall's exit, which adds the return value (a
//! driver may still refuse the open after the LSM check); elsewhere it sends it at once.

use aya_ebpf::{
    helpers::{bpf_probe_read_user, bpf_probe_read_user_str_bytes},
    macros::{btf_tracepoint, lsm, tracepoint},
    maps::RingBuf,
    programs::{BtfTracePointContext, LsmContext, TracePointContext},
};
use escapewatch_common::{
    abi::{
        AT_FDCWD, BINFMTFS_MAGIC, CGROUP_SUPER_MAGIC, DEBUGFS_MAGIC, EACCES, EIO, ENODEV, ENOENT,
        ENXIO, EPERM, EROFS, ETXTBSY, FMODE_WRITE, IORING_OP_OPENAT, IORING_OP_OPENAT2,
        MEM_DEVICES, MSR_MAJOR, O_RDWR, O_TRUNC, O_WRONLY, PROC_SUPER_MAGIC, S_IFBLK, S_IFCHR,
        S_IFMT, S_IFREG, SECURITYFS_MAGIC, SELINUX_MAGIC, SMACK_MAGIC, SYSFS_MAGIC, TRACEFS_MAGIC,
        kernel_dev_major,
    },
    config::OFFSET_NONE,
    event::{
        FileOpenEvent, InodeKey, MEMW_PID_IN_WRITER_NS, MEMW_SELF, NAME_LEN, NS_COUNT, open_class,
    },
    kind::EventKind,
    programs::ProgramId,
};

use super::{SysArgs, ret};
use crate::{
    cfg,
    helpers::{
        budget,
        emit::{emit, output_in_place, run},
        files::{
            FileInfo, dentry_name, dentry_name_is, dentry_parent, fd_file, file_info, file_mnt_ns,
            fs_root_walk, name_is, own_mnt_ns, parse_pid,
        },
        opaque::opaque,
        pending::{self, tgid, tid},
        task::{CURRENT, ERR_READ, KPtr, current, is_candidate, read, read_or_zero, read_ptr},
    },
    maps::{
        EVENTS_CRITICAL, MARK_PROC_MEM, PENDING_OPEN, PENDING_SYSCALLS, Pending, RUNTIME_INODES,
        SCRATCH_MARK, SCRATCH_OPEN,
    },
};

/// `Pending::args[2]` of an open syscall once the LSM hook left its record in PENDING_OPEN.
const LSM_STASHED: u64 = 1;

/// Paths whose absence (ENOENT) is still worth reporting: a kernel without them makes the
/// attempt harmless, not innocent.
#[inline(always)]
fn watched_missing_path(path: u64) -> bool {
    let mut buf = [0u8; 24];
    // SAFETY: the helper validates the user pointer and bounds the copy.
    if unsafe { bpf_probe_read_user_str_bytes(path as *const u8, &mut buf) }.is_err() {
        return false;
    }
    let is = |lit: &[u8]| lit.len() < buf.len() && buf[..lit.len()] == *lit && buf[lit.len()] == 0;
    is(b"/proc/sysrq-trigger") || is(b"/dev/mem") || is(b"/dev/kmem") || is(b"/dev/port")
}

/// Whether the caller's absolute `path` starts with /sys/ or /proc/ (after any run of
/// slashes): the read-only mounts a default container has there refuse writes with EROFS,
/// which is worth reporting there and noise on a read-only root filesystem elsewhere. Only
/// the caller's string is known (the kernel refused before any file was opened); a relative
/// path is not resolved.
#[inline(always)]
fn under_sys_or_proc(path: u64) -> bool {
    let mut buf = [0u8; 16];
    // SAFETY: the helper validates the user pointer and bounds the copy.
    if unsafe { bpf_probe_read_user_str_bytes(path as *const u8, &mut buf) }.is_err() {
        return false;
    }
    if buf[0] != b'/' {
        return false;
    }
    let mut i = 1;
    while i < 8 && buf[i] == b'/' {
        i += 1;
    }
    let at = |lit: &[u8]| {
        let mut k = 0;
        while k < lit.len() {
            if buf[i + k] != lit[k] {
                return false;
            }
            k += 1;
        }
        true
    };
    at(b"sys/") || at(b"proc/")
}

/// `Pending::args` of an open: flags, path, [`LSM_STASHED`] or 0, dfd.
/// For a relative user `path` opened at `dfd`: the directory it was resolved from (the
/// caller's working directory for AT_FDCWD, else the file at `dfd`) when it lies on sysfs,
/// procfs or a security filesystem, as a [`FileInfo`] of that directory.
#[inline(always)]
fn relative_base(path: u64, dfd: u64) -> Option<FileInfo> {
    // SAFETY: the helper validates the user pointer.
    let first = unsafe { bpf_probe_read_user(path as *const u8) }.ok()?;
    if first == b'/' || first == 0 {
        return None;
    }
    let task = current();
    let dentry = if dfd as i32 == AT_FDCWD {
        // fs_struct.pwd is a struct path: its dentry follows its mnt.
        let off = cfg!(fs_pwd_mnt);
        if off == OFFSET_NONE {
            return None;
        }
        read_ptr(read_ptr(task, cfg!(task_fs)).ok()?, off + 8).ok()?
    } else {
        let file = fd_file(task, u64::from(dfd as u32)).ok()?;
        read_ptr(file, cfg!(file_path_dentry)).ok()?
    };
    let inode = read_ptr(dentry, cfg!(dentry_d_inode)).ok()?;
    let sb = read_ptr(inode, cfg!(inode_i_sb)).ok()?;
    let magic = read::<u64>(sb, cfg!(sb_s_magic)).ok()? as u32;
    if !matches!(
        magic,
        SYSFS_MAGIC | PROC_SUPER_MAGIC | SECURITYFS_MAGIC | SELINUX_MAGIC | SMACK_MAGIC
    ) {
        return None;
    }
    Some(FileInfo {
        magic,
        mode: read_or_zero(inode, cfg!(inode_i_mode)),
        rdev: 0,
        ino: read_or_zero(inode, cfg!(inode_i_ino)),
        dev: read_or_zero(sb, cfg!(sb_s_dev)),
        f_mode: 0,
        dentry,
    })
}

#[inline(always)]
fn enter(flags: u64, path: u64, dfd: u64) -> Result<(), i64> {
    if !is_candidate() {
        return Ok(());
    }
    pending::put(EventKind::FileOpen, 0, [flags, path, 0, dfd], [0; NS_COUNT])
}

/// `openat(int dfd, const char *filename, int flags, umode_t mode)`.
#[btf_tracepoint(function = "sys_enter")]
pub fn sys_enter_openat(ctx: BtfTracePointContext) -> u32 {
    run(ProgramId::SysEnterOpenat, || openat(&ctx))
}

#[inline(always)]
pub fn openat(a: &impl SysArgs) -> Result<(), i64> {
    enter(a.arg(2)?, a.arg(1)?, a.arg(0)?)
}

/// `openat2(int dfd, const char *filename, struct open_how *how, size_t size)`, 5.6+; the
/// flags are the first u64 of open_how.
#[btf_tracepoint(function = "sys_enter")]
pub fn sys_enter_openat2(ctx: BtfTracePointContext) -> u32 {
    run(ProgramId::SysEnterOpenat2, || openat2(&ctx))
}

#[inline(always)]
pub fn openat2(a: &impl SysArgs) -> Result<(), i64> {
    let how = a.arg(2)? as *const u64;
    // SAFETY: user pointer validated by the helper.
    let flags = unsafe { bpf_probe_read_user(how) }.map_err(|_| ERR_READ)?;
    enter(flags, a.arg(1)?, a.arg(0)?)
}

/// `open(const char *filename, int flags, umode_t mode)` (x86_64 still has it).
#[btf_tracepoint(function = "sys_enter")]
pub fn sys_enter_open(ctx: BtfTracePointContext) -> u32 {
    run(ProgramId::SysEnterOpen, || open(&ctx))
}

#[inline(always)]
pub fn open(a: &impl SysArgs) -> Result<(), i64> {
    enter(a.arg(1)?, a.arg(0)?, AT_FDCWD as u64)
}

/// A sysfs or procfs regular file by which a process reaches PCI hardware: sysfs `config`,
/// `resource<digit>...` (a PCI device's configuration space and BARs), procfs `BB.F`-shaped
/// names (the /proc/bus/pci/BUS/ files). Neither filesystem lets a container choose a name;
/// the agent checks the directories (a PCI address, /proc/bus/pci/BUS).
#[inline(always)]
fn is_hardware_file(info: &FileInfo, name: &[u8; NAME_LEN]) -> bool {
    if info.mode & S_IFMT != S_IFREG {
        return false;
    }
    match info.magic {
        SYSFS_MAGIC => {
            name_is(name, b"config") || (name[..8] == *b"resource" && name[8].is_ascii_digit())
        }
        PROC_SUPER_MAGIC => {
            name[0].is_ascii_hexdigit()
                && name[1].is_ascii_hexdigit()
                && name[2] == b'.'
                && name[3].is_ascii_digit()
                && name[4] == 0
        }
        _ => false,
    }
}

/// Which watched object `info` (named `name`) is, as `open_class` bits.
#[inline(always)]
fn classify(info: &FileInfo, name: &[u8; NAME_LEN], write: bool) -> u32 {
    let mut class = 0;
    match info.magic {
        PROC_SUPER_MAGIC => {
            if name_is(name, b"sysrq-trigger")
                || name_is(name, b"kcore")
                || name_is(name, b"kallsyms")
                || name_is(name, b"sched_debug")
                || name_is(name, b"mem")
            {
                class |= open_class::PROC_ENTRY;
            }
            if write && kernel_interface(info.dentry, false) {
                class |= open_class::KERNEL_INTERFACE;
            }
        }
        CGROUP_SUPER_MAGIC => {
            if write && (name_is(name, b"release_agent") || name_is(name, b"notify_on_release")) {
                class |= open_class::CGROUP_RELEASE;
            }
        }
        DEBUGFS_MAGIC | TRACEFS_MAGIC => class |= open_class::DEBUGFS,
        BINFMTFS_MAGIC => class |= open_class::BINFMT_MISC,
        SYSFS_MAGIC if name_is(name, b"uevent_helper") => class |= open_class::UEVENT_HELPER,
        SYSFS_MAGIC if write && kernel_interface(info.dentry, true) => {
            class |= open_class::KERNEL_INTERFACE;
        }
        SELINUX_MAGIC | SECURITYFS_MAGIC | SMACK_MAGIC if write => {
            class |= open_class::SECURITY_POLICY;
        }
        _ => {}
    }
    if is_hardware_file(info, name) {
        class |= open_class::HARDWARE;
    }
    match info.mode & S_IFMT {
        S_IFBLK => class |= open_class::BLOCK_DEVICE,
        S_IFCHR => {
            let r = info.rdev;
            let [mem, kmem, port] = MEM_DEVICES;
            if r == mem || r == kmem || r == port {
                class |= open_class::MEM_DEVICE;
            }
            if kernel_dev_major(r) == MSR_MAJOR {
                class |= open_class::HARDWARE;
            }
            if name_is(name, b"userfaultfd") {
                class |= open_class::USERFAULTFD_DEV;
            }
        }
        _ => {}
    }
    if write {
        let key = InodeKey {
            dev: info.dev,
            _pad: 0,
            ino: info.ino,
        };
        // SAFETY: read-only lookup of a plain value.
        if unsafe { RUNTIME_INODES.get(key) }.is_some() {
            class |= open_class::RUNTIME_BINARY;
        }
    }
    class
}

/// Whether `dentry` lies in a host kernel interface tree by the top directory below its
/// filesystem's root: sysfs (`sysfs`) `kernel/`, `module/`, `firmware/`; procfs `irq/`,
/// `bus/` but not `bus/pci/` (PCI config space has its own class).
#[inline(always)]
fn kernel_interface(dentry: KPtr, sysfs: bool) -> bool {
    let walk = fs_root_walk(dentry);
    if walk.top.is_null() {
        return false;
    }
    if sysfs {
        return dentry_name_is(walk.top, b"kernel")
            || dentry_name_is(walk.top, b"module")
            || dentry_name_is(walk.top, b"firmware");
    }
    dentry_name_is(walk.top, b"irq")
        || (dentry_name_is(walk.top, b"bus") && !dentry_name_is(walk.second, b"pci"))
}

/// Mark a /proc/PID/mem file so the write path reports writes through it, by whatever fd
/// number or process (`_fd` is the number it was opened as: the mark is keyed by the object).
#[inline(always)]
fn mark_proc_mem(
    _fd: u64,
    file: KPtr,
    info: &FileInfo,
    name: &[u8; NAME_LEN],
    dir_pid: u32,
) -> Result<(), i64> {
    let scratch = SCRATCH_MARK.get_ptr_mut(0).ok_or(ERR_READ)?;
    // SAFETY: this CPU's scratch slot.
    let mark = unsafe { &mut *scratch };
    mark.kind = MARK_PROC_MEM;
    mark._pad = 0;
    // mem_open keeps the target's mm in private_data: the same as ours means our own memory,
    // whatever pid namespace numbered the /proc directory. The write path decides again for
    // the writer; this is who the opener reached.
    let target_mm = read_ptr(file, cfg!(file_private_data)).ok();
    let own_mm = read_ptr(current(), cfg!(task_mm)).ok();
    if target_mm.is_some() && target_mm == own_mm {
        mark.target_pid = tgid();
        mark.flags = MEMW_SELF;
    } else {
        mark.target_pid = dir_pid;
        mark.flags = MEMW_PID_IN_WRITER_NS;
    }
    mark.obj_ino = info.ino;
    mark.obj_dev = info.dev;
    mark._pad2 = 0;
    mark.file_ino = info.ino;
    mark.file_dev = info.dev;
    mark.file_f_mode = info.f_mode;
    mark.file_name = *name;
    mark.file_parent[0] = 0;
    super::memory::set_mark(file, mark)
}

/// Write a FileOpen record's payload.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn fill_open(
    ev: &mut FileOpenEvent,
    rc: i64,
    flags: u64,
    path: u64,
    class: u32,
    info: Option<FileInfo>,
    mnt_ns: u32,
    name: &[u8; NAME_LEN],
) {
    ev.ret = rc;
    ev.open_flags = flags as u32;
    ev.class = class;
    ev.file_mnt_ns = mnt_ns;
    ev.name = *name;
    ev.parent[0] = 0;
    ev.grandparent[0] = 0;
    match info {
        Some(info) => {
            ev.fs_magic = info.magic;
            ev.i_mode = u32::from(info.mode);
            ev.rdev = info.rdev;
            ev.f_mode = info.f_mode;
            ev.ino = info.ino;
            ev.dev = info.dev;
            if let Ok(parent) = dentry_parent(info.dentry) {
                dentry_name(parent, &mut ev.parent);
                if let Ok(gp) = dentry_parent(parent) {
                    dentry_name(gp, &mut ev.grandparent);
                }
            }
            ev.depth = 0;
            ev.top[0] = 0;
            let walked =
                open_class::SECURITY_POLICY | open_class::KERNEL_INTERFACE | open_class::FAILED;
            if class & walked != 0 {
                // A failed open's `info` is the directory its relative path started from.
                if class & open_class::FAILED != 0 {
                    dentry_name(info.dentry, &mut ev.name);
                }
                let walk = fs_root_walk(info.dentry);
                ev.depth = walk.depth;
                if !walk.top.is_null() {
                    dentry_name(walk.top, &mut ev.top);
                }
            }
        }
        None => {
            ev.depth = 0;
            ev.top[0] = 0;
            ev.fs_magic = 0;
            ev.i_mode = 0;
            ev.rdev = 0;
            ev.f_mode = 0;
            ev.ino = 0;
            ev.dev = 0;
        }
    }
    ev._pad = 0;
    ev.path[0] = 0;
    // SAFETY: the helper validates the user pointer and bounds the copy.
    if path == 0
        || unsafe { bpf_probe_read_user_str_bytes(path as *const u8, &mut ev.path) }.is_err()
    {
        ev.path[0] = 0;
    }
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn emit_open(
    ring: Option<&RingBuf>,
    program: ProgramId,
    rc: i64,
    flags: u64,
    path: u64,
    class: u32,
    info: Option<FileInfo>,
    mnt_ns: u32,
    name: &[u8; NAME_LEN],
) {
    let Some(ring) = ring else { return };
    emit::<FileOpenEvent>(ring, program, EventKind::FileOpen, CURRENT, |ev| {
        fill_open(ev, rc, flags, path, class, info, mnt_ns, name);
    });
}

/// Classes of an open `file` (named `name`) by `task`, opened with `flags`; 0 when nothing
/// watched.
#[inline(always)]
fn classify_open(
    task: KPtr,
    file: KPtr,
    info: &FileInfo,
    name: &[u8; NAME_LEN],
    flags: u64,
) -> (u32, u32) {
    let write = flags & (O_WRONLY | O_RDWR | O_TRUNC) != 0 || info.f_mode & FMODE_WRITE != 0;
    let mut class = classify(info, name, write);
    let fns = file_mnt_ns(file);
    let own = own_mnt_ns(task);
    if fns != 0 && own != 0 && fns != own {
        class |= open_class::FOREIGN_MNT_NS;
    }
    // Every combination of classes would otherwise verify the rest of the caller again.
    (opaque(u64::from(class)) as u32, fns)
}

/// A /proc/PID/mem open that returned `fd`: mark it for the write path.
#[inline(always)]
fn mark_if_proc_mem(fd: u64, class: u32, name: &[u8; NAME_LEN]) -> Result<(), i64> {
    if class & open_class::PROC_ENTRY == 0 || !name_is(name, b"mem") {
        return Ok(());
    }
    let file = fd_file(current(), fd)?;
    mark_file_if_proc_mem(fd, file, &file_info(file)?, class, name)
}

/// `file` (at `fd`, of `class`), marked for the write path if it is a /proc/PID/mem.
#[inline(always)]
fn mark_file_if_proc_mem(
    fd: u64,
    file: KPtr,
    info: &FileInfo,
    class: u32,
    name: &[u8; NAME_LEN],
) -> Result<(), i64> {
    if class & open_class::PROC_ENTRY == 0 || !name_is(name, b"mem") {
        return Ok(());
    }
    let mut pid_dir = [0u8; NAME_LEN];
    if let Ok(parent) = dentry_parent(info.dentry) {
        dentry_name(parent, &mut pid_dir);
    }
    mark_proc_mem(fd, file, info, name, parse_pid(&pid_dir))
}

/// The file an open put at `fd` (returning `rc`), opened with `flags` (None: the file's own
/// f_flags) from user path `path` (0: none): classify it and, when it is watched, mark it if it
/// is a /proc/PID/mem and send it. The one judgement of every successful open seen after the
/// fact: the open syscalls' exits and io_uring completions.
#[inline(always)]
fn judge_opened_fd(
    program: ProgramId,
    fd: u64,
    rc: i64,
    flags: Option<u64>,
    path: u64,
) -> Result<(), i64> {
    let task = current();
    let file = fd_file(task, fd)?;
    let info = file_info(file)?;
    let mut name = [0u8; NAME_LEN];
    dentry_name(info.dentry, &mut name);
    let flags = flags.unwrap_or_else(|| u64::from(read_or_zero::<u32>(file, cfg!(file_f_flags))));
    let (class, fns) = classify_open(task, file, &info, &name, flags);
    if class == 0 {
        return Ok(());
    }
    mark_file_if_proc_mem(fd, file, &info, class, &name)?;
    emit_open(
        Some(&EVENTS_CRITICAL),
        program,
        rc,
        flags,
        path,
        class,
        Some(info),
        fns,
        &name,
    );
    Ok(())
}

/// `security_file_open(struct file *file)`: every open, on every path, with the struct file the
/// kernel is about to hand out. Never denies (returns 0).
#[lsm(hook = "file_open")]
pub fn lsm_file_open(ctx: LsmContext) -> i32 {
    run(ProgramId::LsmFileOpen, || {
        if !is_candidate() {
            return Ok(());
        }
        let file: KPtr = ctx.arg::<*const u8>(0);
        let info = file_info(file)?;
        let mut name = [0u8; NAME_LEN];
        dentry_name(info.dentry, &mut name);
        let tid = tid();
        let pending = PENDING_SYSCALLS
            .get_ptr_mut(tid)
            // SAFETY: this thread's own entry.
            .filter(|p| unsafe { (**p).kind } == EventKind::FileOpen as u32);
        let (flags, path) = match pending {
            // SAFETY: as above.
            Some(p) => unsafe { ((*p).args[0], (*p).args[1]) },
            None => (u64::from(read_or_zero::<u32>(file, cfg!(file_f_flags))), 0),
        };
        let task = current();
        let (class, fns) = classify_open(task, file, &info, &name, flags);
        if class == 0 {
            return Ok(());
        }
        let Some(p) = pending else {
            emit_open(
                Some(&EVENTS_CRITICAL),
                ProgramId::LsmFileOpen,
                0,
                flags,
                0,
                class,
                Some(info),
                fns,
                &name,
            );
            return Ok(());
        };
        let scratch = SCRATCH_OPEN.get_ptr_mut(0).ok_or(ERR_READ)?;
        // SAFETY: this CPU's scratch slot, copied into the map right after.
        let rec = unsafe { &mut *scratch };
        fill_open(rec, 0, flags, path, class, Some(info), fns, &name);
        PENDING_OPEN.insert(tid, rec, 0).map_err(|e| e as i64)?;
        // SAFETY: this thread's own entry.
        unsafe { (*p).args[2] = LSM_STASHED };
        Ok(())
    }) as i32
}

/// Attached to sys_exit_openat, sys_exit_openat2 and sys_exit_open.
#[btf_tracepoint(function = "sys_exit")]
pub fn sys_exit_open_family(ctx: BtfTracePointContext) -> u32 {
    run(ProgramId::SysExitOpen, || {
        let Some(p) = pending::take() else {
            return Ok(());
        };
        if p.kind != EventKind::FileOpen as u32 {
            return Ok(());
        }
        exit_open(ProgramId::SysExitOpen, &p, ret(&ctx)?)
    })
}

/// The exit of an open recorded at entry as `p`, which returned `rc`: classify what was opened
/// and emit it (or the telling failure).
#[inline(always)]
pub fn exit_open(program: ProgramId, p: &Pending, rc: i64) -> Result<(), i64> {
    {
        let (flags, path) = (p.args[0], p.args[1]);
        if p.args[2] == LSM_STASHED {
            let tid = tid();
            let Some(rec) = PENDING_OPEN.get_ptr_mut(tid) else {
                return Ok(());
            };
            // SAFETY: this thread's own entry, sent and removed below.
            let (class, name) = unsafe {
                (*rec).ret = rc;
                ((*rec).class, (*rec).name)
            };
            if rc >= 0 {
                let _ = mark_if_proc_mem(rc as u64, class, &name);
            }
            if let Some(ring) = budget::by_result(EventKind::FileOpen, rc) {
                output_in_place(
                    ring,
                    ProgramId::LsmFileOpen,
                    EventKind::FileOpen,
                    CURRENT,
                    rec,
                );
            }
            let _ = PENDING_OPEN.remove(tid);
            return Ok(());
        }
        if rc < 0 {
            let errno = -rc;
            // A refused relative path: the directory it started from, when that is on a
            // filesystem whose writes are watched (the path alone says nothing).
            let base = if errno == EROFS || errno == EACCES || errno == EPERM {
                relative_base(path, p.args[3])
            } else {
                None
            };
            // errnos worth reporting: the object exists but refused (or is absent in the way
            // /dev/mem is on kernels without CONFIG_DEVMEM).
            if errno == ENXIO
                || errno == EPERM
                || errno == EACCES
                || errno == ETXTBSY
                || errno == EIO
                || errno == ENODEV
                || (errno == ENOENT && watched_missing_path(path))
                || (errno == EROFS && (base.is_some() || under_sys_or_proc(path)))
            {
                let ring = budget::attempt(EventKind::FileOpen);
                emit_open(
                    ring,
                    program,
                    rc,
                    flags,
                    path,
                    open_class::FAILED,
                    base,
                    0,
                    &[0u8; NAME_LEN],
                );
            }
            return Ok(());
        }
        judge_opened_fd(program, rc as u64, rc, Some(flags), path)
    }
}

/// `io_uring_complete`: a request's result is posted. For IORING_OP_OPENAT/OPENAT2 that succeeded
/// into the fd table, the file behind the new descriptor is classified exactly as an open
/// syscall's exit does: io_uring makes no open syscall, so without BPF LSM nothing else sees
/// these opens. Where `lsm/file_open` attached, it sees them already and this program stands by
/// (same group). Runs in the submitter or its io_uring worker threads, which share its files.
#[tracepoint(category = "io_uring", name = "io_uring_complete")]
pub fn iouring_complete_open(ctx: TracePointContext) -> u32 {
    run(ProgramId::IouringCompleteOpen, || {
        let Some(c) = super::iouring::completion(&ctx)? else {
            return Ok(());
        };
        if (c.opcode != IORING_OP_OPENAT && c.opcode != IORING_OP_OPENAT2) || !is_candidate() {
            return Ok(());
        }
        // A direct descriptor (a fixed-file slot) is not in the fd table.
        if c.res < 0 || read::<u32>(c.req, cfg!(io_open_file_slot)).unwrap_or(0) != 0 {
            return Ok(());
        }
        judge_opened_fd(
            ProgramId::IouringCompleteOpen,
            c.res as u64,
            i64::from(c.res),
            None,
            0,
        )
    })
}
