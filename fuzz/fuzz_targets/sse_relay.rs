#![no_main]

#[path = "../../dataplane/tests/fuzz_targets/mod.rs"]
mod targets;

// The first byte chooses how the stream ends; 0xFF bytes split the rest into the chunks the
// provider's stream arrives in, so the fuzzer explores every split.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&mode, stream)) = data.split_first() else {
        return;
    };
    targets::sse_relay(stream.split(|&b| b == 0xFF), mode & 1 == 1);
});
