//! Hand-built events for the rules' examples: what each rule must alert on, and the benign
//! look-alikes it must stay silent on. The contract test runs every rule's examples.

use crate::{
    detect::Alert,
    model::{
        Container, Event, FileRef, NsOwner, OpenClass, Payload, Runtime, TargetProcess,
        testing::container_process,
    },
};

/// One example of a rule: events in order, and what the rule must make of them.
pub struct Example {
    pub name: &'static str,
    pub events: Vec<Event>,
    pub expect: Expect,
}

pub enum Expect {
    /// A benign look-alike: no alert of this rule.
    Silent,
    /// Exactly one alert of this rule, which the function checks field by field (the contract
    /// test checks the fields every alert shares).
    Alert(fn(&Alert)),
}

impl Example {
    pub fn alert(name: &'static str, events: Vec<Event>, check: fn(&Alert)) -> Self {
        Example {
            name,
            events: numbered(events),
            expect: Expect::Alert(check),
        }
    }

    pub fn silent(name: &'static str, events: Vec<Event>) -> Self {
        Example {
            name,
            events: numbered(events),
            expect: Expect::Silent,
        }
    }
}

/// Ids 1, 2, … and kernel times 1 ms apart, in the given order.
fn numbered(mut events: Vec<Event>) -> Vec<Event> {
    for (i, e) in events.iter_mut().enumerate() {
        let n = i as u64 + 1;
        e.id = n;
        e.ktime_ns = 5_000_000_000 + n * 1_000_000;
        e.time = format!("2026-11-23T01:02:03.{n:09}Z");
    }
    events
}

/// The container of every example: docker container `aaaa…`.
pub const CONTAINER: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
pub const OTHER_CONTAINER: &str =
    "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

/// `data` done by process `comm` (pid 4242) in docker container [`CONTAINER`].
pub fn in_container(comm: &str, data: Payload) -> Event {
    let s = container_process();
    let mut process = s.process;
    process.comm = comm.to_owned();
    process.exe = format!("/usr/bin/{comm}");
    process.args = vec![comm.to_owned()];
    Event {
        id: 0,
        time: String::new(),
        ktime_ns: 0,
        process,
        container: s.container,
        data,
        hook: String::new(),
        workload: None,
    }
}

/// The same, by a process of the host.
pub fn on_host(comm: &str, data: Payload) -> Event {
    let mut e = in_container(comm, data);
    e.container = None;
    e.process.cgroup = "/user.slice".into();
    e
}

/// The same, by the container runtime doing its own work in the container.
pub fn by_runtime(data: Payload) -> Event {
    let mut e = in_container("runc:[2:INIT]", data);
    e.process.exe = "/usr/bin/runc".into();
    e.process.runtime_helper = true;
    e
}

pub fn other_container() -> Container {
    Container {
        id: OTHER_CONTAINER.into(),
        runtime: Runtime::Containerd,
        pod_uid: None,
    }
}

pub fn file(parent: &str, name: &str) -> FileRef {
    FileRef {
        ino: 4711,
        dev: "0:22".into(),
        name: name.into(),
        parent: parent.into(),
    }
}

/// A file open that the kernel reported for `classes`. A failed open (`ret < 0`) names no
/// file; a successful one names the path's last two components.
pub fn open(path: &str, classes: &[OpenClass], write: bool, ret: i64) -> Payload {
    let mut parts = path.rsplit('/');
    let name = parts.next().unwrap_or_default();
    let parent = parts.next().unwrap_or_default();
    let mut classes = classes.to_vec();
    if ret < 0 {
        classes.insert(0, OpenClass::Failed);
    }
    Payload::FileOpen {
        ret,
        flags: if write { 0o1 } else { 0 },
        write,
        classes,
        fs: String::new(),
        file_type: "regular".into(),
        rdev: String::new(),
        file: (ret >= 0).then(|| file(parent, name)),
        grandparent: String::new(),
        path: path.into(),
        fs_path: String::new(),
        foreign_mnt_ns: None,
    }
}

/// A process the event is aimed at.
pub fn target(pid: u32, comm: &str, owner: NsOwner) -> TargetProcess {
    TargetProcess {
        pid,
        comm: comm.into(),
        exe: format!("/usr/bin/{comm}"),
        owner,
        pid_in_writer_ns: false,
    }
}

/// The container every example event belongs to, as an owner.
pub fn own_container() -> NsOwner {
    NsOwner::Container {
        id: CONTAINER.into(),
        runtime: Runtime::Docker,
    }
}
