#![no_main]

#[path = "../../dataplane/tests/fuzz_targets/mod.rs"]
mod targets;

// A first byte of 0 makes the rest the message itself; otherwise the input mutates a valid
// snapshot's encoding (pairs of a position and a byte to XOR there), so the fuzzer reaches
// the validation of each record rather than stopping at the protobuf decoder.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    match data.split_first() {
        Some((0, message)) => targets::snapshot(message),
        _ => {
            let mut message = targets::VALID_SNAPSHOT.clone();
            for flip in data.chunks_exact(3) {
                let at = usize::from(u16::from_le_bytes([flip[0], flip[1]])) % message.len();
                message[at] ^= flip[2];
            }
            targets::snapshot(&message);
        }
    }
});
