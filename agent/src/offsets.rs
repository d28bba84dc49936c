//! Kernel struct offsets for the eBPF programs, from the running kernel's BTF.

use escapewatch_common::{
    SCHEMA_VERSION,
    config::{KernelConfig, OFFSET_NONE},
    event::NsType,
};

use crate::btf::{Btf, BtfError};

#[derive(Debug, thiserror::Error)]
pub enum OffsetError {
    #[error(
        "the running kernel's BTF lacks {count} struct member(s) escapewatch needs:\n  {}\nthis kernel layout is not supported yet; please report it with `uname -r`",
        .missing.join("\n  ")
    )]
    Missing { count: usize, missing: Vec<String> },
}

/// Resolves offsets, collecting every missing one instead of stopping at the first.
struct Resolver<'a> {
    btf: &'a Btf,
    missing: Vec<String>,
}

impl Resolver<'_> {
    fn required(&mut self, st: &str, paths: &[&str]) -> u32 {
        match self.btf.member_offset_any(st, paths) {
            Ok(off) => off,
            Err(e) => {
                self.missing.push(describe(st, paths, &e));
                OFFSET_NONE
            }
        }
    }

    fn optional(&self, st: &str, paths: &[&str]) -> u32 {
        self.btf.member_offset_any(st, paths).unwrap_or(OFFSET_NONE)
    }
}

fn describe(st: &str, paths: &[&str], e: &BtfError) -> String {
    format!("struct {st}.{}: {e}", paths.join(" | "))
}

/// Namespace struct and nsproxy member of each namespace type (user comes from the cred).
fn ns_structs(ty: NsType) -> (&'static str, Option<&'static str>) {
    match ty {
        NsType::Mnt => ("mnt_namespace", Some("mnt_ns")),
        NsType::Pid => ("pid_namespace", Some("pid_ns_for_children")),
        NsType::Net => ("net", Some("net_ns")),
        NsType::Uts => ("uts_namespace", Some("uts_ns")),
        NsType::Ipc => ("ipc_namespace", Some("ipc_ns")),
        NsType::User => ("user_namespace", None),
        NsType::Cgroup => ("cgroup_namespace", Some("cgroup_ns")),
        NsType::Time => ("time_namespace", Some("time_ns")),
    }
}

/// Build the eBPF-side configuration for this kernel.
pub fn kernel_config(
    btf: &Btf,
    agent_tgid: u32,
    host_mnt_ns: u32,
) -> Result<KernelConfig, OffsetError> {
    let mut r = Resolver {
        btf,
        missing: Vec::new(),
    };
    let mut cfg = KernelConfig {
        schema_version: u32::from(SCHEMA_VERSION),
        agent_tgid,
        host_mnt_ns,
        task_pid: r.required("task_struct", &["pid"]),
        task_tgid: r.required("task_struct", &["tgid"]),
        task_real_parent: r.required("task_struct", &["real_parent"]),
        task_group_leader: r.required("task_struct", &["group_leader"]),
        // Renamed in 5.5.
        task_start_boottime: r.required("task_struct", &["start_boottime", "real_start_time"]),
        task_real_cred: r.required("task_struct", &["real_cred"]),
        task_nsproxy: r.required("task_struct", &["nsproxy"]),
        task_comm: r.required("task_struct", &["comm"]),
        task_mm: r.optional("task_struct", &["mm"]),
        task_exit_code: r.optional("task_struct", &["exit_code"]),
        cred_uid: r.required("cred", &["uid"]),
        cred_gid: r.required("cred", &["gid"]),
        cred_cap_effective: r.required("cred", &["cap_effective"]),
        cred_user_ns: r.required("cred", &["user_ns"]),
        binprm_filename: r.required("linux_binprm", &["filename"]),
        mm_arg_start: r.optional("mm_struct", &["arg_start"]),
        mm_arg_end: r.optional("mm_struct", &["arg_end"]),
        // Files, inodes and mounts: the open, mem-write and splice checks.
        task_flags: r.required("task_struct", &["flags"]),
        task_files: r.required("task_struct", &["files"]),
        files_fdt: r.required("files_struct", &["fdt"]),
        fdt_fd: r.required("fdtable", &["fd"]),
        fdt_max_fds: r.required("fdtable", &["max_fds"]),
        file_f_inode: r.required("file", &["f_inode"]),
        file_path_mnt: r.required("file", &["f_path.mnt"]),
        file_path_dentry: r.required("file", &["f_path.dentry"]),
        file_f_mode: r.required("file", &["f_mode"]),
        file_f_pos: r.required("file", &["f_pos"]),
        inode_i_mode: r.required("inode", &["i_mode"]),
        inode_i_rdev: r.required("inode", &["i_rdev"]),
        inode_i_ino: r.required("inode", &["i_ino"]),
        inode_i_sb: r.required("inode", &["i_sb"]),
        sb_s_magic: r.required("super_block", &["s_magic"]),
        sb_s_dev: r.required("super_block", &["s_dev"]),
        dentry_name: r.required("dentry", &["d_name.name"]),
        dentry_parent: r.required("dentry", &["d_parent"]),
        mount_mnt: r.required("mount", &["mnt"]),
        mount_mnt_ns: r.required("mount", &["mnt_ns"]),
        vma_vm_flags: r.required("vm_area_struct", &["vm_flags", "__vm_flags"]),
        vma_vm_file: r.required("vm_area_struct", &["vm_file"]),
        vma_vm_start: r.required("vm_area_struct", &["vm_start"]),
        vma_vm_end: r.required("vm_area_struct", &["vm_end"]),
        file_private_data: r.required("file", &["private_data"]),
        vma_vm_mm: r.required("vm_area_struct", &["vm_mm"]),
        file_f_flags: r.required("file", &["f_flags"]),
        // x86 only: the 32-bit syscall entry dispatcher reads TS_COMPAT here.
        task_ti_status: r.optional("task_struct", &["thread_info.status"]),
        // io_uring (5.1+; absent when not built in): the completion program's opcode and the
        // direct-descriptor slot of an open.
        iokiocb_opcode: r.optional("io_kiocb", &["opcode"]),
        io_open_file_slot: r.optional("io_open", &["file_slot"]),
        sb_s_type: r.required("super_block", &["s_type"]),
        fstype_name: r.required("file_system_type", &["name"]),
        // Which mount a task's cwd and root lie in (exec's post-condition).
        task_fs: r.required("task_struct", &["fs"]),
        fs_pwd_mnt: r.required("fs_struct", &["pwd.mnt"]),
        fs_root_mnt: r.required("fs_struct", &["root.mnt"]),
        // Which socket a Unix connect reached (unix may be a module: optional).
        socket_sk: r.optional("socket", &["sk"]),
        unix_sock_peer: r.optional("unix_sock", &["peer"]),
        unix_sock_path_dentry: r.optional("unix_sock", &["path.dentry"]),
        dentry_d_inode: r.required("dentry", &["d_inode"]),
        sk_family: r.optional("sock", &["__sk_common.skc_family"]),
        // Where an active open goes (the inet_sock_set_state program).
        sk_dport: r.optional("sock", &["__sk_common.skc_dport"]),
        sk_daddr: r.optional("sock", &["__sk_common.skc_daddr"]),
        sk_v6_daddr: r.optional("sock", &["__sk_common.skc_v6_daddr"]),
        // The file an exec runs: its link count, ctime and superblock (the drift rules).
        binprm_file: r.required("linux_binprm", &["file"]),
        inode_i_nlink: r.required("inode", &["i_nlink", "__i_nlink"]),
        inode_ctime_sec: r.required(
            "inode",
            &["i_ctime_sec", "__i_ctime.tv_sec", "i_ctime.tv_sec"],
        ),
        inode_ctime_nsec: r.required(
            "inode",
            &["i_ctime_nsec", "__i_ctime.tv_nsec", "i_ctime.tv_nsec"],
        ),
        vfsmount_mnt_sb: r.required("vfsmount", &["mnt_sb"]),
        // Whether the exec'd file's mount shows a whole filesystem (exec-host-binary).
        vfsmount_mnt_root: r.required("vfsmount", &["mnt_root"]),
        sb_s_root: r.required("super_block", &["s_root"]),
        // The newest mount of a namespace (what a bind mount attached): three layouts.
        mntns_last_node: r.optional("mnt_namespace", &["mnt_last_node"]),
        mntns_mounts: r.optional("mnt_namespace", &["mounts"]),
        mntns_list: r.optional("mnt_namespace", &["list"]),
        mount_mnt_node: r.optional("mount", &["mnt_node"]),
        mount_mnt_list: r.optional("mount", &["mnt_list"]),
        rb_node_right: r.optional("rb_node", &["rb_right"]),
        mount_mnt_mountpoint: r.required("mount", &["mnt_mountpoint"]),
        ..KernelConfig::UNCONFIGURED
    };
    set_io_uring_requests(&r, &mut cfg);
    // Before 6.8 `mnt_namespace.mounts` is the count of mounts, not the rbtree: the tree is
    // there only with `mount.mnt_node`; the list only without it.
    if cfg.mount_mnt_node == OFFSET_NONE {
        cfg.mntns_mounts = OFFSET_NONE;
        cfg.mntns_last_node = OFFSET_NONE;
    } else {
        cfg.mntns_list = OFFSET_NONE;
    }
    for ty in NsType::ALL {
        let (st, member) = ns_structs(ty);
        // The time namespace exists since 5.6 only.
        let optional = ty == NsType::Time;
        let i = ty as usize;
        if optional {
            cfg.ns_inum[i] = r.optional(st, &["ns.inum"]);
            cfg.nsproxy_ns[i] = member.map_or(OFFSET_NONE, |m| r.optional("nsproxy", &[m]));
        } else {
            cfg.ns_inum[i] = r.required(st, &["ns.inum"]);
            cfg.nsproxy_ns[i] = member.map_or(OFFSET_NONE, |m| r.required("nsproxy", &[m]));
        }
    }
    if r.missing.is_empty() {
        Ok(cfg)
    } else {
        Err(OffsetError::Missing {
            count: r.missing.len(),
            missing: r.missing,
        })
    }
}

/// The io_kiocb members the io_uring completion programs read. The per-opcode struct sits in
/// `io_kiocb.cmd` since 6.0 (`io_kiocb_to_cmd`); on 5.x it is a member of io_kiocb's first
/// union (`rw`, `splice`, `madvise`). Either way the offset handed over is from io_kiocb.
fn set_io_uring_requests(r: &Resolver<'_>, cfg: &mut KernelConfig) {
    let cmd = r.optional("io_kiocb", &["cmd"]);
    let member = |st: &str, old: &str, path: &str| {
        let inside = r.optional(st, &[path]);
        if cmd != OFFSET_NONE && inside != OFFSET_NONE {
            cmd + inside
        } else {
            r.optional("io_kiocb", &[&format!("{old}.{path}")])
        }
    };
    cfg.iokiocb_file = r.optional("io_kiocb", &["file"]);
    cfg.iorw_pos = member("io_rw", "rw", "kiocb.ki_pos");
    cfg.iorw_len = member("io_rw", "rw", "len");
    cfg.iosplice_fd_in = member("io_splice", "splice", "splice_fd_in");
    cfg.iosplice_flags = member("io_splice", "splice", "flags");
    cfg.iomadvise_addr = member("io_madvise", "madvise", "addr");
    cfg.iomadvise_len = member("io_madvise", "madvise", "len");
    cfg.iomadvise_advice = member("io_madvise", "madvise", "advice");
    cfg.iorename_flags = member("io_rename", "rename", "flags");
}

/// The byte offset of `field` in a tracepoint record, from the tracepoint's tracefs `format`
/// text (`\tfield:void * req;\toffset:16;\tsize:8;\tsigned:0;`): the record layout is that
/// file's contract, not a compiled-in one.
pub fn format_field_offset(format: &str, field: &str) -> Option<u32> {
    format.lines().find_map(|line| {
        let decl = line.trim().strip_prefix("field:")?;
        let (decl, rest) = decl.split_once(';')?;
        let name = decl.rsplit([' ', '*']).next()?;
        if name != field {
            return None;
        }
        rest.split(';')
            .find_map(|kv| kv.trim().strip_prefix("offset:"))
            .and_then(|off| off.parse().ok())
    })
}

/// Fill in the tracepoint record offsets from `format` (the io_uring_complete tracepoint's
/// tracefs format text, None when the kernel has no such tracepoint).
pub fn set_io_uring_complete(cfg: &mut KernelConfig, format: Option<&str>) {
    let at = |field| {
        format
            .and_then(|f| format_field_offset(f, field))
            .unwrap_or(OFFSET_NONE)
    };
    cfg.iou_complete_req = at("req");
    cfg.iou_complete_res = at("res");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The io_uring_complete format of 6.1 to 6.18 (6.1 passes the fields as arguments, 6.18 a
    /// cqe pointer; the record is the same).
    const IO_URING_COMPLETE: &str = "name: io_uring_complete
ID: 2141
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:void * ctx;\toffset:8;\tsize:8;\tsigned:0;
\tfield:void * req;\toffset:16;\tsize:8;\tsigned:0;
\tfield:u64 user_data;\toffset:24;\tsize:8;\tsigned:0;
\tfield:int res;\toffset:32;\tsize:4;\tsigned:1;
\tfield:unsigned cflags;\toffset:36;\tsize:4;\tsigned:0;

print fmt: \"ring %p, req %p, result %d\", REC->ctx, REC->req, REC->res
";

    #[test]
    fn tracepoint_fields_come_from_the_format_file() {
        assert_eq!(format_field_offset(IO_URING_COMPLETE, "req"), Some(16));
        assert_eq!(format_field_offset(IO_URING_COMPLETE, "res"), Some(32));
        assert_eq!(format_field_offset(IO_URING_COMPLETE, "ctx"), Some(8));
        // Not a prefix match, and absent fields are absent.
        assert_eq!(format_field_offset(IO_URING_COMPLETE, "re"), None);
        assert_eq!(format_field_offset(IO_URING_COMPLETE, "opcode"), None);
        let mut cfg = KernelConfig::UNCONFIGURED;
        set_io_uring_complete(&mut cfg, Some(IO_URING_COMPLETE));
        assert_eq!((cfg.iou_complete_req, cfg.iou_complete_res), (16, 32));
        // A kernel without the tracepoint (or an older layout without `req`): the program idles.
        set_io_uring_complete(&mut cfg, Some("format:\n\tfield:int res;\toffset:24;\n"));
        assert_eq!(
            (cfg.iou_complete_req, cfg.iou_complete_res),
            (OFFSET_NONE, 24)
        );
        set_io_uring_complete(&mut cfg, None);
        assert_eq!(cfg.iou_complete_req, OFFSET_NONE);
    }

    #[test]
    fn resolves_every_offset_on_this_kernel() {
        let btf = Btf::from_file("/sys/kernel/btf/vmlinux").expect("this machine has kernel BTF");
        let cfg = kernel_config(&btf, 1, 7).expect("all offsets");
        assert_eq!(cfg.host_mnt_ns, 7);
        assert_eq!(cfg.file_path_dentry, cfg.file_path_mnt + 8);
        let path_mnt = btf.member_offset("path", "mnt").unwrap();
        assert_eq!(
            cfg.fs_pwd_mnt,
            btf.member_offset("fs_struct", "pwd").unwrap() + path_mnt
        );
        assert_eq!(
            cfg.fs_root_mnt,
            btf.member_offset("fs_struct", "root").unwrap() + path_mnt
        );
        assert_ne!(cfg.task_fs, OFFSET_NONE);
        assert_eq!(cfg.schema_version, u32::from(SCHEMA_VERSION));
        assert_eq!(
            cfg.task_nsproxy,
            btf.member_offset("task_struct", "nsproxy").unwrap()
        );
        for ty in NsType::ALL {
            assert_ne!(cfg.ns_inum[ty as usize], OFFSET_NONE, "{ty:?}");
        }
        assert_eq!(cfg.nsproxy_ns[NsType::User as usize], OFFSET_NONE);
        // io_uring is built in here: its request members are found, inside io_kiocb.cmd.
        let cmd = btf.member_offset("io_kiocb", "cmd").unwrap();
        assert_eq!(cfg.iokiocb_file, 0);
        assert_eq!(
            cfg.iorw_pos,
            cmd + btf.member_offset("io_rw", "kiocb.ki_pos").unwrap()
        );
        assert_eq!(
            cfg.iomadvise_advice,
            cmd + btf.member_offset("io_madvise", "advice").unwrap()
        );
        for off in [
            cfg.iorw_len,
            cfg.iosplice_fd_in,
            cfg.iosplice_flags,
            cfg.iomadvise_addr,
            cfg.iomadvise_len,
        ] {
            assert!(off > cmd && off < cmd + 64, "{off} not inside io_kiocb.cmd");
        }
    }
}
