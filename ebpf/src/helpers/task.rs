//! Reads of `struct task_struct` and what hangs off it, at offsets the agent resolved from the
//! running kernel's BTF (see `KernelConfig`). No layout is compiled in.

use aya_ebpf::helpers::{bpf_probe_read_kernel, bpf_probe_read_kernel_buf};
use escapewatch_common::{
    COMM_LEN,
    abi::EFAULT,
    config::OFFSET_NONE,
    event::{EventHeader, HDR_FLAG_CRED_PARTIAL, HDR_FLAG_NS_PARTIAL, NS_COUNT, NsType},
};

use crate::cfg;

/// Error of a kernel read: the offset is unknown on this kernel or the read faulted.
pub const ERR_READ: i64 = -EFAULT;

/// An opaque kernel pointer (`struct task_struct *` and friends).
pub type KPtr = *const u8;

/// Read a `T` at `base + off`.
#[inline(always)]
pub fn read<T>(base: KPtr, off: u32) -> Result<T, i64> {
    if base.is_null() || off == OFFSET_NONE {
        return Err(ERR_READ);
    }
    // SAFETY: bpf_probe_read_kernel validates the address; a bad one returns an error.
    unsafe { bpf_probe_read_kernel(base.add(off as usize).cast::<T>()) }.map_err(|e| e as i64)
}

/// Read a `T` (plain integers) at `base + off`, 0 when it cannot be read. No branch: the
/// helper zeroes its destination when the read faults, so every path carries the same unknown
/// value. With `read(..).unwrap_or(0)` the failure path carries a constant 0 instead, and the
/// verifier checks everything after the read once for each (doubling per such field).
#[inline(always)]
pub fn read_or_zero<T: Copy>(base: KPtr, off: u32) -> T {
    let mut v = core::mem::MaybeUninit::<T>::zeroed();
    if off != OFFSET_NONE {
        // SAFETY: the helper validates the address and writes all size_of::<T>() bytes (zeros
        // on failure); T is plain integers, valid for any bytes.
        unsafe {
            aya_ebpf::helpers::generated::bpf_probe_read_kernel(
                v.as_mut_ptr().cast(),
                core::mem::size_of::<T>() as u32,
                base.add(off as usize).cast(),
            );
        }
    }
    // SAFETY: zero-initialised, then written by the helper.
    unsafe { v.assume_init() }
}

/// Read a pointer at `base + off`, failing on NULL.
#[inline(always)]
pub fn read_ptr(base: KPtr, off: u32) -> Result<KPtr, i64> {
    let p: KPtr = read(base, off)?;
    if p.is_null() { Err(ERR_READ) } else { Ok(p) }
}

/// Inode number of namespace slot `I` of `task` (`nsproxy` already read, or None).
#[inline(always)]
fn read_ns<const I: usize>(task: KPtr, nsproxy: Option<KPtr>) -> Result<u32, i64> {
    let ns = if I == NsType::User as usize {
        read_ptr(task, cfg!(task_real_cred)).and_then(|cred| read_ptr(cred, cfg!(cred_user_ns)))?
    } else {
        read_ptr(nsproxy.ok_or(ERR_READ)?, cfg!(nsproxy_ns[I]))?
    };
    read::<u32>(ns, cfg!(ns_inum[I]))
}

/// Inode number of every namespace of `task`, by `NsType` index. Returns false when any read
/// failed (that slot stays 0). Unrolled by hand: the verifier must see constant indices.
#[inline(always)]
pub fn read_namespaces(task: KPtr, out: &mut [u32; NS_COUNT]) -> bool {
    let nsproxy = read_ptr(task, cfg!(task_nsproxy)).ok();
    let mut complete = true;
    macro_rules! slot {
        ($i:expr) => {
            out[$i] = match read_ns::<{ $i }>(task, nsproxy) {
                Ok(inum) => inum,
                Err(_) => {
                    // The time namespace is missing on kernels before 5.6: not an error there.
                    if !($i == NsType::Time as usize && cfg!(nsproxy_ns[$i]) == OFFSET_NONE) {
                        complete = false;
                    }
                    0
                }
            };
        };
    }
    slot!(0);
    slot!(1);
    slot!(2);
    slot!(3);
    slot!(4);
    slot!(5);
    slot!(6);
    slot!(7);
    const _: () = assert!(NS_COUNT == 8);
    complete
}

/// Fill everything of the header that describes `task` (all but kind, time and cgroup).
#[inline(always)]
pub fn fill_task(h: &mut EventHeader, task: KPtr) {
    let mut flags = 0;
    h.tgid = read_or_zero(task, cfg!(task_tgid));
    h.tid = read_or_zero(task, cfg!(task_pid));
    h.ppid = read_ptr(task, cfg!(task_real_parent))
        .and_then(|p| read(p, cfg!(task_tgid)))
        .unwrap_or(0);
    h.start_time_ns = read_ptr(task, cfg!(task_group_leader))
        .and_then(|leader| read(leader, cfg!(task_start_boottime)))
        .unwrap_or(0);
    match read_ptr(task, cfg!(task_real_cred)) {
        Ok(cred) => {
            h.uid = read_or_zero(cred, cfg!(cred_uid));
            h.gid = read_or_zero(cred, cfg!(cred_gid));
            h.cap_effective = read_or_zero(cred, cfg!(cred_cap_effective));
        }
        Err(_) => {
            h.uid = 0;
            h.gid = 0;
            h.cap_effective = 0;
            flags |= HDR_FLAG_CRED_PARTIAL;
        }
    }
    if !read_namespaces(task, &mut h.ns) {
        flags |= HDR_FLAG_NS_PARTIAL;
    }
    let comm_off = cfg!(task_comm);
    if comm_off == OFFSET_NONE
        // SAFETY: probe read into a buffer of exactly COMM_LEN bytes.
        || unsafe { bpf_probe_read_kernel_buf(task.add(comm_off as usize), &mut h.comm) }.is_err()
    {
        h.comm = [0; COMM_LEN];
    }
    h.flags = flags;
}

/// The current task.
#[inline(always)]
pub fn current() -> KPtr {
    // SAFETY: helper without arguments.
    unsafe { aya_ebpf::helpers::bpf_get_current_task() as KPtr }
}

/// Mount namespace inode of `task` (0 if unreadable).
#[inline(always)]
pub fn mnt_ns(task: KPtr) -> u32 {
    const MNT: usize = NsType::Mnt as usize;
    read_ptr(task, cfg!(task_nsproxy))
        .and_then(|p| read_ptr(p, cfg!(nsproxy_ns[MNT])))
        .and_then(|ns| read::<u32>(ns, cfg!(ns_inum[MNT])))
        .unwrap_or(0)
}

/// Whether the current task may be in a container: its mount namespace is not the host's.
/// Every container has its own mount namespace (runc refuses to share the host's), so the
/// escape-primitive programs do their costlier work only for these tasks.
#[inline(always)]
pub fn is_candidate() -> bool {
    let host = cfg!(host_mnt_ns);
    host == 0 || mnt_ns(current()) != host
}
