//! The epoch round, as a state machine: proposals, recomputation, votes, finality and the
//! trigger of a catch-up.
//!
//! [`EpochRound`] holds the finalised chain, the checkpoint [`Ledger`] and the state of the
//! open epoch. The node feeds it the clock ([`EpochRound::tick`]) and envelope-verified
//! proposals and votes ([`EpochRound::handle`]), and carries out the [`Action`]s it returns:
//! sign and publish a proposal or a vote (and hand it back), persist and anchor a final
//! checkpoint, catch up from a peer. It never does I/O and never reads a clock.
//!
//! The rules, in the order they are checked:
//! - **Proposals.** A gossiped proposal for another network, or more than
//!   [`MAX_CLOCK_SKEW_MS`] ahead of `now`, is rejected. One for another epoch or branch is
//!   ignored; if it is ahead of this node's chain it starts a catch-up, but only when its
//!   proposer is plausibly a committee member (the genesis committee, or the next committee of
//!   one of the [`PLAUSIBLE_COMMITTEES`] newest checkpoints), at most once per peer per
//!   [`CATCH_UP_PER_PEER_MS`], and one catch-up at a time. (A node behind by more committee
//!   rotations than that waits for a proposal from a member it knows, or is caught up by
//!   hand.) A proposal for the open epoch must
//!   extend the tip, come from a member of the committee and have a sane time
//!   ([`super::check_proposal_time`]); a node holds at most [`PROPOSALS_PER_MEMBER`] per
//!   member (plus one) per epoch.
//! - **Recomputation.** Every node recomputes an accepted proposal from its own ledger (the
//!   table covered by the proposal's cutoff, [`crate::ledger`]); a committee member votes once,
//!   and only for a proposal equal to its own. A member whose ledger lagged looks again on
//!   every tick after its ledger changed.
//! - **Votes.** A vote for another epoch is ignored; one from outside the committee is
//!   rejected before anything is stored. A vote for a proposal not seen yet waits, at most
//!   [`MAX_PENDING_PER_VOTER`] per member and [`MAX_PENDING_VOTES`] in all, so that neither
//!   outsiders nor one member can fill the queue; it is counted when the proposal arrives.
//! - **Finality.** When a proposal's votes reach the threshold it is final: its verdicts leave
//!   the uncovered set (whether or not this node agreed), it joins the chain and the next epoch
//!   opens at `now`.

use std::collections::{BTreeMap, BTreeSet};

use libp2p_identity::PeerId;

use super::{
    CheckpointInput, Genesis, MAX_CLOCK_SKEW_MS, ProposalTimeError, VoteOutcome, VoteTally,
    attempt_at, build, check_proposal_time, proposer, same_content,
};
use crate::ledger::{Ledger, settle_ms};
use crate::merkle::ReputationLeaf;
use crate::proof::SignedCheckpoint;
use crate::{Checkpoint, CheckpointHash, CheckpointVote, NodeId, Timestamp, Verified};

mod types;

pub use types::{Acceptance, Action, CatchUpRefusal, Finalised, Ignored, Input, Rejected, Step};

/// Votes for proposals not seen yet that a node holds per epoch.
pub const MAX_PENDING_VOTES: usize = 1_024;
/// Of those, how many one committee member may have queued: one member cannot fill the queue.
pub const MAX_PENDING_PER_VOTER: usize = 2;
/// Proposals a node holds per epoch, per committee member (plus one): members' proposals
/// of one epoch differ only by time, so more are noise.
pub const PROPOSALS_PER_MEMBER: usize = 2;
/// How often one peer's proposals may start a catch-up, in ms.
pub const CATCH_UP_PER_PEER_MS: u64 = 5_000;
/// Peers whose last catch-up is remembered, at most.
pub const MAX_CATCH_UP_PEERS: usize = 256;
/// How many of the newest held checkpoints' next committees count a proposer as plausible
/// when its proposal is ahead of this node's chain.
pub const PLAUSIBLE_COMMITTEES: usize = 64;

/// What the round needs to know of the network: fixed for the node's life.
#[derive(Clone, Debug)]
pub struct RoundConfig {
    /// The network's genesis (its name, first committee, committee size and threshold). A
    /// genesis without a committee means the network does not checkpoint.
    pub genesis: Genesis,
    /// How long after the previous checkpoint the next epoch's proposer proposes, in ms.
    pub epoch_ms: u64,
    /// How long each proposer gets before the next member proposes, in ms.
    pub proposer_timeout_ms: u64,
}

/// One proposal of the open epoch.
#[derive(Clone, Debug)]
struct Proposal {
    checkpoint: Checkpoint,
    tally: VoteTally,
    /// This node's leaves, once its own recomputation equalled the proposal.
    leaves: Option<Vec<ReputationLeaf>>,
    /// The ledger version it was last recomputed at.
    considered: Option<u64>,
    /// Whether this node voted for it.
    voted: bool,
}

/// The open epoch's proposals, queued votes and own attempts.
#[derive(Clone, Debug, Default)]
struct Epoch {
    proposals: BTreeMap<CheckpointHash, Proposal>,
    pending: Vec<Verified<CheckpointVote>>,
    /// The proposer attempts this node proposed in.
    proposed: BTreeSet<u64>,
}

/// The chain, the ledger and the open epoch (see the module docs).
#[derive(Clone, Debug)]
pub struct EpochRound {
    config: RoundConfig,
    me: NodeId,
    chain: Vec<SignedCheckpoint>,
    ledger: Ledger,
    opened_at: Timestamp,
    epoch: Epoch,
    /// When each peer's proposal last started a catch-up.
    catch_ups: BTreeMap<PeerId, Timestamp>,
    catching_up: bool,
}

impl EpochRound {
    /// The round of node `me` over `chain` (already verified from the genesis) and `ledger`,
    /// its next epoch opening at `now`.
    pub fn new(
        config: RoundConfig,
        me: NodeId,
        chain: Vec<SignedCheckpoint>,
        ledger: Ledger,
        now: Timestamp,
    ) -> Self {
        Self {
            config,
            me,
            chain,
            ledger,
            opened_at: now,
            epoch: Epoch::default(),
            catch_ups: BTreeMap::new(),
            catching_up: false,
        }
    }

    /// The finalised chain, epoch 0 first.
    pub fn chain(&self) -> &[SignedCheckpoint] {
        &self.chain
    }

    /// The open epoch: the chain's length.
    pub fn epoch(&self) -> u64 {
        self.chain.len() as u64
    }

    /// The genesis, when the network checkpoints (its first committee is not empty).
    pub fn genesis(&self) -> Option<&Genesis> {
        Some(&self.config.genesis).filter(|g| !g.committee.is_empty())
    }

    /// The committee that signs the open epoch.
    pub fn committee(&self) -> &[NodeId] {
        match (self.chain.last(), self.genesis()) {
            (Some(last), _) => &last.checkpoint.next_committee,
            (None, Some(g)) => &g.committee,
            (None, None) => &[],
        }
    }

    /// The committee that signs `epoch`, if this node holds the checkpoint before it.
    pub fn committee_at(&self, epoch: u64) -> Option<&[NodeId]> {
        match epoch.checked_sub(1) {
            None => Some(&self.genesis()?.committee),
            Some(before) => {
                let before = self.chain.get(usize::try_from(before).ok()?)?;
                Some(&before.checkpoint.next_committee)
            }
        }
    }

    /// The hash the next checkpoint must extend: the last one's, or the genesis hash.
    pub fn tip(&self) -> Option<CheckpointHash> {
        match self.chain.last() {
            Some(last) => last.checkpoint.hash().ok(),
            None => self.genesis()?.hash().ok(),
        }
    }

    /// The checkpoint ledger.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// The checkpoint ledger, to note checked verdicts in; a member whose recomputation
    /// differed looks again on the next tick.
    pub fn ledger_mut(&mut self) -> &mut Ledger {
        &mut self.ledger
    }

    /// The latest issue time of the verdicts a checkpoint proposed at `at` covers.
    pub fn cutoff(&self, at: Timestamp) -> Timestamp {
        Timestamp(at.0.saturating_sub(settle_ms(self.config.epoch_ms)))
    }

    /// Replaces the chain from epoch `from` on with `tail`, which the caller verified to
    /// extend the first `from` checkpoints (see [`crate::proof::verify_extension`]); with the
    /// last one's `leaves` its table becomes the covered table, else its cutoff is covered.
    /// The next epoch opens at `now`.
    pub fn adopt(
        &mut self,
        from: usize,
        tail: Vec<SignedCheckpoint>,
        leaves: Option<&[ReputationLeaf]>,
        now: Timestamp,
    ) {
        if let Some(last) = tail.last() {
            let cutoff = self.cutoff(last.checkpoint.proposed_at);
            match leaves {
                Some(leaves) => {
                    // Balances that do not add up to the supply are not taken (the ledger
                    // covers the credit events it holds instead); this node's own next
                    // checkpoint then fails the same check and it does not sign.
                    let _credits = self.ledger.adopt_leaves(leaves, cutoff);
                }
                None => self.ledger.cover(cutoff),
            }
        }
        self.chain.truncate(from);
        self.chain.extend(tail);
        self.open(now);
    }

    /// The catch-up an [`Action::CatchUp`] asked for has ended: another may start.
    pub fn catch_up_ended(&mut self) {
        self.catching_up = false;
    }

    /// Time passed: proposes when it is this node's turn, and looks again at proposals it
    /// did not agree with.
    pub fn tick(&mut self, now: Timestamp) -> Vec<Action> {
        let mut actions = Vec::new();
        let due = self.opened_at.plus_ms(self.config.epoch_ms);
        if now >= due {
            let attempt = attempt_at(due, now, self.config.proposer_timeout_ms);
            let epoch = self.epoch();
            let mine = proposer(self.committee(), epoch, attempt) == Some(self.me);
            if mine
                && self.epoch.proposed.insert(attempt)
                && let Some((c, _)) = self.compute(epoch, now)
            {
                actions.push(Action::Propose(c));
            }
        }
        let open: Vec<CheckpointHash> = (self.epoch.proposals.iter())
            .filter(|(_, p)| p.leaves.is_none())
            .map(|(h, _)| *h)
            .collect();
        for hash in open {
            self.consider(hash, &mut actions);
        }
        actions
    }

    /// Takes one verified message at `now`.
    pub fn handle(&mut self, input: Input, now: Timestamp) -> Step {
        let mut actions = Vec::new();
        let acceptance = match input {
            Input::Proposal { proposal, from } => {
                self.on_proposal(proposal, from, now, &mut actions)
            }
            Input::OwnProposal(proposal) => {
                match self.accept_proposal(&proposal, now, &mut actions) {
                    Ok(()) => Acceptance::Accept,
                    Err(reason) => Acceptance::Reject(reason),
                }
            }
            Input::Vote(vote) => self.on_vote(vote, now, &mut actions),
        };
        Step {
            acceptance,
            actions,
        }
    }

    fn open(&mut self, now: Timestamp) {
        self.opened_at = now;
        self.epoch = Epoch::default();
    }

    /// This node's own checkpoint for `epoch` proposed at `at`: the covered table plus the
    /// verdicts issued by the cutoff of `at`, with balances. `None` when the balances do not
    /// add up to the credit supply: a node never signs a checkpoint that creates or destroys
    /// credits.
    fn compute(&self, epoch: u64, at: Timestamp) -> Option<(Checkpoint, Vec<ReputationLeaf>)> {
        let genesis = self.genesis()?;
        let cutoff = self.cutoff(at);
        let table = self.ledger.table_at(cutoff);
        let leaves = self.ledger.with_balances(&table, cutoff);
        self.ledger.check_leaves(&leaves).ok()?;
        let input = CheckpointInput {
            network: &genesis.network,
            epoch,
            previous: self.tip()?,
            committee: self.committee(),
            committee_size: genesis.committee_size as usize,
            verdicts: &table.applied_ids(),
            proposer: self.me,
            now: at,
        };
        let c = build(&input, &leaves).ok()?;
        Some((c, leaves))
    }

    /// A gossiped proposal: network and time first; one for another epoch or branch is
    /// ignored (it may start a catch-up); one for the open epoch is accepted or rejected.
    fn on_proposal(
        &mut self,
        proposal: Verified<Checkpoint>,
        from: PeerId,
        now: Timestamp,
        actions: &mut Vec<Action>,
    ) -> Acceptance {
        let c = proposal.message();
        if c.network != self.config.genesis.network {
            return Acceptance::Reject(Rejected::WrongNetwork);
        }
        if c.proposed_at > now.plus_ms(MAX_CLOCK_SKEW_MS) {
            return Acceptance::Reject(Rejected::Time(ProposalTimeError::Future));
        }
        let len = self.epoch();
        if c.epoch != len || Some(c.previous) != self.tip() {
            // Late (harmless), ahead of this node, or on another branch: not the sender's
            // fault, and of no use to peers on this node's chain.
            if c.epoch >= len {
                let (epoch, previous, proposer) = (c.epoch, c.previous, c.proposer);
                self.catch_up_if_behind(epoch, previous, proposer, from, now, actions);
            }
            return Acceptance::Ignore(if c.epoch == len {
                Ignored::OtherBranch
            } else {
                Ignored::OtherEpoch
            });
        }
        match self.accept_proposal(&proposal, now, actions) {
            Ok(()) => Acceptance::Accept,
            Err(reason) => Acceptance::Reject(reason),
        }
    }

    /// Starts a catch-up from `peer` if `epoch` on top of `previous` is ahead of this node's
    /// chain or on another branch of it, and `proposer` is plausibly a committee member.
    fn catch_up_if_behind(
        &mut self,
        epoch: u64,
        previous: CheckpointHash,
        proposer: NodeId,
        peer: PeerId,
        now: Timestamp,
        actions: &mut Vec<Action>,
    ) {
        let len = self.epoch();
        let behind = epoch > len || (epoch == len && self.tip() != Some(previous));
        if !behind {
            return;
        }
        let refused = |reason| Action::CatchUpRefused { peer, reason };
        if !self.plausible_member(&proposer) {
            actions.push(refused(CatchUpRefusal::UnknownProposer));
            return;
        }
        self.catch_ups
            .retain(|_, at| now.since(*at) < CATCH_UP_PER_PEER_MS);
        if self.catch_ups.contains_key(&peer) || self.catch_ups.len() >= MAX_CATCH_UP_PEERS {
            actions.push(refused(CatchUpRefusal::RateLimited));
            return;
        }
        if self.catching_up {
            return;
        }
        self.catching_up = true;
        self.catch_ups.insert(peer, now);
        actions.push(Action::CatchUp { peer });
    }

    /// Whether `id` sits on the genesis committee or on the next committee of one of the
    /// newest checkpoints this node holds.
    fn plausible_member(&self, id: &NodeId) -> bool {
        let genesis = self.genesis().is_some_and(|g| g.committee.contains(id));
        genesis
            || (self.chain.iter().rev())
                .take(PLAUSIBLE_COMMITTEES)
                .any(|c| c.checkpoint.next_committee.contains(id))
    }

    /// Keeps a proposal for the open epoch from a member, counts the votes that waited for
    /// it and recomputes it.
    fn accept_proposal(
        &mut self,
        proposal: &Verified<Checkpoint>,
        now: Timestamp,
        actions: &mut Vec<Action>,
    ) -> Result<(), Rejected> {
        let c = proposal.message();
        let hash = c.hash().map_err(|_| Rejected::Malformed)?;
        if c.network != self.config.genesis.network {
            return Err(Rejected::WrongNetwork);
        }
        if c.epoch != self.epoch() {
            return Err(Rejected::OtherEpoch);
        }
        if Some(c.previous) != self.tip() {
            return Err(Rejected::WrongPrevious);
        }
        let committee = self.committee();
        let held = self.epoch.proposals.len();
        if !committee.contains(&c.proposer) || held > PROPOSALS_PER_MEMBER * committee.len() {
            return Err(Rejected::NotProposer);
        }
        let previous = self.chain.last().map(|p| p.checkpoint.proposed_at);
        check_proposal_time(c.proposed_at, previous, self.config.epoch_ms, now)?;
        let tally = VoteTally::new(c.epoch, hash, committee, self.config.genesis.threshold);
        self.epoch
            .proposals
            .entry(hash)
            .or_insert_with(|| Proposal {
                checkpoint: c.clone(),
                tally,
                leaves: None,
                considered: None,
                voted: false,
            });
        let (matching, rest) = std::mem::take(&mut self.epoch.pending)
            .into_iter()
            .partition(|v| v.message().checkpoint == hash);
        self.epoch.pending = rest;
        for vote in matching {
            self.on_vote(vote, now, actions);
        }
        self.consider(hash, actions);
        Ok(())
    }

    /// Recomputes a proposal from this node's ledger; keeps the leaves if equal, and votes
    /// when this node is on the committee and has not voted for it.
    fn consider(&mut self, hash: CheckpointHash, actions: &mut Vec<Action>) {
        let version = self.ledger.version();
        let Some(p) = self.epoch.proposals.get_mut(&hash) else {
            return;
        };
        // Nothing changed since the last look: the answer would be the same.
        if p.considered.replace(version) == Some(version) {
            return;
        }
        let (epoch, at) = (p.checkpoint.epoch, p.checkpoint.proposed_at);
        let Some((mine, leaves)) = self.compute(epoch, at) else {
            return;
        };
        let member = self.committee().contains(&self.me);
        let Some(p) = self.epoch.proposals.get_mut(&hash) else {
            return;
        };
        if !same_content(&p.checkpoint, &mine) {
            return;
        }
        p.leaves = Some(leaves);
        if !member || std::mem::replace(&mut p.voted, true) {
            return;
        }
        actions.push(Action::Vote(CheckpointVote {
            checkpoint: hash,
            epoch,
            voter: self.me,
        }));
    }

    /// Counts a vote of the open epoch from a member of its committee, or queues it while
    /// its proposal is not seen yet.
    fn on_vote(
        &mut self,
        vote: Verified<CheckpointVote>,
        now: Timestamp,
        actions: &mut Vec<Action>,
    ) -> Acceptance {
        let v = vote.message();
        if v.epoch != self.epoch() {
            return Acceptance::Ignore(Ignored::OtherEpoch);
        }
        if !self.committee().contains(&v.voter) {
            return Acceptance::Reject(Rejected::NotMember);
        }
        let hash = v.checkpoint;
        let Some(p) = self.epoch.proposals.get_mut(&hash) else {
            return self.queue(vote);
        };
        match p.tally.add(&vote) {
            VoteOutcome::Final => {
                self.finalise(hash, now, actions);
                Acceptance::Accept
            }
            VoteOutcome::NotMember => Acceptance::Reject(Rejected::NotMember),
            VoteOutcome::Counted { .. } | VoteOutcome::Duplicate | VoteOutcome::WrongCheckpoint => {
                Acceptance::Accept
            }
        }
    }

    /// Queues a member's vote for a proposal not seen yet.
    fn queue(&mut self, vote: Verified<CheckpointVote>) -> Acceptance {
        let voter = vote.message().voter;
        let pending = &mut self.epoch.pending;
        let queued = pending
            .iter()
            .filter(|v| v.message().voter == voter)
            .count();
        // An honest member votes on every equal proposal of the epoch, and forwarders that
        // saw them counted these votes: not their fault.
        if queued >= MAX_PENDING_PER_VOTER || pending.len() >= MAX_PENDING_VOTES {
            return Acceptance::Ignore(Ignored::TooManyPending);
        }
        pending.push(vote);
        Acceptance::Accept
    }

    /// Puts a proposal whose votes reached the threshold on the chain and opens the next
    /// epoch.
    fn finalise(&mut self, hash: CheckpointHash, now: Timestamp, actions: &mut Vec<Action>) {
        let mut epoch = std::mem::take(&mut self.epoch);
        let Some(p) = epoch.proposals.remove(&hash) else {
            self.epoch = epoch;
            return;
        };
        let signed = SignedCheckpoint {
            votes: p.tally.signatures(),
            checkpoint: p.checkpoint,
        };
        let dropped_votes = (epoch.pending.iter())
            .filter(|v| v.message().epoch == signed.checkpoint.epoch)
            .count();
        // Its verdicts leave the uncovered set whether or not this node agreed.
        self.ledger
            .cover(self.cutoff(signed.checkpoint.proposed_at));
        let proposed_here = signed.checkpoint.proposer == self.me;
        self.chain.push(signed.clone());
        self.open(now);
        actions.push(Action::Finalised(Box::new(Finalised {
            checkpoint: signed,
            hash,
            leaves: p.leaves,
            proposed_here,
            dropped_votes,
        })));
    }
}
