//! What the node's runtime and orchestrator API endpoints are: the node's own addresses (for
//! IPv4/IPv6 connects to a watched port) and the (device, inode) of the host's runtime API
//! sockets (for Unix connects under any name). Read on the host, at start and on refresh,
//! and handed to the enricher: the engine gets them as facts in the event, never by I/O.

use std::{
    fs,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::{Path, PathBuf},
};

use escapewatch_common::{
    abi::AF_INET,
    event::{ConnectEvent, NetConnectEvent},
};

use super::payload;
use crate::model::{NetDest, Payload};

/// A host runtime API socket by identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketId {
    /// `major:minor`, as events spell devices.
    pub dev: String,
    pub ino: u64,
    pub path: String,
}

/// The node's endpoints as last read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetFacts {
    pub node_addrs: Vec<IpAddr>,
    pub runtime_sockets: Vec<SocketId>,
}

impl NetFacts {
    /// Read them now: the addresses of the host's network namespace (PID 1's, through
    /// `proc_root`) and the sockets among `sockets` that exist.
    pub fn read(proc_root: &Path, sockets: &[PathBuf]) -> NetFacts {
        let net = proc_root.join("1").join("net");
        let mut node_addrs =
            local_v4(&fs::read_to_string(net.join("fib_trie")).unwrap_or_default());
        node_addrs.extend(local_v6(
            &fs::read_to_string(net.join("if_inet6")).unwrap_or_default(),
        ));
        node_addrs.sort();
        node_addrs.dedup();
        NetFacts {
            node_addrs,
            runtime_sockets: sockets.iter().filter_map(|p| socket_id(p)).collect(),
        }
    }

    /// What `addr` is to the node.
    pub fn classify(&self, addr: IpAddr) -> NetDest {
        let addr = match addr {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
            v4 @ IpAddr::V4(_) => v4,
        };
        if addr.is_loopback() || addr.is_unspecified() {
            NetDest::Loopback
        } else if self.node_addrs.contains(&addr) {
            NetDest::Node
        } else {
            NetDest::Other
        }
    }

    /// The host path of the runtime socket with this identity.
    pub fn runtime_socket(&self, dev: &str, ino: u64) -> Option<&str> {
        self.runtime_sockets
            .iter()
            .find(|s| s.ino == ino && s.dev == dev)
            .map(|s| s.path.as_str())
    }
}

fn socket_id(path: &Path) -> Option<SocketId> {
    use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
    let meta = fs::metadata(path).ok()?;
    meta.file_type().is_socket().then(|| SocketId {
        dev: format!("{}:{}", libc::major(meta.dev()), libc::minor(meta.dev())),
        ino: meta.ino(),
        path: path.display().to_string(),
    })
}

/// The `/32 host LOCAL` entries of `/proc/net/fib_trie`: the IPv4 addresses of the namespace.
fn local_v4(fib_trie: &str) -> Vec<IpAddr> {
    let mut out = Vec::new();
    let mut last: Option<Ipv4Addr> = None;
    for line in fib_trie.lines() {
        let t = line.trim();
        if let Some(a) = t.strip_prefix("|-- ").or_else(|| t.strip_prefix("+-- ")) {
            last = a.split(['/', ' ']).next().and_then(|a| a.parse().ok());
        } else if t.starts_with("/32 host LOCAL")
            && let Some(a) = last
        {
            out.push(IpAddr::V4(a));
        }
    }
    out
}

/// The addresses of `/proc/net/if_inet6` (32 hex digits first on each line).
fn local_v6(if_inet6: &str) -> Vec<IpAddr> {
    if_inet6
        .lines()
        .filter_map(|l| u128::from_str_radix(l.split_whitespace().next()?, 16).ok())
        .map(|v| IpAddr::V6(Ipv6Addr::from(v)))
        .collect()
}

/// The Unix connect with the node's facts: the name's kind, the caller's network namespace,
/// and the runtime socket its peer is.
pub fn unix_connect(e: &ConnectEvent, facts: &NetFacts, host_net: u32) -> Payload {
    let abstract_name = e.path[0] == 0 && e.fd != escapewatch_common::event::FD_NONE;
    let mut payload = payload::connect(e);
    if let Payload::UnixConnect {
        path,
        peer,
        abstract_name: is_abstract,
        host_net_ns,
        runtime_socket,
        ..
    } = &mut payload
    {
        if abstract_name {
            *path = payload::text(&e.path[1..]);
        }
        *is_abstract = abstract_name;
        *host_net_ns = host_net != 0 && e.header.ns[2] == host_net;
        *runtime_socket = peer
            .as_ref()
            .and_then(|p| facts.runtime_socket(&p.dev, p.ino))
            .map(str::to_owned);
    }
    payload
}

/// The IPv4/IPv6 connect with what its address is to the node.
pub fn net_connect(e: &NetConnectEvent, facts: &NetFacts, host_net: u32) -> Payload {
    let addr = if e.family == AF_INET {
        IpAddr::V4(Ipv4Addr::new(e.addr[0], e.addr[1], e.addr[2], e.addr[3]))
    } else {
        IpAddr::V6(Ipv6Addr::from(e.addr))
    };
    Payload::NetConnect {
        ret: e.ret,
        addr,
        port: e.port,
        fd: e.fd,
        dest: facts.classify(addr),
        host_net_ns: host_net != 0 && e.header.ns[2] == host_net,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_of_the_namespace() {
        let fib = "Main:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 0.0.0.0\n        /0 universe UNICAST\n     |-- 10.0.2.15\n        /32 host LOCAL\n     |-- 10.0.2.255\n        /32 link BROADCAST\n";
        assert_eq!(local_v4(fib), vec![IpAddr::V4(Ipv4Addr::new(10, 0, 2, 15))]);
        let v6 = "fd000000000000000000000000000002 04 40 00 82     eth0\n";
        assert_eq!(local_v6(v6), vec!["fd00::2".parse::<IpAddr>().unwrap()]);
    }

    #[test]
    fn destinations() {
        let f = NetFacts {
            node_addrs: vec!["10.0.2.15".parse().unwrap()],
            runtime_sockets: vec![],
        };
        for (a, d) in [
            ("127.0.0.1", NetDest::Loopback),
            ("127.8.9.1", NetDest::Loopback),
            ("::1", NetDest::Loopback),
            ("::ffff:127.0.0.1", NetDest::Loopback),
            ("0.0.0.0", NetDest::Loopback),
            ("10.0.2.15", NetDest::Node),
            ("::ffff:10.0.2.15", NetDest::Node),
            ("10.0.2.16", NetDest::Other),
        ] {
            assert_eq!(f.classify(a.parse().unwrap()), d, "{a}");
        }
    }
}
