//! Enrichment on hand-built kernel records with a fake machine.

use std::collections::HashMap;

use escapewatch_common::{
    ARGS_LEN, PATH_LEN, SCHEMA_VERSION, abi,
    event::{
        EventHeader, ExecEvent, ExitEvent, ForkEvent, MEMW_PID_IN_WRITER_NS, MEMW_SELF,
        MemWriteEvent, NAME_LEN, NS_COUNT, NamespaceEvent,
    },
    kind::EventKind,
    user::RawEvent,
};

use super::{Enricher, FULL_CAPS, System, host::HostNamespaces, process::ProcSnapshot};
use crate::model::{Event, Namespaces, NsOwner, Payload, Runtime};

const HOST: [u32; NS_COUNT] = [100, 200, 300, 400, 500, 600, 700, 800];
const CT: [u32; NS_COUNT] = [101, 201, 301, 401, 501, 600, 700, 800];

#[derive(Default)]
struct FakeSystem {
    cgroups: HashMap<u64, String>,
    exes: HashMap<u32, String>,
    /// (uid, CapBnd) by pid.
    creds: HashMap<u32, (u32, u64)>,
    /// Executables that are host files bind-mounted into containers.
    host_exes: Vec<String>,
}

impl System for FakeSystem {
    fn cgroup_path(&mut self, cgroup_id: u64, _pid: u32) -> String {
        self.cgroups
            .get(&cgroup_id)
            .cloned()
            .unwrap_or_else(|| "/".into())
    }
    fn snapshot(&mut self, _pid: u32) -> Option<ProcSnapshot> {
        None
    }
    fn exe(&mut self, pid: u32) -> Option<String> {
        self.exes.get(&pid).cloned()
    }
    fn device_at(&mut self, _pid: u32, _path: &str) -> Option<(u32, u32)> {
        None
    }
    /// A file per distinct executable path: the same path is the same file.
    fn exe_id(&mut self, pid: u32) -> Option<(u64, u64)> {
        use std::hash::{Hash, Hasher};
        let exe = self.exes.get(&pid)?;
        let mut h = std::collections::hash_map::DefaultHasher::new();
        exe.hash(&mut h);
        Some((1, h.finish()))
    }
    fn proc_creds(&mut self, pid: u32) -> Option<(u32, u64)> {
        self.creds.get(&pid).copied()
    }
    fn runs_host_file(&mut self, _pid: u32, exe: &str) -> bool {
        self.host_exes.iter().any(|e| e == exe)
    }
    fn container_roots(&mut self, _pid: u32) -> Vec<String> {
        vec!["/srv/boxes/mybox/rootfs".into()]
    }
}

fn enricher() -> Enricher<FakeSystem> {
    let mut system = FakeSystem::default();
    system.cgroups.insert(1, "/".into());
    system.cgroups.insert(50, "/mybox".into());
    system
        .cgroups
        .insert(60, format!("/docker/{}", "d".repeat(64)));
    system.exes.insert(12, "/usr/sbin/runc".into());
    Enricher::new(
        HostNamespaces {
            namespaces: Namespaces::from_wire(&HOST),
            source: "test".into(),
        },
        1_000_000_000_000_000_000,
        system,
    )
}

fn header(
    kind: EventKind,
    pid: u32,
    ppid: u32,
    cgroup_id: u64,
    ns: [u32; NS_COUNT],
) -> EventHeader {
    let mut comm = [0u8; 16];
    comm[..4].copy_from_slice(b"test");
    EventHeader {
        schema_version: SCHEMA_VERSION,
        header_size: size_of::<EventHeader>() as u16,
        kind: kind as u32,
        ktime_ns: u64::from(pid) * 1000,
        tgid: pid,
        tid: pid,
        ppid,
        uid: 0,
        gid: 0,
        flags: 0,
        start_time_ns: u64::from(pid),
        cgroup_id,
        cap_effective: 0,
        ns,
        comm,
    }
}

fn fork(pid: u32, parent: u32, cgroup_id: u64, ns: [u32; NS_COUNT]) -> RawEvent {
    RawEvent::Fork(ForkEvent {
        header: header(EventKind::ProcessFork, pid, parent, cgroup_id, ns),
        creator_tgid: parent,
        _pad: 0,
    })
}

fn exec(pid: u32, cgroup_id: u64, ns: [u32; NS_COUNT], file: &str) -> RawEvent {
    let mut filename = [0u8; PATH_LEN];
    filename[..file.len()].copy_from_slice(file.as_bytes());
    let mut args = [0u8; ARGS_LEN];
    args[..file.len()].copy_from_slice(file.as_bytes());
    RawEvent::Exec(Box::new(ExecEvent {
        header: header(EventKind::ProcessExec, pid, 1, cgroup_id, ns),
        filename,
        args,
        args_len: file.len() as u32 + 1,
        flags: 0,
        cwd_mnt_ns: ns[0],
        root_mnt_ns: ns[0],
        exe_ino: 0,
        exe_ctime_sec: 0,
        exe_ctime_nsec: 0,
        exe_nlink: 1,
        exe_dev: 0,
        exe_magic: 0,
        root_dev: 0,
        exe_mnt_ns: 0,
    }))
}

fn ns_event(
    kind: EventKind,
    pid: u32,
    cgroup_id: u64,
    before: [u32; NS_COUNT],
    after: [u32; NS_COUNT],
) -> RawEvent {
    RawEvent::Namespace(
        kind,
        NamespaceEvent {
            header: header(kind, pid, 1, cgroup_id, after),
            ret: 0,
            flags: abi::CLONE_NEWNS,
            fd: 3,
            _pad: 0,
            ns_before: before,
        },
    )
}

fn joined(e: &Event) -> Vec<(&'static str, NsOwner)> {
    match &e.data {
        Payload::Namespace { joined, .. } => joined
            .iter()
            .map(|j| (j.ns_type.name(), j.owner.clone()))
            .collect(),
        other => panic!("not a namespace event: {other:?}"),
    }
}

/// Host shell 10 → runc 11 → runc init 12 (re-exec, setns) → container entrypoint.
fn start_container(en: &mut Enricher<FakeSystem>) {
    en.enrich(&fork(11, 10, 1, HOST));
    let runc = en.enrich(&exec(11, 1, HOST, "/usr/sbin/runc"));
    assert!(runc.process.runtime_helper);
    en.enrich(&fork(12, 11, 1, HOST));
    let reexec = en.enrich(&exec(12, 1, HOST, "/proc/self/exe"));
    assert!(
        reexec.process.runtime_helper,
        "runc's re-exec on the host stays a helper"
    );
    assert_eq!(
        reexec.process.exe, "/usr/sbin/runc",
        "fd paths resolve to /proc/PID/exe"
    );
    let unshare = en.enrich(&ns_event(EventKind::Unshare, 12, 50, HOST, CT));
    assert!(unshare.process.runtime_helper);
    let entry = en.enrich(&exec(12, 50, CT, "/bin/sh"));
    assert!(!entry.process.runtime_helper);
    let c = entry
        .container
        .expect("the entrypoint belongs to a container");
    assert_eq!((c.id.as_str(), c.runtime), ("/mybox", Runtime::Unknown));
}

#[test]
fn runtime_lineage_makes_a_container_and_its_setns_into_the_host_is_seen() {
    let mut en = enricher();
    start_container(&mut en);
    // The container's shell forks; the child setns into the host mount namespace.
    en.enrich(&fork(13, 12, 50, CT));
    let mut after = CT;
    after[0] = HOST[0];
    let ev = en.enrich(&ns_event(EventKind::Setns, 13, 50, CT, after));
    assert_eq!(ev.container.as_ref().map(|c| c.id.as_str()), Some("/mybox"));
    assert!(!ev.process.runtime_helper);
    assert_eq!(joined(&ev), vec![("mnt", NsOwner::Host)]);
}

#[test]
fn a_container_process_holding_the_hosts_namespace_is_stated_whatever_the_path() {
    let mut en = enricher();
    start_container(&mut en);
    en.enrich(&fork(14, 12, 50, CT));
    // No setns event (a 32-bit setns is invisible to the syscall tracepoints): the next event
    // of the process carries the host's mount namespace in its header.
    let mut after = CT;
    after[0] = HOST[0];
    let ev = en.enrich(&exec(14, 50, after, "/bin/sh"));
    let held: Vec<_> = ev
        .process
        .foreign_namespaces
        .iter()
        .map(|j| (j.ns_type.name(), j.inode, j.previous, j.owner.clone()))
        .collect();
    assert_eq!(held, vec![("mnt", HOST[0], CT[0], NsOwner::Host)]);
    // Its container's own processes hold nothing foreign, and neither do host processes.
    let own = en.enrich(&exec(12, 50, CT, "/bin/true"));
    assert!(own.process.foreign_namespaces.is_empty());
    let host = en.enrich(&fork(15, 10, 1, HOST));
    assert!(host.process.foreign_namespaces.is_empty());
}

#[test]
fn a_container_sharing_a_host_namespace_from_the_start_holds_nothing_foreign() {
    let mut en = enricher();
    en.enrich(&fork(11, 10, 1, HOST));
    en.enrich(&exec(11, 1, HOST, "/usr/sbin/runc"));
    en.enrich(&fork(12, 11, 1, HOST));
    // --net=host: the container's namespaces are its own except the host's network.
    let mut shared = CT;
    shared[2] = HOST[2];
    let entry = en.enrich(&exec(12, 50, shared, "/bin/sh"));
    assert!(entry.container.is_some());
    assert!(entry.process.foreign_namespaces.is_empty());
    let later = en.enrich(&fork(13, 12, 50, shared));
    assert!(later.process.foreign_namespaces.is_empty());
}

#[test]
fn host_processes_stay_host_after_unshare_and_nsenter() {
    let mut en = enricher();
    en.enrich(&fork(20, 10, 1, HOST));
    let mut private = HOST;
    private[0] = 999;
    let un = en.enrich(&ns_event(EventKind::Unshare, 20, 1, HOST, private));
    assert_eq!(un.container, None);
    let sh = en.enrich(&exec(20, 1, private, "/bin/sh"));
    assert_eq!(
        sh.container, None,
        "a host shell in a private mount namespace is no container"
    );
    let back = en.enrich(&ns_event(EventKind::Setns, 20, 1, private, HOST));
    assert_eq!(back.container, None);
    assert_eq!(joined(&back), vec![("mnt", NsOwner::Host)]);
}

#[test]
fn docker_cgroup_wins_and_other_containers_namespaces_are_known() {
    let mut en = enricher();
    start_container(&mut en);
    // A process first seen in a docker cgroup, living in other namespaces.
    let other: [u32; NS_COUNT] = [102, 202, 302, 402, 502, 600, 700, 800];
    let d = en.enrich(&exec(30, 60, other, "/bin/sh"));
    let dc = d.container.expect("docker container");
    assert_eq!((dc.id.len(), dc.runtime), (64, Runtime::Docker));
    // It joins /mybox's network namespace.
    let mut after = other;
    after[2] = CT[2];
    let ev = en.enrich(&ns_event(EventKind::Setns, 30, 60, other, after));
    assert_eq!(
        joined(&ev),
        vec![(
            "net",
            NsOwner::Container {
                id: "/mybox".into(),
                runtime: Runtime::Unknown
            }
        )]
    );
}

#[test]
fn a_reused_namespace_inode_forgets_its_previous_owner() {
    let mut en = enricher();
    start_container(&mut en);
    // /mybox is gone; a host process creates a namespace that gets /mybox's old mnt inode.
    en.enrich(&RawEvent::Exit(ExitEvent {
        header: header(EventKind::ProcessExit, 12, 11, 50, CT),
        exit_code: 0,
        _pad: 0,
    }));
    en.enrich(&fork(40, 10, 1, HOST));
    let mut reused = HOST;
    reused[0] = CT[0];
    en.enrich(&ns_event(EventKind::Unshare, 40, 1, HOST, reused));
    en.enrich(&fork(41, 10, 1, HOST));
    let ev = en.enrich(&ns_event(EventKind::Setns, 41, 1, HOST, reused));
    assert_eq!(joined(&ev), vec![("mnt", NsOwner::Unknown)]);
}

#[test]
fn event_ids_increase_and_time_is_boot_time_plus_ktime() {
    let mut en = enricher();
    let a = en.enrich(&fork(50, 10, 1, HOST));
    let b = en.enrich(&fork(51, 10, 1, HOST));
    assert_eq!((a.id, b.id), (1, 2));
    assert_eq!(a.time, "2001-09-09T01:46:40.000050000Z");
}

#[test]
fn a_helper_renamed_after_a_lost_exec_is_judged_by_what_it_runs_now() {
    let mut en = enricher();
    en.note_loss();
    en.enrich(&fork(11, 10, 1, HOST));
    en.enrich(&exec(11, 1, HOST, "/usr/sbin/runc"));
    en.enrich(&fork(12, 11, 1, HOST));
    en.enrich(&exec(12, 1, HOST, "/proc/self/exe"));
    // runc renames itself without exec'ing: still a helper.
    let mut renamed = ns_event(EventKind::Unshare, 12, 50, HOST, CT);
    if let RawEvent::Namespace(_, e) = &mut renamed {
        e.header.comm[..13].copy_from_slice(b"runc:[2:INIT]");
    }
    assert!(en.enrich(&renamed).process.runtime_helper);
    // The exec of the workload was lost; the next event shows another name: /proc decides.
    en.system.exes.insert(12, "/bin/busybox".into());
    let mut after = CT;
    after[0] = HOST[0];
    let mut setns = ns_event(EventKind::Setns, 12, 50, CT, after);
    if let RawEvent::Namespace(_, e) = &mut setns {
        e.header.comm = *b"nsenter\0\0\0\0\0\0\0\0\0";
    }
    let ev = en.enrich(&setns);
    assert!(
        !ev.process.runtime_helper,
        "the workload is no longer taken for runc"
    );
    assert_eq!(ev.container.map(|c| c.id), Some("/mybox".to_owned()));
}

#[test]
fn a_process_named_like_runc_is_a_helper_only_as_a_fork_of_one_running_the_same_file() {
    let mut en = enricher();
    en.note_loss();
    // runc (11) runs; its child 12's fork and exec were lost. 12 runs the same file: a fork
    // of runc that has not exec'd (its init stage), whatever it is called.
    en.system.exes.insert(11, "/usr/sbin/runc".into());
    en.system.exes.insert(12, "/usr/sbin/runc".into());
    en.enrich(&fork(11, 10, 1, HOST));
    en.enrich(&exec(11, 1, HOST, "/usr/sbin/runc"));
    let mut init = ns_event(EventKind::Unshare, 12, 50, HOST, CT);
    if let RawEvent::Namespace(_, e) = &mut init {
        e.header.ppid = 11;
        e.header.comm[..13].copy_from_slice(b"runc:[2:INIT]");
    }
    assert!(en.enrich(&init).process.runtime_helper);
    // A container process first seen with runc's stage name, running its own binary: no
    // helper (it used to be one by its name).
    en.system.exes.insert(13, "/bin/busybox".into());
    let mut imposter = ns_event(EventKind::Setns, 13, 50, CT, HOST);
    if let RawEvent::Namespace(_, e) = &mut imposter {
        e.header.ppid = 12;
        e.header.comm[..13].copy_from_slice(b"runc:[2:INIT]");
    }
    let ev = en.enrich(&imposter);
    assert!(!ev.process.runtime_helper, "a name made it a helper");
    assert_eq!(ev.container.map(|c| c.id), Some("/mybox".to_owned()));
}

#[test]
fn a_self_reexec_of_a_process_already_gone_keeps_the_running_image() {
    // busybox sh 30 forks 31, which re-execs /proc/self/exe (the nsenter applet), does its
    // work and exits before the agent reads /proc/31/exe.
    let mut en = enricher();
    en.enrich(&exec(30, 1, HOST, "/bin/busybox"));
    en.enrich(&fork(31, 30, 1, HOST));
    let reexec = en.enrich(&exec(31, 1, HOST, "/proc/self/exe"));
    assert_eq!(reexec.process.exe, "/bin/busybox");
    // A descriptor path of an unknown process stays as given: nothing better is known.
    let unknown = en.enrich(&exec(40, 1, HOST, "/dev/fd/3"));
    assert_eq!(unknown.process.exe, "/dev/fd/3");
}

/// A container's `/`: a bind-mounted directory gives its root within the source filesystem,
/// an overlay its upperdir; mounts elsewhere give nothing.
#[test]
fn container_root_sources_from_mountinfo() {
    use procfs::FromRead as _;
    let mountinfo = "\
612 590 0:61 / / rw,relatime - overlay overlay rw,lowerdir=/var/lib/l1:/var/lib/l2,upperdir=/var/lib/c/abc/diff,workdir=/var/lib/c/abc/work
613 612 0:64 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw
700 590 259:2 /srv/rootfs/abc / rw,relatime - ext4 /dev/root rw
701 700 259:2 /data /data rw,relatime - ext4 /dev/root rw,upperdir=/not/root
";
    let mounts = procfs::process::MountInfos::from_read(mountinfo.as_bytes()).unwrap();
    assert_eq!(
        super::root_sources(&mounts),
        ["/var/lib/c/abc/diff", "/srv/rootfs/abc"]
    );
}

/// Docker's default bounding set.
const DOCKER_CAPS: u64 = 0xa804_25fb;
const CAP_SYS_MODULE: u64 = 1 << 16;

/// `raw` (an exec or a fork) with these credentials in its header.
fn with_creds(mut raw: RawEvent, uid: u32, caps: u64) -> RawEvent {
    let h = match &mut raw {
        RawEvent::Exec(e) => &mut e.header,
        RawEvent::Fork(f) => &mut f.header,
        _ => panic!("only exec and fork here"),
    };
    h.uid = uid;
    h.gid = uid;
    h.cap_effective = caps;
    raw
}

/// The container of `start_container`, its entrypoint (pid 12) started with `bounding` as its
/// bounding set.
fn container_started_with(bounding: u64) -> Enricher<FakeSystem> {
    let mut en = enricher();
    en.system.creds.insert(12, (1000, bounding));
    start_container(&mut en);
    en
}

#[test]
fn capabilities_beyond_the_containers_start_bounding_set_are_stated() {
    let mut en = container_started_with(DOCKER_CAPS);
    // A process gains CAP_SYS_MODULE (runc exec --cap, or a kernel exploit) and the host's
    // full set as root in the initial user namespace (CT shares HOST's user namespace here).
    let ev = en.enrich(&with_creds(
        exec(14, 50, CT, "/bin/sh"),
        0,
        DOCKER_CAPS | CAP_SYS_MODULE,
    ));
    let beyond = ev.process.creds_beyond_start.expect("stated");
    assert_eq!(
        (
            beyond.gained,
            beyond.start_bounding,
            beyond.start_uid,
            beyond.init_cred
        ),
        (CAP_SYS_MODULE, DOCKER_CAPS, 0, false),
        "the start uid is the first workload event's (its header says 0 here)"
    );
    let root = en.enrich(&with_creds(exec(15, 50, CT, "/bin/sh"), 0, FULL_CAPS));
    let beyond = root.process.creds_beyond_start.expect("stated");
    assert_eq!(beyond.gained, FULL_CAPS & !DOCKER_CAPS);
    assert!(beyond.init_cred);
    // A setuid-root program gains capabilities within the bounding set: nothing to state.
    let setuid = en.enrich(&with_creds(exec(16, 50, CT, "/bin/su"), 0, DOCKER_CAPS));
    assert_eq!(setuid.process.creds_beyond_start, None);
    // Host processes are never judged against a container's start.
    let host = en.enrich(&with_creds(fork(17, 10, 1, HOST), 0, FULL_CAPS));
    assert_eq!(host.process.creds_beyond_start, None);
}

#[test]
fn every_capability_in_a_user_namespace_made_inside_the_container_is_nothing_beyond_it() {
    let mut en = container_started_with(DOCKER_CAPS);
    // `unshare -U` as uid 1000 (rootless podman or buildah in a container): every capability,
    // in the new user namespace only.
    let mut nested = CT;
    nested[5] = 602;
    let ev = en.enrich(&with_creds(
        exec(14, 50, nested, "/bin/sh"),
        1000,
        FULL_CAPS,
    ));
    assert_eq!(ev.process.creds_beyond_start, None);
    // The same capabilities in the container's own (the host's) user namespace are stated.
    let ev = en.enrich(&with_creds(exec(15, 50, CT, "/bin/sh"), 1000, FULL_CAPS));
    assert!(ev.process.creds_beyond_start.is_some());
}

#[test]
fn a_privileged_container_holds_nothing_beyond_its_start() {
    let mut en = container_started_with(FULL_CAPS);
    let ev = en.enrich(&with_creds(exec(14, 50, CT, "/bin/sh"), 0, FULL_CAPS));
    assert_eq!(ev.process.creds_beyond_start, None);
}

#[test]
fn a_container_in_its_own_user_namespace_holds_every_capability_beyond_it_in_the_hosts() {
    let mut en = enricher();
    en.system.creds.insert(12, (100_000, FULL_CAPS));
    let mut own_user = CT;
    own_user[5] = 601;
    en.enrich(&fork(12, 10, 50, own_user));
    en.enrich(&with_creds(
        exec(12, 50, own_user, "/bin/sh"),
        100_000,
        FULL_CAPS,
    ));
    let mut host_user = own_user;
    host_user[5] = HOST[5];
    let ev = en.enrich(&with_creds(
        exec(12, 50, host_user, "/bin/sh"),
        0,
        FULL_CAPS,
    ));
    let beyond = ev.process.creds_beyond_start.expect("stated");
    assert_eq!((beyond.gained, beyond.init_cred), (FULL_CAPS, true));
}

#[test]
fn a_cwd_or_root_in_another_mount_namespace_is_stated_at_exec() {
    let mut en = enricher();
    start_container(&mut en);
    let RawEvent::Exec(mut leak) = exec(14, 50, CT, "/bin/cat") else {
        unreachable!()
    };
    leak.cwd_mnt_ns = HOST[0];
    let ev = en.enrich(&RawEvent::Exec(leak));
    let Payload::ProcessExec { outside_mount, .. } = &ev.data else {
        panic!("an exec")
    };
    let found: Vec<_> = outside_mount
        .iter()
        .map(|p| (p.which.name(), p.mnt_ns, p.owner.clone()))
        .collect();
    assert_eq!(found, vec![("cwd", HOST[0], NsOwner::Host)]);
    // Its own mounts (volumes included) and an unreadable or detached mount (0) say nothing.
    let RawEvent::Exec(mut detached) = exec(15, 50, CT, "/bin/cat") else {
        unreachable!()
    };
    detached.root_mnt_ns = 0;
    for raw in [exec(16, 50, CT, "/bin/cat"), RawEvent::Exec(detached)] {
        let ev = en.enrich(&raw);
        assert!(
            matches!(&ev.data, Payload::ProcessExec { outside_mount, .. } if outside_mount.is_empty())
        );
    }
}

fn mem_write(pid: u32, target_pid: u32, flags: u32) -> RawEvent {
    RawEvent::MemWrite(Box::new(MemWriteEvent {
        header: header(EventKind::MemWrite, pid, 12, 50, CT),
        ret: 8,
        addr: 0x1000,
        len: 8,
        target_pid,
        vma: 0,
        file_ino: 0,
        file_name: [0; NAME_LEN],
        flags,
        _pad: 0,
    }))
}

/// The kernel says how a /proc/PID/mem write's target is numbered: the writer itself, a pid of
/// the writer's pid namespace, or (a process's own mem handed on by fork or SCM_RIGHTS) the
/// opener's host tgid, which names the process whatever namespace the writer is in.
#[test]
fn a_mem_write_target_is_resolved_as_the_kernel_numbered_it() {
    let mut en = enricher();
    start_container(&mut en);
    en.enrich(&fork(15, 12, 50, CT));
    let target = |e: &Event| match &e.data {
        Payload::MemWrite { target, .. } => target.clone(),
        other => panic!("not a mem write: {other:?}"),
    };
    let own = target(&en.enrich(&mem_write(15, 0, MEMW_SELF)));
    assert_eq!((own.pid, own.pid_in_writer_ns), (15, false));
    let in_ns = target(&en.enrich(&mem_write(15, 3, MEMW_PID_IN_WRITER_NS)));
    assert_eq!((in_ns.pid, in_ns.pid_in_writer_ns), (3, true));
    assert!(
        in_ns.comm.is_empty(),
        "a namespace pid names no host process"
    );
    let handed_on = target(&en.enrich(&mem_write(15, 12, 0)));
    assert_eq!((handed_on.pid, handed_on.pid_in_writer_ns), (12, false));
    assert_eq!(handed_on.comm, "test", "the opener, found by its host tgid");
    assert!(
        matches!(handed_on.owner, NsOwner::Container { .. }),
        "{handed_on:?}"
    );
}

#[test]
fn a_device_in_a_container_is_looked_at_without_following_its_links() {
    use super::LiveSystem;
    let proc_root = std::env::temp_dir().join(format!("ew-live-dev-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&proc_root);
    let dev = proc_root.join("123/root/dev");
    std::fs::create_dir_all(&dev).unwrap();
    // The container's /dev/evil names the agent's /dev/null when walked from outside.
    std::os::unix::fs::symlink("/dev/null", dev.join("evil")).unwrap();
    // Process 7's root is the host's.
    std::fs::create_dir_all(proc_root.join("7")).unwrap();
    std::os::unix::fs::symlink("/", proc_root.join("7/root")).unwrap();
    let mut live = LiveSystem {
        cgroups: super::cgroup::CgroupResolver::new(&proc_root),
        proc_root: proc_root.clone(),
        probe: Default::default(),
        host_probe: super::probe::Prober::with(super::probe::same_host_file),
    };
    assert_eq!(live.device_at(123, "/dev/evil"), None);
    let (mode, rdev) = live.device_at(7, "/dev/null").expect("a real node");
    assert_eq!(mode & libc::S_IFMT, libc::S_IFCHR);
    assert_eq!(rdev, abi::kernel_dev(1, 3));
    std::fs::remove_dir_all(&proc_root).unwrap();
}

#[test]
fn a_namespace_flood_does_not_make_another_containers_namespaces_unknown() {
    let mut en = enricher();
    start_container(&mut en);
    // A docker container (cgroup 60) makes 100,000 mount namespaces in a loop, more than
    // the owner table holds (the table used to be wiped at 65,536 entries).
    let mut ns: [u32; NS_COUNT] = [102, 202, 302, 402, 502, 600, 700, 800];
    en.enrich(&exec(30, 60, ns, "/bin/sh"));
    for i in 0..100_000u32 {
        let mut after = ns;
        after[0] = 1_000_000 + i;
        en.enrich(&ns_event(EventKind::Unshare, 30, 60, ns, after));
        ns = after;
    }
    assert!(en.ns_owner.len() <= super::owners::NS_OWNER_LIMIT + 1);
    // It then joins /mybox's network namespace: still known as /mybox's.
    let mut after = ns;
    after[2] = CT[2];
    let ev = en.enrich(&ns_event(EventKind::Setns, 30, 60, ns, after));
    assert_eq!(
        joined(&ev),
        vec![(
            "net",
            NsOwner::Container {
                id: "/mybox".into(),
                runtime: Runtime::Unknown
            }
        )]
    );
    // Its own recent namespaces are still its own.
    let mut back = after;
    back[0] = 1_000_000 + 99_990;
    let ev = en.enrich(&ns_event(EventKind::Setns, 30, 60, after, back));
    assert!(
        matches!(&joined(&ev)[..], [("mnt", NsOwner::Container { id, .. })] if id.len() == 64),
        "{:?}",
        joined(&ev)
    );
}

#[test]
fn an_executable_is_foreign_unless_it_is_the_hosts_file() {
    let mut en = enricher();
    start_container(&mut en);
    // The container's own /usr/bin/nsenter (an image file at the allowlisted path).
    let own = en.enrich(&exec(12, 50, CT, "/usr/bin/nsenter"));
    assert!(own.container.is_some());
    assert!(own.process.exe_foreign, "{:?}", own.process);
    let child = en.enrich(&fork(13, 12, 50, CT));
    assert!(child.process.exe_foreign, "a fork runs the same file");
    // The host's nsenter bind-mounted into the container (same device and inode).
    en.system.host_exes.push("/usr/bin/nsenter".into());
    let bound = en.enrich(&exec(13, 50, CT, "/usr/bin/nsenter"));
    assert!(!bound.process.exe_foreign);
    // A host process: its path is a host path.
    en.enrich(&fork(20, 10, 1, HOST));
    let host = en.enrich(&exec(20, 1, HOST, "/usr/local/bin/tool"));
    assert!(!host.process.exe_foreign);
    let line = serde_json::to_string(&host.process).unwrap();
    assert!(!line.contains("exe_foreign"), "absent when false: {line}");
}
