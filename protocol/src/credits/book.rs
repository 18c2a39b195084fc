//! The credit book: every identity's balance, moved only by settlements and grants.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{
    BPS, CreditError, CreditParams, FaucetGrant, Payee, Settlement, faucet_pool, reward_pool,
};
use crate::merkle::ReputationLeaf;
use crate::reputation::MAX_TRACKED_JOBS;
use crate::{GrantId, JobId, NodeId, Timestamp};

/// What one agreeing provider got from a settlement.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Payout {
    /// The provider.
    pub provider: NodeId,
    /// What the verdict owed it ([`super::charge`]).
    pub owed: u64,
    /// What the requester paid it: `owed`, or its pro-rata share when the requester could not
    /// pay everything.
    pub paid: u64,
    /// Energy reward on top, from the reward pool.
    pub bonus: u64,
}

/// What a settlement moved: the record of a job's payment (for a wallet's history).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Payment {
    /// The job.
    pub job: JobId,
    /// The requester, who paid.
    pub requester: NodeId,
    /// One entry per agreeing provider, sorted by provider.
    pub payouts: Vec<Payout>,
}

impl Payment {
    /// What the verdict owed in all.
    pub fn owed(&self) -> u64 {
        self.sum(|p| p.owed)
    }

    /// What the requester paid in all.
    pub fn paid(&self) -> u64 {
        self.sum(|p| p.paid)
    }

    /// What the requester owed but could not pay.
    pub fn shortfall(&self) -> u64 {
        self.owed().saturating_sub(self.paid())
    }

    /// Energy rewards paid from the pool.
    pub fn bonus(&self) -> u64 {
        self.sum(|p| p.bonus)
    }

    fn sum(&self, field: impl Fn(&Payout) -> u64) -> u64 {
        self.payouts
            .iter()
            .fold(0, |sum, p| sum.saturating_add(field(p)))
    }
}

/// What applying one settlement did.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Settled {
    /// Credits moved as recorded (possibly nothing, for a job with no agreeing provider).
    Paid(Payment),
    /// The job was settled before: a second verdict pays nothing.
    Duplicate,
    /// The book remembers [`MAX_TRACKED_JOBS`] settled jobs already; nothing moved.
    Full,
}

/// Why a grant credited nothing.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum GrantRefusal {
    /// The network has no faucet.
    NoFaucet,
    /// The grant is not signed by the network's faucet.
    NotTheFaucet,
    /// The recipient is a pool account or the faucet itself.
    BadRecipient,
    /// The recipient already holds the faucet's per-identity cap.
    AtCap,
    /// The faucet pool is empty.
    FaucetEmpty,
}

/// What applying one grant did.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Granted {
    /// The recipient received this much (at most what was asked).
    Credited {
        /// Credits moved from the faucet pool.
        amount: u64,
    },
    /// Nothing moved.
    Refused(GrantRefusal),
    /// This grant was applied before.
    Duplicate,
    /// The book remembers [`MAX_TRACKED_JOBS`] grants already; nothing moved.
    Full,
}

/// Every identity's balance (see [`crate::credits`] for the rules).
#[derive(Clone, Debug, Default)]
pub struct CreditBook {
    params: Arc<CreditParams>,
    supply: u64,
    /// Non-zero balances only.
    balances: BTreeMap<NodeId, u64>,
    /// Settled jobs, until their last valid verdict time.
    jobs: BTreeMap<JobId, Timestamp>,
    /// Applied grants, until they are too old to be accepted anyway.
    grants: BTreeMap<GrantId, Timestamp>,
}

impl CreditBook {
    /// The book at genesis: the allocation, the faucet pool and the reward pool.
    pub fn new(params: CreditParams) -> Result<Self, CreditError> {
        params.validate()?;
        let supply = params.supply()?;
        let mut book = Self {
            supply,
            ..Self::default()
        };
        for (peer, amount) in &params.genesis {
            book.credit(peer, *amount);
        }
        book.credit(&faucet_pool(), params.faucet.map_or(0, |f| f.total));
        book.credit(&reward_pool(), params.reward_pool);
        book.params = Arc::new(params);
        Ok(book)
    }

    /// The book a checkpoint's leaves describe, for a node that adopts a checkpoint it did not
    /// compute: their balances, which must add up to the supply. The leaves do not say which
    /// jobs and grants were applied, so a second verdict for a job settled before the
    /// checkpoint is not recognised as such here (as with reputation).
    pub fn from_leaves(
        params: CreditParams,
        leaves: &[ReputationLeaf],
    ) -> Result<Self, CreditError> {
        check_leaves(leaves, &params)?;
        let mut book = Self::new(params)?;
        book.balances = leaves
            .iter()
            .filter(|l| l.balance > 0)
            .map(|l| (l.peer, l.balance))
            .collect();
        Ok(book)
    }

    /// The parameters in use.
    pub fn params(&self) -> &CreditParams {
        &self.params
    }

    /// Every credit there is.
    pub fn supply(&self) -> u64 {
        self.supply
    }

    /// `peer`'s balance.
    pub fn balance(&self, peer: &NodeId) -> u64 {
        self.balances.get(peer).copied().unwrap_or(0)
    }

    /// Every non-zero balance, sorted by identity (the pool accounts included).
    pub fn iter(&self) -> impl Iterator<Item = (&NodeId, &u64)> {
        self.balances.iter()
    }

    /// Jobs this book remembers as settled.
    pub fn tracked_jobs(&self) -> usize {
        self.jobs.len()
    }

    /// Pays what a checked verdict owes, once per job (see [`crate::credits`]): each agreeing
    /// provider its charge, pro rata when the requester's balance falls short, then the energy
    /// bonus from the reward pool while it lasts.
    pub fn settle(&mut self, settlement: &Settlement) -> Settled {
        if self.jobs.contains_key(&settlement.job) {
            return Settled::Duplicate;
        }
        if self.jobs.len() >= MAX_TRACKED_JOBS {
            return Settled::Full;
        }
        self.jobs.insert(settlement.job, settlement.expires_at);
        let mut payouts = self.payouts(settlement);
        let paid: u64 = payouts.iter().map(|p| p.paid).sum();
        self.debit(&settlement.requester, paid);
        for (payout, payee) in payouts.iter_mut().zip(&settlement.payees) {
            self.credit(&payout.provider, payout.paid);
            payout.bonus = self.pay_bonus(payout, payee, settlement.issued_at);
        }
        Settled::Paid(Payment {
            job: settlement.job,
            requester: settlement.requester,
            payouts,
        })
    }

    /// What each agreeing provider is owed and paid: in full when the requester's balance
    /// covers the total, else pro rata (never more than the balance in all).
    fn payouts(&self, settlement: &Settlement) -> Vec<Payout> {
        let total = settlement.total_owed();
        let available = u128::from(self.balance(&settlement.requester));
        let share = |owed: u64| {
            if total <= available {
                owed
            } else {
                // `available < total`, so the share is below `owed`.
                u64::try_from(u128::from(owed) * available / total).unwrap_or(0)
            }
        };
        (settlement.payees.iter())
            .map(|payee| {
                let owed = settlement.owed(payee);
                Payout {
                    provider: payee.provider,
                    owed,
                    paid: share(owed),
                    bonus: 0,
                }
            })
            .collect()
    }

    /// Moves `payout`'s energy bonus from the reward pool while it lasts; returns it.
    fn pay_bonus(&mut self, payout: &Payout, payee: &Payee, issued_at: Timestamp) -> u64 {
        let bps = self.params.rewards.bps(payee.renewable, issued_at);
        let earned = u128::from(payout.paid) * u128::from(bps) / u128::from(BPS);
        let pool = self.balance(&reward_pool());
        let bonus = u64::try_from(earned).unwrap_or(u64::MAX).min(pool);
        self.debit(&reward_pool(), bonus);
        self.credit(&payout.provider, bonus);
        bonus
    }

    /// Applies a faucet grant `id` (the hash of its envelope, which the caller verified):
    /// credits from the faucet pool, never lifting the recipient above the per-identity cap.
    pub fn grant(&mut self, id: GrantId, grant: &FaucetGrant) -> Granted {
        let Some(faucet) = self.params.faucet else {
            return Granted::Refused(GrantRefusal::NoFaucet);
        };
        if grant.faucet != faucet.id {
            return Granted::Refused(GrantRefusal::NotTheFaucet);
        }
        if self.grants.contains_key(&id) {
            return Granted::Duplicate;
        }
        if self.grants.len() >= MAX_TRACKED_JOBS {
            return Granted::Full;
        }
        self.grants.insert(id, grant.expires_at());
        if [faucet.id, faucet_pool(), reward_pool()].contains(&grant.recipient) {
            return Granted::Refused(GrantRefusal::BadRecipient);
        }
        let pool = self.balance(&faucet_pool());
        let room = faucet
            .per_identity
            .saturating_sub(self.balance(&grant.recipient));
        if pool == 0 {
            return Granted::Refused(GrantRefusal::FaucetEmpty);
        }
        if room == 0 {
            return Granted::Refused(GrantRefusal::AtCap);
        }
        let amount = grant.amount.min(room).min(pool);
        self.debit(&faucet_pool(), amount);
        self.credit(&grant.recipient, amount);
        Granted::Credited { amount }
    }

    /// Forgets settled jobs and grants that expired before `cutoff`: evidence for them is
    /// refused by its own freshness check from then on.
    pub fn prune(&mut self, cutoff: Timestamp) {
        self.jobs.retain(|_, expires| *expires >= cutoff);
        self.grants.retain(|_, expires| *expires >= cutoff);
    }

    /// Checks that the balances add up to the supply.
    pub fn check_conservation(&self) -> Result<(), CreditError> {
        let held: u128 = self.balances.values().map(|b| u128::from(*b)).sum();
        if held != u128::from(self.supply) {
            return Err(CreditError::NotConserved {
                held,
                supply: self.supply,
            });
        }
        Ok(())
    }

    /// A checkpoint's leaves: `reputation` (sorted by peer, as
    /// [`crate::reputation::ReputationTable::leaves`] gives them) with each peer's balance, plus
    /// a leaf at `initial_score` for every other identity holding credits. A leaf with the
    /// initial score, no evidence and no balance says nothing and is left out, so a node that
    /// rebuilt its table from leaves makes the same list.
    pub fn leaves(&self, reputation: &[ReputationLeaf], initial_score: i64) -> Vec<ReputationLeaf> {
        let mut merged: BTreeMap<NodeId, ReputationLeaf> = reputation
            .iter()
            .map(|leaf| {
                (
                    leaf.peer,
                    ReputationLeaf {
                        balance: 0,
                        ..*leaf
                    },
                )
            })
            .collect();
        for (peer, balance) in &self.balances {
            merged
                .entry(*peer)
                .or_insert(ReputationLeaf {
                    peer: *peer,
                    score: initial_score,
                    evidence_count: 0,
                    balance: 0,
                })
                .balance = *balance;
        }
        merged
            .into_values()
            .filter(|l| l.score != initial_score || l.evidence_count != 0 || l.balance != 0)
            .collect()
    }

    fn credit(&mut self, peer: &NodeId, amount: u64) {
        if amount > 0 {
            let balance = self.balances.entry(*peer).or_insert(0);
            *balance = balance.saturating_add(amount);
        }
    }

    /// Takes `amount` from `peer`, who holds at least that much (callers check).
    fn debit(&mut self, peer: &NodeId, amount: u64) {
        if let Some(balance) = self.balances.get_mut(peer) {
            *balance = balance.saturating_sub(amount);
            if *balance == 0 {
                self.balances.remove(peer);
            }
        }
    }
}

/// Checks that a checkpoint's leaves hold exactly the supply `params` define: what every
/// checkpoint can call, and what a verifier of a full leaf list can check offline.
pub fn check_leaves(leaves: &[ReputationLeaf], params: &CreditParams) -> Result<(), CreditError> {
    let supply = params.supply()?;
    let held: u128 = leaves.iter().map(|l| u128::from(l.balance)).sum();
    if held != u128::from(supply) {
        return Err(CreditError::NotConserved { held, supply });
    }
    Ok(())
}
