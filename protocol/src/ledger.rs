//! The reputation ledger as checkpoints see it: the table the finalised chain covers, and the
//! checked verdicts that came after it.
//!
//! A checkpoint proposed at time `t` covers exactly the uncovered verdicts issued at or before
//! `t - settle`. Every node derives that set from the proposal alone, so members agree while
//! verdicts keep arriving (which they did not when a proposal covered "everything the proposer
//! had", and a busy network finalised nothing). Within one checkpoint the verdicts apply in id
//! order, so clamped scores come out the same on every node whatever the order of arrival.
//!
//! Beside the table it holds the credit ledger ([`CreditLedger`]), covered by the same cutoffs,
//! so a checkpoint's leaves carry each peer's balance next to its reputation
//! ([`Ledger::leaves_at`]).
//!
//! A pure state machine: the node feeds it checked verdicts (their evidence and, for credits,
//! their settlements), faucet grants and the cutoffs of finalised checkpoints, and asks it for
//! the table and leaves a proposal covers; it never reads a clock.

use std::collections::BTreeMap;

use crate::credits::{
    CreditError, CreditEvent, CreditLedger, CreditParams, FaucetGrant, Settlement, check_leaves,
};
use crate::merkle::ReputationLeaf;
use crate::messages::Evidence;
use crate::reputation::{ReputationParams, ReputationTable};
use crate::{GrantId, NodeId, Timestamp, VerdictId};

/// Verdicts a node holds that no finalised checkpoint covers yet, at most. Past it, new
/// verdicts still count in the live table but not in checkpoints (the caller counts them).
pub const MAX_UNCOVERED: usize = 262_144;

/// The longest a verdict waits after it was issued before a proposal may cover it.
const MAX_SETTLE_MS: u64 = 10_000;

/// How long after a verdict was issued a proposal may cover it: half an epoch, at most
/// [`MAX_SETTLE_MS`]. Long enough for gossip to bring it to every member first.
pub fn settle_ms(epoch_ms: u64) -> u64 {
    (epoch_ms / 2).min(MAX_SETTLE_MS)
}

/// Covered table plus uncovered verdicts.
#[derive(Clone, Debug, Default)]
pub struct Ledger {
    /// The table the last finalised checkpoint covers; its applied-id set is kept empty.
    base: ReputationTable,
    /// Checked verdicts no finalised checkpoint covers: id -> (issued at, evidence).
    uncovered: BTreeMap<VerdictId, (Timestamp, Evidence)>,
    /// Changes on every new verdict and every finalised checkpoint.
    version: u64,
    /// The cutoff of the last finalised checkpoint.
    covered_until: Timestamp,
    /// Balances, covered by the same cutoffs.
    credits: CreditLedger,
}

impl Ledger {
    /// An empty ledger whose tables weigh verdicts by standing rooted in `roots` (see
    /// [`crate::reputation`]).
    pub fn with_roots(roots: Vec<NodeId>) -> Self {
        Self {
            base: ReputationTable::default().with_roots(roots),
            ..Self::default()
        }
    }

    /// The same ledger with balances from `params`' genesis (without, no identity holds
    /// credits and every leaf's balance is 0).
    pub fn with_credits(mut self, params: CreditParams) -> Result<Self, CreditError> {
        self.credits = CreditLedger::new(params)?;
        self.version += 1;
        Ok(self)
    }

    /// The credit ledger.
    pub fn credits(&self) -> &CreditLedger {
        &self.credits
    }

    /// Records what checked verdict `id` owes (next to [`Ledger::note`] of its evidence);
    /// `false` when the credit ledger is full.
    pub fn note_settlement(&mut self, id: VerdictId, settlement: Settlement) -> bool {
        self.version += 1;
        self.credits.note_settlement(id, settlement)
    }

    /// Records a verified faucet grant; `false` when the credit ledger is full.
    pub fn note_grant(&mut self, id: GrantId, grant: FaucetGrant) -> bool {
        self.version += 1;
        self.credits.note_grant(id, grant)
    }

    /// Records a credit event read back from the store after a restart (see
    /// [`Ledger::restore`]).
    pub fn restore_credit(&mut self, event: CreditEvent) -> bool {
        self.version += 1;
        self.credits.restore(event)
    }

    /// The leaves of a checkpoint with this cutoff: the table's, with balances
    /// ([`crate::credits::CreditBook::leaves`]).
    pub fn leaves_at(&self, cutoff: Timestamp) -> Vec<ReputationLeaf> {
        self.with_balances(&self.table_at(cutoff), cutoff)
    }

    /// `table`'s leaves (the table at `cutoff`) with the balances at `cutoff`.
    pub fn with_balances(&self, table: &ReputationTable, cutoff: Timestamp) -> Vec<ReputationLeaf> {
        let book = self.credits.book_at(cutoff);
        book.leaves(&table.leaves(), self.params().initial)
    }

    /// Checks that `leaves` hold exactly the credit supply: what every checkpoint is checked
    /// against before this node proposes or votes for it.
    pub fn check_leaves(&self, leaves: &[ReputationLeaf]) -> Result<(), CreditError> {
        check_leaves(leaves, self.credits.params())
    }

    /// Records a checked verdict; `false` when the ledger is full.
    ///
    /// A verdict issued by the last finalised cutoff arrived after that checkpoint was final;
    /// the members that had it in time put it there, so it goes straight into the covered
    /// table (left uncovered, it would make this node's next table differ from everyone's).
    pub fn note(&mut self, id: VerdictId, issued_at: Timestamp, evidence: Evidence) -> bool {
        if issued_at <= self.covered_until {
            self.base.apply(id, &evidence);
            self.base.forget_applied();
            self.version += 1;
            return true;
        }
        if self.uncovered.len() >= MAX_UNCOVERED && !self.uncovered.contains_key(&id) {
            return false;
        }
        self.uncovered.insert(id, (issued_at, evidence));
        self.version += 1;
        true
    }

    /// Records a verdict read back from the store after a restart: one issued by the
    /// cutoff of the restored checkpoint is already in its covered table and is skipped;
    /// later ones are uncovered as with [`Ledger::note`]. `false` when the ledger is full.
    pub fn restore(&mut self, id: VerdictId, issued_at: Timestamp, evidence: Evidence) -> bool {
        if issued_at <= self.covered_until {
            return true;
        }
        self.note(id, issued_at, evidence)
    }

    /// The reputation constants of the covered table.
    pub fn params(&self) -> ReputationParams {
        *self.base.params()
    }

    /// Changes whenever [`Ledger::table_at`] may give another answer for some cutoff.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The table a checkpoint with this cutoff covers; its `applied_ids` are the verdicts.
    pub fn table_at(&self, cutoff: Timestamp) -> ReputationTable {
        let mut table = self.base.clone();
        for (id, evidence) in self.covered(cutoff) {
            table.apply(*id, evidence);
        }
        table
    }

    /// Moves the verdicts a finalised checkpoint with this cutoff covers into the base.
    pub fn cover(&mut self, cutoff: Timestamp) {
        let ids: Vec<VerdictId> = self.covered(cutoff).map(|(id, _)| *id).collect();
        for id in ids {
            if let Some((_, evidence)) = self.uncovered.remove(&id) {
                self.base.apply(id, &evidence);
            }
        }
        self.base.forget_applied();
        // Deterministic on every node: the cutoff, not the local clock, decides.
        self.base.prune_jobs(cutoff);
        self.credits.cover(cutoff);
        self.covered_until = self.covered_until.max(cutoff);
        self.version += 1;
    }

    /// Takes `table` as the covered table of a checkpoint with this cutoff that this node did
    /// not compute itself (it caught up): verdicts that checkpoint covers leave the uncovered
    /// set, later ones stay. A table has no balances: the credit events this node holds up to
    /// the cutoff are covered instead ([`Ledger::adopt_leaves`] takes balances from leaves).
    pub fn adopt(&mut self, table: ReputationTable, cutoff: Timestamp) {
        self.credits.cover(cutoff);
        self.adopt_table(table, cutoff);
    }

    /// Takes a checkpoint's `leaves` (with this cutoff) that this node did not compute itself:
    /// the table as [`Ledger::adopt`] takes it, and the balances. When the balances do not add
    /// up to the supply the error says so, the table is adopted anyway and the credit events
    /// this node holds up to the cutoff are covered instead.
    pub fn adopt_leaves(
        &mut self,
        leaves: &[ReputationLeaf],
        cutoff: Timestamp,
    ) -> Result<(), CreditError> {
        let table = ReputationTable::from_leaves(self.params(), leaves);
        let credits = self.credits.adopt(leaves, cutoff);
        match credits {
            Ok(()) => self.adopt_table(table, cutoff),
            Err(_) => self.adopt(table, cutoff),
        }
        credits
    }

    fn adopt_table(&mut self, table: ReputationTable, cutoff: Timestamp) {
        let roots: Vec<_> = self.base.roots().copied().collect();
        let mut table = table.with_roots(roots);
        table.forget_applied();
        self.base = table;
        self.uncovered.retain(|_, (issued, _)| *issued > cutoff);
        self.covered_until = cutoff;
        self.version += 1;
    }

    /// Uncovered verdicts issued at or before `cutoff`, in id order.
    fn covered(&self, cutoff: Timestamp) -> impl Iterator<Item = (&VerdictId, &Evidence)> {
        self.uncovered
            .iter()
            .filter(move |(_, (issued, _))| *issued <= cutoff)
            .map(|(id, (_, evidence))| (id, evidence))
    }

    /// Verdicts not covered yet.
    #[cfg(test)]
    fn uncovered(&self) -> usize {
        self.uncovered.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::JobId;

    fn node(i: u8) -> NodeId {
        NodeId([i; 32])
    }

    fn evidence(agreeing: &[u8], dissenting: &[u8]) -> Evidence {
        // Each verdict a job of its own (one verdict per job), from a requester that counts.
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        Evidence {
            job: JobId::of(&n.to_le_bytes()),
            requester: node(250),
            issued_at: Timestamp(0),
            expires_at: Timestamp(u64::MAX),
            agreeing: agreeing.iter().map(|i| node(*i)).collect(),
            dissenting: dissenting.iter().map(|i| node(*i)).collect(),
            timed_out: Vec::new(),
        }
    }

    fn id(i: u8) -> VerdictId {
        VerdictId::of(&[i])
    }

    #[test]
    fn a_cutoff_covers_only_verdicts_issued_by_then() {
        let mut ledger = Ledger::default();
        ledger.note(id(1), Timestamp(100), evidence(&[1, 2], &[]));
        ledger.note(id(2), Timestamp(200), evidence(&[1], &[3]));
        let early = ledger.table_at(Timestamp(150));
        assert_eq!(early.applied_ids(), vec![id(1)]);
        assert_eq!(early.standing(&node(1)).agreed, 1);
        assert_eq!(early.standing(&node(3)).dissented, 0);
        let late = ledger.table_at(Timestamp(200));
        assert_eq!(late.applied_ids().len(), 2);
        assert_eq!(late.standing(&node(3)).dissented, 1);
    }

    #[test]
    fn arrival_order_does_not_change_the_table() {
        // Clamping makes the order of application matter: at the maximum, dissent then agree
        // differs from agree then dissent. The ledger applies in id order either way.
        let verdicts: Vec<(VerdictId, Evidence)> = (0..40)
            .map(|i| (id(i), evidence(&[1], &[])))
            .chain([
                (id(200), evidence(&[], &[1])),
                (id(201), evidence(&[1], &[])),
            ])
            .collect();
        let table = |order: &mut dyn Iterator<Item = &(VerdictId, Evidence)>| {
            let mut ledger = Ledger::default();
            for (i, e) in order {
                ledger.note(*i, Timestamp(1), e.clone());
            }
            ledger.table_at(Timestamp(1)).leaves()
        };
        assert_eq!(
            table(&mut verdicts.iter()),
            table(&mut verdicts.iter().rev())
        );
    }

    #[test]
    fn covering_moves_verdicts_into_the_base_once() {
        let mut ledger = Ledger::default();
        ledger.note(id(1), Timestamp(100), evidence(&[1], &[]));
        ledger.note(id(2), Timestamp(300), evidence(&[1], &[]));
        let before = ledger.version();
        ledger.cover(Timestamp(100));
        assert_ne!(ledger.version(), before);
        assert_eq!(ledger.uncovered(), 1);
        // The next checkpoint's verdicts are only the new one, on top of the covered table.
        let next = ledger.table_at(Timestamp(1_000));
        assert_eq!(next.applied_ids(), vec![id(2)]);
        assert_eq!(next.standing(&node(1)).agreed, 2);
        // Covering again with the same cutoff changes nothing.
        ledger.cover(Timestamp(100));
        assert_eq!(ledger.table_at(Timestamp(100)).standing(&node(1)).agreed, 1);
    }

    #[test]
    fn a_verdict_arriving_after_its_checkpoint_joins_the_covered_table() {
        let mut ledger = Ledger::default();
        ledger.note(id(1), Timestamp(100), evidence(&[1], &[]));
        ledger.cover(Timestamp(150));
        // Issued at 120, before the final cutoff, but received only now.
        ledger.note(id(2), Timestamp(120), evidence(&[1], &[]));
        assert_eq!(ledger.uncovered(), 0);
        let next = ledger.table_at(Timestamp(1_000));
        assert!(
            next.applied_ids().is_empty(),
            "not in the next checkpoint's verdicts"
        );
        assert_eq!(next.standing(&node(1)).agreed, 2, "but in its table");
    }

    #[test]
    fn an_adopted_table_replaces_what_its_cutoff_covers_and_keeps_later_verdicts() {
        // A node that started late holds only some of the verdicts a checkpoint covered.
        let mut late = Ledger::default();
        late.note(id(2), Timestamp(200), evidence(&[1], &[]));
        late.note(id(3), Timestamp(400), evidence(&[2], &[]));
        let mut everyone = Ledger::default();
        everyone.note(id(1), Timestamp(100), evidence(&[1], &[]));
        everyone.note(id(2), Timestamp(200), evidence(&[1], &[]));
        everyone.note(id(3), Timestamp(400), evidence(&[2], &[]));
        everyone.cover(Timestamp(300));
        let covered = everyone.table_at(Timestamp(300));
        assert_ne!(
            late.table_at(Timestamp(1_000)).leaves(),
            everyone.table_at(Timestamp(1_000)).leaves()
        );

        let before = late.version();
        late.adopt(covered, Timestamp(300));
        assert_ne!(late.version(), before);
        assert_eq!(late.uncovered(), 1);
        let (mine, theirs) = (
            late.table_at(Timestamp(1_000)),
            everyone.table_at(Timestamp(1_000)),
        );
        assert_eq!(mine.leaves(), theirs.leaves());
        assert_eq!(mine.applied_ids(), vec![id(3)]);
    }

    #[test]
    fn restored_verdicts_the_covered_table_holds_are_not_applied_twice() {
        let mut everyone = Ledger::default();
        everyone.note(id(1), Timestamp(100), evidence(&[1], &[]));
        everyone.cover(Timestamp(150));
        // A restarted node: the stored table, then the stored verdicts replayed.
        let mut restarted = Ledger::default();
        restarted.adopt(everyone.table_at(Timestamp(150)), Timestamp(150));
        assert!(restarted.restore(id(1), Timestamp(100), evidence(&[1], &[])));
        assert!(restarted.restore(id(2), Timestamp(200), evidence(&[1], &[])));
        everyone.note(id(2), Timestamp(200), evidence(&[1], &[]));
        assert_eq!(
            restarted.table_at(Timestamp(1_000)).leaves(),
            everyone.table_at(Timestamp(1_000)).leaves()
        );
        assert_eq!(restarted.uncovered(), 1);
    }

    #[test]
    fn a_full_ledger_refuses_new_verdicts() {
        let mut ledger = Ledger::default();
        for i in 0..MAX_UNCOVERED as u32 {
            assert!(ledger.note(
                VerdictId::of(&i.to_be_bytes()),
                Timestamp(1),
                evidence(&[], &[])
            ));
        }
        assert!(!ledger.note(id(0), Timestamp(1), evidence(&[1], &[])));
        assert_eq!(ledger.uncovered(), MAX_UNCOVERED);
    }

    #[test]
    fn settle_is_half_an_epoch_at_most_ten_seconds() {
        assert_eq!(settle_ms(1_500), 750);
        assert_eq!(settle_ms(600_000), 10_000);
    }
}
