//! The one path by which an event leaves the kernel: reserve, fill the common header, submit,
//! and count a loss by kind when the ring buffer is full.

use aya_ebpf::{
    bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP, BPF_RB_RING_SIZE},
    helpers::{bpf_get_current_cgroup_id, bpf_get_current_pid_tgid, bpf_ktime_get_boot_ns},
    maps::RingBuf,
};
use escapewatch_common::{
    SCHEMA_VERSION,
    event::{
        ConnectEvent, CowFaultEvent, EventHeader, ExecEvent, ExitEvent, FileOpenEvent, ForkEvent,
        MadviseEvent, MemWriteEvent, ModuleRequestEvent, MountEvent, NamespaceEvent,
        NetConnectEvent, PipeWriteEvent, SyscallEvent, SysctlEvent, TaskChangedEvent,
        header_program_bits,
    },
    kind::EventKind,
    programs::ProgramId,
};

use super::task::{KPtr, fill_current, fill_task, is_candidate};
use crate::{
    cfg,
    maps::{EVENTS_CRITICAL, LOST_BY_KIND, PROGRAM_ERRORS, count},
};

/// The submit flags of a record in `ring`. A wake-up is an irq_work, which a virtual machine
/// pays with a self-IPI and an exit: about 20 µs of the lifecycle programs' run time each
/// (BPF stats) when every record woke the agent. So only the critical ring (escape
/// primitives, namespace changes) wakes it, as the kernel's adaptive default does (when the
/// agent has caught up). The lifecycle and attempt rings wake it only once a quarter full;
/// otherwise the agent's drain timer (a few ms) collects them, and every wake-up drains all
/// three rings, so what a critical record needs from them arrives with it.
///
/// A critical record of a host process (a setns, unshare or mount of the host's own tools,
/// which the agent records to know who owns which namespace) is no alert either: it waits for
/// the timer too, unless the ring fills. Only a task outside the host's mount namespace (the
/// one that can escape) wakes the agent at once, and so does a sysctl write (rare, and the
/// cgroup program's helpers cannot ask the task its namespaces by BTF on every kernel).
///
/// A function of its own (a BPF subprogram), as is the header's filling: inlined into every
/// program, they took the 6.1 verifier's combined stack of the open exit past 512 bytes.
#[inline(never)]
fn submit_flags(ring: &RingBuf, program: ProgramId) -> u64 {
    if core::ptr::eq(ring, &EVENTS_CRITICAL)
        && (program as u32 == ProgramId::SysctlWrite as u32 || is_candidate())
    {
        return 0;
    }
    let avail = ring.query(BPF_RB_AVAIL_DATA.into());
    let size = ring.query(BPF_RB_RING_SIZE.into());
    if avail >= size / 4 {
        BPF_RB_FORCE_WAKEUP.into()
    } else {
        BPF_RB_NO_WAKEUP.into()
    }
}

/// A record type that starts with the common header.
pub trait Record: 'static {
    fn header_mut(&mut self) -> &mut EventHeader;
}

macro_rules! record {
    ($($t:ty),+) => {$(
        impl Record for $t {
            #[inline(always)]
            fn header_mut(&mut self) -> &mut EventHeader {
                &mut self.header
            }
        }
    )+};
}
record!(
    ExecEvent,
    ForkEvent,
    ExitEvent,
    NamespaceEvent,
    MountEvent,
    FileOpenEvent,
    SysctlEvent,
    MadviseEvent,
    MemWriteEvent,
    SyscallEvent,
    PipeWriteEvent,
    ConnectEvent,
    NetConnectEvent,
    ModuleRequestEvent,
    CowFaultEvent,
    TaskChangedEvent
);

/// Fill the common header of a record describing `task`.
#[inline(always)]
fn stamp(h: &mut EventHeader, program: ProgramId, kind: EventKind, task: KPtr) {
    h.schema_version = SCHEMA_VERSION;
    h.header_size = core::mem::size_of::<EventHeader>() as u16;
    h.kind = kind as u32;
    // SAFETY: plain helpers without arguments.
    h.ktime_ns = unsafe { bpf_ktime_get_boot_ns() };
    // For a fork this is the parent's cgroup, which the child inherits (CLONE_INTO_CGROUP aside).
    h.cgroup_id = unsafe { bpf_get_current_cgroup_id() };
    // Most records describe the task that runs the program ([`CURRENT`]): direct loads then.
    // Any other task (a fork's child) and the cgroup sysctl program (whose helper set has no
    // BTF task on every kernel) keep the probe reads.
    if task.is_null() {
        fill_current(h);
    } else {
        fill_task(h, task);
    }
    h.flags |= header_program_bits(program as u32);
}

/// Emit a record that was assembled in map memory (per-thread pending state, too large for
/// the stack): stamp its header in place, then copy it into `ring`.
#[inline(always)]
pub fn output_in_place<T: Record>(
    ring: &RingBuf,
    program: ProgramId,
    kind: EventKind,
    task: KPtr,
    record: *mut T,
) {
    // SAFETY: `record` points to a live map value of type T, written only by this thread.
    let rec = unsafe { &mut *record };
    stamp(rec.header_mut(), program, kind, task);
    if ring
        .output::<T>(&*rec, submit_flags(ring, program))
        .is_err()
    {
        count(&LOST_BY_KIND, kind as u32);
    }
}

/// Emit one `T` describing `task` into `ring`; `fill` writes the kind-specific payload in place
/// (records can exceed the 512-byte eBPF stack, so nothing is built on the stack).
#[inline(always)]
pub fn emit<T: Record>(
    ring: &RingBuf,
    program: ProgramId,
    kind: EventKind,
    task: KPtr,
    fill: impl FnOnce(&mut T),
) {
    let Some(mut entry) = ring.reserve::<T>(0) else {
        count(&LOST_BY_KIND, kind as u32);
        return;
    };
    // SAFETY: the reserved memory is initialised kernel memory of size_of::<T>() bytes, and
    // every T here is integers only, so any content is a valid value; every field is written.
    let ev: &mut T = unsafe { &mut *entry.as_mut_ptr() };
    stamp(ev.header_mut(), program, kind, task);
    fill(ev);
    entry.submit(submit_flags(ring, program));
}

/// Entry wrapper of every program: a no-op until configured, skips the agent's own activity,
/// and counts errors of the fallible body by program.
#[inline(always)]
pub fn run(id: ProgramId, body: impl FnOnce() -> Result<(), i64>) -> u32 {
    if cfg!(schema_version) == 0 {
        return 0;
    }
    if (bpf_get_current_pid_tgid() >> 32) as u32 == cfg!(agent_tgid) {
        return 0;
    }
    if body().is_err() {
        count(&PROGRAM_ERRORS, id as u32);
    }
    0
}
