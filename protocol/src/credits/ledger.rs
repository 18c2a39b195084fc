//! The credit book as checkpoints see it: the book the finalised chain covers, and the checked
//! settlements and grants that came after it. The same shape and the same cutoff rule as the
//! reputation [`crate::ledger::Ledger`], which holds one of these beside its table.
//!
//! Within one checkpoint the events apply in id order (every settlement by verdict id, then
//! every grant by grant id), so a requester's shortfall and the pools running dry come out the
//! same on every node whatever the order of arrival.

use std::collections::BTreeMap;

use super::{CreditBook, CreditError, CreditParams, FaucetGrant, Settlement};
use crate::ledger::MAX_UNCOVERED;
use crate::merkle::ReputationLeaf;
use crate::{GrantId, Timestamp, VerdictId};

/// The order events apply in within a checkpoint: settlements first, each kind by id.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum EventId {
    /// A verdict's settlement.
    Verdict(VerdictId),
    /// A faucet grant.
    Grant(GrantId),
}

/// A checked event that moves credits, with its id.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum CreditEvent {
    /// What a verdict owes ([`Settlement::from_verdict`]).
    Settlement {
        /// The verdict's id.
        verdict: VerdictId,
        /// What it owes.
        settlement: Settlement,
    },
    /// A faucet grant whose envelope was verified.
    Grant {
        /// The hash of its envelope.
        id: GrantId,
        /// The grant.
        grant: FaucetGrant,
    },
}

impl CreditEvent {
    /// Where the event sorts within a checkpoint.
    pub fn id(&self) -> EventId {
        match self {
            CreditEvent::Settlement { verdict, .. } => EventId::Verdict(*verdict),
            CreditEvent::Grant { id, .. } => EventId::Grant(*id),
        }
    }

    /// When the verdict or grant was issued: what a checkpoint's cutoff compares.
    pub fn issued_at(&self) -> Timestamp {
        match self {
            CreditEvent::Settlement { settlement, .. } => settlement.issued_at,
            CreditEvent::Grant { grant, .. } => grant.issued_at,
        }
    }

    fn apply(&self, book: &mut CreditBook) {
        match self {
            CreditEvent::Settlement { settlement, .. } => {
                book.settle(settlement);
            }
            CreditEvent::Grant { id, grant } => {
                book.grant(*id, grant);
            }
        }
    }
}

/// Covered book plus uncovered events.
#[derive(Clone, Debug, Default)]
pub struct CreditLedger {
    base: CreditBook,
    uncovered: BTreeMap<EventId, CreditEvent>,
    version: u64,
    covered_until: Timestamp,
}

impl CreditLedger {
    /// A ledger at genesis.
    pub fn new(params: CreditParams) -> Result<Self, CreditError> {
        Ok(Self {
            base: CreditBook::new(params)?,
            ..Self::default()
        })
    }

    /// The parameters in use.
    pub fn params(&self) -> &CreditParams {
        self.base.params()
    }

    /// Changes whenever [`CreditLedger::book_at`] may give another answer for some cutoff.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Records what checked verdict `verdict` owes; `false` when the ledger is full.
    pub fn note_settlement(&mut self, verdict: VerdictId, settlement: Settlement) -> bool {
        self.note(CreditEvent::Settlement {
            verdict,
            settlement,
        })
    }

    /// Records a verified faucet grant `id` (the hash of its envelope); `false` when full.
    pub fn note_grant(&mut self, id: GrantId, grant: FaucetGrant) -> bool {
        self.note(CreditEvent::Grant { id, grant })
    }

    /// Records a checked event; `false` when the ledger is full. As with reputation, an event
    /// issued by the last finalised cutoff arrived after that checkpoint was final: it goes
    /// straight into the covered book.
    pub fn note(&mut self, event: CreditEvent) -> bool {
        if event.issued_at() <= self.covered_until {
            event.apply(&mut self.base);
            self.version += 1;
            return true;
        }
        let id = event.id();
        if self.uncovered.len() >= MAX_UNCOVERED && !self.uncovered.contains_key(&id) {
            return false;
        }
        self.uncovered.insert(id, event);
        self.version += 1;
        true
    }

    /// Records an event read back from the store after a restart: one issued by the cutoff of
    /// the restored checkpoint is already in its covered book and is skipped.
    pub fn restore(&mut self, event: CreditEvent) -> bool {
        if event.issued_at() <= self.covered_until {
            return true;
        }
        self.note(event)
    }

    /// The book a checkpoint with this cutoff covers.
    pub fn book_at(&self, cutoff: Timestamp) -> CreditBook {
        let mut book = self.base.clone();
        for event in self.covered(cutoff) {
            event.apply(&mut book);
        }
        book
    }

    /// The book with every event held: the balances a wallet shows now.
    pub fn latest(&self) -> CreditBook {
        self.book_at(Timestamp(u64::MAX))
    }

    /// Moves the events a finalised checkpoint with this cutoff covers into the base.
    pub fn cover(&mut self, cutoff: Timestamp) {
        let ids: Vec<EventId> = self.covered(cutoff).map(CreditEvent::id).collect();
        for id in ids {
            if let Some(event) = self.uncovered.remove(&id) {
                event.apply(&mut self.base);
            }
        }
        self.base.prune(cutoff);
        self.covered_until = self.covered_until.max(cutoff);
        self.version += 1;
    }

    /// Takes the balances of a checkpoint with this cutoff that this node did not compute
    /// (it caught up or restarted): they must add up to the supply. Events that checkpoint
    /// covers leave the uncovered set, later ones stay. On an error nothing changes.
    pub fn adopt(
        &mut self,
        leaves: &[ReputationLeaf],
        cutoff: Timestamp,
    ) -> Result<(), CreditError> {
        self.base = CreditBook::from_leaves(self.params().clone(), leaves)?;
        self.uncovered.retain(|_, event| event.issued_at() > cutoff);
        self.covered_until = cutoff;
        self.version += 1;
        Ok(())
    }

    /// Events not covered yet.
    pub fn uncovered(&self) -> usize {
        self.uncovered.len()
    }

    /// Uncovered events issued at or before `cutoff`, in id order.
    fn covered(&self, cutoff: Timestamp) -> impl Iterator<Item = &CreditEvent> {
        self.uncovered
            .values()
            .filter(move |event| event.issued_at() <= cutoff)
    }
}
