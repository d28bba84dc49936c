//! Memory rules: Dirty Pipe and writes into another process's memory. Dirty COW, which needs
//! correlation over time, is in dirty_cow.rs.

use serde_json::json;

use super::{
    RuleInfo,
    simple::{Finding, who, workload},
    syscalls::outside,
};
use crate::{
    detect::Severity,
    model::{Event, Payload},
};

pub static DIRTY_PIPE: RuleInfo = RuleInfo {
    id: "dirty-pipe",
    severity: Severity::Critical,
    mitre: "T1068",
    title: "Dirty Pipe pattern: a read-only file spliced into a pipe, then the pipe written",
    explanation: "A process in a container spliced a file it may only read into a pipe and then \
        wrote to that pipe. On kernels 5.8–5.16.10 without the fix (CVE-2022-0847) the write \
        lands in the page cache of the file: any read-only file — /etc/passwd, a setuid \
        binary, the runc binary seen through /proc — is overwritten for every reader on the \
        host. On patched kernels the pattern itself is the signal. Check the file named in \
        details (compare it with its package), and the kernel version.",
    event_kinds: &["pipe_write"],
};

pub fn dirty_pipe(e: &Event) -> Option<Finding> {
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

pub static PROC_MEM_WRITE: RuleInfo = RuleInfo {
    id: "proc-mem-write",
    severity: Severity::High,
    mitre: "T1055",
    title: "Container process wrote another process's memory",
    explanation: "A process in a container wrote into the memory of another process through \
        /proc/PID/mem or process_vm_writev: code injection. Inside one container it is a \
        debugger at best; aimed at a process of the host or another container it is an \
        escape. Check the target (details) and whether it belongs to the host.",
    event_kinds: &["mem_write", "syscall:process_vm_writev"],
};

pub fn proc_mem_write(e: &Event) -> Option<Finding> {
    let c = workload(e)?;
    let (method, ret, target, addr) = match &e.data {
        Payload::MemWrite {
            ret, addr, target, ..
        } => ("/proc/PID/mem", *ret, target, *addr),
        Payload::Syscall {
            name,
            ret,
            target: Some(target),
            ..
        } if name == "process_vm_writev" => ("process_vm_writev", *ret, target, 0),
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
