//! Connects to runtime and orchestrator API endpoints (issue K): a TCP port at an address, an
//! abstract Unix name, a Unix path; and the benign look-alikes, a container's own listener on
//! its own loopback or abstract name, connected to in the same process.

use std::{
    io::Write,
    net::{IpAddr, TcpListener, TcpStream},
    os::{
        linux::net::SocketAddrExt,
        unix::net::{SocketAddr, UnixListener, UnixStream},
    },
};

use super::fail;

fn report(what: &str, r: std::io::Result<impl Write>) {
    match r {
        Ok(mut s) => {
            let _ = s.write_all(b"GET /version HTTP/1.0\r\n\r\n");
            println!("{what}: connected");
        }
        Err(e) => println!("{what}: {e}"),
    }
}

fn port(p: &str) -> u16 {
    p.parse().unwrap_or_else(|_| fail("port"))
}

/// `tcp-connect ADDR PORT`: a blocking connect(2).
pub fn tcp_connect(addr: &str, p: &str) {
    let ip: IpAddr = addr.parse().unwrap_or_else(|_| fail("address"));
    report(&format!("{ip}:{p}"), TcpStream::connect((ip, port(p))));
}

/// `tcp-own PORT`: listen on 127.0.0.1:PORT and connect to it (a container's own service). A
/// loopback that is down still gets the connect, refused.
pub fn tcp_own(p: &str) {
    let l = TcpListener::bind(("127.0.0.1", port(p)));
    if let Err(e) = &l {
        println!("listen: {e}");
    }
    report("own loopback", TcpStream::connect(("127.0.0.1", port(p))));
}

fn abstract_addr(name: &str) -> SocketAddr {
    SocketAddr::from_abstract_name(name.as_bytes()).unwrap_or_else(|_| fail("abstract name"))
}

/// `abstract-connect NAME`: connect to the abstract Unix name `NAME` (no leading NUL given).
pub fn abstract_connect(name: &str) {
    report(
        &format!("@{name}"),
        UnixStream::connect_addr(&abstract_addr(name)),
    );
}

/// `abstract-own NAME`: bind the abstract name `NAME` and connect to it.
pub fn abstract_own(name: &str) {
    let addr = abstract_addr(name);
    let _l = UnixListener::bind_addr(&addr).unwrap_or_else(|_| fail("bind abstract"));
    report(&format!("own @{name}"), UnixStream::connect_addr(&addr));
}

/// `unix-connect PATH`.
pub fn unix_connect(path: &str) {
    report(path, UnixStream::connect(path));
}
