//! The enriched, owned event: what the event log stores and what the detection engine reads.
//!
//! Everything a rule needs is in here, so a recorded log replays on any machine: the container
//! a process belongs to, whether it is part of a container runtime, and who owns every namespace
//! a syscall touched. Enrichment states facts; `detect` makes the judgement.

pub mod bits;
pub mod posture;

pub use escapewatch_common::{
    calls::{MountCall, TaskChange, WatchedSyscall},
    event::NsType,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Version of the event-log format (the JSON shape below). Bump on incompatible changes.
pub const LOG_SCHEMA_VERSION: u32 = 1;

/// First line of every event log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogHeader {
    /// Always "escapewatch-events": tells a header line from an event line.
    pub format: String,
    pub schema_version: u32,
    pub agent_version: String,
    pub hostname: String,
    /// Wall-clock time of boot, RFC 3339 (event times are boot time + kernel timestamp).
    pub boot_time: String,
    /// The host's namespaces and where they were learned from.
    pub host_namespaces: Namespaces,
    pub host_namespaces_source: String,
    /// Stable hash of the rule catalogue the agent ran (ids, severities, texts): replay warns
    /// when today's rules differ. Empty in logs written before it existed.
    #[serde(default)]
    pub rule_set_hash: String,
    /// 0 in the first segment an agent start writes; n in the n-th segment size rotation
    /// continued it. Replay keeps one engine across continuations, as the live agent did.
    #[serde(default)]
    pub segment: u64,
    /// The node the agent ran on, as alerts name it: the config's `node.name`, else
    /// `NODE_NAME` (the Kubernetes downward API), else the hostname. Empty in logs written
    /// before it existed: replay then names the node by `hostname`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub node_name: String,
    /// The config's `node.cluster`; empty when not configured.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cluster: String,
    /// The kernel's boot id (`/proc/sys/kernel/random/boot_id`); part of every alert id.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub boot_id: String,
    /// Identical alerts within this many ms were coalesced (config
    /// `alerts.coalesce_window_ms`); 0 (absent): none were. Replay coalesces the same way.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub coalesce_window_ms: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

pub const LOG_FORMAT: &str = "escapewatch-events";

/// Namespace inode numbers; 0 = unknown.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Namespaces {
    pub mnt: u32,
    pub pid: u32,
    pub net: u32,
    pub uts: u32,
    pub ipc: u32,
    pub user: u32,
    pub cgroup: u32,
    pub time: u32,
}

/// Container runtimes recognised from cgroup paths.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Runtime {
    Docker,
    Containerd,
    CriO,
    Podman,
    /// A kubepods cgroup path that names no runtime.
    Kubernetes,
    /// Recognised as a container by its namespaces or lineage only.
    Unknown,
}

impl Runtime {
    pub fn as_str(self) -> &'static str {
        match self {
            Runtime::Docker => "docker",
            Runtime::Containerd => "containerd",
            Runtime::CriO => "cri-o",
            Runtime::Podman => "podman",
            Runtime::Kubernetes => "kubernetes",
            Runtime::Unknown => "unknown",
        }
    }
}

/// A container: the runtime and its id (64 hex characters, or the cgroup path when the path
/// follows no known runtime layout).
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(deny_unknown_fields)]
pub struct Container {
    pub id: String,
    pub runtime: Runtime,
    /// Kubernetes pod uid when the cgroup path names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_uid: Option<String>,
}

/// The process an event is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Process {
    pub pid: u32,
    pub tid: u32,
    pub ppid: u32,
    /// Boot-time ns of the process start; (pid, start_time) identifies a process.
    pub start_time: u64,
    pub comm: String,
    /// Executable as last exec'd (path as seen in the process's mount namespace); empty if the
    /// process was never seen exec'ing and /proc could not tell.
    pub exe: String,
    /// `exe` is a path in a container's own file system (the process runs in another mount
    /// namespace and the file is not the host's file at that path), so a container chose
    /// what it names: an allowlist's `exe` does not match it. Absent (false) for host
    /// processes, for host files bind-mounted into a container and in logs older than it.
    #[serde(default, skip_serializing_if = "is_false")]
    pub exe_foreign: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    pub uid: u32,
    pub gid: u32,
    /// Effective capabilities (written as a hex mask); `None` (written `""`) for the agent's
    /// own reports.
    #[schemars(with = "String")]
    #[serde(with = "bits::hex_or_empty")]
    pub cap_effective: Option<u64>,
    pub cgroup_id: u64,
    /// cgroup v2 path, when known.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cgroup: String,
    pub namespaces: Namespaces,
    /// Part of a container runtime (runc, crun, containerd-shim, conmon, ...) started on the
    /// host, doing the runtime's own setns/unshare work.
    #[serde(default, skip_serializing_if = "is_false")]
    pub runtime_helper: bool,
    /// Namespaces it holds that belong to the host or to another container and that its
    /// container did not have when the agent first saw it: the effect of an escape, whatever
    /// path led there. `previous` is the container's own namespace of that type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub foreign_namespaces: Vec<JoinedNamespace>,
    /// Capabilities it holds beyond its container's bounding set at start (a kernel exploit's
    /// `commit_creds`, a runtime asked to add capabilities), however it got them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creds_beyond_start: Option<CredsBeyondStart>,
}

/// Credentials of a container's process that exceed what its container started with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CredsBeyondStart {
    /// Effective capabilities outside the container's start bounding set (written in hex).
    #[schemars(with = "String")]
    #[serde(with = "bits::hex")]
    pub gained: u64,
    /// The container's bounding set at start (`CapBnd` of its first workload process).
    #[schemars(with = "String")]
    #[serde(with = "bits::hex")]
    pub start_bounding: u64,
    /// uid of the container's first workload process.
    pub start_uid: u32,
    /// The credentials are the kernel's own (`init_cred`): uid and gid 0, every capability,
    /// in the initial user namespace.
    #[serde(default, skip_serializing_if = "is_false")]
    pub init_cred: bool,
}

/// Where an exec'ing process's cwd or root lies when that is a mount of another mount
/// namespace than its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PathOutside {
    /// `cwd` or `root`.
    pub which: FsPath,
    /// The mount namespace of the mount it lies in.
    pub mnt_ns: u32,
    pub owner: NsOwner,
}

/// The file an exec ran, as the kernel held it (`bprm->file`): facts a container cannot
/// choose, unlike the path it passed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecImage {
    pub inode: u64,
    /// `major:minor` of the filesystem it lies on (the superblock's `s_dev`).
    pub dev: String,
    /// The superblock's magic (`statfs` f_type): tmpfs is 0x01021994.
    pub fs_magic: u32,
    /// Hard links: 0 for a memfd or a deleted file (run through /proc/self/fd or an fd).
    pub nlink: u32,
    /// The inode's ctime, ns since the Unix epoch: the kernel sets it on every change of
    /// content or metadata (write, chmod, rename, link); no syscall sets it back.
    pub ctime_unix_ns: i64,
    /// `major:minor` of the filesystem of the process's root directory.
    pub root_dev: String,
    /// When its container started (the earliest start of a process the agent saw in it), ns
    /// since the Unix epoch; absent outside containers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_start_unix_ns: Option<i64>,
    /// The mount the file was reached through shows its whole filesystem (its root is the
    /// superblock's), not a bind-mounted subtree or single file.
    #[serde(default, skip_serializing_if = "is_false")]
    pub whole_fs: bool,
    /// The file lies on the host's root filesystem: the superblock of PID 1's root.
    #[serde(default, skip_serializing_if = "is_false")]
    pub host_root_fs: bool,
    /// The mount namespace of that mount, when it is not the process's own (a host file run
    /// through /proc/PID/root lies in the host's), with its owner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub foreign_mnt_ns: Option<JoinedNamespace>,
}

/// A task's two filesystem anchors (`task->fs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FsPath {
    Cwd,
    Root,
}

impl FsPath {
    pub fn name(self) -> &'static str {
        match self {
            FsPath::Cwd => "cwd",
            FsPath::Root => "root",
        }
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Whose a namespace is, as far as the agent knows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum NsOwner {
    Host,
    Container { id: String, runtime: Runtime },
    Unknown,
}

/// One namespace a setns call moved the process into.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JoinedNamespace {
    #[serde(rename = "type")]
    #[schemars(schema_with = "wire_schema::ns_type")]
    pub ns_type: NsType,
    pub inode: u32,
    /// The inode the process had before.
    pub previous: u32,
    pub owner: NsOwner,
}

/// Which namespace syscall.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum NsSyscall {
    Setns,
    Unshare,
    Clone,
}

/// What the destination address of an IPv4/IPv6 connect is to the node (enrichment: the
/// node's addresses are read on the host, never from the event).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum NetDest {
    /// 127.0.0.0/8, ::1, their IPv4-mapped forms, or the unspecified address (which connect
    /// takes for the local host): the caller's own network namespace's loopback.
    Loopback,
    /// One of the node's own addresses (any interface of the host's network namespace).
    Node,
    /// Anything else.
    Other,
}

/// Kind-specific part of an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Payload {
    ProcessExec {
        filename: String,
        #[serde(default, skip_serializing_if = "is_false")]
        truncated: bool,
        /// Started by the kernel itself (parent is a kernel thread): a usermode helper such as a
        /// core_pattern pipe, a cgroup release_agent or modprobe.
        #[serde(default, skip_serializing_if = "is_false")]
        usermode_helper: bool,
        /// The container whose filesystem holds the executed binary, when it lies in one
        /// (reached through /proc/PID/root or a container's root directory on the host).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        binary_container: Option<Container>,
        /// Its cwd or root, when either lies in a mount of another mount namespace than its
        /// own (a directory fd kept from the host, the CVE-2024-21626 class).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        outside_mount: Vec<PathOutside>,
        /// The executed file's kernel facts (absent in logs older than them).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        image: Option<ExecImage>,
    },
    ProcessFork {
        /// The process that called fork/clone.
        creator_pid: u32,
    },
    ProcessExit {
        exit_code: i32,
    },
    Mount {
        #[schemars(schema_with = "wire_schema::mount_call")]
        call: MountCall,
        ret: i64,
        /// MS_* (mount) or the call's flags (written in hex).
        #[schemars(with = "String")]
        #[serde(with = "bits::hex")]
        flags: u64,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        source: String,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        target: String,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        fstype: String,
        /// The mounting process shares the host's pid / cgroup namespace (a procfs or cgroup2
        /// mounted there shows the host's).
        host_pid_ns: bool,
        host_cgroup_ns: bool,
        /// For a source under /proc/PID/root: whose that process is.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        source_owner: Option<NsOwner>,
        /// `major:minor` of the superblock the kernel mounted, where it says (the descriptor
        /// fsmount or open_tree returned); major 0 is a virtual filesystem.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        device: Option<String>,
        /// For a bind mount that succeeded: what the kernel attached, whatever the strings
        /// said (absent for other calls, and in logs older than it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bound: Option<BoundSource>,
    },
    FileOpen {
        /// The fd, or -errno.
        ret: i64,
        /// O_* flags (written in octal).
        #[schemars(with = "String")]
        #[serde(with = "bits::octal")]
        flags: u64,
        /// Opened for writing.
        write: bool,
        /// Why the kernel reported it.
        classes: Vec<OpenClass>,
        /// Filesystem type by its magic (proc, cgroup, sysfs, …) or the magic in hex.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        fs: String,
        /// regular, directory, block, char, fifo, socket, symlink.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        file_type: String,
        /// `major:minor` of a device file.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        rdev: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        file: Option<FileRef>,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        grandparent: String,
        /// The path the caller passed.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        path: String,
        /// The file's path from the root of its filesystem, from the kernel's dentries (the
        /// same through any mount point or bind mount; `…` stands for levels not carried),
        /// e.g. `/module/printk/parameters/time` on sysfs. Only for the security-policy and
        /// kernel-interface classes, and for a refused relative open whose starting directory
        /// (working directory or dfd) is on sysfs, procfs or a security filesystem: that
        /// directory's (`fs` is its filesystem).
        #[serde(default, skip_serializing_if = "String::is_empty")]
        fs_path: String,
        /// For a file reached in another mount namespace: that namespace and its owner.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        foreign_mnt_ns: Option<JoinedNamespace>,
    },
    SysctlWrite {
        /// Dotted name, e.g. kernel.core_pattern.
        name: String,
        value: String,
        /// The sysctl belongs to a namespace the writer has of its own (net.* in its own
        /// network namespace, kernel.hostname in its own UTS namespace, …): not the host's.
        #[serde(default, skip_serializing_if = "is_false")]
        namespaced: bool,
        #[serde(default, skip_serializing_if = "is_false")]
        truncated: bool,
    },
    Madvise {
        start: u64,
        len: u64,
        advice: u32,
        /// The mapping: vm_flags (written in hex), bounds and file.
        #[schemars(with = "String")]
        #[serde(with = "bits::hex")]
        vm_flags: u64,
        vm_start: u64,
        vm_end: u64,
        file: FileRef,
    },
    MemWrite {
        ret: i64,
        addr: u64,
        len: u64,
        target: TargetProcess,
        /// What lies at `addr` when the writer writes itself: whether a mapping was found,
        /// file-backed, writable, shared; and its file.
        vma_found: bool,
        vma_file_backed: bool,
        vma_writable: bool,
        vma_shared: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        vma_file: Option<FileRef>,
    },
    /// Not a kernel event: the agent's report that the kernel's ring buffers dropped records,
    /// new losses by kind since the previous report. Logged so replay sees what the live
    /// engine saw (`detector-overloaded`).
    EventsLost {
        lost: std::collections::BTreeMap<String, u64>,
    },
    /// Not a kernel event: the agent's report that the kernel did not send attempt-class
    /// records (failed opens, refused namespace calls) of one container — the event's
    /// `container`, None when the kernel's entry was evicted before it was read — because the
    /// container was over its per-container budget; new counts by kind since the previous
    /// report. Logged so replay sees what the live engine saw (`detector-overloaded`).
    EventsBudgeted {
        suppressed: std::collections::BTreeMap<String, u64>,
    },
    /// Not a kernel event: the agent's periodic self-check found programs it had attached no
    /// longer attached (their link gone, or detached from its target). Logged so replay sees
    /// what the live engine saw (`detector-tampered`).
    ProgramsDetached {
        /// The programs newly found detached, by name (`sys_enter_setns`).
        programs: Vec<String>,
    },
    /// Not a kernel event: at start, the agent found that its previous run on this event log
    /// did not stop cleanly (killed, crashed). The first event of the new session, logged so
    /// replay sees what the live engine saw (`detector-restarted`).
    AgentRestarted {
        /// 0 when the previous run's marker could not be read.
        previous_pid: u32,
        /// When the previous run became ready (RFC 3339); empty when unknown.
        previous_start: String,
        /// The host booted again since: the previous run went down with it.
        host_rebooted: bool,
    },
    /// A forced write fault (/proc/PID/mem, ptrace POKE) into a read-only private file
    /// mapping, seen in the kernel's fault handler: the copy-on-write break.
    CowFault {
        addr: u64,
        /// FAULT_FLAG_* (written in hex).
        #[schemars(with = "String")]
        #[serde(with = "bits::hex")]
        fault_flags: u64,
        /// The mapping belongs to another process (the ptrace variant).
        remote_mm: bool,
        #[schemars(with = "String")]
        #[serde(with = "bits::hex")]
        vm_flags: u64,
        vm_start: u64,
        vm_end: u64,
        file: FileRef,
    },
    /// The kernel gave a container task more credentials (commit_creds), or other namespaces
    /// outside setns/unshare (switch_task_namespaces). The process fields hold what it was
    /// given.
    TaskChanged {
        #[schemars(schema_with = "wire_schema::task_change")]
        change: TaskChange,
        /// `creds`: what the task had before.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        before: Option<CredsBefore>,
        /// `locked_down`: what the kernel's lockdown check was asked about.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lockdown: Option<Lockdown>,
    },
    /// The kernel asked modprobe for a module on the task's behalf (request_module): module
    /// autoload by socket family or protocol, line discipline, crypto algorithm, filesystem
    /// type... Whether the module exists is not known here.
    ModuleRequest {
        /// The name asked for, as the kernel built it (`net-pf-38`, `tty-ldisc-16`,
        /// `crypto-foo`, `fs-bar`, `char-major-10-200`...).
        module: String,
        /// The kernel waited for modprobe (`request_module`; false: `request_module_nowait`).
        wait: bool,
    },
    Syscall {
        #[schemars(schema_with = "wire_schema::watched_syscall")]
        name: WatchedSyscall,
        ret: i64,
        args: [u64; 4],
        /// ptrace / process_vm_writev: the process aimed at.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        target: Option<TargetProcess>,
    },
    PipeWrite {
        ret: i64,
        /// The descriptor written; None for an io_uring write, which names its file by the
        /// request (the number, if it had one, is not known at completion).
        fd: Option<u32>,
        /// The read-only file spliced into this pipe.
        file: FileRef,
    },
    UnixConnect {
        ret: i64,
        /// The path the caller passed.
        path: String,
        /// The socket reached (a successful connect to a listener bound to a path): that
        /// path's inode and the name it was bound as.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        peer: Option<FileRef>,
        /// An abstract name (sun_path began with a NUL): `path` is the name after the NUL,
        /// looked up in the caller's network namespace, not a file.
        #[serde(
            default,
            rename = "abstract",
            skip_serializing_if = "std::ops::Not::not"
        )]
        abstract_name: bool,
        /// The caller is in the host's network namespace (where the host's abstract names,
        /// containerd-shim's among them, live).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        host_net_ns: bool,
        /// The host runtime API socket `peer` is (same device and inode), by its host path.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        runtime_socket: Option<String>,
    },
    /// An IPv4/IPv6 connect to a watched runtime/orchestrator API port.
    NetConnect {
        /// 0, or -errno (-115 EINPROGRESS: a non-blocking connect under way).
        ret: i64,
        /// The destination as the caller passed it to connect(2), or as the kernel holds it for
        /// an active open seen by its effect (io_uring, TCP Fast Open: `fd` 4294967295).
        #[schemars(with = "String")]
        addr: std::net::IpAddr,
        port: u16,
        fd: u32,
        /// What that address is to the node.
        dest: NetDest,
        /// The caller is in the host's network namespace (its loopback is the host's).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        host_net_ns: bool,
    },
    /// Not a kernel event: the agent learned of a new container (its runtime's state named
    /// it) and read its posture, which the event's `workload` carries. Logged with it, so
    /// replay judges the same posture (`container-sensitive-mount`).
    ContainerStarted {
        /// Where the posture was read (`docker`, `containerd`, `oci-state`).
        source: String,
    },
    Namespace {
        syscall: NsSyscall,
        /// Return value (for clone: the child pid; negative: -errno).
        ret: i64,
        /// setns nstype / unshare or clone flags (written in hex).
        #[schemars(with = "String")]
        #[serde(with = "bits::hex")]
        flags: u64,
        /// Namespace types named by the flags.
        #[schemars(schema_with = "wire_schema::ns_types")]
        flag_types: Vec<NsType>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fd: Option<i32>,
        before: Namespaces,
        /// For setns: every namespace that changed.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        joined: Vec<JoinedNamespace>,
    },
}

/// What a bind mount attached, read in the kernel after the call (the newest mount of the
/// caller's mount namespace): the file or directory its source resolved to, through every
/// symlink, and the dentry it now covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BoundSource {
    /// The source: inode, `major:minor` of its filesystem, its dentry name and its parent's.
    pub file: FileRef,
    /// Filesystem type by its magic (proc, sysfs, tmpfs, …) or the magic in hex.
    pub fs: String,
    /// regular, directory, char, …
    pub file_type: String,
    /// `major:minor` of a device file.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub rdev: String,
    /// The name of the dentry the mount covers.
    pub mountpoint: String,
    /// The source is the very dentry it covers (a path bound onto itself).
    #[serde(default, skip_serializing_if = "is_false")]
    pub onto_itself: bool,
}

/// The kernel's lockdown reason of a `task_changed` of change `locked_down`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Lockdown {
    /// The kernel's name without `LOCKDOWN_`, lower case: `ioport`, `msr`, `kexec`,
    /// `pci_access`, `dev_mem`, ... (`reason_N` when the kernel's BTF does not name it).
    pub reason: String,
    /// The kernel's `enum lockdown_reason` value (numbering differs between kernels).
    pub value: u32,
}

/// The credentials a task had before a `task_changed` of its creds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CredsBefore {
    pub uid: u32,
    #[schemars(with = "String")]
    #[serde(with = "bits::hex")]
    pub cap_effective: u64,
}

/// One enriched event: a line of the event log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Event {
    /// Sequence number, unique within one log; alerts cite it in `event_ids`.
    pub id: u64,
    /// Wall-clock time, RFC 3339 with nanoseconds (boot time + kernel timestamp).
    pub time: String,
    /// Kernel CLOCK_BOOTTIME timestamp, ns.
    pub ktime_ns: u64,
    pub process: Process,
    /// The container the process belongs to; absent for host processes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<Container>,
    /// What happened; `data.kind` names the event kind.
    pub data: Payload,
    /// `hook-type/program` of the eBPF program that saw it (e.g. `fentry/fentry_handle_mm_fault`,
    /// `lsm/lsm_file_open`, `tracepoint/sys_exit_open_family`); empty in logs from agents that
    /// did not record it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hook: String,
    /// What the container runtime said about `container` (name, image, labels, pod), when
    /// the agent's metadata cache had it as the event went by. Recorded, so replay gives the
    /// alerts the live agent gave; absent when the lookup had not finished or failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<Workload>,
}

/// A container's metadata from its runtime.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    /// The container this is about (`Container::id`).
    pub container_id: String,
    /// Where it was read: `docker` (Engine API), `containerd` (task bundle), `oci-state`
    /// (runc/crun state dir of a bare bundle).
    pub source: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub image: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub image_digest: String,
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub labels: std::collections::BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<Pod>,
    /// Its security posture from the runtime's configuration (absent where the source gives
    /// none, and in logs older than it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub posture: Option<posture::Posture>,
}

/// A Kubernetes pod, from the labels/annotations kubelet gives its containers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Pod {
    pub name: String,
    pub namespace: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    /// The container's name in the pod spec.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub container: String,
}

/// JSON Schemas of the wire enums of `escapewatch_common` (which has no schemars): strings,
/// one of the names the log writes.
mod wire_schema {
    use schemars::{Schema, SchemaGenerator, json_schema};
    use serde::Serialize;

    use super::{MountCall, NsType, TaskChange, WatchedSyscall};

    fn names<T: Serialize>(all: &[T]) -> Schema {
        let names: Vec<serde_json::Value> = all
            .iter()
            .map(|v| serde_json::to_value(v).expect("a wire enum serialises"))
            .collect();
        json_schema!({ "type": "string", "enum": names })
    }

    pub fn ns_type(_: &mut SchemaGenerator) -> Schema {
        names(&NsType::ALL)
    }

    pub fn ns_types(g: &mut SchemaGenerator) -> Schema {
        let item = ns_type(g);
        json_schema!({ "type": "array", "items": item })
    }

    pub fn mount_call(_: &mut SchemaGenerator) -> Schema {
        names(MountCall::ALL)
    }

    pub fn task_change(_: &mut SchemaGenerator) -> Schema {
        names(TaskChange::ALL)
    }

    pub fn watched_syscall(_: &mut SchemaGenerator) -> Schema {
        names(WatchedSyscall::ALL)
    }
}

impl Event {
    /// The `kind` tag as written in the log.
    pub fn kind_name(&self) -> &'static str {
        match &self.data {
            Payload::ProcessExec { .. } => "process_exec",
            Payload::ProcessFork { .. } => "process_fork",
            Payload::ProcessExit { .. } => "process_exit",
            Payload::Namespace { .. } => "namespace",
            Payload::Mount { .. } => "mount",
            Payload::FileOpen { .. } => "file_open",
            Payload::SysctlWrite { .. } => "sysctl_write",
            Payload::Madvise { .. } => "madvise",
            Payload::MemWrite { .. } => "mem_write",
            Payload::CowFault { .. } => "cow_fault",
            Payload::TaskChanged { .. } => "task_changed",
            Payload::EventsLost { .. } => "events_lost",
            Payload::EventsBudgeted { .. } => "events_budgeted",
            Payload::ProgramsDetached { .. } => "programs_detached",
            Payload::AgentRestarted { .. } => "agent_restarted",
            Payload::ContainerStarted { .. } => "container_started",
            Payload::Syscall { .. } => "syscall",
            Payload::PipeWrite { .. } => "pipe_write",
            Payload::UnixConnect { .. } => "unix_connect",
            Payload::NetConnect { .. } => "net_connect",
            Payload::ModuleRequest { .. } => "module_request",
        }
    }
}

/// Why the kernel reported a file open (`escapewatch_common::event::open_class` bits).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum OpenClass {
    /// The open failed (the path was kept instead of a file).
    Failed,
    ProcEntry,
    CgroupRelease,
    Debugfs,
    BinfmtMisc,
    BlockDevice,
    MemDevice,
    RuntimeBinary,
    ForeignMntNs,
    UeventHelper,
    UserfaultfdDevice,
    /// Written on selinuxfs, securityfs or smackfs (the host's LSM / integrity policy).
    SecurityPolicy,
    /// Written on sysfs kernel/, module/, firmware/ or procfs irq/, bus/ (not bus/pci/).
    KernelInterface,
    /// An MSR device, a PCI device's sysfs config/resource file or a /proc/bus/pci file.
    Hardware,
}

/// A file identified by device and inode, with its dentry name(s).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileRef {
    pub ino: u64,
    /// `major:minor` of the filesystem's device.
    pub dev: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub parent: String,
}

/// Another process an event is aimed at (ptrace, process_vm_writev, /proc/PID/mem).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TargetProcess {
    pub pid: u32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub comm: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub exe: String,
    /// Whose the target is: the host, a container, or not known to the agent.
    pub owner: NsOwner,
    /// `pid` is as the writer's pid namespace numbers it (a container's /proc), not the host's.
    #[serde(default, skip_serializing_if = "is_false")]
    pub pid_in_writer_ns: bool,
}

impl Namespaces {
    /// Slots in the wire order of `escapewatch_common::event::NsType`.
    pub fn from_wire(ns: &[u32; escapewatch_common::event::NS_COUNT]) -> Self {
        Namespaces {
            mnt: ns[0],
            pid: ns[1],
            net: ns[2],
            uts: ns[3],
            ipc: ns[4],
            user: ns[5],
            cgroup: ns[6],
            time: ns[7],
        }
    }

    /// (type, inode) pairs, in wire order.
    pub fn iter(&self) -> [(NsType, u32); 8] {
        NsType::ALL.map(|t| (t, self.get(t)))
    }

    pub fn get(&self, ns_type: NsType) -> u32 {
        match ns_type {
            NsType::Mnt => self.mnt,
            NsType::Pid => self.pid,
            NsType::Net => self.net,
            NsType::Uts => self.uts,
            NsType::Ipc => self.ipc,
            NsType::User => self.user,
            NsType::Cgroup => self.cgroup,
            NsType::Time => self.time,
        }
    }
}

/// Builders of hand-made events for unit tests.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// A skeleton event of a process in docker container "aaaa…".
    pub struct Skeleton {
        pub process: Process,
        pub container: Option<Container>,
    }

    pub fn container_process() -> Skeleton {
        Skeleton {
            process: Process {
                pid: 4242,
                tid: 4242,
                ppid: 4200,
                start_time: 1_000_000,
                comm: "nsenter".into(),
                exe: "/usr/bin/nsenter".into(),
                args: vec!["nsenter".into(), "-t".into(), "77".into(), "-m".into()],
                uid: 0,
                gid: 0,
                cap_effective: Some(0x1ff_ffff_ffff),
                cgroup_id: 5000,
                cgroup: format!("/docker/{}", "a".repeat(64)),
                namespaces: Namespaces {
                    mnt: 4026532300,
                    ..Namespaces::default()
                },
                runtime_helper: false,
                foreign_namespaces: Vec::new(),
                creds_beyond_start: None,
                exe_foreign: false,
            },
            container: Some(Container {
                id: "a".repeat(64),
                runtime: Runtime::Docker,
                pod_uid: None,
            }),
        }
    }

    pub fn setns_event(s: Skeleton, ret: i64, joined: Vec<JoinedNamespace>) -> Event {
        Event {
            id: 17,
            time: "2026-11-23T01:02:03.123456789Z".into(),
            ktime_ns: 5_000_000_000,
            process: s.process,
            container: s.container,
            data: Payload::Namespace {
                syscall: NsSyscall::Setns,
                ret,
                flags: 0x20000,
                flag_types: vec![NsType::Mnt],
                fd: Some(3),
                before: Namespaces::default(),
                joined,
            },
            hook: String::new(),
            workload: None,
        }
    }
}
