//! The process table: entries made from the kernel's records (or /proc when a record was
//! lost), their lineage across fork and exec, and their purge after exit.

use escapewatch_common::{event::EventHeader, user::until_nul};

use super::{
    EXITED_GRACE_NS, Enricher, PURGE_EVERY, System,
    process::{Lineage, ProcEntry, classify_unseen, lineage_after_exec},
};
use crate::model::Namespaces;

impl<S: System> Enricher<S> {
    /// The entry of the event's process, created from /proc (or the header alone) if unknown,
    /// with its cgroup refreshed when the kernel reports a different one.
    pub(super) fn entry(&mut self, h: &EventHeader, ns: &Namespaces) -> &mut ProcEntry {
        let pid = h.tgid;
        let known = self
            .procs
            .get(&pid)
            .is_some_and(|e| e.start_time == 0 || same_start(e.start_time, h.start_time_ns));
        if !known {
            let snap = self
                .system
                .snapshot(pid)
                .filter(|s| same_start(s.start_time, h.start_time_ns));
            let cgroup = self.system.cgroup_path(h.cgroup_id, pid);
            let (exe, args) = snap.map(|s| (s.exe, s.args)).unwrap_or_default();
            let fork_of_helper = self.fork_of_helper(pid, h.ppid);
            let lineage = classify_unseen(&cgroup, &exe, fork_of_helper, ns, &self.host.namespaces);
            let exe_id = fork_of_helper
                .then(|| self.procs.get(&h.ppid).and_then(|p| p.exe_id))
                .flatten();
            self.procs.insert(
                pid,
                ProcEntry {
                    start_time: h.start_time_ns,
                    exe,
                    exe_id,
                    exe_foreign: ns.mnt != self.host.namespaces.mnt,
                    args,
                    cgroup_id: h.cgroup_id,
                    cgroup,
                    lineage,
                    namespaces: *ns,
                    comm: String::new(),
                    exited_at: None,
                },
            );
        }
        let cgroup_changed = self.procs[&pid].cgroup_id != h.cgroup_id;
        if cgroup_changed {
            let path = self.system.cgroup_path(h.cgroup_id, pid);
            let entry = self.procs.get_mut(&pid).expect("inserted above");
            entry.cgroup_id = h.cgroup_id;
            entry.cgroup = path;
        }
        self.recheck_missed_exec(h, ns);
        self.procs.get_mut(&pid).expect("inserted above")
    }

    /// A process whose name changed although no exec of it was seen (the exec event was lost
    /// to a full ring buffer) may have become something else: a host process may now be runc
    /// or a container's workload, a runtime helper may now be the workload. Judge it as the
    /// lost exec would have been judged, by what /proc says it runs (if it still runs) and
    /// where it is (`ns`: before the event's own syscall). runc renames itself
    /// ("runc:[1:CHILD]", "runc:[2:INIT]") without exec'ing: a helper still running the same
    /// file (device and inode, not its name) stays a helper. Container lineage is never given
    /// up.
    fn recheck_missed_exec(&mut self, h: &EventHeader, ns: &Namespaces) {
        let comm = String::from_utf8_lossy(until_nul(&h.comm)).into_owned();
        let pid = h.tgid;
        let entry = &self.procs[&pid];
        // Without loss every exec is seen. An exec leaves only the leader thread, so other
        // threads' names (which differ by design) say nothing.
        if !self.lossy || h.tid != h.tgid || entry.comm.is_empty() || entry.comm == comm {
            return;
        }
        let old = entry.lineage.clone();
        if matches!(old, Lineage::Container(_)) {
            return;
        }
        let recorded = entry.exe_id;
        if old == Lineage::RuntimeHelper
            && recorded.is_some()
            && self.system.exe_id(pid) == recorded
        {
            return;
        }
        let exe = self.system.exe(pid).unwrap_or_default();
        let host = self.host.namespaces;
        let entry = self.procs.get_mut(&pid).expect("checked above");
        entry.lineage = match old {
            Lineage::RuntimeHelper => lineage_after_exec(&old, &exe, ns.mnt, &host, &entry.cgroup),
            _ => classify_unseen(&entry.cgroup, &exe, false, ns, &host),
        };
        if entry.lineage != old && !exe.is_empty() {
            entry.exe = exe;
        }
    }

    pub(super) fn on_fork(&mut self, child: &EventHeader, creator: u32, ns: &Namespaces) {
        let parent = self.procs.get(&creator).cloned();
        if let Some(p) = &parent {
            // clone(CLONE_NEW*) made fresh namespaces; their inode numbers may be reused ones.
            self.forget_owners(&p.namespaces, ns);
        }
        // A child starts in its creator's cgroup (CLONE_INTO_CGROUP aside, which changes the
        // id): no /proc read per fork. Where cgroup2 says nothing (every process in its root,
        // a cgroup v1 host) the path of /proc/PID/cgroup is read again at exec instead, after a
        // runtime moved its init into the container's cgroups.
        let cgroup = match &parent {
            Some(p) if p.cgroup_id == child.cgroup_id => p.cgroup.clone(),
            _ => self.system.cgroup_path(child.cgroup_id, child.tgid),
        };
        let entry = match parent {
            Some(p) => ProcEntry {
                start_time: child.start_time_ns,
                exe: p.exe,
                exe_id: p.exe_id,
                exe_foreign: p.exe_foreign,
                args: p.args,
                cgroup_id: child.cgroup_id,
                cgroup,
                lineage: p.lineage,
                namespaces: *ns,
                comm: p.comm,
                exited_at: None,
            },
            None => {
                let exe = self
                    .system
                    .snapshot(child.tgid)
                    .map(|s| s.exe)
                    .unwrap_or_default();
                ProcEntry {
                    start_time: child.start_time_ns,
                    lineage: classify_unseen(&cgroup, &exe, false, ns, &self.host.namespaces),
                    exe,
                    exe_id: None,
                    exe_foreign: ns.mnt != self.host.namespaces.mnt,
                    args: Vec::new(),
                    cgroup_id: child.cgroup_id,
                    cgroup,
                    namespaces: *ns,
                    comm: String::new(),
                    exited_at: None,
                }
            }
        };
        self.procs.insert(child.tgid, entry);
    }

    pub(super) fn on_exec(
        &mut self,
        h: &EventHeader,
        ns: &Namespaces,
        filename: &str,
        args: Vec<String>,
    ) {
        let host = self.host.namespaces;
        // fexecve, busybox applets and runc's re-exec pass /proc/self/exe or /dev/fd/N: what
        // runs is what /proc/PID/exe names.
        let exe = if is_fd_path(filename) {
            // An unreachable memfd (runc's cloned binary) reads as "/": keep the name then.
            self.system
                .exe(h.tgid)
                .filter(|e| e.len() > 1)
                .or_else(|| {
                    // Gone already (a short-lived applet): re-exec'ing /proc/self/exe runs the image
                    // that was running, which the table knows (a fork inherits it).
                    (filename == "/proc/self/exe")
                        .then(|| self.procs.get(&h.tgid).map(|e| e.exe.clone()))
                        .flatten()
                        .filter(|e| !e.is_empty() && !is_fd_path(e))
                })
                .unwrap_or_else(|| filename.to_owned())
        } else {
            filename.to_owned()
        };
        let known = self.procs.contains_key(&h.tgid);
        let cgroup = known.then(|| self.system.cgroup_path(h.cgroup_id, h.tgid));
        // A path resolved in another mount namespace names a file of the container's choosing
        // unless it is the host's file itself.
        let exe_foreign = ns.mnt != host.mnt && !self.system.runs_host_file(h.tgid, &exe);
        let entry = self.entry(h, ns);
        if let Some(cgroup) = cgroup {
            entry.cgroup = cgroup;
        }
        entry.lineage = lineage_after_exec(&entry.lineage, filename, ns.mnt, &host, &entry.cgroup);
        entry.exe = exe;
        entry.exe_foreign = exe_foreign;
        entry.args = args;
        let helper = entry.lineage == Lineage::RuntimeHelper;
        let exe_id = if helper {
            self.system.exe_id(h.tgid)
        } else {
            None
        };
        if let Some(entry) = self.procs.get_mut(&h.tgid) {
            entry.exe_id = exe_id;
        }
    }

    /// A process first seen mid-life whose parent is a runtime helper running the same file.
    fn fork_of_helper(&mut self, pid: u32, ppid: u32) -> bool {
        let Some(parent) = self
            .procs
            .get(&ppid)
            .filter(|p| p.lineage == Lineage::RuntimeHelper)
            .and_then(|p| p.exe_id)
        else {
            return false;
        };
        self.system.exe_id(pid) == Some(parent)
    }

    /// Drop processes that exited more than the grace period ago.
    pub(super) fn maintain(&mut self, now: u64) {
        if !self.next_id.is_multiple_of(PURGE_EVERY) {
            return;
        }
        self.procs.retain(|_, e| {
            e.exited_at
                .is_none_or(|t| now.saturating_sub(t) < EXITED_GRACE_NS)
        });
    }
}

/// A path that names an open file rather than a program.
fn is_fd_path(path: &str) -> bool {
    path.starts_with("/proc/self/")
        || path.starts_with("/dev/fd/")
        || path.starts_with("/proc/thread-self/")
}

/// Start times from the kernel (ns) and from /proc (tick resolution) denote the same process.
fn same_start(a: u64, b: u64) -> bool {
    a.abs_diff(b) < 20_000_000
}
