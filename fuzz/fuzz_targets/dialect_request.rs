#![no_main]

#[path = "../../dataplane/tests/fuzz_targets/mod.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::dialect_request(data));
