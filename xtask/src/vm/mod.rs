//! `cargo xtask vm-test`: the privileged integration scenarios on other kernels. Each pinned
//! Debian cloud kernel boots under QEMU (TCG, one vCPU) with an initramfs holding the agent,
//! runc and the test binaries; the guest reports one line per test on its serial console and
//! powers off. The running kernel is the `host` row: the same tests run natively (this VM has
//! no image of its own kernel in /boot to boot).

mod guest;
mod host;
mod initramfs;
mod report;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Command,
    sync::Mutex,
    thread,
    time::Duration,
};

use anyhow::{Context as _, Result, bail};

use crate::{cargo, workspace_root};

/// One row of the matrix. Kernel versions and the hooks expected on each live here only.
pub struct Kernel {
    /// What `--kernel` takes and the results table shows.
    pub name: &'static str,
    /// The Debian package whose vmlinuz is booted (`apt-get download`); `None`: this machine's
    /// running kernel, tests run natively.
    pub package: Option<&'static str>,
    /// ESCAPEWATCH_EXPECT_HOOKS for the tests on this kernel: `rule=hookkind,...`.
    pub expect_hooks: &'static str,
    /// ESCAPEWATCH_DISABLE_HOOKS for every agent of this row (`--disable-hooks`): precision
    /// hook types the agent must not use, so the next alternatives and fallbacks are proven on
    /// a kernel that offers the preferred ones. Empty: none.
    pub disable_hooks: &'static str,
    pub selection: &'static [Select],
}

/// Tests to run: those of `binary` (every binary when empty) whose name contains `name`.
pub struct Select {
    pub binary: &'static str,
    pub name: &'static str,
    /// A filter that matches nothing is an error, unless the test may not exist yet.
    pub required: bool,
}

const fn select(binary: &'static str, name: &'static str) -> Select {
    Select {
        binary,
        name,
        required: true,
    }
}

/// Every escape scenario, the namespace escapes, every other entry path and the
/// post-conditions (55 tests: about 6.5 min on 6.1 and on 6.12 under TCG), minus [`LEFT_OUT`].
const SELECTION: &[Select] = &[
    select("namespace_escape", ""),
    select("escapes_kernel", ""),
    select("escapes_process", ""),
    select("entry_paths", ""),
    select("postconditions", ""),
    select("netapi", ""),
    select("netfx", ""),
    select("drift", ""),
    select("host_binary", ""),
    select("interfaces", ""),
    select("races", ""),
    select("lockdown", ""),
    select("modreq", ""),
    Select {
        binary: "",
        name: "kernel_offsets",
        required: false,
    },
];

/// Tests no row runs, and why (named in results.md).
const LEFT_OUT: &[(&str, &str)] = &[
    (
        "mount_host_block_device",
        "needs the root filesystem on a block device (findmnt); the guest's root is a tmpfs",
    ),
    (
        "the_host_disk_through_fsmount_without_attaching_it_is_alerted",
        "needs the root filesystem on a block device (findmnt); the guest's root is a tmpfs",
    ),
    (
        "raw_block_device_open",
        "needs the root filesystem on a block device (findmnt); the guest's root is a tmpfs",
    ),
];

/// Stock kernels have fentry and BPF LSM; this machine's 6.18 refuses both. Only rules whose
/// every selected scenario reaches the hook: a write-open refused before the LSM runs
/// (ETXTBSY on /proc/self/exe, runtime-binary-overwrite) is seen by the syscall programs alone.
const GUEST_HOOKS: &str = "dirty-cow=fentry,cgroup-release-agent-write=lsm,host-fs-via-proc-root=lsm,\
     sysrq-trigger-write=lsm,kernel-memory-access=lsm,kernel-debug-recon=lsm,\
     exec-fileless=raw_tracepoint,exec-drifted-binary=raw_tracepoint,\
     exec-host-binary=raw_tracepoint,\
     host-security-policy-write=lsm,host-kernel-interface-write=lsm,\
     path-race-exchange-loop=syscall,runtime-mount-redirected=syscall,\
     kexec-load=syscall,raw-hardware-access=syscall|lsm,kernel-lockdown-reach=lsm,\
     runtime-api-network-access=syscall|tp_btf,\
     kernel-module-autoload=raw_tracepoint";
/// The open-family rules' fallback is the open syscall programs and, for io_uring's opens
/// (which make no open syscall), its completion program: one tier, two entries.
const HOST_HOOKS: &str = "dirty-cow=syscall,cgroup-release-agent-write=syscall|io_uring,\
     host-fs-via-proc-root=syscall|io_uring,sysrq-trigger-write=syscall|io_uring,\
     kernel-memory-access=syscall|io_uring,kernel-debug-recon=syscall|io_uring,\
     exec-fileless=raw_tracepoint,exec-drifted-binary=raw_tracepoint,\
     exec-host-binary=raw_tracepoint,\
     host-security-policy-write=syscall|io_uring,host-kernel-interface-write=syscall|io_uring,\
     path-race-exchange-loop=syscall,runtime-mount-redirected=syscall,\
     kexec-load=syscall,raw-hardware-access=syscall,\
     runtime-api-network-access=syscall|tp_btf";

/// The alternatives, on a kernel that has the preferred hooks: with fentry and BPF LSM
/// disabled, dirty-cow must be served by the kprobe on handle_mm_fault and the LSM-served path
/// rules by the open syscall programs.
const FALLBACK_HOOKS: &str = "dirty-cow=kprobe,cgroup-release-agent-write=syscall|io_uring,\
     host-fs-via-proc-root=syscall|io_uring,sysrq-trigger-write=syscall|io_uring,\
     kernel-memory-access=syscall|io_uring,kernel-debug-recon=syscall|io_uring";

/// The scenarios of the rules in [`FALLBACK_HOOKS`].
const FALLBACK_SELECTION: &[Select] = &[
    select("escapes_process", "dirty_cow_race"),
    select("escapes_process", "host_fs_via_proc_root"),
    select("escapes_kernel", "cgroup_release_agent_escape"),
    select("escapes_kernel", "sysrq_trigger_write"),
    select("escapes_kernel", "kernel_memory_access_dev_mem"),
    select("escapes_kernel", "kernel_debug_recon"),
];

const DEBIAN_6_12: &str = "linux-image-6.12.117+deb12-cloud-amd64-unsigned";

pub const KERNELS: &[Kernel] = &[
    Kernel {
        name: "6.1",
        package: Some("linux-image-6.1.0-56-cloud-amd64-unsigned"),
        expect_hooks: GUEST_HOOKS,
        disable_hooks: "",
        selection: SELECTION,
    },
    Kernel {
        name: "6.12",
        package: Some(DEBIAN_6_12),
        expect_hooks: GUEST_HOOKS,
        disable_hooks: "",
        selection: SELECTION,
    },
    Kernel {
        name: "host",
        package: None,
        expect_hooks: HOST_HOOKS,
        disable_hooks: "",
        selection: SELECTION,
    },
    Kernel {
        name: "6.12-fallback",
        package: Some(DEBIAN_6_12),
        expect_hooks: FALLBACK_HOOKS,
        disable_hooks: "fentry,lsm",
        selection: FALLBACK_SELECTION,
    },
];

/// Wall-clock limit of one guest, boot to power-off (ESCAPEWATCH_VM_TIMEOUT_SECS). Under TCG a
/// test takes 6 to 10 s (the agent's programs verify in about 1 s on 6.1); a shared machine
/// has made guests three to five times slower: 2400 s covers the selection with room.
fn guest_timeout() -> Duration {
    let secs = std::env::var("ESCAPEWATCH_VM_TIMEOUT_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2400);
    Duration::from_secs(secs)
}

pub fn vm_dir() -> PathBuf {
    workspace_root().join("target/vm")
}

/// A test to run: the test binary's target name and the test's full name.
#[derive(Clone, Debug)]
pub struct TestCase {
    pub binary: String,
    pub name: String,
}

/// What one row of the matrix gave.
pub struct Outcome {
    pub kernel: &'static Kernel,
    pub tests: Vec<TestCase>,
    pub log: PathBuf,
    pub elapsed: Duration,
    /// Why the run as a whole failed (timeout, crash, no final line), if it did.
    pub problem: Option<String>,
}

/// Run the matrix for `names` (all kernels when empty) with the agent and primitives built.
pub fn vm_test(names: &[String], only: &[String], agent: &Path, primitives: &Path) -> Result<()> {
    let kernels = choose(names)?;
    let binaries = test_binaries()?;
    let mut plans = Vec::new();
    for k in &kernels {
        let mut cases = resolve(k, &binaries)?;
        if !only.is_empty() {
            cases.retain(|c| only.iter().any(|o| c.name.contains(o.as_str())));
        }
        plans.push((*k, cases));
    }
    let guests: Vec<(&'static Kernel, &[TestCase])> = plans
        .iter()
        .filter(|(k, _)| k.package.is_some())
        .map(|(k, t)| (*k, t.as_slice()))
        .collect();
    let used: BTreeMap<&str, &Path> = guests
        .iter()
        .flat_map(|(_, tests)| tests.iter())
        .map(|t| (t.binary.as_str(), binaries[&t.binary].as_path()))
        .collect();
    let mut boots = if guests.is_empty() {
        Vec::new()
    } else {
        guest::prepare(&guests, &used, agent, primitives)?
    }
    .into_iter();
    let jobs: Vec<Job> = plans
        .iter()
        .map(|(k, tests)| match k.package {
            Some(_) => Job::Guest(k, tests, boots.next().expect("one boot per guest")),
            None => Job::Host(k, tests),
        })
        .collect();
    let outcomes = run_jobs(&jobs, |job| match job {
        Job::Guest(k, tests, boot) => guest::boot(k, tests, boot),
        Job::Host(k, tests) => host::run_host(k, tests, &binaries, agent, primitives),
    });
    report::finish(&outcomes)
}

enum Job<'a> {
    Guest(&'static Kernel, &'a [TestCase], guest::Boot),
    Host(&'static Kernel, &'a [TestCase]),
}

/// Two cores: two rows at a time, in table order (the slowest guest first), each guest on one
/// vCPU (Debian's QEMU 7.2 crashed guests with -smp 2).
fn run_jobs(jobs: &[Job], run: impl Fn(&Job) -> Outcome + Sync) -> Vec<Outcome> {
    const PARALLEL: usize = 2;
    let next = Mutex::new(0usize);
    let results: Mutex<Vec<Option<Outcome>>> = Mutex::new(jobs.iter().map(|_| None).collect());
    thread::scope(|s| {
        for _ in 0..PARALLEL.min(jobs.len()) {
            s.spawn(|| {
                loop {
                    let i = {
                        let mut n = next.lock().expect("not poisoned");
                        *n += 1;
                        *n - 1
                    };
                    let Some(job) = jobs.get(i) else {
                        break;
                    };
                    let outcome = run(job);
                    results.lock().expect("not poisoned")[i] = Some(outcome);
                }
            });
        }
    });
    results
        .into_inner()
        .expect("not poisoned")
        .into_iter()
        .map(|o| o.expect("every job ran"))
        .collect()
}

fn choose(names: &[String]) -> Result<Vec<&'static Kernel>> {
    if names.is_empty() {
        return Ok(KERNELS.iter().collect());
    }
    names
        .iter()
        .map(|n| {
            KERNELS.iter().find(|k| k.name == n).with_context(|| {
                let known: Vec<_> = KERNELS.iter().map(|k| k.name).collect();
                format!("unknown kernel {n:?}; known: {}", known.join(", "))
            })
        })
        .collect()
}

/// The integration test binaries (target name → executable), built as `cargo xtask test` builds them.
fn test_binaries() -> Result<BTreeMap<String, PathBuf>> {
    let out = cargo()
        .args([
            "test",
            "--release",
            "--package",
            "escapewatch-integration",
            "--no-run",
            "--message-format=json-render-diagnostics",
        ])
        .current_dir(workspace_root())
        .output()
        .context("cargo test --no-run")?;
    if !out.status.success() {
        bail!(
            "building the integration tests failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut found = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let (Some(exe), Some(name), Some(true)) = (
            msg["executable"].as_str(),
            msg["target"]["name"].as_str(),
            msg["profile"]["test"].as_bool(),
        ) else {
            continue;
        };
        found.insert(name.to_owned(), PathBuf::from(exe));
    }
    Ok(found)
}

/// The tests of `kernel`'s selection, in selection order, each once.
fn resolve(kernel: &Kernel, binaries: &BTreeMap<String, PathBuf>) -> Result<Vec<TestCase>> {
    let mut listed = BTreeMap::new();
    for (name, exe) in binaries {
        let out = Command::new(exe)
            .args(["--list", "--format", "terse"])
            .output()
            .with_context(|| format!("{} --list", exe.display()))?;
        let tests: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.strip_suffix(": test"))
            .map(str::to_owned)
            .collect();
        listed.insert(name.as_str(), tests);
    }
    let mut cases: Vec<TestCase> = Vec::new();
    for s in kernel.selection {
        let mut matched = false;
        for (binary, tests) in &listed {
            if !s.binary.is_empty() && s.binary != *binary {
                continue;
            }
            let chosen = tests
                .iter()
                .filter(|t| t.contains(s.name) && !LEFT_OUT.iter().any(|(l, _)| t == l));
            for t in chosen {
                matched = true;
                if !cases.iter().any(|c| c.binary == *binary && c.name == *t) {
                    cases.push(TestCase {
                        binary: (*binary).to_owned(),
                        name: t.clone(),
                    });
                }
            }
        }
        if !matched && s.required {
            bail!(
                "vm-test selection of kernel {}: no test of {:?} contains {:?} (xtask/src/vm.rs SELECTION)",
                kernel.name,
                s.binary,
                s.name
            );
        }
    }
    Ok(cases)
}
