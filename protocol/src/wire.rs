//! The point-to-point protocols' messages as they cross the wire: the job market (requester
//! and providers) and sync (a joining node asks a peer what it knows). The node frames them
//! (`cairn-node`'s `net/framed.rs`), one frame each way, and bounds each frame before decoding;
//! every type here is covered by the codec property tests.
//!
//! Nothing in an answer is taken on the answerer's word: market messages carry signed
//! envelopes, synced adverts are checked like gossip, checkpoints carry their committee's
//! votes, and leaves must hash to the root of the checkpoint they belong to.

use bincode::{Decode, Encode};

use crate::JobId;
use crate::envelope::{Envelope, MAX_ENVELOPE_BYTES};
use crate::merkle::ReputationLeaf;
use crate::proof::SignedCheckpoint;

/// Largest market frame, in bytes.
pub const MAX_MARKET_FRAME: usize = MAX_ENVELOPE_BYTES + 4096;

/// What a requester or provider asks of the other.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub enum MarketRequest {
    /// Requester → candidate: a signed [`CallForBids`](crate::CallForBids).
    CallForBids(Envelope),
    /// Requester → winner: a signed [`Award`](crate::Award).
    Award(Envelope),
    /// Provider → requester: a signed [`ResultReport`](crate::ResultReport).
    Report(Envelope),
    /// Requester → awarded provider, after the requester restarted: the provider's signed
    /// report of this job, if it has one. Answered with [`MarketResponse::Report`], or
    /// [`MarketResponse::Refused`] when the provider holds none (yet) or the asker is not the
    /// job's requester. The asker checks the report exactly as a pushed one.
    FetchReport(JobId),
}

/// The answer to a [`MarketRequest`].
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub enum MarketResponse {
    /// A signed [`Bid`](crate::Bid).
    Bid(Envelope),
    /// The candidate will not bid, and why.
    Declined(String),
    /// Taken (an award or a report).
    Accepted,
    /// Refused (an award, a report or a fetch), and why.
    Refused(String),
    /// The signed [`ResultReport`](crate::ResultReport) asked for by
    /// [`MarketRequest::FetchReport`].
    Report(Envelope),
}

/// Largest sync frame, in bytes.
pub const MAX_SYNC_FRAME: usize = 4 << 20;

/// Largest sync request, in bytes: a request is a few bytes; a large one is hostile.
pub const MAX_SYNC_REQUEST: usize = 64;

/// Most adverts in one sync answer.
pub const MAX_SYNC_ADVERTS: usize = 4096;

/// Most checkpoints in one sync answer (the asker asks again from where it got to).
pub const MAX_SYNC_CHECKPOINTS: usize = 64;

/// Most leaves (nodes with a reputation) in one sync answer.
pub const MAX_SYNC_LEAVES: usize = 65_536;

/// What a node asks a peer for. Exhaustive on purpose, like every wire enum here: a new
/// message fails to compile until the node serves it.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub enum SyncRequest {
    /// Every unexpired capability advert the peer holds.
    Adverts,
    /// Finalised checkpoints from epoch `from` on, at most [`MAX_SYNC_CHECKPOINTS`].
    Checkpoints {
        /// The first epoch wanted.
        from: u64,
    },
    /// The reputation leaves of the checkpoint of `epoch`.
    Leaves {
        /// The epoch.
        epoch: u64,
    },
}

/// The answer to a [`SyncRequest`].
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub enum SyncResponse {
    /// Signed advert envelopes, at most [`MAX_SYNC_ADVERTS`] and [`MAX_SYNC_FRAME`] bytes.
    Adverts(Vec<Vec<u8>>),
    /// Consecutive finalised checkpoints from the epoch asked for (none: the peer has none).
    Checkpoints(Vec<SignedCheckpoint>),
    /// The leaves, when the peer keeps them (it does for checkpoints whose table it computed).
    Leaves(Option<Vec<ReputationLeaf>>),
}

/// A sync answer with more items than its kind allows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{count} {what} in a sync answer exceed {max}")]
pub struct TooMany {
    /// What there were too many of.
    pub what: &'static str,
    /// How many.
    pub count: usize,
    /// The most allowed.
    pub max: usize,
}

impl SyncResponse {
    /// Checks the answer's item counts against their limits (the frame's byte limit is
    /// checked before decoding).
    pub fn check_bounds(&self) -> Result<(), TooMany> {
        let (what, count, max) = match self {
            SyncResponse::Adverts(adverts) => ("adverts", adverts.len(), MAX_SYNC_ADVERTS),
            SyncResponse::Checkpoints(chain) => ("checkpoints", chain.len(), MAX_SYNC_CHECKPOINTS),
            SyncResponse::Leaves(leaves) => (
                "leaves",
                leaves.as_ref().map_or(0, Vec::len),
                MAX_SYNC_LEAVES,
            ),
        };
        if count > max {
            return Err(TooMany { what, count, max });
        }
        Ok(())
    }
}
