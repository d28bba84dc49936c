//! The kernel record decoder on arbitrary bytes: a ring buffer record from a buggy or hostile
//! eBPF side must give an error, never a panic or an out-of-bounds read.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(raw) = escapewatch_common::user::decode(data) {
        // Touch what the agent reads first.
        let _ = raw.header().kind;
    }
});
