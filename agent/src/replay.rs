//! Replay recorded event logs through the same engine the daemon runs.
//!
//! Exactness: the engine sees every event, in log order, with the session boundaries the live
//! agent had (a fresh engine at each agent start, one engine across rotated segments), so the
//! alerts equal the live alert log byte for byte for the same rule set. Filters apply to the
//! alerts only, never to the events the engine sees.
//!
//! Bad input never panics. By default damaged lines are reported (file:line, reason) and
//! skipped; `strict` makes them fatal. What cannot be skipped is always an error: a file that
//! is not an event log at all, or a schema version this build does not read.

use std::{
    io,
    path::{Path, PathBuf},
};

use serde::Deserialize;
use time::{OffsetDateTime, format_description::well_known::Rfc3339};
use tracing::warn;

use crate::{
    coalesce::Coalescer,
    detect::{Alert, Engine, Severity},
    eventlog::{
        self, BlockItem, BlockReader, LineReader, LogFormat, MAX_LINE_BYTES, RawLine,
        binary::{self, FORMAT_VERSION, TAG_EVENT, TAG_JSON},
    },
    identity::Identity,
    model::{Event, LOG_FORMAT, LOG_SCHEMA_VERSION, LogHeader},
};

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("cannot open event log {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}:{line}: cannot read: {source}")]
    Read {
        path: String,
        line: u64,
        #[source]
        source: io::Error,
    },
    #[error("{path}: empty file, not an escapewatch event log (it starts with a header line)")]
    Empty { path: String },
    #[error(
        "{path}:{line}: not an escapewatch event log: the first line must be its header ({reason})"
    )]
    NoHeader {
        path: String,
        line: u64,
        reason: String,
    },
    #[error(
        "{path}:{line}: event log schema version {found}, but this escapewatch reads version {expected}; use the escapewatch release that wrote the log"
    )]
    Version {
        path: String,
        line: u64,
        found: u32,
        expected: u32,
    },
    #[error("{path}:{line}: corrupt event line: {reason}")]
    Corrupt {
        path: String,
        line: u64,
        reason: String,
    },
    #[error(
        "{path}: binary event log format version {found}, but this escapewatch reads version {expected}; use the escapewatch release that wrote the log"
    )]
    FormatVersion {
        path: String,
        found: u32,
        expected: u32,
    },
    #[error(
        "{path}: byte {offset}: damaged block ({reason}); {skipped} bytes passed over to the next good block"
    )]
    Block {
        path: String,
        offset: u64,
        skipped: u64,
        reason: String,
    },
    #[error("{path}: byte {offset}: record {record}: corrupt record: {reason}")]
    BadRecord {
        path: String,
        offset: u64,
        record: u64,
        reason: String,
    },
}

/// One line of an event log.
#[derive(Debug)]
// A header is one line per segment: its size costs nothing; boxing it would change every
// reader of `Record::Header`.
#[allow(clippy::large_enum_variant)]
pub enum Record {
    /// A segment starts: a new agent session (`segment` 0) or a rotation's continuation.
    Header(LogHeader),
    Event(Box<Event>),
}

#[derive(Debug, PartialEq, Eq)]
pub enum ParseLineError {
    Corrupt(String),
    Version(u32),
}

/// Just enough of a header to check its version before reading the rest: a newer version
/// may have fields this build does not know.
#[derive(Deserialize)]
struct HeaderProbe {
    format: String,
    schema_version: u32,
}

/// `None` for a blank line.
fn parse_nonblank(line: &[u8]) -> Option<Result<Record, ParseLineError>> {
    (!line.iter().all(u8::is_ascii_whitespace)).then(|| parse_line(line))
}

/// Parse one line (without its newline).
pub fn parse_line(line: &[u8]) -> Result<Record, ParseLineError> {
    if line.starts_with(b"{\"format\"") {
        let probe: HeaderProbe =
            serde_json::from_slice(line).map_err(|e| ParseLineError::Corrupt(e.to_string()))?;
        if probe.format != LOG_FORMAT {
            return Err(ParseLineError::Corrupt(format!(
                "header format is {:?}, expected {LOG_FORMAT:?}",
                probe.format
            )));
        }
        if probe.schema_version != LOG_SCHEMA_VERSION {
            return Err(ParseLineError::Version(probe.schema_version));
        }
        return serde_json::from_slice(line)
            .map(Record::Header)
            .map_err(|e| ParseLineError::Corrupt(e.to_string()));
    }
    // One UTF-8 check of the whole line (a fast ASCII scan) instead of one per string: 14 %
    // fewer instructions per event than `from_slice` (callgrind, recorded fixture events).
    let text = std::str::from_utf8(line)
        .map_err(|e| ParseLineError::Corrupt(format!("the line is not UTF-8: {e}")))?;
    serde_json::from_str::<Event>(text)
        .map(|e| Record::Event(Box::new(e)))
        .map_err(|e| ParseLineError::Corrupt(e.to_string()))
}

/// What reading went through.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReadStats {
    pub files: u64,
    pub lines: u64,
    /// Lines skipped (corrupt, too long, truncated) and files skipped (empty, unreadable).
    pub warnings: u64,
    /// The first warnings, for callers that show or test them.
    pub first_warnings: Vec<String>,
    /// Damaged blocks of binary logs (each also a warning).
    pub damaged_blocks: u64,
}

const KEPT_WARNINGS: usize = 100;

struct OpenFile {
    /// Shared, so naming the file in a message costs no copy per line.
    name: std::sync::Arc<str>,
    src: Source,
    saw_header: bool,
    saw_line: bool,
    /// A damaged block went by: events may follow a header that was lost with it.
    saw_damage: bool,
}

/// A file's reader, by its format.
enum Source {
    Lines(LineReader),
    Blocks(BlockReader),
}

impl Source {
    /// Line number (JSON Lines) or record number (binary) of the record last returned.
    fn position(&self) -> u64 {
        match self {
            Source::Lines(l) => l.line_no,
            Source::Blocks(b) => b.record_no,
        }
    }
}

/// Every record of a list of logs, in order (rotated segments oldest first), with bad input
/// reported or fatal as `strict` says.
pub struct LogStream {
    paths: Vec<PathBuf>,
    next_path: usize,
    current: Option<OpenFile>,
    strict: bool,
    /// Read in place of standard input (`-`), from its start each time.
    stdin: Option<std::fs::File>,
    /// An event handed back ([`LogStream::recycle`]): the next binary one is decoded into it.
    spare: Option<Box<Event>>,
    pub stats: ReadStats,
}

impl LogStream {
    pub fn new(paths: &[PathBuf], strict: bool) -> Self {
        LogStream {
            paths: eventlog::order_paths(paths),
            next_path: 0,
            current: None,
            strict,
            stdin: None,
            spare: None,
            stats: ReadStats::default(),
        }
    }

    /// Read `-` from `file` (a copy of standard input kept for a second pass).
    pub fn with_stdin(mut self, file: std::fs::File) -> Self {
        self.stdin = Some(file);
        self
    }

    /// Give back an event the caller is done with: binary logs decode the next one into its
    /// memory instead of allocating.
    pub fn recycle(&mut self, event: Box<Event>) {
        self.spare = Some(event);
    }

    /// Where the record last returned came from.
    pub fn position(&self) -> Option<(&str, u64)> {
        self.current.as_ref().map(|f| (&*f.name, f.src.position()))
    }

    fn warn(&mut self, message: String) {
        warn!("{message}");
        self.stats.warnings += 1;
        if self.stats.first_warnings.len() < KEPT_WARNINGS {
            self.stats.first_warnings.push(message);
        }
    }

    /// Report a skippable problem; fatal under `strict`.
    fn skip(&mut self, e: ReplayError) -> Result<(), ReplayError> {
        if self.strict {
            return Err(e);
        }
        self.warn(format!("{e}; skipped (--strict makes this fatal)"));
        Ok(())
    }

    pub fn next_record(&mut self) -> Option<Result<Record, ReplayError>> {
        loop {
            if self.current.is_none() {
                let path = self.paths.get(self.next_path)?.clone();
                self.next_path += 1;
                match open(&path, self.stdin.as_ref()) {
                    Ok(f) => {
                        self.stats.files += 1;
                        self.current = Some(f);
                    }
                    Err(e) => return Some(Err(e)),
                }
            }
            match self.step() {
                Ok(Some(r)) => return Some(Ok(r)),
                Ok(None) => {}
                Err(e) => {
                    self.current = None;
                    self.next_path = self.paths.len();
                    return Some(Err(e));
                }
            }
        }
    }

    /// One line of the current file: a record, nothing (skipped, or the file ended), or a
    /// fatal error.
    fn step(&mut self) -> Result<Option<Record>, ReplayError> {
        let file = self.current.as_mut().expect("a file is open");
        let lines = match &mut file.src {
            Source::Lines(l) => l,
            Source::Blocks(_) => return self.step_binary(),
        };
        let name = file.name.clone();
        let saw_header = file.saw_header;
        let saw_line = std::mem::replace(&mut file.saw_line, true);
        // Parse while the line is borrowed from the reader's buffer (no copy per line).
        let (parsed, truncated, len) = match lines.next_line() {
            None => {
                self.current = None;
                if !saw_line {
                    self.skip(ReplayError::Empty {
                        path: name.to_string(),
                    })?;
                }
                return Ok(None);
            }
            Some(Err(source)) => {
                let line = lines.line_no + 1;
                self.current = None;
                self.skip(ReplayError::Read {
                    path: name.to_string(),
                    line,
                    source,
                })?;
                return Ok(None);
            }
            Some(Ok(RawLine::TooLong { bytes })) => {
                let line = lines.line_no;
                let reason =
                    format!("line of {bytes} bytes, longer than the {MAX_LINE_BYTES}-byte limit");
                return self
                    .bad_line(&name, line, saw_header, reason)
                    .map(|()| None);
            }
            Some(Ok(RawLine::Line(b))) => (parse_nonblank(b), false, b.len()),
            Some(Ok(RawLine::Truncated(b))) => (parse_nonblank(b), true, b.len()),
        };
        let line_no = lines.line_no;
        self.stats.lines += 1;
        match parsed {
            None => Ok(None),
            Some(Ok(Record::Event(_))) if !saw_header => Err(ReplayError::NoHeader {
                path: name.to_string(),
                line: line_no,
                reason: "it is an event".into(),
            }),
            Some(Ok(r)) => {
                if matches!(r, Record::Header(_)) {
                    file.saw_header = true;
                }
                Ok(Some(r))
            }
            Some(Err(ParseLineError::Version(found))) => Err(ReplayError::Version {
                path: name.to_string(),
                line: line_no,
                found,
                expected: LOG_SCHEMA_VERSION,
            }),
            Some(Err(ParseLineError::Corrupt(_))) if truncated => {
                // What a SIGKILL mid-write leaves (or a log still being written): expected,
                // so a warning even under --strict.
                self.warn(format!(
                    "{name}:{line_no}: truncated last line ({len} bytes, no newline): the writer stopped mid-line; skipped"
                ));
                Ok(None)
            }
            Some(Err(ParseLineError::Corrupt(reason))) => self
                .bad_line(&name, line_no, saw_header, reason)
                .map(|()| None),
        }
    }

    /// One item of the current binary file: a record, nothing (skipped, or the file ended),
    /// or a fatal error.
    fn step_binary(&mut self) -> Result<Option<Record>, ReplayError> {
        let spare = self.spare.take();
        let file = self.current.as_mut().expect("a file is open");
        let Source::Blocks(blocks) = &mut file.src else {
            unreachable!("step_binary on a JSON Lines file")
        };
        let path = || file.name.to_string();
        let (tag, parsed, offset) = match blocks.next_item() {
            None => {
                let empty = !file.saw_header && !file.saw_damage;
                let name = file.name.to_string();
                self.current = None;
                if empty {
                    self.skip(ReplayError::Empty { path: name })?;
                }
                return Ok(None);
            }
            Some(Err(source)) => {
                let line = blocks.record_no + 1;
                let path = path();
                self.current = None;
                self.skip(ReplayError::Read { path, line, source })?;
                return Ok(None);
            }
            Some(Ok(BlockItem::Version(found))) => {
                return Err(ReplayError::FormatVersion {
                    path: path(),
                    found,
                    expected: FORMAT_VERSION,
                });
            }
            Some(Ok(BlockItem::Damaged {
                offset,
                skipped,
                reason,
            })) => {
                file.saw_damage = true;
                let e = ReplayError::Block {
                    path: path(),
                    offset,
                    skipped,
                    reason,
                };
                self.stats.damaged_blocks += 1;
                self.skip(e)?;
                return Ok(None);
            }
            Some(Ok(BlockItem::Truncated { offset, bytes })) => {
                // What a SIGKILL mid-write leaves (or a log being written): a warning even
                // under --strict, as a truncated last line is.
                let message = format!(
                    "{}: byte {offset}: truncated last block ({bytes} bytes): the writer stopped mid-write; skipped",
                    file.name
                );
                self.warn(message);
                return Ok(None);
            }
            Some(Ok(BlockItem::Record { tag, body, offset })) => {
                let parsed = match tag {
                    TAG_EVENT => {
                        let mut event = spare.unwrap_or_else(|| Box::new(binary::blank_event()));
                        binary::decode_event_into(body, &mut event)
                            .map(|()| Record::Event(event))
                            .map_err(|e| ParseLineError::Corrupt(e.0))
                    }
                    TAG_JSON => parse_line(body),
                    t => Err(ParseLineError::Corrupt(format!("unknown record tag {t}"))),
                };
                (tag, parsed, offset)
            }
        };
        self.stats.lines += 1;
        let record = blocks.record_no;
        match parsed {
            Ok(Record::Event(_)) if !file.saw_header && !file.saw_damage => {
                Err(ReplayError::NoHeader {
                    path: path(),
                    line: record,
                    reason: "it is an event".into(),
                })
            }
            Ok(r) => {
                if matches!(r, Record::Header(_)) {
                    file.saw_header = true;
                }
                Ok(Some(r))
            }
            Err(ParseLineError::Version(found)) => Err(ReplayError::Version {
                path: path(),
                line: record,
                found,
                expected: LOG_SCHEMA_VERSION,
            }),
            Err(ParseLineError::Corrupt(reason)) => {
                let e = ReplayError::BadRecord {
                    path: path(),
                    offset,
                    record,
                    reason: if tag == TAG_JSON {
                        format!("JSON record: {reason}")
                    } else {
                        reason
                    },
                };
                if !file.saw_header && !file.saw_damage {
                    return Err(e);
                }
                self.skip(e).map(|()| None)
            }
        }
    }

    fn bad_line(
        &mut self,
        name: &str,
        line: u64,
        saw_header: bool,
        reason: String,
    ) -> Result<(), ReplayError> {
        if !saw_header {
            // Garbage before any header: this file is not an event log (an alert log given by
            // mistake, a binary): no point reading on.
            return Err(ReplayError::NoHeader {
                path: name.to_owned(),
                line,
                reason,
            });
        }
        self.skip(ReplayError::Corrupt {
            path: name.to_owned(),
            line,
            reason,
        })
    }
}

fn open(path: &Path, stdin: Option<&std::fs::File>) -> Result<OpenFile, ReplayError> {
    let src = match stdin {
        Some(copy) if path == Path::new("-") => copy.try_clone().and_then(|mut f| {
            std::io::Seek::rewind(&mut f)?;
            eventlog::open_stream(Box::new(f))
        }),
        _ => eventlog::open_input(path),
    }
    .map_err(|source| ReplayError::Open {
        path: path.to_owned(),
        source,
    })?;
    // A read error here (a damaged zstd frame at the start) is reported when the first
    // record is read, as it is for any later read: skipped unless strict.
    let (format, src) = eventlog::sniff(src).unwrap_or_else(|e| {
        let failing: Box<dyn std::io::BufRead + Send> = Box::new(std::io::BufReader::new(
            FailingRead(e.kind(), e.to_string()),
        ));
        (LogFormat::Jsonl, failing)
    });
    Ok(OpenFile {
        name: if path == Path::new("-") {
            "<stdin>".into()
        } else {
            path.display().to_string().into()
        },
        src: match format {
            LogFormat::Jsonl => Source::Lines(LineReader::new(src)),
            LogFormat::Binary => Source::Blocks(BlockReader::new(src)),
        },
        saw_header: false,
        saw_line: false,
        saw_damage: false,
    })
}

/// A reader whose every read fails with (a copy of) the error it was made with.
struct FailingRead(io::ErrorKind, String);

impl io::Read for FailingRead {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        Err(io::Error::new(self.0, self.1.clone()))
    }
}

/// Which alerts to print. Empty lists match everything.
#[derive(Debug, Default, Clone)]
pub struct AlertFilter {
    pub since: Option<OffsetDateTime>,
    pub until: Option<OffsetDateTime>,
    /// Container ids or prefixes of them; `host` matches alerts outside any container.
    pub containers: Vec<String>,
    pub rules: Vec<String>,
    /// Minimum severity.
    pub severity: Option<Severity>,
}

impl AlertFilter {
    pub fn matches(&self, alert: &Alert) -> bool {
        if !self.rules.is_empty() && !self.rules.contains(&alert.rule) {
            return false;
        }
        if self.severity.is_some_and(|min| alert.severity < min) {
            return false;
        }
        if !self.containers.is_empty() {
            let id = alert.container.as_ref().map(|c| c.id.as_str());
            if !self
                .containers
                .iter()
                .any(|want| container_matches(want, id))
            {
                return false;
            }
        }
        if self.since.is_some() || self.until.is_some() {
            // An alert time that does not parse cannot be placed: a time filter drops it.
            let Ok(t) = OffsetDateTime::parse(&alert.time, &Rfc3339) else {
                return false;
            };
            if self.since.is_some_and(|s| t < s) || self.until.is_some_and(|u| t > u) {
                return false;
            }
        }
        true
    }
}

/// `want` is a container id, a prefix of one (docker's 12-character short ids), or `host`.
pub fn container_matches(want: &str, id: Option<&str>) -> bool {
    match id {
        None => want == "host",
        Some(id) => !want.is_empty() && id.starts_with(want),
    }
}

#[derive(Debug, thiserror::Error)]
#[error(
    "{value:?} is not a time: give RFC 3339 (2026-11-23T01:02:03Z, with an offset or fraction if you like), 2026-11-23T01:02:03 (UTC) or 2026-11-23"
)]
pub struct TimeArgError {
    pub value: String,
}

/// A `--since`/`--until` value: RFC 3339, or a UTC date-time / date without an offset.
pub fn parse_time_arg(value: &str) -> Result<OffsetDateTime, TimeArgError> {
    let v = value.trim();
    let candidates = [
        v.to_owned(),
        format!("{v}Z"),
        format!("{v}T00:00:00Z"),
        format!("{}Z", v.replacen(' ', "T", 1)),
    ];
    candidates
        .iter()
        .find_map(|c| OffsetDateTime::parse(c, &Rfc3339).ok())
        .ok_or_else(|| TimeArgError {
            value: value.to_owned(),
        })
}

/// A severity by name (`low`, `medium`, `high`, `critical`).
pub fn parse_severity(value: &str) -> Result<Severity, String> {
    serde_json::from_value(serde_json::Value::String(value.to_ascii_lowercase()))
        .map_err(|_| format!("{value:?} is not a severity (low, medium, high, critical)"))
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReplayStats {
    pub sessions: u64,
    pub events: u64,
    /// Alerts the engine raised.
    pub alerts: u64,
    /// Alerts the filter let through.
    pub printed: u64,
    pub read: ReadStats,
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayRunError {
    #[error(transparent)]
    Log(#[from] ReplayError),
    #[error(transparent)]
    Sink(#[from] crate::sink::SinkError),
}

/// How to replay.
pub struct ReplayOptions<'a> {
    pub strict: bool,
    pub filter: AlertFilter,
    /// Builds the engine of each session (today's rules, or the rules of a config file).
    pub new_engine: &'a dyn Fn() -> Engine,
}

impl Default for ReplayOptions<'_> {
    fn default() -> Self {
        ReplayOptions {
            strict: false,
            filter: AlertFilter::default(),
            new_engine: &Engine::new,
        }
    }
}

/// Replay `paths` in order, handing every alert that passes the filter to `emit`.
pub fn replay_with(
    paths: &[PathBuf],
    opts: &ReplayOptions<'_>,
    mut emit: impl FnMut(&Alert) -> Result<(), crate::sink::SinkError>,
) -> Result<ReplayStats, ReplayRunError> {
    let mut stats = ReplayStats::default();
    let mut sessions = Sessions::new(opts.new_engine);
    let mut stream = LogStream::new(paths, opts.strict);
    let mut out = |alerts: Vec<Alert>, sessions: &Sessions<'_>, stats: &mut ReplayStats| {
        for mut alert in alerts {
            sessions.stamp(&mut alert);
            stats.alerts += 1;
            if opts.filter.matches(&alert) {
                stats.printed += 1;
                emit(&alert)?;
            }
        }
        Ok::<(), ReplayRunError>(())
    };
    while let Some(record) = stream.next_record() {
        match record? {
            Record::Header(h) => {
                // A session that ends gives its pending coalesced summaries, as the live
                // agent did when it stopped.
                let continues = sessions.continues(&h);
                if !continues {
                    let pending = sessions.flush_coalesced();
                    out(pending, &sessions, &mut stats)?;
                }
                if sessions.header(h) {
                    stats.sessions += 1;
                }
            }
            Record::Event(event) => {
                stats.events += 1;
                let mut alerts = sessions.advance_coalesced(&event.time);
                // Held-back alerts only feed live metrics.
                for alert in sessions.engine.process(&event).alerts {
                    sessions.offer(alert, &mut alerts);
                }
                out(alerts, &sessions, &mut stats)?;
                stream.recycle(event);
            }
        }
    }
    let pending = sessions.flush_coalesced();
    out(pending, &sessions, &mut stats)?;
    stats.read = stream.stats;
    Ok(stats)
}

/// Write every record of `paths` (either format) as JSON Lines, or as one binary log: what
/// `escapewatch export` prints. Either output replays to the same alerts as the input.
pub fn export(
    paths: &[PathBuf],
    strict: bool,
    to: LogFormat,
    out: &mut impl io::Write,
) -> Result<ExportStats, ExportError> {
    let mut stream = LogStream::new(paths, strict);
    let mut stats = ExportStats::default();
    let mut buf = Vec::with_capacity(BLOCK_BYTES + 4096);
    let mut records: u32 = 0;
    let mut scratch = Vec::with_capacity(1024);
    let write =
        |out: &mut dyn io::Write, bytes: &[u8]| out.write_all(bytes).map_err(ExportError::Write);
    if to == LogFormat::Binary {
        write(out, &binary::file_header())?;
    }
    while let Some(record) = stream.next_record() {
        let record = record?;
        match &record {
            Record::Header(_) => stats.headers += 1,
            Record::Event(_) => stats.events += 1,
        }
        match to {
            LogFormat::Jsonl => {
                match &record {
                    Record::Header(h) => serde_json::to_writer(&mut buf, h),
                    Record::Event(e) => serde_json::to_writer(&mut buf, e),
                }
                .map_err(|e| ExportError::Write(io::Error::other(e)))?;
                buf.push(b'\n');
            }
            LogFormat::Binary => {
                if buf.is_empty() {
                    buf.extend_from_slice(&[0; binary::BLOCK_HEADER_LEN]);
                }
                match &record {
                    Record::Header(h) => {
                        let mut r = Ok(());
                        binary::put_record(&mut buf, TAG_JSON, |o| r = serde_json::to_writer(o, h));
                        r.map_err(|e| ExportError::Write(io::Error::other(e)))?;
                    }
                    Record::Event(e) => binary::put_event(&mut buf, &mut scratch, e),
                }
                records += 1;
            }
        }
        if buf.len() >= BLOCK_BYTES {
            if to == LogFormat::Binary {
                binary::seal_block(&mut buf, std::mem::take(&mut records));
            }
            write(out, &buf)?;
            buf.clear();
        }
    }
    if !buf.is_empty() {
        if to == LogFormat::Binary {
            binary::seal_block(&mut buf, records);
        }
        write(out, &buf)?;
    }
    out.flush().map_err(ExportError::Write)?;
    stats.read = stream.stats;
    Ok(stats)
}

/// Size of export's blocks (and of its writes), as the writer's flush buffer.
const BLOCK_BYTES: usize = eventlog::FLUSH_BYTES;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ExportStats {
    pub headers: u64,
    pub events: u64,
    pub read: ReadStats,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Log(#[from] ReplayError),
    #[error("cannot write the exported lines")]
    Write(#[source] io::Error),
}

/// Replay with today's rules, no filter, lenient reading.
pub fn replay(
    paths: &[PathBuf],
    emit: impl FnMut(&Alert) -> Result<(), crate::sink::SinkError>,
) -> Result<ReplayStats, ReplayRunError> {
    replay_with(paths, &ReplayOptions::default(), emit)
}

/// The engine and the session boundaries: a fresh engine where the live agent started one.
pub struct Sessions<'a> {
    pub engine: Engine,
    new_engine: &'a dyn Fn() -> Engine,
    last: Option<LogHeader>,
    /// The node and host of the session being read (from its header).
    identity: Option<Identity>,
    /// The session's coalescing, by the window its header recorded.
    coalescer: Option<Coalescer>,
    rule_set_hash: String,
    warned_hashes: Vec<String>,
}

impl<'a> Sessions<'a> {
    pub fn new(new_engine: &'a dyn Fn() -> Engine) -> Self {
        let engine = new_engine();
        let rule_set_hash = eventlog::rule_set_hash(engine.rules());
        Sessions {
            engine,
            new_engine,
            last: None,
            identity: None,
            coalescer: None,
            rule_set_hash,
            warned_hashes: Vec::new(),
        }
    }

    /// Returns true when the header starts a new session.
    pub fn header(&mut self, h: LogHeader) -> bool {
        if !h.rule_set_hash.is_empty()
            && h.rule_set_hash != self.rule_set_hash
            && !self.warned_hashes.contains(&h.rule_set_hash)
        {
            warn!(
                recorded = h.rule_set_hash,
                replaying = self.rule_set_hash,
                "the log was recorded with another rule set: alerts may differ from the live ones"
            );
            self.warned_hashes.push(h.rule_set_hash.clone());
        }
        // A continuation of the session just read keeps its engine (and its state); a
        // continuation whose start is not in the input starts fresh anyway.
        let continues = self.continues(&h);
        if !continues && self.last.is_some() {
            self.engine = (self.new_engine)();
        }
        if !continues {
            self.coalescer = Coalescer::new(h.coalesce_window_ms);
        }
        let new_session = !continues;
        self.identity = Some(Identity::from_header(&h));
        self.last = Some(h);
        new_session
    }

    /// Whether `h` continues the session read so far (a size rotation's next segment).
    pub fn continues(&self, h: &LogHeader) -> bool {
        h.segment > 0
            && self.last.as_ref().is_some_and(|p| {
                p.hostname == h.hostname
                    && p.boot_time == h.boot_time
                    && p.agent_version == h.agent_version
            })
    }

    /// An engine alert: into `out`, or folded into a pending coalesced summary.
    pub fn offer(&mut self, alert: Alert, out: &mut Vec<Alert>) {
        match &mut self.coalescer {
            Some(c) => {
                c.offer(alert, out);
            }
            None => out.push(alert),
        }
    }

    /// Summaries whose window the event at `time` closed.
    pub fn advance_coalesced(&mut self, time: &str) -> Vec<Alert> {
        let mut out = Vec::new();
        if let Some(c) = &mut self.coalescer
            && let Some(now) = crate::coalesce::time_ns(time)
        {
            c.advance(now, &mut out);
        }
        out
    }

    /// Every pending summary (the session ends).
    pub fn flush_coalesced(&mut self) -> Vec<Alert> {
        let mut out = Vec::new();
        if let Some(c) = &mut self.coalescer {
            c.flush(&mut out);
        }
        out
    }

    /// Give `alert` its id and node, as the live agent did from the same header. Events read
    /// before any header (a headerless input in lenient mode) leave them empty.
    pub fn stamp(&self, alert: &mut Alert) {
        if let Some(id) = &self.identity {
            id.stamp(alert);
        }
    }
}
