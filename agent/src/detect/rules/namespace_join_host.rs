//! `namespace-join-host`: a container process joins, by setns, a namespace of the host or of
//! another container.

use escapewatch_common::kind::EventKind;
use serde_json::json;

use super::{Declared, Fixtures, Input, Rule, RuleInfo, alert, simple::short};
use crate::{
    detect::{Alert, Severity},
    model::{Event, NsOwner, NsSyscall, Payload},
};

pub static INFO: RuleInfo = RuleInfo {
    scope: "a container process joins, by setns, a namespace of the host or of another container",
    id: "namespace-join-host",
    severity: Severity::Critical,
    mitre: "T1611",
    title: "Container process joined a host or foreign namespace",
    explanation: "A process that belongs to a container called setns(2) and now runs in a \
        namespace owned by the host (or by another container). This is how nsenter-style escapes \
        work: with CAP_SYS_ADMIN and a handle on a host process's /proc/PID/ns files (host PID \
        namespace, a mounted host /proc), the process walks out of its isolation, e.g. into the \
        host's mount namespace where the whole host filesystem is writable. Container runtimes \
        doing this while they set a container up are not reported. Check the container's \
        configuration (privileged, shared PID namespace, capabilities), the process tree and \
        command lines around the event (`escapewatch timeline`), and what the process did after \
        joining; treat the host as compromised until shown otherwise.",
    inputs: &[Input::Kind(EventKind::Setns)],
    fixtures: Fixtures::Recorded(&[
        "namespace-join-host",
        "incident-two-containers",
        "memfd-name",
        "compat-setns",
        "flood-open",
        "flood-ns",
    ]),
    ..RuleInfo::BASE
};

#[derive(Default)]
pub struct NamespaceJoinHost;

impl Rule for NamespaceJoinHost {
    fn info(&self) -> &'static RuleInfo {
        &INFO
    }

    fn process(&mut self, event: &Event, out: &mut Vec<Alert>) {
        let Payload::Namespace {
            syscall: NsSyscall::Setns,
            ret: 0,
            joined,
            fd,
            ..
        } = &event.data
        else {
            return;
        };
        let Some(container) = &event.container else {
            return;
        };
        if event.process.runtime_helper {
            return;
        }
        let foreign: Vec<_> = joined
            .iter()
            .filter(|j| match &j.owner {
                NsOwner::Host => true,
                NsOwner::Container { id, .. } => *id != container.id,
                NsOwner::Unknown => false,
            })
            .collect();
        let Some(first) = foreign.first() else {
            return;
        };
        let whose = |owner: &NsOwner| match owner {
            NsOwner::Host => "host".to_owned(),
            NsOwner::Container { id, runtime } => {
                format!("container {} ({})", short(id), runtime.as_str())
            }
            NsOwner::Unknown => "unknown".to_owned(),
        };
        let types: Vec<&str> = foreign.iter().map(|j| j.ns_type.name()).collect();
        let summary = format!(
            "Process {comm} (pid {pid}) in {runtime} container {id} joined the {whose}'s {types} \
             namespace{plural} (inode {inode}) with setns; isolate the container and inspect the host.",
            comm = event.process.comm,
            pid = event.process.pid,
            runtime = container.runtime.as_str(),
            id = short(&container.id),
            whose = whose(&first.owner),
            types = types.join("+"),
            plural = if types.len() > 1 { "s" } else { "" },
            inode = first.inode,
        );
        let details = json!({
            "namespace_type": first.ns_type,
            "inode": first.inode,
            "owner": whose(&first.owner),
            "fd": fd,
            "joined": foreign,
        });
        out.push(alert(&INFO, event, summary, details));
    }
}

impl Declared for NamespaceJoinHost {
    const INFO: &'static RuleInfo = &INFO;

    #[cfg(test)]
    fn examples() -> Vec<super::examples::Example> {
        use super::examples::{Example, in_container, other_container};
        use crate::model::{JoinedNamespace, NsType, testing::setns_event};
        let setns = |comm: &str, ret, owner| {
            let mut e = setns_event(crate::model::testing::container_process(), ret, vec![]);
            if let Payload::Namespace { joined, .. } = &mut e.data
                && ret == 0
            {
                joined.push(JoinedNamespace {
                    ns_type: NsType::Mnt,
                    inode: 4026531832,
                    previous: 4026532300,
                    owner,
                });
            }
            in_container(comm, e.data)
        };
        let other = other_container();
        vec![
            Example::alert(
                "nsenter into the host's mount namespace",
                vec![setns("nsenter", 0, NsOwner::Host)],
                |a| {
                    assert_eq!(a.details["namespace_type"], "mnt");
                    assert_eq!(a.details["inode"], 4026531832u32);
                    assert_eq!(a.details["owner"], "host");
                    assert_eq!(a.details["fd"], 3);
                    assert_eq!(a.details["joined"][0]["previous"], 4026532300u32);
                },
            ),
            Example::alert(
                "into another container",
                vec![setns(
                    "nsenter",
                    0,
                    NsOwner::Container {
                        id: other.id,
                        runtime: other.runtime,
                    },
                )],
                |a| assert_eq!(a.details["owner"], "container bbbbbbbbbbbb (containerd)"),
            ),
            Example::silent(
                "its own namespace, an unknown one, a refused call, and runc",
                vec![
                    setns("nsenter", 0, super::examples::own_container()),
                    setns("nsenter", 0, NsOwner::Unknown),
                    setns("nsenter", -1, NsOwner::Host),
                    // runc joining a host network namespace given by path (--net=host).
                    super::examples::by_runtime(setns("runc", 0, NsOwner::Host).data),
                ],
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{
        JoinedNamespace, Runtime,
        testing::{container_process, setns_event},
    };

    const HOST_MNT: u32 = 4026531832;
    const CT_MNT: u32 = 4026532300;

    fn joined(owner: NsOwner) -> Vec<JoinedNamespace> {
        vec![JoinedNamespace {
            ns_type: crate::model::NsType::Mnt,
            inode: HOST_MNT,
            previous: CT_MNT,
            owner,
        }]
    }

    fn run(event: &Event) -> Vec<Alert> {
        let mut out = Vec::new();
        NamespaceJoinHost.process(event, &mut out);
        out
    }

    #[test]
    fn container_joining_host_mount_namespace_alerts_with_every_field() {
        let ev = setns_event(container_process(), 0, joined(NsOwner::Host));
        let alerts = run(&ev);
        assert_eq!(alerts.len(), 1);
        let a = &alerts[0];
        assert_eq!(a.rule, "namespace-join-host");
        assert_eq!(a.severity, Severity::Critical);
        assert_eq!(a.mitre, "T1611");
        assert_eq!(a.time, ev.time);
        let c = a.container.as_ref().expect("container");
        assert_eq!(c.id, "a".repeat(64));
        assert_eq!(c.runtime, Runtime::Docker);
        assert_eq!(a.process.pid, 4242);
        assert_eq!(a.process.comm, "nsenter");
        assert_eq!(a.process.exe, "/usr/bin/nsenter");
        assert_eq!(a.details["namespace_type"], "mnt");
        assert_eq!(a.details["inode"], HOST_MNT);
        assert_eq!(a.details["owner"], "host");
        assert_eq!(a.event_ids, vec![ev.id]);
        assert!(a.summary.contains("aaaaaaaaaaaa"), "{}", a.summary);
    }

    #[test]
    fn joining_another_container_alerts_but_own_or_unknown_does_not() {
        let other = NsOwner::Container {
            id: "b".repeat(64),
            runtime: Runtime::Containerd,
        };
        let alerts = run(&setns_event(container_process(), 0, joined(other)));
        assert_eq!(alerts.len(), 1);
        assert!(
            alerts[0].details["owner"]
                .as_str()
                .unwrap()
                .starts_with("container bbbbbbbbbbbb")
        );
        let own = NsOwner::Container {
            id: "a".repeat(64),
            runtime: Runtime::Docker,
        };
        assert!(run(&setns_event(container_process(), 0, joined(own))).is_empty());
        assert!(
            run(&setns_event(
                container_process(),
                0,
                joined(NsOwner::Unknown)
            ))
            .is_empty()
        );
    }

    #[test]
    fn host_processes_runtimes_and_failed_calls_do_not_alert() {
        let mut host = container_process();
        host.container = None;
        assert!(run(&setns_event(host, 0, joined(NsOwner::Host))).is_empty());

        let mut runc = container_process();
        runc.process.runtime_helper = true;
        assert!(run(&setns_event(runc, 0, joined(NsOwner::Host))).is_empty());

        assert!(run(&setns_event(container_process(), -1, vec![])).is_empty());
    }

    #[test]
    fn other_kinds_are_ignored() {
        let mut ev = setns_event(container_process(), 0, joined(NsOwner::Host));
        ev.data = Payload::ProcessExit { exit_code: 0 };
        assert!(run(&ev).is_empty());
    }
}
