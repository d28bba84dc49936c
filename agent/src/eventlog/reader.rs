//! Opening log files (plain or zstd, by content) and reading lines with a bounded length.

use std::{
    fs::File,
    io::{self, BufRead, BufReader, Read},
    path::Path,
};

use super::binary::{
    BLOCK_HEADER_LEN, BLOCK_MAGIC, FILE_HEADER_LEN, FILE_MAGIC, FORMAT_VERSION, MAX_BLOCK_BYTES,
    block_crc, next_record,
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

/// The two event-log formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// JSON Lines: one JSON object a line (the format of logs written before the binary one).
    Jsonl,
    /// Length-prefixed records in checksummed blocks ([`super::binary`]).
    #[default]
    Binary,
}

impl LogFormat {
    pub fn name(self) -> &'static str {
        match self {
            LogFormat::Jsonl => "jsonl",
            LogFormat::Binary => "binary",
        }
    }
}

/// Tell the format of a log (already decompressed) by its first bytes, without consuming
/// them. A short first read that could still become the binary magic is read on until it
/// decides (a zstd stream may hand out a few bytes first).
pub fn sniff(src: Box<dyn BufRead + Send>) -> io::Result<(LogFormat, Box<dyn BufRead + Send>)> {
    let mut src = src;
    let first = src.fill_buf()?;
    if first.len() >= FILE_MAGIC.len() || first.is_empty() || !FILE_MAGIC.starts_with(first) {
        let format = if first.starts_with(&FILE_MAGIC) {
            LogFormat::Binary
        } else {
            LogFormat::Jsonl
        };
        return Ok((format, src));
    }
    let mut head = Vec::with_capacity(FILE_MAGIC.len());
    while head.len() < FILE_MAGIC.len() {
        let chunk = src.fill_buf()?;
        if chunk.is_empty() {
            break;
        }
        let take = chunk.len().min(FILE_MAGIC.len() - head.len());
        head.extend_from_slice(&chunk[..take]);
        src.consume(take);
    }
    let format = if head == FILE_MAGIC {
        LogFormat::Binary
    } else {
        LogFormat::Jsonl
    };
    let chained = io::Cursor::new(head).chain(src);
    Ok((format, Box::new(BufReader::with_capacity(1 << 16, chained))))
}

/// What a binary log yields.
#[derive(Debug, PartialEq, Eq)]
pub enum BlockItem<'a> {
    /// One record; `offset` is where its block starts in the (decompressed) stream.
    Record {
        tag: u8,
        body: &'a [u8],
        offset: u64,
    },
    /// A damaged stretch: a block whose header or checksum is wrong, or bytes that are no
    /// block. `skipped` bytes from `offset` were passed over up to the next good block
    /// header (or the end).
    Damaged {
        offset: u64,
        skipped: u64,
        reason: String,
    },
    /// The input ended inside a block (the writer was killed mid-write, or is writing now).
    Truncated { offset: u64, bytes: u64 },
    /// A file header of a format version this build does not read.
    Version(u32),
}

/// Reads the blocks of a binary log and lends out their records, verifying every block's
/// checksum and resynchronising on the next block header after damage.
pub struct BlockReader {
    src: Box<dyn BufRead + Send>,
    /// Bytes read into `buf[..filled]`; `buf[start..filled]` not yet consumed. The vector
    /// keeps its length (zeroed once), so reads go straight into it.
    buf: Vec<u8>,
    filled: usize,
    start: usize,
    /// Stream offset of `buf[0]`.
    base: u64,
    eof: bool,
    header_read: bool,
    /// The block being handed out: records left and the cursor and end in `buf`.
    records_left: u32,
    cursor: usize,
    block_end: usize,
    block_offset: u64,
    /// 1-based number of the record last returned.
    pub record_no: u64,
}

impl BlockReader {
    /// `src` starts with the file header (see [`sniff`]).
    pub fn new(src: Box<dyn BufRead + Send>) -> Self {
        BlockReader {
            src,
            buf: vec![0; READ_CHUNK],
            filled: 0,
            start: 0,
            base: 0,
            eof: false,
            header_read: false,
            records_left: 0,
            cursor: 0,
            block_end: 0,
            block_offset: 0,
            record_no: 0,
        }
    }

    /// Stream offset of `buf[i]`.
    fn offset(&self, i: usize) -> u64 {
        self.base + i as u64
    }

    /// Make `n` bytes from `start` available unless the input ends first; returns what is.
    fn fill(&mut self, n: usize) -> io::Result<usize> {
        if self.filled - self.start >= n {
            return Ok(self.filled - self.start);
        }
        if self.start > 0 {
            self.buf.copy_within(self.start..self.filled, 0);
            self.filled -= self.start;
            self.base += self.start as u64;
            self.cursor = self.cursor.saturating_sub(self.start);
            self.block_end = self.block_end.saturating_sub(self.start);
            self.start = 0;
        }
        if self.buf.len() < n.max(READ_CHUNK) {
            self.buf.resize(n.max(READ_CHUNK), 0);
        }
        while !self.eof && self.filled < n {
            match self.src.read(&mut self.buf[self.filled..]) {
                Ok(0) => self.eof = true,
                Ok(k) => self.filled += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(self.filled)
    }

    /// Pass over bytes from `start + 1` up to the next block magic (or the end of input);
    /// returns how many bytes were skipped.
    fn resync(&mut self) -> io::Result<u64> {
        let from = self.offset(self.start);
        self.start += 1;
        loop {
            let avail = self.fill(BLOCK_MAGIC.len())?;
            if avail < BLOCK_MAGIC.len() {
                self.start = self.filled;
                return Ok(self.offset(self.start) - from);
            }
            if let Some(i) = memchr::memmem::find(&self.buf[self.start..self.filled], &BLOCK_MAGIC)
            {
                self.start += i;
                return Ok(self.offset(self.start) - from);
            }
            // Keep the last bytes: a magic may straddle this read and the next.
            let keep = BLOCK_MAGIC.len() - 1;
            self.start = self.filled - keep;
            if self.eof {
                self.start = self.filled;
                return Ok(self.offset(self.start) - from);
            }
            let want = self.filled - self.start + (1 << 16);
            self.fill(want)?;
        }
    }

    /// The next item, `None` at the end. An I/O error (a damaged zstd frame) ends the input.
    pub fn next_item(&mut self) -> Option<io::Result<BlockItem<'_>>> {
        match self.advance() {
            Ok(Some(Step::Record)) => {}
            Ok(Some(Step::Other(item))) => return Some(Ok(item)),
            Ok(None) => return None,
            Err(e) => return Some(Err(e)),
        }
        let split = next_record(&self.buf[self.cursor..self.block_end])
            .map(|(tag, body, used)| (tag, used - body.len(), used));
        match split {
            Ok((tag, body_at, used)) => {
                let body = &self.buf[self.cursor + body_at..self.cursor + used];
                self.cursor += used;
                self.record_no += 1;
                Some(Ok(BlockItem::Record {
                    tag,
                    body,
                    offset: self.block_offset,
                }))
            }
            Err(e) => {
                // The checksum held, so this is a writer's bug, not damage on disk: the rest
                // of the block cannot be split into records.
                let offset = self.block_offset;
                let skipped = (self.block_end - self.cursor) as u64;
                self.cursor = self.block_end;
                self.records_left = 0;
                Some(Ok(BlockItem::Damaged {
                    offset,
                    skipped,
                    reason: format!("record {} of the block: {e}", self.record_no + 1),
                }))
            }
        }
    }

    /// Move to the next record (in this block or the next good one), or produce an item
    /// that is not a record.
    fn advance(&mut self) -> io::Result<Option<Step>> {
        if !self.header_read {
            self.header_read = true;
            let avail = self.fill(FILE_HEADER_LEN)?;
            if avail < FILE_HEADER_LEN || self.buf[..8] != FILE_MAGIC {
                let bytes = avail as u64;
                self.start = self.filled;
                return Ok(Some(Step::Other(BlockItem::Truncated { offset: 0, bytes })));
            }
            let version = u32::from_le_bytes(self.buf[8..12].try_into().expect("4 bytes"));
            if version != FORMAT_VERSION {
                self.eof = true;
                self.start = self.filled;
                return Ok(Some(Step::Other(BlockItem::Version(version))));
            }
            self.start = FILE_HEADER_LEN;
        }
        if self.records_left > 0 {
            if self.cursor < self.block_end {
                self.records_left -= 1;
                return Ok(Some(Step::Record));
            }
            let offset = self.block_offset;
            let left = self.records_left;
            self.records_left = 0;
            return Ok(Some(Step::Other(BlockItem::Damaged {
                offset,
                skipped: 0,
                reason: format!("the block ends {left} records short of its count"),
            })));
        }
        if self.cursor < self.block_end {
            let offset = self.block_offset;
            let skipped = (self.block_end - self.cursor) as u64;
            self.cursor = self.block_end;
            return Ok(Some(Step::Other(BlockItem::Damaged {
                offset,
                skipped,
                reason: "bytes after the block's last record".into(),
            })));
        }
        loop {
            let avail = self.fill(BLOCK_HEADER_LEN)?;
            if avail == 0 {
                return Ok(None);
            }
            let offset = self.offset(self.start);
            if avail < BLOCK_HEADER_LEN {
                if self.buf[self.start..].starts_with(&BLOCK_MAGIC[..avail.min(4)]) {
                    self.start = self.filled;
                    return Ok(Some(Step::Other(BlockItem::Truncated {
                        offset,
                        bytes: avail as u64,
                    })));
                }
                let skipped = self.resync()?;
                return Ok(Some(Step::Other(BlockItem::Damaged {
                    offset,
                    skipped,
                    reason: "no block header".into(),
                })));
            }
            let h = &self.buf[self.start..self.start + BLOCK_HEADER_LEN];
            if h[..4] != BLOCK_MAGIC {
                let skipped = self.resync()?;
                return Ok(Some(Step::Other(BlockItem::Damaged {
                    offset,
                    skipped,
                    reason: "no block header".into(),
                })));
            }
            let word = |i: usize| u32::from_le_bytes(h[i..i + 4].try_into().expect("4 bytes"));
            let (len, count, crc) = (word(4) as usize, word(8), word(12));
            if len > MAX_BLOCK_BYTES {
                let skipped = self.resync()?;
                return Ok(Some(Step::Other(BlockItem::Damaged {
                    offset,
                    skipped,
                    reason: format!("block length {len} is over the {MAX_BLOCK_BYTES}-byte limit"),
                })));
            }
            let avail = self.fill(BLOCK_HEADER_LEN + len)?;
            if avail < BLOCK_HEADER_LEN + len {
                // Either the writer stopped mid-block, or the length is damaged and good
                // blocks follow: look for one.
                let skipped = self.resync()?;
                if self.start < self.filled {
                    return Ok(Some(Step::Other(BlockItem::Damaged {
                        offset,
                        skipped,
                        reason: format!("block length {len} runs past the next block header"),
                    })));
                }
                return Ok(Some(Step::Other(BlockItem::Truncated {
                    offset,
                    bytes: skipped,
                })));
            }
            let payload = self.start + BLOCK_HEADER_LEN..self.start + BLOCK_HEADER_LEN + len;
            if block_crc(count, &self.buf[payload.clone()]) != crc {
                let skipped = self.resync()?;
                return Ok(Some(Step::Other(BlockItem::Damaged {
                    offset,
                    skipped,
                    reason: "block checksum mismatch".into(),
                })));
            }
            self.block_offset = offset;
            self.cursor = payload.start;
            self.block_end = payload.end;
            self.start = payload.end;
            self.records_left = count;
            if count > 0 {
                self.records_left -= 1;
                if self.cursor < self.block_end {
                    return Ok(Some(Step::Record));
                }
                self.records_left = 0;
                return Ok(Some(Step::Other(BlockItem::Damaged {
                    offset,
                    skipped: 0,
                    reason: format!("the block ends {count} records short of its count"),
                })));
            }
            if self.cursor < self.block_end {
                let skipped = len as u64;
                self.cursor = self.block_end;
                return Ok(Some(Step::Other(BlockItem::Damaged {
                    offset,
                    skipped,
                    reason: "bytes after the block's last record".into(),
                })));
            }
        }
    }
}

/// Reads of a binary log go straight into the block buffer in pieces of this size.
const READ_CHUNK: usize = 1 << 20;

enum Step {
    Record,
    Other(BlockItem<'static>),
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
