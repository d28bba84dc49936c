//! Rules on what kernel lockdown guards, asked for from a container: loading a kernel to boot
//! into (kexec) and raw hardware access around the kernel (port I/O rights, MSRs, PCI
//! configuration space and BARs). A container without the capability is refused before the
//! kernel's lockdown check (EPERM): the attempt is the alert.

use escapewatch_common::kind::EventKind;
use serde_json::json;

use super::{
    Check, Fixtures, Input, RuleInfo, files,
    simple::{Finding, who, workload},
};
use crate::{
    detect::Severity,
    model::{Container, Event, Payload, WatchedSyscall as S},
};

/// `kexec_load` flag: load the crash kernel, not the one to boot (include/uapi/linux/kexec.h).
const KEXEC_ON_CRASH: u64 = 0x1;

/// A workload's call of one of `names`: its container, name, result and arguments.
fn call<'a>(e: &'a Event, names: &[S]) -> Option<(&'a Container, S, i64, &'a [u64; 4])> {
    let Payload::Syscall {
        name, ret, args, ..
    } = &e.data
    else {
        return None;
    };
    if !names.contains(name) {
        return None;
    }
    Some((workload(e)?, *name, *ret, args))
}

/// "got" / "tried to get" by the call's result.
fn outcome(ret: i64, done: &'static str, tried: &'static str) -> &'static str {
    if ret >= 0 { done } else { tried }
}

pub struct KexecLoad;

impl Check for KexecLoad {
    const INFO: &'static RuleInfo = &RuleInfo {
        id: "kexec-load",
        severity: Severity::Critical,
        mitre: "T1014",
        title: "Container tried to load a kernel with kexec",
        scope: "kexec_load / kexec_file_load from a container, 64- and 32-bit entries (attempts count)",
        explanation: "A process in a container called kexec_load or kexec_file_load: it asked \
            the host to load a kernel of its choosing to boot into (or to run on the next \
            crash). A kernel loaded that way owns the machine, below every defense, and survives \
            nothing the host set up. No workload needs it; with CAP_SYS_BOOT (privileged) it \
            succeeds unless lockdown or kexec_load_disabled stops it. Attempts count, refused \
            ones included. Check the container's capabilities, `/sys/kernel/kexec_loaded` and \
            `/sys/kernel/kexec_crash_loaded` on the host.",
        inputs: &[
            Input::Syscall(S::KexecLoad),
            Input::Syscall(S::KexecFileLoad),
        ],
        fixtures: Fixtures::Recorded(&["kexec", "kexec-refused", "compat-kexec"]),
        ..RuleInfo::BASE
    };

    fn check(e: &Event) -> Option<Finding> {
        let (c, name, ret, args) = call(e, &[S::KexecLoad, S::KexecFileLoad])?;
        let verb = outcome(ret, "loaded", "tried to load");
        let (what, details) = match name {
            S::KexecLoad => (
                if args[3] & KEXEC_ON_CRASH != 0 {
                    "a crash kernel"
                } else {
                    "a kernel"
                },
                json!({
                    "syscall": name,
                    "ret": ret,
                    "entry": args[0],
                    "nr_segments": args[1],
                    "flags": format!("{:#x}", args[3]),
                }),
            ),
            _ => (
                "a kernel",
                json!({
                    "syscall": name,
                    "ret": ret,
                    "kernel_fd": args[0] as i32,
                    "initrd_fd": args[1] as i32,
                }),
            ),
        };
        Some(Finding::new(
            format!(
                "{} {verb} {what} to boot into with {}; check /sys/kernel/kexec_loaded on the host.",
                who(e, c),
                name.name()
            ),
            details,
        ))
    }

    #[cfg(test)]
    fn examples() -> Vec<super::examples::Example> {
        use super::examples::{Example, by_runtime, in_container, on_host};
        vec![
            Example::alert(
                "a refused kexec_load",
                vec![in_container(
                    "kexec",
                    syscall(S::KexecLoad, -1, [0x100_0000, 3, 0x7000, 0]),
                )],
                |a| {
                    assert_eq!(a.details["syscall"], "kexec_load");
                    assert_eq!(a.details["ret"], -1);
                    assert_eq!(a.details["nr_segments"], 3);
                    assert_eq!(a.details["flags"], "0x0");
                    assert!(
                        a.summary.contains("tried to load a kernel"),
                        "{}",
                        a.summary
                    );
                },
            ),
            Example::alert(
                "a crash kernel loaded from files",
                vec![in_container(
                    "kexec",
                    syscall(S::KexecFileLoad, 0, [3, u64::from(u32::MAX), 10, 0x7000]),
                )],
                |a| {
                    assert_eq!(a.details["syscall"], "kexec_file_load");
                    assert_eq!(a.details["kernel_fd"], 3);
                    assert_eq!(a.details["initrd_fd"], -1);
                    assert!(a.summary.contains(" loaded a kernel"), "{}", a.summary);
                },
            ),
            Example::silent(
                "the host's kdump service, the runtime, another syscall",
                vec![
                    on_host("kexec", syscall(S::KexecFileLoad, 0, [3, 4, 10, 0])),
                    by_runtime(syscall(S::KexecLoad, -1, [0; 4])),
                    in_container("kexec", syscall(S::Bpf, -1, [0; 4])),
                ],
            ),
        ]
    }
}

pub struct RawHardware;

impl Check for RawHardware {
    const INFO: &'static RuleInfo = &RuleInfo {
        id: "raw-hardware-access",
        severity: Severity::High,
        mitre: "T1611",
        title: "Container tried to reach hardware around the kernel",
        scope: "iopl / ioperm (port I/O rights), an MSR device (by device number, any name), a PCI device's config space opened for writing or its BARs (sysfs, /proc/bus/pci) from a container (attempts count)",
        explanation: "A process in a container asked for raw access to the host's hardware: \
            I/O port rights (iopl, ioperm), a CPU's model-specific registers (/dev/cpu/N/msr, \
            recognised by its device number 202:N whatever the node is called), or a PCI \
            device's configuration space (written) or memory BARs (sysfs resource<N>, \
            /proc/bus/pci). These are what kernel lockdown forbids even to root: with them a \
            process reprograms devices to DMA over kernel memory, turns off CPU protections \
            (MSRs such as LSTAR, EFER) or reads other tenants' data, so no isolation holds. \
            Reading a PCI device's configuration space (lspci) and the CPUID device is not \
            alerted. Attempts count (EPERM without CAP_SYS_RAWIO, ENXIO without the driver). \
            Check the container's capabilities and devices; DPDK-style userspace drivers are the \
            legitimate users of PCI BARs.",
        inputs: &[
            Input::Syscall(S::Iopl),
            Input::Syscall(S::Ioperm),
            Input::Kind(EventKind::FileOpen),
        ],
        fixtures: Fixtures::Recorded(&["ioport", "ioport-refused", "msr", "pci-config"]),
        ..RuleInfo::BASE
    };

    fn check(e: &Event) -> Option<Finding> {
        let Some((c, name, ret, args)) = call(e, &[S::Iopl, S::Ioperm]) else {
            return files::hardware(e);
        };
        let (what, details) = if name == S::Iopl {
            (
                format!("I/O privilege level {} with iopl", args[0] as u32),
                json!({ "syscall": name, "ret": ret, "level": args[0] as u32 }),
            )
        } else {
            (
                format!(
                    "access to {} I/O ports from {:#x} with ioperm",
                    args[1], args[0]
                ),
                json!({ "syscall": name, "ret": ret, "from": args[0], "num": args[1] }),
            )
        };
        Some(Finding::new(
            format!(
                "{} {} {what}: raw port I/O on the host (what kernel lockdown forbids).",
                who(e, c),
                outcome(ret, "got", "tried to get")
            ),
            details,
        ))
    }

    #[cfg(test)]
    fn examples() -> Vec<super::examples::Example> {
        use super::examples::{Example, in_container, on_host};
        use crate::model::{FileRef, OpenClass};
        let hw = |path: &str, fs: &str, parent: &str, gp: &str, rdev: &str, write, ret| {
            let name = path.rsplit('/').next().unwrap_or_default();
            Payload::FileOpen {
                ret,
                flags: if write { 0o2 } else { 0 },
                write,
                classes: if ret < 0 {
                    vec![OpenClass::Failed, OpenClass::Hardware]
                } else {
                    vec![OpenClass::Hardware]
                },
                fs: fs.into(),
                file_type: if rdev.is_empty() { "regular" } else { "char" }.into(),
                rdev: rdev.into(),
                file: (ret >= 0).then(|| FileRef {
                    ino: 77,
                    dev: "0:21".into(),
                    name: name.into(),
                    parent: parent.into(),
                }),
                grandparent: gp.into(),
                path: path.into(),
                fs_path: String::new(),
                foreign_mnt_ns: None,
            }
        };
        let config = "/sys/bus/pci/devices/0000:00:02.0/config";
        vec![
            Example::alert(
                "iopl(3) refused",
                vec![in_container("x", syscall(S::Iopl, -1, [3, 0, 0, 0]))],
                |a| {
                    assert_eq!(a.details["syscall"], "iopl");
                    assert_eq!(a.details["level"], 3);
                    assert_eq!(a.details["ret"], -1);
                    assert!(
                        a.summary.contains("tried to get I/O privilege level 3"),
                        "{}",
                        a.summary
                    );
                },
            ),
            Example::alert(
                "ioperm granted",
                vec![in_container("x", syscall(S::Ioperm, 0, [0x80, 1, 1, 0]))],
                |a| {
                    assert_eq!(a.details["syscall"], "ioperm");
                    assert_eq!(a.details["from"], 0x80);
                    assert_eq!(a.details["num"], 1);
                },
            ),
            Example::alert(
                "an MSR node made under another name, read-only",
                vec![in_container(
                    "rdmsr",
                    hw("/tmp/cpu0", "devtmpfs", "tmp", "", "202:0", false, 3),
                )],
                |a| {
                    assert_eq!(a.details["device"], "msr");
                    assert_eq!(a.details["cpu"], 0);
                    assert_eq!(a.details["rdev"], "202:0");
                    assert!(
                        a.summary.contains("opened the MSR device of CPU 0"),
                        "{}",
                        a.summary
                    );
                },
            ),
            Example::alert(
                "a PCI config space write-open",
                vec![in_container(
                    "setpci",
                    hw(config, "sysfs", "0000:00:02.0", "pci0000:00", "", true, 3),
                )],
                |a| {
                    assert_eq!(a.details["device"], "pci_config");
                    assert_eq!(a.details["pci_device"], "0000:00:02.0");
                    assert_eq!(a.details["write"], true);
                },
            ),
            Example::alert(
                "a PCI BAR opened read-only",
                vec![in_container(
                    "x",
                    hw(
                        "/sys/bus/pci/devices/0000:00:02.0/resource0",
                        "sysfs",
                        "0000:00:02.0",
                        "pci0000:00",
                        "",
                        false,
                        4,
                    ),
                )],
                |a| assert_eq!(a.details["device"], "pci_bar"),
            ),
            Example::alert(
                "a /proc/bus/pci write-open",
                vec![in_container(
                    "x",
                    hw("/proc/bus/pci/00/02.0", "proc", "00", "pci", "", true, 3),
                )],
                |a| assert_eq!(a.details["device"], "pci_config"),
            ),
            Example::silent(
                "lspci (config read, resource list), a config file outside PCI, a host tool, iopl(0) style calls of other syscalls",
                vec![
                    in_container(
                        "lspci",
                        hw(config, "sysfs", "0000:00:02.0", "pci0000:00", "", false, 3),
                    ),
                    in_container(
                        "lspci",
                        hw("/proc/bus/pci/00/02.0", "proc", "00", "pci", "", false, 3),
                    ),
                    in_container(
                        "lspci",
                        hw(
                            "/sys/bus/pci/devices/0000:00:02.0/resource",
                            "sysfs",
                            "0000:00:02.0",
                            "pci0000:00",
                            "",
                            false,
                            3,
                        ),
                    ),
                    in_container(
                        "x",
                        hw(
                            "/sys/kernel/foo/config",
                            "sysfs",
                            "foo",
                            "kernel",
                            "",
                            true,
                            3,
                        ),
                    ),
                    in_container(
                        "cpuid",
                        hw(
                            "/dev/cpu/0/cpuid",
                            "devtmpfs",
                            "0",
                            "cpu",
                            "203:0",
                            false,
                            3,
                        ),
                    ),
                    on_host("x", syscall(S::Iopl, 0, [3, 0, 0, 0])),
                    on_host(
                        "setpci",
                        hw(config, "sysfs", "0000:00:02.0", "pci0000:00", "", true, 3),
                    ),
                ],
            ),
        ]
    }
}

/// Lockdown reasons the kernel checks for things an ordinary container does: reading
/// /sys/power/state or /sys/power/disk asks whether hibernation is available.
const ROUTINE_REASONS: [&str; 1] = ["hibernation"];

/// What a reason is about, for the summary.
fn reason_text(reason: &str) -> &str {
    match reason {
        "ioport" => "raw I/O port access",
        "msr" => "writing a CPU model-specific register",
        "kexec" => "loading a kernel with kexec",
        "pci_access" => "writing PCI configuration space or mapping a BAR",
        "dev_mem" => "/dev/mem, /dev/kmem or /dev/port",
        "kcore" => "/proc/kcore",
        "module_signature" | "module_parameters" => "a kernel module",
        "debugfs" => "debugfs",
        "tracefs" => "tracefs",
        "bpf_read_kernel" => "an eBPF program reading kernel memory",
        "bpf_write_user" => "an eBPF program writing user memory",
        "perf" => "perf kernel data",
        "acpi_tables" => "loading ACPI tables",
        "mmiotrace" => "MMIO tracing",
        _ => "an operation kernel lockdown guards",
    }
}

pub struct LockdownReach;

impl Check for LockdownReach {
    const INFO: &'static RuleInfo = &RuleInfo {
        id: "kernel-lockdown-reach",
        severity: Severity::High,
        mitre: "T1611",
        title: "Container reached the kernel's lockdown check",
        scope: "the kernel's lockdown check (security_locked_down, BPF LSM) asked by a container task, with the kernel's reason: port I/O, MSR writes, kexec, PCI writes, /dev/mem, debugfs, bpf kernel reads... whichever entry led there (kernels with BPF LSM)",
        explanation: "A process in a container got as far as the kernel's lockdown check             (security_locked_down): it holds the capability for, and asked for, something             kernel lockdown exists to forbid even to root: raw I/O ports, writing CPU MSRs,             kexec, PCI configuration writes or BAR maps, /dev/mem, kernel-reading eBPF,             debugfs, ACPI tables, unsafe module parameters. The kernel names the reason, so             every entry is covered, listed or not. It is checked whether or not lockdown is             enabled: on a host without lockdown the operation went on. Reading             /sys/power/state (the hibernation check) is not alerted. Only kernels with BPF LSM             run the check's program; elsewhere `raw-hardware-access` and `kexec-load` see the             listed entries. Check the container's capabilities and what the reason says it             touched.",
        inputs: &[Input::Kind(EventKind::TaskChanged)],
        fixtures: Fixtures::Unavailable(
            "BPF LSM runs only in the QEMU guests of `cargo xtask vm-test` (this host's kernel              refuses BPF LSM programs), and the guests' event logs do not leave the guest",
        ),
        ..RuleInfo::BASE
    };

    fn check(e: &Event) -> Option<Finding> {
        let Payload::TaskChanged {
            change: crate::model::TaskChange::LockedDown,
            lockdown: Some(l),
            ..
        } = &e.data
        else {
            return None;
        };
        let c = workload(e)?;
        if ROUTINE_REASONS.contains(&l.reason.as_str()) {
            return None;
        }
        Some(Finding::new(
            format!(
                "{} reached the kernel's lockdown check for {} (LOCKDOWN_{}): it holds the capability and asked for what lockdown forbids; without lockdown on, the kernel let it through.",
                who(e, c),
                reason_text(&l.reason),
                l.reason.to_ascii_uppercase()
            ),
            json!({ "reason": l.reason, "reason_value": l.value }),
        ))
    }

    #[cfg(test)]
    fn examples() -> Vec<super::examples::Example> {
        use super::examples::{Example, by_runtime, in_container, on_host};
        use crate::model::{Lockdown, TaskChange};
        let check = |reason: &str, value| Payload::TaskChanged {
            change: TaskChange::LockedDown,
            before: None,
            lockdown: Some(Lockdown {
                reason: reason.into(),
                value,
            }),
        };
        vec![
            Example::alert(
                "iopl(3) by a privileged container",
                vec![in_container("x", check("ioport", 11))],
                |a| {
                    assert_eq!(a.details["reason"], "ioport");
                    assert_eq!(a.details["reason_value"], 11);
                    assert!(
                        a.summary.contains("raw I/O port access (LOCKDOWN_IOPORT)"),
                        "{}",
                        a.summary
                    );
                },
            ),
            Example::alert(
                "a reason this build has no text for",
                vec![in_container("x", check("reason_40", 40))],
                |a| assert_eq!(a.details["reason"], "reason_40"),
            ),
            Example::silent(
                "/sys/power/state read in a container, the host's kexec service, the runtime, a creds change",
                vec![
                    in_container("systemd", check("hibernation", 9)),
                    on_host("kexec", check("kexec", 6)),
                    by_runtime(check("ioport", 11)),
                    in_container(
                        "su",
                        Payload::TaskChanged {
                            change: TaskChange::Creds,
                            before: None,
                            lockdown: None,
                        },
                    ),
                ],
            ),
        ]
    }
}

#[cfg(test)]
fn syscall(name: S, ret: i64, args: [u64; 4]) -> Payload {
    Payload::Syscall {
        name,
        ret,
        args,
        target: None,
    }
}
