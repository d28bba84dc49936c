//! Files behind file descriptors, and what kind of kernel object they are.

use aya_ebpf::helpers::bpf_probe_read_kernel_str_bytes;
use escapewatch_common::{
    config::OFFSET_NONE,
    event::{NAME_LEN, NsType},
};

use super::task::{ERR_READ, KPtr, mnt_ns, read, read_or_zero, read_ptr};
use crate::cfg;

/// `struct file *` of `fd` in `task`'s descriptor table.
#[inline(always)]
pub fn fd_file(task: KPtr, fd: u64) -> Result<KPtr, i64> {
    let files = read_ptr(task, cfg!(task_files))?;
    let fdt = read_ptr(files, cfg!(files_fdt))?;
    let max: u32 = read(fdt, cfg!(fdt_max_fds))?;
    if fd >= u64::from(max) {
        return Err(ERR_READ);
    }
    let array = read_ptr(fdt, cfg!(fdt_fd))?;
    // SAFETY: pointer arithmetic only; the read below is a probe read.
    read_ptr(unsafe { array.add(fd as usize * 8) }, 0)
}

/// The identity and type of an open file.
#[derive(Clone, Copy)]
pub struct FileInfo {
    pub magic: u32,
    pub mode: u16,
    pub rdev: u32,
    pub ino: u64,
    pub dev: u32,
    pub f_mode: u32,
    pub dentry: KPtr,
}

/// The superblock of the filesystem `file` lives on.
#[inline(always)]
pub fn file_sb(file: KPtr) -> Result<KPtr, i64> {
    read_ptr(file, cfg!(file_f_inode)).and_then(|inode| read_ptr(inode, cfg!(inode_i_sb)))
}

/// Copy the filesystem type name of superblock `sb` (`s_type->name`) into `out`.
#[inline(always)]
pub fn fstype_name(sb: KPtr, out: &mut [u8]) {
    out[0] = 0;
    if let Ok(name) = read_ptr(sb, cfg!(sb_s_type)).and_then(|t| read_ptr(t, cfg!(fstype_name))) {
        // SAFETY: probe read into a fixed buffer.
        if unsafe { bpf_probe_read_kernel_str_bytes(name, out) }.is_err() {
            out[0] = 0;
        }
    }
}

#[inline(always)]
pub fn file_info(file: KPtr) -> Result<FileInfo, i64> {
    let inode = read_ptr(file, cfg!(file_f_inode))?;
    let sb = read_ptr(inode, cfg!(inode_i_sb))?;
    Ok(FileInfo {
        magic: read::<u64>(sb, cfg!(sb_s_magic))? as u32,
        mode: read(inode, cfg!(inode_i_mode))?,
        rdev: read_or_zero(inode, cfg!(inode_i_rdev)),
        ino: read(inode, cfg!(inode_i_ino))?,
        dev: read_or_zero(sb, cfg!(sb_s_dev)),
        f_mode: read_or_zero(file, cfg!(file_f_mode)),
        dentry: read_ptr(file, cfg!(file_path_dentry))?,
    })
}

/// Copy the name of `dentry` into `out` (NUL-terminated, cut to fit).
#[inline(always)]
pub fn dentry_name(dentry: KPtr, out: &mut [u8; NAME_LEN]) {
    out[0] = 0;
    if let Ok(name) = read_ptr(dentry, cfg!(dentry_name)) {
        // SAFETY: probe read into a fixed buffer.
        if unsafe { bpf_probe_read_kernel_str_bytes(name, out) }.is_err() {
            out[0] = 0;
        }
    }
}

#[inline(always)]
pub fn dentry_parent(dentry: KPtr) -> Result<KPtr, i64> {
    read_ptr(dentry, cfg!(dentry_parent))
}

/// Whether the NUL-terminated `buf` holds exactly `lit`.
#[inline(always)]
pub fn name_is(buf: &[u8; NAME_LEN], lit: &[u8]) -> bool {
    holds(buf, lit)
}

/// Whether the NUL-terminated `buf` (of any size) holds exactly `lit`.
#[inline(always)]
fn holds<const N: usize>(buf: &[u8; N], lit: &[u8]) -> bool {
    if lit.len() >= N {
        return false;
    }
    let mut i = 0;
    while i < lit.len() {
        if buf[i] != lit[i] {
            return false;
        }
        i += 1;
    }
    buf[lit.len()] == 0
}

/// Decimal number at the start of `buf` (a /proc/<pid> directory name), 0 if none.
#[inline(always)]
pub fn parse_pid(buf: &[u8; NAME_LEN]) -> u32 {
    let mut pid: u32 = 0;
    let mut i = 0;
    while i < 10 {
        let c = buf[i];
        if !c.is_ascii_digit() {
            break;
        }
        pid = pid.wrapping_mul(10).wrapping_add(u32::from(c - b'0'));
        i += 1;
    }
    pid
}

/// Mount namespace inode of the mount `file` was opened through (0 if none, e.g. a detached
/// mount).
#[inline(always)]
pub fn file_mnt_ns(file: KPtr) -> u32 {
    read_ptr(file, cfg!(file_path_mnt)).map_or(0, vfsmount_mnt_ns)
}

/// Mount namespace inode of a `struct vfsmount *` (0 if none, e.g. a detached mount):
/// `container_of(vfsmount, struct mount, mnt)->mnt_ns->ns.inum`.
#[inline(always)]
pub fn vfsmount_mnt_ns(vfsmount: KPtr) -> u32 {
    const MNT: usize = NsType::Mnt as usize;
    let off = cfg!(mount_mnt);
    if off == OFFSET_NONE {
        return 0;
    }
    // SAFETY: container_of arithmetic; every dereference is a probe read.
    let mount = unsafe { vfsmount.sub(off as usize) };
    read_ptr(mount, cfg!(mount_mnt_ns))
        .and_then(|ns| read::<u32>(ns, cfg!(ns_inum[MNT])))
        .unwrap_or(0)
}

/// The current task's mount namespace (re-exported for the open checks).
#[inline(always)]
pub fn own_mnt_ns(task: KPtr) -> u32 {
    mnt_ns(task)
}

/// How deep [`fs_root_walk`] looks: sysfs knobs sit at most 5 levels below the root
/// (kernel/mm/transparent_hugepage/khugepaged/defrag), /proc/irq and /proc/bus at 4.
pub const ROOT_WALK_DEPTH: u32 = 12;

/// Where a dentry sits in its filesystem: the top directory below the superblock's root on
/// its way up, the one below that, and how many components down it is (0: the root itself;
/// `top` null: not reached within [`ROOT_WALK_DEPTH`] or unreadable).
#[derive(Clone, Copy)]
pub struct RootWalk {
    pub top: KPtr,
    pub second: KPtr,
    pub depth: u32,
}

/// Walk `dentry`'s parents up to its filesystem's root (the dentry that is its own parent):
/// kernel facts, whatever mount point, bind mount or symlink led to the file.
#[inline(always)]
pub fn fs_root_walk(dentry: KPtr) -> RootWalk {
    let mut walk = RootWalk {
        top: core::ptr::null(),
        second: core::ptr::null(),
        depth: 0,
    };
    let mut d = dentry;
    let mut below = core::ptr::null();
    let mut i = 0;
    while i < ROOT_WALK_DEPTH {
        let Ok(parent) = dentry_parent(d) else {
            walk.top = core::ptr::null();
            walk.depth = ROOT_WALK_DEPTH + 1;
            return walk;
        };
        if parent == d {
            // `d` is the root (the dentry itself when i == 0).
            walk.depth = i;
            return walk;
        }
        walk.second = below;
        walk.top = d;
        below = d;
        d = parent;
        i += 1;
    }
    // Deeper than the walk goes: unknown.
    walk.top = core::ptr::null();
    walk.second = core::ptr::null();
    walk.depth = ROOT_WALK_DEPTH + 1;
    walk
}

/// Whether the name of `dentry` is exactly `lit` (at most 15 bytes).
#[inline(always)]
pub fn dentry_name_is(dentry: KPtr, lit: &[u8]) -> bool {
    let mut buf = [0u8; 16];
    if dentry.is_null() || lit.len() >= buf.len() {
        return false;
    }
    let Ok(name) = read_ptr(dentry, cfg!(dentry_name)) else {
        return false;
    };
    // SAFETY: probe read into a fixed buffer.
    if unsafe { bpf_probe_read_kernel_str_bytes(name, &mut buf) }.is_err() {
        return false;
    }
    holds(&buf, lit)
}
