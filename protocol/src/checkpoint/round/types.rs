//! The round's inputs and outputs: what the node hands [`super::EpochRound`], what it is
//! told to do, and why a message was refused (enums, named for counters by `as_str`).

use libp2p_identity::PeerId;

use crate::checkpoint::ProposalTimeError;
use crate::merkle::ReputationLeaf;
use crate::proof::SignedCheckpoint;
use crate::{Checkpoint, CheckpointHash, CheckpointVote, Verified};

/// A checkpoint message for the round, its envelope already verified.
#[derive(Clone, Debug)]
pub enum Input {
    /// A proposal gossiped through `from`.
    Proposal {
        /// The proposal.
        proposal: Verified<Checkpoint>,
        /// The peer that forwarded it (a catch-up asks this one).
        from: PeerId,
    },
    /// This node's own proposal, signed as [`Action::Propose`] asked.
    OwnProposal(Verified<Checkpoint>),
    /// A vote: gossiped, or this node's own, signed as [`Action::Vote`] asked.
    Vote(Verified<CheckpointVote>),
}

/// What the node should do. Exhaustive on purpose: a new action fails to compile until the
/// node carries it out.
#[derive(Clone, Debug)]
pub enum Action {
    /// Sign this proposal, publish it and hand it back as [`Input::OwnProposal`].
    Propose(Checkpoint),
    /// Sign this vote, publish it and hand it back as [`Input::Vote`].
    Vote(CheckpointVote),
    /// A checkpoint is final and on the chain: persist it, and anchor it when this node
    /// proposed it.
    Finalised(Box<Finalised>),
    /// Ask `peer` for the checkpoints this node lacks, then call
    /// [`super::EpochRound::catch_up_ended`].
    CatchUp {
        /// The peer that forwarded the proposal.
        peer: PeerId,
    },
    /// A proposal ahead of this node's chain started no catch-up (the message itself is
    /// ignored either way): count it.
    CatchUpRefused {
        /// The peer that forwarded the proposal.
        peer: PeerId,
        /// Why.
        reason: CatchUpRefusal,
    },
}

/// A checkpoint that became final.
#[derive(Clone, Debug)]
pub struct Finalised {
    /// The checkpoint with the votes that made it final.
    pub checkpoint: SignedCheckpoint,
    /// Its hash.
    pub hash: CheckpointHash,
    /// Its reputation leaves, when this node's own table matched (what proofs are made from).
    pub leaves: Option<Vec<ReputationLeaf>>,
    /// Whether this node proposed it (the proposer anchors it).
    pub proposed_here: bool,
    /// Votes still queued for other proposals of its epoch, now dropped.
    pub dropped_votes: usize,
}

/// What the round made of one message: what the node reports to gossip.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acceptance {
    /// Valid and useful: keep and forward it.
    Accept,
    /// Of no use here, but not the sender's fault: drop it without penalty.
    Ignore(Ignored),
    /// Invalid: drop it and penalise the forwarder.
    Reject(Rejected),
}

/// Why a message was ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Ignored {
    /// A proposal or vote for another epoch.
    #[error("for another epoch")]
    OtherEpoch,
    /// A proposal for this epoch on top of another checkpoint.
    #[error("for another branch of the chain")]
    OtherBranch,
    /// A vote for a proposal not seen yet, and its voter's (or the node's) queue is full.
    #[error("too many votes wait for proposals not seen yet")]
    TooManyPending,
}

impl Ignored {
    /// A short, stable name for counters.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::OtherEpoch => "other_epoch",
            Self::OtherBranch => "other_branch",
            Self::TooManyPending => "too_many_pending",
        }
    }
}

/// Why a message was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    /// A proposal for another network.
    #[error("proposal for another network")]
    WrongNetwork,
    /// A proposal whose time is not sane.
    #[error(transparent)]
    Time(#[from] ProposalTimeError),
    /// This node's own proposal, for an epoch that is no longer open.
    #[error("proposal for an epoch that is not open")]
    OtherEpoch,
    /// This node's own proposal, on top of a checkpoint that is no longer the tip.
    #[error("proposal that does not extend the tip")]
    WrongPrevious,
    /// A proposal from outside the committee, or one too many.
    #[error("proposal from outside the committee, or one too many")]
    NotProposer,
    /// A vote from outside the committee.
    #[error("vote from outside the committee")]
    NotMember,
    /// A proposal that cannot be encoded to be hashed.
    #[error("proposal cannot be hashed")]
    Malformed,
}

impl Rejected {
    /// A short, stable name for counters.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::WrongNetwork => "wrong_network",
            Self::Time(e) => e.reason(),
            Self::OtherEpoch => "other_epoch",
            Self::WrongPrevious => "wrong_previous",
            Self::NotProposer => "not_proposer",
            Self::NotMember => "not_member",
            Self::Malformed => "malformed",
        }
    }
}

/// Why a proposal ahead of this node's chain started no catch-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CatchUpRefusal {
    /// Its proposer sits on no committee this node knows.
    #[error("proposer on no known committee")]
    UnknownProposer,
    /// The peer started one recently, or too many peers did.
    #[error("catch-ups from this peer are rate-limited")]
    RateLimited,
}

impl CatchUpRefusal {
    /// A short, stable name for counters.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::UnknownProposer => "unknown_proposer",
            Self::RateLimited => "rate_limited",
        }
    }
}

/// What one message did: how to report it, and what to do.
#[derive(Clone, Debug)]
pub struct Step {
    /// What to report to gossip.
    pub acceptance: Acceptance,
    /// What to do, in order.
    pub actions: Vec<Action>,
}
