//! Userspace side: `aya::Pod` impls and checked decoding of ring-buffer records.

use alloc::boxed::Box;
use core::mem::size_of;

use crate::{
    SCHEMA_VERSION,
    calls::{MountCall, TaskChange, UnknownCall, WatchedSyscall},
    config::KernelConfig,
    event::{
        ConnectEvent, CowFaultEvent, EventHeader, ExecEvent, ExitEvent, FileOpenEvent, ForkEvent,
        MadviseEvent, MemWriteEvent, MountEvent, NamespaceEvent, PipeWriteEvent, SyscallEvent,
        SysctlEvent, TaskChangedEvent,
    },
    kind::EventKind,
};

// SAFETY: plain-old-data: repr(C), only integer fields and arrays of them, explicit padding, so
// every bit pattern is a valid value.
unsafe impl aya::Pod for KernelConfig {}
unsafe impl aya::Pod for EventHeader {}
unsafe impl aya::Pod for ExecEvent {}
unsafe impl aya::Pod for ForkEvent {}
unsafe impl aya::Pod for ExitEvent {}
unsafe impl aya::Pod for NamespaceEvent {}
unsafe impl aya::Pod for MountEvent {}
unsafe impl aya::Pod for FileOpenEvent {}
unsafe impl aya::Pod for SysctlEvent {}
unsafe impl aya::Pod for MadviseEvent {}
unsafe impl aya::Pod for MemWriteEvent {}
unsafe impl aya::Pod for SyscallEvent {}
unsafe impl aya::Pod for PipeWriteEvent {}
unsafe impl aya::Pod for ConnectEvent {}
unsafe impl aya::Pod for crate::event::NetConnectEvent {}
unsafe impl aya::Pod for crate::event::ModuleRequestEvent {}
unsafe impl aya::Pod for CowFaultEvent {}
unsafe impl aya::Pod for TaskChangedEvent {}
unsafe impl aya::Pod for crate::event::InodeKey {}
unsafe impl aya::Pod for crate::maps::AttemptKey {}
unsafe impl aya::Pod for crate::maps::AttemptBudget {}

/// Why a ring-buffer record was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("record of {len} bytes is shorter than the {need}-byte event header")]
    TooShort { len: usize, need: usize },
    #[error(
        "record has schema version {found} but this agent reads version {expected}: the eBPF object and the agent were built from different sources"
    )]
    SchemaVersion { found: u16, expected: u16 },
    #[error("record header claims {found} header bytes, expected {expected}")]
    HeaderSize { found: u16, expected: u16 },
    #[error("record has unknown event kind {0}")]
    UnknownKind(u32),
    #[error("{kind:?} record names unknown call id {id}")]
    UnknownCall { kind: EventKind, id: u32 },
    #[error("{kind:?} record is {len} bytes, expected {expected}")]
    SizeMismatch {
        kind: EventKind,
        len: usize,
        expected: usize,
    },
}

/// One decoded record, copied out of the ring buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawEvent {
    /// Boxed: ten times the size of the other kinds.
    Exec(Box<ExecEvent>),
    Fork(ForkEvent),
    Exit(ExitEvent),
    /// setns, unshare or clone with CLONE_NEW*; the kind tells which.
    Namespace(EventKind, NamespaceEvent),
    /// The call, checked at decode.
    Mount(MountCall, Box<MountEvent>),
    FileOpen(Box<FileOpenEvent>),
    Sysctl(Box<SysctlEvent>),
    Madvise(Box<MadviseEvent>),
    MemWrite(Box<MemWriteEvent>),
    /// The syscall, checked at decode.
    Syscall(WatchedSyscall, SyscallEvent),
    PipeWrite(Box<PipeWriteEvent>),
    Connect(Box<ConnectEvent>),
    NetConnect(Box<crate::event::NetConnectEvent>),
    ModuleRequest(Box<crate::event::ModuleRequestEvent>),
    CowFault(Box<CowFaultEvent>),
    /// The change, checked at decode.
    TaskChanged(TaskChange, TaskChangedEvent),
}

impl RawEvent {
    pub fn header(&self) -> &EventHeader {
        match self {
            RawEvent::Exec(e) => &e.header,
            RawEvent::Fork(e) => &e.header,
            RawEvent::Exit(e) => &e.header,
            RawEvent::Namespace(_, e) => &e.header,
            RawEvent::Mount(_, e) => &e.header,
            RawEvent::FileOpen(e) => &e.header,
            RawEvent::Sysctl(e) => &e.header,
            RawEvent::Madvise(e) => &e.header,
            RawEvent::MemWrite(e) => &e.header,
            RawEvent::Syscall(_, e) => &e.header,
            RawEvent::PipeWrite(e) => &e.header,
            RawEvent::Connect(e) => &e.header,
            RawEvent::NetConnect(e) => &e.header,
            RawEvent::ModuleRequest(e) => &e.header,
            RawEvent::CowFault(e) => &e.header,
            RawEvent::TaskChanged(_, e) => &e.header,
        }
    }

    pub fn kind(&self) -> EventKind {
        match self {
            RawEvent::Exec(_) => EventKind::ProcessExec,
            RawEvent::Fork(_) => EventKind::ProcessFork,
            RawEvent::Exit(_) => EventKind::ProcessExit,
            RawEvent::Namespace(kind, _) => *kind,
            RawEvent::Mount(..) => EventKind::Mount,
            RawEvent::FileOpen(_) => EventKind::FileOpen,
            RawEvent::Sysctl(_) => EventKind::SysctlWrite,
            RawEvent::Madvise(_) => EventKind::Madvise,
            RawEvent::MemWrite(_) => EventKind::MemWrite,
            RawEvent::Syscall(..) => EventKind::Syscall,
            RawEvent::PipeWrite(_) => EventKind::PipeWrite,
            RawEvent::Connect(_) => EventKind::UnixConnect,
            RawEvent::NetConnect(_) => EventKind::NetConnect,
            RawEvent::ModuleRequest(_) => EventKind::ModuleRequest,
            RawEvent::CowFault(_) => EventKind::CowFault,
            RawEvent::TaskChanged(..) => EventKind::TaskChanged,
        }
    }
}

/// Copy a `T` out of `bytes`, which must be exactly `size_of::<T>()` long.
fn read_exact<T: aya::Pod>(kind: EventKind, bytes: &[u8]) -> Result<T, DecodeError> {
    if bytes.len() != size_of::<T>() {
        return Err(DecodeError::SizeMismatch {
            kind,
            len: bytes.len(),
            expected: size_of::<T>(),
        });
    }
    // SAFETY: the length was checked above, T is Pod (every bit pattern valid) and
    // read_unaligned makes no alignment assumption about the ring-buffer slice.
    Ok(unsafe { core::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}

/// Read only the header of a record: length, schema version and header size checked.
pub fn decode_header(bytes: &[u8]) -> Result<EventHeader, DecodeError> {
    let need = size_of::<EventHeader>();
    if bytes.len() < need {
        return Err(DecodeError::TooShort {
            len: bytes.len(),
            need,
        });
    }
    // SAFETY: at least size_of::<EventHeader>() bytes, EventHeader is Pod, unaligned read.
    let header: EventHeader = unsafe { core::ptr::read_unaligned(bytes.as_ptr().cast()) };
    if header.schema_version != SCHEMA_VERSION {
        return Err(DecodeError::SchemaVersion {
            found: header.schema_version,
            expected: SCHEMA_VERSION,
        });
    }
    if usize::from(header.header_size) != need {
        return Err(DecodeError::HeaderSize {
            found: header.header_size,
            expected: need as u16,
        });
    }
    Ok(header)
}

/// Decode one ring-buffer record: length, version, kind and per-kind size are all checked.
pub fn decode(bytes: &[u8]) -> Result<RawEvent, DecodeError> {
    let header = decode_header(bytes)?;
    let kind = EventKind::try_from(header.kind).map_err(|e| DecodeError::UnknownKind(e.0))?;
    Ok(match kind {
        EventKind::ProcessExec => RawEvent::Exec(Box::new(read_exact(kind, bytes)?)),
        EventKind::ProcessFork => RawEvent::Fork(read_exact(kind, bytes)?),
        EventKind::ProcessExit => RawEvent::Exit(read_exact(kind, bytes)?),
        EventKind::Setns | EventKind::Unshare | EventKind::CloneNewNamespace => {
            RawEvent::Namespace(kind, read_exact(kind, bytes)?)
        }
        EventKind::Mount => {
            let e: MountEvent = read_exact(kind, bytes)?;
            RawEvent::Mount(known_call(kind, e.call)?, Box::new(e))
        }
        EventKind::FileOpen => RawEvent::FileOpen(Box::new(read_exact(kind, bytes)?)),
        EventKind::SysctlWrite => RawEvent::Sysctl(Box::new(read_exact(kind, bytes)?)),
        EventKind::Madvise => RawEvent::Madvise(Box::new(read_exact(kind, bytes)?)),
        EventKind::MemWrite => RawEvent::MemWrite(Box::new(read_exact(kind, bytes)?)),
        EventKind::Syscall => {
            let e: SyscallEvent = read_exact(kind, bytes)?;
            RawEvent::Syscall(known_call(kind, e.id)?, e)
        }
        EventKind::PipeWrite => RawEvent::PipeWrite(Box::new(read_exact(kind, bytes)?)),
        EventKind::UnixConnect => RawEvent::Connect(Box::new(read_exact(kind, bytes)?)),
        EventKind::NetConnect => RawEvent::NetConnect(Box::new(read_exact(kind, bytes)?)),
        EventKind::ModuleRequest => RawEvent::ModuleRequest(Box::new(read_exact(kind, bytes)?)),
        EventKind::CowFault => RawEvent::CowFault(Box::new(read_exact(kind, bytes)?)),
        EventKind::TaskChanged => {
            let e: TaskChangedEvent = read_exact(kind, bytes)?;
            RawEvent::TaskChanged(known_call(kind, e.change)?, e)
        }
    })
}

/// A call id the typed model cannot name is a decode error, counted like an unknown kind.
fn known_call<T: TryFrom<u32, Error = UnknownCall>>(
    kind: EventKind,
    id: u32,
) -> Result<T, DecodeError> {
    T::try_from(id).map_err(|e| DecodeError::UnknownCall { kind, id: e.0 })
}

/// The bytes of a NUL-terminated fixed buffer up to (not including) the first NUL.
pub fn until_nul(buf: &[u8]) -> &[u8] {
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    &buf[..end]
}

/// View a Pod value as its bytes (tests, fixtures and fuzzing build records with it).
pub fn as_bytes<T: aya::Pod>(value: &T) -> &[u8] {
    // SAFETY: T is Pod: no padding holes with undefined content (explicit `_pad` fields), so
    // all size_of::<T>() bytes are initialised.
    unsafe { core::slice::from_raw_parts((value as *const T).cast::<u8>(), size_of::<T>()) }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec::Vec;

    use super::*;
    use crate::event::NS_COUNT;

    fn header(kind: EventKind) -> EventHeader {
        EventHeader {
            schema_version: SCHEMA_VERSION,
            header_size: size_of::<EventHeader>() as u16,
            kind: kind as u32,
            ktime_ns: 42,
            tgid: 100,
            tid: 101,
            ppid: 1,
            uid: 0,
            gid: 0,
            flags: 0,
            start_time_ns: 7,
            cgroup_id: 9,
            cap_effective: u64::MAX,
            ns: [4026531840; NS_COUNT],
            comm: *b"nsenter\0\0\0\0\0\0\0\0\0",
        }
    }

    fn ns_event(kind: EventKind) -> NamespaceEvent {
        NamespaceEvent {
            header: header(kind),
            ret: 0,
            flags: 0x20000,
            fd: 3,
            _pad: 0,
            ns_before: [1; NS_COUNT],
        }
    }

    #[test]
    fn every_kind_round_trips() {
        let exec = ExecEvent {
            header: header(EventKind::ProcessExec),
            filename: [b'a'; crate::PATH_LEN],
            args: [0; crate::ARGS_LEN],
            args_len: 0,
            flags: 0,
            cwd_mnt_ns: 7,
            root_mnt_ns: 8,
            exe_ino: 9,
            exe_ctime_sec: 10,
            exe_ctime_nsec: 11,
            exe_nlink: 0,
            exe_dev: 12,
            exe_magic: 13,
            root_dev: 14,
            exe_mnt_ns: 0,
        };
        assert_eq!(
            decode(as_bytes(&exec)),
            Ok(RawEvent::Exec(alloc::boxed::Box::new(exec)))
        );
        let fork = ForkEvent {
            header: header(EventKind::ProcessFork),
            creator_tgid: 5,
            _pad: 0,
        };
        assert_eq!(decode(as_bytes(&fork)), Ok(RawEvent::Fork(fork)));
        let exit = ExitEvent {
            header: header(EventKind::ProcessExit),
            exit_code: 256,
            _pad: 0,
        };
        assert_eq!(decode(as_bytes(&exit)), Ok(RawEvent::Exit(exit)));
        for kind in [
            EventKind::Setns,
            EventKind::Unshare,
            EventKind::CloneNewNamespace,
        ] {
            let ev = ns_event(kind);
            assert_eq!(decode(as_bytes(&ev)), Ok(RawEvent::Namespace(kind, ev)));
        }
    }

    #[test]
    fn kind_ids_are_stable_and_unknown_ids_rejected() {
        for &kind in EventKind::ALL {
            assert_eq!(EventKind::try_from(kind as u32), Ok(kind));
        }
        assert_eq!(EventKind::Setns as u32, 16);
        assert_eq!(EventKind::try_from(4), Err(crate::kind::UnknownKind(4)));
        let mut ev = ns_event(EventKind::Setns);
        ev.header.kind = 999;
        assert_eq!(decode(as_bytes(&ev)), Err(DecodeError::UnknownKind(999)));
    }

    #[test]
    fn rejects_short_truncated_and_foreign_records() {
        let ev = ns_event(EventKind::Setns);
        let bytes = as_bytes(&ev);
        assert_eq!(
            decode(&bytes[..10]),
            Err(DecodeError::TooShort { len: 10, need: 112 })
        );
        assert!(matches!(
            decode(&bytes[..bytes.len() - 1]),
            Err(DecodeError::SizeMismatch {
                kind: EventKind::Setns,
                len: 167,
                expected: 168
            })
        ));
        let mut longer: Vec<u8> = bytes.to_vec();
        longer.push(0);
        assert!(matches!(
            decode(&longer),
            Err(DecodeError::SizeMismatch { .. })
        ));
        let mut old = ev;
        old.header.schema_version = SCHEMA_VERSION + 1;
        assert_eq!(
            decode(as_bytes(&old)),
            Err(DecodeError::SchemaVersion {
                found: SCHEMA_VERSION + 1,
                expected: SCHEMA_VERSION
            })
        );
        let mut bad_size = ev;
        bad_size.header.header_size = 100;
        assert!(matches!(
            decode(as_bytes(&bad_size)),
            Err(DecodeError::HeaderSize { found: 100, .. })
        ));
    }

    #[test]
    fn header_names_the_program_that_wrote_it() {
        use crate::{
            event::{header_program, header_program_bits},
            programs::{PROGRAMS, ProgramId, ProgramSpec},
        };
        assert_eq!(header_program(0), None);
        assert_eq!(header_program(crate::event::HDR_FLAG_NS_PARTIAL), None);
        for spec in PROGRAMS {
            let flags = header_program_bits(spec.id as u32) | crate::event::HDR_FLAG_CRED_PARTIAL;
            assert_eq!(header_program(flags), Some(spec.id as u32));
            assert_eq!(ProgramId::try_from(spec.id as u32), Ok(spec.id));
            assert_eq!(
                ProgramSpec::by_id(spec.id as u32).map(|p| p.name),
                Some(spec.name)
            );
        }
        assert_eq!(ProgramId::try_from(200), Err(200));
        let lsm = ProgramSpec::by_id(ProgramId::LsmFileOpen as u32).unwrap();
        assert_eq!(lsm.label(), ("lsm", "lsm_file_open"));
    }

    #[test]
    fn wire_layout_offsets() {
        assert_eq!(core::mem::offset_of!(EventHeader, ktime_ns), 8);
        assert_eq!(core::mem::offset_of!(EventHeader, start_time_ns), 40);
        assert_eq!(core::mem::offset_of!(EventHeader, ns), 64);
        assert_eq!(core::mem::offset_of!(EventHeader, comm), 96);
        assert_eq!(core::mem::offset_of!(NamespaceEvent, ns_before), 136);
        assert_eq!(until_nul(b"abc\0def"), b"abc");
        assert_eq!(until_nul(b"abc"), b"abc");
    }
}
