//! What the escape scenarios share: the primitives binary, container devices, host settings
//! restored on drop, and checks of an alert's fields.

use std::{
    fs,
    os::unix::fs::{FileTypeExt, MetadataExt},
    path::{Path, PathBuf},
};

use serde_json::{Value, json};

use crate::runc::Bundle;

/// The static primitives binary built by `cargo xtask test` (ESCAPEWATCH_PRIMITIVES).
pub fn primitives_bin() -> PathBuf {
    let bin = std::env::var_os("ESCAPEWATCH_PRIMITIVES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../target/x86_64-unknown-linux-gnu/release/primitives")
        });
    assert!(
        bin.exists(),
        "static primitives binary {} missing: run the tests through `cargo xtask test`",
        bin.display()
    );
    bin
}

/// Copy the primitives binary to /bin/primitives in the bundle's rootfs.
pub fn with_primitives(bundle: Bundle) -> Bundle {
    let dst = bundle.rootfs().join("bin/primitives");
    fs::copy(primitives_bin(), &dst).expect("copy primitives into the rootfs");
    bundle
}

/// Give the container a host device node (and allow it in the device cgroup), as
/// `docker run --device` does.
pub fn with_device(bundle: Bundle, host: &str, container: &str) -> Bundle {
    let meta = fs::metadata(host).unwrap_or_else(|e| panic!("stat {host}: {e}"));
    let rdev = meta.rdev();
    let kind = if meta.file_type().is_block_device() {
        "b"
    } else {
        "c"
    };
    device_node(
        bundle,
        container,
        kind,
        libc::major(rdev),
        libc::minor(rdev),
    )
}

/// A character device node the host itself may lack (e.g. /dev/mem on a kernel without it).
pub fn with_char_device(bundle: Bundle, container: &str, major: u32, minor: u32) -> Bundle {
    device_node(bundle, container, "c", major, minor)
}

fn device_node(mut bundle: Bundle, container: &str, kind: &str, major: u32, minor: u32) -> Bundle {
    let spec = bundle.config_mut();
    let linux = &mut spec["linux"];
    if !linux["devices"].is_array() {
        linux["devices"] = json!([]);
    }
    linux["devices"].as_array_mut().unwrap().push(json!({
        "path": container, "type": kind, "major": major, "minor": minor,
        "fileMode": 0o660, "uid": 0, "gid": 0,
    }));
    let allow =
        json!({ "allow": true, "type": kind, "major": major, "minor": minor, "access": "rwm" });
    match linux["resources"]["devices"].as_array_mut() {
        Some(list) => list.push(allow),
        None => linux["resources"]["devices"] = json!([allow]),
    }
    bundle
}

/// A host setting (a /proc/sys or cgroup file) restored to its value at creation on drop,
/// even when the test fails.
pub struct HostSetting {
    path: PathBuf,
    value: Vec<u8>,
}

impl HostSetting {
    pub fn keep(path: impl AsRef<Path>) -> HostSetting {
        let path = path.as_ref().to_owned();
        let value = fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        HostSetting { path, value }
    }

    pub fn value(&self) -> String {
        String::from_utf8_lossy(&self.value).trim_end().to_owned()
    }
}

impl Drop for HostSetting {
    fn drop(&mut self) {
        // An empty value is written as a newline (an empty write is ignored by some files).
        let v = if self.value.is_empty() {
            b"\n".to_vec()
        } else {
            self.value.clone()
        };
        if let Err(e) = fs::write(&self.path, v) {
            eprintln!("WARNING: could not restore {}: {e}", self.path.display());
        }
    }
}

/// Check the shared fields of an alert about a container process.
/// The rule catalogue as the agent under test declares it (`escapewatch rules --format json`):
/// the severities, techniques and texts the tests expect come from here, never restated.
pub fn catalogued(rule: &str) -> &'static Value {
    static RULES: std::sync::OnceLock<Vec<Value>> = std::sync::OnceLock::new();
    let rules = RULES.get_or_init(|| {
        let out = std::process::Command::new(crate::agent::agent_bin())
            .args(["rules", "--format", "json"])
            .output()
            .expect("escapewatch rules --format json");
        assert!(
            out.status.success(),
            "escapewatch rules --format json failed: {out:?}"
        );
        serde_json::from_slice(&out.stdout).expect("rules JSON")
    });
    rules
        .iter()
        .find(|r| r["id"] == rule)
        .unwrap_or_else(|| panic!("rule {rule} is not in the agent's catalogue"))
}

/// The catalogue's severity, one step up when the alert says its container's posture raised
/// it (`details.severity_raised_by`, which only an alert carrying a posture may say).
pub fn expected_severity(alert: &Value, info: &Value) -> Value {
    if alert["details"]["severity_raised_by"].is_null() {
        return info["severity"].clone();
    }
    assert!(
        alert["container"]["posture"].is_object(),
        "raised without a posture: {alert:#}"
    );
    let up = match info["severity"].as_str().unwrap_or_default() {
        "low" => "medium",
        "medium" => "high",
        _ => "critical",
    };
    up.into()
}

/// The fields every alert shares, against the catalogue's declaration of its rule.
pub fn check_alert(alert: &Value, rule: &str, container_id: &str, runtime: &str) {
    let info = catalogued(rule);
    assert_eq!(alert["rule"], rule, "{alert:#}");
    assert_eq!(
        alert["severity"],
        expected_severity(alert, info),
        "{alert:#}"
    );
    assert_eq!(alert["mitre"], info["mitre"], "{alert:#}");
    assert_eq!(alert["explanation"], info["explanation"], "{alert:#}");
    assert_eq!(alert["container"]["id"], container_id, "{alert:#}");
    assert_eq!(alert["container"]["runtime"], runtime, "{alert:#}");
    assert!(
        !alert["summary"].as_str().unwrap_or("").is_empty(),
        "{alert:#}"
    );
    assert!(
        alert["event_ids"]
            .as_array()
            .is_some_and(|ids| !ids.is_empty()),
        "{alert:#}"
    );
}
