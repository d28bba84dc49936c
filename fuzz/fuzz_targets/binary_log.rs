//! The binary event-log reader on arbitrary bytes after a valid file header: block framing,
//! checksums, resynchronisation and the event decoder (checksums are computed for the fuzzed
//! payload too, so the decoder sees arbitrary records). Any panic is a bug; errors are fine.
#![no_main]

use std::io::Cursor;

use escapewatch::eventlog::{
    BlockItem, BlockReader,
    binary::{self, BLOCK_HEADER_LEN, TAG_EVENT},
};
use libfuzzer_sys::fuzz_target;

fn read_all(bytes: Vec<u8>) {
    let mut r = BlockReader::new(Box::new(Cursor::new(bytes)));
    let mut event = binary::blank_event();
    while let Some(item) = r.next_item() {
        match item {
            Ok(BlockItem::Record { tag, body, .. }) => {
                if tag == TAG_EVENT {
                    let _ = binary::decode_event_into(body, &mut event);
                    let _ = binary::decode_event(body);
                }
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
}

fuzz_target!(|data: &[u8]| {
    // As given: mostly damage and resynchronisation.
    let mut raw = binary::file_header().to_vec();
    raw.extend_from_slice(data);
    read_all(raw);
    // As one block with a good checksum: the record splitter and the decoder.
    let mut sealed = binary::file_header().to_vec();
    let at = sealed.len();
    sealed.extend_from_slice(&[0; BLOCK_HEADER_LEN]);
    sealed.extend_from_slice(data);
    let records = data.first().map_or(0, |&b| u32::from(b % 8));
    binary::seal_block(&mut sealed[at..], records);
    read_all(sealed);
});
