//! `escapewatch rules`: the catalogue with, for each rule, the hooks that feed it and whether it
//! applies to the running kernel. Text for people, JSON for tools (the integration tests take
//! the severities they expect from it), markdown for the README.

use std::{fmt::Write as _, path::Path};

use escapewatch_common::programs::{PROGRAMS, ProgramSpec};
use serde::Serialize;

use crate::detect::{
    RuleInfo, all_rule_infos,
    rules::{Input, KernelDependency, KernelFeature, Without, markdown_table},
};

/// Whether the running kernel has `feature` (read from /proc and /dev; never from the engine).
pub fn present(feature: KernelFeature) -> bool {
    let path = match feature {
        KernelFeature::Modules => "/proc/modules",
        KernelFeature::MagicSysrq => "/proc/sysrq-trigger",
        KernelFeature::DevMem => "/dev/mem",
    };
    Path::new(path).exists()
}

/// The rule's kernel dependencies that this kernel lacks, with what that means.
fn missing(rule: &RuleInfo, without: Without) -> Option<&'static KernelDependency> {
    rule.kernel
        .iter()
        .find(|d| d.without == without && !present(d.feature))
}

/// Why a rule cannot apply on this machine, if it cannot.
pub fn not_applicable(rule: &RuleInfo) -> Option<&'static str> {
    missing(rule, Without::NotApplicable).map(|d| d.text)
}

/// What a responder should know about a rule on this kernel, when the rule applies but the
/// kernel changes what it can see.
pub fn kernel_note(rule: &RuleInfo) -> Option<&'static str> {
    missing(rule, Without::Note).map(|d| d.text)
}

/// Whether `p` produces what `input` names.
fn serves(p: &ProgramSpec, input: Input) -> bool {
    match input {
        Input::Kind(kind) => p.kinds.contains(&kind),
        Input::Syscall(s) => p.id == s.program(),
        Input::LossReport | Input::DetachReport | Input::RestartReport | Input::StartReport => {
            false
        }
    }
}

/// The programs producing `rule`'s inputs that `keep` accepts (the attached ones, for the
/// running agent), in catalogue order.
pub fn programs(rule: &RuleInfo, keep: impl Fn(&ProgramSpec) -> bool) -> Vec<&'static ProgramSpec> {
    let mut out: Vec<&'static ProgramSpec> = Vec::new();
    for &input in rule.inputs {
        for p in PROGRAMS {
            if serves(p, input) && keep(p) && !out.iter().any(|o| o.name == p.name) {
                out.push(p);
            }
        }
    }
    out
}

/// `hook-type program` of every program that can feed `rule`.
pub fn hooks(rule: &RuleInfo) -> Vec<String> {
    programs(rule, |_| true)
        .iter()
        .map(|p| format!("{} {}", p.hook.kind_name(), p.name))
        .collect()
}

pub fn report() -> String {
    let mut s = String::new();
    for info in all_rule_infos() {
        let _ = writeln!(s, "{}", info.id);
        let _ = writeln!(s, "  severity: {}", info.severity.as_str());
        let _ = writeln!(s, "  mitre:    {}", info.mitre);
        let _ = writeln!(s, "  title:    {}", info.title);
        let inputs: Vec<String> = info.inputs.iter().map(|i| i.name()).collect();
        let _ = writeln!(s, "  events:   {}", inputs.join(", "));
        let hooks = hooks(info);
        if !hooks.is_empty() {
            let _ = writeln!(s, "  hooks:    {}", hooks.join(", "));
        }
        if let Some(why) = not_applicable(info) {
            let _ = writeln!(s, "  status:   not applicable here: {why}");
        }
        if let Some(note) = kernel_note(info) {
            let _ = writeln!(s, "  note:     {note}");
        }
        let _ = writeln!(s, "  {}\n", info.explanation);
    }
    s
}

/// One rule as `escapewatch rules --format json` prints it.
#[derive(Serialize)]
struct RuleJson {
    id: &'static str,
    severity: &'static str,
    mitre: &'static str,
    title: &'static str,
    scope: &'static str,
    explanation: &'static str,
    inputs: Vec<String>,
    hooks: Vec<String>,
    applicable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    not_applicable: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<&'static str>,
}

/// The catalogue as a JSON array.
pub fn report_json() -> String {
    let rules: Vec<RuleJson> = all_rule_infos()
        .into_iter()
        .map(|i| RuleJson {
            id: i.id,
            severity: i.severity.as_str(),
            mitre: i.mitre,
            title: i.title,
            scope: i.scope,
            explanation: i.explanation,
            inputs: i.inputs.iter().map(|x| x.name()).collect(),
            hooks: hooks(i),
            applicable: not_applicable(i).is_none(),
            not_applicable: not_applicable(i),
            note: kernel_note(i),
        })
        .collect();
    let mut s = serde_json::to_string_pretty(&rules).unwrap_or_default();
    s.push('\n');
    s
}

/// The README's rule table.
pub fn report_markdown() -> String {
    markdown_table()
}
