//! A market response frame (bid, declined, accepted, refused), as the node's framed codec decodes it.
#![no_main]

use cairn_protocol::wire::{MAX_MARKET_FRAME, MarketResponse};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Some(MarketResponse::Bid(e) | MarketResponse::Report(e)) =
        cairn_fuzz::canonical::<MarketResponse>(data, MAX_MARKET_FRAME)
    {
        cairn_fuzz::verify_as_its_kind(&e);
    }
});
