//! Mount-family syscalls from container candidates: mount, open_tree, move_mount, fsopen and
//! fsconfig(…, "source", …). The strings are read at entry, as the kernel reads them, so a
//! thread that rewrites the buffer during the call cannot hide what was mounted.

use aya_ebpf::{
    helpers::bpf_probe_read_user_str_bytes, macros::tracepoint, programs::TracePointContext,
};
use escapewatch_common::{
    abi::FSCONFIG_SET_STRING, event::mount_call, kind::EventKind, programs::ProgramId,
};

use super::{arg, ret};
use crate::{
    helpers::{
        emit::{output_in_place, run},
        pending::tid,
        task::{ERR_READ, current, is_candidate},
    },
    maps::{EVENTS_CRITICAL, PENDING_MOUNT, SCRATCH_MOUNT},
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
    ev._pad = 0;
    ev.flags = flags;
    ev.ret = 0;
    user_str(source, &mut ev.source);
    user_str(target, &mut ev.target);
    user_str(fstype, &mut ev.fstype);
    PENDING_MOUNT.insert(tid(), ev, 0).map_err(|e| e as i64)
}

/// `mount(char *dev_name, char *dir_name, char *type, unsigned long flags, void *data)`.
#[tracepoint(category = "syscalls", name = "sys_enter_mount")]
pub fn sys_enter_mount(ctx: TracePointContext) -> u32 {
    run(ProgramId::SysEnterMount, || {
        record(
            mount_call::MOUNT,
            arg(&ctx, 3)?,
            arg(&ctx, 0)?,
            arg(&ctx, 1)?,
            arg(&ctx, 2)?,
        )
    })
}

/// `open_tree(int dfd, const char *filename, unsigned flags)`, 5.2+.
#[tracepoint(category = "syscalls", name = "sys_enter_open_tree")]
pub fn sys_enter_open_tree(ctx: TracePointContext) -> u32 {
    run(ProgramId::SysEnterOpenTree, || {
        record(mount_call::OPEN_TREE, arg(&ctx, 2)?, arg(&ctx, 1)?, 0, 0)
    })
}

/// `move_mount(int from_dfd, const char *from_path, int to_dfd, const char *to_path, unsigned
/// flags)`, 5.2+.
#[tracepoint(category = "syscalls", name = "sys_enter_move_mount")]
pub fn sys_enter_move_mount(ctx: TracePointContext) -> u32 {
    run(ProgramId::SysEnterMoveMount, || {
        record(
            mount_call::MOVE_MOUNT,
            arg(&ctx, 4)?,
            arg(&ctx, 1)?,
            arg(&ctx, 3)?,
            0,
        )
    })
}

/// `fsopen(const char *fs_name, unsigned flags)`, 5.2+.
#[tracepoint(category = "syscalls", name = "sys_enter_fsopen")]
pub fn sys_enter_fsopen(ctx: TracePointContext) -> u32 {
    run(ProgramId::SysEnterFsopen, || {
        record(mount_call::FSOPEN, arg(&ctx, 1)?, 0, 0, arg(&ctx, 0)?)
    })
}

/// `fsconfig(int fd, unsigned cmd, const char *key, const void *value, int aux)`, 5.2+: only
/// setting the "source" (the device or path to mount).
#[tracepoint(category = "syscalls", name = "sys_enter_fsconfig")]
pub fn sys_enter_fsconfig(ctx: TracePointContext) -> u32 {
    run(ProgramId::SysEnterFsconfig, || {
        if arg(&ctx, 1)? != FSCONFIG_SET_STRING {
            return Ok(());
        }
        let mut key = [0u8; 8];
        user_str(arg(&ctx, 2)?, &mut key);
        if &key[..7] != b"source\0" {
            return Ok(());
        }
        record(mount_call::FSCONFIG_SOURCE, 0, arg(&ctx, 3)?, 0, 0)
    })
}

/// Attached to the sys_exit tracepoints of the five calls above.
#[tracepoint(category = "syscalls", name = "sys_exit_mount_family")]
pub fn sys_exit_mount_family(ctx: TracePointContext) -> u32 {
    run(ProgramId::SysExitMount, || {
        let tid = tid();
        let Some(ev) = PENDING_MOUNT.get_ptr_mut(tid) else {
            return Ok(());
        };
        // SAFETY: this thread's own pending entry.
        unsafe { (*ev).ret = ret(&ctx)? };
        output_in_place(
            &EVENTS_CRITICAL,
            ProgramId::SysExitMount,
            EventKind::Mount,
            current(),
            ev,
        );
        let _ = PENDING_MOUNT.remove(tid);
        Ok(())
    })
}
