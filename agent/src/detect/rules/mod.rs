//! The rule catalogue. Rule ids are a public contract: users alert and allowlist on them.
//!
//! A rule is declared once, in its own file: its [`RuleInfo`] (id, severity, MITRE technique,
//! texts, the typed inputs it reads, what it needs of the kernel, its replay fixtures), its
//! logic, and its examples (hand-built events it must alert on, and benign look-alikes it must
//! stay silent on). [`catalogue`] registers it with one line. Everything else — the README
//! table, `escapewatch rules`, the tests' severities, the `rule_hook_info` metric — is
//! generated from the catalogue, and one contract test (`contract.rs`) checks every entry.

mod creds_escalated;
mod dirty_cow;
mod drift;
mod files;
mod host_binary;
mod lockdown;
mod memory;
mod misc;
mod module_autoload;
mod mount;
mod namespace;
mod namespace_held;
mod namespace_join_host;
mod netapi;
mod posture;
mod procfs_mount;
mod races;
mod root_outside;
mod simple;
mod syscalls;
mod sysctl;
mod tamper;

#[cfg(test)]
mod contract;
#[cfg(test)]
pub(crate) mod examples;

use escapewatch_common::{calls::WatchedSyscall, kind::EventKind};
pub use simple::Check;
use simple::Simple;

use super::{Alert, AlertContainer, AlertProcess, Severity};
use crate::model::Event;

/// What a rule reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// Every record of a wire kind, whichever program produced it.
    Kind(EventKind),
    /// The `Syscall` records of one watched syscall.
    Syscall(WatchedSyscall),
    /// The agent's own `events_lost` report, made from the kernel's loss counters.
    LossReport,
    /// The agent's own `programs_detached` report, made by its periodic self-check.
    DetachReport,
    /// The agent's own `agent_restarted` report, made at start from its run marker.
    RestartReport,
    /// The agent's own `container_started` report, made when its runtime's state first
    /// names a container (with the posture read from it).
    StartReport,
}

impl Input {
    /// `file_open`, `syscall:ptrace`, `events_lost`.
    pub fn name(self) -> String {
        match self {
            Input::Kind(k) => k.name().to_owned(),
            Input::Syscall(s) => format!("syscall:{}", s.name()),
            Input::LossReport => "events_lost".to_owned(),
            Input::DetachReport => "programs_detached".to_owned(),
            Input::RestartReport => "agent_restarted".to_owned(),
            Input::StartReport => "container_started".to_owned(),
        }
    }
}

/// A kernel facility whose absence changes what a rule can see. Probed outside the engine
/// (`rules_report`): detection itself never looks at the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelFeature {
    /// Loadable module support (CONFIG_MODULES): /proc/modules.
    Modules,
    /// CONFIG_MAGIC_SYSRQ: /proc/sysrq-trigger.
    MagicSysrq,
    /// A /dev/mem driver.
    DevMem,
}

/// What a missing [`KernelFeature`] means for a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Without {
    /// The rule cannot fire at all on such a kernel.
    NotApplicable,
    /// The rule still applies, with a note for responders.
    Note,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelDependency {
    pub feature: KernelFeature,
    pub without: Without,
    /// Said when the feature is missing.
    pub text: &'static str,
}

/// The recorded event logs (`tests/fixtures/<name>.events.jsonl` with the alerts they must
/// give) in which the rule fires, or why none can be recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fixtures {
    Recorded(&'static [&'static str]),
    /// No kernel of the test matrix can run the primitive (or record its log).
    Unavailable(&'static str),
}

/// What a rule is, for `escapewatch rules`, the README, metrics and every alert it raises.
#[derive(Debug)]
pub struct RuleInfo {
    pub id: &'static str,
    pub severity: Severity,
    pub mitre: &'static str,
    pub title: &'static str,
    /// One line for the README table: what it catches.
    pub scope: &'static str,
    /// What happened, why it matters, what to check next.
    pub explanation: &'static str,
    /// The events the rule reads (`escapewatch rules` maps them to hooks).
    pub inputs: &'static [Input],
    /// What the rule needs of the kernel.
    pub kernel: &'static [KernelDependency],
    pub fixtures: Fixtures,
    /// The alert is about the agent itself (it lost events): the agent also logs it as a
    /// warning, so an operator reading the agent's log sees it.
    pub agent_warning: bool,
    /// Off unless the config turns it on (a `[rules.<id>]` section with `enabled = true`).
    pub off_by_default: bool,
}

impl RuleInfo {
    /// Whether kernel programs feed the rule (the agent's own reports are no kernel events).
    pub fn reads_kernel(&self) -> bool {
        self.inputs
            .iter()
            .any(|i| matches!(i, Input::Kind(_) | Input::Syscall(_)))
    }

    /// The defaults of the optional fields (`inputs`, `kernel`, `agent_warning`), for
    /// `..RuleInfo::BASE` in declarations. Its id, texts and `fixtures` are placeholders the
    /// contract test rejects; its severity is one too, and every declaration sets its own.
    pub const BASE: RuleInfo = RuleInfo {
        id: "",
        severity: Severity::High,
        mitre: "",
        title: "",
        scope: "",
        explanation: "",
        inputs: &[],
        kernel: &[],
        fixtures: Fixtures::Unavailable(""),
        agent_warning: false,
        off_by_default: false,
    };
}

/// A detection rule. Rules keep only bounded state and never do I/O.
pub trait Rule: Send {
    fn info(&self) -> &'static RuleInfo;
    fn process(&mut self, event: &Event, out: &mut Vec<Alert>);
    /// The rule acts on the events of its `info().inputs` only, so the engine may hand it
    /// no others. True for stateless rules ([`Check`]s), whose inputs name what their
    /// predicate matches; false (every event) for rules with state, which may read other
    /// kinds to keep it (a process exit ends what they track).
    fn inputs_only(&self) -> bool {
        false
    }
}

/// A rule type as the catalogue registers it.
pub trait Declared: Rule + Default + 'static {
    const INFO: &'static RuleInfo;
    /// Hand-built events the rule must alert on, and benign look-alikes it must stay silent
    /// on; run by the contract test.
    #[cfg(test)]
    fn examples() -> Vec<examples::Example>;
}

/// A rule's line in the catalogue.
pub struct Entry {
    pub info: &'static RuleInfo,
    pub make: fn() -> Box<dyn Rule>,
    #[cfg(test)]
    pub examples: fn() -> Vec<examples::Example>,
}

fn rule<R: Declared>() -> Entry {
    Entry {
        info: R::INFO,
        make: || Box::new(R::default()),
        #[cfg(test)]
        examples: R::examples,
    }
}

fn check<C: Check>() -> Entry {
    rule::<Simple<C>>()
}

/// Every rule, in the order alerts are emitted.
pub fn catalogue() -> Vec<Entry> {
    vec![
        rule::<namespace_join_host::NamespaceJoinHost>(),
        rule::<namespace_held::ForeignNamespaceHeld>(),
        rule::<creds_escalated::CredsEscalated>(),
        rule::<root_outside::RootOutside>(),
        check::<namespace::UnshareUser>(),
        check::<mount::MountHostDevice>(),
        check::<procfs_mount::ProcfsMount>(),
        check::<files::ReleaseAgent>(),
        check::<sysctl::CorePattern>(),
        check::<sysctl::SysctlWrite>(),
        check::<files::Sysrq>(),
        rule::<dirty_cow::DirtyCow>(),
        check::<memory::DirtyPipe>(),
        check::<memory::ProcMemWrite>(),
        check::<syscalls::Ptrace>(),
        check::<syscalls::ModuleLoad>(),
        check::<syscalls::OpenByHandle>(),
        check::<syscalls::Bpf>(),
        check::<files::RuntimeBinary>(),
        check::<misc::RuntimeSocket>(),
        check::<netapi::RuntimeApiNetwork>(),
        check::<netapi::HostAbstractSocket>(),
        check::<posture::SensitiveMount>(),
        check::<posture::StartedPrivileged>(),
        check::<files::KernelMemory>(),
        check::<files::BlockDevice>(),
        check::<files::ProcRoot>(),
        check::<misc::UsermodeHelper>(),
        check::<files::DebugRecon>(),
        check::<syscalls::Userfaultfd>(),
        check::<lockdown::KexecLoad>(),
        check::<lockdown::RawHardware>(),
        check::<lockdown::LockdownReach>(),
        check::<module_autoload::ModuleAutoload>(),
        check::<drift::Fileless>(),
        check::<drift::Drifted>(),
        check::<host_binary::HostBinary>(),
        check::<files::SecurityPolicyWrite>(),
        check::<files::KernelInterfaceWrite>(),
        rule::<races::ExchangeLoop>(),
        check::<races::MountRedirected>(),
        rule::<super::overload::OverloadDetector>(),
        check::<tamper::DetectorTampered>(),
        check::<tamper::DetectorRestarted>(),
    ]
}

/// The static descriptions of every rule, in catalogue order.
pub fn infos() -> Vec<&'static RuleInfo> {
    catalogue().iter().map(|e| e.info).collect()
}

/// The rule with this id.
pub fn info(id: &str) -> Option<&'static RuleInfo> {
    catalogue().into_iter().map(|e| e.info).find(|i| i.id == id)
}

/// The README's rule table, generated from the catalogue (the contract test keeps the README
/// equal to it; `escapewatch rules --format markdown` prints it).
pub fn markdown_table() -> String {
    let mut s = String::from("| id | severity | MITRE | what |\n|---|---|---|---|\n");
    for i in infos() {
        s.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            i.id,
            i.severity.as_str(),
            i.mitre,
            i.scope
        ));
    }
    s
}

/// An alert of `info` about `event`, with the shared fields filled in.
fn alert(
    info: &'static RuleInfo,
    event: &Event,
    summary: String,
    details: serde_json::Value,
) -> Alert {
    Alert {
        id: String::new(),
        time: event.time.clone(),
        rule: info.id.to_owned(),
        severity: info.severity,
        summary,
        mitre: info.mitre.to_owned(),
        node: None,
        container: AlertContainer::of_event(event),
        process: AlertProcess::from_event(event),
        details,
        event_ids: vec![event.id],
        explanation: info.explanation.to_owned(),
        coalesced: None,
    }
}
