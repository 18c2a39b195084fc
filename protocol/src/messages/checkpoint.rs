//! Checkpoints of the reputation table, committee votes on them, and anchor receipts.

use bincode::{Decode, Encode};

use crate::codec::{self, CodecError};
use crate::envelope::{Message, MessageKind};
use crate::{CheckpointHash, NodeId, Timestamp};

/// The checkpoint format this code writes and accepts.
pub const CHECKPOINT_VERSION: u16 = 1;

/// One epoch's reputation table, committed to by Merkle roots and chained to the previous
/// checkpoint.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
pub struct Checkpoint {
    /// Checkpoint format version; must equal [`CHECKPOINT_VERSION`].
    pub version: u16,
    /// Name of the network (from its spec file).
    pub network: String,
    /// Epoch number; the first checkpoint is epoch 0.
    pub epoch: u64,
    /// Hash of the previous epoch's checkpoint; for epoch 0 the network's genesis hash
    /// ([`crate::checkpoint::Genesis::hash`]), so every chain leads back to one network spec.
    pub previous: CheckpointHash,
    /// Merkle root over the sorted reputation leaves.
    pub reputation_root: [u8; 32],
    /// Number of reputation leaves.
    pub leaf_count: u64,
    /// Merkle root over the sorted ids of the verdicts this checkpoint covers.
    pub verdict_root: [u8; 32],
    /// Committee that signs the next checkpoint.
    pub next_committee: Vec<NodeId>,
    /// Node that proposed this checkpoint; must be the envelope's signer.
    pub proposer: NodeId,
    /// When it was proposed.
    pub proposed_at: Timestamp,
}

impl Checkpoint {
    /// The checkpoint's hash, which votes sign and anchors commit to.
    pub fn hash(&self) -> Result<CheckpointHash, CodecError> {
        Ok(CheckpointHash::of(&codec::encode(self)?))
    }
}

impl Message for Checkpoint {
    const KIND: MessageKind = MessageKind::Checkpoint;
    fn author(&self) -> &NodeId {
        &self.proposer
    }
}

/// A committee member's signature on a checkpoint it recomputed and found equal.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
pub struct CheckpointVote {
    /// The checkpoint voted for.
    pub checkpoint: CheckpointHash,
    /// Its epoch.
    pub epoch: u64,
    /// The voting member; must be the envelope's signer.
    pub voter: NodeId,
}

impl Message for CheckpointVote {
    const KIND: MessageKind = MessageKind::CheckpointVote;
    fn author(&self) -> &NodeId {
        &self.voter
    }
}

/// Where a checkpoint hash was anchored on a Bitcoin-family chain.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
pub struct AnchorReceipt {
    /// The anchored checkpoint.
    pub checkpoint: CheckpointHash,
    /// Its epoch.
    pub epoch: u64,
    /// Chain name, such as `bitcoin-signet`, `liquid` or `simulated` (never presented as
    /// a real chain).
    pub chain: String,
    /// Transaction id, in the byte order of the `bitcoin` crate.
    pub txid: [u8; 32],
    /// Hash of the block that includes the transaction.
    pub block_hash: [u8; 32],
    /// Height of that block.
    pub height: u64,
    /// The committee member that anchored it; must be the envelope's signer.
    pub anchored_by: NodeId,
}

impl Message for AnchorReceipt {
    const KIND: MessageKind = MessageKind::AnchorReceipt;
    fn author(&self) -> &NodeId {
        &self.anchored_by
    }
}
