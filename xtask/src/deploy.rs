//! CI checks of everything under `deploy/`: Prometheus rules (promtool check + unit tests), the
//! Kubernetes manifest and the Grafana dashboard (parsed, and the fields that matter checked),
//! the Debian package (built with cargo-deb, installed with dpkg, run from its installed path)
//! and the systemd unit (`systemd-analyze verify` of the installed unit, whose ExecStart must
//! exist).

use std::{fs, path::Path, process::Command};

use anyhow::{Context as _, Result, bail, ensure};

use crate::{run, workspace_root};

/// Rules, manifests and dashboard: no root needed.
pub fn check() -> Result<()> {
    let root = workspace_root();
    let prom = root.join("deploy/prometheus");
    run(Command::new("promtool")
        .args(["check", "rules"])
        .arg(prom.join("escapewatch-rules.yml")))
    .context("promtool check rules (apt-get install prometheus)")?;
    // promtool resolves a test file's rule_files relative to that file.
    let mut tests: Vec<_> = fs::read_dir(prom.join("tests"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .collect();
    tests.sort();
    ensure!(
        !tests.is_empty(),
        "no promtool tests in deploy/prometheus/tests"
    );
    run(Command::new("promtool")
        .args(["test", "rules"])
        .args(&tests))?;
    check_daemonset(&root.join("deploy/kubernetes/escapewatch-daemonset.yaml"))?;
    check_dashboard(&root.join("deploy/grafana/escapewatch-dashboard.json"))?;
    println!("xtask: deploy/ checks passed (promtool, DaemonSet YAML, dashboard JSON)");
    Ok(())
}

fn check_daemonset(path: &Path) -> Result<()> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut kinds = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let v = serde_yaml::Value::deserialize(doc)
            .with_context(|| format!("{}: not valid YAML", path.display()))?;
        let kind = v["kind"].as_str().unwrap_or_default().to_owned();
        ensure!(
            v["apiVersion"].is_string() && !kind.is_empty(),
            "{}: a document without apiVersion/kind",
            path.display()
        );
        if kind == "DaemonSet" {
            let spec = &v["spec"]["template"]["spec"];
            ensure!(spec["hostPID"] == true, "the DaemonSet must use hostPID");
            let c = &spec["containers"][0];
            let caps: Vec<&str> = c["securityContext"]["capabilities"]["add"]
                .as_sequence()
                .map(|s| s.iter().filter_map(|v| v.as_str()).collect())
                .unwrap_or_default();
            for need in ["BPF", "PERFMON", "NET_ADMIN", "SYS_PTRACE"] {
                ensure!(caps.contains(&need), "DaemonSet lacks capability {need}");
            }
            for probe in ["livenessProbe", "readinessProbe"] {
                ensure!(
                    c[probe]["httpGet"]["path"].is_string(),
                    "DaemonSet lacks {probe}"
                );
            }
        }
        kinds.push(kind);
    }
    ensure!(
        kinds.iter().any(|k| k == "DaemonSet"),
        "{}: no DaemonSet",
        path.display()
    );
    Ok(())
}

fn check_dashboard(path: &Path) -> Result<()> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{}: not valid JSON", path.display()))?;
    let panels = v["panels"].as_array().context("dashboard without panels")?;
    ensure!(!panels.is_empty(), "dashboard without panels");
    for p in panels {
        let targets = p["targets"].as_array().context("panel without targets")?;
        for t in targets {
            let expr = t["expr"].as_str().unwrap_or_default();
            ensure!(
                expr.contains("escapewatch_") || expr.contains("up{") || expr.contains("process_"),
                "panel {:?}: query {expr:?} reads no escapewatch metric",
                p["title"]
            );
        }
    }
    Ok(())
}

use serde::Deserialize as _;

/// Build the .deb from the already-built release binary, install it, run the installed binary,
/// verify the installed unit, and remove the package again.
pub fn deb() -> Result<()> {
    let root = workspace_root();
    let out = root.join("target/debian");
    let _ = fs::remove_dir_all(&out);
    run(Command::new("cargo")
        .args([
            "deb",
            "-p",
            "escapewatch",
            "--no-build",
            "--no-strip",
            "--output",
        ])
        .arg(&out)
        .env_remove("RUSTUP_TOOLCHAIN"))
    .context("cargo deb (cargo xtask setup installs cargo-deb)")?;
    let deb = fs::read_dir(&out)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .context("cargo deb wrote no .deb")?;
    println!("xtask: built {}", deb.display());
    run(Command::new("dpkg").arg("-i").arg(&deb))?;
    let result = installed_checks();
    // Leave the machine as it was, whatever happened.
    let purge = run(Command::new("dpkg").args(["--purge", "escapewatch"]));
    result?;
    purge?;
    println!("xtask: .deb installed, checked and purged");
    Ok(())
}

fn installed_checks() -> Result<()> {
    for f in [
        "/usr/bin/escapewatch",
        "/lib/systemd/system/escapewatch.service",
        "/etc/escapewatch/config.toml",
        "/usr/share/escapewatch/prometheus/escapewatch-rules.yml",
        "/etc/logrotate.d/escapewatch",
    ] {
        ensure!(Path::new(f).exists(), "the package did not install {f}");
    }
    let out = Command::new("/usr/bin/escapewatch")
        .arg("--version")
        .output()
        .context("running the installed escapewatch")?;
    let version = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success() && version.starts_with("escapewatch "),
        "installed `escapewatch --version` gave {:?}",
        version
    );
    println!("xtask: installed: {}", version.trim());
    run(
        Command::new("/usr/bin/escapewatch").args(["check-config", "/etc/escapewatch/config.toml"])
    )?;
    let verify = Command::new("systemd-analyze")
        .args([
            "verify",
            "--man=no",
            "/lib/systemd/system/escapewatch.service",
        ])
        .output()
        .context("running systemd-analyze verify")?;
    let text = String::from_utf8_lossy(&verify.stderr).into_owned()
        + &String::from_utf8_lossy(&verify.stdout);
    // systemd-analyze also reports problems of unrelated units of this machine; only lines
    // about ours count.
    let ours: Vec<&str> = text.lines().filter(|l| l.contains("escapewatch")).collect();
    if !verify.status.success() || !ours.is_empty() {
        bail!("systemd-analyze verify escapewatch.service:\n{text}");
    }
    println!("xtask: systemd-analyze verify escapewatch.service: clean");
    Ok(())
}
