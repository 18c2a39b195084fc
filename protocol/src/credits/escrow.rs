//! Escrow: what a requester holds back for the awards it made, so that concurrent jobs never
//! promise more than its balance.
//!
//! Pure, and the requester's own: each award reserves its price (the most that replica can
//! cost, since a provider is paid at most its price, [`super::charge`]), hidden replicas,
//! escalations and audits included. A reservation is refused beyond the *available* balance,
//! `balance − reserved`. What a job holds is released when its verdict has been applied to the
//! book the balance comes from (the payment itself then shows in the balance), when the job
//! fails, or award by award when a provider misses its deadline (no-shows are paid nothing).
//!
//! Escrow moves no credits: it is a lien on the requester's own balance, so the book's
//! conservation (`sum of balances == supply`) includes it. Other nodes do not see it; the book
//! ([`super::CreditBook::settle`]) pays pro rata if a requester ignores it.

use std::collections::BTreeMap;

use crate::{JobId, NodeId};

/// Awards a requester holds in escrow at most.
pub const MAX_ESCROWED_AWARDS: usize = 65_536;

/// Why a reservation was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EscrowError {
    /// The available balance does not cover the award.
    #[error(
        "cannot hold {price} credits for job {job}: {available} available (balance {balance}, \
         {reserved} held for other awards); get credits on this network or lower the job's maximum price"
    )]
    InsufficientFunds {
        /// The job.
        job: JobId,
        /// The award's price.
        price: u64,
        /// The requester's balance.
        balance: u64,
        /// Already held for other awards.
        reserved: u64,
        /// `balance − reserved`.
        available: u64,
    },
    /// The provider already holds an award of the job.
    #[error("provider {provider} already holds an award of job {job}")]
    AlreadyReserved {
        /// The job.
        job: JobId,
        /// The provider.
        provider: NodeId,
    },
    /// [`MAX_ESCROWED_AWARDS`] awards are held already.
    #[error("{MAX_ESCROWED_AWARDS} awards are held in escrow already; wait for jobs to finish")]
    Full,
}

/// A requester's reservations, per job and awarded provider.
#[derive(Clone, Debug, Default)]
pub struct Escrow {
    awards: BTreeMap<(JobId, NodeId), u64>,
    reserved: u64,
}

impl Escrow {
    /// No reservations.
    pub fn new() -> Self {
        Self::default()
    }

    /// Held for every open award.
    pub fn reserved(&self) -> u64 {
        self.reserved
    }

    /// What a requester with `balance` can still promise.
    pub fn available(&self, balance: u64) -> u64 {
        balance.saturating_sub(self.reserved)
    }

    /// Held for `job`.
    pub fn held(&self, job: &JobId) -> u64 {
        self.job_awards(job).map(|(_, price)| *price).sum()
    }

    /// Awards held, over all jobs.
    pub fn len(&self) -> usize {
        self.awards.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.awards.is_empty()
    }

    /// Reserves `price` for the award of `job` to `provider`, if a requester with `balance`
    /// has that much available.
    pub fn reserve(
        &mut self,
        job: JobId,
        provider: NodeId,
        price: u64,
        balance: u64,
    ) -> Result<(), EscrowError> {
        if self.awards.contains_key(&(job, provider)) {
            return Err(EscrowError::AlreadyReserved { job, provider });
        }
        if self.awards.len() >= MAX_ESCROWED_AWARDS {
            return Err(EscrowError::Full);
        }
        let available = self.available(balance);
        if price > available {
            return Err(EscrowError::InsufficientFunds {
                job,
                price,
                balance,
                reserved: self.reserved,
                available,
            });
        }
        self.awards.insert((job, provider), price);
        self.reserved += price;
        Ok(())
    }

    /// Releases one award (its provider missed its deadline and will not be paid); returns
    /// what it held.
    pub fn release_award(&mut self, job: &JobId, provider: &NodeId) -> u64 {
        let held = self.awards.remove(&(*job, *provider)).unwrap_or(0);
        self.reserved -= held;
        held
    }

    /// Releases everything `job` holds (its verdict was applied, or it failed); returns what
    /// it held.
    pub fn release(&mut self, job: &JobId) -> u64 {
        let providers: Vec<NodeId> = self.job_awards(job).map(|((_, p), _)| *p).collect();
        providers
            .iter()
            .map(|provider| self.release_award(job, provider))
            .sum()
    }

    fn job_awards<'a>(
        &'a self,
        job: &JobId,
    ) -> impl Iterator<Item = (&'a (JobId, NodeId), &'a u64)> + 'a {
        let range = (*job, NodeId([0; 32]))..=(*job, NodeId([0xff; 32]));
        self.awards.range(range)
    }
}
