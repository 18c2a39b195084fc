//! The job-market protocol's codec: point-to-point requests between requester and providers,
//! one frame each way (see [`super::framed`]). The messages are
//! [`cairn_protocol::wire`]'s.

pub use cairn_protocol::wire::{MAX_MARKET_FRAME, MarketRequest, MarketResponse};

use super::framed::{Frame, Framed};

impl Frame for MarketRequest {
    const LIMIT: usize = MAX_MARKET_FRAME;
}

impl Frame for MarketResponse {
    const LIMIT: usize = MAX_MARKET_FRAME;
}

/// Codec of the market protocol.
pub type MarketCodec = Framed<MarketRequest, MarketResponse>;
