//! One epoch's round: the proposer's clock, proposals, recomputation, votes and finality.

use cairn_protocol::checkpoint::{self, CheckpointInput, VoteOutcome, VoteTally};
use cairn_protocol::merkle::ReputationLeaf;
use cairn_protocol::proof::SignedCheckpoint;
use cairn_protocol::{
    AnchorReceipt, Checkpoint, CheckpointHash, CheckpointVote, Envelope, MessageKind, Timestamp,
    Verified,
};
use libp2p::PeerId;
use libp2p::gossipsub::{MessageAcceptance, MessageId};
use tracing::{debug, info, warn};

use super::{
    CheckpointFault, CheckpointGossip, Checkpoints, EpochState, MAX_PENDING_PER_VOTER,
    MAX_PENDING_VOTES, State, key,
};
use crate::context::now;
use crate::store::{self, Tree};

impl Checkpoints {
    pub(super) async fn checkpoint_tick(&self, now: Timestamp) {
        let spec = &self.ctx.options().spec.checkpoints;
        let me = self.ctx.node_id();
        let propose = self.with_state(|s| {
            let due = s.opened_at.plus_ms(spec.epoch_ms);
            if now < due || s.fault == CheckpointFault::Silent {
                return None;
            }
            let attempt = checkpoint::attempt_at(due, now, spec.proposer_timeout_ms);
            let epoch = s.chain.len() as u64;
            let mine = checkpoint::proposer(&self.committee_of(s), epoch, attempt) == Some(me);
            (mine && s.epoch.proposed.insert(attempt)).then_some(epoch)
        });
        if let Some(Some(epoch)) = propose {
            self.propose(epoch, now).await;
        }
        // A member whose table lagged may now agree with a proposal it saw.
        let open: Vec<CheckpointHash> = self
            .with_state(|s| {
                s.epoch
                    .proposals
                    .iter()
                    .filter(|(_, (_, l))| l.is_none())
                    .map(|(h, _)| *h)
                    .collect()
            })
            .unwrap_or_default();
        for hash in open {
            self.consider(hash).await;
        }
    }

    /// This node's own checkpoint for `epoch` proposed at `at`: the covered table plus the
    /// verdicts it holds that were issued by `at` minus the settle time.
    fn compute(
        &self,
        s: &State,
        epoch: u64,
        at: Timestamp,
    ) -> Option<(Checkpoint, Vec<ReputationLeaf>)> {
        let table = s.ledger.table_at(self.cutoff(at));
        let leaves = table.leaves();
        let committee = self.committee_of(s);
        let input = CheckpointInput {
            network: &self.ctx.options().spec.name,
            epoch,
            previous: self.tip(s)?,
            committee: &committee,
            committee_size: self.ctx.options().spec.checkpoints.committee_size as usize,
            verdicts: &table.applied_ids(),
            proposer: self.ctx.node_id(),
            now: at,
        };
        let c = checkpoint::build(&input, &leaves).ok()?;
        Some((c, leaves))
    }

    /// The latest issue time of the verdicts a checkpoint proposed at `at` covers.
    pub(super) fn cutoff(&self, at: Timestamp) -> Timestamp {
        let settle =
            cairn_protocol::ledger::settle_ms(self.ctx.options().spec.checkpoints.epoch_ms);
        Timestamp(at.0.saturating_sub(settle))
    }

    async fn propose(&self, epoch: u64, now: Timestamp) {
        let Some(Some((c, _))) = self.with_state(|s| self.compute(s, epoch, now)) else {
            return;
        };
        let Ok(signed) = self.ctx.sign(c) else {
            return;
        };
        info!(target: "cairn::checkpoints", epoch, "proposing checkpoint");
        self.publish_checkpoint_envelope(signed.envelope()).await;
        let _ = self.accept_proposal(signed).await;
    }

    pub(super) async fn publish_checkpoint_envelope(&self, envelope: &Envelope) {
        if let Ok(bytes) = envelope.to_bytes()
            && let Err(e) = self.ctx.net.publish(bytes).await
        {
            debug!(target: "cairn::checkpoints", error = %e, "checkpoint message not published");
        }
    }

    /// Handles a gossiped checkpoint message (proposal, vote or anchor receipt).
    pub(crate) async fn on_gossip(&self, source: PeerId, id: MessageId, data: Vec<u8>) {
        let acceptance = match self.receive(source, &data).await {
            CheckpointGossip::Accept => MessageAcceptance::Accept,
            CheckpointGossip::Ignore(_) => MessageAcceptance::Ignore,
            CheckpointGossip::Reject(reason) => {
                debug!(target: "cairn::gossip", %source, reason, "checkpoint message rejected");
                MessageAcceptance::Reject
            }
        };
        let _ = self.ctx.net.report_validation(id, source, acceptance).await;
    }

    /// Checks a checkpoint message `source` forwarded and acts on it, as gossip does (without
    /// the report to gossipsub; tests and simulations call it directly). What is ignored or
    /// rejected is counted as a `checkpoint` rejection under its reason.
    pub async fn receive(&self, source: PeerId, data: &[u8]) -> CheckpointGossip {
        let outcome = self.check_checkpoint_message(source, data).await;
        if let CheckpointGossip::Ignore(reason) | CheckpointGossip::Reject(reason) = outcome {
            self.ctx.metrics.reject("checkpoint", reason);
        }
        outcome
    }

    async fn check_checkpoint_message(&self, source: PeerId, data: &[u8]) -> CheckpointGossip {
        use CheckpointGossip::Reject;
        if data.len() > crate::net::MAX_GOSSIP_BYTES {
            return Reject("oversize");
        }
        let envelope = match Envelope::from_bytes(data) {
            Ok(envelope) => envelope,
            Err(e) => return Reject(e.reason()),
        };
        match envelope.kind {
            MessageKind::Checkpoint => match envelope.verify::<Checkpoint>(self.ctx.network()) {
                Ok(proposal) => self.on_proposal(source, proposal).await,
                Err(e) => Reject(e.reason()),
            },
            MessageKind::CheckpointVote => {
                match envelope.verify::<CheckpointVote>(self.ctx.network()) {
                    Ok(vote) => self.accept_vote(vote).await,
                    Err(e) => Reject(e.reason()),
                }
            }
            MessageKind::AnchorReceipt => {
                match envelope.verify::<AnchorReceipt>(self.ctx.network()) {
                    Ok(receipt) => self.accept_receipt(receipt),
                    Err(e) => Reject(e.reason()),
                }
            }
            _ => Reject("wrong_kind"),
        }
    }

    /// A gossiped proposal: its network and time are checked before anything else; one for
    /// another epoch or branch is ignored, and starts a catch-up only when its proposer is
    /// plausibly a committee member (see `catch_up.rs`).
    async fn on_proposal(
        &self,
        source: PeerId,
        proposal: Verified<Checkpoint>,
    ) -> CheckpointGossip {
        let c = proposal.message();
        if c.network != self.ctx.options().spec.name {
            return CheckpointGossip::Reject("wrong_network");
        }
        if c.proposed_at > now().plus_ms(checkpoint::MAX_CLOCK_SKEW_MS) {
            return CheckpointGossip::Reject("future");
        }
        let here = self.with_state(|s| (s.chain.len() as u64, self.tip(s)));
        let Some((len, tip)) = here else {
            return CheckpointGossip::Ignore("internal");
        };
        if c.epoch != len || Some(c.previous) != tip {
            // Late (harmless), ahead of this node, or on another branch: not the sender's
            // fault, and of no use to peers on this node's chain.
            debug!(target: "cairn::checkpoints", epoch = c.epoch, "proposal for another epoch or branch");
            if c.epoch >= len {
                self.catch_up_if_behind(c.epoch, c.previous, c.proposer, source);
            }
            return CheckpointGossip::Ignore(if c.epoch == len {
                "other_branch"
            } else {
                "other_epoch"
            });
        }
        match self.accept_proposal(proposal).await {
            Ok(()) => CheckpointGossip::Accept,
            Err(reason) => CheckpointGossip::Reject(reason),
        }
    }

    async fn accept_proposal(&self, proposal: Verified<Checkpoint>) -> Result<(), &'static str> {
        let c = proposal.message().clone();
        let hash = c.hash().map_err(|_| "malformed")?;
        self.with_state(|s| {
            if c.network != self.ctx.options().spec.name {
                return Err("wrong_network");
            }
            if c.epoch != s.chain.len() as u64 {
                return Err("other_epoch");
            }
            if Some(c.previous) != self.tip(s) {
                return Err("wrong_previous");
            }
            let committee = self.committee_of(s);
            if !committee.contains(&c.proposer) || s.epoch.proposals.len() > 2 * committee.len() {
                return Err("not_proposer");
            }
            let previous = s.chain.last().map(|p| p.checkpoint.proposed_at);
            let epoch_ms = self.ctx.options().spec.checkpoints.epoch_ms;
            checkpoint::check_proposal_time(c.proposed_at, previous, epoch_ms, now())
                .map_err(|e| e.reason())?;
            let threshold = self.ctx.options().spec.checkpoints.threshold();
            s.epoch.proposals.entry(hash).or_insert((c.clone(), None));
            s.epoch
                .tallies
                .entry(hash)
                .or_insert_with(|| VoteTally::new(c.epoch, hash, &committee, threshold));
            Ok(())
        })
        .unwrap_or(Err("internal"))?;
        let pending: Vec<_> = self
            .with_state(|s| {
                let (matching, rest) = std::mem::take(&mut s.epoch.pending)
                    .into_iter()
                    .partition(|v| v.message().checkpoint == hash);
                s.epoch.pending = rest;
                matching
            })
            .unwrap_or_default();
        for vote in pending {
            let _ = self.accept_vote(vote).await;
        }
        self.consider(hash).await;
        Ok(())
    }

    /// Recomputes a proposal from this node's table; keeps the leaves if equal, and votes when
    /// this node is on the committee.
    async fn consider(&self, hash: CheckpointHash) {
        let me = self.ctx.node_id();
        let vote = self.with_state(|s| {
            let (proposal, _) = s.epoch.proposals.get(&hash)?.clone();
            // Nothing changed since the last look: the answer would be the same.
            let version = s.ledger.version();
            if s.epoch.considered.insert(hash, version) == Some(version) {
                return None;
            }
            let (mine, leaves) = self.compute(s, proposal.epoch, proposal.proposed_at)?;
            if !checkpoint::same_content(&proposal, &mine) {
                return None;
            }
            if let Some(entry) = s.epoch.proposals.get_mut(&hash) {
                entry.1 = Some(leaves);
            }
            let member = self.committee_of(s).contains(&me);
            let fault = s.fault;
            if !member || fault == CheckpointFault::Silent || !s.epoch.voted.insert(hash) {
                return None;
            }
            let target = match fault {
                CheckpointFault::WrongRoot => {
                    let mut other = proposal.clone();
                    other.reputation_root[0] ^= 1;
                    other.hash().ok()?
                }
                _ => hash,
            };
            Some(CheckpointVote {
                checkpoint: target,
                epoch: proposal.epoch,
                voter: me,
            })
        });
        let Some(Some(vote)) = vote else {
            return;
        };
        let Ok(signed) = self.ctx.sign(vote) else {
            return;
        };
        self.publish_checkpoint_envelope(signed.envelope()).await;
        let _ = self.accept_vote(signed).await;
    }

    /// Counts a vote of the current epoch from a member of its committee. A vote for a
    /// proposal not seen yet waits in a queue, at most [`MAX_PENDING_PER_VOTER`] per member, so
    /// that neither outsiders nor one member can fill it; votes for other epochs are ignored.
    async fn accept_vote(&self, vote: Verified<CheckpointVote>) -> CheckpointGossip {
        let outcome = self
            .with_state(|s| {
                let v = vote.message();
                if v.epoch != s.chain.len() as u64 {
                    return Err(CheckpointGossip::Ignore("other_epoch"));
                }
                if !self.committee_of(s).contains(&v.voter) {
                    return Err(CheckpointGossip::Reject("not_member"));
                }
                match s.epoch.tallies.get_mut(&v.checkpoint) {
                    Some(tally) => match tally.add(&vote) {
                        VoteOutcome::Final => Ok(Some(v.checkpoint)),
                        VoteOutcome::NotMember => Err(CheckpointGossip::Reject("not_member")),
                        _ => Ok(None),
                    },
                    None => queue_vote(&mut s.epoch, &vote).map(|()| None),
                }
            })
            .unwrap_or(Err(CheckpointGossip::Ignore("internal")));
        match outcome {
            Ok(Some(hash)) => {
                self.finalise(hash);
                CheckpointGossip::Accept
            }
            Ok(None) => CheckpointGossip::Accept,
            Err(refused) => refused,
        }
    }

    fn finalise(&self, hash: CheckpointHash) {
        let done = self.with_state(|s| {
            let tally = s.epoch.tallies.get(&hash)?;
            let (checkpoint, leaves) = s.epoch.proposals.get(&hash)?.clone();
            let signed = SignedCheckpoint {
                checkpoint,
                votes: tally.signatures(),
            };
            let ignored = s
                .epoch
                .pending
                .iter()
                .filter(|v| v.message().epoch == signed.checkpoint.epoch)
                .count();
            // Its verdicts leave the uncovered set whether or not this node agreed.
            s.ledger.cover(self.cutoff(signed.checkpoint.proposed_at));
            s.chain.push(signed.clone());
            s.opened_at = now();
            s.epoch = EpochState::default();
            Some((signed, leaves, ignored))
        });
        let Some(Some((signed, leaves, ignored))) = done else {
            return;
        };
        for _ in 0..ignored {
            self.ctx
                .metrics
                .reject("checkpoint_vote", "other_checkpoint");
        }
        let epoch = signed.checkpoint.epoch;
        info!(target: "cairn::checkpoints", epoch, %hash, votes = signed.votes.len(), "checkpoint final");
        let kv = &self.ctx.kv;
        let stored = store::encode_value(&signed)
            .and_then(|v| kv.put(Tree::Checkpoints, &key(b'c', epoch), &v))
            .and_then(|()| match &leaves {
                Some(l) => kv.put(
                    Tree::Checkpoints,
                    &key(b'l', epoch),
                    &store::encode_value(l)?,
                ),
                None => Ok(()),
            })
            .and_then(|()| kv.flush());
        if let Err(e) = stored {
            warn!(target: "cairn::checkpoints", error = %e, "cannot store checkpoint");
        }
        if signed.checkpoint.proposer == self.ctx.node_id()
            && self.service().backend.kind() != "none"
        {
            let node = self.clone();
            self.ctx
                .spawn(async move { node.anchor(epoch, hash).await });
        }
    }
}

/// Queues a member's vote for a proposal not seen yet.
fn queue_vote(
    epoch: &mut EpochState,
    vote: &Verified<CheckpointVote>,
) -> Result<(), CheckpointGossip> {
    let voter = vote.message().voter;
    let queued = epoch
        .pending
        .iter()
        .filter(|v| v.message().voter == voter)
        .count();
    if queued >= MAX_PENDING_PER_VOTER {
        // An honest member votes on every equal proposal of the epoch, and forwarders that
        // saw them counted these votes: not their fault.
        return Err(CheckpointGossip::Ignore("too_many_pending"));
    }
    if epoch.pending.len() >= MAX_PENDING_VOTES {
        return Err(CheckpointGossip::Ignore("too_many_pending"));
    }
    epoch.pending.push(vote.clone());
    Ok(())
}
