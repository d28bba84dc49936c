//! `escapewatch bench-floor` (hidden): attach only the raw-syscall design floor of
//! `ebpf/src/programs/floor.rs` (one raw tracepoint on sys_enter and one on sys_exit, each
//! returning after one array lookup), print `ready`, and hold them until SIGINT or SIGTERM.
//! `cargo xtask bench` measures every operation with these attached, as the floor of a design
//! that sees every syscall through one pair of programs.

use std::io::Write as _;

use aya::{EbpfLoader, programs::RawTracePoint};
use escapewatch::loader::OBJECT;
use escapewatch_common::maps::{RING_ATTEMPTS, RING_CRITICAL, RING_LIFECYCLE};
use nix::sys::signal::{SigSet, Signal};

/// The floor's programs and the raw tracepoint each attaches to.
const FLOOR_PROGRAMS: [(&str, &str); 2] = [
    ("floor_sys_enter", "sys_enter"),
    ("floor_sys_exit", "sys_exit"),
];

/// The smallest ring buffer (one page): the floor never writes to the object's rings, which
/// are created only because the object is loaded whole.
const RING_BYTES: u32 = 4096;

#[derive(Debug, thiserror::Error)]
pub enum FloorError {
    #[error("the kernel refused the eBPF object's maps (run as root)")]
    Object(#[source] aya::EbpfError),
    #[error("program {0} is missing from the eBPF object")]
    Missing(&'static str),
    #[error("cannot load or attach {program} to raw tracepoint {tracepoint}")]
    Attach {
        program: &'static str,
        tracepoint: &'static str,
        #[source]
        source: aya::programs::ProgramError,
    },
    #[error("cannot wait for SIGINT/SIGTERM")]
    Signal(#[source] nix::Error),
    #[error("cannot write to standard output")]
    Stdout(#[source] std::io::Error),
}

pub fn run() -> Result<(), FloorError> {
    // Blocked before anything is attached, so a signal sent right after `ready` is waited for.
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGINT);
    signals.add(Signal::SIGTERM);
    signals.thread_block().map_err(FloorError::Signal)?;
    let mut ebpf = EbpfLoader::new()
        .map_max_entries(RING_CRITICAL, RING_BYTES)
        .map_max_entries(RING_LIFECYCLE, RING_BYTES)
        .map_max_entries(RING_ATTEMPTS, RING_BYTES)
        .load(OBJECT)
        .map_err(FloorError::Object)?;
    let mut links = Vec::new();
    for (program, tracepoint) in FLOOR_PROGRAMS {
        let attach_error = |source| FloorError::Attach {
            program,
            tracepoint,
            source,
        };
        let p: &mut RawTracePoint = ebpf
            .program_mut(program)
            .ok_or(FloorError::Missing(program))?
            .try_into()
            .map_err(attach_error)?;
        p.load().map_err(attach_error)?;
        links.push(p.attach(tracepoint).map_err(attach_error)?);
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready")
        .and_then(|()| out.flush())
        .map_err(FloorError::Stdout)?;
    drop(out);
    signals.wait().map_err(FloorError::Signal)?;
    // Detached and unloaded when `ebpf` is dropped.
    drop(links);
    Ok(())
}
