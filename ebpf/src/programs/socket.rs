//! connect(2) to Unix socket paths from container candidates (container runtime API sockets).
//! The path the caller passed is a name the container chose (a symlink, a bind mount under
//! another name); a successful connect also names the socket it reached by the path its
//! listener bound, which only the host chose.

use aya_ebpf::{
    helpers::{bpf_probe_read_user, bpf_probe_read_user_buf},
    macros::btf_tracepoint,
    programs::BtfTracePointContext,
};
use escapewatch_common::{
    abi::AF_UNIX, config::OFFSET_NONE, event::ConnectEvent, kind::EventKind, programs::ProgramId,
};

use super::{SysArgs, ret};
use crate::{
    cfg,
    helpers::{
        emit::run,
        files::{dentry_name, fd_file},
        pending::{self, tid},
        task::{ERR_READ, KPtr, current, is_candidate, read_or_zero},
    },
    maps::{PENDING_CONNECT, SCRATCH_CONNECT},
};

/// `connect(int fd, struct sockaddr *uservaddr, int addrlen)`: the path is read at entry.
#[btf_tracepoint(function = "sys_enter")]
pub fn sys_enter_connect(ctx: BtfTracePointContext) -> u32 {
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
        ev.fd = a.arg(0)? as u32;
        ev.peer_ino = 0;
        ev.peer_dev = 0;
        ev.peer_name[0] = 0;
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

#[btf_tracepoint(function = "sys_exit")]
pub fn sys_exit_connect(ctx: BtfTracePointContext) -> u32 {
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
            if rc == 0 {
                fill_peer(ev);
            }
        },
    )
}

/// The socket `ev.fd` is now connected to.
#[inline(always)]
fn fill_peer(ev: &mut ConnectEvent) {
    if let Ok(file) = fd_file(current(), u64::from(ev.fd)) {
        fill_peer_of(file, ev);
    }
}

/// The socket the socket file `file` is connected to: the path its listener bound (a stream
/// connect's peer is the server's new socket, which carries the listener's path), by inode
/// and bound name. Left 0 / empty for a peer without a path.
#[inline(always)]
pub fn fill_peer_of(file: KPtr, ev: &mut ConnectEvent) {
    let socket: KPtr = read_or_zero(file, cfg!(file_private_data));
    let sk: KPtr = read_or_zero(socket, cfg!(socket_sk));
    let peer: KPtr = read_or_zero(sk, cfg!(unix_sock_peer));
    let dentry: KPtr = read_or_zero(peer, cfg!(unix_sock_path_dentry));
    if dentry.is_null() {
        return;
    }
    let inode: KPtr = read_or_zero(dentry, cfg!(dentry_d_inode));
    ev.peer_ino = read_or_zero(inode, cfg!(inode_i_ino));
    let sb: KPtr = read_or_zero(inode, cfg!(inode_i_sb));
    ev.peer_dev = read_or_zero(sb, cfg!(sb_s_dev));
    dentry_name(dentry, &mut ev.peer_name);
}

/// Whether the socket file `file` is a Unix socket.
#[inline(always)]
pub fn is_unix_socket(file: KPtr) -> bool {
    let socket: KPtr = read_or_zero(file, cfg!(file_private_data));
    let sk: KPtr = read_or_zero(socket, cfg!(socket_sk));
    cfg!(sk_family) != OFFSET_NONE && read_or_zero::<u16>(sk, cfg!(sk_family)) == AF_UNIX
}
