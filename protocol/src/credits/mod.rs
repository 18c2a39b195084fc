//! Credits: requesters pay providers for verified work, from evidence every node can check.
//!
//! Balances are a deterministic function of the network's genesis allocation ([`CreditParams`])
//! and of checked evidence: verdicts ([`Settlement::from_verdict`]: the requester-signed spec,
//! the award terms with their prices, the providers' signed reports with the fuel they used)
//! and faucet grants ([`FaucetGrant`], signed by the faucet the network spec names). Every node
//! that applies the same evidence in the same order holds the same [`CreditBook`]; within a
//! checkpoint the evidence applies in id order ([`CreditLedger`]), like reputation, so the
//! order of arrival never matters.
//!
//! # The rules (docs/credits.md says the same for users)
//!
//! - **Supply is fixed at genesis.** The book starts with the genesis allocation, the faucet's
//!   total in the faucet pool account ([`faucet_pool`]) and the reward pool in its own account
//!   ([`reward_pool`]). After that credits only move: the sum of all balances always equals
//!   [`CreditParams::supply`] ([`CreditBook::check_conservation`], [`check_leaves`]).
//! - **A verdict pays agreeing providers** their award price for the fuel the job used:
//!   `owed = floor(price × fuel_used / fuel_limit)` ([`charge`]), where `price` is the award's
//!   price for one replica run to the spec's fuel limit (what [`crate::provider::price_for`]
//!   bids) and `fuel_used` is the lower median of the agreeing reports' fuel, capped at the
//!   limit. Dissenters, no-shows and no-quorum verdicts are paid nothing. Hidden replicas and
//!   audits are awards like any other, paid the same way.
//! - **A requester cannot pay more than it has.** When a verdict owes more than the
//!   requester's balance, each agreeing provider gets `floor(owed × balance / total_owed)`; the
//!   rounding dust stays with the requester, and the [`Payment`] records the shortfall. Escrow
//!   ([`Escrow`]) is what keeps an honest requester from getting there; the ledger makes sure a
//!   dishonest one cannot create credits anyway.
//! - **One settlement per job.** A second verdict for a settled job pays nothing.
//! - **Faucet grants** move credits from the faucet pool to the recipient, never lifting the
//!   recipient's balance above [`Faucet::per_identity`], and stop when the pool is empty.
//! - **Energy rewards** are bonuses on what a provider was paid, from the reward pool, never
//!   minted: they stop when the pool is empty ([`EnergyRewards`]).

use bincode::{Decode, Encode};

use crate::{NodeId, Timestamp};

mod book;
mod escrow;
mod grant;
mod ledger;
mod settlement;

pub use book::{CreditBook, GrantRefusal, Granted, Payment, Payout, Settled, check_leaves};
pub use escrow::{Escrow, EscrowError, MAX_ESCROWED_AWARDS};
pub use grant::{FaucetGrant, GRANT_MAX_AGE_MS, GRANT_MAX_SKEW_MS, GrantError};
pub use ledger::{CreditEvent, CreditLedger, EventId};
pub use settlement::{Payee, Settlement, SettlementError, charge};

/// Basis points: a multiplier of `BPS + b` pays `b / BPS` more.
pub const BPS: u32 = 10_000;

/// Key-derivation context of the reward pool's account id.
const REWARD_POOL_CONTEXT: &str = "cairn 2026 credits reward pool account v1";
/// Key-derivation context of the faucet pool's account id.
const FAUCET_POOL_CONTEXT: &str = "cairn 2026 credits faucet pool account v1";

/// The account holding the reward pool. A hash, so nobody holds its key: only the rules move
/// its credits.
pub fn reward_pool() -> NodeId {
    NodeId(blake3::derive_key(REWARD_POOL_CONTEXT, b""))
}

/// The account holding what the faucet has left to grant. Apart from the faucet's own
/// identity, so credits the faucet earns as a provider never become grants.
pub fn faucet_pool() -> NodeId {
    NodeId(blake3::derive_key(FAUCET_POOL_CONTEXT, b""))
}

/// What a network spec says about credits. Fixed for the network's life.
#[derive(Clone, PartialEq, Eq, Debug, Default, Encode, Decode)]
pub struct CreditParams {
    /// The genesis allocation: each identity at most once. Default: none.
    pub genesis: Vec<(NodeId, u64)>,
    /// A faucet, for test networks. Default: none.
    pub faucet: Option<Faucet>,
    /// Credits set aside for energy rewards. Default: `0`.
    pub reward_pool: u64,
    /// Energy reward multipliers. Default: none.
    pub rewards: EnergyRewards,
}

/// A faucet: an identity whose signed grants give credits from a fixed pool.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Encode, Decode)]
pub struct Faucet {
    /// The identity that signs grants.
    pub id: NodeId,
    /// A grant never lifts a recipient's balance above this. A cap on what an identity holds,
    /// not on what it received in all: every node can check it from balances alone, a node
    /// that caught up from a checkpoint's leaves included.
    pub per_identity: u64,
    /// Credits the faucet can ever grant: its pool at genesis.
    pub total: u64,
}

/// Energy-aware reward multipliers, in basis points on top of what a provider was paid. The
/// bonus comes from the reward pool and stops when it is empty.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, Encode, Decode)]
pub struct EnergyRewards {
    /// Bonus for a provider that declared renewable energy, in basis points. Default `0`.
    pub renewable_bps: u32,
    /// Bonus for work whose verdict was issued in the off-peak window. Default `0`.
    pub off_peak_bps: u32,
    /// The off-peak window, in UTC hours. Default: none.
    pub off_peak: Option<OffPeak>,
}

/// Hours of the day, UTC, from `start_hour` up to (not including) `end_hour`; wraps past
/// midnight when `end_hour < start_hour`.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Encode, Decode)]
pub struct OffPeak {
    /// First hour, 0 to 23.
    pub start_hour: u8,
    /// Hour after the last, 0 to 23.
    pub end_hour: u8,
}

impl OffPeak {
    /// Whether `at` falls in the window.
    pub fn contains(&self, at: Timestamp) -> bool {
        let hour = (at.0 / 3_600_000 % 24) as u8;
        if self.start_hour <= self.end_hour {
            (self.start_hour..self.end_hour).contains(&hour)
        } else {
            hour >= self.start_hour || hour < self.end_hour
        }
    }
}

impl EnergyRewards {
    /// The bonus rate, in basis points, for a provider (renewable or not) paid by a verdict
    /// issued at `issued_at`.
    pub fn bps(&self, renewable: bool, issued_at: Timestamp) -> u64 {
        let green = if renewable { self.renewable_bps } else { 0 };
        let off_peak = match self.off_peak {
            Some(window) if window.contains(issued_at) => self.off_peak_bps,
            _ => 0,
        };
        u64::from(green) + u64::from(off_peak)
    }
}

/// Why credit parameters or a book's state are refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CreditError {
    /// The genesis allocation names an identity twice.
    #[error("genesis allocation names {peer} twice: merge its entries in the network spec")]
    DuplicateGenesis {
        /// The identity.
        peer: NodeId,
    },
    /// The genesis allocation names a pool account.
    #[error("genesis allocation names the pool account {peer}: fund pools with their own fields")]
    ReservedAccount {
        /// The account.
        peer: NodeId,
    },
    /// Genesis, faucet and reward pool add up to more than a `u64`.
    #[error("genesis, faucet and reward pool add up to more than {max} credits", max = u64::MAX)]
    SupplyOverflow,
    /// A multiplier above 100 % or an off-peak hour past 23.
    #[error("energy rewards out of range: {reason}")]
    BadRewards {
        /// What is wrong.
        reason: &'static str,
    },
    /// Balances do not add up to the supply: credits were created or destroyed.
    #[error("balances add up to {held}, the supply is {supply}: credits were created or destroyed")]
    NotConserved {
        /// Sum of balances.
        held: u128,
        /// The supply.
        supply: u64,
    },
}

impl CreditParams {
    /// Checks the parameters: each genesis identity once and no pool account, rewards in
    /// range, and a supply that fits in a `u64`.
    pub fn validate(&self) -> Result<(), CreditError> {
        let mut seen = std::collections::BTreeSet::new();
        let reserved = [reward_pool(), faucet_pool()];
        for (peer, _) in &self.genesis {
            if reserved.contains(peer) {
                return Err(CreditError::ReservedAccount { peer: *peer });
            }
            if !seen.insert(*peer) {
                return Err(CreditError::DuplicateGenesis { peer: *peer });
            }
        }
        let r = &self.rewards;
        if r.renewable_bps > BPS || r.off_peak_bps > BPS {
            return Err(CreditError::BadRewards {
                reason: "a multiplier above 10000 basis points (100 %)",
            });
        }
        if r.off_peak
            .is_some_and(|w| w.start_hour > 23 || w.end_hour > 23)
        {
            return Err(CreditError::BadRewards {
                reason: "an off-peak hour past 23",
            });
        }
        self.supply().map(|_| ())
    }

    /// Every credit there will ever be: genesis, plus the faucet's total, plus the reward pool.
    pub fn supply(&self) -> Result<u64, CreditError> {
        let faucet = self.faucet.map_or(0, |f| f.total);
        self.genesis
            .iter()
            .map(|(_, amount)| *amount)
            .chain([faucet, self.reward_pool])
            .try_fold(0u64, u64::checked_add)
            .ok_or(CreditError::SupplyOverflow)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_peak_windows_wrap_past_midnight() {
        let hour = |h: u64| Timestamp(h * 3_600_000 + 17);
        let night = OffPeak {
            start_hour: 22,
            end_hour: 6,
        };
        assert!(night.contains(hour(23)) && night.contains(hour(24 + 5)));
        assert!(!night.contains(hour(6)) && !night.contains(hour(12)));
        let noon = OffPeak {
            start_hour: 11,
            end_hour: 14,
        };
        assert!(noon.contains(hour(11)) && !noon.contains(hour(14)));
    }

    #[test]
    fn parameters_that_would_mint_or_confuse_are_refused() {
        let a = NodeId([1; 32]);
        let twice = CreditParams {
            genesis: vec![(a, 1), (a, 2)],
            ..CreditParams::default()
        };
        assert_eq!(
            twice.validate(),
            Err(CreditError::DuplicateGenesis { peer: a })
        );
        let pool = CreditParams {
            genesis: vec![(reward_pool(), 1)],
            ..CreditParams::default()
        };
        assert!(matches!(
            pool.validate(),
            Err(CreditError::ReservedAccount { .. })
        ));
        let huge = CreditParams {
            genesis: vec![(a, u64::MAX)],
            reward_pool: 1,
            ..CreditParams::default()
        };
        assert_eq!(huge.validate(), Err(CreditError::SupplyOverflow));
    }
}
