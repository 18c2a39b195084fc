//! The job-market protocol: point-to-point requests between requester and providers, each
//! carrying a signed envelope, one frame each way (see [`super::framed`]).

use bincode::{Decode, Encode};
use cairn_protocol::envelope::{Envelope, MAX_ENVELOPE_BYTES};

use super::framed::{Frame, Framed};

/// Largest market frame, in bytes.
pub const MAX_MARKET_FRAME: usize = MAX_ENVELOPE_BYTES + 4096;

/// What a requester or provider asks of the other.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub enum MarketRequest {
    /// Requester → candidate: a signed [`CallForBids`](cairn_protocol::CallForBids).
    CallForBids(Envelope),
    /// Requester → winner: a signed [`Award`](cairn_protocol::Award).
    Award(Envelope),
    /// Provider → requester: a signed [`ResultReport`](cairn_protocol::ResultReport).
    Report(Envelope),
}

/// The answer.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub enum MarketResponse {
    /// A signed [`Bid`](cairn_protocol::Bid).
    Bid(Envelope),
    /// The candidate will not bid, and why.
    Declined(String),
    /// Taken (an award or a report).
    Accepted,
    /// Refused (an award or a report), and why.
    Refused(String),
}

impl Frame for MarketRequest {
    const LIMIT: usize = MAX_MARKET_FRAME;
}

impl Frame for MarketResponse {
    const LIMIT: usize = MAX_MARKET_FRAME;
}

/// Codec of the market protocol.
pub type MarketCodec = Framed<MarketRequest, MarketResponse>;
