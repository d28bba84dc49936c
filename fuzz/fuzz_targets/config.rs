//! The config parser on arbitrary bytes: what `Config::load` does once it has read a file
//! (UTF-8, TOML, validation with the span lookup that names a bad key's line, the rule
//! policy). Any panic is a bug; errors are fine.
#![no_main]

use std::path::Path;

use escapewatch::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(config) = Config::from_bytes(data, Path::new("fuzz.toml")) {
        // Validated on load, so building the policy again must succeed.
        config
            .policy()
            .expect("a config that loaded has a valid policy");
    }
});
