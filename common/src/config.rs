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

    /// Mount namespace inode of the host: processes in it are not container candidates and
    /// skip the costlier checks (0: unknown, everything is a candidate).
    pub host_mnt_ns: u32,

    pub task_flags: u32,
    pub task_files: u32,
    pub files_fdt: u32,
    pub fdt_fd: u32,
    pub fdt_max_fds: u32,
    pub file_f_inode: u32,
    /// `f_path.mnt` and `f_path.dentry`.
    pub file_path_mnt: u32,
    pub file_path_dentry: u32,
    pub file_f_mode: u32,
    pub file_f_pos: u32,
    pub inode_i_mode: u32,
    pub inode_i_rdev: u32,
    pub inode_i_ino: u32,
    pub inode_i_sb: u32,
    pub sb_s_magic: u32,
    pub sb_s_dev: u32,
    /// `d_name.name` and `d_parent`.
    pub dentry_name: u32,
    pub dentry_parent: u32,
    /// Offset of `struct vfsmount mnt` inside `struct mount` (container_of), and `mnt_ns`.
    pub mount_mnt: u32,
    pub mount_mnt_ns: u32,
    pub vma_vm_flags: u32,
    pub vma_vm_file: u32,
    pub vma_vm_start: u32,
    pub vma_vm_end: u32,
    /// `file.private_data`: for /proc/PID/mem, the target's mm_struct.
    pub file_private_data: u32,
    /// `vm_area_struct.vm_mm`: whose memory a faulting mapping is.
    pub vma_vm_mm: u32,
    /// `file.f_flags` (O_* flags of an open file, for the LSM open hook).
    pub file_f_flags: u32,
    /// `task_struct.thread_info.status` (x86: `TS_COMPAT` marks a 32-bit syscall in progress);
    /// `OFFSET_NONE` where the architecture has no such field.
    pub task_ti_status: u32,
    /// `io_kiocb.opcode` (u8) and `io_open.file_slot` (non-zero: a direct descriptor, which is
    /// not in the fd table); `OFFSET_NONE` without io_uring.
    pub iokiocb_opcode: u32,
    pub io_open_file_slot: u32,
    /// Byte offsets of `req` and `res` in the io_uring/io_uring_complete tracepoint record, from
    /// its tracefs format (`OFFSET_NONE`: not found, the program does nothing).
    pub iou_complete_req: u32,
    pub iou_complete_res: u32,
    /// Members of a completed io_uring request, as byte offsets from the start of its
    /// `io_kiocb` (the per-opcode struct lives in `io_kiocb.cmd`, 6.0+, or in its union on
    /// 5.x): `file` (the request's struct file, a direct descriptor's too), `io_rw.kiocb.ki_pos`
    /// and `io_rw.len`, `io_splice.splice_fd_in` and `.flags` (splice and tee),
    /// `io_madvise.addr`, `.len` and `.advice`. `OFFSET_NONE` without io_uring.
    pub iokiocb_file: u32,
    pub iorw_pos: u32,
    pub iorw_len: u32,
    pub iosplice_fd_in: u32,
    pub iosplice_flags: u32,
    pub iomadvise_addr: u32,
    pub iomadvise_len: u32,
    pub iomadvise_advice: u32,
    /// `super_block.s_type` and `file_system_type.name`: the filesystem type of a superblock.
    pub sb_s_type: u32,
    pub fstype_name: u32,
    /// `task_struct.fs`, and `fs_struct.pwd.mnt` / `fs_struct.root.mnt`: which mount a task's
    /// cwd and root lie in.
    pub task_fs: u32,
    pub fs_pwd_mnt: u32,
    pub fs_root_mnt: u32,
    /// `socket.sk`, `unix_sock.peer`, `unix_sock.path.dentry` and `dentry.d_inode`: the
    /// socket a Unix connect reached, by the path its listener bound.
    pub socket_sk: u32,
    pub unix_sock_peer: u32,
    pub unix_sock_path_dentry: u32,
    pub dentry_d_inode: u32,
    /// `sock.__sk_common.skc_family`: whether a socket io_uring connected is a Unix one.
    pub sk_family: u32,
    /// `linux_binprm.file`, `inode.i_nlink`, the seconds and nanoseconds of the inode's ctime
    /// (`i_ctime_sec`/`i_ctime_nsec` since 6.11, `__i_ctime` in 6.6-6.10, `i_ctime` before) and
    /// `vfsmount.mnt_sb`: the identity and age of the file an exec runs.
    pub binprm_file: u32,
    pub inode_i_nlink: u32,
    pub inode_ctime_sec: u32,
    pub inode_ctime_nsec: u32,
    pub vfsmount_mnt_sb: u32,
    /// `vfsmount.mnt_root` and `super_block.s_root`: whether a mount shows its whole
    /// filesystem (its root dentry is the superblock's) or a bind-mounted subtree.
    pub vfsmount_mnt_root: u32,
    pub sb_s_root: u32,
    pub _pad_exe: u32,
    /// The newest mount of a mount namespace (what a bind mount just attached): the cached
    /// last node of `mnt_namespace.mounts` (6.14+), else the rbtree itself (6.8+, walked to
    /// its rightmost node: mounts are keyed by their increasing unique id), else the tail of
    /// `mnt_namespace.list` (before 6.8); `mount.mnt_node` / `mount.mnt_list` turn the node
    /// back into its mount, `rb_node.rb_right` walks the tree. `OFFSET_NONE` where absent.
    pub mntns_last_node: u32,
    pub mntns_mounts: u32,
    pub mntns_list: u32,
    pub mount_mnt_node: u32,
    pub mount_mnt_list: u32,
    pub rb_node_right: u32,
    /// `mount.mnt_mountpoint` (with `vfsmount.mnt_root` above): the dentry a mount covers
    /// and its root.
    pub mount_mnt_mountpoint: u32,
    /// `io_rename.flags` from the start of `io_kiocb` (IORING_OP_RENAMEAT's RENAME_* flags).
    pub iorename_flags: u32,
    /// `sock.__sk_common.skc_dport`, `skc_daddr` and `skc_v6_daddr`: where an active open of
    /// an IPv4/IPv6 socket goes (set before the socket leaves TCP_CLOSE).
    pub sk_dport: u32,
    pub sk_daddr: u32,
    pub sk_v6_daddr: u32,
    pub _pad_sk: u32,
}

const _: () = assert!(core::mem::size_of::<KernelConfig>() == 424);

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
        host_mnt_ns: 0,
        task_flags: OFFSET_NONE,
        task_files: OFFSET_NONE,
        files_fdt: OFFSET_NONE,
        fdt_fd: OFFSET_NONE,
        fdt_max_fds: OFFSET_NONE,
        file_f_inode: OFFSET_NONE,
        file_path_mnt: OFFSET_NONE,
        file_path_dentry: OFFSET_NONE,
        file_f_mode: OFFSET_NONE,
        file_f_pos: OFFSET_NONE,
        inode_i_mode: OFFSET_NONE,
        inode_i_rdev: OFFSET_NONE,
        inode_i_ino: OFFSET_NONE,
        inode_i_sb: OFFSET_NONE,
        sb_s_magic: OFFSET_NONE,
        sb_s_dev: OFFSET_NONE,
        dentry_name: OFFSET_NONE,
        dentry_parent: OFFSET_NONE,
        mount_mnt: OFFSET_NONE,
        mount_mnt_ns: OFFSET_NONE,
        vma_vm_flags: OFFSET_NONE,
        vma_vm_file: OFFSET_NONE,
        vma_vm_start: OFFSET_NONE,
        vma_vm_end: OFFSET_NONE,
        file_private_data: OFFSET_NONE,
        vma_vm_mm: OFFSET_NONE,
        file_f_flags: OFFSET_NONE,
        task_ti_status: OFFSET_NONE,
        iokiocb_opcode: OFFSET_NONE,
        io_open_file_slot: OFFSET_NONE,
        iou_complete_req: OFFSET_NONE,
        iou_complete_res: OFFSET_NONE,
        iokiocb_file: OFFSET_NONE,
        iorw_pos: OFFSET_NONE,
        iorw_len: OFFSET_NONE,
        iosplice_fd_in: OFFSET_NONE,
        iosplice_flags: OFFSET_NONE,
        iomadvise_addr: OFFSET_NONE,
        iomadvise_len: OFFSET_NONE,
        iomadvise_advice: OFFSET_NONE,
        sb_s_type: OFFSET_NONE,
        fstype_name: OFFSET_NONE,
        task_fs: OFFSET_NONE,
        fs_pwd_mnt: OFFSET_NONE,
        fs_root_mnt: OFFSET_NONE,
        socket_sk: OFFSET_NONE,
        unix_sock_peer: OFFSET_NONE,
        unix_sock_path_dentry: OFFSET_NONE,
        dentry_d_inode: OFFSET_NONE,
        sk_family: OFFSET_NONE,
        binprm_file: OFFSET_NONE,
        inode_i_nlink: OFFSET_NONE,
        inode_ctime_sec: OFFSET_NONE,
        inode_ctime_nsec: OFFSET_NONE,
        vfsmount_mnt_sb: OFFSET_NONE,
        vfsmount_mnt_root: OFFSET_NONE,
        sb_s_root: OFFSET_NONE,
        _pad_exe: 0,
        mntns_last_node: OFFSET_NONE,
        mntns_mounts: OFFSET_NONE,
        mntns_list: OFFSET_NONE,
        mount_mnt_node: OFFSET_NONE,
        mount_mnt_list: OFFSET_NONE,
        rb_node_right: OFFSET_NONE,
        mount_mnt_mountpoint: OFFSET_NONE,
        iorename_flags: OFFSET_NONE,
        sk_dport: OFFSET_NONE,
        sk_daddr: OFFSET_NONE,
        sk_v6_daddr: OFFSET_NONE,
        _pad_sk: 0,
    };
}
