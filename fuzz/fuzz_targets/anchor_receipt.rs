//! The payload of a signed anchor receipt.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = cairn_fuzz::open_payload::<cairn_protocol::AnchorReceipt>(data);
});
