//! The binary event-log format (the default since format version 1 of it).
//!
//! A file is a file header, then blocks:
//!
//! ```text
//! file header   "EWEVTLOG" (8 bytes)  format version (u32 LE)
//! block         "EWBK" (4)  payload length (u32 LE)  records (u32 LE)
//!               crc32 of (records ‖ payload) (u32 LE)  payload
//! payload       records, each: length (LEB128) ‖ tag (u8) ‖ body
//! ```
//!
//! A record is either JSON text ([`TAG_JSON`]: the log header, which stays JSON so its version
//! can be read before anything else, and anything else the writer was handed as JSON) or one
//! [`Event`] in the fixed encoding of this module ([`TAG_EVENT`]). A block is what the writer
//! gives the kernel in one `write` (one drained batch), so a SIGKILL leaves at most one
//! partial block at the end of the file. A later agent start appends a header block to the
//! same file; rotated segments start with their own file header and so replay on their own.
//!
//! The event encoding is written by hand, not derived: the model's serde attributes (tagged
//! enums, skipped defaults, hex strings) are for JSON and defeat positional serde formats,
//! and a hand encoding decodes about ten times faster than JSON (see the replay bench).
//! Every struct is destructured exhaustively on both sides, so adding a field to the model
//! does not compile until its encoding is written; such a change bumps [`FORMAT_VERSION`] and
//! keeps a decoder for the older versions, so old logs stay replayable.
//!
//! Integers are fixed-width little-endian, strings and lists are LEB128 lengths followed by
//! their bytes or items, `Option` a 0/1 byte, enums a byte (or their `u32` wire id for the
//! kernel's call and namespace types).

use std::collections::BTreeMap;

use super::super::model::{
    BoundSource, Container, CredsBefore, CredsBeyondStart, Event, ExecImage, FileRef, FsPath,
    JoinedNamespace, Lockdown, MountCall, Namespaces, NetDest, NsOwner, NsSyscall, NsType,
    OpenClass, PathOutside, Payload, Process, Runtime, TargetProcess, TaskChange, WatchedSyscall,
};

/// First bytes of a binary event log.
pub const FILE_MAGIC: [u8; 8] = *b"EWEVTLOG";
/// The version of this format (file header, blocks and the event encoding).
pub const FORMAT_VERSION: u32 = 1;
pub const FILE_HEADER_LEN: usize = 12;
/// First bytes of every block: what a reader resynchronises on after damage.
pub const BLOCK_MAGIC: [u8; 4] = *b"EWBK";
pub const BLOCK_HEADER_LEN: usize = 16;
/// Largest block payload a reader accepts. The writer's blocks are its flush buffer (256 KiB)
/// plus at most one record; a larger length is damage.
pub const MAX_BLOCK_BYTES: usize = 64 << 20;

/// A JSON record (the log header, or any JSON value the writer was given).
pub const TAG_JSON: u8 = 1;
/// An [`Event`] in this module's encoding.
pub const TAG_EVENT: u8 = 2;

/// The file header.
pub fn file_header() -> [u8; FILE_HEADER_LEN] {
    let mut h = [0u8; FILE_HEADER_LEN];
    h[..8].copy_from_slice(&FILE_MAGIC);
    h[8..].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h
}

/// Fill in the block header at `block[..BLOCK_HEADER_LEN]` (reserved by the writer) for the
/// `records` records that follow it.
pub fn seal_block(block: &mut [u8], records: u32) {
    let payload_len = (block.len() - BLOCK_HEADER_LEN) as u32;
    let count = records.to_le_bytes();
    let mut crc = crc32fast::Hasher::new();
    crc.update(&count);
    crc.update(&block[BLOCK_HEADER_LEN..]);
    block[..4].copy_from_slice(&BLOCK_MAGIC);
    block[4..8].copy_from_slice(&payload_len.to_le_bytes());
    block[8..12].copy_from_slice(&count);
    block[12..16].copy_from_slice(&crc.finalize().to_le_bytes());
}

/// The checksum a block header must carry for this payload.
pub fn block_crc(records: u32, payload: &[u8]) -> u32 {
    let mut crc = crc32fast::Hasher::new();
    crc.update(&records.to_le_bytes());
    crc.update(payload);
    crc.finalize()
}

/// Append one record: its length, `tag` and the body `body` writes.
pub fn put_record(out: &mut Vec<u8>, tag: u8, body: impl FnOnce(&mut Vec<u8>)) {
    // The body is written after a 5-byte length slot (the longest LEB128 of a u32), then
    // moved down when its length takes fewer bytes: one pass, no scratch buffer.
    let slot = out.len();
    out.extend_from_slice(&[0; 5]);
    out.push(tag);
    body(out);
    let len = out.len() - slot - 5;
    let mut prefix = [0u8; 5];
    let n = leb128(len as u64, &mut prefix);
    out.copy_within(slot + 5.., slot + n);
    out.truncate(out.len() - (5 - n));
    out[slot..slot + n].copy_from_slice(&prefix[..n]);
}

fn leb128(mut v: u64, out: &mut [u8]) -> usize {
    let mut i = 0;
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out[i] = b;
            return i + 1;
        }
        out[i] = b | 0x80;
        i += 1;
    }
}

/// Append `event` as a record. `scratch` is a buffer the caller keeps (no allocation per
/// event once it has grown).
///
/// The body is the event's strings, concatenated (the "heap", after its u32 length), then
/// everything else, with each string's length in its place. The reader checks the heap's
/// UTF-8 in one pass instead of once per string.
pub fn put_event(out: &mut Vec<u8>, scratch: &mut Vec<u8>, event: &Event) {
    put_record(out, TAG_EVENT, |o| {
        let heap_at = o.len();
        o.extend_from_slice(&[0; 4]);
        scratch.clear();
        Enc {
            heap: &mut *o,
            fixed: &mut *scratch,
        }
        .event(event);
        let heap_len = (o.len() - heap_at - 4) as u32;
        o[heap_at..heap_at + 4].copy_from_slice(&heap_len.to_le_bytes());
        o.extend_from_slice(scratch);
    });
}

/// Why a record did not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DecodeError(pub String);

fn bad(what: impl Into<String>) -> DecodeError {
    DecodeError(what.into())
}

/// Split the next record off a block's payload: (tag, body, bytes used).
pub fn next_record(payload: &[u8]) -> Result<(u8, &[u8], usize), DecodeError> {
    let mut len: u64 = 0;
    let mut shift = 0;
    let mut i = 0;
    loop {
        let b = *payload
            .get(i)
            .ok_or_else(|| bad("record length runs past the block"))?;
        i += 1;
        len |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 28 {
            return Err(bad("record length is not a valid LEB128 u32"));
        }
    }
    let len = usize::try_from(len).map_err(|_| bad("record length overflows"))?;
    let end = i
        .checked_add(len)
        .filter(|&e| e <= payload.len())
        .ok_or_else(|| bad(format!("record of {len} bytes runs past the block")))?;
    if len == 0 {
        return Err(bad("empty record (no tag)"));
    }
    Ok((payload[i], &payload[i + 1..end], end))
}

/// Decode an event record's body; every byte must be used.
pub fn decode_event(body: &[u8]) -> Result<Event, DecodeError> {
    let mut e = blank_event();
    decode_event_into(body, &mut e)?;
    Ok(e)
}

/// An event to decode into (every field is overwritten).
pub fn blank_event() -> Event {
    Event {
        id: 0,
        time: String::new(),
        ktime_ns: 0,
        process: Process {
            pid: 0,
            tid: 0,
            ppid: 0,
            start_time: 0,
            comm: String::new(),
            exe: String::new(),
            args: Vec::new(),
            uid: 0,
            gid: 0,
            cap_effective: None,
            cgroup_id: 0,
            cgroup: String::new(),
            namespaces: Namespaces::default(),
            runtime_helper: false,
            foreign_namespaces: Vec::new(),
            creds_beyond_start: None,
            exe_foreign: false,
        },
        container: None,
        data: Payload::ProcessFork { creator_pid: 0 },
        hook: String::new(),
        workload: None,
    }
}

/// Decode into `event`, reusing its strings' memory (replay decodes every event into the
/// one it finished with). On error `event` holds a mix of old and new fields.
pub fn decode_event_into(body: &[u8], event: &mut Event) -> Result<(), DecodeError> {
    let heap_len = body
        .get(..4)
        .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize)
        .ok_or_else(|| bad("event ends before its string length"))?;
    let heap = body
        .get(4..4 + heap_len)
        .ok_or_else(|| bad("the event's strings run past the record"))?;
    let heap = std::str::from_utf8(heap).map_err(|e| bad(format!("strings are not UTF-8: {e}")))?;
    let fixed = &body[4 + heap_len..];
    let mut d = Dec {
        b: fixed,
        pos: 0,
        heap,
        hpos: 0,
    };
    d.event_into(event)?;
    if d.pos != fixed.len() || d.hpos != heap.len() {
        return Err(bad(format!(
            "{} bytes left over after the event",
            fixed.len() - d.pos + heap.len() - d.hpos
        )));
    }
    Ok(())
}

/// Strings go to `heap`, everything else to `fixed`.
struct Enc<'a> {
    heap: &'a mut Vec<u8>,
    fixed: &'a mut Vec<u8>,
}

impl Enc<'_> {
    #[inline(always)]
    fn u8(&mut self, v: u8) {
        self.fixed.push(v);
    }
    #[inline(always)]
    fn bool(&mut self, v: bool) {
        self.fixed.push(u8::from(v));
    }
    #[inline(always)]
    fn u32(&mut self, v: u32) {
        self.fixed.extend_from_slice(&v.to_le_bytes());
    }
    #[inline(always)]
    fn i32(&mut self, v: i32) {
        self.fixed.extend_from_slice(&v.to_le_bytes());
    }
    #[inline(always)]
    fn u64(&mut self, v: u64) {
        self.fixed.extend_from_slice(&v.to_le_bytes());
    }
    #[inline(always)]
    fn i64(&mut self, v: i64) {
        self.fixed.extend_from_slice(&v.to_le_bytes());
    }
    #[inline(always)]
    fn len(&mut self, n: usize) {
        let mut b = [0u8; 10];
        let k = leb128(n as u64, &mut b);
        self.fixed.extend_from_slice(&b[..k]);
    }
    #[inline(always)]
    fn str(&mut self, s: &str) {
        self.len(s.len());
        self.heap.extend_from_slice(s.as_bytes());
    }
    #[inline(always)]
    fn opt<T>(&mut self, v: &Option<T>, f: impl FnOnce(&mut Self, &T)) {
        match v {
            None => self.u8(0),
            Some(x) => {
                self.u8(1);
                f(self, x);
            }
        }
    }
    #[inline(always)]
    fn vec<T>(&mut self, v: &[T], mut f: impl FnMut(&mut Self, &T)) {
        self.len(v.len());
        for x in v {
            f(self, x);
        }
    }
    #[inline(always)]
    fn map(&mut self, m: &BTreeMap<String, u64>) {
        self.len(m.len());
        for (k, v) in m {
            self.str(k);
            self.u64(*v);
        }
    }

    fn namespaces(&mut self, n: &Namespaces) {
        let Namespaces {
            mnt,
            pid,
            net,
            uts,
            ipc,
            user,
            cgroup,
            time,
        } = *n;
        for v in [mnt, pid, net, uts, ipc, user, cgroup, time] {
            self.u32(v);
        }
    }

    fn runtime(&mut self, r: Runtime) {
        self.u8(match r {
            Runtime::Docker => 0,
            Runtime::Containerd => 1,
            Runtime::CriO => 2,
            Runtime::Podman => 3,
            Runtime::Kubernetes => 4,
            Runtime::Unknown => 5,
        });
    }

    fn container(&mut self, c: &Container) {
        let Container {
            id,
            runtime,
            pod_uid,
        } = c;
        self.str(id);
        self.runtime(*runtime);
        self.opt(pod_uid, |e, s| e.str(s));
    }

    fn owner(&mut self, o: &NsOwner) {
        match o {
            NsOwner::Host => self.u8(0),
            NsOwner::Container { id, runtime } => {
                self.u8(1);
                self.str(id);
                self.runtime(*runtime);
            }
            NsOwner::Unknown => self.u8(2),
        }
    }

    fn ns_type(&mut self, t: NsType) {
        self.u8(t as u32 as u8);
    }

    fn joined(&mut self, j: &JoinedNamespace) {
        let JoinedNamespace {
            ns_type,
            inode,
            previous,
            owner,
        } = j;
        self.ns_type(*ns_type);
        self.u32(*inode);
        self.u32(*previous);
        self.owner(owner);
    }

    fn file(&mut self, f: &FileRef) {
        let FileRef {
            ino,
            dev,
            name,
            parent,
        } = f;
        self.u64(*ino);
        self.str(dev);
        self.str(name);
        self.str(parent);
    }

    fn target(&mut self, t: &TargetProcess) {
        let TargetProcess {
            pid,
            comm,
            exe,
            owner,
            pid_in_writer_ns,
        } = t;
        self.u32(*pid);
        self.str(comm);
        self.str(exe);
        self.owner(owner);
        self.bool(*pid_in_writer_ns);
    }

    fn process(&mut self, p: &Process) {
        let Process {
            pid,
            tid,
            ppid,
            start_time,
            comm,
            exe,
            args,
            uid,
            gid,
            cap_effective,
            cgroup_id,
            cgroup,
            namespaces,
            runtime_helper,
            foreign_namespaces,
            creds_beyond_start,
            exe_foreign,
        } = p;
        self.u32(*pid);
        self.u32(*tid);
        self.u32(*ppid);
        self.u64(*start_time);
        self.str(comm);
        self.str(exe);
        self.bool(*exe_foreign);
        self.vec(args, |e, s| e.str(s));
        self.u32(*uid);
        self.u32(*gid);
        self.opt(cap_effective, |e, v| e.u64(*v));
        self.u64(*cgroup_id);
        self.str(cgroup);
        self.namespaces(namespaces);
        self.bool(*runtime_helper);
        self.vec(foreign_namespaces, Self::joined);
        self.opt(creds_beyond_start, |e, c| {
            let CredsBeyondStart {
                gained,
                start_bounding,
                start_uid,
                init_cred,
            } = *c;
            e.u64(gained);
            e.u64(start_bounding);
            e.u32(start_uid);
            e.bool(init_cred);
        });
    }

    fn event(&mut self, ev: &Event) {
        let Event {
            id,
            time,
            ktime_ns,
            process,
            container,
            data,
            hook,
            workload,
        } = ev;
        self.u64(*id);
        self.str(time);
        self.u64(*ktime_ns);
        self.process(process);
        self.opt(container, Self::container);
        self.str(hook);
        self.payload(data);
        // Rare (recorded only with events that gave alerts) and open-ended (labels): JSON.
        self.opt(workload, |e, w| {
            e.str(&serde_json::to_string(w).expect("a workload serialises"));
        });
    }

    fn payload(&mut self, p: &Payload) {
        match p {
            Payload::ProcessExec {
                filename,
                truncated,
                usermode_helper,
                binary_container,
                outside_mount,
                image,
            } => {
                // Tag 41: an exec with its image's kernel facts and its mount (logs before the
                // mount facts used 40, before the image 0 only).
                self.u8(if image.is_some() { 41 } else { 0 });
                self.str(filename);
                self.bool(*truncated);
                self.bool(*usermode_helper);
                self.opt(binary_container, Self::container);
                self.vec(outside_mount, |e, o| {
                    let PathOutside {
                        which,
                        mnt_ns,
                        owner,
                    } = o;
                    e.u8(match which {
                        FsPath::Cwd => 0,
                        FsPath::Root => 1,
                    });
                    e.u32(*mnt_ns);
                    e.owner(owner);
                });
                if let Some(i) = image {
                    let ExecImage {
                        inode,
                        dev,
                        fs_magic,
                        nlink,
                        ctime_unix_ns,
                        root_dev,
                        container_start_unix_ns,
                        whole_fs,
                        host_root_fs,
                        foreign_mnt_ns,
                    } = i;
                    self.u64(*inode);
                    self.str(dev);
                    self.u32(*fs_magic);
                    self.u32(*nlink);
                    self.i64(*ctime_unix_ns);
                    self.str(root_dev);
                    self.opt(container_start_unix_ns, |e, t| e.i64(*t));
                    self.bool(*whole_fs);
                    self.bool(*host_root_fs);
                    self.opt(foreign_mnt_ns, Self::joined);
                }
            }
            Payload::ProcessFork { creator_pid } => {
                self.u8(1);
                self.u32(*creator_pid);
            }
            Payload::ProcessExit { exit_code } => {
                self.u8(2);
                self.i32(*exit_code);
            }
            Payload::Mount {
                call,
                ret,
                flags,
                source,
                target,
                fstype,
                host_pid_ns,
                host_cgroup_ns,
                source_owner,
                device,
                bound,
            } => {
                // Tag 70: a mount with what its bind attached (logs before it used 3 only).
                self.u8(if bound.is_some() { 70 } else { 3 });
                self.u32(*call as u32);
                self.i64(*ret);
                self.u64(*flags);
                self.str(source);
                self.str(target);
                self.str(fstype);
                self.bool(*host_pid_ns);
                self.bool(*host_cgroup_ns);
                self.opt(source_owner, Self::owner);
                self.opt(device, |e, s| e.str(s));
                if let Some(b) = bound {
                    let BoundSource {
                        file,
                        fs,
                        file_type,
                        rdev,
                        mountpoint,
                        onto_itself,
                    } = b;
                    self.file(file);
                    self.str(fs);
                    self.str(file_type);
                    self.str(rdev);
                    self.str(mountpoint);
                    self.bool(*onto_itself);
                }
            }
            // Tag 4 is the form before `fs_path` (still read).
            Payload::FileOpen {
                ret,
                flags,
                write,
                classes,
                fs,
                file_type,
                rdev,
                file,
                grandparent,
                path,
                fs_path,
                foreign_mnt_ns,
            } => {
                self.u8(67);
                self.i64(*ret);
                self.u64(*flags);
                self.bool(*write);
                self.vec(classes, |e, c| e.u8(open_class_id(*c)));
                self.str(fs);
                self.str(file_type);
                self.str(rdev);
                self.opt(file, Self::file);
                self.str(grandparent);
                self.str(path);
                self.opt(foreign_mnt_ns, Self::joined);
                self.str(fs_path);
            }
            Payload::SysctlWrite {
                name,
                value,
                namespaced,
                truncated,
            } => {
                self.u8(5);
                self.str(name);
                self.str(value);
                self.bool(*namespaced);
                self.bool(*truncated);
            }
            Payload::Madvise {
                start,
                len,
                advice,
                vm_flags,
                vm_start,
                vm_end,
                file,
            } => {
                self.u8(6);
                self.u64(*start);
                self.u64(*len);
                self.u32(*advice);
                self.u64(*vm_flags);
                self.u64(*vm_start);
                self.u64(*vm_end);
                self.file(file);
            }
            Payload::MemWrite {
                ret,
                addr,
                len,
                target,
                vma_found,
                vma_file_backed,
                vma_writable,
                vma_shared,
                vma_file,
            } => {
                self.u8(7);
                self.i64(*ret);
                self.u64(*addr);
                self.u64(*len);
                self.target(target);
                self.bool(*vma_found);
                self.bool(*vma_file_backed);
                self.bool(*vma_writable);
                self.bool(*vma_shared);
                self.opt(vma_file, Self::file);
            }
            Payload::EventsLost { lost } => {
                self.u8(8);
                self.map(lost);
            }
            Payload::EventsBudgeted { suppressed } => {
                self.u8(9);
                self.map(suppressed);
            }
            Payload::ProgramsDetached { programs } => {
                self.u8(10);
                self.vec(programs, |e, s| e.str(s));
            }
            Payload::AgentRestarted {
                previous_pid,
                previous_start,
                host_rebooted,
            } => {
                self.u8(11);
                self.u32(*previous_pid);
                self.str(previous_start);
                self.bool(*host_rebooted);
            }
            Payload::CowFault {
                addr,
                fault_flags,
                remote_mm,
                vm_flags,
                vm_start,
                vm_end,
                file,
            } => {
                self.u8(12);
                self.u64(*addr);
                self.u64(*fault_flags);
                self.bool(*remote_mm);
                self.u64(*vm_flags);
                self.u64(*vm_start);
                self.u64(*vm_end);
                self.file(file);
            }
            Payload::TaskChanged {
                change,
                before,
                lockdown,
            } => {
                self.u8(13);
                self.u32(*change as u32);
                self.opt(before, |e, b| {
                    let CredsBefore { uid, cap_effective } = *b;
                    e.u32(uid);
                    e.u64(cap_effective);
                });
                // Only a locked_down change carries it (older logs have none of those).
                if *change == TaskChange::LockedDown {
                    self.opt(lockdown, |e, l| {
                        e.str(&l.reason);
                        e.u32(l.value);
                    });
                }
            }
            Payload::ModuleRequest { module, wait } => {
                self.u8(42);
                self.str(module);
                self.bool(*wait);
            }
            Payload::Syscall {
                name,
                ret,
                args,
                target,
            } => {
                self.u8(14);
                self.u32(*name as u32);
                self.i64(*ret);
                for a in args {
                    self.u64(*a);
                }
                self.opt(target, Self::target);
            }
            Payload::PipeWrite { ret, fd, file } => {
                self.u8(15);
                self.i64(*ret);
                self.opt(fd, |e, v| e.u32(*v));
                self.file(file);
            }
            // Tag 16 is the form before abstract names and socket identity (still read).
            Payload::UnixConnect {
                ret,
                path,
                peer,
                abstract_name,
                host_net_ns,
                runtime_socket,
            } => {
                self.u8(65);
                self.i64(*ret);
                self.str(path);
                self.opt(peer, Self::file);
                self.bool(*abstract_name);
                self.bool(*host_net_ns);
                self.opt(runtime_socket, |e, s| e.str(s));
            }
            Payload::NetConnect {
                ret,
                addr,
                port,
                fd,
                dest,
                host_net_ns,
            } => {
                self.u8(66);
                self.i64(*ret);
                self.str(&addr.to_string());
                self.u32(u32::from(*port));
                self.u32(*fd);
                self.u8(*dest as u8);
                self.bool(*host_net_ns);
            }
            Payload::Namespace {
                syscall,
                ret,
                flags,
                flag_types,
                fd,
                before,
                joined,
            } => {
                self.u8(17);
                self.u8(match syscall {
                    NsSyscall::Setns => 0,
                    NsSyscall::Unshare => 1,
                    NsSyscall::Clone => 2,
                });
                self.i64(*ret);
                self.u64(*flags);
                self.vec(flag_types, |e, t| e.ns_type(*t));
                self.opt(fd, |e, v| e.i32(*v));
                self.namespaces(before);
                self.vec(joined, Self::joined);
            }
            Payload::ContainerStarted { source } => {
                self.u8(18);
                self.str(source);
            }
        }
    }
}

fn open_class_id(c: OpenClass) -> u8 {
    match c {
        OpenClass::Failed => 0,
        OpenClass::ProcEntry => 1,
        OpenClass::CgroupRelease => 2,
        OpenClass::Debugfs => 3,
        OpenClass::BinfmtMisc => 4,
        OpenClass::BlockDevice => 5,
        OpenClass::MemDevice => 6,
        OpenClass::RuntimeBinary => 7,
        OpenClass::ForeignMntNs => 8,
        OpenClass::UeventHelper => 9,
        OpenClass::UserfaultfdDevice => 10,
        OpenClass::SecurityPolicy => 11,
        OpenClass::KernelInterface => 12,
        OpenClass::Hardware => 13,
    }
}

fn open_class_of(id: u8) -> Option<OpenClass> {
    Some(match id {
        0 => OpenClass::Failed,
        1 => OpenClass::ProcEntry,
        2 => OpenClass::CgroupRelease,
        3 => OpenClass::Debugfs,
        4 => OpenClass::BinfmtMisc,
        5 => OpenClass::BlockDevice,
        6 => OpenClass::MemDevice,
        7 => OpenClass::RuntimeBinary,
        8 => OpenClass::ForeignMntNs,
        9 => OpenClass::UeventHelper,
        10 => OpenClass::UserfaultfdDevice,
        11 => OpenClass::SecurityPolicy,
        12 => OpenClass::KernelInterface,
        13 => OpenClass::Hardware,
        _ => return None,
    })
}

#[cold]
#[inline(never)]
fn ends_early(pos: usize) -> DecodeError {
    bad(format!("event ends early (at byte {pos})"))
}

struct Dec<'a> {
    b: &'a [u8],
    pos: usize,
    /// The event's strings, checked UTF-8 once, handed out in order.
    heap: &'a str,
    hpos: usize,
}

type R<T> = Result<T, DecodeError>;

impl<'a> Dec<'a> {
    #[inline(always)]
    fn take(&mut self, n: usize) -> R<&'a [u8]> {
        // `pos <= b.len()` always holds, so this cannot underflow.
        if n > self.b.len() - self.pos {
            return Err(ends_early(self.pos));
        }
        let s = &self.b[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    #[inline(always)]
    fn arr<const N: usize>(&mut self) -> R<[u8; N]> {
        Ok(self.take(N)?.try_into().expect("N bytes"))
    }
    #[inline(always)]
    fn u8(&mut self) -> R<u8> {
        Ok(self.arr::<1>()?[0])
    }
    #[inline(always)]
    fn bool(&mut self) -> R<bool> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(bad(format!("{b} is not a boolean"))),
        }
    }
    #[inline(always)]
    fn u32(&mut self) -> R<u32> {
        Ok(u32::from_le_bytes(self.arr()?))
    }
    #[inline(always)]
    fn i32(&mut self) -> R<i32> {
        Ok(i32::from_le_bytes(self.arr()?))
    }
    #[inline(always)]
    fn u64(&mut self) -> R<u64> {
        Ok(u64::from_le_bytes(self.arr()?))
    }
    #[inline(always)]
    fn i64(&mut self) -> R<i64> {
        Ok(i64::from_le_bytes(self.arr()?))
    }
    #[inline(always)]
    fn len(&mut self) -> R<usize> {
        let n = self.leb()?;
        // No count can exceed what is left of the record (every item takes a byte at
        // least): this bounds every allocation.
        if n > self.b.len() - self.pos {
            return Err(bad(format!("length {n} runs past the event")));
        }
        Ok(n)
    }
    #[inline(always)]
    fn leb(&mut self) -> R<usize> {
        let (mut v, mut shift) = (0u64, 0);
        loop {
            let b = self.u8()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                break;
            }
            shift += 7;
            if shift > 56 {
                return Err(bad("invalid length"));
            }
        }
        usize::try_from(v).map_err(|_| bad("length overflows"))
    }
    #[inline(always)]
    fn str_ref(&mut self) -> R<&'a str> {
        let n = self.leb()?;
        let end = self.hpos.saturating_add(n);
        // `get` also refuses a cut inside a character.
        let s = self.heap.get(self.hpos..end).ok_or_else(|| {
            bad(format!(
                "string of {n} bytes does not fit the event's strings"
            ))
        })?;
        self.hpos = end;
        Ok(s)
    }
    #[inline(always)]
    fn str(&mut self) -> R<String> {
        self.str_ref().map(str::to_owned)
    }
    #[inline(always)]
    fn str_into(&mut self, dst: &mut String) -> R<()> {
        let s = self.str_ref()?;
        dst.clear();
        dst.push_str(s);
        Ok(())
    }
    #[inline(always)]
    fn opt<T>(&mut self, f: impl FnOnce(&mut Self) -> R<T>) -> R<Option<T>> {
        match self.u8()? {
            0 => Ok(None),
            1 => f(self).map(Some),
            b => Err(bad(format!("{b} is not an option marker"))),
        }
    }
    #[inline(always)]
    fn vec<T>(&mut self, mut f: impl FnMut(&mut Self) -> R<T>) -> R<Vec<T>> {
        let n = self.len()?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(f(self)?);
        }
        Ok(v)
    }
    #[inline(always)]
    fn map(&mut self) -> R<BTreeMap<String, u64>> {
        let n = self.len()?;
        let mut m = BTreeMap::new();
        for _ in 0..n {
            let k = self.str()?;
            m.insert(k, self.u64()?);
        }
        Ok(m)
    }

    fn namespaces(&mut self) -> R<Namespaces> {
        // One bounds check for the eight inodes.
        let b: [u8; 32] = self.arr()?;
        let w = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        Ok(Namespaces {
            mnt: w(0),
            pid: w(4),
            net: w(8),
            uts: w(12),
            ipc: w(16),
            user: w(20),
            cgroup: w(24),
            time: w(28),
        })
    }

    fn runtime(&mut self) -> R<Runtime> {
        Ok(match self.u8()? {
            0 => Runtime::Docker,
            1 => Runtime::Containerd,
            2 => Runtime::CriO,
            3 => Runtime::Podman,
            4 => Runtime::Kubernetes,
            5 => Runtime::Unknown,
            b => return Err(bad(format!("unknown runtime {b}"))),
        })
    }

    fn container(&mut self) -> R<Container> {
        Ok(Container {
            id: self.str()?,
            runtime: self.runtime()?,
            pod_uid: self.opt(Self::str)?,
        })
    }

    fn container_into(&mut self, c: &mut Container) -> R<()> {
        let Container {
            id,
            runtime,
            pod_uid,
        } = c;
        self.str_into(id)?;
        *runtime = self.runtime()?;
        *pod_uid = self.opt(Self::str)?;
        Ok(())
    }

    fn owner(&mut self) -> R<NsOwner> {
        Ok(match self.u8()? {
            0 => NsOwner::Host,
            1 => NsOwner::Container {
                id: self.str()?,
                runtime: self.runtime()?,
            },
            2 => NsOwner::Unknown,
            b => return Err(bad(format!("unknown namespace owner {b}"))),
        })
    }

    fn ns_type(&mut self) -> R<NsType> {
        let b = self.u8()?;
        NsType::ALL
            .get(usize::from(b))
            .copied()
            .ok_or_else(|| bad(format!("unknown namespace type {b}")))
    }

    fn joined(&mut self) -> R<JoinedNamespace> {
        Ok(JoinedNamespace {
            ns_type: self.ns_type()?,
            inode: self.u32()?,
            previous: self.u32()?,
            owner: self.owner()?,
        })
    }

    /// A FileOpen payload: tag 67, or tag 4 (before `fs_path`) when `!with_fs_path`.
    fn file_open(&mut self, with_fs_path: bool) -> R<Payload> {
        Ok(Payload::FileOpen {
            ret: self.i64()?,
            flags: self.u64()?,
            write: self.bool()?,
            classes: self.vec(|d| {
                let b = d.u8()?;
                open_class_of(b).ok_or_else(|| bad(format!("unknown open class {b}")))
            })?,
            fs: self.str()?,
            file_type: self.str()?,
            rdev: self.str()?,
            file: self.opt(Self::file)?,
            grandparent: self.str()?,
            path: self.str()?,
            foreign_mnt_ns: self.opt(Self::joined)?,
            fs_path: if with_fs_path {
                self.str()?
            } else {
                String::new()
            },
        })
    }

    fn file(&mut self) -> R<FileRef> {
        Ok(FileRef {
            ino: self.u64()?,
            dev: self.str()?,
            name: self.str()?,
            parent: self.str()?,
        })
    }

    fn target(&mut self) -> R<TargetProcess> {
        Ok(TargetProcess {
            pid: self.u32()?,
            comm: self.str()?,
            exe: self.str()?,
            owner: self.owner()?,
            pid_in_writer_ns: self.bool()?,
        })
    }

    fn process_into(&mut self, p: &mut Process) -> R<()> {
        let Process {
            pid,
            tid,
            ppid,
            start_time,
            comm,
            exe,
            args,
            uid,
            gid,
            cap_effective,
            cgroup_id,
            cgroup,
            namespaces,
            runtime_helper,
            foreign_namespaces,
            creds_beyond_start,
            exe_foreign,
        } = p;
        *pid = self.u32()?;
        *tid = self.u32()?;
        *ppid = self.u32()?;
        *start_time = self.u64()?;
        self.str_into(comm)?;
        self.str_into(exe)?;
        *exe_foreign = self.bool()?;
        let n = self.len()?;
        args.truncate(n);
        for i in 0..n {
            match args.get_mut(i) {
                Some(a) => self.str_into(a)?,
                None => args.push(self.str()?),
            }
        }
        *uid = self.u32()?;
        *gid = self.u32()?;
        *cap_effective = self.opt(Self::u64)?;
        *cgroup_id = self.u64()?;
        self.str_into(cgroup)?;
        *namespaces = self.namespaces()?;
        *runtime_helper = self.bool()?;
        *foreign_namespaces = self.vec(Self::joined)?;
        *creds_beyond_start = self.opt(|d| {
            Ok(CredsBeyondStart {
                gained: d.u64()?,
                start_bounding: d.u64()?,
                start_uid: d.u32()?,
                init_cred: d.bool()?,
            })
        })?;
        Ok(())
    }

    fn event_into(&mut self, ev: &mut Event) -> R<()> {
        let Event {
            id,
            time,
            ktime_ns,
            process,
            container,
            data,
            hook,
            workload,
        } = ev;
        *id = self.u64()?;
        self.str_into(time)?;
        *ktime_ns = self.u64()?;
        self.process_into(process)?;
        match (self.u8()?, container.as_mut()) {
            (0, _) => *container = None,
            (1, Some(c)) => self.container_into(c)?,
            (1, None) => *container = Some(self.container()?),
            (b, _) => return Err(bad(format!("{b} is not an option marker"))),
        }
        self.str_into(hook)?;
        *data = self.payload()?;
        *workload = self.opt(|d| {
            let text = d.str()?;
            serde_json::from_str(&text).map_err(|e| bad(format!("bad workload record: {e}")))
        })?;
        Ok(())
    }

    fn call<T: TryFrom<u32>>(&mut self, what: &str) -> R<T> {
        let id = self.u32()?;
        T::try_from(id).map_err(|_| bad(format!("unknown {what} id {id}")))
    }

    fn payload(&mut self) -> R<Payload> {
        Ok(match self.u8()? {
            tag @ (0 | 40 | 41) => Payload::ProcessExec {
                filename: self.str()?,
                truncated: self.bool()?,
                usermode_helper: self.bool()?,
                binary_container: self.opt(Self::container)?,
                outside_mount: self.vec(|d| {
                    Ok(PathOutside {
                        which: match d.u8()? {
                            0 => FsPath::Cwd,
                            1 => FsPath::Root,
                            b => return Err(bad(format!("unknown fs path {b}"))),
                        },
                        mnt_ns: d.u32()?,
                        owner: d.owner()?,
                    })
                })?,
                image: if tag == 0 {
                    None
                } else {
                    Some(ExecImage {
                        inode: self.u64()?,
                        dev: self.str()?,
                        fs_magic: self.u32()?,
                        nlink: self.u32()?,
                        ctime_unix_ns: self.i64()?,
                        root_dev: self.str()?,
                        container_start_unix_ns: self.opt(Self::i64)?,
                        whole_fs: tag == 41 && self.bool()?,
                        host_root_fs: tag == 41 && self.bool()?,
                        foreign_mnt_ns: if tag == 41 {
                            self.opt(Self::joined)?
                        } else {
                            None
                        },
                    })
                },
            },
            1 => Payload::ProcessFork {
                creator_pid: self.u32()?,
            },
            2 => Payload::ProcessExit {
                exit_code: self.i32()?,
            },
            tag @ (3 | 70) => Payload::Mount {
                call: self.call::<MountCall>("mount call")?,
                ret: self.i64()?,
                flags: self.u64()?,
                source: self.str()?,
                target: self.str()?,
                fstype: self.str()?,
                host_pid_ns: self.bool()?,
                host_cgroup_ns: self.bool()?,
                source_owner: self.opt(Self::owner)?,
                device: self.opt(Self::str)?,
                bound: if tag == 70 {
                    Some(BoundSource {
                        file: self.file()?,
                        fs: self.str()?,
                        file_type: self.str()?,
                        rdev: self.str()?,
                        mountpoint: self.str()?,
                        onto_itself: self.bool()?,
                    })
                } else {
                    None
                },
            },
            4 => self.file_open(false)?,
            67 => self.file_open(true)?,
            5 => Payload::SysctlWrite {
                name: self.str()?,
                value: self.str()?,
                namespaced: self.bool()?,
                truncated: self.bool()?,
            },
            6 => Payload::Madvise {
                start: self.u64()?,
                len: self.u64()?,
                advice: self.u32()?,
                vm_flags: self.u64()?,
                vm_start: self.u64()?,
                vm_end: self.u64()?,
                file: self.file()?,
            },
            7 => Payload::MemWrite {
                ret: self.i64()?,
                addr: self.u64()?,
                len: self.u64()?,
                target: self.target()?,
                vma_found: self.bool()?,
                vma_file_backed: self.bool()?,
                vma_writable: self.bool()?,
                vma_shared: self.bool()?,
                vma_file: self.opt(Self::file)?,
            },
            8 => Payload::EventsLost { lost: self.map()? },
            9 => Payload::EventsBudgeted {
                suppressed: self.map()?,
            },
            10 => Payload::ProgramsDetached {
                programs: self.vec(Self::str)?,
            },
            11 => Payload::AgentRestarted {
                previous_pid: self.u32()?,
                previous_start: self.str()?,
                host_rebooted: self.bool()?,
            },
            12 => Payload::CowFault {
                addr: self.u64()?,
                fault_flags: self.u64()?,
                remote_mm: self.bool()?,
                vm_flags: self.u64()?,
                vm_start: self.u64()?,
                vm_end: self.u64()?,
                file: self.file()?,
            },
            13 => {
                let change = self.call::<TaskChange>("task change")?;
                let before = self.opt(|d| {
                    Ok(CredsBefore {
                        uid: d.u32()?,
                        cap_effective: d.u64()?,
                    })
                })?;
                let lockdown = if change == TaskChange::LockedDown {
                    self.opt(|d| {
                        Ok(Lockdown {
                            reason: d.str()?,
                            value: d.u32()?,
                        })
                    })?
                } else {
                    None
                };
                Payload::TaskChanged {
                    change,
                    before,
                    lockdown,
                }
            }
            42 => Payload::ModuleRequest {
                module: self.str()?,
                wait: self.bool()?,
            },
            14 => Payload::Syscall {
                name: self.call::<WatchedSyscall>("syscall")?,
                ret: self.i64()?,
                args: [self.u64()?, self.u64()?, self.u64()?, self.u64()?],
                target: self.opt(Self::target)?,
            },
            15 => Payload::PipeWrite {
                ret: self.i64()?,
                fd: self.opt(Self::u32)?,
                file: self.file()?,
            },
            16 => Payload::UnixConnect {
                ret: self.i64()?,
                path: self.str()?,
                peer: self.opt(Self::file)?,
                abstract_name: false,
                host_net_ns: false,
                runtime_socket: None,
            },
            65 => Payload::UnixConnect {
                ret: self.i64()?,
                path: self.str()?,
                peer: self.opt(Self::file)?,
                abstract_name: self.bool()?,
                host_net_ns: self.bool()?,
                runtime_socket: self.opt(Self::str)?,
            },
            66 => Payload::NetConnect {
                ret: self.i64()?,
                addr: self
                    .str()?
                    .parse()
                    .map_err(|_| bad("net_connect address"))?,
                port: u16::try_from(self.u32()?).map_err(|_| bad("net_connect port"))?,
                fd: self.u32()?,
                dest: match self.u8()? {
                    0 => NetDest::Loopback,
                    1 => NetDest::Node,
                    2 => NetDest::Other,
                    b => return Err(bad(format!("unknown net_connect destination {b}"))),
                },
                host_net_ns: self.bool()?,
            },
            17 => Payload::Namespace {
                syscall: match self.u8()? {
                    0 => NsSyscall::Setns,
                    1 => NsSyscall::Unshare,
                    2 => NsSyscall::Clone,
                    b => return Err(bad(format!("unknown namespace syscall {b}"))),
                },
                ret: self.i64()?,
                flags: self.u64()?,
                flag_types: self.vec(Self::ns_type)?,
                fd: self.opt(Self::i32)?,
                before: self.namespaces()?,
                joined: self.vec(Self::joined)?,
            },
            18 => Payload::ContainerStarted {
                source: self.str()?,
            },
            b => return Err(bad(format!("unknown event kind {b}"))),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::testing;

    #[test]
    fn records_frame_and_split() {
        let mut out = Vec::new();
        put_record(&mut out, TAG_JSON, |o| o.extend_from_slice(b"{}"));
        let big = vec![b'x'; 300];
        put_record(&mut out, TAG_JSON, |o| o.extend_from_slice(&big));
        let (tag, body, used) = next_record(&out).unwrap();
        assert_eq!((tag, body, used), (TAG_JSON, &b"{}"[..], 4));
        let (tag, body, used2) = next_record(&out[used..]).unwrap();
        assert_eq!((tag, body.len()), (TAG_JSON, 300));
        // 301 bytes (tag + body) take a 2-byte LEB128 length.
        assert_eq!(used2, 303);
        assert_eq!(used + used2, out.len());
        assert!(next_record(&out[used..used + 10]).is_err());
        assert!(next_record(&[0x80, 0x80, 0x80, 0x80, 0x80, 1]).is_err());
    }

    #[test]
    fn an_event_round_trips_and_damage_is_an_error_not_a_panic() {
        let joined = vec![JoinedNamespace {
            ns_type: NsType::Mnt,
            inode: 4026531840,
            previous: 4026532300,
            owner: NsOwner::Host,
        }];
        let e = testing::setns_event(testing::container_process(), 0, joined);
        let mut out = Vec::new();
        put_event(&mut out, &mut Vec::new(), &e);
        let (tag, body, used) = next_record(&out).unwrap();
        assert_eq!((tag, used), (TAG_EVENT, out.len()));
        assert_eq!(decode_event(body).unwrap(), e);
        // Every truncation and every single-byte change either fails or decodes to some
        // event; none panics.
        for n in 0..body.len() {
            assert!(decode_event(&body[..n]).is_err(), "cut at {n}");
        }
        for i in 0..body.len() {
            let mut b = body.to_vec();
            b[i] ^= 0xff;
            let _ = decode_event(&b);
        }
    }

    #[test]
    fn an_exec_image_round_trips_and_an_older_one_decodes_without_its_mount() {
        let image = ExecImage {
            inode: 77,
            dev: "254:0".into(),
            fs_magic: 0xef53,
            nlink: 1,
            ctime_unix_ns: 5,
            root_dev: "0:50".into(),
            container_start_unix_ns: Some(4),
            whole_fs: true,
            host_root_fs: true,
            foreign_mnt_ns: Some(JoinedNamespace {
                ns_type: NsType::Mnt,
                inode: 4026531840,
                previous: 4026532300,
                owner: NsOwner::Host,
            }),
        };
        let mut e = testing::setns_event(testing::container_process(), 0, Vec::new());
        e.data = Payload::ProcessExec {
            filename: "/bin/sh".into(),
            truncated: false,
            usermode_helper: false,
            binary_container: None,
            outside_mount: Vec::new(),
            image: Some(image.clone()),
        };
        let mut out = Vec::new();
        put_event(&mut out, &mut Vec::new(), &e);
        let (_, body, _) = next_record(&out).unwrap();
        assert_eq!(decode_event(body).unwrap(), e);
        // The same exec as a log before the mount facts wrote it: tag 40, no trailing fields.
        let mut old = image.clone();
        old.whole_fs = false;
        old.host_root_fs = false;
        old.foreign_mnt_ns = None;
        let Payload::ProcessExec { image: slot, .. } = &mut e.data else {
            unreachable!()
        };
        *slot = Some(old.clone());
        let mut out = Vec::new();
        put_event(&mut out, &mut Vec::new(), &e);
        let (_, body, _) = next_record(&out).unwrap();
        let at = body.iter().position(|&b| b == 41).expect("the exec tag");
        // Two bools and an absent option end the record.
        assert_eq!(&body[body.len() - 3..], &[0, 0, 0]);
        let mut older = body[..body.len() - 3].to_vec();
        older[at] = 40;
        assert_eq!(decode_event(&older).unwrap(), e);
    }

    #[test]
    fn a_file_open_round_trips_and_its_form_before_fs_path_still_decodes() {
        let mut e = testing::setns_event(testing::container_process(), 0, Vec::new());
        let open = |fs_path: &str| Payload::FileOpen {
            ret: 3,
            flags: 1,
            write: true,
            classes: vec![OpenClass::KernelInterface],
            fs: "sysfs".into(),
            file_type: "regular".into(),
            rdev: String::new(),
            file: None,
            grandparent: "printk".into(),
            path: "/sys/module/printk/parameters/time".into(),
            fs_path: fs_path.into(),
            foreign_mnt_ns: None,
        };
        let body = |e: &Event| {
            let mut out = Vec::new();
            put_event(&mut out, &mut Vec::new(), e);
            let (_, body, _) = next_record(&out).unwrap();
            body.to_vec()
        };
        e.data = open("/module/printk/parameters/time");
        assert_eq!(decode_event(&body(&e)).unwrap(), e);
        // The old form: tag 4 where 67 is, no fs_path (the empty string's one length byte
        // before the trailing workload byte).
        e.data = open("");
        let new = body(&e);
        let fixed = |b: &[u8]| {
            let heap = u32::from_le_bytes(b[..4].try_into().unwrap()) as usize;
            4 + heap
        };
        let mut fork = e.clone();
        fork.data = Payload::ProcessFork { creator_pid: 1 };
        let fork_body = body(&fork);
        let (at, fork_at) = (fixed(&new), fixed(&fork_body));
        let tag = at
            + (0..)
                .find(|i| new[at + i] != fork_body[fork_at + i])
                .unwrap();
        assert_eq!(new[tag], 67);
        let mut old = new.clone();
        old[tag] = 4;
        old.remove(old.len() - 2);
        assert_eq!(decode_event(&old).unwrap(), e);
    }

    #[test]
    fn block_checksum_covers_count_and_payload() {
        let mut block = vec![0u8; BLOCK_HEADER_LEN];
        put_record(&mut block, TAG_JSON, |o| o.extend_from_slice(b"{\"a\":1}"));
        seal_block(&mut block, 1);
        assert_eq!(&block[..4], &BLOCK_MAGIC);
        let crc = u32::from_le_bytes(block[12..16].try_into().unwrap());
        assert_eq!(crc, block_crc(1, &block[BLOCK_HEADER_LEN..]));
        assert_ne!(crc, block_crc(2, &block[BLOCK_HEADER_LEN..]));
    }
}
