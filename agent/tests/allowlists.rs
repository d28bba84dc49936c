//! Root-free: allowlists in workload terms (Kubernetes namespace, pod, image, container name,
//! labels, with an expiry judged by the event's time), `config.d/` drop-ins merged in name
//! order, errors naming file, line and key, and `check-config` showing the merged policy.

use std::{
    fs,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::Command,
};

use escapewatch::{
    config::{Config, ConfigError},
    detect::{Alert, Policy},
    model::Pod,
};

fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ew-allow-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn write(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o644)).unwrap();
}

/// A recorded namespace-join-host alert of a docker container, given workload metadata.
fn alert(namespace: &str, pod: &str, image: &str, name: &str, time: &str) -> Alert {
    let text = fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/incident-two-containers.alerts.jsonl"),
    )
    .unwrap();
    let mut a: Alert = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    a.time = time.into();
    let c = a.container.as_mut().expect("a container alert");
    c.name = name.into();
    c.image = image.into();
    c.labels.insert("team".into(), "platform".into());
    c.pod = Some(Pod {
        name: pod.into(),
        namespace: namespace.into(),
        uid: "0d6b2c9e".into(),
        container: name.into(),
    });
    a
}

fn policy(text: &str) -> Policy {
    Config::parse(text, Path::new("c.toml"))
        .unwrap()
        .policy()
        .unwrap()
}

const T: &str = "2026-12-01T08:00:00.000000000Z";

fn allowed(p: &Policy, a: &Alert) -> bool {
    p.apply(a.clone(), None).is_err()
}

#[test]
fn entries_match_namespace_pod_image_container_name_and_labels() {
    let rule = alert("x", "x", "x", "x", T).rule;
    let one = |entry: &str| {
        policy(&format!(
            "[[rules.{rule}.allow]]\n{entry}\nreason = \"r\"\n"
        ))
    };
    let debug = alert(
        "kube-system",
        "node-debugger-abc12",
        "registry.example/debug:1.4",
        "debugger",
        T,
    );
    let app = alert("shop", "web-7f9c", "registry.example/web:2", "web", T);
    for entry in [
        "k8s_namespace = \"kube-system\"",
        "pod = \"node-debugger-*\"",
        "image = \"registry.example/debug:*\"",
        "container_name = \"debugger\"",
        "k8s_namespace = \"kube-*\"\npod = \"node-debugger-*\"\nlabels = { team = \"plat*\" }",
    ] {
        let p = one(entry);
        assert!(allowed(&p, &debug), "{entry} must allow the debugger");
        assert!(!allowed(&p, &app), "{entry} must not allow the shop's web");
    }
    // Every term of an entry must hold.
    let p = one("k8s_namespace = \"kube-system\"\nimage = \"registry.example/web:*\"");
    assert!(!allowed(&p, &debug) && !allowed(&p, &app));
    // A label the container lacks, or a container without metadata, is not allowed.
    let p = one("labels = { owner = \"*\" }");
    assert!(!allowed(&p, &debug));
    let mut bare = debug.clone();
    let c = bare.container.as_mut().unwrap();
    (c.image, c.name, c.pod) = (String::new(), String::new(), None);
    assert!(!allowed(&one("image = \"*\""), &bare));
    assert!(!allowed(&one("k8s_namespace = \"*\""), &bare));
}

#[test]
fn an_entry_expires_after_its_day_by_the_events_time() {
    let a = alert(
        "kube-system",
        "dbg",
        "img:1",
        "dbg",
        "2026-12-01T23:59:59.999999999Z",
    );
    let p = |day: &str| {
        policy(&format!(
            "[[rules.{}.allow]]\nk8s_namespace = \"kube-system\"\nexpires = \"{day}\"\nreason = \"r\"\n",
            a.rule
        ))
    };
    assert!(allowed(&p("2026-12-01"), &a), "the last day holds");
    assert!(allowed(&p("2027-01-31"), &a));
    assert!(!allowed(&p("2026-11-30"), &a), "expired the day before");
}

fn invalid(text: &str) -> (Option<usize>, String, String) {
    match Config::parse(text, Path::new("c.toml")).unwrap_err() {
        ConfigError::Invalid {
            line, key, problem, ..
        } => (line, key, problem),
        e => panic!("not an Invalid: {e}"),
    }
}

#[test]
fn bad_entries_name_line_and_key() {
    let rule = "namespace-join-host";
    let (line, key, problem) = invalid(&format!(
        "[rules.{rule}]\n\n[[rules.{rule}.allow]]\nimage = \"[\"\nreason = \"r\"\n"
    ));
    assert_eq!(
        (line, key.as_str()),
        (Some(4), "rules.namespace-join-host.allow[0].image"),
        "{problem}"
    );
    let (line, key, problem) = invalid(&format!(
        "[[rules.{rule}.allow]]\npod = \"dbg-*\"\nexpires = \"2026-02-30\"\nreason = \"r\"\n"
    ));
    assert_eq!(
        (line, key.as_str()),
        (Some(3), "rules.namespace-join-host.allow[0].expires")
    );
    assert!(problem.contains("2026-02-30"), "{problem}");
    let (_, key, _) = invalid(&format!("[[rules.{rule}.allow]]\nk8s_namespace = \"x\"\n"));
    assert_eq!(key, "rules.namespace-join-host.allow[0].reason");
    let (_, _, problem) = invalid(&format!(
        "[[rules.{rule}.allow]]\nexpires = \"2027-01-01\"\nreason = \"r\"\n"
    ));
    assert!(problem.contains("matches every alert"), "{problem}");
}

fn layout(name: &str) -> PathBuf {
    let dir = tempdir(name);
    let main = dir.join("config.toml");
    write(
        &main,
        "[rules.namespace-join-host]\nseverity = \"high\"\n[[rules.namespace-join-host.allow]]\nexe = \"/usr/bin/nsenter\"\ncgroup = \"/kubepods.slice/*\"\nreason = \"main\"\n",
    );
    // Name order, not creation order: 20 first on disk, 10 merged first.
    write(
        &dir.join("config.d/20-security.toml"),
        "[rules.namespace-join-host]\nseverity = \"critical\"\n[[rules.namespace-join-host.allow]]\nimage = \"registry.example/debug:*\"\nreason = \"security team's debug image\"\nexpires = \"2027-06-30\"\n",
    );
    write(
        &dir.join("config.d/10-platform.toml"),
        "[[rules.namespace-join-host.allow]]\nk8s_namespace = \"kube-system\"\npod = \"node-debugger-*\"\nreason = \"platform node debugger\"\n",
    );
    write(&dir.join("config.d/README"), "not a drop-in: ignored\n");
    main
}

#[test]
fn config_d_drop_ins_merge_in_name_order() {
    let main = layout("merge");
    let c = Config::load(&main).unwrap();
    let dir = main.parent().unwrap();
    assert_eq!(
        c.sources,
        vec![
            main.clone(),
            dir.join("config.d/10-platform.toml"),
            dir.join("config.d/20-security.toml")
        ]
    );
    let r = &c.rules["namespace-join-host"];
    let reasons: Vec<&str> = r.allow.iter().map(|a| a.reason.as_str()).collect();
    assert_eq!(
        reasons,
        [
            "main",
            "platform node debugger",
            "security team's debug image"
        ]
    );
    assert_eq!(c.allow_sources["namespace-join-host"], c.sources);
    // A later file's value replaces an earlier one's.
    assert_eq!(r.severity, Some(escapewatch::detect::Severity::Critical));
    // And the merged policy allows by the drop-ins' workload terms.
    let p = c.policy().unwrap();
    assert!(allowed(
        &p,
        &alert("kube-system", "node-debugger-x", "i", "n", T)
    ));
    assert!(allowed(
        &p,
        &alert("shop", "web", "registry.example/debug:2", "n", T)
    ));
    assert!(!allowed(
        &p,
        &alert("shop", "web", "registry.example/web:2", "n", T)
    ));
}

#[test]
fn a_bad_drop_in_is_named_with_its_line_and_key() {
    let main = layout("bad-dropin");
    let bad = main.parent().unwrap().join("config.d/30-broken.toml");
    write(
        &bad,
        "# a team's file\n[[rules.namespace-join-host.allow]]\ncontainer_name = \"web\"\n",
    );
    match Config::load(&main).unwrap_err() {
        ConfigError::Invalid {
            path, line, key, ..
        } => {
            assert_eq!(path, bad);
            assert_eq!(line, Some(2));
            assert_eq!(key, "rules.namespace-join-host.allow[0].reason");
        }
        e => panic!("{e}"),
    }
    write(&bad, "[rules.namespace-join-host]\nallow = 3\n");
    let e = Config::load(&main).unwrap_err().to_string();
    assert!(e.contains("30-broken.toml") && e.contains("line 2"), "{e}");
}

#[test]
fn check_config_shows_the_merged_policy() {
    let main = layout("check");
    let out = Command::new(env!("CARGO_BIN_EXE_escapewatch"))
        .arg("check-config")
        .arg(&main)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("merged drop-in") && stdout.contains("10-platform.toml"),
        "{stdout}"
    );
    let line = |needle: &str| {
        stdout
            .lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle}: {stdout}"))
            .to_owned()
    };
    assert!(
        line("namespace-join-host ").contains("allowlist entries: 3"),
        "{stdout}"
    );
    let l = line("allow[1]");
    assert!(
        l.contains("k8s_namespace=\"kube-system\"") && l.contains("pod=\"node-debugger-*\""),
        "{l}"
    );
    assert!(
        l.contains("platform node debugger") && l.contains("10-platform.toml"),
        "{l}"
    );
    let l = line("allow[2]");
    assert!(
        l.contains("image=\"registry.example/debug:*\"") && l.contains("until 2027-06-30"),
        "{l}"
    );
}
