//! connect(2) to Unix socket paths from container candidates (container runtime API sockets).

use aya_ebpf::{
    helpers::{bpf_probe_read_user, bpf_probe_read_user_buf},
    macros::tracepoint,
    programs::TracePointContext,
};
use escapewatch_common::{abi::AF_UNIX, kind::EventKind, programs::ProgramId};

use super::{SysArgs, ret};
use crate::{
    helpers::{
        emit::run,
        pending::{self, tid},
        task::{ERR_READ, is_candidate},
    },
    maps::{PENDING_CONNECT, SCRATCH_CONNECT},
};

/// `connect(int fd, struct sockaddr *uservaddr, int addrlen)`: the path is read at entry.
#[tracepoint(category = "syscalls", name = "sys_enter_connect")]
pub fn sys_enter_connect(ctx: TracePointContext) -> u32 {
    run(ProgramId::SysEnterConnect, || connect(&ctx))
}

#[inline(always)]
pub fn connect(a: &impl SysArgs) -> Result<(), i64> {
    {
        if !is_candidate() {
            return Ok(());
        }
        let addr = a.arg(1)? as *const u8;
        // SAFETY: user pointer validated by the helper.
        let family: u16 = unsafe { bpf_probe_read_user(addr.cast()) }.map_err(|_| ERR_READ)?;
        if family != AF_UNIX {
            return Ok(());
        }
        let scratch = SCRATCH_CONNECT.get_ptr_mut(0).ok_or(ERR_READ)?;
        // SAFETY: this CPU's scratch slot.
        let ev = unsafe { &mut *scratch };
        ev.ret = 0;
        ev._pad = 0;
        // SAFETY: sun_path follows the 2-byte family; the helper validates the pointer.
        if unsafe { bpf_probe_read_user_buf(addr.add(2), &mut ev.path) }.is_err() {
            return Ok(());
        }
        // Abstract sockets (leading NUL) are not filesystem paths.
        if ev.path[0] == 0 {
            return Ok(());
        }
        PENDING_CONNECT.insert(tid(), ev, 0).map_err(|e| e as i64)
    }
}

#[tracepoint(category = "syscalls", name = "sys_exit_connect")]
pub fn sys_exit_connect(ctx: TracePointContext) -> u32 {
    run(ProgramId::SysExitConnect, || {
        exit_connect(ProgramId::SysExitConnect, ret(&ctx)?);
        Ok(())
    })
}

/// Emit this thread's connect recorded at entry, if any, with its result `rc`. Returns
/// whether there was one.
#[inline(always)]
pub fn exit_connect(program: ProgramId, rc: i64) -> bool {
    pending::emit_recorded(
        &PENDING_CONNECT,
        program,
        EventKind::UnixConnect,
        rc,
        |ev, rc| {
            ev.ret = rc;
        },
    )
}
