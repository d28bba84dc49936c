//! Fileless and drifted execution: a container runs a program that is not its image's. Judged
//! at every exec from the file the kernel loaded (`bprm->file` at sched_process_exec), so
//! execve, execveat(AT_EMPTY_PATH), fexecve, the 32-bit entries and io_uring-less variants are
//! one case: the facts are the inode's, not the path the container passed.

use escapewatch_common::{abi, kind::EventKind};
use serde_json::json;

use super::{
    Fixtures, Input, RuleInfo,
    simple::{Check, Finding, who, workload},
};
use crate::{
    detect::Severity,
    model::{Event, ExecImage, Payload},
};

/// Filesystems that keep files in memory only: no disk, nothing an image shipped.
const MEMORY_FS: [u32; 3] = [abi::TMPFS_MAGIC, abi::RAMFS_MAGIC, abi::HUGETLBFS_MAGIC];

/// The exec's image, when a container's workload ran it.
pub(super) fn container_exec(e: &Event) -> Option<(&str, &ExecImage)> {
    let Payload::ProcessExec {
        filename,
        image: Some(image),
        ..
    } = &e.data
    else {
        return None;
    };
    workload(e)?;
    Some((filename, image))
}

/// Why a file is fileless: no link left, or a memory filesystem other than the root's.
fn fileless(i: &ExecImage) -> Option<&'static str> {
    if i.nlink == 0 {
        Some("unlinked")
    } else if MEMORY_FS.contains(&i.fs_magic) && i.dev != i.root_dev {
        Some("memory-filesystem")
    } else {
        None
    }
}

pub struct Fileless;

impl Check for Fileless {
    const INFO: &'static RuleInfo = &RuleInfo {
        id: "exec-fileless",
        severity: Severity::High,
        mitre: "T1620",
        title: "Container ran a program with no file on a real filesystem",
        scope: "a container process execs a memfd, a deleted file (through /proc/self/fd or an fd), or a file on a tmpfs/ramfs other than its root (/dev/shm)",
        explanation: "A process of a container started a program whose file, as the kernel \
            loaded it, has no name on any disk: its link count was 0 (a memfd_create file, \
            or a file deleted after it was opened and run through /proc/self/fd/N, fexecve or \
            execveat(AT_EMPTY_PATH)), or it lay on a memory-only filesystem (tmpfs, ramfs, \
            hugetlbfs) that is not the container's root, such as /dev/shm or a tmpfs the \
            container mounted. The facts are the kernel's: the inode's link count and its \
            superblock's magic and device at sched_process_exec, whatever path or fd the \
            container used and whichever exec entry (64- or 32-bit). Images ship their \
            programs on their root filesystem; running one from memory is how droppers, \
            in-memory payloads and post-escape tooling avoid leaving a file. Check the \
            parent, what wrote the file (the process's earlier writes), and its network.",
        inputs: &[Input::Kind(EventKind::ProcessExec)],
        fixtures: Fixtures::Recorded(&["drift-memfd", "drift-deleted"]),
        ..RuleInfo::BASE
    };

    fn check(e: &Event) -> Option<Finding> {
        let (filename, image) = container_exec(e)?;
        let c = e.container.as_ref()?;
        let why = fileless(image)?;
        Some(Finding::new(
            format!(
                "{} ran {filename} from a file with no name on disk ({why}: {} links, filesystem {:#x} on {}, root on {}); a program the image does not hold runs in memory.",
                who(e, c),
                image.nlink,
                image.fs_magic,
                image.dev,
                image.root_dev,
            ),
            json!({
                "filename": filename,
                "reason": why,
                "inode": image.inode,
                "nlink": image.nlink,
                "fs_magic": image.fs_magic,
                "dev": image.dev,
                "root_dev": image.root_dev,
            }),
        ))
    }

    #[cfg(test)]
    fn examples() -> Vec<super::examples::Example> {
        tests::fileless_examples()
    }
}

pub struct Drifted;

impl Check for Drifted {
    const INFO: &'static RuleInfo = &RuleInfo {
        id: "exec-drifted-binary",
        severity: Severity::High,
        mitre: "T1105",
        title: "Container ran a binary created or changed after it started",
        scope: "a container process execs a file whose inode ctime is later than the container's start (a dropped or modified binary); build containers are exempted by an allowlist entry",
        explanation: "A process of a container started a program whose file was created or \
            changed after the container started: the inode's ctime, which the kernel sets \
            on every write, chmod, rename or link and no syscall can set back (utimensat sets \
            mtime and atime only), is later than the container's start. The start is the \
            earliest start time of any process the agent saw in the container (its init, \
            seeded from /proc when the agent starts later): kernel-set, and a container can \
            only make younger processes. Image files keep the ctime of when the image was \
            unpacked, before the container; on overlayfs a file written or copied up in the \
            upper layer gets a fresh one. This is Falco's 'Drop and execute new binary in \
            container' and Tracee's TRC-1022, on the kernel's inode instead of a path. A \
            running workload executes what its image shipped; a build step (docker build, \
            a CI job, a package manager installing and running tools) executes what it just \
            wrote, and it does so in containers known in advance: exempt those with an \
            allowlist entry for this rule matching their image, labels or container id, never \
            by process name or path, which the container chooses. A script's interpreter is \
            what the kernel loads, so a dropped script run by an image's shell is not seen \
            here. Check what wrote the file, the parent, and the network.",
        inputs: &[Input::Kind(EventKind::ProcessExec)],
        fixtures: Fixtures::Recorded(&["drift-new-binary", "drift-deleted"]),
        ..RuleInfo::BASE
    };

    fn check(e: &Event) -> Option<Finding> {
        let (filename, image) = container_exec(e)?;
        let c = e.container.as_ref()?;
        let start = image.container_start_unix_ns?;
        // An unlinked file is exec-fileless's; its ctime is the unlink's.
        if image.nlink == 0 || image.ctime_unix_ns <= start {
            return None;
        }
        let after_ms = (image.ctime_unix_ns - start) / 1_000_000;
        Some(Finding::new(
            format!(
                "{} ran {filename}, a file changed {after_ms} ms after the container started (inode {} on {}): a binary the image did not ship.",
                who(e, c),
                image.inode,
                image.dev,
            ),
            json!({
                "filename": filename,
                "inode": image.inode,
                "dev": image.dev,
                "ctime_unix_ns": image.ctime_unix_ns,
                "container_start_unix_ns": start,
                "changed_after_start_ms": after_ms,
            }),
        ))
    }

    #[cfg(test)]
    fn examples() -> Vec<super::examples::Example> {
        tests::drifted_examples()
    }
}

#[cfg(test)]
#[path = "drift/tests.rs"]
pub(super) mod tests;
