//! The epoch round's shell: checks envelopes, feeds the clock and verified proposals and
//! votes to [`EpochRound`](cairn_protocol::checkpoint::round::EpochRound), where the rules
//! live, and carries out what it decides: signing and gossip, the store, anchoring and
//! catch-up. A test's [`CheckpointFault`] is applied here, to what the round asks for.

use cairn_protocol::checkpoint::round::{Acceptance, Action, Finalised, Input, Step};
use cairn_protocol::{
    AnchorReceipt, Checkpoint, CheckpointVote, Envelope, Message, MessageKind, Timestamp, Verified,
};
use libp2p::PeerId;
use libp2p::gossipsub::{MessageAcceptance, MessageId};
use tracing::{debug, info, warn};

use super::{CheckpointFault, CheckpointGossip, Checkpoints, key};
use crate::context::now;
use crate::store::{self, Tree};

impl Checkpoints {
    pub(super) async fn checkpoint_tick(&self, now: Timestamp) {
        let actions = self.with_state(|s| s.round.tick(now));
        self.carry_out(actions.unwrap_or_default()).await;
    }

    /// Hands `input` to the round and carries out what it decides; what the round made of it,
    /// or `None` when the state is poisoned.
    async fn step(&self, input: Input) -> Option<Acceptance> {
        let step = self.with_state(|s| s.round.handle(input, now()))?;
        self.carry_out(step.actions).await;
        Some(step.acceptance)
    }

    /// Carries out the round's actions, depth first: what signing and handing back one
    /// action brings comes before the next.
    async fn carry_out(&self, actions: Vec<Action>) {
        let mut todo = actions;
        todo.reverse();
        while let Some(action) = todo.pop() {
            let fault = self.with_state(|s| s.fault).unwrap_or_default();
            let more = match action {
                Action::Propose(_) | Action::Vote(_) if fault == CheckpointFault::Silent => None,
                Action::Propose(c) => self.publish_own(c, Input::OwnProposal).await,
                Action::Vote(mut vote) => {
                    if fault == CheckpointFault::WrongRoot {
                        // A vote for a checkpoint nobody proposed.
                        vote.checkpoint.0[0] ^= 1;
                    }
                    self.publish_own(vote, Input::Vote).await
                }
                Action::Finalised(done) => {
                    self.finalise(*done);
                    None
                }
                Action::CatchUp { peer } => {
                    self.start_catch_up(peer);
                    None
                }
                Action::CatchUpRefused { reason, .. } => {
                    self.ctx.metrics.reject("checkpoint_sync", reason.as_str());
                    None
                }
            };
            if let Some(step) = more {
                todo.extend(step.actions.into_iter().rev());
            }
        }
    }

    /// Signs and publishes this node's own proposal or vote, and hands it back to the round.
    async fn publish_own<T: Message>(
        &self,
        message: T,
        input: impl FnOnce(Verified<T>) -> Input,
    ) -> Option<Step> {
        let signed = self.ctx.sign(message).ok()?;
        self.publish_checkpoint_envelope(signed.envelope()).await;
        self.with_state(|s| s.round.handle(input(signed), now()))
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
        let network = self.ctx.network();
        let input = match envelope.kind {
            MessageKind::Checkpoint => match envelope.verify::<Checkpoint>(network) {
                Ok(proposal) => Input::Proposal {
                    proposal,
                    from: source,
                },
                Err(e) => return Reject(e.reason()),
            },
            MessageKind::CheckpointVote => match envelope.verify::<CheckpointVote>(network) {
                Ok(vote) => Input::Vote(vote),
                Err(e) => return Reject(e.reason()),
            },
            MessageKind::AnchorReceipt => {
                return match envelope.verify::<AnchorReceipt>(network) {
                    Ok(receipt) => self.accept_receipt(receipt),
                    Err(e) => Reject(e.reason()),
                };
            }
            _ => return Reject("wrong_kind"),
        };
        match self.step(input).await {
            Some(Acceptance::Accept) => CheckpointGossip::Accept,
            Some(Acceptance::Ignore(reason)) => CheckpointGossip::Ignore(reason.as_str()),
            Some(Acceptance::Reject(reason)) => CheckpointGossip::Reject(reason.as_str()),
            None => CheckpointGossip::Ignore("internal"),
        }
    }

    /// Starts the catch-up the round asked for, and tells it when it ends.
    fn start_catch_up(&self, peer: PeerId) {
        let node = self.clone();
        self.ctx.spawn(async move {
            node.catch_up(peer).await;
            node.with_state(|s| s.round.catch_up_ended());
        });
    }

    /// Persists a checkpoint the round finalised (with its leaves, when this node's table
    /// matched) and, when this node proposed it, anchors it.
    fn finalise(&self, done: Finalised) {
        let Finalised {
            checkpoint: signed,
            hash,
            leaves,
            proposed_here,
            dropped_votes,
        } = done;
        for _ in 0..dropped_votes {
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
        if proposed_here && self.service().backend.kind() != "none" {
            let node = self.clone();
            self.ctx
                .spawn(async move { node.anchor(epoch, hash).await });
        }
    }
}
