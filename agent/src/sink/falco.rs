//! Falco's JSON output shape (what `json_output: true` gives and falcosidekick's `/` endpoint
//! takes): `uuid`, `output`, `priority`, `rule`, `time`, `output_fields`, `source`, `tags`,
//! `hostname`. falcosidekick routes by `priority` and `rule` and shows `output_fields`, so the
//! container, image, pod and process go there under Falco's field names.

use serde_json::{Map, Value, json};

use crate::detect::{Alert, Severity};

/// Falco's priority names, by escapewatch severity.
pub fn priority(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "Critical",
        Severity::High => "Error",
        Severity::Medium => "Warning",
        Severity::Low => "Notice",
    }
}

/// The Falco-compatible payload of `alert`.
pub fn payload(alert: &Alert) -> Value {
    let mut f = Map::new();
    let mut put = |k: &str, v: Value| {
        if !v.is_null() && v != "" {
            f.insert(k.to_owned(), v);
        }
    };
    put("evt.time", alert.time.clone().into());
    put("proc.pid", alert.process.pid.into());
    put("proc.ppid", alert.process.ppid.into());
    put("proc.name", alert.process.comm.clone().into());
    put("proc.exepath", alert.process.exe.clone().into());
    put("user.uid", alert.process.uid.into());
    if let Some(c) = &alert.container {
        put("container.id", c.id.clone().into());
        put("container.name", c.name.clone().into());
        put(
            "container.image.repository",
            image_repository(&c.image).into(),
        );
        put("container.image.tag", image_tag(&c.image).into());
        put("container.image.digest", c.image_digest.clone().into());
        put("container.runtime", c.runtime.as_str().into());
        if let Some(p) = &c.pod {
            put("k8s.ns.name", p.namespace.clone().into());
            put("k8s.pod.name", p.name.clone().into());
            put("k8s.pod.uid", p.uid.clone().into());
        } else if let Some(uid) = &c.pod_uid {
            put("k8s.pod.uid", uid.clone().into());
        }
    }
    if let Some(n) = &alert.node {
        put("k8s.node.name", n.name.clone().into());
        if let Some(c) = &n.cluster {
            put("cluster", c.clone().into());
        }
    }
    put("escapewatch.alert_id", alert.id.clone().into());
    put("escapewatch.details", alert.details.clone());
    let hostname = alert
        .node
        .as_ref()
        .map(|n| n.name.clone())
        .unwrap_or_default();
    let mut tags = vec![
        "escapewatch".to_owned(),
        "container".to_owned(),
        format!("mitre_{}", alert.mitre),
    ];
    tags.sort();
    json!({
        "uuid": alert.id,
        "output": format!("{} {}: {}", alert.time, priority(alert.severity), alert.summary),
        "priority": priority(alert.severity),
        "rule": alert.rule,
        "time": alert.time,
        "output_fields": f,
        "source": "escapewatch",
        "tags": tags,
        "hostname": hostname,
    })
}

/// `registry:5000/team/app` of `registry:5000/team/app:1.2@sha256:…`.
fn image_repository(image: &str) -> String {
    let no_digest = image.split('@').next().unwrap_or_default();
    match no_digest.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => repo.to_owned(),
        _ => no_digest.to_owned(),
    }
}

fn image_tag(image: &str) -> String {
    let no_digest = image.split('@').next().unwrap_or_default();
    match no_digest.rsplit_once(':') {
        Some((_, tag)) if !tag.contains('/') => tag.to_owned(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_references_split_like_falco() {
        assert_eq!(
            image_repository("registry:5000/team/app:1.2"),
            "registry:5000/team/app"
        );
        assert_eq!(image_tag("registry:5000/team/app:1.2"), "1.2");
        assert_eq!(
            image_repository("registry:5000/team/app"),
            "registry:5000/team/app"
        );
        assert_eq!(image_tag("registry:5000/team/app"), "");
        assert_eq!(image_repository("busybox:1@sha256:ab"), "busybox");
    }
}
