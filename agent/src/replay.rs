//! Replay recorded event logs through the same engine the daemon runs.

use std::{
    fs::File,
    io::{self, BufRead, BufReader},
    path::{Path, PathBuf},
};

use crate::{
    detect::{Alert, Engine},
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
        line: usize,
        #[source]
        source: io::Error,
    },
    #[error("{path}: empty file, not an escapewatch event log (it starts with a header line)")]
    Empty { path: String },
    #[error("{path}:1: not an escapewatch event log: the first line must be its header ({reason})")]
    NoHeader { path: String, reason: String },
    #[error(
        "{path}:{line}: event log schema version {found}, but this escapewatch reads version {expected}; use the escapewatch release that wrote the log"
    )]
    Version {
        path: String,
        line: usize,
        found: u32,
        expected: u32,
    },
    #[error("{path}:{line}: corrupt event line: {reason}")]
    Corrupt {
        path: String,
        line: usize,
        reason: String,
    },
}

/// One line of an event log.
#[derive(Debug)]
pub enum Record {
    /// A new agent session starts (a fresh engine in the live daemon too).
    Header(LogHeader),
    Event(Box<Event>),
}

/// Parse one line. `Err` holds a human-readable reason.
pub fn parse_line(line: &str) -> Result<Record, ParseLineError> {
    if line.starts_with("{\"format\"") {
        let header: LogHeader =
            serde_json::from_str(line).map_err(|e| ParseLineError::Corrupt(e.to_string()))?;
        if header.format != LOG_FORMAT {
            return Err(ParseLineError::Corrupt(format!(
                "header format is {:?}, expected {LOG_FORMAT:?}",
                header.format
            )));
        }
        if header.schema_version != LOG_SCHEMA_VERSION {
            return Err(ParseLineError::Version(header.schema_version));
        }
        return Ok(Record::Header(header));
    }
    serde_json::from_str::<Event>(line)
        .map(|e| Record::Event(Box::new(e)))
        .map_err(|e| ParseLineError::Corrupt(e.to_string()))
}

#[derive(Debug)]
pub enum ParseLineError {
    Corrupt(String),
    Version(u32),
}

/// Reads one event log: a header first, then events (and later sessions' headers).
pub struct LogReader {
    path: String,
    lines: Box<dyn BufRead>,
    line_no: usize,
}

impl LogReader {
    pub fn open(path: &Path) -> Result<Self, ReplayError> {
        let lines: Box<dyn BufRead> = if path == Path::new("-") {
            Box::new(BufReader::new(io::stdin()))
        } else {
            let f = File::open(path).map_err(|source| ReplayError::Open {
                path: path.to_owned(),
                source,
            })?;
            Box::new(BufReader::with_capacity(1 << 16, f))
        };
        Ok(LogReader {
            path: path.display().to_string(),
            lines,
            line_no: 0,
        })
    }

    /// The next record, or None at the end.
    pub fn next_record(&mut self) -> Option<Result<Record, ReplayError>> {
        let mut buf = String::new();
        loop {
            buf.clear();
            match self.lines.read_line(&mut buf) {
                Ok(0) if self.line_no == 0 => {
                    self.line_no = 1;
                    return Some(Err(ReplayError::Empty {
                        path: self.path.clone(),
                    }));
                }
                Ok(0) => return None,
                Ok(_) => {}
                Err(source) => {
                    return Some(Err(ReplayError::Read {
                        path: self.path.clone(),
                        line: self.line_no + 1,
                        source,
                    }));
                }
            }
            self.line_no += 1;
            let line = buf.trim_end_matches(['\n', '\r']);
            if line.trim().is_empty() {
                continue;
            }
            let parsed = parse_line(line);
            let first = self.line_no == 1;
            return Some(match parsed {
                Ok(Record::Event(_)) if first => Err(ReplayError::NoHeader {
                    path: self.path.clone(),
                    reason: "it is an event".into(),
                }),
                Ok(r) => Ok(r),
                Err(ParseLineError::Version(found)) => Err(ReplayError::Version {
                    path: self.path.clone(),
                    line: self.line_no,
                    found,
                    expected: LOG_SCHEMA_VERSION,
                }),
                Err(ParseLineError::Corrupt(reason)) if first => Err(ReplayError::NoHeader {
                    path: self.path.clone(),
                    reason,
                }),
                Err(ParseLineError::Corrupt(reason)) => Err(ReplayError::Corrupt {
                    path: self.path.clone(),
                    line: self.line_no,
                    reason,
                }),
            });
        }
    }
}

/// Replay `paths` in order, handing every alert to `emit`. Each header starts a fresh engine,
/// as each agent start does live.
pub fn replay(
    paths: &[PathBuf],
    mut emit: impl FnMut(&Alert) -> Result<(), crate::sink::SinkError>,
) -> Result<ReplayStats, ReplayRunError> {
    let mut stats = ReplayStats::default();
    let mut engine = Engine::new();
    for path in paths {
        let mut reader = LogReader::open(path)?;
        while let Some(record) = reader.next_record() {
            match record? {
                Record::Header(_) => {
                    engine = Engine::new();
                    stats.sessions += 1;
                }
                Record::Event(event) => {
                    stats.events += 1;
                    for alert in engine.process(&event) {
                        stats.alerts += 1;
                        emit(&alert)?;
                    }
                }
            }
        }
    }
    Ok(stats)
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReplayStats {
    pub sessions: u64,
    pub events: u64,
    pub alerts: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayRunError {
    #[error(transparent)]
    Log(#[from] ReplayError),
    #[error(transparent)]
    Sink(#[from] crate::sink::SinkError),
}
