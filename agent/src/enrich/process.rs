//! The process table: every live process, what it runs, and where it comes from.
//!
//! A process's *lineage* decides whether it belongs to a container when its cgroup path does not
//! say so: a process started by a container runtime that execs a program inside another mount
//! namespace is a container's process, and so are its descendants; host processes stay host
//! processes even after nsenter/unshare (a host administrator entering a container is not an
//! escape). Runtime helpers — processes of runc, crun, containerd-shim, conmon… running in the
//! host's mount namespace — are marked so their own setns/unshare work is not taken for an escape.

use crate::model::{Container, Namespaces, Runtime};

use super::container::from_cgroup_path;

/// Binaries of container runtimes and their monitors (matched on the file name).
const RUNTIME_BINARIES: [&str; 10] = [
    "runc",
    "crun",
    "youki",
    "runsc",
    "containerd",
    "conmon",
    "dockerd",
    "podman",
    "crio",
    "cri-o",
];

/// `containerd-shim`, `containerd-shim-runc-v2`, … are matched by prefix.
const RUNTIME_PREFIXES: [&str; 1] = ["containerd-shim"];

/// A runtime binary by its file name. Only ever asked of a file exec'd in the host's mount
/// namespace, whose name the host's root filesystem gives: a container chooses the names in its
/// own image (and of any memfd), never those.
pub fn is_runtime_binary(path: &str) -> bool {
    let path = path.strip_suffix(" (deleted)").unwrap_or(path);
    let name = path.rsplit('/').next().unwrap_or(path);
    RUNTIME_BINARIES.contains(&name) || RUNTIME_PREFIXES.iter().any(|p| name.starts_with(p))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lineage {
    Host,
    RuntimeHelper,
    Container(Container),
}

/// What the table knows of one process.
#[derive(Debug, Clone)]
pub struct ProcEntry {
    pub start_time: u64,
    pub exe: String,
    /// (device, inode) of the executable, kept for runtime helpers: a helper renamed without a
    /// seen exec is still the runtime only while it runs the same file.
    pub exe_id: Option<(u64, u64)>,
    /// `exe` is a path in a container's file system, not the host's file at that path (see
    /// `model::Process::exe_foreign`).
    pub exe_foreign: bool,
    pub args: Vec<String>,
    pub cgroup_id: u64,
    pub cgroup: String,
    pub lineage: Lineage,
    /// Namespaces as of the last event.
    pub namespaces: Namespaces,
    pub comm: String,
    /// Kernel time of its exit; kept a little longer for late events of other buffers.
    pub exited_at: Option<u64>,
}

/// A process as /proc shows it (initial scan, or a process first seen mid-life).
#[derive(Debug, Clone)]
pub struct ProcSnapshot {
    pub pid: u32,
    pub start_time: u64,
    pub exe: String,
    /// (device, inode) of the executable.
    pub exe_id: Option<(u64, u64)>,
    pub args: Vec<String>,
    pub cgroup: String,
    pub namespaces: Namespaces,
}

/// The container of a cgroup path, or a container named by the path itself.
pub fn container_for_cgroup(cgroup: &str) -> Container {
    from_cgroup_path(cgroup).unwrap_or_else(|| Container {
        id: cgroup.to_owned(),
        runtime: Runtime::Unknown,
        pod_uid: None,
    })
}

/// Lineage of a process whose ancestry was not observed: cgroup layout first, then a runtime
/// binary in the host mount namespace, then namespaces that differ from the host's.
pub fn classify_unknown(cgroup: &str, exe: &str, ns: &Namespaces, host: &Namespaces) -> Lineage {
    if let Some(c) = from_cgroup_path(cgroup) {
        return Lineage::Container(c);
    }
    let in_host_mnt = host.mnt == 0 || ns.mnt == host.mnt;
    // A runtime binary counts only in the host's mount namespace: a container may ship a
    // binary called runc, or a file or memfd called /memfd:runc_cloned.
    if in_host_mnt && is_runtime_binary(exe) {
        return Lineage::RuntimeHelper;
    }
    let differs =
        (host.mnt != 0 && ns.mnt != 0 && ns.mnt != host.mnt) || (ns.pid != 0 && ns.pid != host.pid);
    if differs {
        Lineage::Container(container_for_cgroup(cgroup))
    } else {
        Lineage::Host
    }
}

/// Lineage of a process first seen mid-life because its fork and exec events were lost to a
/// full ring buffer (detector-overloaded says so). `fork_of_helper`: its parent is a runtime
/// helper and it runs the very file its parent runs (same device and inode): a fork of the
/// runtime that has not exec'd, such as runc's init stages. The names runc gives those stages
/// ("runc:[2:INIT]") decide nothing: any process can take them.
pub fn classify_unseen(
    cgroup: &str,
    exe: &str,
    fork_of_helper: bool,
    ns: &Namespaces,
    host: &Namespaces,
) -> Lineage {
    if fork_of_helper {
        return Lineage::RuntimeHelper;
    }
    classify_unknown(cgroup, exe, ns, host)
}

/// Lineage after the process exec'd `filename` in mount namespace `mnt`.
pub fn lineage_after_exec(
    old: &Lineage,
    filename: &str,
    mnt: u32,
    host: &Namespaces,
    cgroup: &str,
) -> Lineage {
    let in_host_mnt = host.mnt == 0 || mnt == host.mnt;
    match old {
        // The runtime's own re-execs (of its sealed memfd copy too), hooks and CNI plugins
        // run in the host mount namespace; the exec into a container's mount namespace starts
        // the container's workload, whatever the file is called.
        Lineage::RuntimeHelper if in_host_mnt => Lineage::RuntimeHelper,
        Lineage::RuntimeHelper => Lineage::Container(container_for_cgroup(cgroup)),
        Lineage::Host if in_host_mnt && is_runtime_binary(filename) => Lineage::RuntimeHelper,
        Lineage::Host => Lineage::Host,
        // A container cannot make itself a runtime by running a binary called runc.
        Lineage::Container(c) => Lineage::Container(c.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: Namespaces = Namespaces {
        mnt: 100,
        pid: 200,
        net: 300,
        uts: 1,
        ipc: 2,
        user: 3,
        cgroup: 4,
        time: 5,
    };

    fn ns(mnt: u32, pid: u32) -> Namespaces {
        Namespaces { mnt, pid, ..HOST }
    }

    #[test]
    fn runtime_binaries() {
        for p in [
            "/usr/sbin/runc",
            "/usr/bin/crun",
            "/usr/bin/containerd-shim-runc-v2",
            "/usr/bin/conmon",
            "/usr/sbin/runc (deleted)",
        ] {
            assert!(is_runtime_binary(p), "{p}");
        }
        for p in ["/bin/sh", "/usr/bin/nsenter", "/usr/bin/runcible", ""] {
            assert!(!is_runtime_binary(p), "{p}");
        }
    }

    #[test]
    fn unknown_processes_are_classified_by_cgroup_then_runtime_then_namespaces() {
        let id = "c".repeat(64);
        let docker = classify_unknown(&format!("/docker/{id}"), "/bin/sh", &HOST, &HOST);
        assert!(
            matches!(docker, Lineage::Container(c) if c.id == id && c.runtime == Runtime::Docker)
        );
        assert_eq!(
            classify_unknown("/", "/usr/sbin/runc", &HOST, &HOST),
            Lineage::RuntimeHelper
        );
        assert_eq!(
            classify_unknown("/", "/bin/sh", &HOST, &HOST),
            Lineage::Host
        );
        let other = classify_unknown("/mybox", "/bin/sh", &ns(101, 200), &HOST);
        assert!(
            matches!(other, Lineage::Container(c) if c.id == "/mybox" && c.runtime == Runtime::Unknown)
        );
        // A runc binary inside a container's mount namespace is not the runtime.
        assert!(matches!(
            classify_unknown("/mybox", "/usr/sbin/runc", &ns(101, 201), &HOST),
            Lineage::Container(_)
        ));
    }

    #[test]
    fn names_a_container_chooses_never_make_a_runtime_helper() {
        // A file (or memfd) called like runc's sealed copy, exec'd in the container: workload.
        let entry = lineage_after_exec(
            &Lineage::RuntimeHelper,
            "/memfd:runc_cloned:x/busybox",
            101,
            &HOST,
            "/ct1",
        );
        assert!(matches!(entry, Lineage::Container(_)), "{entry:?}");
        assert!(matches!(
            classify_unknown(
                "/ct1",
                "/memfd:runc_cloned:/proc/self/exe (deleted)",
                &ns(101, 201),
                &HOST
            ),
            Lineage::Container(_)
        ));
        // A process named like runc's init stage, seen first after lost events: by its name
        // alone it is nothing; only a fork of a helper running the same file is a helper.
        assert!(matches!(
            classify_unseen("/ct1", "/bin/sh", false, &ns(101, 201), &HOST),
            Lineage::Container(_)
        ));
        assert_eq!(
            classify_unseen("/ct1", "/bin/sh", true, &ns(101, 201), &HOST),
            Lineage::RuntimeHelper
        );
    }

    #[test]
    fn exec_transitions() {
        // The host runs runc: runtime helper.
        let runc = lineage_after_exec(&Lineage::Host, "/usr/sbin/runc", 100, &HOST, "/");
        assert_eq!(runc, Lineage::RuntimeHelper);
        // runc re-execs itself on the host: still a helper.
        assert_eq!(
            lineage_after_exec(&runc, "/proc/self/exe", 100, &HOST, "/ct1"),
            Lineage::RuntimeHelper
        );
        // runc init execs the entrypoint inside the container's mount namespace: container.
        let ct = lineage_after_exec(&runc, "/bin/sh", 101, &HOST, "/ct1");
        assert!(matches!(&ct, Lineage::Container(c) if c.id == "/ct1"));
        // Container processes stay container processes, whatever they run.
        assert_eq!(
            lineage_after_exec(&ct, "/usr/sbin/runc", 100, &HOST, "/ct1"),
            ct
        );
        // A host shell that unshared its mount namespace stays a host process.
        assert_eq!(
            lineage_after_exec(&Lineage::Host, "/bin/sh", 555, &HOST, "/"),
            Lineage::Host
        );
    }
}
