//! TCP active opens that make no connect(2) (issue K's network family): an IORING_OP_CONNECT
//! request, and TCP Fast Open (sendto with MSG_FASTOPEN on an unconnected socket). Plus the
//! benign look-alike: the same opens to a listener on the container's own loopback.

use std::net::{IpAddr, TcpListener};

use io_uring::{IoUring, opcode, types};

use super::fail;

/// A TCP socket of `ip`'s family and its `sockaddr_in`/`sockaddr_in6` for `ip:port`.
fn tcp_socket(ip: IpAddr, port: u16) -> (i32, libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let (family, len) = match ip {
        IpAddr::V4(a) => {
            // SAFETY: sockaddr_storage is large enough and aligned for sockaddr_in.
            let sin = unsafe { &mut *(&raw mut ss).cast::<libc::sockaddr_in>() };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = port.to_be();
            sin.sin_addr.s_addr = u32::from_ne_bytes(a.octets());
            (libc::AF_INET, std::mem::size_of::<libc::sockaddr_in>())
        }
        IpAddr::V6(a) => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe { &mut *(&raw mut ss).cast::<libc::sockaddr_in6>() };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = port.to_be();
            sin6.sin6_addr.s6_addr = a.octets();
            (libc::AF_INET6, std::mem::size_of::<libc::sockaddr_in6>())
        }
    };
    // SAFETY: a plain socket call.
    let fd = unsafe { libc::socket(family, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        fail("socket");
    }
    (fd, ss, len as libc::socklen_t)
}

fn args(addr: &str, port: &str) -> (IpAddr, u16) {
    (
        addr.parse().unwrap_or_else(|_| fail("address")),
        port.parse().unwrap_or_else(|_| fail("port")),
    )
}

/// The connect of a TCP socket to `ip:port` as an IORING_OP_CONNECT request: no connect
/// syscall. Returns the request's result (0 or a negative errno).
fn uring_connect(ip: IpAddr, port: u16) -> i32 {
    let (fd, ss, len) = tcp_socket(ip, port);
    let sqe = opcode::Connect::new(types::Fd(fd), (&raw const ss).cast(), len).build();
    let mut ring = IoUring::new(4).unwrap_or_else(|_| fail("io_uring_setup"));
    // SAFETY: `ss` outlives the request, which completes before the wait returns.
    unsafe { ring.submission().push(&sqe) }.unwrap_or_else(|_| fail("queue"));
    ring.submit_and_wait(1)
        .unwrap_or_else(|_| fail("io_uring_enter"));
    let res = ring
        .completion()
        .next()
        .map(|cqe| cqe.result())
        .unwrap_or_else(|| fail("no completion"));
    // SAFETY: our own descriptor.
    unsafe { libc::close(fd) };
    res
}

/// TCP Fast Open: a request sent by sendto(MSG_FASTOPEN) on an unconnected socket, which
/// connects it (the SYN carries the data when the peer gave a cookie). Returns sendto's
/// result (bytes sent, or a negative errno).
fn fastopen(ip: IpAddr, port: u16) -> isize {
    let (fd, ss, len) = tcp_socket(ip, port);
    let msg = b"GET /version HTTP/1.0\r\n\r\n";
    // SAFETY: valid buffer and address for the call's duration.
    let n = unsafe {
        libc::sendto(
            fd,
            msg.as_ptr().cast(),
            msg.len(),
            libc::MSG_FASTOPEN,
            (&raw const ss).cast(),
            len,
        )
    };
    let n = if n < 0 {
        -(std::io::Error::last_os_error().raw_os_error().unwrap_or(0) as isize)
    } else {
        n
    };
    // SAFETY: our own descriptor.
    unsafe { libc::close(fd) };
    n
}

fn say(what: &str, rc: i64) {
    if rc < 0 {
        println!("{what}: {}", std::io::Error::from_raw_os_error(-rc as i32));
    } else {
        println!("{what}: connected ({rc})");
    }
}

/// `tcp-uring-connect ADDR PORT`.
pub fn tcp_uring_connect(addr: &str, port: &str) {
    let (ip, p) = args(addr, port);
    say(
        &format!("io_uring connect {ip}:{p}"),
        i64::from(uring_connect(ip, p)),
    );
}

/// `tcp-fastopen ADDR PORT`.
pub fn tcp_fastopen(addr: &str, port: &str) {
    let (ip, p) = args(addr, port);
    say(&format!("fast open {ip}:{p}"), fastopen(ip, p) as i64);
}

/// Bring the loopback of this network namespace up (SIOCSIFFLAGS, as `ip link set lo up`).
fn loopback_up() {
    // SAFETY: a plain socket call; the ifreq is ours and initialised.
    unsafe {
        let s = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if s < 0 {
            fail("socket");
        }
        let mut ifr: libc::ifreq = std::mem::zeroed();
        ifr.ifr_name[0] = b'l' as libc::c_char;
        ifr.ifr_name[1] = b'o' as libc::c_char;
        if libc::ioctl(s, libc::SIOCGIFFLAGS, &mut ifr) == 0 {
            ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            if libc::ioctl(s, libc::SIOCSIFFLAGS, &ifr) != 0 {
                println!("loopback up: {}", std::io::Error::last_os_error());
            }
        }
        libc::close(s);
    }
}

/// `tcp-own-via uring|fastopen PORT`: the container's own service on its own loopback
/// (127.0.0.1:PORT, the loopback brought up first), opened by io_uring or by Fast Open.
pub fn tcp_own_via(how: &str, port: &str) {
    loopback_up();
    let (ip, p) = args("127.0.0.1", port);
    let _l = TcpListener::bind((ip, p)).unwrap_or_else(|_| fail("listen"));
    match how {
        "uring" => say("own io_uring connect", i64::from(uring_connect(ip, p))),
        "fastopen" => say("own fast open", fastopen(ip, p) as i64),
        _ => fail("uring or fastopen"),
    }
}
