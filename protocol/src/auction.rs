//! Sealed-bid reverse auction: which bids are valid, and which bidders win.
//!
//! Each valid bid gets a weight: the bidder's [trust](ReputationTable::trust) times a price
//! factor, so cheaper and more reputable bids weigh more. The price factor is the round's
//! highest valid price divided by the bid's, capped at
//! [`SelectionParams::max_price_advantage`]: it lies between 1 and the cap, so no price, however
//! low, outweighs trust without bound. A bidder on probation counts with its trust scaled by
//! [`SelectionParams::probation_trust`], since identities are free and a fresh one would
//! otherwise weigh as much as an established provider (scaled, not capped, so that among
//! probationers a caught cheater still weighs far less than a clean newcomer). Bids far below the best weight (less
//! than [`SelectionParams::pool_ratio`] of it) drop out; with the defaults (a cap of 4, a ratio
//! of 1/4) price alone never drops a bid, only lower trust does. Winners are then drawn from the pool
//! by weighted sampling without replacement (Efraimidis–Spirakis keys), with randomness derived
//! from a seed the requester keeps secret: the draw is reproducible from the seed, but bidders
//! cannot predict who else will verify a job. Each bidder wins at most one replica.

use std::collections::BTreeSet;

use crate::messages::{Bid, JobSpec};
use crate::reputation::ReputationTable;
use crate::{JobId, NodeId, Timestamp};

const DRAW_CONTEXT: &str = "cairn 2026 auction draw v1";

/// The selection rule's constants.
#[derive(Clone, Copy, PartialEq, Debug)]
pub struct SelectionParams {
    /// Bids whose weight is below this fraction of the best weight do not enter the draw
    /// (unless needed to fill the replicas). Default: `0.25`.
    pub pool_ratio: f64,
    /// Most a low price can multiply a bid's weight: the price factor is the round's highest
    /// valid price divided by the bid's, capped here. Keep it at most `1 / pool_ratio`, so
    /// that cheap bids cannot push an equally trusted bid out of the pool. Default: `4.0`.
    pub max_price_advantage: f64,
    /// Factor on the trust of a bidder on probation (see
    /// [`ReputationTable::on_probation`]). A probationer's own trust is below 1.1 (fewer than
    /// ten agreeing reports) and established providers have at least 1, so with the defaults
    /// a bidder on probation weighs at most about `0.055 × 4 = 0.22`, below the pool of any
    /// round an established provider bids in: it then wins only replicas the pool cannot
    /// fill. Default: `0.05`.
    pub probation_trust: f64,
}

impl Default for SelectionParams {
    fn default() -> Self {
        Self {
            pool_ratio: 0.25,
            max_price_advantage: 4.0,
            probation_trust: 0.05,
        }
    }
}

impl SelectionParams {
    /// The weight of a bid at `price` by a bidder trusted `trust` (already capped for
    /// probation), in a round whose highest valid price is `reference`.
    pub fn weight(&self, trust: f64, price: u64, reference: u64) -> f64 {
        let advantage = reference.max(1) as f64 / price.max(1) as f64;
        trust * advantage.clamp(1.0, self.max_price_advantage.max(1.0))
    }
}

/// Why a bid did not enter the draw.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BidRejection {
    /// The bid is for another job.
    #[error("bid is for job {found}")]
    OtherJob {
        /// The job the bid names.
        found: JobId,
    },
    /// The bid's price is above the job's maximum.
    #[error("price {price} is above the job's maximum {max}")]
    TooExpensive {
        /// Price bid.
        price: u64,
        /// The job's maximum.
        max: u64,
    },
    /// The bid had lapsed.
    #[error("bid expired at {expires_at}")]
    Expired {
        /// When it lapsed.
        expires_at: Timestamp,
    },
    /// The bidder offers another sandbox than the job requires.
    #[error("bid runs sandbox {offered}, the job requires {required}")]
    WrongRuntime {
        /// Runtime offered.
        offered: String,
        /// Runtime required.
        required: String,
    },
    /// The bidder already bid or already holds a replica of this job.
    #[error("bidder already bid or holds a replica")]
    Duplicate,
    /// The requester cannot verify its own job.
    #[error("the requester cannot bid on its own job")]
    OwnJob,
}

/// A winning bid.
#[derive(Clone, PartialEq, Debug)]
pub struct Winner {
    /// The winning bidder.
    pub bidder: NodeId,
    /// The price it will be paid.
    pub price: u64,
    /// Its weight in the draw.
    pub weight: f64,
}

/// The outcome of a selection.
#[derive(Clone, PartialEq, Debug, Default)]
pub struct Selection {
    /// Winners, best key first; at most the number asked for.
    pub winners: Vec<Winner>,
    /// Bids that did not enter the draw, and why.
    pub rejected: Vec<(NodeId, BidRejection)>,
}

/// One job's auction: the job, the reputation table it is judged by, and the rule's constants.
#[derive(Clone, Copy, Debug)]
pub struct Auction<'a> {
    /// The job's id.
    pub job: JobId,
    /// The job.
    pub spec: &'a JobSpec,
    /// Reputation used to weigh bidders.
    pub reputation: &'a ReputationTable,
    /// Constants.
    pub params: SelectionParams,
}

impl Auction<'_> {
    /// Picks `count` winners among `bids` (already signature-checked).
    ///
    /// `exclude` holds providers that already hold a replica (for escalations); `seed` is the
    /// requester's secret randomness for this round.
    pub fn select(
        &self,
        bids: &[Bid],
        count: usize,
        exclude: &BTreeSet<NodeId>,
        seed: &[u8; 32],
        now: Timestamp,
    ) -> Selection {
        let mut selection = Selection::default();
        let mut seen = exclude.clone();
        let mut valid = Vec::new();
        for bid in bids {
            match check_bid(self.job, self.spec, bid, &seen, now) {
                Err(why) => selection.rejected.push((bid.bidder, why)),
                Ok(()) => {
                    seen.insert(bid.bidder);
                    valid.push(bid);
                }
            }
        }
        let reference = valid.iter().map(|b| b.price).max().unwrap_or(1);
        let mut pool: Vec<Winner> = valid
            .into_iter()
            .map(|bid| Winner {
                bidder: bid.bidder,
                price: bid.price,
                weight: self
                    .params
                    .weight(self.trust(&bid.bidder), bid.price, reference),
            })
            .collect();
        // Strongest first; ties broken by id so the order never depends on arrival.
        pool.sort_by(|a, b| b.weight.total_cmp(&a.weight).then(a.bidder.cmp(&b.bidder)));
        let best = pool.first().map_or(0.0, |w| w.weight);
        let floor = best * self.params.pool_ratio;
        let in_pool = pool.iter().take_while(|w| w.weight >= floor).count();
        pool.truncate(in_pool.max(count));

        let mut keyed: Vec<(f64, Winner)> = pool
            .into_iter()
            .map(|w| (draw_key(seed, self.job, &w), w))
            .collect();
        keyed.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.bidder.cmp(&b.1.bidder)));
        selection.winners = keyed.into_iter().take(count).map(|(_, w)| w).collect();
        selection
    }

    /// The trust a bidder counts with: scaled by [`SelectionParams::probation_trust`] while
    /// it is on probation.
    fn trust(&self, bidder: &NodeId) -> f64 {
        let trust = self.reputation.trust(bidder);
        if self.reputation.on_probation(bidder) {
            trust * self.params.probation_trust
        } else {
            trust
        }
    }
}

/// Why `bid` is not valid for `job` (`seen`: bidders already counted or excluded), if it is not.
pub(crate) fn check_bid(
    job: JobId,
    spec: &JobSpec,
    bid: &Bid,
    seen: &BTreeSet<NodeId>,
    now: Timestamp,
) -> Result<(), BidRejection> {
    if bid.job != job {
        return Err(BidRejection::OtherJob { found: bid.job });
    }
    if bid.bidder == spec.requester {
        return Err(BidRejection::OwnJob);
    }
    if seen.contains(&bid.bidder) {
        return Err(BidRejection::Duplicate);
    }
    if bid.price > spec.max_price {
        return Err(BidRejection::TooExpensive {
            price: bid.price,
            max: spec.max_price,
        });
    }
    if bid.expires_at <= now {
        return Err(BidRejection::Expired {
            expires_at: bid.expires_at,
        });
    }
    if let Some(required) = &spec.requirements.runtime
        && *required != bid.runtime
    {
        return Err(BidRejection::WrongRuntime {
            offered: bid.runtime.clone(),
            required: required.clone(),
        });
    }
    Ok(())
}

/// Efraimidis–Spirakis key `ln(u) / weight` with `u` in (0, 1) from the seed: the largest
/// keys win, and a bid wins with probability proportional to its weight.
fn draw_key(seed: &[u8; 32], job: JobId, winner: &Winner) -> f64 {
    let mut hasher = blake3::Hasher::new_keyed(&blake3::derive_key(DRAW_CONTEXT, seed));
    hasher.update(job.as_bytes());
    hasher.update(winner.bidder.as_bytes());
    let mut bits = [0u8; 8];
    bits.copy_from_slice(&hasher.finalize().as_bytes()[..8]);
    // 53 random bits, offset by half a step so u is never 0 or 1.
    let u = ((u64::from_le_bytes(bits) >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    u.ln() / winner.weight.max(f64::MIN_POSITIVE)
}
