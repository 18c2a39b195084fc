//! The payload of a signed job receipt.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = cairn_fuzz::open_payload::<cairn_protocol::JobReceipt>(data);
});
