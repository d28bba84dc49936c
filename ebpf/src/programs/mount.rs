//! Mount-family syscalls from container candidates: mount, open_tree, move_mount, fsopen and
//! fsconfig(…, "source", …). The strings are read at entry, as the kernel reads them, so a
//! thread that rewrites the buffer during the call cannot hide what was mounted.

use aya_ebpf::{
    helpers::bpf_probe_read_user_str_bytes, macros::btf_tracepoint, programs::BtfTracePointContext,
};
use escapewatch_common::{
    abi::{FSCONFIG_SET_STRING, MS_BIND, MS_MOVE, MS_REMOUNT},
    event::mount_call,
    kind::EventKind,
    programs::ProgramId,
};

use super::{SysArgs, races::fill_bound, ret};
use crate::{
    cfg,
    helpers::{
        emit::run,
        files::{fd_file, file_sb, fstype_name},
        pending::{self, tid},
        task::{ERR_READ, current, is_candidate, read_or_zero},
    },
    maps::{PENDING_MOUNT, SCRATCH_MOUNT},
};

/// Copy a user string into `out`, leaving it empty when the pointer is NULL or unreadable.
#[inline(always)]
fn user_str(ptr: u64, out: &mut [u8]) {
    out[0] = 0;
    if ptr != 0 {
        // SAFETY: the helper validates the user pointer and bounds the copy.
        if unsafe { bpf_probe_read_user_str_bytes(ptr as *const u8, out) }.is_err() {
            out[0] = 0;
        }
    }
}

/// Record one mount-family call for the exit.
#[inline(always)]
fn record(call: u32, flags: u64, source: u64, target: u64, fstype: u64) -> Result<(), i64> {
    if !is_candidate() {
        return Ok(());
    }
    let scratch = SCRATCH_MOUNT.get_ptr_mut(0).ok_or(ERR_READ)?;
    // SAFETY: this CPU's scratch slot; nothing else runs on it while we do.
    let ev = unsafe { &mut *scratch };
    ev.call = call;
    ev.dev = 0;
    ev.bound = 0;
    ev._pad_bound = 0;
    ev.flags = flags;
    ev.ret = 0;
    user_str(source, &mut ev.source);
    user_str(target, &mut ev.target);
    user_str(fstype, &mut ev.fstype);
    PENDING_MOUNT.insert(tid(), ev, 0).map_err(|e| e as i64)
}

/// `mount(char *dev_name, char *dir_name, char *type, unsigned long flags, void *data)`.
#[btf_tracepoint(function = "sys_enter")]
pub fn sys_enter_mount(ctx: BtfTracePointContext) -> u32 {
    run(ProgramId::SysEnterMount, || mount(&ctx))
}

#[inline(always)]
pub fn mount(a: &impl SysArgs) -> Result<(), i64> {
    record(
        mount_call::MOUNT,
        a.arg(3)?,
        a.arg(0)?,
        a.arg(1)?,
        a.arg(2)?,
    )
}

/// `open_tree(int dfd, const char *filename, unsigned flags)`, 5.2+.
#[btf_tracepoint(function = "sys_enter")]
pub fn sys_enter_open_tree(ctx: BtfTracePointContext) -> u32 {
    run(ProgramId::SysEnterOpenTree, || open_tree(&ctx))
}

#[inline(always)]
pub fn open_tree(a: &impl SysArgs) -> Result<(), i64> {
    record(mount_call::OPEN_TREE, a.arg(2)?, a.arg(1)?, 0, 0)
}

/// `move_mount(int from_dfd, const char *from_path, int to_dfd, const char *to_path, unsigned
/// flags)`, 5.2+.
#[btf_tracepoint(function = "sys_enter")]
pub fn sys_enter_move_mount(ctx: BtfTracePointContext) -> u32 {
    run(ProgramId::SysEnterMoveMount, || move_mount(&ctx))
}

#[inline(always)]
pub fn move_mount(a: &impl SysArgs) -> Result<(), i64> {
    record(mount_call::MOVE_MOUNT, a.arg(4)?, a.arg(1)?, a.arg(3)?, 0)
}

/// `fsopen(const char *fs_name, unsigned flags)`, 5.2+.
#[btf_tracepoint(function = "sys_enter")]
pub fn sys_enter_fsopen(ctx: BtfTracePointContext) -> u32 {
    run(ProgramId::SysEnterFsopen, || fsopen(&ctx))
}

#[inline(always)]
pub fn fsopen(a: &impl SysArgs) -> Result<(), i64> {
    record(mount_call::FSOPEN, a.arg(1)?, 0, 0, a.arg(0)?)
}

/// `fsmount(int fs_fd, unsigned flags, unsigned attr_flags)`, 5.2+: the filesystem context
/// becomes a detached mount whose descriptor reads the filesystem without move_mount. The
/// exit names the superblock the kernel made.
#[btf_tracepoint(function = "sys_enter")]
pub fn sys_enter_fsmount(ctx: BtfTracePointContext) -> u32 {
    run(ProgramId::SysEnterFsmount, || fsmount(&ctx))
}

#[inline(always)]
pub fn fsmount(a: &impl SysArgs) -> Result<(), i64> {
    record(mount_call::FSMOUNT, a.arg(1)?, 0, 0, 0)
}

/// `fsconfig(int fd, unsigned cmd, const char *key, const void *value, int aux)`, 5.2+: only
/// setting the "source" (the device or path to mount).
#[btf_tracepoint(function = "sys_enter")]
pub fn sys_enter_fsconfig(ctx: BtfTracePointContext) -> u32 {
    run(ProgramId::SysEnterFsconfig, || fsconfig(&ctx))
}

#[inline(always)]
pub fn fsconfig(a: &impl SysArgs) -> Result<(), i64> {
    if a.arg(1)? != FSCONFIG_SET_STRING {
        return Ok(());
    }
    let mut key = [0u8; 8];
    user_str(a.arg(2)?, &mut key);
    if &key[..7] != b"source\0" {
        return Ok(());
    }
    record(mount_call::FSCONFIG_SOURCE, 0, a.arg(3)?, 0, 0)
}

/// Attached to the sys_exit tracepoints of the five calls above.
#[btf_tracepoint(function = "sys_exit")]
pub fn sys_exit_mount_family(ctx: BtfTracePointContext) -> u32 {
    run(ProgramId::SysExitMount, || {
        exit_mount(ProgramId::SysExitMount, ret(&ctx)?);
        Ok(())
    })
}

/// Emit this thread's mount-family call recorded at entry, if any, with its result `rc`.
/// Returns whether there was one.
#[inline(always)]
pub fn exit_mount(program: ProgramId, rc: i64) -> bool {
    pending::emit_recorded(&PENDING_MOUNT, program, EventKind::Mount, rc, |ev, rc| {
        ev.ret = rc;
        // A mount descriptor: what the kernel mounted is its superblock, whatever the strings.
        if rc >= 0
            && (ev.call == mount_call::FSMOUNT || ev.call == mount_call::OPEN_TREE)
            && let Ok(sb) = fd_file(current(), rc as u64).and_then(file_sb)
        {
            ev.dev = read_or_zero(sb, cfg!(sb_s_dev));
            if ev.fstype[0] == 0 {
                fstype_name(sb, &mut ev.fstype);
            }
        }
        // A bind mount (not a remount or move of an existing one) added a mount: what the
        // kernel resolved its source to.
        if rc == 0
            && ev.call == mount_call::MOUNT
            && ev.flags & (MS_BIND | MS_REMOUNT | MS_MOVE) == MS_BIND
            && fill_bound(ev).is_err()
        {
            ev.bound = 0;
        }
    })
}
