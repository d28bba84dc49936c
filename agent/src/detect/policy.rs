//! What the operator decided about the rules: which run, at which severity, and which alerts
//! are expected (allowlists). Applied to alerts after the rules ran, so the rules stay simple and
//! the engine stays pure and deterministic: the same events and policy give the same alerts.

use std::collections::BTreeMap;

use glob::Pattern;
use serde::Deserialize;

use super::{Alert, RuleInfo, Severity};
use crate::model::{Event, Runtime};

/// One rule's settings as written in the config file (`[rules.<rule-id>]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuleSettings {
    pub enabled: bool,
    /// Replaces the rule's own severity in its alerts.
    pub severity: Option<Severity>,
    /// Alerts matching any entry are suppressed (and counted).
    pub allow: Vec<AllowSettings>,
}

impl Default for RuleSettings {
    fn default() -> Self {
        RuleSettings {
            enabled: true,
            severity: None,
            allow: Vec::new(),
        }
    }
}

/// One allowlist entry: it matches an alert when every field it sets matches.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AllowSettings {
    /// Glob over the container id (64 hex characters, or the cgroup path of an unknown runtime).
    pub container_id: Option<String>,
    /// Container runtime: docker, containerd, cri-o, podman, kubernetes, unknown.
    pub runtime: Option<Runtime>,
    /// Glob over the process's cgroup path (`*` also matches `/`), e.g. `/kubepods.slice/*`.
    pub cgroup: Option<String>,
    /// Glob over the process's executable path. Only a host file matches: a process in the
    /// host's mount namespace, or a container running the host's own file (bind-mounted,
    /// same device and inode). A container's own `/usr/bin/nsenter` never does.
    pub exe: Option<String>,
    /// Glob over the Kubernetes namespace of the alert's pod.
    pub k8s_namespace: Option<String>,
    /// Glob over the pod's name.
    pub pod: Option<String>,
    /// Glob over the container's image reference (`registry.example/debug:*`).
    pub image: Option<String>,
    /// Glob over the container's name.
    pub container_name: Option<String>,
    /// Container labels, each a glob its value must match (`{ team = "platform" }`).
    pub labels: BTreeMap<String, String>,
    /// Last day (`YYYY-MM-DD`, UTC) the entry holds; alerts of later events are not
    /// allowlisted by it. Judged by the event's time, so replay judges it the same way.
    pub expires: Option<String>,
    /// Why this is expected; required, so a later reader knows whom to ask.
    pub reason: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PolicyError {
    #[error("is not a rule id (known rules: {known})")]
    UnknownRule { rule: String, known: String },
    #[error("is not a valid glob: {message}")]
    BadGlob {
        rule: String,
        index: usize,
        field: &'static str,
        message: String,
    },
    #[error(
        "matches every alert: give at least one of container_id, runtime, cgroup, exe, k8s_namespace, pod, image, container_name, labels"
    )]
    MatchesEverything { rule: String, index: usize },
    #[error("must say why the entry is allowed (a non-empty string)")]
    MissingReason { rule: String, index: usize },
    #[error("must be a date YYYY-MM-DD, not {value:?}")]
    BadExpiry {
        rule: String,
        index: usize,
        value: String,
    },
}

impl PolicyError {
    /// The config key the error is about, e.g. `rules.namespace-join-host.allow[0].cgroup`.
    pub fn key(&self) -> (String, Option<usize>, Option<&'static str>) {
        match self {
            PolicyError::UnknownRule { rule, .. } => (rule.clone(), None, None),
            PolicyError::BadGlob {
                rule, index, field, ..
            } => (rule.clone(), Some(*index), Some(field)),
            PolicyError::MatchesEverything { rule, index } => (rule.clone(), Some(*index), None),
            PolicyError::MissingReason { rule, index } => {
                (rule.clone(), Some(*index), Some("reason"))
            }
            PolicyError::BadExpiry { rule, index, .. } => {
                (rule.clone(), Some(*index), Some("expires"))
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct AllowEntry {
    container_id: Option<Pattern>,
    runtime: Option<Runtime>,
    cgroup: Option<Pattern>,
    exe: Option<Pattern>,
    workload: WorkloadMatch,
}

/// The workload terms of an entry: what the runtime said about the container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct WorkloadMatch {
    k8s_namespace: Option<Pattern>,
    pod: Option<Pattern>,
    image: Option<Pattern>,
    container_name: Option<Pattern>,
    labels: Vec<(String, Pattern)>,
    /// `YYYY-MM-DD`: compared with the first 10 characters of the alert's RFC 3339 time.
    expires: Option<String>,
}

impl WorkloadMatch {
    fn is_empty(&self) -> bool {
        self.k8s_namespace.is_none()
            && self.pod.is_none()
            && self.image.is_none()
            && self.container_name.is_none()
            && self.labels.is_empty()
    }

    /// An entry without workload terms matches every workload; with some, a container
    /// whose metadata lacks the field does not match (metadata not known is not allowed).
    fn matches(&self, alert: &Alert) -> bool {
        if let Some(day) = &self.expires
            && alert.time.get(..10).is_some_and(|d| d > day.as_str())
        {
            return false;
        }
        if self.is_empty() {
            return true;
        }
        let Some(c) = alert.container.as_ref() else {
            return false;
        };
        let pod = c.pod.as_ref();
        let glob = |p: &Option<Pattern>, v: Option<&str>| {
            p.as_ref()
                .is_none_or(|p| v.is_some_and(|v| !v.is_empty() && p.matches(v)))
        };
        glob(&self.k8s_namespace, pod.map(|p| p.namespace.as_str()))
            && glob(&self.pod, pod.map(|p| p.name.as_str()))
            && glob(&self.image, Some(c.image.as_str()))
            && glob(&self.container_name, Some(c.name.as_str()))
            && self
                .labels
                .iter()
                .all(|(k, p)| c.labels.get(k).is_some_and(|v| p.matches(v)))
    }
}

impl AllowEntry {
    /// `exe_foreign`: the alert's executable is a container's own file (`Process::exe_foreign`).
    fn matches(&self, alert: &Alert, cgroup: Option<&str>, exe_foreign: bool) -> bool {
        let container = alert.container.as_ref();
        let glob = |p: &Option<Pattern>, v: Option<&str>| {
            p.as_ref().is_none_or(|p| v.is_some_and(|v| p.matches(v)))
        };
        glob(&self.container_id, container.map(|c| c.id.as_str()))
            && self
                .runtime
                .is_none_or(|r| container.is_some_and(|c| c.runtime == r))
            && glob(&self.cgroup, cgroup)
            && glob(
                &self.exe,
                (!exe_foreign).then_some(alert.process.exe.as_str()),
            )
            && self.workload.matches(alert)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct RulePolicy {
    enabled: bool,
    severity: Option<Severity>,
    allow: Vec<AllowEntry>,
}

/// Why an alert was not emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SuppressReason {
    Disabled,
    Allowlisted,
}

impl SuppressReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SuppressReason::Disabled => "disabled",
            SuppressReason::Allowlisted => "allowlisted",
        }
    }
}

/// An alert the policy held back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suppressed {
    pub rule: String,
    pub reason: SuppressReason,
    /// The allowlist entry that matched.
    pub entry: Option<usize>,
}

/// A catalogue rule that runs only when the config turns it on.
fn off_by_default(rule: &str) -> bool {
    super::rules::info(rule).is_some_and(|i| i.off_by_default)
}

/// The compiled policy. The default lets every alert through unchanged, except those of rules
/// off by default ([`RuleInfo::off_by_default`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    rules: BTreeMap<String, RulePolicy>,
}

fn compile(
    rule: &str,
    index: usize,
    field: &'static str,
    glob: &Option<String>,
) -> Result<Option<Pattern>, PolicyError> {
    glob.as_deref()
        .map(|g| {
            Pattern::new(g).map_err(|e| PolicyError::BadGlob {
                rule: rule.to_owned(),
                index,
                field,
                message: e.to_string(),
            })
        })
        .transpose()
}

/// `YYYY-MM-DD` naming a day of the calendar.
fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    if b.len() != 10
        || b[4] != b'-'
        || b[7] != b'-'
        || !digits(0..4)
        || !digits(5..7)
        || !digits(8..10)
    {
        return false;
    }
    let (Ok(y), Ok(m), Ok(d)) = (
        s[..4].parse::<i32>(),
        s[5..7].parse::<u8>(),
        s[8..].parse::<u8>(),
    ) else {
        return false;
    };
    time::Month::try_from(m).is_ok_and(|m| time::Date::from_calendar_date(y, m, d).is_ok())
}

fn compile_workload(
    rule: &str,
    index: usize,
    a: &AllowSettings,
) -> Result<WorkloadMatch, PolicyError> {
    let mut labels = Vec::with_capacity(a.labels.len());
    for (k, g) in &a.labels {
        let p = Pattern::new(g).map_err(|e| PolicyError::BadGlob {
            rule: rule.to_owned(),
            index,
            field: "labels",
            message: format!("label {k}: {e}"),
        })?;
        labels.push((k.clone(), p));
    }
    if let Some(day) = &a.expires
        && !is_date(day)
    {
        return Err(PolicyError::BadExpiry {
            rule: rule.to_owned(),
            index,
            value: day.clone(),
        });
    }
    Ok(WorkloadMatch {
        k8s_namespace: compile(rule, index, "k8s_namespace", &a.k8s_namespace)?,
        pod: compile(rule, index, "pod", &a.pod)?,
        image: compile(rule, index, "image", &a.image)?,
        container_name: compile(rule, index, "container_name", &a.container_name)?,
        labels,
        expires: a.expires.clone(),
    })
}

impl Policy {
    /// Check and compile the settings against the rules that exist.
    pub fn new(
        settings: &BTreeMap<String, RuleSettings>,
        known: &[&RuleInfo],
    ) -> Result<Policy, PolicyError> {
        let mut rules = BTreeMap::new();
        for (rule, s) in settings {
            if !known.iter().any(|i| i.id == rule) {
                let known: Vec<&str> = known.iter().map(|i| i.id).collect();
                return Err(PolicyError::UnknownRule {
                    rule: rule.clone(),
                    known: known.join(", "),
                });
            }
            let mut allow = Vec::with_capacity(s.allow.len());
            for (index, a) in s.allow.iter().enumerate() {
                let entry = AllowEntry {
                    container_id: compile(rule, index, "container_id", &a.container_id)?,
                    runtime: a.runtime,
                    cgroup: compile(rule, index, "cgroup", &a.cgroup)?,
                    exe: compile(rule, index, "exe", &a.exe)?,
                    workload: compile_workload(rule, index, a)?,
                };
                if entry.container_id.is_none()
                    && entry.runtime.is_none()
                    && entry.cgroup.is_none()
                    && entry.exe.is_none()
                    && entry.workload.is_empty()
                {
                    return Err(PolicyError::MatchesEverything {
                        rule: rule.clone(),
                        index,
                    });
                }
                if a.reason.trim().is_empty() {
                    return Err(PolicyError::MissingReason {
                        rule: rule.clone(),
                        index,
                    });
                }
                allow.push(entry);
            }
            rules.insert(
                rule.clone(),
                RulePolicy {
                    enabled: s.enabled,
                    severity: s.severity,
                    allow,
                },
            );
        }
        Ok(Policy { rules })
    }

    /// The severity alerts of `rule` get (its own unless overridden).
    pub fn severity(&self, rule: &RuleInfo) -> Severity {
        self.rules
            .get(rule.id)
            .and_then(|r| r.severity)
            .unwrap_or(rule.severity)
    }

    pub fn enabled(&self, rule: &str) -> bool {
        match self.rules.get(rule) {
            Some(r) => r.enabled,
            None => !off_by_default(rule),
        }
    }

    /// The alert as the operator wants it, or why it is held back. `event` gives the fields an
    /// alert does not carry (the cgroup path); alerts the daemon makes itself have none.
    pub fn apply(&self, mut alert: Alert, event: Option<&Event>) -> Result<Alert, Suppressed> {
        let Some(rule) = self.rules.get(&alert.rule) else {
            if off_by_default(&alert.rule) {
                return Err(Suppressed {
                    rule: alert.rule.clone(),
                    reason: SuppressReason::Disabled,
                    entry: None,
                });
            }
            return Ok(alert);
        };
        let suppressed = |reason, entry| Suppressed {
            rule: alert.rule.clone(),
            reason,
            entry,
        };
        if !rule.enabled {
            return Err(suppressed(SuppressReason::Disabled, None));
        }
        let cgroup = event
            .map(|e| e.process.cgroup.as_str())
            .filter(|c| !c.is_empty());
        let exe_foreign = event.is_some_and(|e| e.process.exe_foreign);
        if let Some(i) = rule
            .allow
            .iter()
            .position(|a| a.matches(&alert, cgroup, exe_foreign))
        {
            return Err(suppressed(SuppressReason::Allowlisted, Some(i)));
        }
        if let Some(s) = rule.severity {
            alert.severity = s;
        }
        Ok(alert)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        detect::{AlertContainer, AlertProcess},
        model::testing::{container_process, setns_event},
    };

    static INFO: RuleInfo = RuleInfo {
        id: "r1",
        severity: Severity::Critical,
        mitre: "T1611",
        title: "t",
        explanation: "e",
        ..RuleInfo::BASE
    };

    fn alert() -> Alert {
        Alert {
            id: String::new(),
            time: "t".into(),
            rule: "r1".into(),
            severity: Severity::Critical,
            summary: "s".into(),
            mitre: "T1611".into(),
            node: None,
            container: Some(AlertContainer::from_container(&crate::model::Container {
                id: "a".repeat(64),
                runtime: Runtime::Docker,
                pod_uid: None,
            })),
            process: AlertProcess {
                pid: 1,
                ppid: 0,
                comm: "nsenter".into(),
                exe: "/usr/bin/nsenter".into(),
                uid: 0,
            },
            details: serde_json::Value::Null,
            event_ids: vec![1],
            explanation: "e".into(),
            coalesced: None,
        }
    }

    fn policy(toml_text: &str) -> Result<Policy, PolicyError> {
        let settings: BTreeMap<String, RuleSettings> = toml::from_str(toml_text).unwrap();
        Policy::new(&settings, &[&INFO])
    }

    #[test]
    fn default_policy_changes_nothing() {
        assert_eq!(Policy::default().apply(alert(), None), Ok(alert()));
    }

    #[test]
    fn severity_override_and_disable() {
        let p = policy("[r1]\nseverity = \"low\"\n").unwrap();
        assert_eq!(p.apply(alert(), None).unwrap().severity, Severity::Low);
        assert_eq!(p.severity(&INFO), Severity::Low);
        let p = policy("[r1]\nenabled = false\n").unwrap();
        assert_eq!(
            p.apply(alert(), None).unwrap_err().reason,
            SuppressReason::Disabled
        );
    }

    #[test]
    fn allow_entry_needs_every_field_to_match() {
        let p = policy(
            "[[r1.allow]]\nruntime = \"docker\"\nexe = \"/usr/bin/*\"\nreason = \"debug pods\"\n\
             [[r1.allow]]\ncontainer_id = \"b*\"\nreason = \"x\"\n",
        )
        .unwrap();
        let s = p.apply(alert(), None).unwrap_err();
        assert_eq!((s.reason, s.entry), (SuppressReason::Allowlisted, Some(0)));
        let mut other = alert();
        other.process.exe = "/bin/busybox".into();
        assert!(p.apply(other, None).is_ok());
    }

    #[test]
    fn an_exe_entry_matches_only_a_host_file() {
        let p = policy("[[r1.allow]]\nexe = \"/usr/bin/nsenter\"\nreason = \"debug\"\n").unwrap();
        let skeleton = |foreign: bool| {
            let mut s = container_process();
            s.process.exe = "/usr/bin/nsenter".into();
            s.process.exe_foreign = foreign;
            s
        };
        let host_file = setns_event(skeleton(false), 0, vec![]);
        assert!(
            p.apply(alert(), Some(&host_file)).is_err(),
            "the host's nsenter"
        );
        // The container's own /usr/bin/nsenter: the path is the container's choice.
        let own = setns_event(skeleton(true), 0, vec![]);
        assert!(
            p.apply(alert(), Some(&own)).is_ok(),
            "a container's own file is no host file"
        );
    }

    #[test]
    fn cgroup_glob_reads_the_event() {
        let p = policy("[[r1.allow]]\ncgroup = \"/docker/*\"\nreason = \"x\"\n").unwrap();
        let event = setns_event(container_process(), 0, vec![]);
        assert!(p.apply(alert(), Some(&event)).is_err());
        // Without the event (daemon-made alerts) a cgroup entry cannot match.
        assert!(p.apply(alert(), None).is_ok());
    }

    #[test]
    fn bad_settings_are_named() {
        assert!(matches!(
            policy("[nope]\nenabled = false\n"),
            Err(PolicyError::UnknownRule { .. })
        ));
        assert!(matches!(
            policy("[[r1.allow]]\nexe = \"[\"\nreason = \"x\"\n"),
            Err(PolicyError::BadGlob { field: "exe", .. })
        ));
        assert!(matches!(
            policy("[[r1.allow]]\nreason = \"x\"\n"),
            Err(PolicyError::MatchesEverything { index: 0, .. })
        ));
        assert!(matches!(
            policy("[[r1.allow]]\nexe = \"/x\"\n"),
            Err(PolicyError::MissingReason { index: 0, .. })
        ));
    }
}
