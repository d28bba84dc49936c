//! Examples of the drift rules: the kernel's facts of the exec'd file decide, never its path.

use escapewatch_common::abi;
use serde_json::json;

use super::super::examples::{Example, by_runtime, in_container, on_host};
use crate::model::{ExecImage, Payload};

const START: i64 = 1_800_000_000_000_000_000;

fn image(nlink: u32, fs_magic: u32, dev: &str, ctime_unix_ns: i64) -> ExecImage {
    ExecImage {
        inode: 4242,
        dev: dev.into(),
        fs_magic,
        nlink,
        ctime_unix_ns,
        root_dev: "0:50".into(),
        container_start_unix_ns: Some(START),
        whole_fs: true,
        host_root_fs: false,
        foreign_mnt_ns: None,
    }
}

/// An exec of `filename` whose file the kernel described as `image`.
pub(in crate::detect::rules) fn exec(filename: &str, image: ExecImage) -> Payload {
    Payload::ProcessExec {
        filename: filename.into(),
        truncated: false,
        usermode_helper: false,
        binary_container: None,
        outside_mount: Vec::new(),
        image: Some(image),
    }
}

/// An image file: linked, on the container's root, unpacked before the start.
fn shipped() -> ExecImage {
    image(
        1,
        abi::OVERLAYFS_SUPER_MAGIC,
        "0:50",
        START - 3_600_000_000_000,
    )
}

pub(super) fn fileless_examples() -> Vec<Example> {
    vec![
        Example::alert(
            "memfd_create + fexecve (unlinked shmem inode)",
            vec![in_container(
                "x",
                exec("/proc/self/fd/3", image(0, abi::TMPFS_MAGIC, "0:1", START)),
            )],
            |a| {
                assert_eq!(a.details["reason"], "unlinked");
                assert_eq!(a.details["nlink"], 0);
                assert_eq!(a.details["filename"], "/proc/self/fd/3");
                assert_eq!(a.details["dev"], "0:1");
                assert_eq!(a.event_ids, vec![1]);
            },
        ),
        Example::alert(
            "a binary in /dev/shm (tmpfs that is not the root)",
            vec![in_container(
                "x",
                exec("/dev/shm/x", image(1, abi::TMPFS_MAGIC, "0:60", START - 1)),
            )],
            |a| {
                assert_eq!(a.details["reason"], "memory-filesystem");
                assert_eq!(a.details["fs_magic"], abi::TMPFS_MAGIC);
                assert_eq!(a.details["root_dev"], "0:50");
            },
        ),
        Example::silent(
            "image binaries; a rootfs on tmpfs; a host memfd (runc's clone); the runtime",
            vec![
                in_container("sh", exec("/bin/sh", shipped())),
                in_container(
                    "ls",
                    exec("/bin/ls", image(1, abi::TMPFS_MAGIC, "0:50", START - 1)),
                ),
                on_host(
                    "runc",
                    exec("/proc/self/exe", image(0, abi::TMPFS_MAGIC, "0:1", 0)),
                ),
                by_runtime(exec("/proc/self/exe", image(0, abi::TMPFS_MAGIC, "0:1", 0))),
            ],
        ),
    ]
}

pub(super) fn drifted_examples() -> Vec<Example> {
    let mut unknown_start = image(1, abi::EXT4_SUPER_MAGIC, "0:50", START + 5);
    unknown_start.container_start_unix_ns = None;
    vec![
        Example::alert(
            "a binary written after the container started",
            vec![in_container(
                "x",
                exec(
                    "/tmp/x",
                    image(1, abi::OVERLAYFS_SUPER_MAGIC, "0:50", START + 2_500_000_000),
                ),
            )],
            |a| {
                assert_eq!(a.details["filename"], "/tmp/x");
                assert_eq!(a.details["changed_after_start_ms"], 2500);
                assert_eq!(a.details["container_start_unix_ns"], json!(START));
                assert_eq!(a.details["ctime_unix_ns"], json!(START + 2_500_000_000));
                assert_eq!(a.event_ids, vec![1]);
            },
        ),
        Example::silent(
            "image binaries; a memfd (exec-fileless's); unknown start; the host; the runtime",
            vec![
                in_container("sh", exec("/bin/sh", shipped())),
                in_container("x", exec("/proc/self/fd/3", image(0, 0, "0:1", START + 9))),
                in_container("x", exec("/tmp/x", unknown_start)),
                on_host(
                    "cc",
                    exec(
                        "/tmp/a.out",
                        image(1, abi::EXT4_SUPER_MAGIC, "8:1", START + 9),
                    ),
                ),
                by_runtime(exec(
                    "/x",
                    image(1, abi::EXT4_SUPER_MAGIC, "8:1", START + 9),
                )),
            ],
        ),
    ]
}
