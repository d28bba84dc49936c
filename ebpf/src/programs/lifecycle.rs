//! Process lifecycle: every process, its parent, its image, its namespaces and its end. The
//! agent's process table is built from these. Raw tracepoints: their arguments are the
//! TP_PROTO, stable across kernels, and the task is read at BTF-resolved offsets.

use aya_ebpf::{
    helpers::{bpf_probe_read_kernel_str_bytes, generated::bpf_probe_read_user},
    macros::raw_tracepoint,
    programs::RawTracePointContext,
};
use escapewatch_common::{
    ARGS_LEN, PATH_LEN,
    abi::PF_KTHREAD,
    event::{
        EXEC_FLAG_ARGS_TRUNCATED, EXEC_FLAG_EXE_WHOLE_FS, EXEC_FLAG_FILENAME_TRUNCATED,
        EXEC_FLAG_KERNEL_PARENT, ExecEvent, ExitEvent, ForkEvent,
    },
    kind::EventKind,
    programs::ProgramId,
};

use crate::{
    cfg,
    helpers::{
        emit::{emit, run},
        files::vfsmount_mnt_ns,
        task::{KPtr, read, read_or_zero, read_ptr},
    },
    maps::EVENTS_LIFECYCLE,
};

/// `trace_sched_process_exec(struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)`,
/// raw tracepoint since 4.17 (tracepoint since 3.4). Fires after the new image is in place.
#[raw_tracepoint(tracepoint = "sched_process_exec")]
pub fn sched_process_exec(ctx: RawTracePointContext) -> u32 {
    run(ProgramId::SchedProcessExec, || {
        let task: KPtr = ctx.arg(0);
        let bprm: KPtr = ctx.arg(2);
        emit::<ExecEvent>(
            &EVENTS_LIFECYCLE,
            ProgramId::SchedProcessExec,
            EventKind::ProcessExec,
            task,
            |ev| {
                ev.flags = 0;
                ev.filename[0] = 0;
                if let Ok(name) = read_ptr(bprm, cfg!(binprm_filename)) {
                    // SAFETY: probe read into a fixed buffer; the helper bounds the length.
                    match unsafe { bpf_probe_read_kernel_str_bytes(name, &mut ev.filename) } {
                        Ok(s) if s.len() + 1 >= PATH_LEN => {
                            ev.flags |= EXEC_FLAG_FILENAME_TRUNCATED;
                        }
                        Ok(_) => {}
                        Err(_) => ev.filename[0] = 0,
                    }
                }
                ev.args_len = read_args(task, &mut ev.args, &mut ev.flags);
                // Usermode helpers (core_pattern pipes, release_agent, modprobe) are started by
                // the kernel: their parent is a kernel thread (kthreadd or a kworker).
                let parent_flags = read_ptr(task, cfg!(task_real_parent))
                    .and_then(|p| read::<u32>(p, cfg!(task_flags)))
                    .unwrap_or(0);
                if parent_flags & PF_KTHREAD != 0 {
                    ev.flags |= EXEC_FLAG_KERNEL_PARENT;
                }
                // Where the new image starts from: a cwd or root in another mount namespace's
                // mount is a directory kept from outside (CVE-2024-21626's leaked fd).
                let fs = read_ptr(task, cfg!(task_fs));
                ev.cwd_mnt_ns = fs
                    .and_then(|fs| read_ptr(fs, cfg!(fs_pwd_mnt)))
                    .map_or(0, vfsmount_mnt_ns);
                let root_mnt = fs.and_then(|fs| read_ptr(fs, cfg!(fs_root_mnt)));
                ev.root_mnt_ns = root_mnt.map_or(0, vfsmount_mnt_ns);
                ev.root_dev = root_mnt
                    .and_then(|m| read_ptr(m, cfg!(vfsmount_mnt_sb)))
                    .map_or(0, |sb| read_or_zero(sb, cfg!(sb_s_dev)));
                exe_facts(bprm, ev);
            },
        );
        Ok(())
    })
}

/// The file the exec runs (`bprm->file`): the facts the drift rules judge, all kernel-set.
#[inline(always)]
fn exe_facts(bprm: KPtr, ev: &mut ExecEvent) {
    ev.exe_ino = 0;
    ev.exe_ctime_sec = 0;
    ev.exe_ctime_nsec = 0;
    ev.exe_nlink = 0;
    ev.exe_dev = 0;
    ev.exe_magic = 0;
    ev.exe_mnt_ns = 0;
    let Ok(file) = read_ptr(bprm, cfg!(binprm_file)) else {
        return;
    };
    // The mount it was reached through: whose namespace (a host file through /proc/PID/root
    // lies in the host's), and whether it shows a whole filesystem or a bind-mounted subtree.
    if let Ok(mnt) = read_ptr(file, cfg!(file_path_mnt)) {
        ev.exe_mnt_ns = vfsmount_mnt_ns(mnt);
        let root = read_ptr(mnt, cfg!(vfsmount_mnt_root));
        let sb_root =
            read_ptr(mnt, cfg!(vfsmount_mnt_sb)).and_then(|sb| read_ptr(sb, cfg!(sb_s_root)));
        if let (Ok(root), Ok(sb_root)) = (root, sb_root)
            && root == sb_root
        {
            ev.flags |= EXEC_FLAG_EXE_WHOLE_FS;
        }
    }
    let Ok(inode) = read_ptr(file, cfg!(file_f_inode)) else {
        return;
    };
    ev.exe_ino = read_or_zero(inode, cfg!(inode_i_ino));
    ev.exe_ctime_sec = read_or_zero(inode, cfg!(inode_ctime_sec));
    // A `long tv_nsec` before 6.11: its low half on little-endian, below 1e9.
    ev.exe_ctime_nsec = read_or_zero(inode, cfg!(inode_ctime_nsec));
    // Unreadable reads as "linked", never as the fileless 0.
    ev.exe_nlink = read(inode, cfg!(inode_i_nlink)).unwrap_or(u32::MAX);
    if let Ok(sb) = read_ptr(inode, cfg!(inode_i_sb)) {
        ev.exe_dev = read_or_zero(sb, cfg!(sb_s_dev));
        ev.exe_magic = read_or_zero::<u64>(sb, cfg!(sb_s_magic)) as u32;
    }
}

/// Copy `mm->arg_start..arg_end` of `task` (the new image's argv, NUL-separated).
#[inline(always)]
fn read_args(task: KPtr, out: &mut [u8; ARGS_LEN], flags: &mut u32) -> u32 {
    let Ok(mm) = read_ptr(task, cfg!(task_mm)) else {
        return 0;
    };
    let (Ok(start), Ok(end)) = (
        read::<u64>(mm, cfg!(mm_arg_start)),
        read::<u64>(mm, cfg!(mm_arg_end)),
    ) else {
        return 0;
    };
    let mut len = end.saturating_sub(start);
    // One byte short of the buffer so the mask below is a no-op the verifier can follow.
    if len > (ARGS_LEN - 1) as u64 {
        len = (ARGS_LEN - 1) as u64;
        *flags |= EXEC_FLAG_ARGS_TRUNCATED;
    }
    let len = (len as u32) & (ARGS_LEN as u32 - 1);
    // SAFETY: `len` < ARGS_LEN bytes into a buffer of ARGS_LEN; the helper validates `start`.
    let rc = unsafe { bpf_probe_read_user(out.as_mut_ptr().cast(), len, start as *const _) };
    if rc == 0 { len } else { 0 }
}

/// `trace_sched_process_fork(struct task_struct *parent, struct task_struct *child)`, raw
/// tracepoint since 4.17. Fires in the parent once the child is fully set up; threads skipped.
#[raw_tracepoint(tracepoint = "sched_process_fork")]
pub fn sched_process_fork(ctx: RawTracePointContext) -> u32 {
    run(ProgramId::SchedProcessFork, || {
        let parent: KPtr = ctx.arg(0);
        let child: KPtr = ctx.arg(1);
        let pid: u32 = read(child, cfg!(task_pid))?;
        let tgid: u32 = read(child, cfg!(task_tgid))?;
        if pid != tgid {
            return Ok(());
        }
        let creator_tgid: u32 = read(parent, cfg!(task_tgid))?;
        emit::<ForkEvent>(
            &EVENTS_LIFECYCLE,
            ProgramId::SchedProcessFork,
            EventKind::ProcessFork,
            child,
            |ev| {
                ev.creator_tgid = creator_tgid;
                ev._pad = 0;
            },
        );
        Ok(())
    })
}

/// `trace_sched_process_exit(struct task_struct *p, ...)` (a `bool group_dead` was added in
/// 6.16; only the first argument is used), raw tracepoint since 4.17. Only leader threads.
#[raw_tracepoint(tracepoint = "sched_process_exit")]
pub fn sched_process_exit(ctx: RawTracePointContext) -> u32 {
    run(ProgramId::SchedProcessExit, || {
        let task: KPtr = ctx.arg(0);
        let pid: u32 = read(task, cfg!(task_pid))?;
        let tgid: u32 = read(task, cfg!(task_tgid))?;
        if pid != tgid {
            return Ok(());
        }
        let exit_code: i32 = read_or_zero(task, cfg!(task_exit_code));
        emit::<ExitEvent>(
            &EVENTS_LIFECYCLE,
            ProgramId::SchedProcessExit,
            EventKind::ProcessExit,
            task,
            |ev| {
                ev.exit_code = exit_code;
                ev._pad = 0;
            },
        );
        Ok(())
    })
}
