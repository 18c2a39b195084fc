//! What a node reads back at start: the stored chain (checked again, as a catch-up would check
//! it), the anchors that still prove it, and the covered table of its last checkpoint.
//!
//! Without the table a restarted committee member started from an empty ledger, never
//! computed a proposal equal to anyone's and never voted again: a third of a committee
//! restarting (an upgrade) stopped checkpoints for good.

use std::collections::BTreeSet;

use cairn_protocol::checkpoint::Genesis;
use cairn_protocol::credits::CreditParams;
use cairn_protocol::merkle::{MerkleTree, ReputationLeaf};
use cairn_protocol::proof::{self, AnchorProof, AnchorRule, ChainTip, SignedCheckpoint};
use cairn_protocol::{Checkpoint, NodeId, Timestamp};
use tracing::warn;

use super::key;
use crate::error::NodeError;
use crate::store::{self, KvStore, Tree, Write};
use cairn_protocol::ledger::{Ledger, settle_ms};

/// The chain stored in `kv`, checked again: the longest prefix that decodes and extends
/// `genesis` under the committee rules. What follows (a torn write, a corrupt or tampered
/// store) is dropped with a warning and removed from the store, and the node catches up on it
/// again. Without a genesis (a network without checkpoints) nothing can be checked, so a
/// stored chain is dropped.
pub(super) fn stored_chain(
    kv: &dyn KvStore,
    genesis: Option<&Genesis>,
) -> Result<Vec<SignedCheckpoint>, NodeError> {
    let keys = kv.keys(Tree::Checkpoints, b"c")?;
    let mut stored = Vec::new();
    for k in &keys {
        let Some(bytes) = kv.get(Tree::Checkpoints, k)? else {
            break;
        };
        match store::decode_value::<SignedCheckpoint>(&bytes) {
            Ok(signed) => stored.push(signed),
            Err(e) => {
                warn!(target: "cairn::checkpoints", epoch = stored.len(), error = %e, "stored checkpoint does not decode; dropping it and what follows");
                break;
            }
        }
    }
    let Some(genesis) = genesis else {
        if !stored.is_empty() {
            warn!(target: "cairn::checkpoints", stored = stored.len(), "this network has no checkpoint committee; ignoring the stored checkpoints");
        }
        return Ok(Vec::new());
    };
    let chain = verified_prefix(stored, genesis);
    if keys.len() > chain.len() {
        forget_from(kv, chain.len() as u64, &keys)?;
    }
    Ok(chain)
}

/// Removes the stored checkpoints `keys` of `from` and later, with their leaves and anchors,
/// in one batch, so that the store holds what the node uses.
fn forget_from(kv: &dyn KvStore, from: u64, keys: &[Vec<u8>]) -> Result<(), NodeError> {
    let mut writes = Vec::new();
    for k in keys {
        match k.get(1..).and_then(|b| <[u8; 8]>::try_from(b).ok()) {
            Some(epoch) if u64::from_be_bytes(epoch) < from => {}
            Some(epoch) => {
                let epoch = u64::from_be_bytes(epoch);
                writes.extend([b'c', b'l', b'a'].map(|p| Write::Remove { key: key(p, epoch) }));
            }
            None => writes.push(Write::Remove { key: k.clone() }),
        }
    }
    warn!(target: "cairn::checkpoints", from, "removing the stored checkpoints that do not extend the chain");
    kv.apply(Tree::Checkpoints, writes)?;
    kv.flush()?;
    Ok(())
}

/// The longest prefix of `stored` that extends the genesis under the committee rules; what
/// follows a checkpoint that fails is dropped (a corrupt or tampered store), and the node
/// catches up on it again.
pub(super) fn verified_prefix(
    mut stored: Vec<SignedCheckpoint>,
    genesis: &Genesis,
) -> Vec<SignedCheckpoint> {
    let Ok(mut hash) = genesis.hash() else {
        return Vec::new();
    };
    let mut committee: Vec<NodeId> = genesis.committee.clone();
    let mut valid = stored.len();
    for (len, signed) in stored.iter().enumerate() {
        let tip = ChainTip {
            len,
            hash,
            committee: &committee,
        };
        match proof::verify_extension(std::slice::from_ref(signed), tip, genesis) {
            Ok(next) => {
                hash = next;
                committee = signed.checkpoint.next_committee.clone();
            }
            Err(e) => {
                warn!(target: "cairn::checkpoints", epoch = len, error = %e, "stored checkpoint does not verify; dropping it and what follows");
                valid = len;
                break;
            }
        }
    }
    stored.truncate(valid);
    stored
}

/// Epochs of `chain` whose stored anchor proof still commits to that checkpoint on the
/// spec's chain with its confirmations.
pub(super) fn verified_anchors(
    kv: &dyn KvStore,
    chain: &[SignedCheckpoint],
    rule: Option<&AnchorRule>,
) -> Result<BTreeSet<u64>, NodeError> {
    let mut anchored = BTreeSet::new();
    let Some(rule) = rule else {
        return Ok(anchored);
    };
    for (epoch, signed) in chain.iter().enumerate() {
        let epoch = epoch as u64;
        let Some(bytes) = kv.get(Tree::Checkpoints, &key(b'a', epoch))? else {
            continue;
        };
        let Ok(anchor) = store::decode_value::<AnchorProof>(&bytes) else {
            continue;
        };
        let Ok(hash) = signed.checkpoint.hash() else {
            continue;
        };
        match proof::verify_anchor(&anchor, rule, epoch, hash) {
            Ok(_) => {
                anchored.insert(epoch);
            }
            Err(e) => {
                warn!(target: "cairn::checkpoints", epoch, error = %e, "stored anchor does not verify; ignoring it")
            }
        }
    }
    Ok(anchored)
}

/// The cutoff of `last` (the verdicts it covers were issued by then) and its stored leaves,
/// when this node kept them and they hash to its reputation root.
pub(super) fn covered_leaves(
    kv: &dyn KvStore,
    last: &Checkpoint,
    epoch_ms: u64,
) -> Result<(Timestamp, Option<Vec<ReputationLeaf>>), NodeError> {
    let cutoff = Timestamp(last.proposed_at.0.saturating_sub(settle_ms(epoch_ms)));
    let leaves = match kv.get(Tree::Checkpoints, &key(b'l', last.epoch))? {
        Some(bytes) => store::decode_value::<Vec<ReputationLeaf>>(&bytes).ok(),
        None => None,
    };
    let root = leaves
        .as_deref()
        .and_then(|l| MerkleTree::from_reputation(l).ok())
        .map(|t| t.root());
    let verified = leaves.filter(|_| root == Some(last.reputation_root));
    Ok((cutoff, verified))
}

/// The ledger as the last checkpoint of `chain` left it: its stored leaves (when this node
/// kept them and they hash to its root) as the covered table, and its cutoff. Without them
/// the node follows the chain but cannot sign until a catch-up brings a table.
pub(super) fn ledger(
    kv: &dyn KvStore,
    chain: &[SignedCheckpoint],
    epoch_ms: u64,
    roots: Vec<cairn_protocol::NodeId>,
    credits: Option<CreditParams>,
) -> Result<Ledger, NodeError> {
    let mut ledger = Ledger::with_roots(roots)
        .with_credits(credits.unwrap_or_default())
        .map_err(|e| crate::config::ConfigError::Invalid {
            field: "credits",
            reason: e.to_string(),
        })?;
    let Some(last) = chain.last().map(|s| &s.checkpoint) else {
        return Ok(ledger);
    };
    match covered_leaves(kv, last, epoch_ms)? {
        (cutoff, Some(leaves)) => {
            // The balances come back with the scores; leaves that do not hold the supply
            // keep the scores and cover this node's own credit events instead.
            if let Err(e) = ledger.adopt_leaves(&leaves, cutoff) {
                warn!(target: "cairn::checkpoints", epoch = last.epoch, error = %e, "the last checkpoint's balances do not hold the supply");
            }
        }
        (cutoff, None) => {
            warn!(target: "cairn::checkpoints", epoch = last.epoch, "no table stored for the last checkpoint; following the chain without signing until a catch-up");
            ledger.cover(cutoff);
        }
    }
    Ok(ledger)
}
