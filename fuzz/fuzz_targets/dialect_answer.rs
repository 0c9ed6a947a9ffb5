#![no_main]

#[path = "../../dataplane/tests/fuzz_targets/mod.rs"]
mod targets;

// The first byte chooses a whole answer or a stream; 0xFF bytes split the rest into the chunks
// the meter writes.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    targets::dialect_answer(rest.split(|&b| b == 0xFF), mode & 1 == 1);
});
