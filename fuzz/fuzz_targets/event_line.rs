//! The event-log reader on arbitrary bytes: the line decoder, the bounded line reader, the
//! zstd detection and the lenient stream. Any panic is a bug; errors are fine.
#![no_main]

use std::io::Cursor;

use escapewatch::{
    eventlog::{LineReader, RawLine},
    replay::parse_line,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The decoder alone, on the whole input as one line.
    let _ = parse_line(data);
    // The reader: lines of any length (a small bound so the too-long path is reached).
    let mut lines = LineReader::with_limit(Box::new(Cursor::new(data.to_vec())), 4096);
    while let Some(line) = lines.next_line() {
        match line {
            Ok(RawLine::Line(b)) | Ok(RawLine::Truncated(b)) => {
                let _ = parse_line(b);
            }
            Ok(RawLine::TooLong { .. }) => {}
            Err(_) => break,
        }
    }
});
