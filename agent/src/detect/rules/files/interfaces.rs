//! Writes to the host's security and integrity interfaces: the LSM / integrity policy
//! filesystems (selinuxfs, securityfs, smackfs) and the kernel's sysfs/procfs knobs outside
//! /proc/sys (module parameters, firmware, /sys/kernel, IRQ affinity, bus interfaces).
//!
//! The kernel classifies a successful (or LSM-seen) open by what was opened: the superblock's
//! magic, and for sysfs/procfs the top directory below the filesystem's root, walked up the
//! dentries (`fs_path`): a bind mount, symlink, other mount point or io_uring open changes
//! none of it. A refused open (a read-only /sys or /proc/irq gives EROFS before any file is
//! opened; EACCES, EPERM) carries only the caller's path: it is matched after lexical
//! normalisation (`//`, `.`, `..`); a relative one is joined to the directory it started
//! from (working directory or dfd), which the kernel reports when that lies on sysfs, procfs
//! or a security filesystem. Symlinks in a refused path are not followed.

use serde_json::{Value, json};

#[cfg(test)]
use super::super::examples::Example;
use super::{
    super::{
        Check, Fixtures, RuleInfo,
        simple::{Finding, who},
    },
    OPENS, Open, open,
};
use crate::{
    detect::Severity,
    model::{Event, OpenClass},
};

/// Errnos of a refused write-open that count as an attempt: a read-only mount, DAC, an LSM
/// or capability refusal.
const REFUSED: [i64; 3] = [-30, -13, -1];

/// `path` without empty, `.` and `..` components, when absolute.
fn lexical(path: &str) -> Option<String> {
    if !path.starts_with('/') {
        return None;
    }
    let mut parts: Vec<&str> = Vec::new();
    for p in path.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    Some(format!("/{}", parts.join("/")))
}

/// Where `fs` is mounted on a host.
fn host_mount(fs: &str) -> Option<&'static str> {
    match fs {
        "sysfs" => Some("/sys"),
        "proc" => Some("/proc"),
        _ => SECURITY_MOUNTS
            .iter()
            .find(|(f, _)| *f == fs)
            .map(|(_, m)| *m),
    }
}

/// The caller's path of a refused write-open, normalised, when it is an attempt at all. A
/// relative path is joined to the directory it started from when the kernel gave one (on
/// sysfs, procfs or a security filesystem: `fs` and `fs_path`); else it is not resolved.
fn refused_path(o: &Open<'_>) -> Option<String> {
    if !(o.has(OpenClass::Failed) && o.write && REFUSED.contains(&o.ret)) {
        return None;
    }
    if o.path.starts_with('/') {
        return lexical(o.path);
    }
    if o.fs_path.is_empty() || o.fs_path.contains('…') {
        return None;
    }
    lexical(&format!("{}{}/{}", host_mount(o.fs)?, o.fs_path, o.path))
}

/// `/a/b/...` is under `dir` (`/a`).
fn under(path: &str, dir: &str) -> bool {
    path.strip_prefix(dir).is_some_and(|r| r.starts_with('/'))
}

/// What the open reached: its canonical path, the area, whether it was refused.
struct Reached {
    canonical: String,
    area: &'static str,
    refused: bool,
}

impl Reached {
    fn details(&self, o: &Open<'_>) -> Value {
        json!({
            "path": o.shown(),
            "canonical": self.canonical,
            "area": self.area,
            "ret": o.ret,
            "refused": self.refused,
            "write": o.write,
            "fs": o.fs,
            "fs_path": o.fs_path,
            "file": o.file,
            "classes": o.classes,
        })
    }
    fn outcome(&self) -> &'static str {
        if self.refused {
            "tried to open"
        } else {
            "opened"
        }
    }
}

/// The policy interface of a security-filesystem path (`fs` its type, `rest` the path below
/// the filesystem's root).
fn policy_area(fs: &str, rest: &str) -> &'static str {
    let top = rest.trim_start_matches('/').split('/').next().unwrap_or("");
    match (fs, top) {
        ("selinuxfs", _) => "SELinux policy",
        ("smackfs", _) => "Smack policy",
        (_, "apparmor") => "AppArmor policy",
        (_, "ima") => "IMA policy",
        (_, "evm") => "EVM",
        (_, "lockdown") => "kernel lockdown",
        _ => "security interface",
    }
}

/// Where the security filesystems are mounted on a host, by type.
const SECURITY_MOUNTS: [(&str, &str); 3] = [
    ("securityfs", "/sys/kernel/security"),
    ("selinuxfs", "/sys/fs/selinux"),
    ("smackfs", "/sys/fs/smackfs"),
];

fn security_policy(o: &Open<'_>) -> Option<Reached> {
    if o.has(OpenClass::SecurityPolicy) && o.write {
        let mount = SECURITY_MOUNTS.iter().find(|(fs, _)| *fs == o.fs)?.1;
        let canonical = if o.fs_path.is_empty() {
            o.shown()
        } else {
            format!("{mount}{}", o.fs_path)
        };
        return Some(Reached {
            canonical,
            area: policy_area(o.fs, o.fs_path),
            refused: o.ret < 0,
        });
    }
    let path = refused_path(o)?;
    let (fs, mount) = SECURITY_MOUNTS.iter().find(|(_, m)| under(&path, m))?;
    let area = policy_area(fs, &path[mount.len()..]);
    Some(Reached {
        canonical: path,
        area,
        refused: true,
    })
}

pub struct SecurityPolicyWrite;

impl Check for SecurityPolicyWrite {
    const INFO: &'static RuleInfo = &RuleInfo {
        id: "host-security-policy-write",
        severity: Severity::Critical,
        mitre: "T1562.001",
        title: "Container opened the host's LSM or integrity policy for writing",
        scope: "write-open of selinuxfs, securityfs (AppArmor, IMA, EVM, lockdown) or smackfs from a container, by filesystem magic (refused attempts count)",
        explanation: "A process in a container opened a file of the kernel's security policy \
            interfaces for writing: selinuxfs (/sys/fs/selinux: enforce, load, booleans), \
            securityfs (/sys/kernel/security: AppArmor's .load, .replace and .remove, IMA's \
            policy, EVM, lockdown) or smackfs. None of them is namespaced: one write puts \
            SELinux in permissive mode, replaces or removes AppArmor profiles, or replaces the \
            IMA policy for the whole host and every container on it, the usual step before an \
            escape. The file is recognised by its filesystem's magic through any mount point (a \
            container with CAP_SYS_ADMIN can mount securityfs itself); a refused open (read-only \
            mount, EACCES, EPERM) is reported as an attempt, from the path the caller gave. \
            Check the host's policy now (getenforce, aa-status, the IMA policy), how the \
            container got the filesystem (its mounts, CAP_SYS_ADMIN, CAP_MAC_ADMIN), and \
            what else it did.",
        inputs: OPENS,
        fixtures: Fixtures::Recorded(&["security-policy"]),
        ..RuleInfo::BASE
    };

    fn check(e: &Event) -> Option<Finding> {
        let (c, o) = open(e)?;
        let r = security_policy(&o)?;
        Some(Finding::new(
            format!(
                "{} {} {} for writing: the {} of the whole host ({}); check the host's policy now and how the container reached it.",
                who(e, c),
                r.outcome(),
                r.canonical,
                r.area,
                if o.fs.is_empty() { "by path" } else { o.fs },
            ),
            r.details(&o),
        ))
    }

    #[cfg(test)]
    fn examples() -> Vec<Example> {
        cases::security_policy()
    }
}

/// The kernel-interface area of a path below /sys or /proc (`sysfs` which), if any: sysfs
/// kernel/ (but not the security, debug and tracing filesystems mounted there, nor
/// uevent_helper's own rule when the open succeeded), module/*/parameters/*, firmware/;
/// procfs irq/, bus/ (not bus/pci/).
fn kernel_area(sysfs: bool, rest: &str) -> Option<&'static str> {
    let parts: Vec<&str> = rest.split('/').filter(|p| !p.is_empty()).collect();
    let area = match (sysfs, parts.as_slice()) {
        (true, ["kernel", "security" | "debug" | "tracing", ..]) => return None,
        (true, ["kernel", _, ..]) => "host kernel setting",
        (true, ["module", _, "parameters", _]) => "host kernel module parameter",
        (true, ["firmware", _, ..]) => "host firmware interface",
        (false, ["irq", _, ..]) => "host IRQ setting",
        (false, ["bus", "pci", ..]) => return None,
        (false, ["bus", _, ..]) => "host bus interface",
        _ => return None,
    };
    Some(area)
}

fn kernel_interface(o: &Open<'_>) -> Option<Reached> {
    if o.has(OpenClass::KernelInterface) && o.write {
        let sysfs = match o.fs {
            "sysfs" => true,
            "proc" => false,
            _ => return None,
        };
        // Without the walk's path the kernel's class still stands (it saw the top
        // directory); deeper than the event carries, the middle is `…`.
        let rest = o.fs_path.replace('…', "x");
        let area = kernel_area(sysfs, &rest).or_else(|| {
            (o.fs_path.is_empty() || o.fs_path.contains('…')).then_some(if sysfs {
                "host kernel setting"
            } else {
                "host kernel interface"
            })
        })?;
        let canonical = if o.fs_path.is_empty() {
            o.shown()
        } else {
            format!("{}{}", if sysfs { "/sys" } else { "/proc" }, o.fs_path)
        };
        return Some(Reached {
            canonical,
            area,
            refused: o.ret < 0,
        });
    }
    let path = refused_path(o)?;
    let (sysfs, rest) = if let Some(r) = path.strip_prefix("/sys") {
        (true, r)
    } else {
        (false, path.strip_prefix("/proc")?)
    };
    let area = kernel_area(sysfs, rest)?;
    Some(Reached {
        canonical: path.clone(),
        area,
        refused: true,
    })
}

pub struct KernelInterfaceWrite;

impl Check for KernelInterfaceWrite {
    const INFO: &'static RuleInfo = &RuleInfo {
        id: "host-kernel-interface-write",
        severity: Severity::High,
        mitre: "T1611",
        title: "Container opened a host kernel interface for writing",
        scope: "write-open of sysfs /sys/kernel, /sys/module/*/parameters, /sys/firmware or procfs /proc/irq, /proc/bus (not pci) from a container (refused attempts count)",
        explanation: "A process in a container opened a host kernel interface outside /proc/sys \
            for writing: a /sys/kernel knob (mm, hugepages, kexec, profiling, ...), a module \
            parameter (/sys/module/*/parameters), a firmware interface (/sys/firmware: EFI \
            variables, ACPI), IRQ affinity (/proc/irq) or a bus interface (/proc/bus; PCI config \
            space has its own rule). None is namespaced: a write changes the whole host, weakens \
            a driver's checks or bricks firmware. It is recognised by the filesystem's magic and \
            the top directory below its root, walked in the kernel, through any mount point; a \
            refused open (a default container's read-only /sys and /proc/irq give EROFS, or \
            EACCES, EPERM) is reported as an attempt, from the path the caller gave. \
            uevent_helper writes have their own rule (sysctl-write-from-container). Check the \
            value on the host (details.canonical), restore it, and why the container has a \
            writable /sys or /proc.",
        inputs: OPENS,
        fixtures: Fixtures::Recorded(&["kernel-interface", "kernel-interface-attempt"]),
        ..RuleInfo::BASE
    };

    fn check(e: &Event) -> Option<Finding> {
        let (c, o) = open(e)?;
        let r = kernel_interface(&o)?;
        Some(Finding::new(
            format!(
                "{} {} {} for writing: a {} (not namespaced); check its value on the host and restore it.",
                who(e, c),
                r.outcome(),
                r.canonical,
                r.area,
            ),
            r.details(&o),
        ))
    }

    #[cfg(test)]
    fn examples() -> Vec<Example> {
        cases::kernel_interface()
    }
}

#[cfg(test)]
mod cases {
    use super::super::super::examples::{Example, by_runtime, in_container, on_host, open};
    use crate::model::{OpenClass as C, Payload};

    /// A write-open the kernel classified, on `fs` at `fs_path` below its root.
    fn on_fs(path: &str, fs: &str, fs_path: &str, class: C, ret: i64) -> Payload {
        let mut p = open(path, &[class], true, ret);
        if let Payload::FileOpen {
            fs: f,
            fs_path: fp,
            file,
            classes,
            ..
        } = &mut p
        {
            *f = fs.into();
            *fp = fs_path.into();
            // A refused open the LSM saw still names its file (and is no failed-open record).
            if ret < 0 {
                *classes = vec![class];
                let mut parts = fs_path.rsplit('/');
                let name = parts.next().unwrap_or_default();
                let parent = parts.next().unwrap_or_default();
                *file = Some(super::super::super::examples::file(parent, name));
            }
        }
        p
    }

    /// A refused relative write-open (EROFS) from a directory on `fs` at `base`.
    fn relative(path: &str, fs: &str, base: &str) -> Payload {
        let mut p = open(path, &[], true, -30);
        if let Payload::FileOpen {
            fs: f, fs_path: fp, ..
        } = &mut p
        {
            *f = fs.into();
            *fp = base.into();
        }
        p
    }

    fn read(p: Payload) -> Payload {
        let mut p = p;
        if let Payload::FileOpen { write, flags, .. } = &mut p {
            *write = false;
            *flags = 0;
        }
        p
    }

    pub fn security_policy() -> Vec<Example> {
        vec![
            Example::alert(
                "AppArmor's .remove through a securityfs the container mounted",
                vec![in_container(
                    "sh",
                    on_fs(
                        "/x/apparmor/.remove",
                        "securityfs",
                        "/apparmor/.remove",
                        C::SecurityPolicy,
                        3,
                    ),
                )],
                |a| {
                    assert_eq!(
                        a.details["canonical"],
                        "/sys/kernel/security/apparmor/.remove"
                    );
                    assert_eq!(a.details["path"], "/x/apparmor/.remove");
                    assert_eq!(a.details["area"], "AppArmor policy");
                    assert_eq!(a.details["refused"], false);
                    assert!(
                        a.summary.contains(
                            " opened /sys/kernel/security/apparmor/.remove for writing: the AppArmor policy of the whole host (securityfs)"
                        ),
                        "{}",
                        a.summary
                    );
                },
            ),
            Example::alert(
                "SELinux enforce through io_uring (no caller path)",
                vec![in_container(
                    "primitives",
                    on_fs("", "selinuxfs", "/enforce", C::SecurityPolicy, 5),
                )],
                |a| {
                    assert_eq!(a.details["canonical"], "/sys/fs/selinux/enforce");
                    assert_eq!(a.details["area"], "SELinux policy");
                },
            ),
            Example::alert(
                "the IMA policy on a read-only securityfs, refused",
                vec![in_container(
                    "sh",
                    open("/sys/kernel/security//ima/./policy", &[], true, -30),
                )],
                |a| {
                    assert_eq!(a.details["canonical"], "/sys/kernel/security/ima/policy");
                    assert_eq!(a.details["area"], "IMA policy");
                    assert_eq!(a.details["refused"], true);
                    assert!(a.summary.contains("tried to open"), "{}", a.summary);
                },
            ),
            Example::silent(
                "aa-status and getenforce reading, the host's apparmor_parser, a missing file",
                vec![
                    in_container(
                        "cat",
                        read(on_fs(
                            "/sys/kernel/security/apparmor/profiles",
                            "securityfs",
                            "/apparmor/profiles",
                            C::SecurityPolicy,
                            3,
                        )),
                    ),
                    in_container(
                        "getenforce",
                        read(open("/sys/fs/selinux/enforce", &[], false, 3)),
                    ),
                    on_host(
                        "apparmor_parser",
                        on_fs(
                            "/sys/kernel/security/apparmor/.replace",
                            "securityfs",
                            "/apparmor/.replace",
                            C::SecurityPolicy,
                            3,
                        ),
                    ),
                    by_runtime(on_fs(
                        "/proc/self/attr/apparmor/exec",
                        "proc",
                        "",
                        C::ProcEntry,
                        3,
                    )),
                    in_container("sh", open("/sys/fs/selinux/enforce", &[], true, -2)),
                    in_container("sh", open("sys/kernel/security/ima/policy", &[], true, -30)),
                ],
            ),
        ]
    }

    pub fn kernel_interface() -> Vec<Example> {
        vec![
            Example::alert(
                "a module parameter on a writable /sys",
                vec![in_container(
                    "sh",
                    on_fs(
                        "/sys/module/printk/parameters/time",
                        "sysfs",
                        "/module/printk/parameters/time",
                        C::KernelInterface,
                        3,
                    ),
                )],
                |a| {
                    assert_eq!(a.details["canonical"], "/sys/module/printk/parameters/time");
                    assert_eq!(a.details["area"], "host kernel module parameter");
                    assert_eq!(a.details["fs"], "sysfs");
                    assert!(
                        a.summary
                            .contains(" opened /sys/module/printk/parameters/time for writing"),
                        "{}",
                        a.summary
                    );
                },
            ),
            Example::alert(
                "a /sys/kernel knob through a bind mount elsewhere",
                vec![in_container(
                    "sh",
                    on_fs(
                        "/mnt/k/mm/transparent_hugepage/enabled",
                        "sysfs",
                        "/kernel/mm/transparent_hugepage/enabled",
                        C::KernelInterface,
                        3,
                    ),
                )],
                |a| {
                    assert_eq!(
                        a.details["canonical"],
                        "/sys/kernel/mm/transparent_hugepage/enabled"
                    );
                    assert_eq!(a.details["area"], "host kernel setting");
                },
            ),
            Example::alert(
                "IRQ affinity, refused by read-only /proc/irq",
                vec![in_container(
                    "sh",
                    open("/proc/irq/24/smp_affinity", &[], true, -30),
                )],
                |a| {
                    assert_eq!(a.details["canonical"], "/proc/irq/24/smp_affinity");
                    assert_eq!(a.details["area"], "host IRQ setting");
                    assert!(
                        a.summary
                            .contains("tried to open /proc/irq/24/smp_affinity"),
                        "{}",
                        a.summary
                    );
                },
            ),
            Example::alert(
                "an ACPI table, deeper than the event carries",
                vec![in_container(
                    "sh",
                    on_fs(
                        "/sys/firmware/acpi/tables/dynamic/SSDT1",
                        "sysfs",
                        "/firmware/…/tables/dynamic/SSDT1",
                        C::KernelInterface,
                        3,
                    ),
                )],
                |a| {
                    assert_eq!(a.details["area"], "host firmware interface");
                    assert_eq!(
                        a.details["canonical"],
                        "/sys/firmware/…/tables/dynamic/SSDT1"
                    );
                },
            ),
            Example::alert(
                "/proc/bus/input, refused after the LSM saw it",
                vec![in_container(
                    "sh",
                    on_fs(
                        "/proc/bus/input/devices",
                        "proc",
                        "/bus/input/devices",
                        C::KernelInterface,
                        -13,
                    ),
                )],
                |a| {
                    assert_eq!(a.details["area"], "host bus interface");
                    assert_eq!(a.details["refused"], true);
                },
            ),
            Example::alert(
                "a relative path from a working directory in /sys/kernel, refused",
                vec![in_container(
                    "sh",
                    relative("mm/../profiling", "sysfs", "/kernel"),
                )],
                |a| {
                    assert_eq!(a.details["canonical"], "/sys/kernel/profiling");
                    assert_eq!(a.details["path"], "mm/../profiling");
                    assert_eq!(a.details["area"], "host kernel setting");
                },
            ),
            Example::alert(
                "a relative path from procfs's root, refused",
                vec![in_container(
                    "sh",
                    relative("irq/default_smp_affinity", "proc", "/"),
                )],
                |a| assert_eq!(a.details["canonical"], "/proc/irq/default_smp_affinity"),
            ),
            Example::silent(
                "reads, the container's own netns devices, uevent_helper (its own rule), PCI \
                 (its own rule), the host, a relative path, a missing file",
                vec![
                    in_container(
                        "cat",
                        read(open("/sys/module/printk/parameters/time", &[], false, 3)),
                    ),
                    in_container("ip", open("/sys/class/net/lo/mtu", &[], true, 3)),
                    in_container(
                        "sh",
                        on_fs("/sys/kernel/uevent_helper", "sysfs", "", C::UeventHelper, 3),
                    ),
                    in_container("sh", open("/sys/module/printk/uevent", &[], true, -30)),
                    in_container("setpci", open("/proc/bus/pci/00/00.0", &[], true, -30)),
                    in_container("sh", open("/sys/kernel/security/lsm", &[], true, -30)),
                    on_host(
                        "tuned",
                        on_fs(
                            "/sys/kernel/mm/transparent_hugepage/enabled",
                            "sysfs",
                            "/kernel/mm/transparent_hugepage/enabled",
                            C::KernelInterface,
                            3,
                        ),
                    ),
                    in_container("sh", open("kernel/profiling", &[], true, -30)),
                    in_container("sh", relative("../../etc/x", "sysfs", "/kernel")),
                    in_container("sh", relative("class/net/lo/mtu", "sysfs", "/")),
                    in_container("sh", open("/sys/kernel/nope", &[], true, -2)),
                ],
            ),
        ]
    }
}
