//! `dirty-cow`: madvise(MADV_DONTNEED) racing forced writes into a read-only private file
//! mapping (CVE-2016-5195). Neither half is rare alone — allocators discard pages, debuggers
//! poke memory — but both, many times, on the same read-only file mapping of one process within
//! a short window is the race itself, vulnerable kernel or not.

use std::collections::{HashMap, VecDeque};

use escapewatch_common::{
    abi::{PTRACE_POKEDATA, PTRACE_POKETEXT},
    kind::EventKind,
};
use serde_json::json;

use super::{
    Declared, Fixtures, Input, Rule, RuleInfo, alert,
    simple::{who, workload},
};
use crate::{
    detect::{Alert, Severity},
    model::{Event, Payload, WatchedSyscall},
};

pub static INFO: RuleInfo = RuleInfo {
    scope: "madvise(MADV_DONTNEED) racing forced writes (/proc/PID/mem, ptrace POKE from the process, a thread or a tracer) into a read-only private mapping",
    id: "dirty-cow",
    severity: Severity::Critical,
    mitre: "T1068",
    title: "Dirty COW race: madvise(MADV_DONTNEED) racing forced writes to a read-only mapping",
    explanation: "A process in a container repeatedly discarded the pages of a read-only, \
        private mapping with madvise(MADV_DONTNEED) while forcing writes into the same mapping \
        through /proc/PID/mem or ptrace POKE (from the process itself, a thread, or a tracer). \
        That is the Dirty COW race (CVE-2016-5195): on an unpatched kernel the forced write \
        lands in the file's page cache, so any file the process can read — /etc/passwd, \
        setuid binaries, runc — is changed for the whole host. On a patched kernel the write \
        harmlessly goes to a private copy, but the attempt is the signal. Check the mapping \
        named in details and the kernel version.",
    inputs: &[
        Input::Kind(EventKind::Madvise),
        Input::Kind(EventKind::MemWrite),
        Input::Kind(EventKind::CowFault),
        Input::Syscall(WatchedSyscall::Ptrace),
    ],
    fixtures: Fixtures::Recorded(&[
        "dirty-cow",
        "dirty-cow-ptrace",
        "dirty-cow-vdso",
        "compat-dirty-cow",
        "dirty-cow-clonevm",
        "iouring-dirty-cow",
    ]),
    ..RuleInfo::BASE
};

/// Both halves must be seen this often within [`WINDOW_NS`].
const THRESHOLD: usize = 3;
const WINDOW_NS: u64 = 2_000_000_000;
/// Per-process samples kept (the race runs millions of iterations; a few suffice).
const SAMPLES: usize = 32;
/// Processes tracked at once; the least recently active is dropped beyond that.
const PROCESSES: usize = 4096;

#[derive(Clone)]
struct Sample {
    ktime: u64,
    event_id: u64,
    /// madvise: the mapping's range; write: [addr, addr + 1).
    start: u64,
    end: u64,
    ino: u64,
    file: String,
}

#[derive(Default)]
struct Track {
    discards: VecDeque<Sample>,
    writes: VecDeque<Sample>,
    last_seen: u64,
    /// No second alert for this process before this time.
    quiet_until: u64,
}

impl Track {
    /// Whether one of its discards covers `addr` in a mapping of file `ino`.
    fn covers(&self, addr: u64, ino: u64) -> bool {
        self.discards
            .iter()
            .any(|d| addr >= d.start && addr < d.end && d.ino == ino)
    }

    fn push(list: &mut VecDeque<Sample>, s: Sample) {
        if list.len() == SAMPLES {
            list.pop_front();
        }
        list.push_back(s);
    }

    fn expire(&mut self, now: u64) {
        let old = |s: &Sample| now.saturating_sub(s.ktime) > WINDOW_NS;
        while self.discards.front().is_some_and(old) {
            self.discards.pop_front();
        }
        while self.writes.front().is_some_and(old) {
            self.writes.pop_front();
        }
    }

    /// Writes that land in a discarded mapping (ptrace pokes carry no file: their address decides).
    fn racing(&self) -> (Vec<&Sample>, Vec<&Sample>) {
        let writes: Vec<&Sample> = self
            .writes
            .iter()
            .filter(|w| {
                self.discards.iter().any(|d| {
                    w.start >= d.start && w.start < d.end && (w.ino == 0 || w.ino == d.ino)
                })
            })
            .collect();
        let discards: Vec<&Sample> = self
            .discards
            .iter()
            .filter(|d| writes.iter().any(|w| w.start >= d.start && w.start < d.end))
            .collect();
        (discards, writes)
    }
}

#[derive(Default)]
pub struct DirtyCow {
    /// By (pid, process start time): survives pid reuse.
    procs: HashMap<(u32, u64), Track>,
}

impl DirtyCow {
    /// The process that discards the mapping of file `ino` at `addr`, if any (the newest key
    /// when several do).
    fn discarding(&self, addr: u64, ino: u64) -> Option<(u32, u64)> {
        self.procs
            .iter()
            .filter(|(_, t)| t.covers(addr, ino))
            .map(|(k, _)| *k)
            .max()
    }

    /// Whose race a forced write by `writer` into its own memory at `addr` (file `ino`) is: the
    /// writer's when it discards there itself or nobody does, else the process that discards
    /// that mapping at that address. A CLONE_VM child shares the writer's memory without being
    /// in its thread group; correlating by the mapping, not the pid, joins the two halves.
    fn owner_of_write(&self, writer: (u32, u64), addr: u64, ino: u64) -> (u32, u64) {
        if self.procs.get(&writer).is_some_and(|t| t.covers(addr, ino)) {
            return writer;
        }
        self.discarding(addr, ino).unwrap_or(writer)
    }

    fn track(&mut self, pid: u32, start: u64, now: u64) -> &mut Track {
        if !self.procs.contains_key(&(pid, start)) && self.procs.len() >= PROCESSES {
            // Deterministic eviction: least recently active, ties by key.
            if let Some(key) = self
                .procs
                .iter()
                .min_by_key(|(k, t)| (t.last_seen, **k))
                .map(|(k, _)| *k)
            {
                self.procs.remove(&key);
            }
        }
        let t = self.procs.entry((pid, start)).or_default();
        t.last_seen = now;
        t
    }
}

impl Rule for DirtyCow {
    fn info(&self) -> &'static RuleInfo {
        &INFO
    }

    fn process(&mut self, e: &Event, out: &mut Vec<Alert>) {
        if let Payload::ProcessExit { .. } = e.data {
            self.procs.remove(&(e.process.pid, e.process.start_time));
            return;
        }
        let Some(container) = workload(e) else {
            return;
        };
        let now = e.ktime_ns;
        let sample = |start, end, ino, file: &str| Sample {
            ktime: now,
            event_id: e.id,
            start,
            end,
            ino,
            file: file.to_owned(),
        };
        let (pid, start_time, discard, write) = match &e.data {
            Payload::Madvise {
                vm_start,
                vm_end,
                file,
                ..
            } => (
                e.process.pid,
                e.process.start_time,
                Some(sample(*vm_start, *vm_end, file.ino, &file.name)),
                None,
            ),
            Payload::MemWrite {
                addr,
                target,
                vma_found: true,
                vma_writable: false,
                vma_shared: false,
                vma_file,
                ..
            } if target.pid == e.process.pid => {
                let (ino, name) = vma_file
                    .as_ref()
                    .map_or((0, ""), |f| (f.ino, f.name.as_str()));
                let (p, s) = self.owner_of_write((e.process.pid, e.process.start_time), *addr, ino);
                (p, s, None, Some(sample(*addr, *addr + 1, ino, name)))
            }
            // The fault path (fentry/kprobe on handle_mm_fault): the kernel breaking COW for a
            // forced write. Into the writer's own memory it is the writer's; into another
            // process's (ptrace), it belongs to whoever discards that file's mapping there.
            Payload::CowFault {
                addr,
                remote_mm,
                file,
                ..
            } => {
                let key = if *remote_mm {
                    self.discarding(*addr, file.ino)
                } else {
                    Some(self.owner_of_write(
                        (e.process.pid, e.process.start_time),
                        *addr,
                        file.ino,
                    ))
                };
                let Some((p, s)) = key else {
                    return;
                };
                (
                    p,
                    s,
                    None,
                    Some(sample(*addr, *addr + 1, file.ino, &file.name)),
                )
            }
            // ptrace variant: the tracer pokes a child that does the discarding; the child's
            // track gets the write. Its start time is unknown here: match it by pid.
            Payload::Syscall {
                name: WatchedSyscall::Ptrace,
                ret: 0,
                args,
                target: Some(target),
            } if args[0] == PTRACE_POKETEXT || args[0] == PTRACE_POKEDATA => {
                let key = self
                    .procs
                    .keys()
                    .filter(|(p, _)| *p == target.pid)
                    .max()
                    .copied();
                let Some((p, s)) = key else {
                    return;
                };
                (p, s, None, Some(sample(args[2], args[2] + 1, 0, "")))
            }
            _ => return,
        };
        let t = self.track(pid, start_time, now);
        if let Some(d) = discard {
            Track::push(&mut t.discards, d);
        }
        if let Some(w) = write {
            Track::push(&mut t.writes, w);
        }
        t.expire(now);
        if now < t.quiet_until {
            return;
        }
        let (discards, writes) = t.racing();
        if discards.len() < THRESHOLD || writes.len() < THRESHOLD {
            return;
        }
        let target = discards[0];
        let mut ids: Vec<u64> = discards
            .iter()
            .chain(writes.iter())
            .map(|s| s.event_id)
            .collect();
        ids.sort_unstable();
        ids.dedup();
        let (mapping, check) = if target.file.is_empty() {
            (
                "an anonymous or special mapping (such as the vDSO)".to_owned(),
                "a patched vDSO or kernel exploit runs in every process of the host: treat the host as compromised",
            )
        } else {
            (
                format!("read-only mapping of {}", target.file),
                "verify that file on the host",
            )
        };
        let summary = format!(
            "{} raced madvise(MADV_DONTNEED) against forced writes into {mapping} ({} discards, {} writes in {} ms): Dirty COW; {check}.",
            who(e, container),
            discards.len(),
            writes.len(),
            WINDOW_NS / 1_000_000
        );
        let details = json!({
            "file": target.file,
            "ino": target.ino,
            "range": [target.start, target.end],
            "discards": discards.len(),
            "forced_writes": writes.len(),
            "window_ms": WINDOW_NS / 1_000_000,
        });
        t.quiet_until = now + WINDOW_NS;
        let mut a = alert(&INFO, e, summary, details);
        a.event_ids = ids;
        out.push(a);
    }
}

impl Declared for DirtyCow {
    const INFO: &'static RuleInfo = &INFO;

    #[cfg(test)]
    fn examples() -> Vec<super::examples::Example> {
        use super::examples::{Example, in_container};
        let race = |n| {
            (0..n)
                .flat_map(|_| {
                    [
                        in_container("dirtyc0w", tests::discard()),
                        in_container("dirtyc0w", tests::fault(false)),
                    ]
                })
                .collect::<Vec<_>>()
        };
        vec![
            Example::alert("three discards racing three forced writes", race(3), |a| {
                assert_eq!(a.details["file"], "passwd");
                assert_eq!(a.details["ino"], 77);
                assert_eq!(a.details["discards"], 3);
                assert_eq!(a.details["forced_writes"], 3);
                assert_eq!(a.details["range"][0], tests::START);
                assert_eq!(a.event_ids, vec![1, 2, 3, 4, 5, 6]);
            }),
            Example::alert(
                "the vDSO: an anonymous/special mapping, advice 24",
                {
                    let vdso = || {
                        let mut d = tests::discard();
                        if let Payload::Madvise { advice, file, .. } = &mut d {
                            *advice = 24;
                            *file = crate::model::FileRef {
                                dev: "0:0".into(),
                                ..Default::default()
                            };
                        }
                        d
                    };
                    let poke = || Payload::MemWrite {
                        ret: 8,
                        addr: tests::START + 16,
                        len: 8,
                        target: super::examples::target(
                            4242,
                            "exploit",
                            crate::model::NsOwner::Unknown,
                        ),
                        vma_found: true,
                        vma_file_backed: false,
                        vma_writable: false,
                        vma_shared: false,
                        vma_file: None,
                    };
                    (0..3)
                        .flat_map(|_| {
                            [
                                in_container("exploit", vdso()),
                                in_container("exploit", poke()),
                            ]
                        })
                        .collect()
                },
                |a| {
                    assert_eq!(a.details["file"], "");
                    assert_eq!(a.details["ino"], 0);
                    assert!(
                        a.summary.contains("anonymous or special mapping"),
                        "{}",
                        a.summary
                    );
                },
            ),
            // An allocator returning pages and a debugger's occasional poke: below the race's
            // rate, or without the other half.
            Example::silent("two of each, then discards alone", {
                let mut e = race(2);
                e.extend((0..10).map(|_| in_container("java", tests::discard())));
                e
            }),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{FileRef, testing::container_process};

    pub(super) const START: u64 = 0x7f00_0000_0000;
    const END: u64 = START + 0x1000;

    fn event(id: u64, ktime: u64, data: Payload, hook: &str) -> Event {
        let s = container_process();
        Event {
            id,
            time: format!("t{id}"),
            ktime_ns: ktime,
            process: s.process,
            container: s.container,
            data,
            hook: hook.into(),
            workload: None,
        }
    }

    fn file() -> FileRef {
        FileRef {
            ino: 77,
            dev: "0:5".into(),
            name: "passwd".into(),
            parent: String::new(),
        }
    }

    pub(super) fn discard() -> Payload {
        Payload::Madvise {
            start: START,
            len: 0x1000,
            advice: escapewatch_common::abi::MADV_DONTNEED as u32,
            vm_flags: 0x800_0071,
            vm_start: START,
            vm_end: END,
            file: file(),
        }
    }

    pub(super) fn fault(remote_mm: bool) -> Payload {
        Payload::CowFault {
            addr: START + 8,
            fault_flags: 0x81,
            remote_mm,
            vm_flags: 0x800_0071,
            vm_start: START,
            vm_end: END,
            file: file(),
        }
    }

    fn run(events: &[Event]) -> Vec<Alert> {
        let mut rule = DirtyCow::default();
        let mut out = Vec::new();
        for e in events {
            rule.process(e, &mut out);
        }
        out
    }

    #[test]
    fn discards_racing_cow_faults_alert_once_citing_the_fault_path() {
        let mut events = Vec::new();
        for i in 0..4 {
            let t = 1_000_000_000 + i * 1_000_000;
            events.push(event(2 * i, t, discard(), "tracepoint/sys_enter_madvise"));
            events.push(event(
                2 * i + 1,
                t + 1,
                fault(false),
                "fentry/fentry_handle_mm_fault",
            ));
        }
        let alerts = run(&events);
        assert_eq!(alerts.len(), 1, "{alerts:#?}");
        let a = &alerts[0];
        assert_eq!(a.rule, "dirty-cow");
        assert_eq!(a.details["file"], "passwd");
        assert_eq!(a.details["ino"], 77);
        assert_eq!(a.details["discards"], 3);
        assert_eq!(a.details["forced_writes"], 3);
        assert_eq!(a.event_ids, vec![0, 1, 2, 3, 4, 5]);
    }

    #[test]
    fn a_remote_fault_counts_for_the_process_discarding_that_mapping() {
        let mut events = Vec::new();
        for i in 0..3 {
            events.push(event(i, 10 + i, discard(), ""));
        }
        for i in 3..6 {
            events.push(event(i, 10 + i, fault(true), ""));
        }
        assert_eq!(run(&events).len(), 1);
    }

    #[test]
    fn faults_without_discards_or_outside_the_window_do_not_alert() {
        let faults: Vec<Event> = (0..10).map(|i| event(i, i, fault(false), "")).collect();
        assert!(run(&faults).is_empty());
        let mut spread = Vec::new();
        for i in 0..4 {
            let t = i * 3 * WINDOW_NS;
            spread.push(event(2 * i, t, discard(), ""));
            spread.push(event(2 * i + 1, t + 1, fault(false), ""));
        }
        assert!(run(&spread).is_empty());
    }
}
