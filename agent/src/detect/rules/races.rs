//! Path races against the runtime, from both sides.
//!
//! - `path-race-exchange-loop`: a container process swaps names at a rate no benign program
//!   has (renameat2 RENAME_EXCHANGE, or plain renames onto one destination, through any entry):
//!   the preparation of CVE-2018-15664 (`docker cp`) and CVE-2021-30465 (runc mount
//!   destinations), where a symlink is swapped in and out of a path the runtime is about to
//!   resolve. The kernel counts; the rule reads the counts and their window.
//! - `runtime-mount-redirected`: the runtime's own bind mount attached a procfs or sysfs file
//!   (as the kernel resolved the source, through every symlink) onto a path of the container:
//!   CVE-2025-31133 (/dev/null replaced by a symlink to /proc/sys/kernel/core_pattern or
//!   /proc/sysrq-trigger, bound over the masked paths), CVE-2025-52565 (/dev/console).

use std::collections::{HashMap, VecDeque};

use escapewatch_common::{
    abi::{MS_BIND, RENAME_EXCHANGE, RENAME_NOREPLACE, RENAME_WHITEOUT},
    event::rename,
    kind::EventKind,
};
use serde_json::json;

use super::{
    Check, Declared, Fixtures, Input, Rule, RuleInfo, alert,
    simple::{Finding, short, who, workload},
};
use crate::{
    detect::{Alert, Severity},
    model::{Event, Payload, WatchedSyscall},
};

/// Counts within one window that make a swap loop: 256 a second. An atomic config swap, a log
/// rotation or a package manager's renames stay orders of magnitude below on one name; a race
/// against the runtime runs at hundreds of thousands.
pub const LOOP_MIN: u64 = 256;
/// One alert per process and kind of loop within this much kernel time.
pub const COOLDOWN_NS: u64 = 60_000_000_000;
/// Loops remembered for the cooldown.
const REMEMBERED: usize = 4096;

pub static EXCHANGE_INFO: RuleInfo = RuleInfo {
    id: "path-race-exchange-loop",
    severity: Severity::High,
    mitre: "T1611",
    title: "Container swaps paths in a loop (symlink-exchange race against the runtime)",
    scope: "a container process swaps names in a loop: renameat2 RENAME_EXCHANGE or renames onto one destination, 256+ a second (rename, renameat, renameat2, 32-bit entry, io_uring)",
    explanation: "A process in a container exchanged two names (renameat2 with \
        RENAME_EXCHANGE) or renamed onto one destination hundreds of times within a second, \
        counted by the kernel whichever entry it used (rename, renameat, renameat2, the 32-bit \
        syscalls, io_uring). No benign program does that: an atomic config swap exchanges a \
        few times, log rotation and package managers rename each name once. It is how a \
        container prepares a race against the runtime: a symlink swapped in and out of a path \
        the runtime is about to resolve on the host's side (`docker cp` CVE-2018-15664, runc \
        mount destinations CVE-2021-30465), so the runtime's copy or mount lands outside the \
        container. Check what the runtime did to this container at the time (cp, exec, a \
        restart with volumes), the process's command line, and the host paths the runtime \
        touched.",
    inputs: &[Input::Syscall(WatchedSyscall::Rename)],
    fixtures: Fixtures::Recorded(&["exchange-loop", "exchange-loop-iouring"]),
    ..RuleInfo::BASE
};

/// (pid, start time, destination key: 0 for exchanges).
type LoopKey = (u32, u64, u64);

#[derive(Default)]
pub struct ExchangeLoop {
    alerted: HashMap<LoopKey, u64>,
    order: VecDeque<LoopKey>,
}

impl ExchangeLoop {
    /// Whether a loop of `key` seen at `now` is to be alerted (none within the cooldown).
    fn due(&mut self, key: LoopKey, now: u64) -> bool {
        if let Some(last) = self.alerted.get_mut(&key) {
            if now.saturating_sub(*last) < COOLDOWN_NS {
                return false;
            }
            *last = now;
            return true;
        }
        if self.order.len() >= REMEMBERED
            && let Some(old) = self.order.pop_front()
        {
            self.alerted.remove(&old);
        }
        self.order.push_back(key);
        self.alerted.insert(key, now);
        true
    }
}

/// The names of RENAME_* flags.
fn flag_names(flags: u64) -> Vec<&'static str> {
    [
        (RENAME_NOREPLACE, "RENAME_NOREPLACE"),
        (RENAME_EXCHANGE, "RENAME_EXCHANGE"),
        (RENAME_WHITEOUT, "RENAME_WHITEOUT"),
    ]
    .into_iter()
    .filter(|(f, _)| flags & f != 0)
    .map(|(_, n)| n)
    .collect()
}

fn entry_name(entry: u64) -> &'static str {
    match entry {
        rename::ENTRY_RENAME => "rename",
        rename::ENTRY_RENAMEAT => "renameat",
        rename::ENTRY_RENAMEAT2 => "renameat2",
        rename::ENTRY_IOURING => "io_uring",
        _ => "unknown",
    }
}

impl Rule for ExchangeLoop {
    fn info(&self) -> &'static RuleInfo {
        &EXCHANGE_INFO
    }

    fn inputs_only(&self) -> bool {
        true
    }

    fn process(&mut self, e: &Event, out: &mut Vec<Alert>) {
        let Payload::Syscall {
            name: WatchedSyscall::Rename,
            args,
            ..
        } = &e.data
        else {
            return;
        };
        let Some(c) = workload(e) else {
            return;
        };
        let [count, flags, elapsed, entry] = *args;
        if count < LOOP_MIN || elapsed > rename::WINDOW_NS {
            return;
        }
        let dest = entry >> 32;
        let key = (e.process.pid, e.process.start_time, dest);
        if !self.due(key, e.ktime_ns) {
            return;
        }
        let exchange = dest == 0;
        // Per second, from the kernel's window (at least 1 ms, so a burst has a finite rate).
        let rate = count.saturating_mul(1_000_000_000) / elapsed.max(1_000_000);
        let what = if exchange {
            "exchanged two names (renameat2 RENAME_EXCHANGE)"
        } else {
            "renamed onto one destination"
        };
        let entry = entry_name(entry & 0xff);
        let summary = format!(
            "{} {what} {count} times within {:.1} ms (via {entry}): a symlink-swap race against the runtime (CVE-2018-15664/CVE-2021-30465 class); check what the runtime did to container {} at this time.",
            who(e, c),
            elapsed as f64 / 1e6,
            short(&c.id),
        );
        let details = json!({
            "kind": if exchange { "exchange" } else { "rename_onto_one_destination" },
            "count": count,
            "window_ns": elapsed,
            "rate_per_second": rate,
            "entry": entry,
            "flags": flag_names(flags),
            "destination_hash": if exchange { None } else { Some(format!("{dest:08x}")) },
        });
        out.push(alert(&EXCHANGE_INFO, e, summary, details));
    }
}

impl Declared for ExchangeLoop {
    const INFO: &'static RuleInfo = &EXCHANGE_INFO;

    #[cfg(test)]
    fn examples() -> Vec<super::examples::Example> {
        use super::examples::{Example, by_runtime, in_container, on_host};
        let counted = |count, flags, elapsed, entry: u64, dest: u64| Payload::Syscall {
            name: WatchedSyscall::Rename,
            ret: 0,
            args: [count, flags, elapsed, entry | dest << 32],
            target: None,
        };
        let x = RENAME_EXCHANGE;
        vec![
            Example::alert(
                "an exchange loop: the kernel's counts 1, 16, 256 within 3 ms, then 4096",
                vec![
                    in_container("primitives", counted(1, x, 0, rename::ENTRY_RENAMEAT2, 0)),
                    in_container("primitives", counted(16, x, 40_000, 3, 0)),
                    in_container("primitives", counted(256, x, 3_000_000, 3, 0)),
                    in_container("primitives", counted(4096, x, 60_000_000, 3, 0)),
                ],
                |a| {
                    assert_eq!(a.details["kind"], "exchange");
                    assert_eq!(a.details["count"], 256);
                    assert_eq!(a.details["window_ns"], 3_000_000);
                    assert_eq!(a.details["rate_per_second"], 85_333);
                    assert_eq!(a.details["entry"], "renameat2");
                    assert_eq!(a.details["flags"][0], "RENAME_EXCHANGE");
                    assert!(a.details["destination_hash"].is_null());
                    assert_eq!(a.event_ids, vec![3]);
                    assert!(
                        a.summary.contains("256 times within 3.0 ms"),
                        "{}",
                        a.summary
                    );
                },
            ),
            Example::alert(
                "plain renames onto one destination through io_uring",
                vec![in_container(
                    "primitives",
                    counted(256, 0, 900_000_000, rename::ENTRY_IOURING, 3),
                )],
                |a| {
                    assert_eq!(a.details["kind"], "rename_onto_one_destination");
                    assert_eq!(a.details["entry"], "io_uring");
                    assert_eq!(a.details["destination_hash"], "00000003");
                    assert_eq!(a.details["rate_per_second"], 284);
                },
            ),
            Example::silent(
                "an atomic config swap (3 exchanges: the kernel reports the first), the host's \
                 loop, the runtime, and a count outside its window",
                vec![
                    in_container("confd", counted(1, x, 0, 3, 0)),
                    on_host("stress", counted(4096, x, 5_000_000, 3, 0)),
                    by_runtime(counted(256, x, 5_000_000, 3, 0)),
                    in_container("app", counted(256, 0, 2_000_000_000, 2, 77)),
                ],
            ),
        ]
    }
}

pub struct MountRedirected;

impl Check for MountRedirected {
    const INFO: &'static RuleInfo = &RuleInfo {
        id: "runtime-mount-redirected",
        severity: Severity::Critical,
        mitre: "T1611",
        title: "Container runtime bind-mounted a procfs/sysfs file into a container",
        scope: "the runtime's own bind mount in a container attached a procfs or sysfs file (the source as the kernel resolved it), not a path onto itself: runc's masks redirected by a symlink (CVE-2025-31133, CVE-2025-52565)",
        explanation: "The container runtime (runc, crun, … in the container's cgroup, before \
            the workload runs) made a bind mount whose source the kernel resolved to a file on \
            procfs or sysfs, and not onto that same path. Runtimes bind /dev/null over the \
            masked paths (/proc/kcore, /proc/keys, …), the console's pty over /dev/console, and \
            paths onto themselves to make them read-only; none of these is a procfs file. When \
            the container's image or a racing container replaced /dev/null or /dev/pts/N with \
            a symlink to /proc/sys/kernel/core_pattern or /proc/sysrq-trigger, the runtime \
            bound that host-global file, writable, where the container can reach it: the next \
            write to the masked path sets the host's core_pattern (a root program on the next \
            crash) or triggers sysrq. Stop the container, check the source file (details), \
            restore core_pattern, and upgrade the runtime (runc 1.2.8 / 1.3.3 / 1.4.0-rc.3).",
        inputs: &[Input::Kind(EventKind::Mount)],
        fixtures: Fixtures::Recorded(&["runtime-mount-redirected"]),
        ..RuleInfo::BASE
    };

    fn check(e: &Event) -> Option<Finding> {
        let Payload::Mount {
            call,
            ret: 0,
            flags,
            source,
            target,
            bound: Some(b),
            ..
        } = &e.data
        else {
            return None;
        };
        if !e.process.runtime_helper
            || flags & MS_BIND == 0
            || b.onto_itself
            || b.file_type == "directory"
            || !matches!(b.fs.as_str(), "proc" | "sysfs")
        {
            return None;
        }
        let c = e.container.as_ref()?;
        let file = if b.file.parent.is_empty() {
            b.file.name.clone()
        } else {
            format!("{}/{}", b.file.parent, b.file.name)
        };
        Some(Finding::new(
            format!(
                "the container runtime ({}, pid {}) setting up {} container {} bind-mounted {} file {file} (inode {}) over {target} (it asked for {source}): a symlink redirected its mount (CVE-2025-31133 class); the container can write that host file — stop it and check the file.",
                e.process.comm,
                e.process.pid,
                c.runtime.as_str(),
                short(&c.id),
                b.fs,
                b.file.ino,
            ),
            json!({
                "call": call.name(),
                "source": source,
                "target": target,
                "flags": format!("{flags:#x}"),
                "bound": b,
            }),
        ))
    }

    #[cfg(test)]
    fn examples() -> Vec<super::examples::Example> {
        use super::examples::{Example, by_runtime, in_container, on_host};
        use crate::model::{BoundSource, FileRef, MountCall};
        let bound = |fs: &str, kind: &str, parent: &str, name: &str, onto_itself| BoundSource {
            file: FileRef {
                ino: 4026532001,
                dev: "0:22".into(),
                name: name.into(),
                parent: parent.into(),
            },
            fs: fs.into(),
            file_type: kind.into(),
            rdev: if kind == "char" {
                "1:3".into()
            } else {
                String::new()
            },
            mountpoint: "keys".into(),
            onto_itself,
        };
        let bind = |source: &str, target: &str, b: BoundSource| Payload::Mount {
            call: MountCall::Mount,
            ret: 0,
            flags: MS_BIND,
            source: source.into(),
            target: target.into(),
            fstype: String::new(),
            host_pid_ns: false,
            host_cgroup_ns: false,
            source_owner: None,
            device: None,
            bound: Some(b),
        };
        let redirected = || {
            bind(
                "/dev/null",
                "/proc/keys",
                bound("proc", "regular", "kernel", "core_pattern", false),
            )
        };
        vec![
            Example::alert(
                "runc's /dev/null mask, /dev/null a symlink to /proc/sys/kernel/core_pattern",
                vec![by_runtime(redirected())],
                |a| {
                    assert_eq!(a.details["source"], "/dev/null");
                    assert_eq!(a.details["target"], "/proc/keys");
                    assert_eq!(a.details["flags"], "0x1000");
                    assert_eq!(a.details["bound"]["fs"], "proc");
                    assert_eq!(a.details["bound"]["file"]["name"], "core_pattern");
                    assert_eq!(a.details["bound"]["file"]["parent"], "kernel");
                    assert_eq!(a.details["bound"]["mountpoint"], "keys");
                    assert!(
                        a.summary.contains("proc file kernel/core_pattern"),
                        "{}",
                        a.summary
                    );
                },
            ),
            Example::silent(
                "runc's real masks (/dev/null, a char device on tmpfs), read-only self-binds of \
                 /proc/sys and /proc/sysrq-trigger, a bind volume, a workload's and the host's",
                vec![
                    by_runtime(bind(
                        "/dev/null",
                        "/proc/keys",
                        bound("tmpfs", "char", "dev", "null", false),
                    )),
                    by_runtime(bind(
                        "/proc/sys",
                        "/proc/sys",
                        bound("proc", "directory", "/", "sys", true),
                    )),
                    by_runtime(bind(
                        "/proc/sysrq-trigger",
                        "/proc/sysrq-trigger",
                        bound("proc", "regular", "/", "sysrq-trigger", true),
                    )),
                    by_runtime(bind(
                        "/srv/data",
                        "/proc/self/fd/7",
                        bound("ext4", "directory", "srv", "data", false),
                    )),
                    by_runtime(bind(
                        "/proc",
                        "/host/proc",
                        bound("proc", "directory", "/", "/", false),
                    )),
                    in_container("mount", redirected()),
                    on_host("mount", redirected()),
                ],
            ),
        ]
    }
}
