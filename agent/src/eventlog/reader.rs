//! Opening log files (plain or zstd, by content) and reading lines with a bounded length.

use std::{
    fs::File,
    io::{self, BufRead, BufReader, Read},
    path::Path,
};

/// Longest line kept in memory. Real event lines are a few KiB (exec arguments are capped in
/// the kernel); a longer one is garbage and is skipped without being held.
pub const MAX_LINE_BYTES: usize = 1 << 20;

const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// Open `path` (`-`: standard input) for reading, decompressing when it is zstd. The content
/// decides, not the name: a compressed log piped through stdin works too.
pub fn open_input(path: &Path) -> io::Result<Box<dyn BufRead + Send>> {
    if path == Path::new("-") {
        open_stream(Box::new(io::stdin()))
    } else {
        open_stream(Box::new(File::open(path)?))
    }
}

/// A log from `raw` (plain or zstd, by content).
pub fn open_stream(raw: Box<dyn Read + Send>) -> io::Result<Box<dyn BufRead + Send>> {
    let mut buffered = BufReader::with_capacity(1 << 16, raw);
    if starts_with_zstd_magic(&mut buffered)? {
        let decoder = zstd::stream::read::Decoder::with_buffer(buffered)?;
        Ok(Box::new(BufReader::with_capacity(1 << 16, decoder)))
    } else {
        Ok(Box::new(buffered))
    }
}

/// Look at the first four bytes without consuming them. A file or a zstd stream on a pipe
/// delivers far more than four bytes in its first read, so one fill decides.
fn starts_with_zstd_magic(r: &mut BufReader<Box<dyn Read + Send>>) -> io::Result<bool> {
    Ok(r.fill_buf()?.starts_with(&ZSTD_MAGIC))
}

/// One line as read.
#[derive(Debug, PartialEq, Eq)]
pub enum RawLine<'a> {
    /// A whole line, without its newline.
    Line(&'a [u8]),
    /// The end of the input came before a newline: the writer was killed mid-line (or the
    /// file is being written right now).
    Truncated(&'a [u8]),
    /// Longer than the bound: skipped up to its newline, never held in memory.
    TooLong { bytes: u64 },
}

/// Reads lines; `line_no` is the 1-based number of the line last returned.
pub struct LineReader {
    src: Box<dyn BufRead + Send>,
    /// Bytes of the source's buffer handed out as the last line, consumed on the next call.
    lent: usize,
    buf: Vec<u8>,
    max: usize,
    pub line_no: u64,
}

impl LineReader {
    pub fn new(src: Box<dyn BufRead + Send>) -> Self {
        Self::with_limit(src, MAX_LINE_BYTES)
    }

    pub fn with_limit(src: Box<dyn BufRead + Send>, max: usize) -> Self {
        LineReader {
            src,
            lent: 0,
            buf: Vec::with_capacity(4096),
            max,
            line_no: 0,
        }
    }

    /// The next line, `None` at the end. An I/O error (including a damaged zstd frame) ends
    /// the input; the caller reports it.
    pub fn next_line(&mut self) -> Option<io::Result<RawLine<'_>>> {
        self.src.consume(std::mem::take(&mut self.lent));
        self.buf.clear();
        // Most lines lie whole in the source's buffer: lend them from there, no copy.
        let whole = match self.src.fill_buf() {
            Ok(chunk) => memchr_newline(chunk).filter(|&i| i <= self.max),
            Err(_) => None,
        };
        if let Some(i) = whole {
            // The buffer is not empty, so this fill_buf returns it again without reading.
            let chunk = match self.src.fill_buf() {
                Ok(c) => c,
                Err(e) => return Some(Err(e)),
            };
            self.lent = i + 1;
            self.line_no += 1;
            let line = &chunk[..i];
            return Some(Ok(RawLine::Line(line.strip_suffix(b"\r").unwrap_or(line))));
        }
        let mut skipped: u64 = 0;
        loop {
            let chunk = match self.src.fill_buf() {
                Ok(c) => c,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Some(Err(e)),
            };
            if chunk.is_empty() {
                if skipped > 0 {
                    self.line_no += 1;
                    return Some(Ok(RawLine::TooLong { bytes: skipped }));
                }
                if self.buf.is_empty() {
                    return None;
                }
                self.line_no += 1;
                return Some(Ok(RawLine::Truncated(&self.buf)));
            }
            let (take, done) = match memchr_newline(chunk) {
                Some(i) => (i, true),
                None => (chunk.len(), false),
            };
            if skipped > 0 || self.buf.len() + take > self.max {
                // Over the bound: count and drop instead of growing the buffer.
                skipped += (self.buf.len() + take) as u64;
                self.buf.clear();
            } else {
                self.buf.extend_from_slice(&chunk[..take]);
            }
            self.src.consume(take + usize::from(done));
            if done {
                self.line_no += 1;
                if skipped > 0 {
                    return Some(Ok(RawLine::TooLong { bytes: skipped }));
                }
                if self.buf.last() == Some(&b'\r') {
                    self.buf.pop();
                }
                return Some(Ok(RawLine::Line(&self.buf)));
            }
        }
    }
}

fn memchr_newline(b: &[u8]) -> Option<usize> {
    memchr::memchr(b'\n', b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(bytes: &'static [u8], max: usize) -> LineReader {
        LineReader::with_limit(Box::new(io::Cursor::new(bytes)), max)
    }

    fn all(mut r: LineReader) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(l) = r.next_line() {
            out.push(match l.unwrap() {
                RawLine::Line(b) => format!("L:{}", String::from_utf8_lossy(b)),
                RawLine::Truncated(b) => format!("T:{}", String::from_utf8_lossy(b)),
                RawLine::TooLong { bytes } => format!("X:{bytes}"),
            });
        }
        out
    }

    #[test]
    fn lines_truncation_and_bounds() {
        assert_eq!(all(reader(b"", 8)), Vec::<String>::new());
        assert_eq!(all(reader(b"a\r\nbb\nccc", 8)), ["L:a", "L:bb", "T:ccc"]);
        assert_eq!(
            all(reader(b"0123456789abc\nok\n0123456789", 8)),
            ["X:13", "L:ok", "X:10"]
        );
        let mut r = reader(b"a\n\nb\n", 8);
        r.next_line();
        r.next_line();
        assert_eq!(r.line_no, 2);
    }

    #[test]
    fn zstd_is_recognised_by_content() {
        let dir = std::env::temp_dir().join(format!("ew-reader-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let plain = dir.join("p");
        let packed = dir.join("p.anything");
        std::fs::write(&plain, b"x\ny\n").unwrap();
        std::fs::write(&packed, zstd::encode_all(&b"x\ny\n"[..], 3).unwrap()).unwrap();
        for p in [&plain, &packed] {
            assert_eq!(all(LineReader::new(open_input(p).unwrap())), ["L:x", "L:y"]);
        }
        // A zstd frame cut short is an I/O error, not a panic.
        let full = zstd::encode_all(&[b'z'; 100_000][..], 3).unwrap();
        std::fs::write(&packed, &full[..full.len() / 2]).unwrap();
        let mut r = LineReader::new(open_input(&packed).unwrap());
        assert!(matches!(r.next_line(), Some(Err(_))));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
