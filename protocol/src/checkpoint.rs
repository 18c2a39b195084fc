//! Checkpoint rules: the network's genesis, who sits on the committee, who proposes, and when
//! enough committee votes make a checkpoint final.
//!
//! All of it is pure: the node feeds in its reputation table, the votes it received and the
//! time, and carries out what these functions decide. The same functions check a proof file
//! offline ([`crate::proof`]), so a verifier applies exactly the rules the network applied.
//! The epoch round that applies them as messages and time arrive is [`round::EpochRound`].

use std::collections::{BTreeMap, BTreeSet};

use bincode::{Decode, Encode};

use crate::VerdictId;
use crate::codec::{self, CodecError};
use crate::credits::CreditParams;
use crate::envelope::{Envelope, EnvelopeError, Verified};
use crate::merkle::{MerkleError, MerkleTree, ReputationLeaf};
use crate::{CHECKPOINT_VERSION, Checkpoint, CheckpointHash, CheckpointVote, NodeId, Timestamp};

pub mod round;

/// Key-derivation context of the genesis hash.
const GENESIS_CONTEXT: &str = "cairn 2026 checkpoint genesis v1";

/// The most committee members a network may have; bounds every committee list.
pub const MAX_COMMITTEE: usize = 256;

/// Which share of a committee must sign: `numerator / denominator`, rounded up.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Encode, Decode)]
pub struct Threshold {
    /// Numerator. Default: `2`.
    pub numerator: u32,
    /// Denominator. Default: `3`.
    pub denominator: u32,
}

impl Default for Threshold {
    fn default() -> Self {
        Self {
            numerator: 2,
            denominator: 3,
        }
    }
}

impl Threshold {
    /// Votes needed from a committee of `members`: at least one, and at least
    /// `ceil(members * numerator / denominator)`, never more than `members`.
    pub fn required(&self, members: usize) -> usize {
        let den = u64::from(self.denominator.max(1));
        let need = (members as u64 * u64::from(self.numerator)).div_ceil(den);
        (need as usize).clamp(1, members.max(1))
    }

    /// Whether the fraction is in (0, 1].
    pub fn is_valid(&self) -> bool {
        self.numerator > 0 && self.denominator > 0 && self.numerator <= self.denominator
    }
}

/// What a network spec fixes about checkpoints; its hash is the `previous` of epoch 0, so a
/// chain of checkpoints leads back to exactly one spec.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
pub struct Genesis {
    /// Network name.
    pub network: String,
    /// The committee that signs epoch 0.
    pub committee: Vec<NodeId>,
    /// Size of each later committee.
    pub committee_size: u32,
    /// Share of a committee that must sign.
    pub threshold: Threshold,
    /// The network's credit rules (genesis allocation, faucet, reward pool); `None` on a
    /// network that does not use credits (jobs are free, every balance is 0).
    pub credits: Option<CreditParams>,
}

impl Genesis {
    /// The bytes the network id and genesis hash cover: the name and committee rules, then the
    /// credit rules when the network has them (so a network without credits keeps the id it
    /// had before credits existed, and two networks with different credit rules never mix).
    fn committed_bytes(&self) -> Result<Vec<u8>, CodecError> {
        let rules = (
            &self.network,
            &self.committee,
            self.committee_size,
            self.threshold,
        );
        let mut bytes = codec::encode(&rules)?;
        if let Some(credits) = &self.credits {
            bytes.extend(codec::encode(credits)?);
        }
        Ok(bytes)
    }

    /// The network's id, which every signature on the network covers: the encoded genesis in
    /// the network-id domain.
    pub fn network_id(&self) -> Result<crate::NetworkId, CodecError> {
        Ok(crate::NetworkId::of(&self.committed_bytes()?))
    }

    /// The genesis hash: the encoded genesis in its own domain.
    pub fn hash(&self) -> Result<CheckpointHash, CodecError> {
        let bytes = self.committed_bytes()?;
        Ok(CheckpointHash(blake3::derive_key(GENESIS_CONTEXT, &bytes)))
    }
}

/// Why a checkpoint could not be built or a vote set was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// The reputation leaves were not sorted by peer.
    #[error("reputation leaves cannot form a tree: {0}")]
    Leaves(#[from] MerkleError),
    /// The checkpoint could not be encoded.
    #[error("checkpoint could not be encoded: {0}")]
    Codec(#[from] CodecError),
    /// One vote's envelope failed its checks.
    #[error("vote {index} is invalid: {source}")]
    BadVote {
        /// Position of the vote in the list.
        index: usize,
        /// What failed.
        source: EnvelopeError,
    },
    /// A vote comes from a node outside the committee.
    #[error("vote from {voter}, who is not on this epoch's committee")]
    NotMember {
        /// The voter.
        voter: NodeId,
    },
    /// A vote signs another checkpoint or epoch.
    #[error("vote from {voter} signs another checkpoint or epoch")]
    WrongCheckpoint {
        /// The voter.
        voter: NodeId,
    },
    /// A member voted twice.
    #[error("{voter} voted twice")]
    DuplicateVote {
        /// The voter.
        voter: NodeId,
    },
    /// Too few valid votes.
    #[error("{valid} valid committee signatures, {required} required by the network's threshold")]
    BelowThreshold {
        /// Valid votes counted.
        valid: usize,
        /// Votes the threshold needs.
        required: usize,
    },
}

/// The committee of the epoch after a checkpoint: the `size` nodes with the highest positive
/// scores (ties broken by more evidence, then by lower id); when fewer nodes qualify, members
/// of the current committee fill the remaining seats. The result is sorted by id.
pub fn next_committee(leaves: &[ReputationLeaf], current: &[NodeId], size: usize) -> Vec<NodeId> {
    let size = size.min(MAX_COMMITTEE);
    let mut ranked: Vec<&ReputationLeaf> = leaves.iter().filter(|l| l.score > 0).collect();
    ranked.sort_by(|a, b| {
        (b.score, b.evidence_count, a.peer).cmp(&(a.score, a.evidence_count, b.peer))
    });
    let mut chosen: BTreeSet<NodeId> = ranked.iter().take(size).map(|l| l.peer).collect();
    for peer in current {
        if chosen.len() >= size {
            break;
        }
        chosen.insert(*peer);
    }
    chosen.into_iter().collect()
}

/// The proposer of `epoch` on its `attempt`-th try (0 first): round robin over the committee,
/// so each timeout hands the epoch to the next member. `None` for an empty committee.
pub fn proposer(committee: &[NodeId], epoch: u64, attempt: u64) -> Option<NodeId> {
    if committee.is_empty() {
        return None;
    }
    let index = epoch.wrapping_add(attempt) % committee.len() as u64;
    committee.get(index as usize).copied()
}

/// Which attempt is current at `now` for an epoch whose proposals opened at `opened`, with
/// `timeout_ms` per attempt.
pub fn attempt_at(opened: Timestamp, now: Timestamp, timeout_ms: u64) -> u64 {
    now.since(opened) / timeout_ms.max(1)
}

/// How far ahead of a node's clock a proposal's `proposed_at` may be.
pub const MAX_CLOCK_SKEW_MS: u64 = 30_000;

/// Why a proposal's time is refused.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProposalTimeError {
    /// Proposed more than [`MAX_CLOCK_SKEW_MS`] after the receiver's clock.
    #[error("proposed in the future; check the proposer's clock")]
    Future,
    /// Proposed before its epoch could open: less than an epoch after the previous
    /// checkpoint's proposal (minus the skew).
    #[error("proposed before its epoch could open")]
    TooEarly,
}

impl ProposalTimeError {
    /// A short, stable name for counters.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Future => "future",
            Self::TooEarly => "too_early",
        }
    }
}

/// Checks a proposal's `proposed_at` against the receiver's clock `now`: at most
/// [`MAX_CLOCK_SKEW_MS`] ahead, and for a later epoch, no earlier than `epoch_ms` after the
/// previous checkpoint's proposal (an epoch opens when the previous checkpoint is final, and
/// its proposer waits `epoch_ms` from then), less the skew. `previous` is `None` for epoch 0.
pub fn check_proposal_time(
    proposed_at: Timestamp,
    previous: Option<Timestamp>,
    epoch_ms: u64,
    now: Timestamp,
) -> Result<(), ProposalTimeError> {
    if proposed_at > now.plus_ms(MAX_CLOCK_SKEW_MS) {
        return Err(ProposalTimeError::Future);
    }
    let earliest = previous.map_or(0, |p| {
        p.plus_ms(epoch_ms).0.saturating_sub(MAX_CLOCK_SKEW_MS)
    });
    if proposed_at.0 < earliest {
        return Err(ProposalTimeError::TooEarly);
    }
    Ok(())
}

/// What goes into one checkpoint, besides the table.
#[derive(Clone, Debug)]
pub struct CheckpointInput<'a> {
    /// Network name.
    pub network: &'a str,
    /// Epoch of the new checkpoint.
    pub epoch: u64,
    /// Hash of the previous checkpoint, or the genesis hash for epoch 0.
    pub previous: CheckpointHash,
    /// Committee signing this epoch (fills the next committee when too few nodes qualify).
    pub committee: &'a [NodeId],
    /// Size of the next committee.
    pub committee_size: usize,
    /// Ids of the verdicts the table covers.
    pub verdicts: &'a [VerdictId],
    /// The proposer.
    pub proposer: NodeId,
    /// Proposal time.
    pub now: Timestamp,
}

/// Builds the checkpoint of `leaves` (sorted by peer, as [`crate::reputation::ReputationTable::leaves`]
/// returns them).
pub fn build(
    input: &CheckpointInput<'_>,
    leaves: &[ReputationLeaf],
) -> Result<Checkpoint, CheckpointError> {
    let tree = MerkleTree::from_reputation(leaves)?;
    Ok(Checkpoint {
        version: CHECKPOINT_VERSION,
        network: input.network.to_owned(),
        epoch: input.epoch,
        previous: input.previous,
        reputation_root: tree.root(),
        leaf_count: tree.len() as u64,
        verdict_root: MerkleTree::from_verdicts(input.verdicts).root(),
        next_committee: next_committee(leaves, input.committee, input.committee_size),
        proposer: input.proposer,
        proposed_at: input.now,
    })
}

/// Whether a proposal commits to the same table, verdicts, chain and committee as the one this
/// node computed itself (the proposer and time may differ).
pub fn same_content(a: &Checkpoint, b: &Checkpoint) -> bool {
    (
        a.version,
        &a.network,
        a.epoch,
        a.previous,
        a.reputation_root,
        a.leaf_count,
    ) == (
        b.version,
        &b.network,
        b.epoch,
        b.previous,
        b.reputation_root,
        b.leaf_count,
    ) && a.verdict_root == b.verdict_root
        && a.next_committee == b.next_committee
}

/// What happened to one vote given to a [`VoteTally`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum VoteOutcome {
    /// Counted; the checkpoint is not final yet.
    Counted {
        /// Votes so far.
        votes: usize,
        /// Votes needed.
        required: usize,
    },
    /// Counted, and the checkpoint is now final.
    Final,
    /// Ignored: the member already voted.
    Duplicate,
    /// Ignored: the voter is not on the committee.
    NotMember,
    /// Ignored: the vote signs another checkpoint (a different root) or epoch.
    WrongCheckpoint,
}

/// Collects committee votes on one checkpoint until the threshold is met.
#[derive(Clone, Debug)]
pub struct VoteTally {
    epoch: u64,
    checkpoint: CheckpointHash,
    committee: BTreeSet<NodeId>,
    required: usize,
    votes: BTreeMap<NodeId, Envelope>,
}

impl VoteTally {
    /// A tally for `checkpoint` of `epoch`, signed by `committee` at `threshold`.
    pub fn new(
        epoch: u64,
        checkpoint: CheckpointHash,
        committee: &[NodeId],
        threshold: Threshold,
    ) -> Self {
        let committee: BTreeSet<NodeId> = committee.iter().copied().collect();
        Self {
            epoch,
            required: threshold.required(committee.len()),
            checkpoint,
            committee,
            votes: BTreeMap::new(),
        }
    }

    /// Counts a verified vote, or says why it was ignored.
    pub fn add(&mut self, vote: &Verified<CheckpointVote>) -> VoteOutcome {
        let v = vote.message();
        if !self.committee.contains(&v.voter) {
            return VoteOutcome::NotMember;
        }
        if v.checkpoint != self.checkpoint || v.epoch != self.epoch {
            return VoteOutcome::WrongCheckpoint;
        }
        if self.votes.contains_key(&v.voter) {
            return VoteOutcome::Duplicate;
        }
        self.votes.insert(v.voter, vote.envelope().clone());
        if self.votes.len() == self.required {
            VoteOutcome::Final
        } else {
            VoteOutcome::Counted {
                votes: self.votes.len(),
                required: self.required,
            }
        }
    }

    /// Whether enough members signed.
    pub fn is_final(&self) -> bool {
        self.votes.len() >= self.required
    }

    /// The checkpoint voted on.
    pub fn checkpoint(&self) -> CheckpointHash {
        self.checkpoint
    }

    /// The counted votes' envelopes, sorted by voter.
    pub fn signatures(&self) -> Vec<Envelope> {
        self.votes.values().cloned().collect()
    }
}

/// Checks a list of vote envelopes strictly, as a verifier must: every vote valid (signed for
/// `network`), from a member, for this checkpoint and epoch, none twice, and at least the
/// threshold. Returns the number of votes.
pub fn check_votes(
    network: &crate::NetworkId,
    epoch: u64,
    checkpoint: CheckpointHash,
    committee: &[NodeId],
    threshold: Threshold,
    votes: &[Envelope],
) -> Result<usize, CheckpointError> {
    let mut tally = VoteTally::new(epoch, checkpoint, committee, threshold);
    for (index, envelope) in votes.iter().enumerate() {
        let vote = envelope
            .clone()
            .verify::<CheckpointVote>(network)
            .map_err(|source| CheckpointError::BadVote { index, source })?;
        let voter = vote.message().voter;
        match tally.add(&vote) {
            VoteOutcome::Counted { .. } | VoteOutcome::Final => {}
            VoteOutcome::NotMember => return Err(CheckpointError::NotMember { voter }),
            VoteOutcome::Duplicate => return Err(CheckpointError::DuplicateVote { voter }),
            VoteOutcome::WrongCheckpoint => return Err(CheckpointError::WrongCheckpoint { voter }),
        }
    }
    if !tally.is_final() {
        return Err(CheckpointError::BelowThreshold {
            valid: tally.votes.len(),
            required: tally.required,
        });
    }
    Ok(tally.votes.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proposal_times_are_bounded_by_the_clock_and_the_previous_proposal() {
        let now = Timestamp(1_000_000);
        let ok = |at, previous| check_proposal_time(Timestamp(at), previous, 10_000, now);
        assert_eq!(ok(now.0 + MAX_CLOCK_SKEW_MS, None), Ok(()));
        assert_eq!(
            ok(now.0 + MAX_CLOCK_SKEW_MS + 1, None),
            Err(ProposalTimeError::Future)
        );
        let previous = Some(Timestamp(900_000));
        assert_eq!(ok(910_000 - MAX_CLOCK_SKEW_MS, previous), Ok(()));
        assert_eq!(
            ok(909_999 - MAX_CLOCK_SKEW_MS, previous),
            Err(ProposalTimeError::TooEarly)
        );
        // Epoch 0 has no earlier proposal to be measured from.
        assert_eq!(ok(0, None), Ok(()));
    }
}
