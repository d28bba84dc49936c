//! Root-free (one test needs root to chown): a config file is the detector's policy, so
//! `Config::load` (run, SIGHUP reload, check-config) refuses what is not a plain file only its
//! owner can change — each with an error naming the file and the reason, and at once: a FIFO
//! or /dev/zero must not block or read forever.

use std::{
    fs,
    os::unix::fs::{PermissionsExt as _, symlink},
    path::{Path, PathBuf},
    process::Command,
    sync::mpsc,
    time::Duration,
};

use escapewatch::config::{Config, ConfigError, MAX_CONFIG_BYTES, UnsafeConfig};

const VALID: &str = "[logs]\nevent_log_keep = 3\n";

fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ew-config-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn config_file(name: &str, text: &str, mode: u32) -> PathBuf {
    let path = tempdir(name).join("config.toml");
    fs::write(&path, text).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
    path
}

/// `Config::load` in a thread: a blocking open or an endless read fails the test instead of
/// hanging it.
fn load_promptly(path: &Path) -> Result<Config, ConfigError> {
    let (tx, rx) = mpsc::channel();
    let p = path.to_owned();
    std::thread::spawn(move || drop(tx.send(Config::load(&p))));
    rx.recv_timeout(Duration::from_secs(5))
        .unwrap_or_else(|_| panic!("Config::load({}) did not return within 5 s", path.display()))
}

fn refused(path: &Path, want: &UnsafeConfig, words: &str) {
    let e = load_promptly(path).expect_err("must be refused");
    let msg = e.to_string();
    match &e {
        ConfigError::Unsafe { path: p, problem } => {
            assert_eq!(p, path);
            assert_eq!(problem, want, "{msg}");
        }
        other => panic!("not an Unsafe error: {other:?}"),
    }
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains(words), "{msg} lacks {words:?}");
}

#[test]
fn a_valid_file_still_loads() {
    let path = config_file("valid", VALID, 0o644);
    assert_eq!(load_promptly(&path).unwrap().logs.event_log_keep, 3);
    // Group-writable is the admin's choice (a config group); only "everyone" is refused.
    fs::set_permissions(&path, fs::Permissions::from_mode(0o664)).unwrap();
    assert!(load_promptly(&path).is_ok());
}

#[test]
fn a_fifo_is_refused_at_once() {
    let path = tempdir("fifo").join("config.toml");
    nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    refused(
        &path,
        &UnsafeConfig::NotRegular("FIFO"),
        "FIFO, not a regular file",
    );
}

#[test]
fn dev_zero_is_refused_at_once() {
    let path = Path::new("/dev/zero");
    refused(
        path,
        &UnsafeConfig::NotRegular("character device"),
        "not a regular file",
    );
}

#[test]
fn a_symlink_is_refused_even_to_a_good_file() {
    let good = config_file("link", VALID, 0o644);
    let link = good.with_file_name("link.toml");
    symlink(&good, &link).unwrap();
    refused(&link, &UnsafeConfig::Symlink, "symbolic link");
}

#[test]
fn a_world_writable_file_is_refused() {
    let path = config_file("world", VALID, 0o666);
    refused(
        &path,
        &UnsafeConfig::WorldWritable { mode: 0o666 },
        "writable by every user (mode 0666)",
    );
}

#[test]
fn an_oversized_file_is_refused() {
    let mut text = String::from(VALID);
    text.push_str(&"# padding\n".repeat(MAX_CONFIG_BYTES as usize / 10 + 1));
    let path = config_file("big", &text, 0o644);
    refused(
        &path,
        &UnsafeConfig::TooLarge {
            size: text.len() as u64,
            max: MAX_CONFIG_BYTES,
        },
        "larger than the 1048576-byte limit",
    );
}

#[test]
fn a_file_of_another_owner_is_refused() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 {
        eprintln!("skipped: chown to another user needs root");
        return;
    }
    let path = config_file("owner", VALID, 0o644);
    std::os::unix::fs::chown(&path, Some(65534), Some(65534)).unwrap();
    refused(
        &path,
        &UnsafeConfig::Owner {
            owner: 65534,
            agent: 0,
        },
        "owned by uid 65534",
    );
}

/// check-config, which systemd runs before every start, gives the same refusal.
#[test]
fn check_config_refuses_a_world_writable_file() {
    let path = config_file("cli", VALID, 0o666);
    let out = Command::new(env!("CARGO_BIN_EXE_escapewatch"))
        .args(["check-config", path.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("refusing config file {}", path.display())),
        "{stderr}"
    );
    assert!(stderr.contains("writable by every user"), "{stderr}");
}
