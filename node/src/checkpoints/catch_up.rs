//! Catching up: a node that was not running while checkpoints were finalised (it started late,
//! or was offline) hears proposals for an epoch ahead of its chain. It then asks the peer that
//! forwarded one for the checkpoints it lacks and for the last one's leaves, over the sync
//! protocol, and takes them only if they extend its chain under the committee rules (the same
//! checks as an offline proof) and the leaves hash to that checkpoint's reputation root.
//!
//! With the leaves it adopts the checkpoint's table as its covered table, so its next tables
//! equal everyone's and, on the committee, it can sign again. Without them (the peer's own
//! table differed) it still follows the chain. Without catching up, a node that joined late
//! never followed it, and once the committee rotated to such nodes the chain stopped for
//! everyone.
//!
//! When a gossiped proposal starts a catch-up is the round's rule
//! ([`EpochRound`](cairn_protocol::checkpoint::round::EpochRound): a plausible proposer, once
//! per peer and interval, one at a time); this file carries it out, and
//! `Checkpoints::catch_up` can also be called by hand.

use cairn_protocol::merkle::{MerkleTree, ReputationLeaf};
use cairn_protocol::proof::{self, ChainTip, SignedCheckpoint};
use libp2p::PeerId;
use tracing::{debug, info, warn};

use cairn_protocol::{CheckpointHash, NodeId};

use super::{Checkpoints, State, key};
use crate::context::now;
use crate::net::{MAX_SYNC_CHECKPOINTS, SyncRequest, SyncResponse};
use crate::store::{self, KvStore, StoreError, Tree, Write};

/// Rounds of [`MAX_SYNC_CHECKPOINTS`] one catch-up asks for before it waits for the next
/// proposal to start another.
const MAX_ROUNDS: usize = 64;

impl Checkpoints {
    /// Finalised checkpoints from epoch `from` on, at most [`MAX_SYNC_CHECKPOINTS`] (served to
    /// peers catching up).
    pub(crate) fn chain_from(&self, from: u64) -> Vec<SignedCheckpoint> {
        self.with_state(|s| {
            let from = usize::try_from(from).unwrap_or(usize::MAX);
            (s.round.chain().iter())
                .skip(from)
                .take(MAX_SYNC_CHECKPOINTS)
                .cloned()
                .collect()
        })
        .unwrap_or_default()
    }

    /// The leaves of the checkpoint of `epoch`, when this node keeps them (its table matched).
    pub(crate) fn leaves(&self, epoch: u64) -> Option<Vec<ReputationLeaf>> {
        self.stored(b'l', epoch)
    }

    /// Asks `peer` for the finalised checkpoints this node lacks and takes those that check
    /// out (what a proposal ahead of this node's chain sets off); where the two chains
    /// branched, switches to the peer's if it is the better one (see
    /// [`Self::switch_to_better_chain`]). Refusals are counted as `checkpoint_sync`
    /// rejections.
    pub async fn catch_up(&self, peer: PeerId) {
        for _ in 0..MAX_ROUNDS {
            let Some(from) = self.with_state(|s| s.round.chain().len()) else {
                return;
            };
            let Some(chain) = self.fetch_checkpoints(peer, from as u64).await else {
                // Nothing beyond this node's length, but the chains may still differ.
                if self.last_differs(peer, from).await
                    && let Err(reason) = self.switch_to_better_chain(peer, from).await
                {
                    self.ctx.metrics.reject("checkpoint_sync", reason);
                }
                return;
            };
            let full = chain.len() == MAX_SYNC_CHECKPOINTS;
            let verified = self
                .with_state(|s| {
                    let tip = self.chain_tip(s, from)?;
                    let genesis = self.service().genesis.as_ref()?;
                    Some(proof::verify_extension(&chain, tip.as_tip(), genesis))
                })
                .flatten();
            let outcome = match verified {
                Some(Ok(_)) => {
                    let leaves = self.fetch_leaves(peer, chain.last()).await;
                    self.adopt_chain(from, from, chain, leaves)
                }
                // The peer's chain branched off this node's earlier.
                Some(Err(proof::ProofError::BrokenChain { index })) if index == from => {
                    self.switch_to_better_chain(peer, from).await
                }
                Some(Err(e)) => Err(e.check()),
                None => Err("internal"),
            };
            if let Err(reason) = outcome {
                self.ctx.metrics.reject("checkpoint_sync", reason);
                warn!(target: "cairn::checkpoints", %peer, reason, "refused checkpoints a peer sent");
                return;
            }
            if !full {
                return;
            }
        }
    }

    /// Two checkpoints of one epoch can both reach the threshold when members sign a slow
    /// proposer's proposal and its successor's (there is no view change), and nodes that saw
    /// different ones first fork; neither branch may have enough members to go on. Every node
    /// therefore settles on one rule: a chain valid from the genesis beats a shorter one, and
    /// of two as long, the one whose first differing checkpoint has the lower hash. This node
    /// takes `peer`'s chain when it is the better one.
    async fn switch_to_better_chain(&self, peer: PeerId, mine: usize) -> Result<(), &'static str> {
        let genesis = self.service().genesis.as_ref().ok_or("no_checkpoints")?;
        // Checked as it arrives, so a peer cannot make this node hold more than valid
        // checkpoints.
        let mut theirs: Vec<SignedCheckpoint> = Vec::new();
        let mut tip = OwnedTip {
            len: 0,
            hash: genesis.hash().map_err(|_| "spec")?,
            committee: genesis.committee.clone(),
        };
        for _ in 0..MAX_ROUNDS {
            let Some(more) = self.fetch_checkpoints(peer, theirs.len() as u64).await else {
                break;
            };
            tip.hash =
                proof::verify_extension(&more, tip.as_tip(), genesis).map_err(|e| e.check())?;
            tip.len += more.len();
            if let Some(last) = more.last() {
                tip.committee = last.checkpoint.next_committee.clone();
            }
            let full = more.len() == MAX_SYNC_CHECKPOINTS;
            theirs.extend(more);
            if !full {
                break;
            }
        }
        let (fork_at, better, fin) = self
            .with_state(|s| {
                let chain = s.round.chain();
                let fork_at = (chain.iter().zip(&theirs))
                    .position(|(a, b)| a.checkpoint != b.checkpoint)
                    .unwrap_or(chain.len().min(theirs.len()));
                let hash = |c: Option<&SignedCheckpoint>| c.and_then(|c| c.checkpoint.hash().ok());
                let better = theirs.len() > mine
                    || (theirs.len() == mine
                        && hash(theirs.get(fork_at)) < hash(chain.get(fork_at)));
                (fork_at, better, Self::final_epoch(s))
            })
            .ok_or("internal")?;
        if fin.is_some_and(|e| fork_at as u64 <= e) && fork_at < mine {
            // An anchored checkpoint and everything before it are final: no branch replaces
            // them, however long.
            return Err("anchored");
        }
        if !better {
            debug!(target: "cairn::checkpoints", %peer, "a peer's other branch is not the better one; kept this one");
            return Ok(());
        }
        let leaves = self.fetch_leaves(peer, theirs.last()).await;
        let tail = theirs.split_off(fork_at);
        warn!(target: "cairn::checkpoints", %peer, fork_at, mine, theirs = fork_at + tail.len(), "switching to a better checkpoint chain");
        self.adopt_chain(mine, fork_at, tail, leaves)
    }

    /// Whether `peer`'s checkpoint at this node's last epoch (its chain being `len` long) is
    /// another one.
    async fn last_differs(&self, peer: PeerId, len: usize) -> bool {
        let Some(last) = len.checked_sub(1) else {
            return false;
        };
        let Some(theirs) = self.fetch_checkpoints(peer, last as u64).await else {
            return false;
        };
        let mine = self
            .with_state(|s| s.round.chain().get(last).map(|c| c.checkpoint.clone()))
            .flatten();
        theirs.first().map(|c| &c.checkpoint) != mine.as_ref()
    }

    async fn fetch_checkpoints(&self, peer: PeerId, from: u64) -> Option<Vec<SignedCheckpoint>> {
        match self
            .ctx
            .net
            .sync(peer, SyncRequest::Checkpoints { from })
            .await
        {
            Ok(SyncResponse::Checkpoints(chain)) if !chain.is_empty() => Some(chain),
            Ok(_) => None,
            Err(e) => {
                debug!(target: "cairn::checkpoints", %peer, error = %e, "checkpoint catch-up failed");
                None
            }
        }
    }

    /// The leaves of `last`, when `peer` has them and they hash to its reputation root.
    async fn fetch_leaves(
        &self,
        peer: PeerId,
        last: Option<&SignedCheckpoint>,
    ) -> Option<Vec<ReputationLeaf>> {
        let last = &last?.checkpoint;
        let answer = self
            .ctx
            .net
            .sync(peer, SyncRequest::Leaves { epoch: last.epoch })
            .await;
        let Ok(SyncResponse::Leaves(Some(leaves))) = answer else {
            return None;
        };
        let root = MerkleTree::from_reputation(&leaves).map(|t| t.root());
        if root.ok() == Some(last.reputation_root) {
            Some(leaves)
        } else {
            self.ctx
                .metrics
                .reject("checkpoint_sync", "leaves_mismatch");
            None
        }
    }

    /// The end of this node's chain cut to its first `len` checkpoints.
    fn chain_tip(&self, s: &State, len: usize) -> Option<OwnedTip> {
        let genesis = self.service().genesis.as_ref()?;
        Some(match len.checked_sub(1).map(|i| s.round.chain().get(i)) {
            None => OwnedTip {
                len,
                hash: genesis.hash().ok()?,
                committee: genesis.committee.clone(),
            },
            Some(last) => {
                let last = &last?.checkpoint;
                OwnedTip {
                    len,
                    hash: last.hash().ok()?,
                    committee: last.next_committee.clone(),
                }
            }
        })
    }

    /// Replaces this node's chain from epoch `from` on with `tail`, if the chain is still
    /// `expected` long and `tail` extends its first `from` checkpoints; with the last one's
    /// `leaves`, adopts its table. Forgotten checkpoints leave the store with their leaves
    /// and anchors.
    fn adopt_chain(
        &self,
        expected: usize,
        from: usize,
        tail: Vec<SignedCheckpoint>,
        leaves: Option<Vec<ReputationLeaf>>,
    ) -> Result<(), &'static str> {
        let genesis = self.service().genesis.as_ref().ok_or("no_checkpoints")?;
        let adopted = self
            .with_state(|s| {
                if s.round.chain().len() != expected {
                    // Finalised meanwhile: nothing is wrong, the next proposal tells.
                    return Ok(None);
                }
                if from < expected && Self::final_epoch(s).is_some_and(|e| from as u64 <= e) {
                    return Err("anchored");
                }
                let tip = self.chain_tip(s, from).ok_or("internal")?;
                proof::verify_extension(&tail, tip.as_tip(), genesis).map_err(|e| e.check())?;
                if tail.is_empty() {
                    return Err("empty");
                }
                s.round.adopt(from, tail.clone(), leaves.as_deref(), now());
                s.anchored.retain(|epoch| *epoch < from as u64);
                Ok(Some(s.round.chain().len()))
            })
            .unwrap_or(Err("internal"))?;
        let Some(len) = adopted else {
            return Ok(());
        };
        let stored = store_adopted(
            self.ctx.kv.as_ref(),
            from..expected,
            &tail,
            leaves.as_deref(),
        );
        if let Err(e) = stored {
            warn!(target: "cairn::checkpoints", error = %e, "cannot store checkpoints");
        }
        info!(target: "cairn::checkpoints", from, to = len, table = leaves.is_some(), "caught up on checkpoints");
        Ok(())
    }
}

/// A [`ChainTip`] that owns its committee.
struct OwnedTip {
    len: usize,
    hash: CheckpointHash,
    committee: Vec<NodeId>,
}

impl OwnedTip {
    fn as_tip(&self) -> ChainTip<'_> {
        ChainTip {
            len: self.len,
            hash: self.hash,
            committee: &self.committee,
        }
    }
}

/// Replaces the stored checkpoints of `replaced` epochs (with their leaves and anchors) by
/// `tail`, and stores `leaves` under its last epoch, in one atomic batch: a crash leaves the
/// old chain or the new one, never the old one cut short (review L3).
pub(super) fn store_adopted(
    kv: &dyn KvStore,
    replaced: std::ops::Range<usize>,
    tail: &[SignedCheckpoint],
    leaves: Option<&[ReputationLeaf]>,
) -> Result<(), StoreError> {
    let mut writes = Vec::new();
    for epoch in replaced {
        for prefix in [b'c', b'l', b'a'] {
            let key = key(prefix, epoch as u64);
            writes.push(Write::Remove { key });
        }
    }
    for signed in tail {
        let key = key(b'c', signed.checkpoint.epoch);
        let value = store::encode_value(signed)?;
        writes.push(Write::Put { key, value });
    }
    if let (Some(leaves), Some(last)) = (leaves, tail.last()) {
        let key = key(b'l', last.checkpoint.epoch);
        let value = store::encode_value(&leaves)?;
        writes.push(Write::Put { key, value });
    }
    kv.apply(Tree::Checkpoints, writes)?;
    kv.flush()
}
