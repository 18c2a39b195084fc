//! A blake3 Merkle tree with inclusion proofs, for checkpoint roots.
//!
//! Leaves and inner nodes hash in different domains, so a leaf can never pass for a node. A
//! level with an odd number of nodes promotes its last node unchanged (no duplication, which
//! would let two different leaf lists share a root). The root commits to the number of leaves
//! as well as the top hash, and a proof names the leaf's position and the tree's size, so it
//! fails for a changed leaf, position, size or root.

use bincode::{Decode, Encode};

use crate::{NodeId, VerdictId};

const LEAF_CONTEXT: &str = "cairn 2026 merkle reputation leaf v2";
const VERDICT_LEAF_CONTEXT: &str = "cairn 2026 merkle verdict leaf v1";
const NODE_CONTEXT: &str = "cairn 2026 merkle node v1";
const ROOT_CONTEXT: &str = "cairn 2026 merkle root v1";

/// A 32-byte hash in the tree.
pub type Hash = [u8; 32];

/// One node's line in a checkpoint: its score, how much evidence it rests on, and its credit
/// balance ([`crate::credits`]), so one Merkle proof proves both offline.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Encode, Decode)]
pub struct ReputationLeaf {
    /// The node.
    pub peer: NodeId,
    /// Its reputation score.
    pub score: i64,
    /// Verdicts that mentioned it.
    pub evidence_count: u64,
    /// Its credit balance, in the network's smallest unit (escrow included: escrow is a
    /// requester's own reservation, not a transfer).
    pub balance: u64,
}

impl ReputationLeaf {
    /// The leaf's hash: peer, score, evidence count and balance in a fixed layout, in the leaf
    /// domain (v2: v1 leaves had no balance).
    pub fn hash(&self) -> Hash {
        let mut hasher = blake3::Hasher::new_derive_key(LEAF_CONTEXT);
        hasher.update(self.peer.as_bytes());
        hasher.update(&self.score.to_le_bytes());
        hasher.update(&self.evidence_count.to_le_bytes());
        hasher.update(&self.balance.to_le_bytes());
        *hasher.finalize().as_bytes()
    }
}

/// The leaf hash of a verdict id, for a checkpoint's verdict root.
pub fn verdict_leaf_hash(id: &VerdictId) -> Hash {
    blake3::derive_key(VERDICT_LEAF_CONTEXT, id.as_bytes())
}

fn root_hash(leaf_count: u64, top: &Hash) -> Hash {
    let mut hasher = blake3::Hasher::new_derive_key(ROOT_CONTEXT);
    hasher.update(&leaf_count.to_le_bytes());
    hasher.update(top);
    *hasher.finalize().as_bytes()
}

fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut hasher = blake3::Hasher::new_derive_key(NODE_CONTEXT);
    hasher.update(left);
    hasher.update(right);
    *hasher.finalize().as_bytes()
}

/// Why a tree could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MerkleError {
    /// Reputation leaves must be sorted by peer with no peer twice, so that every node builds
    /// the same tree from the same table.
    #[error("leaves are not strictly sorted by peer at position {index}")]
    Unsorted {
        /// Position of the first leaf out of order.
        index: usize,
    },
}

/// A Merkle tree over leaf hashes, every level kept so proofs are cheap.
#[derive(Clone, Debug)]
pub struct MerkleTree {
    /// `levels[0]` holds the leaf hashes, the last level the root.
    levels: Vec<Vec<Hash>>,
}

impl MerkleTree {
    /// Builds the tree over leaf hashes in the given order.
    pub fn from_hashes(leaves: Vec<Hash>) -> Self {
        let mut levels = vec![leaves];
        while let Some(level) = levels.last().filter(|l| l.len() > 1) {
            let pairs = level.chunks_exact(2);
            let promoted = pairs.remainder().first().copied();
            let next = pairs
                .map(|pair| node_hash(&pair[0], &pair[1]))
                .chain(promoted)
                .collect();
            levels.push(next);
        }
        Self { levels }
    }

    /// Builds the tree over reputation leaves, which must be strictly sorted by peer.
    pub fn from_reputation(leaves: &[ReputationLeaf]) -> Result<Self, MerkleError> {
        if let Some(index) = leaves.windows(2).position(|w| w[0].peer >= w[1].peer) {
            return Err(MerkleError::Unsorted { index: index + 1 });
        }
        Ok(Self::from_hashes(
            leaves.iter().map(ReputationLeaf::hash).collect(),
        ))
    }

    /// Builds the tree over verdict ids, sorting and de-duplicating them first.
    pub fn from_verdicts(ids: &[VerdictId]) -> Self {
        let mut ids = ids.to_vec();
        ids.sort();
        ids.dedup();
        Self::from_hashes(ids.iter().map(verdict_leaf_hash).collect())
    }

    /// Number of leaves.
    pub fn len(&self) -> usize {
        self.levels[0].len()
    }

    /// Whether the tree has no leaves.
    pub fn is_empty(&self) -> bool {
        self.levels[0].is_empty()
    }

    /// The root: the top hash bound to the number of leaves (all zero top for an empty tree).
    pub fn root(&self) -> Hash {
        let top = self
            .levels
            .last()
            .and_then(|l| l.first())
            .copied()
            .unwrap_or([0; 32]);
        root_hash(self.len() as u64, &top)
    }

    /// The inclusion proof of the leaf at `index`, or `None` when out of range.
    pub fn proof(&self, index: usize) -> Option<MerkleProof> {
        if index >= self.len() {
            return None;
        }
        let mut siblings = Vec::new();
        let mut i = index;
        for level in &self.levels[..self.levels.len() - 1] {
            let sibling = i ^ 1;
            if let Some(hash) = level.get(sibling) {
                siblings.push(*hash);
            }
            i /= 2;
        }
        Some(MerkleProof {
            index: index as u64,
            leaf_count: self.len() as u64,
            siblings,
        })
    }
}

/// Proof that a leaf sits at `index` in a tree of `leaf_count` leaves.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
pub struct MerkleProof {
    /// Position of the leaf.
    pub index: u64,
    /// Number of leaves in the tree.
    pub leaf_count: u64,
    /// Sibling hashes from the leaf's level up; promoted levels have none.
    pub siblings: Vec<Hash>,
}

impl MerkleProof {
    /// The root this proof leads to from `leaf`, or `None` when the proof is malformed
    /// (position out of range, too few or too many siblings).
    pub fn root_from(&self, leaf: Hash) -> Option<Hash> {
        if self.index >= self.leaf_count {
            return None;
        }
        let (mut hash, mut index, mut width) = (leaf, self.index, self.leaf_count);
        let mut siblings = self.siblings.iter();
        while width > 1 {
            if index % 2 == 1 {
                hash = node_hash(siblings.next()?, &hash);
            } else if index + 1 < width {
                hash = node_hash(&hash, siblings.next()?);
            }
            index /= 2;
            width = width.div_ceil(2);
        }
        siblings
            .next()
            .is_none()
            .then(|| root_hash(self.leaf_count, &hash))
    }

    /// Whether `leaf` is included under `root` at this proof's position.
    pub fn verifies(&self, leaf: Hash, root: &Hash) -> bool {
        self.root_from(leaf).is_some_and(|r| r == *root)
    }
}
