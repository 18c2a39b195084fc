//! Anchoring a final checkpoint, receipts from other anchorers, and proofs.

use cairn_protocol::anchor::AnchorPayload;
use cairn_protocol::merkle::{MerkleTree, ReputationLeaf};
use cairn_protocol::proof::{AnchorProof, AnchorRule, ReputationProof};
use cairn_protocol::{AnchorReceipt, CheckpointHash, NodeId, Verified};
use tracing::warn;

use super::{
    ANCHOR_POLL, ANCHOR_POLL_SIMULATED, ANCHOR_POLLS, CheckpointGossip, Checkpoints, ProveError,
    key,
};
use crate::error::NodeError;
use crate::store::{self, Tree};

impl Checkpoints {
    pub(super) async fn anchor(self, epoch: u64, hash: CheckpointHash) {
        let backend = self.service().backend.clone();
        let confirmations = self.ctx.options().spec.anchor.confirmations.max(1);
        let payload = AnchorPayload {
            epoch,
            checkpoint: hash,
        };
        // The simulated chain mines on demand; real chains take minutes per block.
        let poll = if backend.kind() == "simulated" {
            ANCHOR_POLL_SIMULATED
        } else {
            ANCHOR_POLL
        };
        let sent = tokio::task::spawn_blocking(move || {
            let txid = backend.broadcast(&payload)?;
            if let Some(txid) = txid {
                backend.after_broadcast(confirmations)?;
                for _ in 0..ANCHOR_POLLS {
                    if let Some(proof) = backend.proof(&txid, confirmations)? {
                        return Ok(Some((txid, proof)));
                    }
                    std::thread::sleep(poll);
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
            .and_then(|v| self.ctx.kv.put(Tree::Checkpoints, &key(b'a', epoch), &v))
            .and_then(|()| self.ctx.kv.flush());
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
            anchored_by: self.ctx.node_id(),
        };
        if let Ok(signed) = self.ctx.sign(receipt) {
            self.publish_checkpoint_envelope(signed.envelope()).await;
        }
    }

    /// Another member anchored a checkpoint: fetch the proof from this node's own view of the
    /// chain (nothing is taken on the anchorer's word). Before any fetch, the receipt must be
    /// for a checkpoint this node holds, on the spec's chain, and signed by a member of the
    /// committee that signed that checkpoint; the proof fetched must then commit to that
    /// checkpoint (its OP_RETURN payload) with the spec's confirmations, or it is not kept and
    /// a later receipt is still taken. One fetch per epoch at a time.
    pub(super) fn accept_receipt(&self, receipt: Verified<AnchorReceipt>) -> CheckpointGossip {
        let r = receipt.message().clone();
        let (backend, rule) = (
            self.service().backend.clone(),
            self.service().anchor_rule.clone(),
        );
        let Some(rule) = rule.filter(|_| backend.kind() != "none") else {
            return CheckpointGossip::Ignore("not_anchoring");
        };
        if r.chain != rule.chain || r.chain != backend.chain() {
            return CheckpointGossip::Reject("wrong_chain");
        }
        let (outcome, fetch) = self
            .with_state(|s| {
                let held = usize::try_from(r.epoch)
                    .ok()
                    .and_then(|e| s.round.chain().get(e));
                let Some(c) = held else {
                    return (CheckpointGossip::Ignore("unknown_checkpoint"), false);
                };
                if c.checkpoint.hash().ok() != Some(r.checkpoint) {
                    return (CheckpointGossip::Ignore("other_checkpoint"), false);
                }
                let members = s.round.committee_at(r.epoch).unwrap_or_default();
                if !members.contains(&receipt.signer()) {
                    return (CheckpointGossip::Reject("not_member"), false);
                }
                let fetch = !s.anchored.contains(&r.epoch) && s.fetching_receipts.insert(r.epoch);
                (CheckpointGossip::Accept, fetch)
            })
            .unwrap_or((CheckpointGossip::Ignore("internal"), false));
        if fetch {
            self.spawn_receipt_check(r, rule);
        }
        outcome
    }

    /// Fetches the proof of a checked receipt and keeps it if it commits to the checkpoint.
    fn spawn_receipt_check(&self, r: AnchorReceipt, rule: AnchorRule) {
        use bitcoin::hashes::Hash;
        let backend = self.service().backend.clone();
        let confirmations = self.ctx.options().spec.anchor.confirmations.max(1);
        let txid = bitcoin::Txid::from_byte_array(r.txid);
        let node = self.clone();
        self.ctx.spawn(async move {
            let proof =
                tokio::task::spawn_blocking(move || backend.proof(&txid, confirmations)).await;
            match proof {
                Ok(Ok(Some(proof))) => {
                    match cairn_protocol::proof::verify_anchor(&proof, &rule, r.epoch, r.checkpoint)
                    {
                        Ok(_) => node.store_anchor(r.epoch, &proof),
                        Err(e) => {
                            warn!(target: "cairn::checkpoints", epoch = r.epoch, error = %e, "an anchor receipt's transaction does not anchor its checkpoint");
                            node.ctx.metrics.reject("anchor_receipt", e.check());
                        }
                    }
                }
                Ok(Ok(None)) => node.ctx.metrics.reject("anchor_receipt", "unconfirmed"),
                _ => node.ctx.metrics.reject("anchor_receipt", "fetch_failed"),
            }
            node.with_state(|s| s.fetching_receipts.remove(&r.epoch));
        });
    }

    /// A proof of `peer`'s record at `epoch` (default: the latest this node holds a table
    /// for), chained to the network spec and, when the network anchors, to the first anchor
    /// at or after that epoch.
    pub fn prove(&self, peer: &NodeId, epoch: Option<u64>) -> Result<ReputationProof, ProveError> {
        let chain = self.chain();
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
        let kv = &self.ctx.kv;
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
                (epoch..chain.len() as u64).find_map(|e| self.anchor_proof(e).map(|a| (e, a)));
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
