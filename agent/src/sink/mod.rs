//! Alert writers: JSON Lines (the alert log, replay's default output) and a terminal table.
//! The event log has its own writer (`eventlog`: rotation, compression, crash safety).
//!
//! Each record is serialised into a buffer first and written with one `write_all`; buffers are
//! flushed after every batch.

use std::{
    fs::File,
    io::{self, BufWriter, Write},
    path::{Path, PathBuf},
};

use serde::Serialize;

pub mod falco;
pub mod fanout;
pub mod syslog;
pub mod webhook;

pub use fanout::Fanout;

/// `[sinks]`: where alerts go besides the alert log.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SinksConfig {
    pub webhook: Vec<webhook::WebhookConfig>,
    pub syslog: syslog::SyslogConfig,
}

/// The fan-out of `config`'s sinks, each counted in `counts` (`{sink, result}`).
pub fn fanout(
    config: &SinksConfig,
    counts: &prometheus::IntCounterVec,
) -> Result<Fanout, io::Error> {
    let mut f = Fanout::default();
    for (i, w) in config.webhook.iter().enumerate() {
        f.add(
            &format!("webhook{i}"),
            w.queue,
            Box::new(webhook::Webhook::new(w.clone())),
            counts.clone(),
        )?;
    }
    if config.syslog.enabled {
        f.add(
            "syslog",
            config.syslog.queue,
            Box::new(syslog::Syslog::new(config.syslog.socket.clone())),
            counts.clone(),
        )?;
    }
    Ok(f)
}

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("cannot open {path} for appending")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot start an output sink's thread")]
    Thread(#[source] io::Error),
    #[error("cannot write to {what}")]
    Write {
        what: String,
        #[source]
        source: io::Error,
    },
}

/// A JSON Lines destination: a file (appended to) or standard output.
pub struct JsonLines {
    what: String,
    out: BufWriter<Box<dyn Write + Send>>,
    line: Vec<u8>,
    pub bytes_written: u64,
}

impl JsonLines {
    pub fn open(path: Option<&Path>) -> Result<Self, SinkError> {
        let (what, out): (String, Box<dyn Write + Send>) = match path {
            Some(p) if p != Path::new("-") => {
                // Not through a link planted in the log directory; created 0640.
                let f: File =
                    crate::safe_open::open_append(p).map_err(|source| SinkError::Open {
                        path: p.to_owned(),
                        source,
                    })?;
                (p.display().to_string(), Box::new(f))
            }
            _ => ("standard output".to_owned(), Box::new(io::stdout())),
        };
        Ok(JsonLines {
            what,
            out: BufWriter::with_capacity(1 << 16, out),
            line: Vec::with_capacity(1024),
            bytes_written: 0,
        })
    }

    /// Append one record as one line.
    pub fn write<T: Serialize>(&mut self, record: &T) -> Result<(), SinkError> {
        self.line.clear();
        serde_json::to_writer(&mut self.line, record)
            .map_err(io::Error::other)
            .and_then(|()| {
                self.line.push(b'\n');
                self.out.write_all(&self.line)
            })
            .map_err(|source| SinkError::Write {
                what: self.what.clone(),
                source,
            })?;
        self.bytes_written += self.line.len() as u64;
        Ok(())
    }

    /// Append bytes as they are (text output shares the buffering and error context).
    pub fn raw(&mut self, bytes: &[u8]) -> Result<(), SinkError> {
        self.out
            .write_all(bytes)
            .map_err(|source| SinkError::Write {
                what: self.what.clone(),
                source,
            })?;
        self.bytes_written += bytes.len() as u64;
        Ok(())
    }

    pub fn flush(&mut self) -> Result<(), SinkError> {
        self.out.flush().map_err(|source| SinkError::Write {
            what: self.what.clone(),
            source,
        })
    }
}

/// Alerts as a terminal table: one row per alert, the summary last so it can wrap.
pub struct AlertTable {
    inner: JsonLines,
    header_written: bool,
}

impl AlertTable {
    pub fn stdout() -> Result<Self, SinkError> {
        Ok(AlertTable {
            inner: JsonLines::open(None)?,
            header_written: false,
        })
    }

    pub fn write(&mut self, alert: &crate::detect::Alert) -> Result<(), SinkError> {
        if !self.header_written {
            self.header_written = true;
            let head = table_row(["TIME (UTC)", "SEVERITY", "RULE", "CONTAINER", "PID", "COMM"]);
            self.inner.raw(format!("{head}  SUMMARY\n").as_bytes())?;
        }
        let container = alert
            .container
            .as_ref()
            .map_or_else(|| "host".to_owned(), |c| short_container(&c.id));
        let row = table_row([
            &short_time(&alert.time),
            alert.severity.as_str(),
            &alert.rule,
            &container,
            &alert.process.pid.to_string(),
            &alert.process.comm,
        ]);
        self.inner
            .raw(format!("{row}  {}\n", one_line(&alert.summary)).as_bytes())
    }

    pub fn flush(&mut self) -> Result<(), SinkError> {
        self.inner.flush()
    }
}

const TABLE_WIDTHS: [usize; 6] = [23, 8, 24, 14, 7, 15];

fn table_row(cells: [&str; 6]) -> String {
    let mut out = String::new();
    for (i, (cell, width)) in cells.iter().zip(TABLE_WIDTHS).enumerate() {
        if i > 0 {
            out.push_str("  ");
        }
        let cell = one_line(cell);
        let shown: String = cell.chars().take(width).collect();
        out.push_str(&format!("{shown:<width$}"));
    }
    out
}

/// `2026-11-23T01:03:24.701668851Z` → `2026-11-23 01:03:24.701`.
pub fn short_time(rfc3339: &str) -> String {
    let t = rfc3339.trim_end_matches('Z').replacen('T', " ", 1);
    match t.find('.') {
        Some(dot) => t.chars().take(dot + 4).collect(),
        None => t,
    }
}

/// Docker-style 12-character ids; cgroup paths (no known runtime) stay whole.
pub fn short_container(id: &str) -> String {
    if id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        id[..12].to_owned()
    } else {
        id.to_owned()
    }
}

/// Control characters (a comm, an argument or a path can hold any byte) would break the row
/// or drive the terminal (`\x1b[2J` clears it), and bidi overrides (U+202E) make text read
/// backwards: show them escaped, `\x1b`, `\u{202e}`.
pub fn one_line(s: &str) -> String {
    if !s.chars().any(needs_escape) {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs_escape(c) && (c as u32) < 0x100 => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if needs_escape(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// C0 and C1 controls (ESC, CSI 0x9b, DEL), the bidi embeddings, overrides and isolates
/// (U+202A–U+202E, U+2066–U+2069) and marks (U+200E, U+200F, U+061C), and the Unicode line
/// and paragraph separators: characters that change how the text around them is shown.
pub fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
                | '\u{200e}'
                | '\u{200f}'
                | '\u{061c}'
                | '\u{2028}'
                | '\u{2029}'
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_controls_and_bidi_overrides_are_shown_escaped() {
        assert_eq!(one_line("plain /usr/bin/x"), "plain /usr/bin/x");
        assert_eq!(
            one_line("a\x1b[2Jb\u{9b}c\u{202e}d\u{2066}e\nf\x7f"),
            "a\\x1b[2Jb\\x9bc\\u{202e}d\\u{2066}e\\nf\\x7f"
        );
        assert!(
            !one_line("\u{202d}\u{2069}\u{200f}")
                .chars()
                .any(needs_escape)
        );
    }
}
