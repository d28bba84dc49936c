//! Which kernel links hold the programs the loader attached, and whether they still do.
//!
//! Every attachment aya makes on a current kernel is a bpf link (perf_event links for
//! tracepoints and kprobes, raw_tracepoint, tracing and cgroup links). The agent holds their
//! file descriptors, so a link cannot disappear while it runs; what someone on the host can
//! do is detach one (`bpftool link detach id N`: cgroup links support it, perf_event and
//! raw_tracepoint links refuse it with EOPNOTSUPP on 6.x kernels). A detached link stays in the
//! kernel's list with its program but without its target: a cgroup link then reports cgroup
//! id 0. So the check is: every link recorded at start is still listed, and a cgroup link
//! still has its cgroup.
//!
//! Programs attached without a link (perf_event_open + ioctl, on kernels before 5.15) cannot
//! be checked this way; they are reported once at start.

use std::{
    collections::{BTreeMap, BTreeSet},
    io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
};

use aya::programs::{links::LinkType, loaded_links};
use escapewatch_common::programs::Hook;

use super::Loaded;

/// One link holding a program the loader attached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkRecord {
    pub program: &'static str,
    pub link_id: u32,
    pub cgroup: bool,
}

/// The links of every attached program, recorded once attaching is done.
#[derive(Debug, Default)]
pub struct AttachedLinks {
    pub links: Vec<LinkRecord>,
    /// Attached programs no link was found for (attached through the perf ioctl).
    pub unlinked: Vec<&'static str>,
}

impl AttachedLinks {
    /// Match the kernel's links to the programs `loaded` attached, by program id.
    pub fn record(loaded: &Loaded) -> AttachedLinks {
        let mut by_prog: BTreeMap<u32, &'static str> = BTreeMap::new();
        for a in loaded.attachments.iter().filter(|a| a.attached()) {
            if let Some(id) = loaded
                .ebpf
                .program(a.program)
                .and_then(|p| p.info().ok())
                .map(|i| i.id())
            {
                by_prog.insert(id, a.program);
            }
        }
        let mut out = AttachedLinks::default();
        let mut linked = BTreeSet::new();
        // A link that goes away while the list is read (someone else's) is an error of the
        // iteration, and none of ours: skipped.
        for info in loaded_links().filter_map(Result::ok) {
            let Some(&program) = by_prog.get(&info.program_id()) else {
                continue;
            };
            linked.insert(program);
            out.links.push(LinkRecord {
                program,
                link_id: info.id(),
                cgroup: info.link_type().is_ok_and(|t| t == LinkType::Cgroup),
            });
        }
        out.unlinked = loaded
            .attachments
            .iter()
            // A tail-call target has no link by nature: its caller's link is the one watched.
            .filter(|a| a.attached() && !linked.contains(a.program))
            .filter(|a| {
                !matches!(
                    a.hook,
                    Hook::TailCall { .. } | Hook::Syscall { .. } | Hook::IouringOp { .. }
                )
            })
            .map(|a| a.program)
            .collect();
        out
    }

    /// The programs of which a recorded link is gone or detached, in attach order, each once.
    pub fn detached(&self) -> Vec<&'static str> {
        let listed: BTreeSet<u32> = loaded_links()
            .filter_map(Result::ok)
            .map(|i| i.id())
            .collect();
        let mut out: Vec<&'static str> = Vec::new();
        for l in &self.links {
            let gone = !listed.contains(&l.link_id)
                // An error reading a link we hold the fd of means it is not what it was.
                || (l.cgroup && !cgroup_link_attached(l.link_id).unwrap_or(false));
            if gone && !out.contains(&l.program) {
                out.push(l.program);
            }
        }
        out
    }
}

const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_LINK_GET_FD_BY_ID: libc::c_long = 30;

/// The head of the kernel's `struct bpf_link_info` up to its cgroup member (the kernel copies
/// no more than the size given).
#[repr(C)]
#[derive(Default)]
struct CgroupLinkInfo {
    link_type: u32,
    id: u32,
    prog_id: u32,
    _pad: u32,
    cgroup_id: u64,
    attach_type: u32,
    _pad2: u32,
}

/// Whether cgroup link `link_id` is still attached to a cgroup (a detached one reports 0).
/// aya's `LinkInfo` does not expose the cgroup member, hence the two bpf() calls here.
fn cgroup_link_attached(link_id: u32) -> io::Result<bool> {
    // union bpf_attr for BPF_LINK_GET_FD_BY_ID: link_id, next_id, open_flags.
    let get_fd: [u32; 3] = [link_id, 0, 0];
    // SAFETY: bpf(2) reads `size_of_val(&get_fd)` bytes of the attribute we pass.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_LINK_GET_FD_BY_ID,
            get_fd.as_ptr(),
            size_of_val(&get_fd),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this new descriptor; nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let mut info = CgroupLinkInfo::default();
    // union bpf_attr for BPF_OBJ_GET_INFO_BY_FD: bpf_fd, info_len, info (aligned u64).
    #[repr(C)]
    struct InfoAttr {
        bpf_fd: u32,
        info_len: u32,
        info: u64,
    }
    let attr = InfoAttr {
        bpf_fd: fd.as_raw_fd() as u32,
        info_len: size_of::<CgroupLinkInfo>() as u32,
        info: std::ptr::from_mut(&mut info) as u64,
    };
    // SAFETY: the kernel writes at most `info_len` bytes to `info`, which is that large.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_OBJ_GET_INFO_BY_FD,
            std::ptr::from_ref(&attr),
            size_of::<InfoAttr>(),
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(info.cgroup_id != 0)
}
