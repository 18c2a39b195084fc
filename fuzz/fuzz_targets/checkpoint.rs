//! The payload of a signed checkpoint proposal.
#![no_main]

use cairn_protocol::Checkpoint;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Some(checkpoint) = cairn_fuzz::open_payload::<Checkpoint>(data) {
        let _ = checkpoint.hash().expect("a decoded checkpoint encodes");
    }
});
