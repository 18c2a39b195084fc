//! A market request frame (call for bids, award, report), as the node's framed codec decodes it, then its envelope verified.
#![no_main]

use cairn_protocol::wire::{MAX_MARKET_FRAME, MarketRequest};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Some(request) = cairn_fuzz::canonical::<MarketRequest>(data, MAX_MARKET_FRAME) {
        match &request {
            MarketRequest::CallForBids(e) | MarketRequest::Award(e) | MarketRequest::Report(e) => {
                cairn_fuzz::verify_as_its_kind(e)
            }
            MarketRequest::FetchReport(_) => {}
        }
    }
});
