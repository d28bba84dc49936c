//! The rotating event-log writer.
//!
//! Crash safety: whole lines are collected in one buffer and go to the kernel in one
//! `write_all` on an O_APPEND file when the caller flushes (the daemon does after every batch
//! it drained from the kernel and before every alert it writes, so an alert's events are on
//! disk before the alert), or when the buffer reaches [`FLUSH_BYTES`]. A SIGKILL loses at most
//! the lines of the batch in hand — events already taken from the ring buffers but not yet
//! logged, like those still in the ring buffers — and the next start cuts a partial last line
//! off. One write per batch instead of one per line is what lets the agent log hundreds of
//! thousands of events a second. A failed write (disk full) is cut back to the last
//! whole line, counted and logged; the agent goes on detecting. Rotation is a rename; the
//! fsyncs, compression and retention run on a low-priority thread, away from the event path.
//!
//! The log directory may hold what others planted: every file is opened with O_NOFOLLOW
//! (`safe_open`) and created 0640, truncation works on the open descriptor, rotation renames
//! only the inode the writer has open, and the compression thread neither reads nor writes
//! through a link.

use std::{
    fs::{self, File},
    io::{self, BufReader, Read, Seek, SeekFrom, Write},
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
        mpsc,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use serde::Serialize;
use tracing::{info, warn};

use super::{
    LogFormat,
    binary::{self, BLOCK_HEADER_LEN, BLOCK_MAGIC, FILE_HEADER_LEN, FILE_MAGIC, TAG_JSON},
    segments::{rotated_name, segment_of, with_suffix},
};
use crate::{
    model::{Event, LogHeader},
    safe_open::{self, open_append},
};

#[derive(Debug, Clone)]
pub struct EventLogConfig {
    /// The active segment; rotated ones are named after it.
    pub path: PathBuf,
    /// Rotate when the active segment would grow past this many bytes.
    pub max_bytes: u64,
    /// Rotated segments kept; older ones are deleted.
    pub keep: u32,
    /// The format of new segments. An existing active segment of the other format is
    /// rotated away first, so every file holds one format.
    pub format: LogFormat,
}

#[derive(Debug, thiserror::Error)]
pub enum EventLogError {
    #[error("cannot open the event log {path} for appending")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write the header of the event log {path}")]
    Header {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot start the event-log compression thread")]
    Thread(#[source] io::Error),
}

/// Counters of one writer's life (for logs and metrics).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct EventLogStats {
    pub lines: u64,
    pub bytes: u64,
    /// Lines lost to failed writes.
    pub write_errors: u64,
    pub rotations: u64,
    pub rotation_errors: u64,
    pub compressed: u64,
    pub compress_errors: u64,
    /// Rotated segments deleted by the retention limit.
    pub deleted: u64,
}

#[derive(Default)]
struct WorkerCounters {
    compressed: AtomicU64,
    compress_errors: AtomicU64,
    deleted: AtomicU64,
}

/// Buffered lines are written once they reach this many bytes, flush or not.
pub const FLUSH_BYTES: usize = 256 * 1024;

/// zstd level of rotated segments. Event logs are so repetitive that level 1 packs them
/// smaller than level 3 and faster: a 100 MiB segment of setns events went to 1.50 MB in
/// 53 ms at level 1 (1 MiB reads) against 1.88 MB in 90 ms at level 3 (8 KiB reads); the
/// integration tests' mixed logs to 236 KB against 255 KB. The compression thread shares
/// the cores with the event path.
const SEGMENT_ZSTD_LEVEL: i32 = 1;

/// Minimum time between two warnings about failing writes (the count says how many).
const WARN_EVERY: Duration = Duration::from_secs(10);

pub struct EventLog {
    cfg: EventLogConfig,
    /// The format written: `cfg.format`, unless an active segment of the other format could
    /// not be rotated away (then that file's format, so it stays readable).
    format: LogFormat,
    file: File,
    /// Bytes of whole lines in the active segment.
    len: u64,
    header: LogHeader,
    /// The active segment has no header yet (its write failed): written before the next line.
    needs_header: bool,
    /// A failed write may have left part of a line: cut back to `len` before the next one.
    dirty_tail: bool,
    /// After a failed rotation, grow this far before trying again (no retry per line).
    rotate_not_before: u64,
    next_seq: u64,
    line: Vec<u8>,
    /// The binary encoder's second buffer.
    scratch: Vec<u8>,
    /// Whole lines not yet written (see the module comment) and how many.
    pending: Vec<u8>,
    pending_lines: u64,
    stats: EventLogStats,
    last_warning: Option<Instant>,
    worker: Worker,
    counters: Arc<WorkerCounters>,
}

impl EventLog {
    /// Open (append to) the active segment and write a session header (`segment` 0).
    pub fn open(cfg: EventLogConfig, mut header: LogHeader) -> Result<Self, EventLogError> {
        let open_err = |source| EventLogError::Open {
            path: cfg.path.clone(),
            source,
        };
        let file = open_append(&cfg.path).map_err(open_err)?;
        let found = format_of(&file).map_err(open_err)?;
        let len = match found {
            LogFormat::Jsonl => cut_partial_tail(&file, &cfg.path),
            LogFormat::Binary => cut_partial_block(&file, &cfg.path),
        }
        .map_err(open_err)?;
        let next_seq = existing_segments(&cfg.path)
            .iter()
            .filter_map(|(seq, _)| *seq)
            .max()
            .map_or(1, |m| m + 1);
        let counters = Arc::new(WorkerCounters::default());
        let worker = Worker::start(cfg.path.clone(), cfg.keep, counters.clone())
            .map_err(EventLogError::Thread)?;
        header.segment = 0;
        let format = cfg.format;
        let mut log = EventLog {
            cfg,
            format,
            file,
            len,
            header,
            needs_header: true,
            dirty_tail: false,
            rotate_not_before: 0,
            next_seq,
            line: Vec::with_capacity(4096),
            scratch: Vec::with_capacity(1024),
            pending: Vec::with_capacity(FLUSH_BYTES + 4096),
            pending_lines: 0,
            stats: EventLogStats::default(),
            last_warning: None,
            worker,
            counters,
        };
        if log.len >= log.cfg.max_bytes || (log.len > 0 && found != log.format) {
            log.rotate();
            // A new agent session starts here, not a continuation of the last one.
            log.header.segment = 0;
        }
        if log.len > 0 && found != log.format {
            warn!(
                path = %log.cfg.path.display(),
                format = found.name(),
                "the event log holds another format and could not be rotated away: appending in its format"
            );
            log.format = found;
        }
        log.write_header().map_err(|source| EventLogError::Header {
            path: log.cfg.path.clone(),
            source,
        })?;
        // Finish what a crash interrupted: compress leftover segments, apply retention.
        log.worker.tidy();
        Ok(log)
    }

    /// The format this log writes.
    pub fn format(&self) -> LogFormat {
        self.format
    }

    /// Append one event (buffered until [`EventLog::flush`]): a JSON line or a binary record.
    /// Never fails: errors are counted and logged.
    pub fn write(&mut self, event: &Event) {
        let mut line = std::mem::take(&mut self.line);
        line.clear();
        match self.format {
            LogFormat::Binary => binary::put_event(&mut line, &mut self.scratch, event),
            LogFormat::Jsonl => {
                if let Err(e) = serde_json::to_writer(&mut line, event) {
                    self.failed(io::Error::other(e), 1);
                    self.line = line;
                    return;
                }
                line.push(b'\n');
            }
        }
        self.push(line);
    }

    /// Append any record as JSON: a line, or a JSON record of a binary log.
    pub fn write_json<T: Serialize>(&mut self, record: &T) {
        let mut line = std::mem::take(&mut self.line);
        line.clear();
        let encoded = match self.format {
            LogFormat::Jsonl => serde_json::to_writer(&mut line, record).map(|()| line.push(b'\n')),
            LogFormat::Binary => {
                let mut r = Ok(());
                binary::put_record(&mut line, TAG_JSON, |o| {
                    r = serde_json::to_writer(o, record);
                });
                r
            }
        };
        if let Err(e) = encoded {
            self.failed(io::Error::other(e), 1);
            self.line = line;
            return;
        }
        self.push(line);
    }

    /// Buffer one encoded record, rotating and flushing as needed.
    fn push(&mut self, line: Vec<u8>) {
        let grown = self.len + (self.pending.len() + line.len()) as u64;
        if grown > self.cfg.max_bytes
            && self.len + self.pending.len() as u64 > 0
            && self.len >= self.rotate_not_before
        {
            self.flush();
            if self.len > 0 {
                self.rotate();
            }
        }
        if self.needs_header
            && let Err(e) = self.write_header()
        {
            // Without its header the segment would not be a log: lose this line instead.
            self.failed(e, 1);
            self.line = line;
            return;
        }
        if self.pending.is_empty() && self.format == LogFormat::Binary {
            // Room for the block header, filled in when the block is written.
            self.pending.extend_from_slice(&[0; BLOCK_HEADER_LEN]);
        }
        self.pending.extend_from_slice(&line);
        self.pending_lines += 1;
        self.line = line;
        if self.pending.len() >= FLUSH_BYTES {
            self.flush();
        }
    }

    /// Write the buffered lines in one `write`. Never fails: a failed write loses (and
    /// counts) every line of the buffer and cuts the file back to its last whole line.
    pub fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let mut pending = std::mem::take(&mut self.pending);
        let lines = std::mem::take(&mut self.pending_lines);
        if self.format == LogFormat::Binary {
            binary::seal_block(&mut pending, lines as u32);
        }
        if let Err(e) = self.append(&pending, lines) {
            self.failed(e, lines);
        }
        self.pending = pending;
        self.pending.clear();
    }

    pub fn stats(&self) -> EventLogStats {
        EventLogStats {
            compressed: self.counters.compressed.load(Ordering::Relaxed),
            compress_errors: self.counters.compress_errors.load(Ordering::Relaxed),
            deleted: self.counters.deleted.load(Ordering::Relaxed),
            ..self.stats
        }
    }

    /// Write what is buffered, wait for the compression thread to finish and return the
    /// final counters.
    pub fn close(mut self) -> EventLogStats {
        self.flush();
        self.worker.stop();
        self.stats()
    }

    fn write_header(&mut self) -> io::Result<()> {
        let line = match self.format {
            LogFormat::Jsonl => {
                let mut line = serde_json::to_vec(&self.header).map_err(io::Error::other)?;
                line.push(b'\n');
                line
            }
            LogFormat::Binary => {
                // A new file starts with the file header; a later session appends a block.
                let mut out = Vec::with_capacity(512);
                if self.len == 0 {
                    out.extend_from_slice(&binary::file_header());
                }
                let block_at = out.len();
                out.extend_from_slice(&[0; BLOCK_HEADER_LEN]);
                let mut r = Ok(());
                binary::put_record(&mut out, TAG_JSON, |o| {
                    r = serde_json::to_writer(o, &self.header);
                });
                r.map_err(io::Error::other)?;
                binary::seal_block(&mut out[block_at..], 1);
                out
            }
        };
        self.append(&line, 1)?;
        self.needs_header = false;
        Ok(())
    }

    fn append(&mut self, bytes: &[u8], lines: u64) -> io::Result<()> {
        if self.dirty_tail {
            self.file.set_len(self.len)?;
            self.dirty_tail = false;
        }
        if let Err(e) = self.file.write_all(bytes) {
            // Cut what part of the line reached the file, so the log holds whole lines only.
            self.dirty_tail = self.file.set_len(self.len).is_err();
            return Err(e);
        }
        self.len += bytes.len() as u64;
        self.stats.lines += lines;
        self.stats.bytes += bytes.len() as u64;
        Ok(())
    }

    fn failed(&mut self, e: io::Error, lines: u64) {
        self.stats.write_errors += lines;
        let now = Instant::now();
        if self
            .last_warning
            .is_none_or(|t| now.duration_since(t) >= WARN_EVERY)
        {
            self.last_warning = Some(now);
            warn!(
                path = %self.cfg.path.display(),
                error = %e,
                lines_lost = self.stats.write_errors,
                "event log write failed: the event is lost from the log (detection goes on)"
            );
        }
    }

    /// Rename the active segment to its rotation number and start a new one with a
    /// continuation header. On failure the current segment keeps growing.
    fn rotate(&mut self) {
        match self.try_rotate() {
            Ok(seq) => {
                self.stats.rotations += 1;
                self.header.segment += 1;
                self.needs_header = true;
                self.rotate_not_before = 0;
                tracing::debug!(seq, "event log rotated");
                self.worker.tidy();
            }
            Err(e) => {
                self.stats.rotation_errors += 1;
                self.rotate_not_before = self.len + self.cfg.max_bytes;
                warn!(path = %self.cfg.path.display(), error = %e, "event log rotation failed; the active segment keeps growing");
            }
        }
    }

    fn try_rotate(&mut self) -> io::Result<u64> {
        // No fsync here: flushing a full segment (and the directory, which on ext4 flushes the
        // file's data too) stalled the event path for hundreds of milliseconds, long enough
        // for the kernel's ring buffers to overflow at 100k events/s. The compression thread
        // makes the rotated segment and the rename durable before it compresses.
        let seq = self.next_seq;
        let rotated = rotated_name(&self.cfg.path, seq);
        // Rename only the file this log writes: a link or another file put in its place is
        // not ours to number (and the compression thread would have to open it).
        if !is_same_file(&self.file, &self.cfg.path)? {
            return Err(io::Error::other(format!(
                "{} is no longer the file the agent writes (replaced, or a symbolic link); not rotating it",
                self.cfg.path.display()
            )));
        }
        fs::rename(&self.cfg.path, &rotated)?;
        match open_append(&self.cfg.path) {
            Ok(f) => self.file = f,
            Err(e) => {
                // Renaming back needs no new inode, so it works where creating did not.
                fs::rename(&rotated, &self.cfg.path)?;
                return Err(e);
            }
        }
        self.next_seq += 1;
        self.len = 0;
        Ok(seq)
    }
}

/// A SIGKILL mid-write leaves a partial last line; cut it off so the next header does not
/// follow garbage. Returns the length of the whole lines.
fn cut_partial_tail(file: &File, path: &Path) -> io::Result<u64> {
    let len = file.metadata()?.len();
    let mut reader = file;
    let mut end = len;
    let mut buf = vec![0u8; 64 * 1024];
    while end > 0 {
        let start = end.saturating_sub(buf.len() as u64);
        let chunk = &mut buf[..(end - start) as usize];
        reader.seek(SeekFrom::Start(start))?;
        reader.read_exact(chunk)?;
        if let Some(i) = chunk.iter().rposition(|&b| b == b'\n') {
            let whole = start + i as u64 + 1;
            if whole < len {
                break_tail(file, path, whole, len)?;
            }
            return Ok(whole);
        }
        end = start;
    }
    if len > 0 {
        break_tail(file, path, 0, len)?;
    }
    Ok(0)
}

/// The format of an existing active segment: binary when it starts with (a prefix of) the
/// binary magic, JSON Lines otherwise (an empty file is either: the caller writes its own).
fn format_of(file: &File) -> io::Result<LogFormat> {
    use std::os::unix::fs::FileExt as _;
    let mut head = [0u8; FILE_MAGIC.len()];
    let mut n = 0;
    while n < head.len() {
        match file.read_at(&mut head[n..], n as u64)? {
            0 => break,
            k => n += k,
        }
    }
    Ok(if n > 0 && FILE_MAGIC.starts_with(&head[..n]) {
        LogFormat::Binary
    } else {
        LogFormat::Jsonl
    })
}

/// The binary counterpart of [`cut_partial_tail`]: find the last whole, checksummed block
/// (searching back from the end, so opening a large segment reads little) and cut what
/// follows it. A file header cut short is cut to nothing.
fn cut_partial_block(file: &File, path: &Path) -> io::Result<u64> {
    use std::os::unix::fs::FileExt as _;
    let len = file.metadata()?.len();
    let header_ok = len >= FILE_HEADER_LEN as u64 && {
        let mut h = [0u8; FILE_HEADER_LEN];
        file.read_exact_at(&mut h, 0)?;
        h[..8] == FILE_MAGIC
    };
    if !header_ok {
        if len > 0 {
            break_tail(file, path, 0, len)?;
        }
        return Ok(0);
    }
    let body = len - FILE_HEADER_LEN as u64;
    let mut window: u64 = 1 << 20;
    loop {
        let size = window.min(body);
        let start = len - size;
        let mut buf = vec![0u8; size as usize];
        file.read_exact_at(&mut buf, start)?;
        // The rightmost block that is whole and checksummed ends the good part.
        let mut end = buf.len();
        while let Some(i) = memchr::memmem::rfind(&buf[..end], &BLOCK_MAGIC) {
            if let Some(whole) = whole_block(&buf[i..]) {
                let whole = start + (i + whole) as u64;
                if whole < len {
                    break_tail(file, path, whole, len)?;
                }
                return Ok(whole);
            }
            end = i + BLOCK_MAGIC.len() - 1;
            if end < BLOCK_MAGIC.len() {
                break;
            }
        }
        if size == body {
            // No whole block at all: keep the file header only.
            let whole = FILE_HEADER_LEN as u64;
            if whole < len {
                break_tail(file, path, whole, len)?;
            }
            return Ok(whole);
        }
        window = window.saturating_mul(4);
    }
}

/// The length of the block at the start of `b` when it is whole and its checksum holds.
fn whole_block(b: &[u8]) -> Option<usize> {
    let h = b.get(..BLOCK_HEADER_LEN)?;
    let word = |i: usize| u32::from_le_bytes(h[i..i + 4].try_into().expect("4 bytes"));
    let total = BLOCK_HEADER_LEN.checked_add(word(4) as usize)?;
    let payload = b.get(BLOCK_HEADER_LEN..total)?;
    (binary::block_crc(word(8), payload) == word(12)).then_some(total)
}

fn break_tail(file: &File, path: &Path, whole: u64, len: u64) -> io::Result<()> {
    warn!(path = %path.display(), bytes = len - whole, "cutting a partial last line (the agent was killed while writing it)");
    file.set_len(whole)
}

/// `path` (not followed if a link) is the inode `file` has open.
fn is_same_file(file: &File, path: &Path) -> io::Result<bool> {
    use std::os::unix::fs::MetadataExt as _;
    let (open, named) = (file.metadata()?, fs::symlink_metadata(path)?);
    Ok(named.is_file() && open.dev() == named.dev() && open.ino() == named.ino())
}

fn sync_dir(path: &Path) {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    // Makes the rename durable; a failure only weakens durability after a power loss.
    if let Err(e) = File::open(dir).and_then(|d| d.sync_all()) {
        tracing::debug!(error = %e, "fsync of the log directory failed");
    }
}

/// Rotated segments of `base` on disk: (rotation number, path); `.zst.tmp` leftovers have none.
fn existing_segments(base: &Path) -> Vec<(Option<u64>, PathBuf)> {
    let dir = match base.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let Some(name) = base.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return Vec::new();
    };
    let prefix = format!("{name}.");
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        if !file_name.starts_with(&prefix) {
            continue;
        }
        let path = entry.path();
        if file_name.ends_with(".zst.tmp") {
            out.push((None, path));
            continue;
        }
        let seg = segment_of(&path);
        if seg.seq.is_some() && seg.base.file_name() == base.file_name() {
            out.push((seg.seq, path));
        }
    }
    out
}

/// The compression thread. Every request means "make the directory right": delete
/// temp leftovers, apply retention, compress plain rotated segments, oldest first. That is
/// idempotent, so requests coalesce and a crash at any point is repaired by the next run.
struct Worker {
    tx: Option<mpsc::Sender<()>>,
    handle: Option<JoinHandle<()>>,
}

impl Worker {
    fn start(base: PathBuf, keep: u32, counters: Arc<WorkerCounters>) -> io::Result<Worker> {
        let (tx, rx) = mpsc::channel::<()>();
        let handle = std::thread::Builder::new()
            .name("eventlog-zstd".into())
            .spawn(move || {
                lower_priority();
                while rx.recv().is_ok() {
                    while rx.try_recv().is_ok() {}
                    tidy(&base, keep, &counters);
                }
            })?;
        Ok(Worker {
            tx: Some(tx),
            handle: Some(handle),
        })
    }

    fn tidy(&self) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(());
        }
    }

    fn stop(&mut self) {
        self.tx.take();
        if let Some(h) = self.handle.take()
            && h.join().is_err()
        {
            warn!("the event-log compression thread panicked");
        }
    }
}

impl Drop for EventLog {
    fn drop(&mut self) {
        self.flush();
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Compression must never compete with the event path: nice 10 for this thread only (the
/// nice value is per thread on Linux).
fn lower_priority() {
    // SAFETY: setpriority on our own thread id; no memory is passed.
    unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 10);
    }
}

fn tidy(base: &Path, keep: u32, counters: &WorkerCounters) {
    let mut segments: Vec<(u64, PathBuf)> = Vec::new();
    for (seq, path) in existing_segments(base) {
        match seq {
            Some(seq) => segments.push((seq, path)),
            // Only this thread compresses: a temp file is a crash's leftover.
            None => drop(fs::remove_file(&path)),
        }
    }
    segments.sort();
    let mut seqs: Vec<u64> = segments.iter().map(|(s, _)| *s).collect();
    seqs.dedup();
    let excess = seqs.len().saturating_sub(keep as usize);
    let cutoff = seqs.get(excess).copied().unwrap_or(u64::MAX);
    for (seq, path) in &segments {
        if *seq < cutoff {
            match fs::remove_file(path) {
                Ok(()) => {
                    counters.deleted.fetch_add(1, Ordering::Relaxed);
                    info!(path = %path.display(), "event log segment deleted (retention)");
                }
                Err(e) => {
                    warn!(path = %path.display(), error = %e, "cannot delete an old event log segment");
                }
            }
            continue;
        }
        if segment_of(path).compressed {
            continue;
        }
        let packed = with_suffix(path, ".zst");
        // Not `exists()`: that follows a link, and a link planted at the .zst name would
        // make this delete the only copy of the segment.
        if fs::symlink_metadata(&packed).is_ok_and(|m| m.is_file()) {
            // Compressed before a crash, not yet deleted: the .zst is complete (renamed last).
            let _ = fs::remove_file(path);
            continue;
        }
        match compress(path, &packed) {
            Ok(()) => {
                counters.compressed.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                counters.compress_errors.fetch_add(1, Ordering::Relaxed);
                warn!(path = %path.display(), error = %e, "cannot compress a rotated event log segment; it stays uncompressed (still readable)");
            }
        }
    }
}

fn compress(plain: &Path, packed: &Path) -> io::Result<()> {
    let tmp = with_suffix(plain, ".zst.tmp");
    let result = (|| {
        // A link planted at a segment name is refused, not read into a log file.
        let input = safe_open::open_read(plain)?;
        // The rotation left the segment's data and its rename to this thread to make durable.
        input.sync_all()?;
        sync_dir(plain);
        let out = safe_open::create_new(&tmp)?;
        let mut enc = zstd::stream::write::Encoder::new(out, SEGMENT_ZSTD_LEVEL)?;
        // Lets a reader detect a damaged segment instead of replaying wrong bytes.
        enc.include_checksum(true)?;
        io::copy(&mut BufReader::with_capacity(1 << 20, input), &mut enc)?;
        enc.finish()?.sync_all()?;
        fs::rename(&tmp, packed)?;
        sync_dir(packed);
        fs::remove_file(plain)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}
