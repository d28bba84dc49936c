//! The CLI's answers to bad environments and inputs: one clear error, non-zero exit, no panic.

use std::process::{Command, Output};

fn escapewatch(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_escapewatch"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("run escapewatch")
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn fails_with(out: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "must fail; stderr: {stderr}");
    assert!(stderr.contains(needle), "stderr lacks {needle:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn unreadable_config_names_the_file() {
    let out = escapewatch(&["run", "--config", "/nonexistent/escapewatch.toml"]);
    fails_with(
        &out,
        "cannot read config file /nonexistent/escapewatch.toml",
    );
}

#[test]
fn bad_config_key_names_file_line_and_key() {
    let path = std::env::temp_dir().join(format!("ew-bad-{}.toml", std::process::id()));
    std::fs::write(&path, "[logs]\nevent_logg = \"/tmp/x\"\n").unwrap();
    let out = escapewatch(&["run", "--config", path.to_str().unwrap()]);
    fails_with(&out, "event_logg");
    fails_with(&out, "line 2");
    let _ = std::fs::remove_file(path);
}

#[test]
fn unknown_hook_type_is_refused_with_the_choices() {
    // From the flag and from the environment (a systemd EnvironmentFile): the same answer.
    let out = escapewatch(&["run", "--disable-hooks", "fentry,kprobes"]);
    fails_with(&out, "\"kprobes\" is not one of fentry, kprobe, lsm");
    let out = Command::new(env!("CARGO_BIN_EXE_escapewatch"))
        .arg("run")
        .env("ESCAPEWATCH_DISABLE_HOOKS", "tracepoint")
        .output()
        .expect("run escapewatch");
    fails_with(&out, "\"tracepoint\" is not one of fentry, kprobe, lsm");
}

#[test]
fn check_config_lists_the_hooks_not_used() {
    let path = std::env::temp_dir().join(format!("ew-hooks-{}.toml", std::process::id()));
    std::fs::write(&path, "[hooks]\ndisable = [\"fentry\", \"lsm\"]\n").unwrap();
    let out = escapewatch(&["check-config", path.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("hooks not used: fentry, lsm"), "{stdout}");
    std::fs::write(&path, "[hooks]\ndisable = [\"raw_tracepoint\"]\n").unwrap();
    let out = escapewatch(&["check-config", path.to_str().unwrap()]);
    fails_with(&out, "line 2");
    fails_with(&out, "expected one of `fentry`, `kprobe`, `lsm`");
    let _ = std::fs::remove_file(path);
}

#[test]
fn without_privileges_run_says_what_it_needs() {
    let out = if is_root() {
        // Drop to nobody with no capabilities, as an unprivileged user would run it.
        Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "--inh-caps=-all",
            ])
            .arg(env!("CARGO_BIN_EXE_escapewatch"))
            .arg("run")
            .output()
            .expect("setpriv (util-linux)")
    } else {
        escapewatch(&["run"])
    };
    fails_with(&out, "must run as root, or with CAP_BPF and CAP_PERFMON");
}

#[test]
fn missing_btf_explains_config_debug_info_btf() {
    if !is_root() {
        // The privilege check comes first; as non-root that is what must be reported.
        fails_with(
            &escapewatch(&["run", "--btf", "/nonexistent/vmlinux"]),
            "must run as root",
        );
        return;
    }
    let out = escapewatch(&["run", "--btf", "/nonexistent/vmlinux"]);
    fails_with(&out, "cannot read the kernel's BTF at /nonexistent/vmlinux");
    fails_with(&out, "CONFIG_DEBUG_INFO_BTF");
}

#[test]
fn rules_lists_every_rule_with_its_explanation() {
    let out = escapewatch(&["rules"]);
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("namespace-join-host"));
    assert!(stdout.contains("T1611"));
    assert!(stdout.contains("severity: critical"));
}

#[test]
fn help_explains_the_commands() {
    let out = escapewatch(&["--help"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    for cmd in ["run", "replay", "rules"] {
        assert!(stdout.contains(cmd), "{stdout}");
    }
}
