//! Raw kernel records → self-contained `model::Event`s: process table, container attribution,
//! namespace ownership, paths and wall-clock time.

mod anchors;
pub mod cgroup;
pub mod container;
mod creds;
mod drift;
pub use creds::FULL_CAPS;
pub use payload::dev as dev_name;
mod held;
pub mod host;
pub mod netapi;
mod owners;
pub(crate) mod payload;
pub mod probe;
pub mod process;
pub mod procfs_scan;
mod table;
pub mod workload;

use std::collections::HashMap;

use escapewatch_common::{
    abi,
    event::{
        EXEC_FLAG_ARGS_TRUNCATED, EXEC_FLAG_FILENAME_TRUNCATED, EXEC_FLAG_KERNEL_PARENT,
        EventHeader, NsType,
    },
    kind::EventKind,
    user::{RawEvent, until_nul},
};

use crate::model::{Event, Namespaces, NsSyscall, Payload, Process};
use host::{HostNamespaces, rfc3339_ns};
use process::{Lineage, ProcEntry, ProcSnapshot, classify_unknown};

/// How long (kernel ns) an exited process stays in the table for late events of other buffers.
const EXITED_GRACE_NS: u64 = 5_000_000_000;
/// Events between purges of exited processes.
const PURGE_EVERY: u64 = 4096;
/// What enrichment asks of the machine it runs on; tests give a fake one.
pub trait System {
    /// cgroup path of `pid`, whose kernel cgroup id is `cgroup_id`.
    fn cgroup_path(&mut self, cgroup_id: u64, pid: u32) -> String;
    /// The process as /proc shows it now.
    fn snapshot(&mut self, pid: u32) -> Option<ProcSnapshot>;
    /// The executable of a live process (`/proc/PID/exe`).
    fn exe(&mut self, pid: u32) -> Option<String>;
    /// Host paths of the root filesystem of the container `pid` lives in (the source of its
    /// `/` mount, an overlay's upper directory).
    fn container_roots(&mut self, pid: u32) -> Vec<String>;
    /// Mode and kernel-encoded device number of `path` inside the root of `pid`.
    fn device_at(&mut self, pid: u32, path: &str) -> Option<(u32, u32)>;
    /// (device, inode) of the file a live process runs.
    fn exe_id(&mut self, pid: u32) -> Option<(u64, u64)>;
    /// Whether live process `pid` runs the host's own file at `exe` (same device and inode:
    /// a binary bind-mounted from the host), not a file of its container's.
    fn runs_host_file(&mut self, pid: u32, exe: &str) -> bool;
    /// Real uid and capability bounding set (`CapBnd`) of a live process.
    fn proc_creds(&mut self, pid: u32) -> Option<(u32, u64)>;
}

/// The live machine: /proc and the cgroup2 hierarchy.
pub struct LiveSystem {
    pub proc_root: std::path::PathBuf,
    pub cgroups: cgroup::CgroupResolver,
    /// Lookups of container paths, off the event loop and bounded in time.
    pub probe: probe::Prober,
    /// Lookups of host paths a container names (its executable's), bounded the same way.
    pub host_probe: probe::Prober<bool>,
}

impl System for LiveSystem {
    fn cgroup_path(&mut self, cgroup_id: u64, pid: u32) -> String {
        self.cgroups.path(cgroup_id, pid)
    }
    fn snapshot(&mut self, pid: u32) -> Option<ProcSnapshot> {
        procfs_scan::snapshot(&self.proc_root, pid)
    }
    fn exe(&mut self, pid: u32) -> Option<String> {
        std::fs::read_link(self.proc_root.join(pid.to_string()).join("exe"))
            .ok()
            .map(|p| p.to_string_lossy().into_owned())
    }
    fn exe_id(&mut self, pid: u32) -> Option<(u64, u64)> {
        use std::os::unix::fs::MetadataExt;
        // /proc/PID/exe resolves to the file itself (a memfd too), not to a path string.
        let meta = std::fs::metadata(self.proc_root.join(pid.to_string()).join("exe")).ok()?;
        Some((meta.dev(), meta.ino()))
    }
    fn runs_host_file(&mut self, pid: u32, exe: &str) -> bool {
        if !exe.starts_with('/') {
            return false;
        }
        let link = self.proc_root.join(pid.to_string()).join("exe");
        self.host_probe.stat(link, exe) == Some(true)
    }
    fn device_at(&mut self, pid: u32, path: &str) -> Option<(u32, u32)> {
        // Not fs::metadata through /proc/PID/root: that follows the container's links (an
        // absolute one against the agent's root) and blocks on a FUSE or NFS path.
        let root = self.proc_root.join(pid.to_string()).join("root");
        let (mode, rdev) = self.probe.stat(root, path)?;
        Some((mode, abi::kernel_dev(libc::major(rdev), libc::minor(rdev))))
    }
    fn proc_creds(&mut self, pid: u32) -> Option<(u32, u64)> {
        procfs_scan::creds(&self.proc_root, pid)
    }
    fn container_roots(&mut self, pid: u32) -> Vec<String> {
        use procfs::FromRead as _;
        procfs::process::MountInfos::from_file(
            self.proc_root.join(pid.to_string()).join("mountinfo"),
        )
        .map(|mounts| root_sources(&mounts))
        .unwrap_or_default()
    }
}

/// From a container's mountinfo, where its `/` comes from on the host: the mount's root
/// within its source filesystem (a bind-mounted directory) and an overlay's upperdir.
pub fn root_sources(mounts: &procfs::process::MountInfos) -> Vec<String> {
    let mut out = Vec::new();
    for m in mounts
        .iter()
        .filter(|m| m.mount_point == std::path::Path::new("/"))
    {
        if m.root != "/" {
            out.push(m.root.clone());
        }
        if let Some(Some(dir)) = m.super_options.get("upperdir") {
            out.push(dir.clone());
        }
    }
    out
}

pub struct Enricher<S: System> {
    host: HostNamespaces,
    boot_unix_ns: i128,
    system: S,
    procs: HashMap<u32, ProcEntry>,
    /// (namespace type index, inode) → the container whose processes live in it.
    ns_owner: HashMap<(usize, u32), owners::Owned>,
    /// Counts learn_owner calls: the age of an entry in `ns_owner`.
    owner_clock: u64,
    /// Size of `ns_owner` that triggers the next eviction.
    owner_limit: usize,
    /// Host paths of containers' root filesystems, learned when a container is first seen.
    container_roots: Vec<(String, crate::model::Container)>,
    roots_learned: std::collections::HashSet<String>,
    /// Each container's namespaces when first seen (the post-condition of `foreign_held`).
    start_ns: held::StartNamespaces,
    /// Each container's bounding set and uid at start (the post-condition of `creds_beyond`).
    start_creds: creds::StartCreds,
    /// Each container's start: the earliest process start the agent saw in it.
    container_start: drift::ContainerStart,
    /// The kernel has lost lifecycle events at some point: exec events may be missing, so
    /// names that change without an exec are looked into (see `recheck_missed_exec`).
    lossy: bool,
    /// The node's addresses and runtime sockets (read on the host, refreshed by the daemon).
    net: netapi::NetFacts,
    /// Kernel-encoded `s_dev` of the host's root filesystem (PID 1's root), if readable.
    host_root_dev: Option<u32>,
    next_id: u64,
}

impl<S: System> Enricher<S> {
    pub fn new(host: HostNamespaces, boot_unix_ns: i128, system: S) -> Self {
        Enricher {
            host,
            boot_unix_ns,
            system,
            procs: HashMap::new(),
            ns_owner: HashMap::new(),
            owner_clock: 0,
            owner_limit: owners::NS_OWNER_LIMIT,
            container_roots: Vec::new(),
            roots_learned: std::collections::HashSet::new(),
            start_ns: held::StartNamespaces::default(),
            start_creds: creds::StartCreds::default(),
            container_start: drift::ContainerStart::default(),
            lossy: false,
            net: netapi::NetFacts::default(),
            host_root_dev: None,
            next_id: 1,
        }
    }

    /// The host's root filesystem (kernel-encoded `s_dev`), read once at start
    /// ([`host::root_dev`]): which exec'd files lie on it.
    pub fn with_host_root_dev(mut self, dev: Option<u32>) -> Self {
        self.host_root_dev = dev;
        self
    }

    /// The kernel reported lost events: from now on, a process renamed without a seen exec is
    /// judged again.
    pub fn note_loss(&mut self) {
        self.lossy = true;
    }

    /// The node's addresses and runtime sockets, as last read on the host.
    pub fn set_net_facts(&mut self, facts: netapi::NetFacts) {
        self.net = facts;
    }

    pub fn host(&self) -> &HostNamespaces {
        &self.host
    }

    pub fn processes_tracked(&self) -> usize {
        self.procs.len()
    }

    /// Seed the table with the processes that existed before the agent started.
    pub fn seed(&mut self, snapshots: Vec<ProcSnapshot>) {
        for s in snapshots {
            let entry = self.entry_from_snapshot(&s, 0);
            if let Lineage::Container(c) = &entry.lineage {
                self.learn_owner(c, &s.namespaces);
                // The oldest pid of a container (scanned in pid order) is its first workload.
                self.seed_start_creds(c, s.pid, &s.namespaces);
                self.container_start.note(&c.id, s.start_time);
            }
            self.procs.insert(s.pid, entry);
        }
    }

    fn entry_from_snapshot(&self, s: &ProcSnapshot, cgroup_id: u64) -> ProcEntry {
        ProcEntry {
            start_time: s.start_time,
            exe: s.exe.clone(),
            exe_id: s.exe_id,
            // First seen mid-life in another mount namespace: not proven the host's file.
            exe_foreign: s.namespaces.mnt != self.host.namespaces.mnt,
            args: s.args.clone(),
            cgroup_id,
            lineage: classify_unknown(&s.cgroup, &s.exe, &s.namespaces, &self.host.namespaces),
            cgroup: s.cgroup.clone(),
            namespaces: s.namespaces,
            comm: String::new(),
            exited_at: None,
        }
    }

    /// Enrich one kernel record.
    pub fn enrich(&mut self, raw: &RawEvent) -> Event {
        let h = raw.header();
        let ns = Namespaces::from_wire(&h.ns);
        let data = match raw {
            RawEvent::Fork(f) => {
                self.on_fork(h, f.creator_tgid, &ns);
                Payload::ProcessFork {
                    creator_pid: f.creator_tgid,
                }
            }
            RawEvent::Exec(e) => {
                let filename = String::from_utf8_lossy(until_nul(&e.filename)).into_owned();
                let args_len = (e.args_len as usize).min(e.args.len());
                let args = split_args(&e.args[..args_len]);
                self.on_exec(h, &ns, &filename, args);
                let usermode_helper = e.flags & EXEC_FLAG_KERNEL_PARENT != 0;
                Payload::ProcessExec {
                    truncated: e.flags & (EXEC_FLAG_FILENAME_TRUNCATED | EXEC_FLAG_ARGS_TRUNCATED)
                        != 0,
                    usermode_helper,
                    binary_container: if usermode_helper {
                        self.binary_container(&filename)
                    } else {
                        None
                    },
                    outside_mount: self.outside_mount(&ns, e.cwd_mnt_ns, e.root_mnt_ns),
                    filename,
                    image: self.exec_image(e, &ns),
                }
            }
            RawEvent::Exit(e) => {
                let entry = self.entry(h, &ns);
                entry.exited_at = Some(h.ktime_ns);
                Payload::ProcessExit {
                    exit_code: e.exit_code,
                }
            }
            RawEvent::Namespace(kind, e) => {
                let before = Namespaces::from_wire(&e.ns_before);
                // A process first seen here (its fork and exec lost to a full lifecycle
                // buffer, and gone from /proc by now) is judged by where it was before the call:
                // after a setns into the host it would look like a host process.
                self.entry(h, &before);
                let syscall = match kind {
                    EventKind::Setns => NsSyscall::Setns,
                    EventKind::Unshare => NsSyscall::Unshare,
                    _ => NsSyscall::Clone,
                };
                if syscall == NsSyscall::Unshare && e.ret == 0 {
                    self.forget_owners(&before, &ns);
                }
                let joined = if syscall == NsSyscall::Setns {
                    self.joined(&before, &ns)
                } else {
                    Vec::new()
                };
                Payload::Namespace {
                    syscall,
                    ret: e.ret,
                    flags: e.flags,
                    flag_types: flag_types(e.flags),
                    fd: (syscall == NsSyscall::Setns).then_some(e.fd),
                    before,
                    joined,
                }
            }
            RawEvent::Mount(call, e) => {
                self.entry(h, &ns);
                self.mount(*call, e)
            }
            RawEvent::FileOpen(e) => {
                self.entry(h, &ns);
                self.file_open(e)
            }
            RawEvent::Sysctl(e) => {
                self.entry(h, &ns);
                self.sysctl(e)
            }
            RawEvent::Madvise(e) => {
                self.entry(h, &ns);
                payload::madvise(e)
            }
            RawEvent::MemWrite(e) => {
                self.entry(h, &ns);
                self.mem_write(e)
            }
            RawEvent::Syscall(name, e) => {
                self.entry(h, &ns);
                self.syscall(*name, e)
            }
            RawEvent::PipeWrite(e) => {
                self.entry(h, &ns);
                payload::pipe_write(e)
            }
            RawEvent::Connect(e) => {
                self.entry(h, &ns);
                netapi::unix_connect(e, &self.net, self.host.namespaces.net)
            }
            RawEvent::NetConnect(e) => {
                self.entry(h, &ns);
                netapi::net_connect(e, &self.net, self.host.namespaces.net)
            }
            RawEvent::CowFault(e) => {
                self.entry(h, &ns);
                payload::cow_fault(e)
            }
            RawEvent::TaskChanged(change, e) => {
                self.entry(h, &ns);
                payload::task_changed(*change, e)
            }
            RawEvent::ModuleRequest(e) => {
                self.entry(h, &ns);
                Payload::ModuleRequest {
                    module: payload::text(&e.name),
                    wait: e.wait != 0,
                }
            }
        };
        let mut event = self.build(h, ns, data);
        self.date_container_start(&mut event);
        self.maintain(h.ktime_ns);
        event
    }

    fn build(&mut self, h: &EventHeader, ns: Namespaces, data: Payload) -> Event {
        let entry = &self.procs[&h.tgid];
        let runtime_helper = entry.lineage == Lineage::RuntimeHelper;
        // The cgroup layout, when it names a container, wins over lineage.
        let container =
            container::from_cgroup_path(&entry.cgroup).or_else(|| match &entry.lineage {
                Lineage::Container(c) => Some(c.clone()),
                _ => None,
            });
        let process = Process {
            pid: h.tgid,
            tid: h.tid,
            ppid: h.ppid,
            start_time: h.start_time_ns,
            comm: String::from_utf8_lossy(until_nul(&h.comm)).into_owned(),
            exe: entry.exe.clone(),
            exe_foreign: entry.exe_foreign,
            args: entry.args.clone(),
            uid: h.uid,
            gid: h.gid,
            cap_effective: Some(h.cap_effective),
            cgroup_id: h.cgroup_id,
            cgroup: entry.cgroup.clone(),
            namespaces: ns,
            runtime_helper,
            foreign_namespaces: Vec::new(),
            creds_beyond_start: None,
        };
        let id = self.next_id;
        self.next_id += 1;
        if let Some(entry) = self.procs.get_mut(&h.tgid) {
            entry.namespaces = ns;
        }
        let mut process = process;
        if let Some(c) = &container
            && !runtime_helper
        {
            self.container_start.note(&c.id, h.start_time_ns);
            process.foreign_namespaces = self.foreign_held(c, &ns);
            process.creds_beyond_start = self.creds_beyond(c, h, &ns);
            self.learn_owner(c, &ns);
            if self.roots_learned.insert(c.id.clone()) {
                for root in self.system.container_roots(h.tgid) {
                    self.container_roots.push((root, c.clone()));
                }
            }
        }
        if let Some(entry) = self.procs.get_mut(&h.tgid) {
            entry.comm = process.comm.clone();
        }
        Event {
            id,
            time: rfc3339_ns(self.boot_unix_ns + i128::from(h.ktime_ns)),
            ktime_ns: h.ktime_ns,
            process,
            container,
            data,
            hook: hook_label(h.flags),
            workload: None,
        }
    }

    /// An event the agent itself reports (kernel losses): the next id, `process` as given.
    /// The container of the processes in cgroup `cgroup_id` (a kernel budget key): that of a
    /// tracked process there, else what the cgroup's path names; None for the host or when
    /// nothing is known.
    pub fn container_of_cgroup(&mut self, cgroup_id: u64) -> Option<crate::model::Container> {
        // The runtime's own helpers there (runc init) belong to no container: any process
        // that does decides, the smallest pid first so the choice is stable.
        let mut pids: Vec<u32> = self
            .procs
            .iter()
            .filter(|(_, e)| e.cgroup_id == cgroup_id)
            .map(|(pid, _)| *pid)
            .collect();
        pids.sort_unstable();
        if let Some(c) = pids.into_iter().find_map(|pid| self.container_of(pid)) {
            return Some(c);
        }
        container::from_cgroup_path(&self.system.cgroup_path(cgroup_id, 0))
    }

    pub fn synthetic(&mut self, ktime_ns: u64, process: Process, data: Payload) -> Event {
        let id = self.next_id;
        self.next_id += 1;
        Event {
            id,
            time: rfc3339_ns(self.boot_unix_ns + i128::from(ktime_ns)),
            ktime_ns,
            process,
            container: None,
            data,
            hook: String::new(),
            workload: None,
        }
    }
}

/// NUL-separated argv bytes → strings.
fn split_args(bytes: &[u8]) -> Vec<String> {
    bytes
        .split(|&b| b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

/// Names of the namespace types in CLONE_NEW* flags.
fn flag_types(flags: u64) -> Vec<NsType> {
    NsType::ALL
        .into_iter()
        .filter(|t| flags & t.clone_flag() != 0)
        .collect()
}

#[cfg(test)]
mod tests;

/// `hook-type/program` of the program recorded in header `flags` (empty when not recorded).
fn hook_label(flags: u32) -> String {
    escapewatch_common::event::header_program(flags)
        .and_then(escapewatch_common::programs::ProgramSpec::by_id)
        .map(|p| {
            let (hook, name) = p.label();
            format!("{hook}/{name}")
        })
        .unwrap_or_default()
}
