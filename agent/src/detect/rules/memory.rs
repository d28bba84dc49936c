//! Memory rules: Dirty Pipe and writes into another process's memory. Dirty COW, which needs
//! correlation over time, is in dirty_cow.rs.

use escapewatch_common::kind::EventKind;
use serde_json::json;

use super::{
    Check, Fixtures, Input, RuleInfo,
    simple::{Finding, who, workload},
    syscalls::outside,
};
use crate::{
    detect::Severity,
    model::{Event, Payload, WatchedSyscall},
};

pub struct DirtyPipe;

impl Check for DirtyPipe {
    const INFO: &'static RuleInfo = &RuleInfo {
        id: "dirty-pipe",
        severity: Severity::Critical,
        mitre: "T1068",
        title: "Dirty Pipe pattern: a read-only file spliced into a pipe, then the pipe written",
        scope: "a read-only file spliced into a pipe, then the pipe written",
        explanation: "A process in a container spliced a file it may only read into a pipe and \
            then wrote to that pipe. On kernels 5.8–5.16.10 without the fix (CVE-2022-0847) the \
            write lands in the page cache of the file: any read-only file — /etc/passwd, a \
            setuid binary, the runc binary seen through /proc — is overwritten for every reader \
            on the host. On patched kernels the pattern itself is the signal. Check the file \
            named in details (compare it with its package), and the kernel version.",
        inputs: &[Input::Kind(EventKind::PipeWrite)],
        fixtures: Fixtures::Recorded(&[
            "dirty-pipe",
            "dirty-pipe-variants",
            "compat-dirty-pipe",
            "iouring-dirty-pipe",
        ]),
        ..RuleInfo::BASE
    };

    fn check(e: &Event) -> Option<Finding> {
        let Payload::PipeWrite { ret, fd, file } = &e.data else {
            return None;
        };
        let c = workload(e)?;
        let path = if file.parent.is_empty() {
            file.name.clone()
        } else {
            format!("{}/{}", file.parent, file.name)
        };
        Some(Finding::new(
            format!(
                "{} wrote into a pipe after splicing read-only file {path} into it (Dirty Pipe, CVE-2022-0847); verify that file on the host.",
                who(e, c)
            ),
            json!({ "file": file, "path": path, "pipe_fd": fd, "ret": ret }),
        ))
    }

    #[cfg(test)]
    fn examples() -> Vec<super::examples::Example> {
        use super::examples::{Example, by_runtime, file, in_container};
        let write = Payload::PipeWrite {
            ret: 1,
            fd: Some(5),
            file: file("etc", "passwd"),
        };
        let by_io_uring = Payload::PipeWrite {
            ret: 1,
            fd: None,
            file: file("etc", "passwd"),
        };
        vec![
            Example::alert(
                "/etc/passwd",
                vec![in_container("exploit", write.clone())],
                |a| {
                    assert_eq!(a.details["path"], "etc/passwd");
                    assert_eq!(a.details["pipe_fd"], 5);
                    assert_eq!(a.details["file"]["ino"], 4711);
                },
            ),
            // An io_uring write names the pipe by its struct file, not by a descriptor number.
            Example::alert(
                "/etc/passwd by io_uring",
                vec![in_container("exploit", by_io_uring)],
                |a| {
                    assert_eq!(a.details["path"], "etc/passwd");
                    assert!(a.details["pipe_fd"].is_null());
                },
            ),
            // The kernel reports only writes into pipes a read-only file was spliced into; the
            // runtime's own log pipes are not judged.
            Example::silent("the runtime", vec![by_runtime(write)]),
        ]
    }
}

pub struct ProcMemWrite;

impl Check for ProcMemWrite {
    const INFO: &'static RuleInfo = &RuleInfo {
        id: "proc-mem-write",
        severity: Severity::High,
        mitre: "T1055",
        title: "Container process wrote another process's memory",
        scope: "writing another process's memory via /proc/PID/mem or process_vm_writev",
        explanation: "A process in a container wrote into the memory of another process through \
            /proc/PID/mem or process_vm_writev: code injection. Inside one container it is a \
            debugger at best; aimed at a process of the host or another container it is an \
            escape. Check the target (details) and whether it belongs to the host.",
        inputs: &[
            Input::Kind(EventKind::MemWrite),
            Input::Syscall(WatchedSyscall::ProcessVmWritev),
        ],
        fixtures: Fixtures::Recorded(&[
            "proc-mem",
            "pvwritev",
            "procmem-dup-pwritev",
            "procmem-inherited",
            "iouring-procmem",
        ]),
        ..RuleInfo::BASE
    };

    fn check(e: &Event) -> Option<Finding> {
        let c = workload(e)?;
        let (method, ret, target, addr) = match &e.data {
            Payload::MemWrite {
                ret, addr, target, ..
            } => ("/proc/PID/mem", *ret, target, *addr),
            Payload::Syscall {
                name: WatchedSyscall::ProcessVmWritev,
                ret,
                target: Some(target),
                ..
            } => ("process_vm_writev", *ret, target, 0),
            _ => return None,
        };
        if target.pid == e.process.pid || ret < 0 {
            return None;
        }
        let whose = outside(&target.owner, c).unwrap_or_else(|| "its own container".into());
        Some(Finding::new(
            format!(
                "{} wrote the memory of {} (pid {}) of {whose} through {method}: code injection; inspect that process.",
                who(e, c),
                target.comm,
                target.pid
            ),
            json!({ "method": method, "target": target, "target_owner": whose, "addr": addr, "ret": ret }),
        ))
    }

    #[cfg(test)]
    fn examples() -> Vec<super::examples::Example> {
        use super::examples::{Example, in_container, target};
        use crate::model::{NsOwner, TargetProcess};
        let mem = |t: TargetProcess, ret| Payload::MemWrite {
            ret,
            addr: 0x40_1000,
            len: 8,
            target: t,
            vma_found: false,
            vma_file_backed: false,
            vma_writable: false,
            vma_shared: false,
            vma_file: None,
        };
        let pvw = Payload::Syscall {
            name: WatchedSyscall::ProcessVmWritev,
            ret: 8,
            args: [77, 0, 1, 0],
            target: Some(target(77, "sshd", NsOwner::Host)),
        };
        vec![
            Example::alert(
                "/proc/77/mem of a host process",
                vec![in_container(
                    "dd",
                    mem(target(77, "sshd", NsOwner::Host), 8),
                )],
                |a| {
                    assert_eq!(a.details["method"], "/proc/PID/mem");
                    assert_eq!(a.details["target_owner"], "the host");
                    assert_eq!(a.details["addr"], 0x40_1000);
                },
            ),
            Example::alert(
                "process_vm_writev",
                vec![in_container("inject", pvw)],
                |a| {
                    assert_eq!(a.details["method"], "process_vm_writev");
                    assert_eq!(a.details["target"]["comm"], "sshd");
                },
            ),
            Example::silent(
                "a process writing its own memory, and a failed write",
                vec![
                    in_container("jit", mem(target(4242, "jit", NsOwner::Unknown), 8)),
                    in_container("dd", mem(target(77, "sshd", NsOwner::Host), -13)),
                ],
            ),
        ]
    }
}
