//! connect(2) from container candidates: to Unix socket paths (container runtime API sockets),
//! to abstract Unix names (a host network namespace's containerd-shim, CVE-2020-15257), and
//! of IPv4/IPv6 sockets to the watched runtime/orchestrator API ports ([`WATCHED_PORTS`]):
//! the kernel keeps only the family and the port test, the address is judged in userspace.
//! The path the caller passed is a name the container chose (a symlink, a bind mount under
//! another name); a successful connect also names the socket it reached by the path its
//! listener bound, which only the host chose.

use aya_ebpf::{
    helpers::{bpf_probe_read_user, bpf_probe_read_user_buf},
    macros::btf_tracepoint,
    programs::BtfTracePointContext,
};
use escapewatch_common::{
    abi::{AF_INET, AF_INET6, AF_UNIX, EINPROGRESS, TCP_CLOSE, TCP_SYN_SENT},
    config::OFFSET_NONE,
    event::{ConnectEvent, FD_NONE, NetConnectEvent, NetConnectPending},
    kind::EventKind,
    programs::ProgramId,
};

use super::{SysArgs, ret};
use crate::{
    cfg,
    helpers::{
        emit::{emit, run},
        files::{dentry_name, fd_file},
        pending::{self, tid},
        task::{CURRENT, ERR_READ, KPtr, current, is_candidate, read_or_zero},
    },
    maps::{PENDING_CONNECT, PENDING_NET_CONNECT, SCRATCH_CONNECT, WATCHED_PORTS},
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
        if family == AF_INET || family == AF_INET6 {
            return inet_connect(a.arg(0)? as u32, family, addr);
        }
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
        // An abstract name (leading NUL) is kept as it is: userspace tells it by that NUL, and
        // judges it by the caller's network namespace (the header), where the name is looked up.
        PENDING_CONNECT.insert(tid(), ev, 0).map_err(|e| e as i64)
    }
}

/// `struct sockaddr_in` / `sockaddr_in6`: the port (network order) at byte 2, the address at
/// byte 4 / 8. Kept only when the port is in [`WATCHED_PORTS`].
#[inline(always)]
fn inet_connect(fd: u32, family: u16, addr: *const u8) -> Result<(), i64> {
    // SAFETY: user pointer validated by the helper.
    let port: u16 = unsafe { bpf_probe_read_user(addr.add(2).cast()) }.map_err(|_| ERR_READ)?;
    let port = u16::from_be(port);
    // SAFETY: a plain lookup.
    if unsafe { WATCHED_PORTS.get(port) }.is_none() {
        return Ok(());
    }
    let mut p = NetConnectPending {
        family,
        port,
        fd,
        addr: [0; 16],
    };
    let at = if family == AF_INET { 4 } else { 8 };
    // SAFETY: as above. An IPv4 read takes 16 bytes of `sockaddr_in` (16 bytes long itself).
    let read = if family == AF_INET {
        unsafe { bpf_probe_read_user_buf(addr.add(at), &mut p.addr[..4]) }
    } else {
        unsafe { bpf_probe_read_user_buf(addr.add(at), &mut p.addr) }
    };
    read.map_err(|_| ERR_READ)?;
    PENDING_NET_CONNECT
        .insert(tid(), p, 0)
        .map_err(|e| e as i64)
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
    exit_net_connect(program, rc)
        || pending::emit_recorded(
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

/// Emit this thread's IPv4/IPv6 connect recorded at entry, if any. A failure (EINPROGRESS of a
/// non-blocking socket included) goes as an attempt.
#[inline(always)]
fn exit_net_connect(program: ProgramId, rc: i64) -> bool {
    let tid = tid();
    // SAFETY: this thread's own entry, copied out before it is removed.
    let Some(p) = (unsafe { PENDING_NET_CONNECT.get(tid) }).copied() else {
        return false;
    };
    let _ = PENDING_NET_CONNECT.remove(tid);
    emit_net_connect(program, rc, &p);
    true
}

/// One IPv4/IPv6 connect record: `p` with its result `rc`, on the ring its result gives.
#[inline(always)]
fn emit_net_connect(program: ProgramId, rc: i64, p: &NetConnectPending) {
    if let Some(ring) = crate::helpers::budget::by_result(EventKind::NetConnect, rc) {
        emit::<NetConnectEvent>(ring, program, EventKind::NetConnect, CURRENT, |ev| {
            ev.ret = rc;
            ev.family = p.family;
            ev.port = p.port;
            ev.fd = p.fd;
            ev.addr = p.addr;
        });
    }
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

/// `inet_sock_set_state(const struct sock *sk, int oldstate, int newstate)` (tp_btf, 4.16+):
/// the effect of every IPv4/IPv6 active open, whichever entry made it. The socket leaves
/// TCP_CLOSE for TCP_SYN_SENT in the connecting task (or its io_uring worker, same process)
/// once the kernel holds the destination (`tcp_v4_connect`/`tcp_v6_connect`): for connect(2),
/// for io_uring's IORING_OP_CONNECT, and for TCP Fast Open (sendto/sendmsg with MSG_FASTOPEN,
/// `tcp_sendmsg_fastopen`), which make no connect syscall. The destination is the kernel's
/// copy (`sk->__sk_common`), not the caller's memory, so no other thread can change it after
/// it was read.
///
/// Chosen over cgroup/connect4/6 on the cgroup2 root: a cgroup program sits in the connect
/// path itself (it may refuse or rewrite; an observer should not), runs before the kernel
/// accepted the destination, and sees only tasks of the cgroup2 hierarchy it is attached to
/// (a host on cgroup v1, or a runtime with its own cgroup2 mount, would be missed). The
/// tracepoint needs no attachment point, only observes, and reports opens that happen.
///
/// connect(2) (and i386 socketcall) keep their own programs: they also see attempts refused
/// before the socket moves (EPERM from seccomp or an LSM, ENETUNREACH without a route), and
/// report the result. While one of them has recorded this thread's connect to a watched port
/// ([`PENDING_NET_CONNECT`]), the state change is that same connect and is left to it: one
/// record per connect. Reported as a connect under way (-EINPROGRESS, no descriptor).
#[btf_tracepoint(function = "inet_sock_set_state")]
pub fn inet_sock_set_state(ctx: BtfTracePointContext) -> u32 {
    run(ProgramId::InetSockSetState, || active_open(&ctx))
}

#[inline(always)]
fn active_open(ctx: &BtfTracePointContext) -> Result<(), i64> {
    let old: i32 = ctx.arg(1);
    let new: i32 = ctx.arg(2);
    if old != TCP_CLOSE || new != TCP_SYN_SENT || !is_candidate() {
        return Ok(());
    }
    // SAFETY: a plain lookup of this thread's entry.
    if unsafe { PENDING_NET_CONNECT.get(tid()) }.is_some() {
        return Ok(());
    }
    let (dport_off, daddr_off, v6_off) = (cfg!(sk_dport), cfg!(sk_daddr), cfg!(sk_v6_daddr));
    if cfg!(sk_family) == OFFSET_NONE || dport_off == OFFSET_NONE || daddr_off == OFFSET_NONE {
        return Ok(());
    }
    let sk: KPtr = ctx.arg(0);
    let family: u16 = read_or_zero(sk, cfg!(sk_family));
    if family != AF_INET && family != AF_INET6 {
        return Ok(());
    }
    let port = u16::from_be(read_or_zero::<u16>(sk, dport_off));
    // SAFETY: a plain lookup.
    if unsafe { WATCHED_PORTS.get(port) }.is_none() {
        return Ok(());
    }
    let mut addr = [0u8; 16];
    if family == AF_INET {
        let v4: [u8; 4] = read_or_zero(sk, daddr_off);
        addr[..4].copy_from_slice(&v4);
    } else if v6_off != OFFSET_NONE {
        addr = read_or_zero(sk, v6_off);
    } else {
        return Ok(());
    }
    let p = NetConnectPending {
        family,
        port,
        fd: FD_NONE,
        addr,
    };
    emit_net_connect(ProgramId::InetSockSetState, EINPROGRESS, &p);
    Ok(())
}
