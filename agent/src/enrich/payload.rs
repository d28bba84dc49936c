//! Kernel records of the escape-primitive families → model payloads, with the facts rules need
//! (whose a target process or a foreign namespace is, which container holds a helper binary).

use escapewatch_common::{
    abi,
    event::{
        BOUND_KNOWN, BOUND_ONTO_ITSELF, COW_FAULT_REMOTE_MM, ConnectEvent, CowFaultEvent, FD_NONE,
        FileOpenEvent, MEMW_PID_IN_WRITER_NS, MEMW_SELF, MadviseEvent, MemWriteEvent, MountEvent,
        PipeWriteEvent, SyscallEvent, SysctlEvent, TaskChangedEvent, open_class, vma_bits,
    },
    user::until_nul,
};

use super::{Enricher, System, process::Lineage};
use crate::model::{
    BoundSource, Container, CredsBefore, FileRef, JoinedNamespace, Lockdown, MountCall, NsOwner,
    NsType, OpenClass, Payload, TargetProcess, TaskChange, WatchedSyscall,
};

pub fn text(buf: &[u8]) -> String {
    String::from_utf8_lossy(until_nul(buf)).into_owned()
}

/// `major:minor` of a kernel-encoded device number.
pub fn dev(kdev: u32) -> String {
    format!(
        "{}:{}",
        abi::kernel_dev_major(kdev),
        abi::kernel_dev_minor(kdev)
    )
}

fn fs_name(magic: u32) -> String {
    if magic == 0 {
        return String::new();
    }
    abi::FS_MAGIC_NAMES
        .iter()
        .find(|(m, _)| *m == magic)
        .map_or_else(|| format!("{magic:#x}"), |(_, name)| (*name).into())
}

fn file_type(mode: u32) -> &'static str {
    // i_mode is a 16-bit umode_t: the type bits all lie in the low half.
    match mode as u16 & abi::S_IFMT {
        abi::S_IFREG => "regular",
        abi::S_IFDIR => "directory",
        abi::S_IFBLK => "block",
        abi::S_IFCHR => "char",
        abi::S_IFIFO => "fifo",
        abi::S_IFSOCK => "socket",
        abi::S_IFLNK => "symlink",
        _ => "",
    }
}

/// The path of an opened file from its filesystem's root, from what the kernel carried: its
/// depth, the top directory and the last three names (`…` for the levels between). For a
/// refused relative open, of the directory the path started from (`/`: the root itself).
fn fs_path(e: &FileOpenEvent) -> String {
    if e.depth == 0 {
        let base = e.class & open_class::FAILED != 0 && e.fs_magic != 0;
        return if base { "/".into() } else { String::new() };
    }
    if e.top[0] == 0 {
        return String::new(); // deeper than the kernel's walk
    }
    let (top, gp, parent, name) = (
        text(&e.top),
        text(&e.grandparent),
        text(&e.parent),
        text(&e.name),
    );
    match e.depth {
        0 => String::new(),
        1 => format!("/{name}"),
        2 => format!("/{top}/{name}"),
        3 => format!("/{top}/{parent}/{name}"),
        4 => format!("/{top}/{gp}/{parent}/{name}"),
        _ => format!("/{top}/…/{gp}/{parent}/{name}"),
    }
}

/// The wire bits in the order the model lists them.
const CLASSES: [(u32, OpenClass); 14] = [
    (open_class::FAILED, OpenClass::Failed),
    (open_class::PROC_ENTRY, OpenClass::ProcEntry),
    (open_class::CGROUP_RELEASE, OpenClass::CgroupRelease),
    (open_class::DEBUGFS, OpenClass::Debugfs),
    (open_class::BINFMT_MISC, OpenClass::BinfmtMisc),
    (open_class::BLOCK_DEVICE, OpenClass::BlockDevice),
    (open_class::MEM_DEVICE, OpenClass::MemDevice),
    (open_class::RUNTIME_BINARY, OpenClass::RuntimeBinary),
    (open_class::FOREIGN_MNT_NS, OpenClass::ForeignMntNs),
    (open_class::UEVENT_HELPER, OpenClass::UeventHelper),
    (open_class::USERFAULTFD_DEV, OpenClass::UserfaultfdDevice),
    (open_class::SECURITY_POLICY, OpenClass::SecurityPolicy),
    (open_class::KERNEL_INTERFACE, OpenClass::KernelInterface),
    (open_class::HARDWARE, OpenClass::Hardware),
];

/// Sysctl name prefixes that belong to a namespace, with that namespace's type.
const NAMESPACED_SYSCTLS: [(&str, NsType); 8] = [
    ("net.", NsType::Net),
    ("kernel.hostname", NsType::Uts),
    ("kernel.domainname", NsType::Uts),
    ("kernel.shm", NsType::Ipc),
    ("kernel.msg", NsType::Ipc),
    ("kernel.sem", NsType::Ipc),
    ("fs.mqueue.", NsType::Ipc),
    ("user.", NsType::User),
];

fn mount(call: MountCall, e: &MountEvent) -> Payload {
    Payload::Mount {
        call,
        ret: e.ret,
        flags: e.flags,
        source: text(&e.source),
        target: text(&e.target),
        fstype: text(&e.fstype),
        host_pid_ns: false,
        host_cgroup_ns: false,
        source_owner: None,
        device: (e.dev != 0).then(|| dev(e.dev)),
        bound: (e.bound & BOUND_KNOWN != 0).then(|| BoundSource {
            file: file_ref(e.src_ino, e.src_dev, &e.src_name, &e.src_parent),
            fs: fs_name(e.src_magic),
            file_type: file_type(e.src_mode).into(),
            rdev: if matches!(e.src_mode as u16 & abi::S_IFMT, abi::S_IFCHR | abi::S_IFBLK) {
                dev(e.src_rdev)
            } else {
                String::new()
            },
            mountpoint: text(&e.mountpoint),
            onto_itself: e.bound & BOUND_ONTO_ITSELF != 0,
        }),
    }
}

/// A file by inode, kernel-encoded device and dentry names (NUL-padded buffers).
fn file_ref(ino: u64, kdev: u32, name: &[u8], parent: &[u8]) -> FileRef {
    FileRef {
        ino,
        dev: dev(kdev),
        name: text(name),
        parent: text(parent),
    }
}

pub fn cow_fault(e: &CowFaultEvent) -> Payload {
    Payload::CowFault {
        addr: e.addr,
        fault_flags: u64::from(e.fault_flags),
        remote_mm: e.flags & COW_FAULT_REMOTE_MM != 0,
        vm_flags: e.vm_flags,
        vm_start: e.vm_start,
        vm_end: e.vm_end,
        file: file_ref(e.file_ino, e.file_dev, &e.file_name, &[]),
    }
}

pub fn madvise(e: &MadviseEvent) -> Payload {
    Payload::Madvise {
        start: e.start,
        len: e.len,
        advice: e.advice,
        vm_flags: e.vm_flags,
        vm_start: e.vm_start,
        vm_end: e.vm_end,
        file: file_ref(e.file_ino, e.file_dev, &e.file_name, &[]),
    }
}

pub fn pipe_write(e: &PipeWriteEvent) -> Payload {
    Payload::PipeWrite {
        ret: e.ret,
        fd: (e.fd != FD_NONE).then_some(e.fd),
        file: file_ref(e.file_ino, e.file_dev, &e.file_name, &e.file_parent),
    }
}

/// This kernel's `enum lockdown_reason` (value to name), read from its BTF at load: the
/// numbering differs between kernels (reasons are added in the middle).
static LOCKDOWN_REASONS: std::sync::OnceLock<Vec<(u32, String)>> = std::sync::OnceLock::new();

/// Keep the kernel's lockdown reasons, `(LOCKDOWN_IOPORT, 11)`-style, named as the event log
/// writes them (`ioport`). The first call wins.
pub fn set_lockdown_reasons(values: &[(String, i64)]) {
    let names = values
        .iter()
        .filter_map(|(n, v)| Some((u32::try_from(*v).ok()?, lockdown_name(n))))
        .collect();
    let _ = LOCKDOWN_REASONS.set(names);
}

/// `LOCKDOWN_PCI_ACCESS` → `pci_access`.
fn lockdown_name(kernel: &str) -> String {
    kernel
        .strip_prefix("LOCKDOWN_")
        .unwrap_or(kernel)
        .to_ascii_lowercase()
}

/// The name of this kernel's lockdown reason `value`; `reason_N` when the kernel's BTF did not
/// name it.
fn lockdown_reason(value: u32) -> String {
    LOCKDOWN_REASONS
        .get()
        .and_then(|r| r.iter().find(|(v, _)| *v == value))
        .map_or_else(|| format!("reason_{value}"), |(_, n)| n.clone())
}

pub fn task_changed(change: TaskChange, e: &TaskChangedEvent) -> Payload {
    Payload::TaskChanged {
        change,
        before: (change == TaskChange::Creds).then_some(CredsBefore {
            uid: e.old_uid,
            cap_effective: e.old_cap_effective,
        }),
        lockdown: (change == TaskChange::LockedDown).then(|| Lockdown {
            reason: lockdown_reason(e.reason),
            value: e.reason,
        }),
    }
}

pub fn connect(e: &ConnectEvent) -> Payload {
    Payload::UnixConnect {
        ret: e.ret,
        path: text(&e.path),
        peer: (e.peer_ino != 0).then(|| file_ref(e.peer_ino, e.peer_dev, &e.peer_name, &[])),
        abstract_name: false,
        host_net_ns: false,
        runtime_socket: None,
    }
}

impl<S: System> Enricher<S> {
    pub(super) fn mount(&self, call: MountCall, e: &MountEvent) -> Payload {
        let mut payload = mount(call, e);
        if let Payload::Mount {
            host_pid_ns,
            host_cgroup_ns,
            source_owner,
            source,
            ..
        } = &mut payload
        {
            let host = &self.host.namespaces;
            *host_pid_ns = e.header.ns[1] == host.pid;
            *host_cgroup_ns = e.header.ns[6] == host.cgroup;
            *source_owner = proc_root_pid(source).map(|pid| self.target(pid).owner);
        }
        payload
    }

    pub(super) fn sysctl(&self, e: &SysctlEvent) -> Payload {
        let len = (e.value_len as usize).min(e.value.len());
        let value = String::from_utf8_lossy(until_nul(&e.value[..len]));
        let name = text(&e.name).replace('/', ".");
        let own = crate::model::Namespaces::from_wire(&e.header.ns);
        let namespaced = NAMESPACED_SYSCTLS.iter().any(|(prefix, ns)| {
            name.starts_with(prefix) && own.get(*ns) != self.host.namespaces.get(*ns)
        });
        Payload::SysctlWrite {
            namespaced,
            value: value.trim_end_matches('\n').to_owned(),
            truncated: e.value_len as usize >= e.value.len(),
            name,
        }
    }

    /// The container of a process-table entry: its cgroup layout, else its lineage.
    pub(super) fn container_of(&self, pid: u32) -> Option<Container> {
        let entry = self.procs.get(&pid)?;
        super::container::from_cgroup_path(&entry.cgroup).or_else(|| match &entry.lineage {
            Lineage::Container(c) => Some(c.clone()),
            _ => None,
        })
    }

    pub(super) fn target(&self, pid: u32) -> TargetProcess {
        let Some(entry) = self.procs.get(&pid) else {
            return TargetProcess {
                pid,
                comm: String::new(),
                exe: String::new(),
                owner: NsOwner::Unknown,
                pid_in_writer_ns: false,
            };
        };
        let owner = match self.container_of(pid) {
            Some(c) => NsOwner::Container {
                id: c.id,
                runtime: c.runtime,
            },
            None if entry.lineage == Lineage::Host || entry.lineage == Lineage::RuntimeHelper => {
                NsOwner::Host
            }
            None => NsOwner::Unknown,
        };
        TargetProcess {
            pid,
            comm: entry.comm.clone(),
            exe: entry.exe.clone(),
            owner,
            pid_in_writer_ns: false,
        }
    }

    pub(super) fn file_open(&mut self, e: &FileOpenEvent) -> Payload {
        let flags = e.open_flags;
        let write = u64::from(flags) & (abi::O_WRONLY | abi::O_RDWR | abi::O_TRUNC) != 0
            || e.f_mode & abi::FMODE_WRITE != 0;
        let failed = e.class & open_class::FAILED != 0;
        let mut class = e.class;
        let (mut mode, mut rdev) = (e.i_mode, e.rdev);
        let path = text(&e.path);
        // A refused open of a device node names no file: look at the node itself, through the
        // root of a live process of the same container. Any absolute path: a container names
        // its nodes as it likes (an MSR node made with mknod as /tmp/x).
        if failed
            && path.starts_with('/')
            && let Some((m, r)) = self.device_in_container(e.header.tgid, &path)
        {
            (mode, rdev) = (m, r);
            match m as u16 & abi::S_IFMT {
                abi::S_IFBLK => class |= open_class::BLOCK_DEVICE,
                abi::S_IFCHR if abi::MEM_DEVICES.contains(&r) => class |= open_class::MEM_DEVICE,
                abi::S_IFCHR if abi::kernel_dev_major(r) == abi::MSR_MAJOR => {
                    class |= open_class::HARDWARE;
                }
                _ => {}
            }
        }
        let kind = file_type(mode);
        let foreign = (e.class & open_class::FOREIGN_MNT_NS != 0).then(|| JoinedNamespace {
            ns_type: NsType::Mnt,
            inode: e.file_mnt_ns,
            previous: e.header.ns[0],
            owner: self.owner(0, e.file_mnt_ns),
        });
        Payload::FileOpen {
            ret: e.ret,
            flags: u64::from(flags),
            write,
            classes: CLASSES
                .iter()
                .filter(|(bit, _)| class & bit != 0)
                .map(|(_, c)| *c)
                .collect(),
            fs: fs_name(e.fs_magic),
            file_type: kind.into(),
            rdev: if kind == "block" || kind == "char" {
                dev(rdev)
            } else {
                String::new()
            },
            file: (!failed).then(|| file_ref(e.ino, e.dev, &e.name, &e.parent)),
            grandparent: text(&e.grandparent),
            path,
            fs_path: fs_path(e),
            foreign_mnt_ns: foreign,
        }
    }

    /// Mode and kernel-encoded rdev of `path` as the container of `pid` sees it.
    fn device_in_container(&mut self, pid: u32, path: &str) -> Option<(u32, u32)> {
        let container = self.container_of(pid)?;
        let mut pids = vec![pid];
        pids.extend(
            self.procs
                .iter()
                .filter(|(p, e)| **p != pid && e.exited_at.is_none())
                .map(|(p, _)| *p)
                .filter(|p| self.container_of(*p).is_some_and(|c| c.id == container.id))
                .take(3),
        );
        pids.into_iter()
            .find_map(|p| self.system.device_at(p, path))
    }

    pub(super) fn mem_write(&self, e: &MemWriteEvent) -> Payload {
        let found = e.vma & vma_bits::FOUND != 0;
        let writer = e.header.tgid;
        let target = if e.flags & MEMW_SELF != 0 {
            self.target(writer)
        } else if e.flags & MEMW_PID_IN_WRITER_NS == 0 || e.header.ns[1] == self.host.namespaces.pid
        {
            // A host tgid (a process's own mem handed on), or the writer numbers pids as the
            // host does.
            self.target(e.target_pid)
        } else {
            // A pid of the writer's own pid namespace: a process of its own container.
            TargetProcess {
                pid: e.target_pid,
                comm: String::new(),
                exe: String::new(),
                owner: self
                    .container_of(writer)
                    .map_or(NsOwner::Unknown, |c| NsOwner::Container {
                        id: c.id,
                        runtime: c.runtime,
                    }),
                pid_in_writer_ns: true,
            }
        };
        Payload::MemWrite {
            ret: e.ret,
            addr: e.addr,
            len: e.len,
            target,
            vma_found: found,
            vma_file_backed: e.vma & vma_bits::FILE_BACKED != 0,
            vma_writable: e.vma & vma_bits::WRITABLE != 0,
            vma_shared: e.vma & vma_bits::SHARED != 0,
            vma_file: (e.vma & vma_bits::FILE_BACKED != 0).then(|| FileRef {
                ino: e.file_ino,
                dev: String::new(),
                name: text(&e.file_name),
                parent: String::new(),
            }),
        }
    }

    pub(super) fn syscall(&self, name: WatchedSyscall, e: &SyscallEvent) -> Payload {
        let target_pid = match name {
            WatchedSyscall::Ptrace => Some(e.args[1] as u32),
            WatchedSyscall::ProcessVmWritev => Some(e.args[0] as u32),
            _ => None,
        };
        Payload::Syscall {
            name,
            ret: e.ret,
            args: e.args,
            target: target_pid.map(|pid| self.target(pid)),
        }
    }

    /// The container whose filesystem holds `filename` (an exec'd usermode helper): a path
    /// through /proc/PID/root of a container process, or under a container's root directory.
    pub(super) fn binary_container(&self, filename: &str) -> Option<Container> {
        if let Some(pid) = proc_root_pid(filename) {
            return self.container_of(pid);
        }
        self.container_roots
            .iter()
            .find(|(root, _)| {
                filename
                    .strip_prefix(root.as_str())
                    .is_some_and(|rest| rest.starts_with('/'))
            })
            .map(|(_, c)| c.clone())
    }
}

/// The PID of a `/proc/PID/root[/...]` path.
pub fn proc_root_pid(path: &str) -> Option<u32> {
    let rest = path.strip_prefix("/proc/")?;
    let (pid, tail) = rest.split_once('/').unwrap_or((rest, ""));
    (tail == "root" || tail.starts_with("root/"))
        .then(|| pid.parse().ok())
        .flatten()
}
