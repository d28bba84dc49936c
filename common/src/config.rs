//! Configuration handed to the eBPF programs at load time through a read-only global.
//!
//! Rust eBPF has no CO-RE field relocations, so the byte offsets of the kernel struct members the
//! programs read are resolved by the agent from the running kernel's BTF and written here.

use crate::event::NS_COUNT;

/// An offset the running kernel does not have; the program skips that read.
pub const OFFSET_NONE: u32 = u32::MAX;

/// Byte offsets of kernel struct members plus a few load-time switches.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelConfig {
    /// [`crate::SCHEMA_VERSION`]; zero means "not configured" and makes every program a no-op.
    pub schema_version: u32,
    /// The agent's own tgid: its events are not reported.
    pub agent_tgid: u32,

    pub task_pid: u32,
    pub task_tgid: u32,
    pub task_real_parent: u32,
    pub task_group_leader: u32,
    /// `start_boottime` (5.5+) or `real_start_time` (older).
    pub task_start_boottime: u32,
    pub task_real_cred: u32,
    pub task_nsproxy: u32,
    pub task_comm: u32,
    pub task_mm: u32,
    pub task_exit_code: u32,

    pub cred_uid: u32,
    pub cred_gid: u32,
    pub cred_cap_effective: u32,
    pub cred_user_ns: u32,

    /// Offset of each namespace pointer inside `struct nsproxy`, by `NsType` index
    /// (`OFFSET_NONE` for the user namespace, which comes from the credentials).
    pub nsproxy_ns: [u32; NS_COUNT],
    /// Offset of `ns.inum` inside each namespace struct, by `NsType` index.
    pub ns_inum: [u32; NS_COUNT],

    pub binprm_filename: u32,
    pub mm_arg_start: u32,
    pub mm_arg_end: u32,
    pub _pad: u32,
}

const _: () = assert!(core::mem::size_of::<KernelConfig>() == 144);

impl KernelConfig {
    /// The value compiled into the object: everything off until the agent fills it in.
    pub const UNCONFIGURED: KernelConfig = KernelConfig {
        schema_version: 0,
        agent_tgid: 0,
        task_pid: OFFSET_NONE,
        task_tgid: OFFSET_NONE,
        task_real_parent: OFFSET_NONE,
        task_group_leader: OFFSET_NONE,
        task_start_boottime: OFFSET_NONE,
        task_real_cred: OFFSET_NONE,
        task_nsproxy: OFFSET_NONE,
        task_comm: OFFSET_NONE,
        task_mm: OFFSET_NONE,
        task_exit_code: OFFSET_NONE,
        cred_uid: OFFSET_NONE,
        cred_gid: OFFSET_NONE,
        cred_cap_effective: OFFSET_NONE,
        cred_user_ns: OFFSET_NONE,
        nsproxy_ns: [OFFSET_NONE; NS_COUNT],
        ns_inum: [OFFSET_NONE; NS_COUNT],
        binprm_filename: OFFSET_NONE,
        mm_arg_start: OFFSET_NONE,
        mm_arg_end: OFFSET_NONE,
        _pad: 0,
    };
}
