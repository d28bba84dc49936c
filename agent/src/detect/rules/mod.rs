//! The rule catalogue. Rule ids are a public contract: users alert and allowlist on them.

mod dirty_cow;
mod files;
mod memory;
mod misc;
mod mount;
mod namespace;
mod namespace_join_host;
mod simple;
mod syscalls;
mod sysctl;

use simple::Simple;

use super::{Alert, AlertContainer, AlertProcess, Severity};
use crate::model::Event;

/// What a rule is, for `escapewatch rules` and for every alert it raises.
#[derive(Debug)]
pub struct RuleInfo {
    pub id: &'static str,
    pub severity: Severity,
    pub mitre: &'static str,
    pub title: &'static str,
    /// What happened, why it matters, what to check next.
    pub explanation: &'static str,
    /// The kernel events the rule reads (`escapewatch rules` maps them to hooks).
    pub event_kinds: &'static [&'static str],
}

/// A detection rule. Rules keep only bounded state and never do I/O.
pub trait Rule: Send {
    fn info(&self) -> &'static RuleInfo;
    fn process(&mut self, event: &Event, out: &mut Vec<Alert>);
}

fn simple(info: &'static RuleInfo, check: fn(&Event) -> Option<simple::Finding>) -> Box<dyn Rule> {
    Box::new(Simple { info, check })
}

/// Every rule, in the order alerts are emitted.
pub fn catalogue() -> Vec<Box<dyn Rule>> {
    vec![
        Box::new(namespace_join_host::NamespaceJoinHost),
        simple(&namespace::UNSHARE_USER, namespace::unshare_user),
        simple(&mount::MOUNT_HOST_DEVICE, mount::mount_host_device),
        simple(&files::RELEASE_AGENT, files::release_agent),
        simple(&sysctl::CORE_PATTERN, sysctl::core_pattern),
        simple(&sysctl::SYSCTL_WRITE, sysctl::sysctl_write),
        simple(&files::SYSRQ, files::sysrq),
        Box::new(dirty_cow::DirtyCow::default()),
        simple(&memory::DIRTY_PIPE, memory::dirty_pipe),
        simple(&memory::PROC_MEM_WRITE, memory::proc_mem_write),
        simple(&syscalls::PTRACE, syscalls::ptrace),
        simple(&syscalls::MODULE_LOAD, syscalls::module_load),
        simple(&syscalls::OPEN_BY_HANDLE, syscalls::open_by_handle),
        simple(&syscalls::BPF, syscalls::bpf),
        simple(&files::RUNTIME_BINARY, files::runtime_binary),
        simple(&misc::RUNTIME_SOCKET, misc::runtime_socket),
        simple(&files::KERNEL_MEMORY, files::kernel_memory),
        simple(&files::BLOCK_DEVICE, files::block_device),
        simple(&files::PROC_ROOT, files::proc_root),
        simple(&misc::USERMODE_HELPER, misc::usermode_helper),
        simple(&files::DEBUG_RECON, files::debug_recon),
        simple(&syscalls::USERFAULTFD, syscalls::userfaultfd),
        Box::new(super::overload::OverloadDetector::new()),
    ]
}

/// The static descriptions of every rule.
pub fn infos() -> Vec<&'static RuleInfo> {
    catalogue().iter().map(|r| r.info()).collect()
}

/// An alert of `info` about `event`, with the shared fields filled in.
fn alert(
    info: &'static RuleInfo,
    event: &Event,
    summary: String,
    details: serde_json::Value,
) -> Alert {
    Alert {
        time: event.time.clone(),
        rule: info.id.to_owned(),
        severity: info.severity,
        summary,
        mitre: info.mitre.to_owned(),
        container: event.container.as_ref().map(AlertContainer::from_container),
        process: AlertProcess::from_event(event),
        details,
        event_ids: vec![event.id],
        explanation: info.explanation.to_owned(),
    }
}
