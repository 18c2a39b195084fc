//! Reputation: a deterministic function of checked verdict evidence.
//!
//! Every node that applies the same verdicts in the same order computes the same table: each
//! verdict moves scores by fixed amounts and applies once. Scores are clamped, so the order
//! matters at the bounds; checkpoints therefore apply each epoch's verdicts in id order.
//! Agreeing with an accepted outcome earns little; dissenting costs much more; missing a
//! deadline costs in between (it rests on the requester's word alone). New identities start at
//! the initial score and stay on probation until they have agreed enough times.

use std::collections::{BTreeMap, BTreeSet};

use crate::merkle::ReputationLeaf;
use crate::messages::Evidence;
use crate::{NodeId, VerdictId};

/// The reputation rule's constants.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ReputationParams {
    /// Score of an identity never seen before. Default: `0`.
    pub initial: i64,
    /// Added for each report that agreed with an accepted outcome. Default: `1`.
    pub agree: i64,
    /// Added for each report that contradicted an accepted outcome. Default: `-50`, so one
    /// caught lie wipes out fifty honest jobs.
    pub dissent: i64,
    /// Added for each missed deadline. Default: `-5`.
    pub timeout: i64,
    /// Lowest score. Default: `-1000`.
    pub min: i64,
    /// Highest score. Default: `1000`.
    pub max: i64,
    /// Agreeing reports a node needs before it leaves probation. Default: `10`.
    pub probation_jobs: u64,
}

impl Default for ReputationParams {
    fn default() -> Self {
        Self {
            initial: 0,
            agree: 1,
            dissent: -50,
            timeout: -5,
            min: -1000,
            max: 1000,
            probation_jobs: 10,
        }
    }
}

/// One node's record.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Standing {
    /// Current score.
    pub score: i64,
    /// Reports that agreed with accepted outcomes.
    pub agreed: u64,
    /// Reports that contradicted accepted outcomes.
    pub dissented: u64,
    /// Deadlines missed.
    pub timed_out: u64,
}

impl Standing {
    /// Verdicts this record rests on.
    pub fn evidence_count(&self) -> u64 {
        self.agreed + self.dissented + self.timed_out
    }
}

/// The reputation table.
#[derive(Clone, Debug, Default)]
pub struct ReputationTable {
    params: ReputationParams,
    entries: BTreeMap<NodeId, Standing>,
    applied: BTreeSet<VerdictId>,
    /// The genesis set named in the network spec: established from the start.
    roots: BTreeSet<NodeId>,
}

impl ReputationTable {
    /// An empty table with the given constants.
    pub fn new(params: ReputationParams) -> Self {
        Self {
            params,
            entries: BTreeMap::new(),
            applied: BTreeSet::new(),
            roots: BTreeSet::new(),
        }
    }

    /// The table a checkpoint's leaves describe, for a node that adopts a checkpoint it did not
    /// compute (catching up). A leaf has the score and how many verdicts it rests on, not
    /// their kinds, so the count is kept as agreeing reports: later leaves, which depend on the
    /// score and the count alone, come out the same as on every other node.
    pub fn from_leaves(params: ReputationParams, leaves: &[ReputationLeaf]) -> Self {
        let entries = leaves
            .iter()
            .map(|leaf| {
                let standing = Standing {
                    score: leaf.score,
                    agreed: leaf.evidence_count,
                    dissented: 0,
                    timed_out: 0,
                };
                (leaf.peer, standing)
            })
            .collect();
        Self {
            params,
            entries,
            applied: BTreeSet::new(),
            roots: BTreeSet::new(),
        }
    }

    /// The same table with `roots` as its trust roots: the genesis set named in the network
    /// spec, established from genesis (never on probation). A table without roots (the
    /// default) describes a closed test cluster.
    pub fn with_roots(mut self, roots: impl IntoIterator<Item = NodeId>) -> Self {
        self.roots.extend(roots);
        self
    }

    /// Whether `peer` is one of the trust roots.
    pub fn is_root(&self, peer: &NodeId) -> bool {
        self.roots.contains(peer)
    }

    /// Whether the table has any trust roots (a public network names some in its spec).
    pub fn has_roots(&self) -> bool {
        !self.roots.is_empty()
    }

    /// The constants in use.
    pub fn params(&self) -> &ReputationParams {
        &self.params
    }

    /// Applies a checked verdict once; returns `false` (and changes nothing) when the verdict
    /// with this id was already applied.
    ///
    /// The set of applied ids grows with the verdicts of an epoch; the node clears it with
    /// [`ReputationTable::forget_applied`] once a checkpoint covers them and it refuses older
    /// verdicts.
    pub fn apply(&mut self, id: VerdictId, evidence: &Evidence) -> bool {
        if !self.applied.insert(id) {
            return false;
        }
        let p = self.params;
        for peer in &evidence.agreeing {
            self.adjust(peer, p.agree, |s| s.agreed += 1);
        }
        for peer in &evidence.dissenting {
            self.adjust(peer, p.dissent, |s| s.dissented += 1);
        }
        for peer in &evidence.timed_out {
            self.adjust(peer, p.timeout, |s| s.timed_out += 1);
        }
        true
    }

    fn adjust(&mut self, peer: &NodeId, delta: i64, count: impl FnOnce(&mut Standing)) {
        let p = self.params;
        let standing = self.entries.entry(*peer).or_insert(Standing {
            score: p.initial,
            agreed: 0,
            dissented: 0,
            timed_out: 0,
        });
        standing.score = standing.score.saturating_add(delta).clamp(p.min, p.max);
        count(standing);
    }

    /// Forgets which verdicts were applied (after a checkpoint covers them).
    pub fn forget_applied(&mut self) {
        self.applied.clear();
    }

    /// A node's record; a fresh one for a node never seen.
    pub fn standing(&self, peer: &NodeId) -> Standing {
        self.entries.get(peer).copied().unwrap_or(Standing {
            score: self.params.initial,
            agreed: 0,
            dissented: 0,
            timed_out: 0,
        })
    }

    /// Whether a node is still on probation: too few agreeing reports, or a score below the
    /// initial one. A trust root never is.
    pub fn on_probation(&self, peer: &NodeId) -> bool {
        if self.is_root(peer) {
            return false;
        }
        let s = self.standing(peer);
        s.agreed < self.params.probation_jobs || s.score < self.params.initial
    }

    /// How much the auction trusts a node: 1.0 at the initial score, rising by 1.0 per 100
    /// points, falling towards a floor of 0.05 below it.
    pub fn trust(&self, peer: &NodeId) -> f64 {
        let above_initial = self.standing(peer).score - self.params.initial;
        (1.0 + above_initial as f64 / 100.0).clamp(0.05, 11.0)
    }

    /// The table as Merkle leaves, sorted by peer.
    pub fn leaves(&self) -> Vec<ReputationLeaf> {
        self.entries
            .iter()
            .map(|(peer, s)| ReputationLeaf {
                peer: *peer,
                score: s.score,
                evidence_count: s.evidence_count(),
            })
            .collect()
    }

    /// Every node with a record, sorted by peer.
    pub fn iter(&self) -> impl Iterator<Item = (&NodeId, &Standing)> {
        self.entries.iter()
    }

    /// Ids of the verdicts applied since the last [`ReputationTable::forget_applied`], sorted:
    /// what a checkpoint's verdict root covers.
    pub fn applied_ids(&self) -> Vec<VerdictId> {
        self.applied.iter().copied().collect()
    }
}
