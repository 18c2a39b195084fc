//! The checkpoint service: every epoch the proposer (round robin over the committee, the next
//! member after each timeout) gossips a proposal built from its reputation table; every node
//! recomputes it from its own table and committee members sign only an equal one; at the
//! spec's threshold the checkpoint is final, chained and stored in the sled tree
//! `checkpoints`; its proposer anchors it through the spec's backend.
//!
//! The rules are `cairn_protocol::checkpoint`'s; this module carries them out on the clock,
//! the gossip topic and the disk. Not built: fetching verdicts a member misses (a member whose
//! table differs does not sign, and signs later if its table catches up), and catching up on
//! checkpoints finalised while a node was offline.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_protocol::anchor::AnchorPayload;
use cairn_protocol::checkpoint::{self, CheckpointInput, Genesis, VoteOutcome, VoteTally};
use cairn_protocol::merkle::{MerkleTree, ReputationLeaf};
use cairn_protocol::proof::{AnchorProof, ReputationProof, SignedCheckpoint};
use cairn_protocol::{
    AnchorReceipt, Checkpoint, CheckpointHash, CheckpointVote, Envelope, MessageKind, NodeId,
    Timestamp, Verified,
};
use libp2p::PeerId;
use libp2p::gossipsub::MessageId;
use tracing::{debug, info, warn};

use crate::anchor::{
    AnchorBackend, BackendKind, BitcoindBackend, NoAnchor, Simulated, SimulatedChain,
};
use crate::config::NetworkSpec;
use crate::node::{Node, NodeError, now};
use crate::store::{self, KvStore, Tree};

/// Votes for proposals not seen yet that a node holds per epoch.
const MAX_PENDING_VOTES: usize = 1_024;
/// How often an anchorer asks the chain whether its transaction is confirmed.
const ANCHOR_POLL: Duration = Duration::from_millis(200);
/// How many times it asks before giving up on one anchor.
const ANCHOR_POLLS: u32 = 3_000;

/// Misbehaviour a test can switch on in one node's checkpoint service.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum CheckpointFault {
    /// Behave.
    #[default]
    None,
    /// Never propose and never vote.
    Silent,
    /// Vote for a checkpoint with a different reputation root than proposed.
    WrongRoot,
}

/// Checkpoints this node finalised and anchored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct CheckpointCounts {
    /// Finalised checkpoints in the local chain.
    pub finalised: u64,
    /// Of those, how many this node holds an anchor proof for.
    pub anchored: u64,
}

/// Why a proof could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProveError {
    /// No finalised checkpoint at the epoch asked for.
    #[error("no finalised checkpoint for epoch {epoch:?} on this node")]
    NoCheckpoint {
        /// The epoch asked for, `None` for the latest.
        epoch: Option<u64>,
    },
    /// This node did not keep the table of that epoch (its own table differed).
    #[error("this node does not hold the reputation table of epoch {epoch}")]
    NoTable {
        /// The epoch.
        epoch: u64,
    },
    /// The peer has no leaf in that checkpoint.
    #[error("peer {peer} has no record in the checkpoint of epoch {epoch}")]
    NoLeaf {
        /// The peer.
        peer: NodeId,
        /// The epoch.
        epoch: u64,
    },
    /// The network anchors but no anchor covers the epoch yet.
    #[error("no anchor covers epoch {epoch} yet; retry after the next checkpoint is anchored")]
    NotAnchoredYet {
        /// The epoch.
        epoch: u64,
    },
    /// The store failed.
    #[error(transparent)]
    Node(#[from] NodeError),
}

#[derive(Default)]
struct EpochState {
    proposals: BTreeMap<CheckpointHash, (Checkpoint, Option<Vec<ReputationLeaf>>)>,
    tallies: BTreeMap<CheckpointHash, VoteTally>,
    pending: Vec<Verified<CheckpointVote>>,
    proposed: BTreeSet<u64>,
    voted: BTreeSet<CheckpointHash>,
}

struct State {
    chain: Vec<SignedCheckpoint>,
    opened_at: Timestamp,
    epoch: EpochState,
    anchored: BTreeSet<u64>,
    fault: CheckpointFault,
}

/// The service's state and backend, held by the node.
pub(crate) struct CheckpointService {
    genesis: Option<Genesis>,
    state: Mutex<State>,
    backend: Arc<dyn AnchorBackend>,
    /// The node's own simulated chain, when the spec asks for one without a URL.
    _chain: Option<SimulatedChain>,
}

/// Creates (or reads) the identity of a node that will run in `data_dir`, before it starts,
/// so that a network spec's first committee can name it (simulations and tests).
pub fn prepare_identity(data_dir: &std::path::Path) -> Result<NodeId, NodeError> {
    let kv = crate::store::SledStore::open(&data_dir.join("db"), 1 << 20)?;
    let keypair = crate::node::load_or_create_identity(&kv)?;
    Ok(NodeId::from_keypair(&keypair))
}

fn key(prefix: u8, epoch: u64) -> Vec<u8> {
    let mut k = vec![prefix];
    k.extend_from_slice(&epoch.to_be_bytes());
    k
}

impl CheckpointService {
    /// Loads the stored chain and prepares the backend the spec names.
    pub(crate) async fn open(spec: &NetworkSpec, kv: &dyn KvStore) -> Result<Self, NodeError> {
        let committee = spec
            .checkpoints
            .first_committee()
            .map_err(|e| NodeError::Sign(e.to_string()))?;
        let genesis = (!committee.is_empty()).then(|| Genesis {
            network: spec.name.clone(),
            committee,
            committee_size: spec.checkpoints.committee_size,
            threshold: spec.checkpoints.threshold(),
        });
        let (backend, chain) = backend(spec).await?;
        let mut chain_state = Vec::new();
        for k in kv.keys(Tree::Checkpoints, b"c")? {
            if let Some(bytes) = kv.get(Tree::Checkpoints, &k)? {
                chain_state.push(store::decode_value::<SignedCheckpoint>(&bytes)?);
            }
        }
        let anchored = kv
            .keys(Tree::Checkpoints, b"a")?
            .iter()
            .filter_map(|k| {
                k.get(1..9)
                    .and_then(|b| b.try_into().ok())
                    .map(u64::from_be_bytes)
            })
            .collect();
        Ok(Self {
            genesis,
            state: Mutex::new(State {
                chain: chain_state,
                opened_at: now(),
                epoch: EpochState::default(),
                anchored,
                fault: CheckpointFault::None,
            }),
            backend,
            _chain: chain,
        })
    }
}

async fn backend(
    spec: &NetworkSpec,
) -> Result<(Arc<dyn AnchorBackend>, Option<SimulatedChain>), NodeError> {
    let a = &spec.anchor;
    let chain_name = crate::anchor::chain_name(a);
    Ok(match a.backend {
        BackendKind::None => (Arc::new(NoAnchor), None),
        BackendKind::Bitcoind => (
            Arc::new(BitcoindBackend::new(
                &a.rpc_url,
                &a.rpc_user,
                &a.rpc_password,
                &chain_name,
            )),
            None,
        ),
        BackendKind::Simulated if a.rpc_url.is_empty() => {
            let chain = SimulatedChain::start(rand::random())
                .await
                .map_err(|source| NodeError::Io {
                    path: "simulated chain".into(),
                    source,
                })?;
            let client =
                BitcoindBackend::new(&chain.url(), chain.user(), chain.password(), &chain_name);
            (Arc::new(Simulated(client)), Some(chain))
        }
        BackendKind::Simulated => (
            Arc::new(Simulated(BitcoindBackend::new(
                &a.rpc_url,
                &a.rpc_user,
                &a.rpc_password,
                &chain_name,
            ))),
            None,
        ),
    })
}

impl Node {
    fn service(&self) -> &CheckpointService {
        &self.inner.checkpoints
    }

    fn with_state<T>(&self, f: impl FnOnce(&mut State) -> T) -> Option<T> {
        self.service().state.lock().ok().map(|mut s| f(&mut s))
    }

    /// Makes this node misbehave in checkpoints (tests and simulations).
    pub fn set_checkpoint_fault(&self, fault: CheckpointFault) {
        self.with_state(|s| s.fault = fault);
    }

    /// How many checkpoints this node finalised and holds anchors for.
    pub fn checkpoint_counts(&self) -> CheckpointCounts {
        self.with_state(|s| CheckpointCounts {
            finalised: s.chain.len() as u64,
            anchored: s.anchored.len() as u64,
        })
        .unwrap_or_default()
    }

    /// The finalised chain, epoch 0 first.
    pub fn checkpoints(&self) -> Vec<SignedCheckpoint> {
        self.with_state(|s| s.chain.clone()).unwrap_or_default()
    }

    /// The anchor proof of `epoch`, when this node holds one.
    pub fn checkpoint_anchor(&self, epoch: u64) -> Option<AnchorProof> {
        let bytes = self
            .inner
            .kv
            .get(Tree::Checkpoints, &key(b'a', epoch))
            .ok()??;
        store::decode_value(&bytes).ok()
    }

    /// The anchoring backend's name and chain.
    pub fn anchor_backend(&self) -> (&'static str, String) {
        (
            self.service().backend.kind(),
            self.service().backend.chain().to_owned(),
        )
    }

    /// Runs the epoch clock: spawned at start when the spec names a first committee.
    pub(crate) async fn run_checkpoints(self) {
        if self.service().genesis.is_none() {
            return;
        }
        let spec = &self.inner.options.spec.checkpoints;
        let step = spec.epoch_ms.min(spec.proposer_timeout_ms) / 4;
        let mut ticker = tokio::time::interval(Duration::from_millis(step.clamp(20, 1_000)));
        loop {
            ticker.tick().await;
            self.checkpoint_tick(now()).await;
        }
    }

    fn committee_of(&self, s: &State) -> Vec<NodeId> {
        match (s.chain.last(), &self.service().genesis) {
            (Some(last), _) => last.checkpoint.next_committee.clone(),
            (None, Some(g)) => g.committee.clone(),
            (None, None) => Vec::new(),
        }
    }

    fn tip(&self, s: &State) -> Option<CheckpointHash> {
        match s.chain.last() {
            Some(last) => last.checkpoint.hash().ok(),
            None => self.service().genesis.as_ref()?.hash().ok(),
        }
    }

    async fn checkpoint_tick(&self, now: Timestamp) {
        let spec = &self.inner.options.spec.checkpoints;
        let me = self.node_id();
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

    /// This node's own checkpoint for `epoch` from its current table.
    fn compute(
        &self,
        s: &State,
        epoch: u64,
        now: Timestamp,
    ) -> Option<(Checkpoint, Vec<ReputationLeaf>)> {
        let table = self.reputation();
        let leaves = table.leaves();
        let committee = self.committee_of(s);
        let input = CheckpointInput {
            network: &self.inner.options.spec.name,
            epoch,
            previous: self.tip(s)?,
            committee: &committee,
            committee_size: self.inner.options.spec.checkpoints.committee_size as usize,
            verdicts: &table.applied_ids(),
            proposer: self.node_id(),
            now,
        };
        let c = checkpoint::build(&input, &leaves).ok()?;
        Some((c, leaves))
    }

    async fn propose(&self, epoch: u64, now: Timestamp) {
        let Some(Some((c, _))) = self.with_state(|s| self.compute(s, epoch, now)) else {
            return;
        };
        let Ok(signed) = Verified::sign(c, &self.inner.keypair) else {
            return;
        };
        info!(target: "cairn::checkpoints", epoch, "proposing checkpoint");
        self.publish_checkpoint_envelope(signed.envelope()).await;
        let _ = self.accept_proposal(signed).await;
    }

    async fn publish_checkpoint_envelope(&self, envelope: &Envelope) {
        if let Ok(bytes) = envelope.to_bytes()
            && let Err(e) = self.inner.net.publish_checkpoint(bytes).await
        {
            debug!(target: "cairn::checkpoints", error = %e, "checkpoint message not published");
        }
    }

    /// Handles a message from the checkpoint topic.
    pub(crate) async fn on_checkpoint_gossip(&self, source: PeerId, id: MessageId, data: Vec<u8>) {
        let checked = self.check_checkpoint_message(&data).await;
        self.settle_gossip("checkpoint", source, id, checked).await;
    }

    async fn check_checkpoint_message(&self, data: &[u8]) -> Result<(), &'static str> {
        if data.len() > crate::net::MAX_GOSSIP_BYTES {
            return Err("oversize");
        }
        let envelope = Envelope::from_bytes(data).map_err(|e| e.reason())?;
        match envelope.kind {
            MessageKind::Checkpoint => {
                let proposal = envelope.verify::<Checkpoint>().map_err(|e| e.reason())?;
                self.accept_proposal(proposal).await
            }
            MessageKind::CheckpointVote => {
                let vote = envelope
                    .verify::<CheckpointVote>()
                    .map_err(|e| e.reason())?;
                self.accept_vote(vote).await
            }
            MessageKind::AnchorReceipt => {
                let receipt = envelope.verify::<AnchorReceipt>().map_err(|e| e.reason())?;
                self.accept_receipt(receipt.message().clone());
                Ok(())
            }
            _ => Err("wrong_kind"),
        }
    }

    async fn accept_proposal(&self, proposal: Verified<Checkpoint>) -> Result<(), &'static str> {
        let c = proposal.message().clone();
        let hash = c.hash().map_err(|_| "malformed")?;
        self.with_state(|s| {
            if c.epoch < s.chain.len() as u64 {
                return Ok(()); // late; harmless
            }
            if c.network != self.inner.options.spec.name || c.epoch != s.chain.len() as u64 {
                return Err("wrong_epoch");
            }
            if Some(c.previous) != self.tip(s) {
                return Err("wrong_previous");
            }
            let committee = self.committee_of(s);
            if !committee.contains(&c.proposer) || s.epoch.proposals.len() > 2 * committee.len() {
                return Err("not_proposer");
            }
            let threshold = self.inner.options.spec.checkpoints.threshold();
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
        let me = self.node_id();
        let vote = self.with_state(|s| {
            let (proposal, _) = s.epoch.proposals.get(&hash)?.clone();
            let (mine, leaves) = self.compute(s, proposal.epoch, now())?;
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
        let Ok(signed) = Verified::sign(vote, &self.inner.keypair) else {
            return;
        };
        self.publish_checkpoint_envelope(signed.envelope()).await;
        let _ = self.accept_vote(signed).await;
    }

    async fn accept_vote(&self, vote: Verified<CheckpointVote>) -> Result<(), &'static str> {
        let outcome = self
            .with_state(|s| {
                let v = vote.message();
                if v.epoch < s.chain.len() as u64 {
                    return Ok(None);
                }
                match s.epoch.tallies.get_mut(&v.checkpoint) {
                    Some(tally) => match tally.add(&vote) {
                        VoteOutcome::Final => Ok(Some(v.checkpoint)),
                        VoteOutcome::NotMember => Err("not_member"),
                        _ => Ok(None),
                    },
                    None if s.epoch.pending.len() < MAX_PENDING_VOTES => {
                        s.epoch.pending.push(vote.clone());
                        Ok(None)
                    }
                    None => Err("too_many_pending"),
                }
            })
            .unwrap_or(Err("internal"))?;
        if let Some(hash) = outcome {
            self.finalise(hash);
        }
        Ok(())
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
            s.chain.push(signed.clone());
            s.opened_at = now();
            s.epoch = EpochState::default();
            Some((signed, leaves, ignored))
        });
        let Some(Some((signed, leaves, ignored))) = done else {
            return;
        };
        for _ in 0..ignored {
            self.inner
                .metrics
                .reject("checkpoint_vote", "other_checkpoint");
        }
        let epoch = signed.checkpoint.epoch;
        info!(target: "cairn::checkpoints", epoch, %hash, votes = signed.votes.len(), "checkpoint final");
        let kv = &self.inner.kv;
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
        if signed.checkpoint.proposer == self.node_id() && self.service().backend.kind() != "none" {
            let node = self.clone();
            self.spawn(async move { node.anchor(epoch, hash).await });
        }
    }

    async fn anchor(self, epoch: u64, hash: CheckpointHash) {
        let backend = self.service().backend.clone();
        let confirmations = self.inner.options.spec.anchor.confirmations.max(1);
        let payload = AnchorPayload {
            epoch,
            checkpoint: hash,
        };
        let sent = tokio::task::spawn_blocking(move || {
            let txid = backend.broadcast(&payload)?;
            if let Some(txid) = txid {
                backend.after_broadcast(confirmations)?;
                for _ in 0..ANCHOR_POLLS {
                    if let Some(proof) = backend.proof(&txid, confirmations)? {
                        return Ok(Some((txid, proof)));
                    }
                    std::thread::sleep(ANCHOR_POLL);
                }
            }
            Ok::<_, crate::anchor::AnchorBackendError>(None)
        })
        .await;
        match sent {
            Ok(Ok(Some((txid, proof)))) => {
                self.store_anchor(epoch, &proof);
                self.publish_receipt(epoch, hash, txid, &proof).await;
            }
            Ok(Ok(None)) => {
                warn!(target: "cairn::checkpoints", epoch, "anchor not confirmed in time")
            }
            Ok(Err(e)) => warn!(target: "cairn::checkpoints", epoch, error = %e, "cannot anchor"),
            Err(e) => warn!(target: "cairn::checkpoints", epoch, error = %e, "anchor task failed"),
        }
    }

    fn store_anchor(&self, epoch: u64, proof: &AnchorProof) {
        let stored = store::encode_value(proof)
            .and_then(|v| self.inner.kv.put(Tree::Checkpoints, &key(b'a', epoch), &v))
            .and_then(|()| self.inner.kv.flush());
        match stored {
            Ok(()) => {
                self.with_state(|s| s.anchored.insert(epoch));
            }
            Err(e) => warn!(target: "cairn::checkpoints", error = %e, "cannot store anchor proof"),
        }
    }

    async fn publish_receipt(
        &self,
        epoch: u64,
        hash: CheckpointHash,
        txid: bitcoin::Txid,
        proof: &AnchorProof,
    ) {
        use bitcoin::hashes::Hash;
        let Some(header) = proof.headers.first() else {
            return;
        };
        let block_hash = bitcoin::consensus::deserialize::<bitcoin::block::Header>(header)
            .map_or([0; 32], |h| h.block_hash().to_byte_array());
        let receipt = AnchorReceipt {
            checkpoint: hash,
            epoch,
            chain: proof.chain.clone(),
            txid: txid.to_byte_array(),
            block_hash,
            height: 0,
            anchored_by: self.node_id(),
        };
        if let Ok(signed) = Verified::sign(receipt, &self.inner.keypair) {
            self.publish_checkpoint_envelope(signed.envelope()).await;
        }
    }

    /// Another member anchored a checkpoint: fetch the proof from this node's own view of the
    /// chain (nothing is taken on the anchorer's word).
    fn accept_receipt(&self, receipt: AnchorReceipt) {
        use bitcoin::hashes::Hash;
        let known = self
            .with_state(|s| {
                let c = s.chain.get(receipt.epoch as usize)?;
                (c.checkpoint.hash().ok()? == receipt.checkpoint
                    && !s.anchored.contains(&receipt.epoch))
                .then_some(())
            })
            .flatten();
        if known.is_none() || self.service().backend.kind() == "none" {
            return;
        }
        let backend = self.service().backend.clone();
        let confirmations = self.inner.options.spec.anchor.confirmations.max(1);
        let txid = bitcoin::Txid::from_byte_array(receipt.txid);
        let node = self.clone();
        self.spawn(async move {
            let proof =
                tokio::task::spawn_blocking(move || backend.proof(&txid, confirmations)).await;
            if let Ok(Ok(Some(proof))) = proof {
                node.store_anchor(receipt.epoch, &proof);
            }
        });
    }

    /// A proof of `peer`'s record at `epoch` (default: the latest this node holds a table
    /// for), chained to the network spec and, when the network anchors, to the first anchor
    /// at or after that epoch.
    pub fn prove(&self, peer: &NodeId, epoch: Option<u64>) -> Result<ReputationProof, ProveError> {
        let chain = self.checkpoints();
        let epoch = match epoch {
            Some(e) => e,
            None => chain
                .len()
                .checked_sub(1)
                .ok_or(ProveError::NoCheckpoint { epoch })? as u64,
        };
        if epoch as usize >= chain.len() {
            return Err(ProveError::NoCheckpoint { epoch: Some(epoch) });
        }
        let kv = &self.inner.kv;
        let leaves: Vec<ReputationLeaf> = match kv
            .get(Tree::Checkpoints, &key(b'l', epoch))
            .map_err(NodeError::from)?
        {
            Some(bytes) => store::decode_value(&bytes).map_err(NodeError::from)?,
            None => return Err(ProveError::NoTable { epoch }),
        };
        let index = leaves
            .iter()
            .position(|l| l.peer == *peer)
            .ok_or(ProveError::NoLeaf { peer: *peer, epoch })?;
        let tree =
            MerkleTree::from_reputation(&leaves).map_err(|_| ProveError::NoTable { epoch })?;
        let path = tree.proof(index).ok_or(ProveError::NoTable { epoch })?;
        let (end, anchor) = if self.service().backend.kind() == "none" {
            (chain.len() - 1, None)
        } else {
            let found =
                (epoch..chain.len() as u64).find_map(|e| self.checkpoint_anchor(e).map(|a| (e, a)));
            let (e, a) = found.ok_or(ProveError::NotAnchoredYet { epoch })?;
            (e as usize, Some(a))
        };
        Ok(ReputationProof {
            leaf: leaves[index],
            epoch,
            path,
            chain: chain[..=end].to_vec(),
            anchor,
        })
    }
}
