//! The open rules' examples: what each must alert on, and its benign look-alikes.

use serde_json::json;

use super::super::examples::{
    Example, OTHER_CONTAINER, by_runtime, in_container, on_host, open, other_container,
};
use crate::model::{JoinedNamespace, NsOwner, NsType, OpenClass as C, Payload, Runtime};

fn written(path: &str, classes: &[C]) -> Payload {
    open(path, classes, true, 3)
}

pub fn release_agent() -> Vec<Example> {
    let agent = written("/tmp/cg/release_agent", &[C::CgroupRelease]);
    vec![
        Example::alert(
            "release_agent opened for writing",
            vec![in_container("sh", agent.clone())],
            |a| {
                assert_eq!(a.details["file"]["name"], "release_agent");
                assert_eq!(a.details["write"], true);
                assert!(a.summary.contains("release_agent"), "{}", a.summary);
            },
        ),
        Example::silent(
            "the runtime setting up cgroups, and a refused open",
            vec![
                by_runtime(agent),
                in_container(
                    "sh",
                    open("/tmp/cg/release_agent", &[C::CgroupRelease], true, -13),
                ),
            ],
        ),
        Example::silent(
            "reading cgroup.procs",
            vec![in_container(
                "cat",
                open("/sys/fs/cgroup/cgroup.procs", &[], false, 3),
            )],
        ),
    ]
}

pub fn sysrq() -> Vec<Example> {
    vec![
        Example::alert(
            "sysrq-trigger opened for writing",
            vec![in_container(
                "sh",
                written("/proc/sysrq-trigger", &[C::ProcEntry]),
            )],
            |a| {
                assert_eq!(a.details["path"], "/proc/sysrq-trigger");
                assert!(
                    a.summary.contains(" opened /proc/sysrq-trigger"),
                    "{}",
                    a.summary
                );
            },
        ),
        Example::alert(
            "an attempt on a kernel without CONFIG_MAGIC_SYSRQ",
            vec![in_container(
                "sh",
                open("/proc/sysrq-trigger", &[], true, -2),
            )],
            |a| assert!(a.summary.contains("tried to open"), "{}", a.summary),
        ),
        Example::silent(
            "reading it, and the host writing it",
            vec![
                in_container(
                    "cat",
                    open("/proc/sysrq-trigger", &[C::ProcEntry], false, 3),
                ),
                on_host("sh", written("/proc/sysrq-trigger", &[C::ProcEntry])),
            ],
        ),
    ]
}

pub fn kernel_memory() -> Vec<Example> {
    vec![
        Example::alert(
            "/dev/mem refused with ENXIO",
            vec![in_container(
                "dd",
                open("/dev/mem", &[C::MemDevice], false, -6),
            )],
            |a| {
                assert_eq!(a.details["path"], "/dev/mem");
                assert_eq!(a.details["ret"], -6);
                assert!(
                    a.summary.contains("tried to open /dev/mem"),
                    "{}",
                    a.summary
                );
            },
        ),
        Example::alert(
            "/proc/kcore opened",
            vec![in_container(
                "cat",
                open("/proc/kcore", &[C::ProcEntry], false, 3),
            )],
            |a| assert!(a.summary.contains("opened /proc/kcore"), "{}", a.summary),
        ),
        Example::silent(
            "/dev/null and /proc/meminfo",
            vec![
                in_container("sh", open("/dev/null", &[], true, 3)),
                in_container("free", open("/proc/meminfo", &[C::ProcEntry], false, 3)),
            ],
        ),
    ]
}

pub fn block_device() -> Vec<Example> {
    let mut disk = open("/dev/vda", &[C::BlockDevice], false, -1);
    if let Payload::FileOpen { rdev, .. } = &mut disk {
        *rdev = "254:0".into();
    }
    vec![
        Example::alert(
            "the host's disk, refused",
            vec![in_container("debugfs", disk)],
            |a| {
                assert_eq!(a.details["rdev"], "254:0");
                assert!(
                    a.summary
                        .contains("tried to open block device /dev/vda (254:0) read-only"),
                    "{}",
                    a.summary
                );
            },
        ),
        Example::silent(
            "a character device and a regular file",
            vec![
                in_container("sh", open("/dev/tty", &[], true, 3)),
                in_container("sh", open("/etc/passwd", &[], false, 3)),
            ],
        ),
    ]
}

fn foreign(owner: NsOwner) -> Payload {
    let mut p = open("/proc/1/root/etc/shadow", &[C::ForeignMntNs], false, 3);
    if let Payload::FileOpen { foreign_mnt_ns, .. } = &mut p {
        *foreign_mnt_ns = Some(JoinedNamespace {
            ns_type: NsType::Mnt,
            inode: 4026531832,
            previous: 4026532300,
            owner,
        });
    }
    p
}

pub fn proc_root() -> Vec<Example> {
    let other = other_container();
    vec![
        Example::alert(
            "the host's /etc/shadow through /proc/1/root",
            vec![in_container("cat", foreign(NsOwner::Host))],
            |a| {
                assert_eq!(a.details["owner"], "the host");
                assert_eq!(a.details["mnt_ns"], 4026531832u32);
                assert_eq!(a.details["path"], "/proc/1/root/etc/shadow");
            },
        ),
        Example::alert(
            "another container's file",
            vec![in_container(
                "cat",
                foreign(NsOwner::Container {
                    id: other.id,
                    runtime: Runtime::Containerd,
                }),
            )],
            |a| {
                assert_eq!(
                    a.details["owner"],
                    json!(format!("container {OTHER_CONTAINER}"))
                );
            },
        ),
        Example::silent(
            "its own container's namespace, an unknown one, and runc's exec fifo",
            vec![
                in_container("cat", foreign(super::super::examples::own_container())),
                in_container("cat", foreign(NsOwner::Unknown)),
                by_runtime(foreign(NsOwner::Host)),
            ],
        ),
    ]
}

pub fn runtime_binary() -> Vec<Example> {
    vec![
        Example::alert(
            "/proc/self/exe opened for writing (CVE-2019-5736)",
            vec![in_container("sh", written("/proc/self/exe", &[]))],
            |a| assert_eq!(a.details["path"], "/proc/self/exe"),
        ),
        Example::alert(
            "the runc binary, marked by the kernel",
            vec![in_container(
                "sh",
                open("/usr/bin/runc", &[C::RuntimeBinary], true, 3),
            )],
            |a| assert!(a.summary.contains("/usr/bin/runc"), "{}", a.summary),
        ),
        Example::silent(
            "reading /proc/self/exe, and /proc/1/exe-like paths that are not exe",
            vec![
                in_container("ls", open("/proc/self/exe", &[], false, 3)),
                in_container("sh", written("/proc/self/exe.d", &[])),
                in_container("sh", written("/proc/x1/exe", &[])),
            ],
        ),
    ]
}

pub fn debug_recon() -> Vec<Example> {
    vec![
        Example::alert(
            "kallsyms read",
            vec![in_container(
                "cat",
                open("/proc/kallsyms", &[C::ProcEntry], false, 3),
            )],
            |a| assert_eq!(a.details["file"]["name"], "kallsyms"),
        ),
        Example::alert(
            "a tracefs file",
            vec![in_container(
                "cat",
                open("/sys/kernel/tracing/trace", &[C::Debugfs], false, 3),
            )],
            |a| assert_eq!(a.details["path"], "/sys/kernel/tracing/trace"),
        ),
        Example::silent(
            "/proc/cpuinfo, and a refused kallsyms",
            vec![
                in_container("cat", open("/proc/cpuinfo", &[C::ProcEntry], false, 3)),
                in_container("cat", open("/proc/kallsyms", &[C::ProcEntry], false, -13)),
            ],
        ),
    ]
}
