//! Event kind ids. They are a wire contract: a retired kind leaves its number unused forever.

/// What an event record is. The numeric values are stable and never reused.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EventKind {
    /// A process replaced its image (sched_process_exec). Payload: [`crate::event::ExecEvent`].
    ProcessExec = 1,
    /// A new process (not a thread) was created. Payload: [`crate::event::ForkEvent`].
    ProcessFork = 2,
    /// A process's leader thread exited. Payload: [`crate::event::ExitEvent`].
    ProcessExit = 3,
    /// setns(2) returned. Payload: [`crate::event::NamespaceEvent`].
    Setns = 16,
    /// unshare(2) returned. Payload: [`crate::event::NamespaceEvent`].
    Unshare = 17,
    /// clone(2)/clone3(2) with a CLONE_NEW* flag returned in the parent.
    /// Payload: [`crate::event::NamespaceEvent`].
    CloneNewNamespace = 18,
}

/// Number of slots in per-kind counter arrays (loss counters). Every kind id is below it.
pub const KIND_SLOTS: u32 = 64;

impl EventKind {
    pub const ALL: [EventKind; 6] = [
        EventKind::ProcessExec,
        EventKind::ProcessFork,
        EventKind::ProcessExit,
        EventKind::Setns,
        EventKind::Unshare,
        EventKind::CloneNewNamespace,
    ];

    /// Stable lower-case name used in logs, metrics labels and the event log.
    pub const fn name(self) -> &'static str {
        match self {
            EventKind::ProcessExec => "process_exec",
            EventKind::ProcessFork => "process_fork",
            EventKind::ProcessExit => "process_exit",
            EventKind::Setns => "setns",
            EventKind::Unshare => "unshare",
            EventKind::CloneNewNamespace => "clone_new_namespace",
        }
    }
}

/// A kind id that this build does not know (a newer kernel object, or corruption).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnknownKind(pub u32);

impl TryFrom<u32> for EventKind {
    type Error = UnknownKind;

    fn try_from(value: u32) -> Result<Self, Self::Error> {
        Ok(match value {
            1 => EventKind::ProcessExec,
            2 => EventKind::ProcessFork,
            3 => EventKind::ProcessExit,
            16 => EventKind::Setns,
            17 => EventKind::Unshare,
            18 => EventKind::CloneNewNamespace,
            other => return Err(UnknownKind(other)),
        })
    }
}

const _: () = {
    let mut i = 0;
    while i < EventKind::ALL.len() {
        assert!((EventKind::ALL[i] as u32) < KIND_SLOTS);
        i += 1;
    }
};
