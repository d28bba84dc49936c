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
    let mut err = 0;
    read_or_zero_acc(base, off, &mut err)
}

/// [`read_or_zero`] that also ORs the read's result into `err`, which is negative once any
/// read failed (an unknown offset counts as failed). A chain of reads (a NULL pointer read
/// fails too) then takes no branch: test `err` once at the end, or take its sign bit
/// ([`failed_bit`]).
#[inline(always)]
pub fn read_or_zero_acc<T: Copy>(base: KPtr, off: u32, err: &mut i64) -> T {
    let mut v = core::mem::MaybeUninit::<T>::zeroed();
    if off == OFFSET_NONE {
        *err |= ERR_READ;
    } else {
        // SAFETY: the helper validates the address and writes all size_of::<T>() bytes (zeros
        // on failure); T is plain integers, valid for any bytes.
        *err |= unsafe {
            aya_ebpf::helpers::generated::bpf_probe_read_kernel(
                v.as_mut_ptr().cast(),
                core::mem::size_of::<T>() as u32,
                base.add(off as usize).cast(),
            )
        };
    }
    // SAFETY: zero-initialised, then written by the helper.
    unsafe { v.assume_init() }
}

/// `flag` if `err` (of [`read_or_zero_acc`]) says a read failed, else 0, computed without a
/// branch from the sign bit.
#[inline(always)]
pub fn failed_bit(err: i64, flag: u32) -> u32 {
    ((err as u64) >> 63) as u32 * flag
}

/// Read a pointer at `base + off`, failing on NULL.
#[inline(always)]
pub fn read_ptr(base: KPtr, off: u32) -> Result<KPtr, i64> {
    let p: KPtr = read(base, off)?;
    if p.is_null() { Err(ERR_READ) } else { Ok(p) }
}

/// Inode number of namespace slot `I` of `task` (its `nsproxy` already read), 0 if it cannot
/// be read; a failed read is ORed into `err`.
#[inline(always)]
fn read_ns<const I: usize>(task: KPtr, nsproxy: KPtr, err: &mut i64) -> u32 {
    let ns: KPtr = if I == NsType::User as usize {
        let cred: KPtr = read_or_zero_acc(task, cfg!(task_real_cred), err);
        read_or_zero_acc(cred, cfg!(cred_user_ns), err)
    } else {
        read_or_zero_acc(nsproxy, cfg!(nsproxy_ns[I]), err)
    };
    read_or_zero_acc(ns, cfg!(ns_inum[I]), err)
}

/// Inode number of every namespace of `task`, by `NsType` index, reading through the task's
/// nsproxy. Returns false when any read failed (that slot is 0).
#[inline(always)]
pub fn read_namespaces(task: KPtr, out: &mut [u32; NS_COUNT]) -> bool {
    read_namespaces_err(task, out) == 0
}

/// [`read_namespaces`], returning the ORed read results (negative when any failed). Without a
/// branch, so the paths through it stay one verifier state. Unrolled by hand: the verifier must
/// see constant indices.
#[inline(always)]
fn read_namespaces_err(task: KPtr, out: &mut [u32; NS_COUNT]) -> i64 {
    let mut err = 0;
    let nsproxy: KPtr = read_or_zero_acc(task, cfg!(task_nsproxy), &mut err);
    err | read_namespaces_via(task, nsproxy, out)
}

/// [`read_namespaces_err`] through `nsproxy` (which need not be the task's yet: the one
/// switch_task_namespaces is about to install). The user namespace is the task's credentials'.
#[inline(always)]
pub fn read_namespaces_via(task: KPtr, nsproxy: KPtr, out: &mut [u32; NS_COUNT]) -> i64 {
    let mut err = 0;
    macro_rules! slot {
        ($i:expr) => {
            let mut slot_err = 0;
            out[$i] = read_ns::<{ $i }>(task, nsproxy, &mut slot_err);
            // The time namespace is missing on kernels before 5.6: not an error there (the
            // offset is a load-time constant, so this is no branch at run time).
            if !($i == NsType::Time as usize && cfg!(nsproxy_ns[$i]) == OFFSET_NONE) {
                err |= slot_err;
            }
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
    err
}

/// Fill everything of the header that describes `task` (all but kind, time and cgroup). A
/// subprogram of its own, as [`fill_current`]: see `emit::submit_flags`.
#[inline(never)]
pub fn fill_task(h: &mut EventHeader, task: KPtr) {
    h.tgid = read_or_zero(task, cfg!(task_tgid));
    h.tid = read_or_zero(task, cfg!(task_pid));
    let parent: KPtr = read_or_zero(task, cfg!(task_real_parent));
    h.ppid = read_or_zero(parent, cfg!(task_tgid));
    let leader: KPtr = read_or_zero(task, cfg!(task_group_leader));
    h.start_time_ns = read_or_zero(leader, cfg!(task_start_boottime));
    // Branch-free reads: a failure sets a flag instead of a path of its own.
    let mut cred_err = 0;
    let cred: KPtr = read_or_zero_acc(task, cfg!(task_real_cred), &mut cred_err);
    h.uid = read_or_zero_acc(cred, cfg!(cred_uid), &mut cred_err);
    h.gid = read_or_zero_acc(cred, cfg!(cred_gid), &mut cred_err);
    h.cap_effective = read_or_zero_acc(cred, cfg!(cred_cap_effective), &mut cred_err);
    let ns_err = read_namespaces_err(task, &mut h.ns);
    let flags =
        failed_bit(cred_err, HDR_FLAG_CRED_PARTIAL) | failed_bit(ns_err, HDR_FLAG_NS_PARTIAL);
    let comm_off = cfg!(task_comm);
    if comm_off == OFFSET_NONE {
        h.comm = [0; COMM_LEN];
    } else {
        // SAFETY: probe read into a buffer of exactly COMM_LEN bytes, which the helper zeroes
        // when the read fails.
        let _ = unsafe { bpf_probe_read_kernel_buf(task.add(comm_off as usize), &mut h.comm) };
    }
    h.flags = flags;
}

/// `1` when `v` is 0, else `0`, without a branch (a branch per check would give the verifier a
/// state per combination of results).
#[inline(always)]
fn is_zero(v: u64) -> u32 {
    (((v | v.wrapping_neg()) >> 63) ^ 1) as u32
}

/// A direct load at a CONFIG offset, 0 where this kernel lacks the field (the offset is a
/// load-time constant: the verifier drops the other branch).
macro_rules! ld {
    ($base:expr, $($field:tt)+) => {{
        let off = cfg!($($field)+);
        if off == OFFSET_NONE {
            Default::default()
        } else {
            // SAFETY: `$base` is BTF-typed (the current task, or a pointer field loaded from
            // it) and `off` the field's BTF offset in its type.
            unsafe { load_btf($base, off) }
        }
    }};
}

/// [`fill_task`] for the current task, by direct BTF loads: about 27 fields, each one load
/// instead of a helper call and `copy_from_kernel_nofault` (the biggest part of an event's
/// kernel cost). A NULL pointer on the way (an exiting task's nsproxy) reads as 0, and a 0
/// where a pointer or an inode number must be sets the same partial flags as a failed read.
#[inline(never)]
pub fn fill_current(h: &mut EventHeader) {
    let task = current_btf();
    h.tgid = ld!(task, task_tgid);
    h.tid = ld!(task, task_pid);
    let parent: KPtr = ld!(task, task_real_parent);
    h.ppid = ld!(parent, task_tgid);
    let leader: KPtr = ld!(task, task_group_leader);
    h.start_time_ns = ld!(leader, task_start_boottime);
    let cred: KPtr = ld!(task, task_real_cred);
    h.uid = ld!(cred, cred_uid);
    h.gid = ld!(cred, cred_gid);
    h.cap_effective = ld!(cred, cred_cap_effective);
    let mut cred_missing = is_zero(cred as u64);
    let nsproxy: KPtr = ld!(task, task_nsproxy);
    let user_ns: KPtr = ld!(cred, cred_user_ns);
    cred_missing |= is_zero(user_ns as u64);
    let mut ns_missing = 0;
    macro_rules! slot {
        ($i:expr) => {
            let ns: KPtr = if $i == NsType::User as usize {
                user_ns
            } else {
                ld!(nsproxy, nsproxy_ns[$i])
            };
            h.ns[$i] = ld!(ns, ns_inum[$i]);
            // The time namespace is missing before 5.6: no gap there.
            if !($i == NsType::Time as usize && cfg!(nsproxy_ns[$i]) == OFFSET_NONE) {
                ns_missing |= is_zero(u64::from(h.ns[$i]));
            }
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
    const _: () = assert!(NS_COUNT == 8 && COMM_LEN == 16);
    let comm_off = cfg!(task_comm);
    if comm_off == OFFSET_NONE {
        h.comm = [0; COMM_LEN];
    } else {
        // SAFETY: the two halves of task_struct.comm (char[16]), at its BTF offset.
        let (lo, hi): (u64, u64) =
            unsafe { (load_btf(task, comm_off), load_btf(task, comm_off + 8)) };
        h.comm[..8].copy_from_slice(&lo.to_ne_bytes());
        h.comm[8..].copy_from_slice(&hi.to_ne_bytes());
    }
    h.flags = (cred_missing * HDR_FLAG_CRED_PARTIAL) | (ns_missing * HDR_FLAG_NS_PARTIAL);
}

/// The `task` argument of `emit` that means "the task running the program": its header is
/// then filled by direct loads ([`fill_current`]), and a program that only ever passes this
/// never contains [`fill_task`] (whose probe-read buffers took 184 bytes of 6.1's 512-byte
/// combined stack).
pub const CURRENT: KPtr = core::ptr::null();

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
    let nsproxy: KPtr = read_or_zero(task, cfg!(task_nsproxy));
    let ns: KPtr = read_or_zero(nsproxy, cfg!(nsproxy_ns[MNT]));
    read_or_zero(ns, cfg!(ns_inum[MNT]))
}

/// The current task, as the BTF-typed pointer the verifier lets a program load from directly.
#[inline(always)]
pub fn current_btf() -> KPtr {
    // SAFETY: helper without arguments (5.11+); never null.
    unsafe { aya_ebpf::helpers::bpf_get_current_task_btf() as KPtr }
}

/// A direct load of the `T` at `base + off`, `base` a BTF-typed kernel pointer and `off` a
/// load-time constant (a field of the frozen CONFIG): the verifier checks the access against
/// the kernel's BTF and the JIT emits one load (a faulting one reads 0), where [`read`] pays a
/// helper call and `copy_from_kernel_nofault`.
///
/// # Safety
/// `base` must be a BTF-typed pointer (or a pointer field loaded from one) and `off` the
/// offset of a field of type `T` in its type, from the running kernel's BTF.
#[inline(always)]
pub unsafe fn load_btf<T: Copy>(base: KPtr, off: u32) -> T {
    // SAFETY: per the contract above; the verifier rejects the program otherwise.
    unsafe { core::ptr::read_volatile(base.add(off as usize).cast::<T>()) }
}

/// Mount namespace inode of the current task, by direct loads (0 if the task has no
/// nsproxy any more, or an offset is unknown).
#[inline(always)]
pub fn current_mnt_ns() -> u32 {
    const MNT: usize = NsType::Mnt as usize;
    let (task_nsproxy, nsproxy_mnt, inum) = (
        cfg!(task_nsproxy),
        cfg!(nsproxy_ns[MNT]),
        cfg!(ns_inum[MNT]),
    );
    if task_nsproxy == OFFSET_NONE || nsproxy_mnt == OFFSET_NONE || inum == OFFSET_NONE {
        return 0;
    }
    // SAFETY: task_struct.nsproxy, nsproxy.mnt_ns and mnt_namespace.ns.inum, at their BTF
    // offsets, each loaded from the pointer the previous load gave.
    unsafe {
        let nsproxy: KPtr = load_btf(current_btf(), task_nsproxy);
        if nsproxy.is_null() {
            return 0;
        }
        let ns: KPtr = load_btf(nsproxy, nsproxy_mnt);
        if ns.is_null() {
            return 0;
        }
        load_btf(ns, inum)
    }
}

/// Whether the current task may be in a container: its mount namespace is not the host's.
/// Every container has its own mount namespace (runc refuses to share the host's), so the
/// escape-primitive programs do their costlier work only for these tasks.
#[inline(always)]
pub fn is_candidate() -> bool {
    let host = cfg!(host_mnt_ns);
    host == 0 || current_mnt_ns() != host
}
