//! JSON Lines writers for the event log and the alert log.
//!
//! Each record is serialised into a buffer first and written with one `write_all`, so a crash
//! leaves at most the line being written incomplete; buffers are flushed after every batch.

use std::{
    fs::{File, OpenOptions},
    io::{self, BufWriter, Write},
    path::{Path, PathBuf},
};

use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("cannot open {path} for appending")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
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
                let f: File = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .map_err(|source| SinkError::Open {
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

    pub fn flush(&mut self) -> Result<(), SinkError> {
        self.out.flush().map_err(|source| SinkError::Write {
            what: self.what.clone(),
            source,
        })
    }
}
