//! Rules on opens of kernel objects a container should never touch.

use escapewatch_common::kind::EventKind;
use serde_json::{Value, json};

#[cfg(test)]
use super::examples::Example;

use super::{
    Check, Fixtures, Input, KernelDependency, KernelFeature, RuleInfo, Without,
    simple::{Finding, who, workload},
};
use crate::{
    detect::Severity,
    model::{Container, Event, FileRef, JoinedNamespace, NsOwner, OpenClass, Payload},
};

/// The parts of a file-open event the rules look at.
struct Open<'a> {
    ret: i64,
    write: bool,
    classes: &'a [OpenClass],
    file: Option<&'a FileRef>,
    path: &'a str,
    rdev: &'a str,
    fs: &'a str,
    fs_path: &'a str,
    grandparent: &'a str,
    foreign: Option<&'a JoinedNamespace>,
}

impl Open<'_> {
    fn has(&self, class: OpenClass) -> bool {
        self.classes.contains(&class)
    }
    fn name(&self) -> &str {
        self.file.map_or("", |f| f.name.as_str())
    }
    /// The path the caller gave, else `parent/name`.
    fn shown(&self) -> String {
        if !self.path.is_empty() {
            return self.path.to_owned();
        }
        match self.file {
            Some(f) if !f.parent.is_empty() => format!("{}/{}", f.parent, f.name),
            Some(f) => f.name.clone(),
            None => String::new(),
        }
    }
    fn details(&self) -> Value {
        json!({
            "path": self.shown(),
            "ret": self.ret,
            "write": self.write,
            "fs": self.fs,
            "rdev": self.rdev,
            "file": self.file,
            "classes": self.classes,
        })
    }
}

/// What every open rule reads.
const OPENS: &[Input] = &[Input::Kind(EventKind::FileOpen)];

/// A workload's file-open event.
fn open(e: &Event) -> Option<(&Container, Open<'_>)> {
    let Payload::FileOpen {
        ret,
        write,
        classes,
        file,
        path,
        rdev,
        fs,
        fs_path,
        grandparent,
        foreign_mnt_ns,
        ..
    } = &e.data
    else {
        return None;
    };
    let c = workload(e)?;
    Some((
        c,
        Open {
            ret: *ret,
            write: *write,
            classes,
            file: file.as_ref(),
            path,
            rdev,
            fs,
            fs_path,
            grandparent,
            foreign: foreign_mnt_ns.as_ref(),
        },
    ))
}

pub struct ReleaseAgent;

impl Check for ReleaseAgent {
    const INFO: &'static RuleInfo = &RuleInfo {
        id: "cgroup-release-agent-write",
        severity: Severity::Critical,
        mitre: "T1611",
        title: "Container wrote to a cgroup v1 release_agent or notify_on_release",
        explanation: "A process in a container opened a cgroup v1 `release_agent` or \
            `notify_on_release` file for writing. The kernel runs the program named in \
            release_agent as root on the host whenever a cgroup with notify_on_release empties: \
            writing it from a container (after mounting cgroupfs, CVE-2022-0492) is a complete \
            escape. Check the value now in release_agent on the host, whether a usermode-helper \
            alert followed, and restore it; the container must not keep CAP_SYS_ADMIN.",
        scope: "write-open of a cgroup v1 `release_agent` / `notify_on_release` from a container",
        inputs: OPENS,
        fixtures: Fixtures::Recorded(&["release-agent"]),
        ..RuleInfo::BASE
    };

    fn check(e: &Event) -> Option<Finding> {
        let (c, o) = open(e)?;
        if !o.has(OpenClass::CgroupRelease) || o.ret < 0 {
            return None;
        }
        Some(Finding::new(
            format!(
                "{} opened cgroup {} for writing: the host kernel runs release_agent as root; check and restore it.",
                who(e, c),
                o.name()
            ),
            o.details(),
        ))
    }

    #[cfg(test)]
    fn examples() -> Vec<Example> {
        cases::release_agent()
    }
}

pub struct Sysrq;

impl Check for Sysrq {
    const INFO: &'static RuleInfo = &RuleInfo {
        id: "sysrq-trigger-write",
        severity: Severity::High,
        mitre: "T1529",
        title: "Container opened /proc/sysrq-trigger for writing",
        explanation: "Writing a letter to /proc/sysrq-trigger makes the host kernel act at once: \
            reboot (b), crash (c), kill every process (i), remount read-only (u). It is not \
            namespaced, so from a container it is a host-wide denial of service, or a way to force \
            a crash dump. Check which command was written and whether the host rebooted; the \
            container should not see a writable /proc.",
        scope: "write-open of /proc/sysrq-trigger from a container (attempts count)",
        inputs: OPENS,
        kernel: &[KernelDependency {
            feature: KernelFeature::MagicSysrq,
            without: Without::Note,
            text: "this kernel has no /proc/sysrq-trigger (CONFIG_MAGIC_SYSRQ off): attempts \
                to open it are reported, nothing can be triggered",
        }],
        fixtures: Fixtures::Recorded(&["sysrq", "compat-sysrq"]),
        ..RuleInfo::BASE
    };

    fn check(e: &Event) -> Option<Finding> {
        let (c, o) = open(e)?;
        let opened = o.has(OpenClass::ProcEntry) && o.name() == "sysrq-trigger";
        // A kernel without CONFIG_MAGIC_SYSRQ has no such file: the attempt is still reported.
        let tried = o.has(OpenClass::Failed) && o.path == "/proc/sysrq-trigger";
        if !(o.write && (opened || tried)) {
            return None;
        }
        let outcome = if opened { "opened" } else { "tried to open" };
        Some(Finding::new(
            format!(
                "{} {outcome} /proc/sysrq-trigger for writing (host reboot, crash or kill-all); find out why it has a writable /proc.",
                who(e, c)
            ),
            o.details(),
        ))
    }

    #[cfg(test)]
    fn examples() -> Vec<Example> {
        cases::sysrq()
    }
}

pub struct KernelMemory;

impl Check for KernelMemory {
    const INFO: &'static RuleInfo = &RuleInfo {
        id: "kernel-memory-access",
        severity: Severity::Critical,
        mitre: "T1611",
        title: "Container opened /dev/mem, /dev/kmem, /dev/port or /proc/kcore",
        explanation: "These files expose physical memory, kernel memory or I/O ports of the host. \
            Reading them leaks every secret on the machine; writing them rewrites the running \
            kernel. Attempts count too (a /dev/mem that refuses with ENXIO or EPERM still shows \
            intent). Check the device list and capabilities of the container (CAP_SYS_RAWIO, \
            privileged) and what it read.",
        scope: "open of /dev/mem, /dev/kmem, /dev/port or /proc/kcore (refused attempts count)",
        inputs: OPENS,
        kernel: &[KernelDependency {
            feature: KernelFeature::DevMem,
            without: Without::Note,
            text: "this kernel has no /dev/mem driver: opens fail with ENXIO and are reported \
                as attempts",
        }],
        fixtures: Fixtures::Recorded(&["dev-mem"]),
        ..RuleInfo::BASE
    };

    fn check(e: &Event) -> Option<Finding> {
        let (c, o) = open(e)?;
        let hit = o.has(OpenClass::MemDevice)
            || (o.has(OpenClass::ProcEntry) && o.name() == "kcore" && o.ret >= 0)
            || (o.has(OpenClass::Failed) && KERNEL_MEMORY_PATHS.contains(&o.path));
        if !hit {
            return None;
        }
        let outcome = if o.ret < 0 { "tried to open" } else { "opened" };
        Some(Finding::new(
            format!(
                "{} {outcome} {} (host kernel memory); check the container's devices and capabilities.",
                who(e, c),
                o.shown()
            ),
            o.details(),
        ))
    }

    #[cfg(test)]
    fn examples() -> Vec<Example> {
        cases::kernel_memory()
    }
}

const KERNEL_MEMORY_PATHS: [&str; 4] = ["/dev/mem", "/dev/kmem", "/dev/port", "/proc/kcore"];

pub struct BlockDevice;

impl Check for BlockDevice {
    const INFO: &'static RuleInfo = &RuleInfo {
        id: "raw-block-device-open",
        severity: Severity::High,
        mitre: "T1006",
        title: "Container opened a raw block device",
        explanation: "A process in a container opened a block device. With the host's disk as a \
            raw device, a filesystem can be read or written around every permission (debugfs, \
            dd), which reaches all host data. Check the devices given to the container and \
            whether it was opened for writing.",
        scope: "open of a block device from a container (refused attempts count)",
        inputs: OPENS,
        fixtures: Fixtures::Recorded(&["block"]),
        ..RuleInfo::BASE
    };

    fn check(e: &Event) -> Option<Finding> {
        let (c, o) = open(e)?;
        if !o.has(OpenClass::BlockDevice) {
            return None;
        }
        let mode = if o.write { "read-write" } else { "read-only" };
        // A refused open (device cgroup, LSM) still shows the intent.
        let outcome = if o.ret < 0 { "tried to open" } else { "opened" };
        Some(Finding::new(
            format!(
                "{} {outcome} block device {} ({}) {mode}; check which devices the container was given.",
                who(e, c),
                o.shown(),
                o.rdev
            ),
            o.details(),
        ))
    }

    #[cfg(test)]
    fn examples() -> Vec<Example> {
        cases::block_device()
    }
}

pub struct ProcRoot;

impl Check for ProcRoot {
    const INFO: &'static RuleInfo = &RuleInfo {
        id: "host-fs-via-proc-root",
        severity: Severity::High,
        mitre: "T1611",
        title: "Container reached the host filesystem through /proc/PID/root",
        explanation: "A process in a container opened a file that lives in the mount namespace of \
            the host (or of another container), typically through /proc/PID/root of a process \
            outside its own — possible when the container shares the host's PID namespace. It can \
            read and write the host's files as if it were there. Check the file (details) and why \
            the container sees host processes.",
        scope: "a file opened in the mount namespace of the host or another container (/proc/PID/root)",
        inputs: OPENS,
        fixtures: Fixtures::Recorded(&["proc-root", "iouring-proc-root", "cwd-leak"]),
        ..RuleInfo::BASE
    };

    fn check(e: &Event) -> Option<Finding> {
        let (c, o) = open(e)?;
        let foreign = o.foreign?;
        let whose = match &foreign.owner {
            NsOwner::Host => "the host".to_owned(),
            NsOwner::Container { id, .. } if *id != c.id => format!("container {id}"),
            _ => return None,
        };
        Some(Finding::new(
            format!(
                "{} opened {} in the mount namespace of {whose}; check what it read or wrote there.",
                who(e, c),
                o.shown()
            ),
            json!({ "path": o.shown(), "write": o.write, "mnt_ns": foreign.inode, "owner": whose, "file": o.file }),
        ))
    }

    #[cfg(test)]
    fn examples() -> Vec<Example> {
        cases::proc_root()
    }
}

pub struct RuntimeBinary;

impl Check for RuntimeBinary {
    const INFO: &'static RuleInfo = &RuleInfo {
        id: "runtime-binary-overwrite",
        severity: Severity::Critical,
        mitre: "T1611",
        title: "Container opened a container runtime binary for writing",
        explanation: "A process in a container opened the binary of a container runtime (runc, \
            crun, containerd-shim, …) for writing, or /proc/PID/exe of one. Overwriting runc \
            through /proc/self/exe while it execs into the container is CVE-2019-5736: the next \
            runtime call runs the attacker's code as root on the host. Check the runtime binary's \
            checksum against the package, and the runtime version.",
        scope: "write-open of a container runtime binary or of /proc/PID/exe (CVE-2019-5736 pattern)",
        inputs: OPENS,
        fixtures: Fixtures::Recorded(&["proc-exe"]),
        ..RuleInfo::BASE
    };

    fn check(e: &Event) -> Option<Finding> {
        let (c, o) = open(e)?;
        let hit = o.has(OpenClass::RuntimeBinary) || (o.write && is_proc_exe(o.path));
        if !hit {
            return None;
        }
        Some(Finding::new(
            format!(
                "{} opened {} for writing (runtime binary overwrite, CVE-2019-5736 pattern); verify the runtime binary on the host.",
                who(e, c),
                o.shown()
            ),
            o.details(),
        ))
    }

    #[cfg(test)]
    fn examples() -> Vec<Example> {
        cases::runtime_binary()
    }
}

/// `/proc/<pid or self>/exe`.
fn is_proc_exe(path: &str) -> bool {
    path.strip_prefix("/proc/")
        .and_then(|r| r.strip_suffix("/exe"))
        .is_some_and(|pid| pid == "self" || pid.bytes().all(|b| b.is_ascii_digit()))
}

pub struct DebugRecon;

impl Check for DebugRecon {
    const INFO: &'static RuleInfo = &RuleInfo {
        id: "kernel-debug-recon",
        severity: Severity::Low,
        mitre: "T1082",
        title: "Container read kernel debugging interfaces",
        explanation: "A process in a container opened /proc/kallsyms, /proc/sched_debug or a file \
            on debugfs/tracefs. These reveal kernel addresses and host-wide scheduling and process \
            details used to prepare kernel exploits (defeating KASLR). Low severity on its own; \
            raise attention if an exploit-like alert from the same container follows.",
        scope: "reads of /proc/kallsyms, /proc/sched_debug, debugfs/tracefs from a container",
        inputs: OPENS,
        fixtures: Fixtures::Recorded(&["recon"]),
        ..RuleInfo::BASE
    };

    fn check(e: &Event) -> Option<Finding> {
        let (c, o) = open(e)?;
        let hit = o.has(OpenClass::Debugfs)
            || (o.has(OpenClass::ProcEntry) && matches!(o.name(), "kallsyms" | "sched_debug"));
        if !hit || o.ret < 0 {
            return None;
        }
        Some(Finding::new(
            format!("{} read kernel debug interface {}.", who(e, c), o.shown()),
            o.details(),
        ))
    }

    #[cfg(test)]
    fn examples() -> Vec<Example> {
        cases::debug_recon()
    }
}

/// binfmt_misc and uevent_helper writes count as host kernel settings written from a container.
pub fn kernel_setting_file(e: &Event) -> Option<Finding> {
    let (c, o) = open(e)?;
    let hit =
        o.write && (o.has(OpenClass::BinfmtMisc) || o.has(OpenClass::UeventHelper)) && o.ret >= 0;
    if !hit {
        return None;
    }
    Some(Finding::new(
        format!(
            "{} opened {} for writing: a host-wide kernel setting that can make the kernel run a program as root; check its value on the host.",
            who(e, c),
            o.shown()
        ),
        o.details(),
    ))
}

/// Opening /dev/userfaultfd (the device form of the syscall).
pub fn userfaultfd_device(e: &Event) -> Option<Finding> {
    let (c, o) = open(e)?;
    if !o.has(OpenClass::UserfaultfdDevice) || o.ret < 0 {
        return None;
    }
    Some(Finding::new(
        format!("{} opened /dev/userfaultfd.", who(e, c)),
        o.details(),
    ))
}

/// What a [`OpenClass::Hardware`] open reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hardware {
    /// An MSR device (char 202:CPU), whatever the node's name.
    Msr { cpu: u32 },
    /// A PCI device's configuration space (sysfs `config`, /proc/bus/pci/BUS/DEV.FN).
    PciConfig,
    /// A PCI device's BAR (sysfs `resource<N>`, `resource<N>_wc`): device memory or ports.
    PciBar,
}

/// A PCI address as sysfs names a device directory: `DDDD:BB:DD.F` (the domain may be longer).
fn is_pci_address(name: &str) -> bool {
    let Some((domain, rest)) = name.split_once(':') else {
        return false;
    };
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    let Some((bus, devfn)) = rest.split_once(':') else {
        return false;
    };
    let Some((dev, func)) = devfn.split_once('.') else {
        return false;
    };
    domain.len() >= 4
        && hex(domain, domain.len())
        && hex(bus, 2)
        && hex(dev, 2)
        && func.len() == 1
        && func.bytes().all(|b| b.is_ascii_digit())
}

/// The hardware a workload's open reached, and the open.
fn hardware_open(e: &Event) -> Option<(&Container, Open<'_>, Hardware)> {
    let (c, o) = open(e)?;
    if !o.has(OpenClass::Hardware) {
        return None;
    }
    let major = o
        .rdev
        .split_once(':')
        .and_then(|(m, n)| Some((m.parse::<u32>().ok()?, n.parse::<u32>().ok()?)));
    if let Some((escapewatch_common::abi::MSR_MAJOR, cpu)) = major {
        return Some((c, o, Hardware::Msr { cpu }));
    }
    let f = o.file?;
    let hw = match o.fs {
        "sysfs" if is_pci_address(&f.parent) && f.name == "config" => Hardware::PciConfig,
        "sysfs"
            if is_pci_address(&f.parent)
                && f.name
                    .strip_prefix("resource")
                    .is_some_and(|n| n.bytes().next().is_some_and(|b| b.is_ascii_digit())) =>
        {
            Hardware::PciBar
        }
        "proc"
            if o.grandparent == "pci"
                && f.parent.len() == 2
                && f.parent.bytes().all(|b| b.is_ascii_hexdigit()) =>
        {
            Hardware::PciConfig
        }
        _ => return None,
    };
    Some((c, o, hw))
}

/// An open by which a workload reaches hardware past the kernel: an MSR device (any open,
/// refused ones included), a PCI device's configuration space opened for writing, or one of
/// its BARs opened at all. Reading configuration space is what lspci does: not alerted.
pub fn hardware(e: &Event) -> Option<Finding> {
    let (c, o, hw) = hardware_open(e)?;
    let mode = if o.write { "for writing" } else { "read-only" };
    let outcome = if o.ret < 0 { "tried to open" } else { "opened" };
    let (what, detail) = match hw {
        Hardware::Msr { cpu } => (
            format!("the MSR device of CPU {cpu} ({}) {mode}", o.shown()),
            json!({ "device": "msr", "cpu": cpu }),
        ),
        Hardware::PciConfig if o.write => (
            format!("the PCI configuration space {} {mode}", o.shown()),
            json!({ "device": "pci_config" }),
        ),
        Hardware::PciConfig => return None,
        Hardware::PciBar => (
            format!("the PCI BAR {} {mode} (device memory)", o.shown()),
            json!({ "device": "pci_bar" }),
        ),
    };
    let mut details = o.details();
    if let (Some(d), Value::Object(extra)) = (details.as_object_mut(), detail) {
        d.extend(extra);
        if let Some(f) = o.file
            && !matches!(hw, Hardware::Msr { .. })
        {
            d.insert("pci_device".into(), json!(f.parent));
        }
    }
    Some(Finding::new(
        format!(
            "{} {outcome} {what}: raw hardware access, around the kernel (what kernel lockdown forbids).",
            who(e, c)
        ),
        details,
    ))
}

#[cfg(test)]
mod cases;
mod interfaces;

pub use interfaces::{KernelInterfaceWrite, SecurityPolicyWrite};
