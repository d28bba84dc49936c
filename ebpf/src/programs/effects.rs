//! The effects of a kernel exploit, where the kernel commits them. An exploit from a container
//! may use any bug, but to leave the container it ends the same way: `commit_creds` with more
//! credentials (often `prepare_kernel_cred(0)` or `init_cred`), and `switch_task_namespaces`
//! into the host's (`init_nsproxy`). fentry on both (kernels with BPF trampolines) sends a
//! `TaskChanged` record whose header already holds what the task is being given, so the
//! post-condition rules judge it before the task runs another instruction as the new self.
//! Without fentry, the same rules judge the task at its next exec, fork or exit.
//!
//! Legitimate paths are left out in the kernel: credentials that do not grow (every exec
//! commits creds), and namespace switches inside setns or unshare (their syscall exits report
//! them with what was joined). What is left is rare (setuid-root execs, capset): its records
//! are budgeted per container like attempts, so a loop of setuid execs floods nobody.

use aya_ebpf::{macros::fentry, programs::FEntryContext};
use escapewatch_common::{
    abi::PROC_USER_INIT_INO,
    event::{NsType, TaskChangedEvent, task_change},
    kind::EventKind,
    programs::ProgramId,
};

use crate::{
    cfg,
    helpers::{
        budget,
        emit::{emit, run},
        pending,
        task::{KPtr, current, is_candidate, read_namespaces_via, read_or_zero},
    },
};

/// `commit_creds(struct cred *new)`: `new` replaces the current task's credentials.
#[fentry(function = "commit_creds")]
pub fn fentry_commit_creds(ctx: FEntryContext) -> i32 {
    run(ProgramId::FentryCommitCreds, || {
        if !is_candidate() {
            return Ok(());
        }
        const USER: usize = NsType::User as usize;
        let new: KPtr = ctx.arg(0);
        let task = current();
        let old: KPtr = read_or_zero(task, cfg!(task_real_cred));
        let (old_caps, new_caps): (u64, u64) = (
            read_or_zero(old, cfg!(cred_cap_effective)),
            read_or_zero(new, cfg!(cred_cap_effective)),
        );
        let (old_uid, new_uid): (u32, u32) = (
            read_or_zero(old, cfg!(cred_uid)),
            read_or_zero(new, cfg!(cred_uid)),
        );
        let user_ns = |cred: KPtr| -> u32 {
            let ns: KPtr = read_or_zero(cred, cfg!(cred_user_ns));
            read_or_zero(ns, cfg!(ns_inum[USER]))
        };
        let (old_userns, new_userns) = (user_ns(old), user_ns(new));
        // Grown within one user namespace (a new user namespace's full set is no growth:
        // unshare(CLONE_NEWUSER) gives it), or moved into the host's from another one.
        let grew = (old_userns == new_userns
            && (new_caps & !old_caps != 0 || (new_uid == 0 && old_uid != 0)))
            || (new_userns == PROC_USER_INIT_INO && old_userns != PROC_USER_INIT_INO);
        if !grew {
            return Ok(());
        }
        let Some(ring) = budget::attempt(EventKind::TaskChanged) else {
            return Ok(());
        };
        let new_gid: u32 = read_or_zero(new, cfg!(cred_gid));
        emit::<TaskChangedEvent>(
            ring,
            ProgramId::FentryCommitCreds,
            EventKind::TaskChanged,
            task,
            |ev| {
                ev.header.uid = new_uid;
                ev.header.gid = new_gid;
                ev.header.cap_effective = new_caps;
                ev.header.ns[USER] = new_userns;
                ev.change = task_change::CREDS;
                ev.reason = 0;
                ev.old_cap_effective = old_caps;
                ev.old_uid = old_uid;
                ev._pad2 = 0;
            },
        );
        Ok(())
    }) as i32
}

/// `switch_task_namespaces(struct task_struct *p, struct nsproxy *new)`: `p` gets `new`.
/// Only the current task's own switch (what an exploit does to itself) outside a setns or
/// unshare syscall; exits (`new` NULL) are no change worth a record.
#[fentry(function = "switch_task_namespaces")]
pub fn fentry_switch_task_namespaces(ctx: FEntryContext) -> i32 {
    run(ProgramId::FentrySwitchTaskNamespaces, || {
        let p: KPtr = ctx.arg(0);
        let new: KPtr = ctx.arg(1);
        let task = current();
        if p != task || new.is_null() || !is_candidate() {
            return Ok(());
        }
        let syscall = pending::kind();
        if syscall == Some(EventKind::Setns as u32) || syscall == Some(EventKind::Unshare as u32) {
            return Ok(());
        }
        let Some(ring) = budget::attempt(EventKind::TaskChanged) else {
            return Ok(());
        };
        emit::<TaskChangedEvent>(
            ring,
            ProgramId::FentrySwitchTaskNamespaces,
            EventKind::TaskChanged,
            task,
            |ev| {
                read_namespaces_via(task, new, &mut ev.header.ns);
                ev.change = task_change::NAMESPACES;
                ev.reason = 0;
                ev.old_cap_effective = 0;
                ev.old_uid = 0;
                ev._pad2 = 0;
            },
        );
        Ok(())
    }) as i32
}
