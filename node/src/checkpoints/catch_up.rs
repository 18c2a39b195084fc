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

use std::sync::atomic::Ordering;

use cairn_protocol::merkle::{MerkleTree, ReputationLeaf};
use cairn_protocol::proof::{self, ChainTip, SignedCheckpoint};
use cairn_protocol::reputation::ReputationTable;
use libp2p::PeerId;
use tracing::{debug, info, warn};

use super::{EpochState, key};
use crate::net::{MAX_SYNC_CHECKPOINTS, SyncRequest, SyncResponse};
use crate::node::{Node, now};
use crate::store::{self, Tree};

/// Rounds of [`MAX_SYNC_CHECKPOINTS`] one catch-up asks for before it waits for the next
/// proposal to start another.
const MAX_ROUNDS: usize = 64;

impl Node {
    /// Finalised checkpoints from epoch `from` on, at most [`MAX_SYNC_CHECKPOINTS`] (served to
    /// peers catching up).
    pub(crate) fn checkpoints_from(&self, from: u64) -> Vec<SignedCheckpoint> {
        self.with_state(|s| {
            let from = usize::try_from(from).unwrap_or(usize::MAX);
            s.chain
                .iter()
                .skip(from)
                .take(MAX_SYNC_CHECKPOINTS)
                .cloned()
                .collect()
        })
        .unwrap_or_default()
    }

    /// The leaves of the checkpoint of `epoch`, when this node keeps them (its table matched).
    pub(crate) fn checkpoint_leaves(&self, epoch: u64) -> Option<Vec<ReputationLeaf>> {
        let bytes = self
            .inner
            .kv
            .get(Tree::Checkpoints, &key(b'l', epoch))
            .ok()??;
        store::decode_value(&bytes).ok()
    }

    /// A proposal for `epoch` came through `peer`; catches up in the background if that is
    /// ahead of this node's chain (one catch-up at a time).
    pub(super) fn catch_up_if_behind(&self, epoch: u64, peer: PeerId) {
        let behind = self
            .with_state(|s| epoch > s.chain.len() as u64)
            .unwrap_or(false);
        if !behind || self.service().catching_up.swap(true, Ordering::AcqRel) {
            return;
        }
        let node = self.clone();
        self.spawn(async move {
            node.catch_up(peer).await;
            node.service().catching_up.store(false, Ordering::Release);
        });
    }

    async fn catch_up(&self, peer: PeerId) {
        for _ in 0..MAX_ROUNDS {
            let Some(from) = self.with_state(|s| s.chain.len() as u64) else {
                return;
            };
            let chain = match self
                .inner
                .net
                .sync(peer, SyncRequest::Checkpoints { from })
                .await
            {
                Ok(SyncResponse::Checkpoints(chain)) if !chain.is_empty() => chain,
                Ok(_) => return,
                Err(e) => {
                    debug!(target: "cairn::checkpoints", %peer, error = %e, "checkpoint catch-up failed");
                    return;
                }
            };
            let full = chain.len() == MAX_SYNC_CHECKPOINTS;
            let Some(last) = chain.last().map(|c| c.checkpoint.clone()) else {
                return;
            };
            let leaves = match self
                .inner
                .net
                .sync(peer, SyncRequest::Leaves { epoch: last.epoch })
                .await
            {
                Ok(SyncResponse::Leaves(Some(leaves))) => {
                    let root = MerkleTree::from_reputation(&leaves).map(|t| t.root());
                    if root.ok() == Some(last.reputation_root) {
                        Some(leaves)
                    } else {
                        self.inner
                            .metrics
                            .reject("checkpoint_sync", "leaves_mismatch");
                        None
                    }
                }
                _ => None,
            };
            match self.adopt_checkpoints(from, chain, leaves) {
                Ok(()) => {}
                Err(reason) => {
                    self.inner.metrics.reject("checkpoint_sync", reason);
                    warn!(target: "cairn::checkpoints", %peer, reason, "refused checkpoints a peer sent");
                    return;
                }
            }
            if !full {
                return;
            }
        }
    }

    /// Appends `chain` (starting at epoch `from`) after checking it extends this node's chain;
    /// with the last one's `leaves`, adopts its table.
    fn adopt_checkpoints(
        &self,
        from: u64,
        chain: Vec<SignedCheckpoint>,
        leaves: Option<Vec<ReputationLeaf>>,
    ) -> Result<(), &'static str> {
        let genesis = self.service().genesis.as_ref().ok_or("no_checkpoints")?;
        let adopted = self
            .with_state(|s| {
                if s.chain.len() as u64 != from {
                    // Finalised meanwhile: nothing is wrong, the next proposal tells.
                    return Ok(None);
                }
                let committee = self.committee_of(s);
                let tip = ChainTip {
                    len: s.chain.len(),
                    hash: self.tip(s).ok_or("no_tip")?,
                    committee: &committee,
                };
                proof::verify_extension(&chain, tip, genesis).map_err(|e| e.check())?;
                let last_cutoff = chain
                    .last()
                    .map(|c| self.cutoff(c.checkpoint.proposed_at))
                    .ok_or("empty")?;
                match &leaves {
                    Some(leaves) => {
                        let table = ReputationTable::from_leaves(s.ledger.params(), leaves);
                        s.ledger.adopt(table, last_cutoff);
                    }
                    None => s.ledger.cover(last_cutoff),
                }
                s.chain.extend(chain.iter().cloned());
                s.opened_at = now();
                s.epoch = EpochState::default();
                Ok(Some(s.chain.len()))
            })
            .unwrap_or(Err("internal"))?;
        let Some(len) = adopted else {
            return Ok(());
        };
        let kv = &self.inner.kv;
        let mut stored = chain.iter().try_for_each(|signed| {
            let value = store::encode_value(signed)?;
            kv.put(
                Tree::Checkpoints,
                &key(b'c', signed.checkpoint.epoch),
                &value,
            )
        });
        if let (Ok(()), Some(leaves), Some(last)) = (&stored, &leaves, chain.last()) {
            stored = store::encode_value(leaves)
                .and_then(|v| kv.put(Tree::Checkpoints, &key(b'l', last.checkpoint.epoch), &v));
        }
        if let Err(e) = stored.and_then(|()| kv.flush()) {
            warn!(target: "cairn::checkpoints", error = %e, "cannot store checkpoints");
        }
        info!(target: "cairn::checkpoints", from, to = len, table = leaves.is_some(), "caught up on checkpoints");
        Ok(())
    }
}
