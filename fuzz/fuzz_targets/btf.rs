//! The BTF reader on arbitrary bytes: parsing, then every member lookup the agent makes at
//! load time (`offsets::kernel_config`) and a few by names taken from the input, through
//! typedefs, anonymous members and (corrupt) cycles. Any panic or hang is a bug; errors are
//! fine.
#![no_main]

use escapewatch::{btf::Btf, offsets};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(btf) = Btf::parse(data) else {
        return;
    };
    let _ = offsets::kernel_config(&btf, 1, 1);
    // Names from the input's tail reach structs the fixed lookups do not.
    let tail = String::from_utf8_lossy(&data[data.len().saturating_sub(24)..]);
    let (st, path) = tail.split_once(':').unwrap_or((&tail, "a.b"));
    let _ = btf.struct_id(st);
    let _ = btf.struct_size(st);
    let _ = btf.member_offset(st, path);
    let _ = btf.member_size(st, path);
    let _ = btf.member_offset_any(st, &[path, "x", ""]);
});
