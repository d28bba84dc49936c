//! Event kind ids. They are a wire contract: a retired kind leaves its number unused forever.

/// Number of slots in per-kind counter arrays (loss counters). Every kind id is below it.
pub const KIND_SLOTS: u32 = 64;

macro_rules! kinds {
    ($($(#[$doc:meta])* $name:ident = $id:literal => $label:literal,)+) => {
        /// What an event record is. The numeric values are stable and never reused.
        #[repr(u32)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[cfg_attr(
            feature = "user",
            derive(serde::Serialize, serde::Deserialize),
            serde(rename_all = "snake_case")
        )]
        pub enum EventKind {
            $($(#[$doc])* $name = $id,)+
        }

        impl EventKind {
            pub const ALL: &'static [EventKind] = &[$(EventKind::$name,)+];

            /// Stable lower-case name used in logs, metrics labels and the event log.
            pub const fn name(self) -> &'static str {
                match self {
                    $(EventKind::$name => $label,)+
                }
            }
        }

        impl TryFrom<u32> for EventKind {
            type Error = UnknownKind;

            fn try_from(value: u32) -> Result<Self, Self::Error> {
                match value {
                    $($id => Ok(EventKind::$name),)+
                    other => Err(UnknownKind(other)),
                }
            }
        }
    };
}

kinds! {
    /// A process replaced its image (sched_process_exec). Payload: `ExecEvent`.
    ProcessExec = 1 => "process_exec",
    /// A new process (not a thread) was created. Payload: `ForkEvent`.
    ProcessFork = 2 => "process_fork",
    /// A process's leader thread exited. Payload: `ExitEvent`.
    ProcessExit = 3 => "process_exit",
    /// setns(2) returned. Payload: `NamespaceEvent`.
    Setns = 16 => "setns",
    /// unshare(2) returned. Payload: `NamespaceEvent`.
    Unshare = 17 => "unshare",
    /// clone(2)/clone3(2) with a CLONE_NEW* flag returned in the parent. Payload: `NamespaceEvent`.
    CloneNewNamespace = 18 => "clone_new_namespace",
    /// mount, open_tree, move_mount, fsopen or fsconfig(source) returned. Payload: `MountEvent`.
    Mount = 19 => "mount",
    /// An open of a watched kernel object (procfs/cgroupfs/debugfs entries, devices, runtime
    /// binaries, another mount namespace's files) returned. Payload: `FileOpenEvent`.
    FileOpen = 20 => "file_open",
    /// A sysctl write (cgroup/sysctl program). Payload: `SysctlEvent`.
    SysctlWrite = 21 => "sysctl_write",
    /// madvise(MADV_DONTNEED) on a read-only, file-backed private mapping. Payload: `MadviseEvent`.
    Madvise = 22 => "madvise",
    /// A write through a /proc/PID/mem file descriptor. Payload: `MemWriteEvent`.
    MemWrite = 23 => "mem_write",
    /// A watched syscall (ptrace, process_vm_writev, bpf, open_by_handle_at, userfaultfd,
    /// init_module, finit_module, iopl, ioperm, kexec_load, kexec_file_load) returned.
    /// Payload: `SyscallEvent`.
    Syscall = 24 => "syscall",
    /// A write into a pipe a read-only file was spliced into. Payload: `PipeWriteEvent`.
    PipeWrite = 25 => "pipe_write",
    /// connect(2) on a Unix socket path returned. Payload: `ConnectEvent`.
    UnixConnect = 26 => "unix_connect",
    /// A forced write fault (FOLL_FORCE through /proc/PID/mem or ptrace) into a read-only,
    /// private, file-backed mapping, seen in the kernel's fault path (fentry/kprobe on
    /// handle_mm_fault). Payload: `CowFaultEvent`.
    CowFault = 27 => "cow_fault",
    /// A container task's credentials grew or its namespaces were switched outside setns and
    /// unshare, seen in the kernel function that does it (fentry on commit_creds,
    /// switch_task_namespaces). The header holds the task's new credentials or namespaces.
    /// Also: a container task reached the kernel's lockdown check (lsm/locked_down, with the
    /// kernel's reason; nothing changed). Payload: `TaskChangedEvent`.
    TaskChanged = 28 => "task_changed",
    /// connect(2) of an IPv4/IPv6 socket to a watched port (runtime and orchestrator APIs,
    /// the agent's `runtime_api_ports`) returned. Payload: `NetConnectEvent`.
    NetConnect = 31 => "net_connect",
    /// The kernel asked for a module on the task's behalf (request_module: module autoload
    /// by socket family or protocol, line discipline, crypto algorithm, filesystem type),
    /// seen on the module_request tracepoint. Payload: `ModuleRequestEvent`.
    ModuleRequest = 32 => "module_request",
}

/// A kind id that this build does not know (a newer kernel object, or corruption).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnknownKind(pub u32);

const _: () = {
    let mut i = 0;
    while i < EventKind::ALL.len() {
        assert!((EventKind::ALL[i] as u32) < KIND_SLOTS);
        i += 1;
    }
};
