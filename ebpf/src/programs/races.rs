//! Path races against the runtime: the rename family from container candidates, counted per
//! process in the kernel (CVE-2018-15664, CVE-2021-30465: a loop that swaps a symlink in and
//! out of a path the runtime is about to resolve), and what a bind mount really attached
//! (CVE-2025-31133, CVE-2025-52565: the runtime binds a procfs file an attacker's symlink
//! pointed it at).
//!
//! A swap loop makes a million calls a second: none of them is a record. Per process, the
//! exchanges (renameat2 with RENAME_EXCHANGE, any paths) and the plain renames onto one
//! destination (by a hash of the name passed) are counted per one-second window; a record
//! goes out when a count reaches a power of 16 (plain renames from 256 on: a package manager
//! renames thousands of files, each once). The first records go through the container's
//! attempt budget; an exchange count of 256 and more — what no benign program makes — to the
//! critical ring, a few a second per process at most.

use aya_ebpf::{
    helpers::{bpf_ktime_get_boot_ns, bpf_probe_read_user_str_bytes},
    macros::{btf_tracepoint, map, tracepoint},
    maps::LruHashMap,
    programs::{BtfTracePointContext, TracePointContext},
};
use escapewatch_common::{
    abi::{IORING_OP_RENAMEAT, RENAME_EXCHANGE, x86_64 as X},
    config::OFFSET_NONE,
    event::{BOUND_KNOWN, BOUND_ONTO_ITSELF, MountEvent, NsType, SyscallEvent, rename, syscall_id},
    kind::EventKind,
    programs::ProgramId,
};

use super::{SysArgs, iouring::completion};
use crate::{
    cfg,
    helpers::{
        budget,
        emit::{emit, run},
        files::{dentry_name, dentry_parent},
        pending::tgid,
        task::{CURRENT, ERR_READ, KPtr, current, is_candidate, read, read_or_zero, read_ptr},
    },
    maps::EVENTS_CRITICAL,
};

/// A process's count of one kind of rename: exchanges (`dest` 0) or plain renames onto the
/// destination whose name hashes to `dest` (never 0).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct RenameKey {
    pub tgid: u32,
    pub dest: u32,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct RenameCount {
    pub window_start_ns: u64,
    pub count: u64,
}

/// LRU: a process that stops renaming ages out; a sprayer of destinations evicts only counts
/// (its own and the oldest), never a record.
#[map]
static RENAME_COUNTS: LruHashMap<RenameKey, RenameCount> = LruHashMap::with_max_entries(8192, 0);

/// Destination key of io_uring's plain renames (the names are freed by completion).
const DEST_IOURING: u32 = 3;

/// `rename(old, new)`, `renameat(olddfd, old, newdfd, new)`, `renameat2(olddfd, old, newdfd,
/// new, flags)`: one program for the three entries (the syscall number tells them apart).
#[btf_tracepoint(function = "sys_enter")]
pub fn sys_enter_rename(ctx: BtfTracePointContext) -> u32 {
    run(ProgramId::SysEnterRename, || {
        let nr: u64 = ctx.arg(1);
        let entry = match nr as u32 {
            X::RENAME => rename::ENTRY_RENAME,
            X::RENAMEAT => rename::ENTRY_RENAMEAT,
            _ => rename::ENTRY_RENAMEAT2,
        };
        renames(ProgramId::SysEnterRename, &ctx, entry)
    })
}

/// A rename-family call entered with arguments `a` by entry `entry` (`rename::ENTRY_*`): the
/// 64-bit programs' and the 32-bit dispatcher's logic.
#[inline(always)]
pub fn renames(program: ProgramId, a: &impl SysArgs, entry: u64) -> Result<(), i64> {
    if !is_candidate() {
        return Ok(());
    }
    let (flags, new) = match entry {
        rename::ENTRY_RENAME => (0, a.arg(1)?),
        rename::ENTRY_RENAMEAT => (0, a.arg(3)?),
        _ => (a.arg(4)? & 0xffff_ffff, a.arg(3)?),
    };
    let dest = if flags & RENAME_EXCHANGE != 0 {
        0
    } else {
        dest_hash(new)
    };
    count(program, flags, entry, dest);
    Ok(())
}

/// FNV-1a of the first 64 bytes of the user string at `ptr`, with its low bit set (never 0,
/// the exchanges' key).
#[inline(always)]
fn dest_hash(ptr: u64) -> u32 {
    let mut buf = [0u8; 64];
    // SAFETY: the helper validates the user pointer and bounds the copy.
    if unsafe { bpf_probe_read_user_str_bytes(ptr as *const u8, &mut buf) }.is_err() {
        return 1;
    }
    let mut h: u32 = 0x811c_9dc5;
    for b in buf {
        if b == 0 {
            break;
        }
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    h | 1
}

/// Count one call of the current process and send a record when the count is one to report.
/// Not inlined: one copy for the syscall, compat and io_uring entries.
#[inline(never)]
fn count(program: ProgramId, flags: u64, entry: u64, dest: u32) {
    let key = RenameKey { tgid: tgid(), dest };
    // SAFETY: helper without arguments.
    let now = unsafe { bpf_ktime_get_boot_ns() };
    let (n, elapsed) = match RENAME_COUNTS.get_ptr_mut(key) {
        Some(c) => {
            // SAFETY: a value of our map; a racing CPU at worst miscounts by one.
            let c = unsafe { &mut *c };
            if now.saturating_sub(c.window_start_ns) >= rename::WINDOW_NS {
                c.window_start_ns = now;
                c.count = 1;
            } else {
                c.count += 1;
            }
            (c.count, now.saturating_sub(c.window_start_ns))
        }
        None => {
            let fresh = RenameCount {
                window_start_ns: now,
                count: 1,
            };
            let _ = RENAME_COUNTS.insert(key, fresh, 0);
            (1, 0)
        }
    };
    let exchange = dest == 0;
    if !rename::reported(n) || (!exchange && n < rename::PLAIN_FIRST_REPORT) {
        return;
    }
    let ring = if exchange && n >= rename::PLAIN_FIRST_REPORT {
        &EVENTS_CRITICAL
    } else {
        match budget::attempt(EventKind::Syscall) {
            Some(r) => r,
            None => return,
        }
    };
    emit::<SyscallEvent>(ring, program, EventKind::Syscall, CURRENT, |ev| {
        ev.ret = 0;
        ev.id = syscall_id::RENAME;
        ev._pad = 0;
        ev.args = [n, flags, elapsed, entry | u64::from(dest) << 32];
    });
}

/// `io_uring_complete` for IORING_OP_RENAMEAT (5.11+): counted with the syscalls, by the
/// request's RENAME_* flags (its names were freed when the rename ran).
#[tracepoint(category = "io_uring", name = "io_uring_complete")]
pub fn iouring_complete_rename(ctx: TracePointContext) -> u32 {
    run(ProgramId::IouringCompleteRename, || {
        let Some(c) = completion(&ctx)? else {
            return Ok(());
        };
        if c.opcode != IORING_OP_RENAMEAT || !is_candidate() {
            return Ok(());
        }
        let flags = u64::from(read_or_zero::<u32>(c.req, cfg!(iorename_flags)));
        let dest = if flags & RENAME_EXCHANGE != 0 {
            0
        } else {
            DEST_IOURING
        };
        count(
            ProgramId::IouringCompleteRename,
            flags,
            rename::ENTRY_IOURING,
            dest,
        );
        Ok(())
    })
}

/// The newest mount of the current task's mount namespace: what a bind mount that just
/// returned attached (mounts are added at the end of the namespace's list, or keyed by an
/// increasing id in its rbtree).
#[inline(always)]
fn newest_mount() -> Result<KPtr, i64> {
    const MNT: usize = NsType::Mnt as usize;
    let nsproxy = read_ptr(current(), cfg!(task_nsproxy))?;
    let ns = read_ptr(nsproxy, cfg!(nsproxy_ns[MNT]))?;
    let (last, tree, list) = (cfg!(mntns_last_node), cfg!(mntns_mounts), cfg!(mntns_list));
    let (node, back) = if last != OFFSET_NONE {
        (read_ptr(ns, last)?, cfg!(mount_mnt_node))
    } else if tree != OFFSET_NONE {
        let right = cfg!(rb_node_right);
        // rb_root's only member is the root node pointer.
        let mut node = read_ptr(ns, tree)?;
        // The rightmost node: a red-black tree of a million mounts is under 40 deep.
        for _ in 0..40 {
            match read::<KPtr>(node, right) {
                Ok(next) if !next.is_null() => node = next,
                _ => break,
            }
        }
        (node, cfg!(mount_mnt_node))
    } else if list != OFFSET_NONE {
        // list_head { next, prev }: the tail is the newest.
        (read_ptr(ns, list + 8)?, cfg!(mount_mnt_list))
    } else {
        return Err(ERR_READ);
    };
    if back == OFFSET_NONE {
        return Err(ERR_READ);
    }
    // SAFETY: container_of arithmetic; every dereference of the result is a probe read.
    Ok(unsafe { node.sub(back as usize) })
}

/// Fill `ev`'s `src_*`, `mountpoint` and `bound` from the newest mount of the caller's mount
/// namespace (the bind mount `ev` is about returned 0). Leaves `bound` 0 when unreadable.
#[inline(always)]
pub fn fill_bound(ev: &mut MountEvent) -> Result<(), i64> {
    let mount = newest_mount()?;
    let (mnt, root_off) = (cfg!(mount_mnt), cfg!(vfsmount_mnt_root));
    if mnt == OFFSET_NONE || root_off == OFFSET_NONE {
        return Err(ERR_READ);
    }
    let root = read_ptr(mount, mnt + root_off)?;
    let mountpoint = read_ptr(mount, cfg!(mount_mnt_mountpoint))?;
    let inode = read_ptr(root, cfg!(dentry_d_inode))?;
    let sb = read_ptr(inode, cfg!(inode_i_sb))?;
    ev.src_ino = read_or_zero(inode, cfg!(inode_i_ino));
    ev.src_mode = u32::from(read_or_zero::<u16>(inode, cfg!(inode_i_mode)));
    ev.src_rdev = read_or_zero(inode, cfg!(inode_i_rdev));
    ev.src_dev = read_or_zero(sb, cfg!(sb_s_dev));
    ev.src_magic = read_or_zero::<u64>(sb, cfg!(sb_s_magic)) as u32;
    dentry_name(root, &mut ev.src_name);
    match dentry_parent(root) {
        Ok(parent) => dentry_name(parent, &mut ev.src_parent),
        Err(_) => ev.src_parent[0] = 0,
    }
    dentry_name(mountpoint, &mut ev.mountpoint);
    ev.bound = BOUND_KNOWN
        | if core::ptr::eq(root, mountpoint) {
            BOUND_ONTO_ITSELF
        } else {
            0
        };
    Ok(())
}
