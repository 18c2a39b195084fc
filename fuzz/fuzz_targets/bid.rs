//! The payload of a signed bid.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = cairn_fuzz::open_payload::<cairn_protocol::Bid>(data);
});
