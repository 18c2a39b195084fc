//! The payload of a signed call for bids: the job spec a provider decides on.
#![no_main]

use cairn_protocol::CallForBids;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Some(call) = cairn_fuzz::open_payload::<CallForBids>(data) {
        let id = call.spec.id().expect("a decoded spec encodes");
        assert_eq!(id, call.spec.id().expect("a decoded spec encodes"));
    }
});
