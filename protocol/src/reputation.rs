//! Reputation: a deterministic function of checked verdict evidence.
//!
//! Every node that applies the same verdicts in the same order computes the same table: each
//! verdict moves scores by fixed amounts and applies once. Scores are clamped, so the order
//! matters at the bounds; checkpoints therefore apply each epoch's verdicts in id order.
//! Agreeing with an accepted outcome earns little; dissenting costs much more; missing a
//! deadline costs in between (it rests on the requester's word alone). New identities start at
//! the initial score and stay on probation until they have agreed enough times.
//!
//! # Who may move a score
//!
//! A verdict proves that its job was real ([`crate::messages::Verdict::evidence`]), but anyone
//! can run real jobs among identities of their own. So what a verdict is worth depends on its
//! requester's standing, rooted in the network's genesis set (the *roots*, named in the network
//! spec):
//! - a root's verdicts count in full;
//! - a requester outside the roots whose own score reached [`ReputationParams::vouch_min`]
//!   (which only credit from roots can give, see below) *vouches*: its verdicts blame in full
//!   but credit a provider only up to [`ReputationParams::sponsored_max`], below `vouch_min`,
//!   so a voucher cannot make another voucher, nor lift anyone onto the committee;
//! - any other requester's verdicts move nothing.
//!
//! A table without roots (a closed test cluster) counts every requester in full.
//!
//! Each job gets one verdict: a second, different verdict for a job whose verdict counted is
//! equivocation, and costs its requester [`ReputationParams::equivocation`], once per job.

use std::collections::{BTreeMap, BTreeSet};

use bincode::{Decode, Encode};

use crate::merkle::ReputationLeaf;
use crate::messages::Evidence;
use crate::{JobId, NodeId, Timestamp, VerdictId};

/// Jobs whose verdict a table remembers (for one-verdict-per-job) at most; past it, counted
/// verdicts are refused until old entries expire ([`ReputationTable::prune_jobs`]).
pub const MAX_TRACKED_JOBS: usize = 262_144;

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
    /// Score from which a requester outside the roots vouches for its jobs' verdicts.
    /// Default: `100`.
    pub vouch_min: i64,
    /// Highest score credit from a vouching (non-root) requester can lift a provider to; kept
    /// below `vouch_min`. Default: `25`.
    pub sponsored_max: i64,
    /// Added to a requester for each job it issued two different verdicts for. Default:
    /// `-200`.
    pub equivocation: i64,
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
            vouch_min: 100,
            sponsored_max: 25,
            equivocation: -200,
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

/// What applying one verdict did.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Applied {
    /// The verdict moved scores: points credited and points debited (both as positive sums).
    Counted {
        /// Points added to providers.
        credited: i64,
        /// Points taken from providers.
        debited: i64,
    },
    /// The requester has no standing: the verdict moves nothing.
    NoStanding,
    /// This verdict was applied before.
    Duplicate,
    /// The job already has another verdict: its requester equivocated and lost this many
    /// points (0 when it was already penalised for this job).
    Equivocation {
        /// Points taken from the requester.
        debited: i64,
    },
    /// The table remembers [`MAX_TRACKED_JOBS`] jobs already; nothing moved.
    Full,
}

impl Applied {
    /// Whether the table changed.
    pub fn changed(&self) -> bool {
        matches!(
            self,
            Applied::Counted { .. } | Applied::Equivocation { debited: 1.. }
        )
    }
}

/// How much a requester's verdicts count.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum RequesterWeight {
    /// In full: a root, or any requester in a table without roots.
    Full,
    /// Blame in full, credit only up to [`ReputationParams::sponsored_max`].
    Vouching,
    /// Not at all.
    None,
}

/// The verdict a table took for one job.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Encode, Decode)]
struct JobEntry {
    verdict: VerdictId,
    expires_at: Timestamp,
    equivocated: bool,
}

/// The reputation table.
#[derive(Clone, Debug, Default)]
pub struct ReputationTable {
    params: ReputationParams,
    roots: BTreeSet<NodeId>,
    entries: BTreeMap<NodeId, Standing>,
    applied: BTreeSet<VerdictId>,
    jobs: BTreeMap<JobId, JobEntry>,
}

impl ReputationTable {
    /// An empty table with the given constants.
    pub fn new(params: ReputationParams) -> Self {
        Self {
            params,
            ..Self::default()
        }
    }

    /// The same table with `roots` added to the network's genesis set (see the module docs).
    #[must_use]
    pub fn with_roots(mut self, roots: impl IntoIterator<Item = NodeId>) -> Self {
        self.roots.extend(roots);
        self
    }

    /// Whether `peer` is one of the network's roots.
    pub fn is_root(&self, peer: &NodeId) -> bool {
        self.roots.contains(peer)
    }

    /// Whether the table has roots (else every requester counts in full).
    pub fn has_roots(&self) -> bool {
        !self.roots.is_empty()
    }

    /// The roots, sorted.
    pub fn roots(&self) -> impl Iterator<Item = &NodeId> {
        self.roots.iter()
    }

    /// How much `requester`'s verdicts count now.
    pub fn weight_of(&self, requester: &NodeId) -> RequesterWeight {
        if self.roots.is_empty() || self.roots.contains(requester) {
            RequesterWeight::Full
        } else if self.standing(requester).score >= self.params.vouch_min {
            RequesterWeight::Vouching
        } else {
            RequesterWeight::None
        }
    }

    /// The table a checkpoint's leaves describe, for a node that adopts a checkpoint it did not
    /// compute (catching up). A leaf has the score and how many verdicts it rests on, not
    /// their kinds, so the count is kept as agreeing reports: later leaves, which depend on the
    /// score and the count alone, come out the same as on every other node. A leaf with the
    /// initial score and no evidence is there for its credit balance alone ([`crate::credits`])
    /// and makes no entry: such an entry would say nothing a missing one does not.
    pub fn from_leaves(params: ReputationParams, leaves: &[ReputationLeaf]) -> Self {
        let entries = leaves
            .iter()
            .filter(|leaf| leaf.score != params.initial || leaf.evidence_count != 0)
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
            ..Self::default()
        }
    }

    /// The constants in use.
    pub fn params(&self) -> &ReputationParams {
        &self.params
    }

    /// Applies a checked verdict once, weighed by its requester's standing (see the module
    /// docs), and says what it did.
    ///
    /// The set of applied ids grows with the verdicts of an epoch; the node clears it with
    /// [`ReputationTable::forget_applied`] once a checkpoint covers them. One verdict per job
    /// is kept apart from it, until the job's last valid verdict time
    /// ([`ReputationTable::prune_jobs`]).
    pub fn apply(&mut self, id: VerdictId, evidence: &Evidence) -> Applied {
        if self.applied.contains(&id) {
            return Applied::Duplicate;
        }
        let weight = self.weight_of(&evidence.requester);
        if weight == RequesterWeight::None {
            return Applied::NoStanding;
        }
        if let Some(entry) = self.jobs.get_mut(&evidence.job) {
            if entry.verdict == id {
                return Applied::Duplicate;
            }
            self.applied.insert(id);
            let first = !std::mem::replace(&mut entry.equivocated, true);
            let penalty = if first { self.params.equivocation } else { 0 };
            let debited = self.adjust(&evidence.requester, penalty, None, |_| {});
            return Applied::Equivocation { debited: -debited };
        }
        if self.jobs.len() >= MAX_TRACKED_JOBS {
            return Applied::Full;
        }
        self.applied.insert(id);
        let entry = JobEntry {
            verdict: id,
            expires_at: evidence.expires_at,
            equivocated: false,
        };
        self.jobs.insert(evidence.job, entry);
        let p = self.params;
        let ceiling = (weight == RequesterWeight::Vouching).then_some(p.sponsored_max);
        let mut credited = 0;
        let mut debited = 0;
        for peer in &evidence.agreeing {
            credited += self.adjust(peer, p.agree, ceiling, |s| s.agreed += 1);
        }
        for peer in &evidence.dissenting {
            debited -= self.adjust(peer, p.dissent, None, |s| s.dissented += 1);
        }
        for peer in &evidence.timed_out {
            debited -= self.adjust(peer, p.timeout, None, |s| s.timed_out += 1);
        }
        Applied::Counted { credited, debited }
    }

    /// Forgets the verdicts of jobs whose last valid verdict time is before `now`: a later
    /// verdict for such a job is refused by its own check, so it needs no memory here.
    pub fn prune_jobs(&mut self, now: Timestamp) {
        self.jobs.retain(|_, entry| entry.expires_at >= now);
    }

    /// How many verdict ids are held since the last [`ReputationTable::forget_applied`].
    pub fn applied_ids_len(&self) -> usize {
        self.applied.len()
    }

    /// Jobs whose verdict this table remembers.
    pub fn tracked_jobs(&self) -> usize {
        self.jobs.len()
    }

    /// Moves `peer`'s score by `delta` (a credit never above `ceiling`, nor lowering a score
    /// already above it) and returns the change made.
    fn adjust(
        &mut self,
        peer: &NodeId,
        delta: i64,
        ceiling: Option<i64>,
        count: impl FnOnce(&mut Standing),
    ) -> i64 {
        let p = self.params;
        let standing = self.entries.entry(*peer).or_insert(Standing {
            score: p.initial,
            agreed: 0,
            dissented: 0,
            timed_out: 0,
        });
        let before = standing.score;
        let mut after = before.saturating_add(delta).clamp(p.min, p.max);
        if let Some(ceiling) = ceiling {
            after = after.min(before.max(ceiling));
        }
        standing.score = after;
        count(standing);
        after - before
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

    /// Whether a node is on probation: a score below the initial one (it was caught), or,
    /// unless it is a trust root, too few agreeing reports. A root needs no track record, but
    /// a root caught cheating is on probation like anyone else: standing from genesis is not a
    /// licence.
    pub fn on_probation(&self, peer: &NodeId) -> bool {
        let s = self.standing(peer);
        s.score < self.params.initial
            || (!self.roots.contains(peer) && s.agreed < self.params.probation_jobs)
    }

    /// How much the auction trusts a node: 1.0 at the initial score, rising by 1.0 per 100
    /// points, falling towards a floor of 0.05 below it.
    pub fn trust(&self, peer: &NodeId) -> f64 {
        let above_initial = self.standing(peer).score - self.params.initial;
        (1.0 + above_initial as f64 / 100.0).clamp(0.05, 11.0)
    }

    /// The table as Merkle leaves, sorted by peer, with balances of zero (a checkpoint's
    /// leaves with balances are [`crate::credits::CreditBook::leaves`] of these).
    pub fn leaves(&self) -> Vec<ReputationLeaf> {
        self.entries
            .iter()
            .map(|(peer, s)| ReputationLeaf {
                peer: *peer,
                score: s.score,
                evidence_count: s.evidence_count(),
                balance: 0,
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
