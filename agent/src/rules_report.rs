//! `escapewatch rules`: the catalogue with, for each rule, the hooks that feed it and whether it
//! applies to the running kernel.

use std::{fmt::Write as _, path::Path};

use escapewatch_common::{
    kind::EventKind,
    programs::{PROGRAMS, ProgramSpec},
};

use crate::detect::{RuleInfo, all_rule_infos};

/// Why a rule cannot apply on this machine, if it cannot.
pub fn not_applicable(rule: &RuleInfo) -> Option<&'static str> {
    match rule.id {
        "kernel-module-load" if !Path::new("/proc/modules").exists() => Some(
            "this kernel is built without module support (CONFIG_MODULES off): it has no \
             init_module/finit_module tracepoints and cannot load a module at all",
        ),
        _ => None,
    }
}

/// What a responder should know about a rule on this kernel, when the rule applies but the
/// kernel changes what it can see.
pub fn kernel_note(rule: &RuleInfo) -> Option<&'static str> {
    match rule.id {
        "sysrq-trigger-write" if !Path::new("/proc/sysrq-trigger").exists() => Some(
            "this kernel has no /proc/sysrq-trigger (CONFIG_MAGIC_SYSRQ off): attempts to open \
             it are reported, nothing can be triggered",
        ),
        "kernel-memory-access" if !Path::new("/dev/mem").exists() => Some(
            "this kernel has no /dev/mem driver: opens fail with ENXIO and are reported as \
             attempts",
        ),
        _ => None,
    }
}

/// The hook types of the programs producing `rule`'s event kinds (`syscall` maps to every
/// watched syscall), e.g. "tracepoint syscalls:sys_enter_setns".
pub fn hooks(rule: &RuleInfo) -> Vec<String> {
    programs(rule, |_| true)
        .iter()
        .map(|p| format!("{} {}", p.hook.kind_name(), p.name))
        .collect()
}

/// The programs producing `rule`'s event kinds that `keep` accepts (the attached ones, for the
/// running agent), in catalogue order.
pub fn programs(rule: &RuleInfo, keep: impl Fn(&ProgramSpec) -> bool) -> Vec<&'static ProgramSpec> {
    let mut out: Vec<&'static ProgramSpec> = Vec::new();
    for kind in rule.event_kinds {
        // "syscall:ptrace": the Syscall kind, from the ptrace program only.
        let (kind, only) = kind
            .split_once(':')
            .map_or((*kind, None), |(k, s)| (k, Some(s)));
        for p in PROGRAMS {
            let from = only.is_none_or(|s| p.name.strip_prefix("sys_enter_") == Some(s));
            if from
                && p.kinds.iter().any(|k: &EventKind| k.name() == kind)
                && keep(p)
                && !out.iter().any(|o| o.name == p.name)
            {
                out.push(p);
            }
        }
    }
    out
}

pub fn report() -> String {
    let mut s = String::new();
    for info in all_rule_infos() {
        let _ = writeln!(s, "{}", info.id);
        let _ = writeln!(s, "  severity: {}", info.severity.as_str());
        let _ = writeln!(s, "  mitre:    {}", info.mitre);
        let _ = writeln!(s, "  title:    {}", info.title);
        if !info.event_kinds.is_empty() {
            let _ = writeln!(s, "  events:   {}", info.event_kinds.join(", "));
            let _ = writeln!(s, "  hooks:    {}", hooks(info).join(", "));
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
