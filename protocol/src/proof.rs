//! Reputation proof files and their offline verifier.
//!
//! A proof says "peer P had score S and credit balance B at epoch E of network N": the peer's
//! leaf and its Merkle path, every checkpoint from epoch 0 to the anchored one with its
//! committee's signatures (so the committee of each epoch follows from the network spec), and,
//! when the network anchors, the anchor transaction, its `gettxoutproof` merkle block and the
//! headers on top of it.
//!
//! [`verify`] checks all of it against a [`NetworkRules`] built from the network spec and
//! returns the first failed check as a [`ProofError`] naming it.

use bincode::{Decode, Encode};

use crate::anchor::{AnchorError, AnchorPayload};
use crate::checkpoint::{self, CheckpointError, Genesis, MAX_COMMITTEE};
use crate::codec::{self, CodecError};
use crate::envelope::Envelope;
use crate::merkle::{MerkleProof, ReputationLeaf};
use crate::spv::{self, HEADER_LEN, PowRule, SpvError};
use crate::{CHECKPOINT_VERSION, Checkpoint, CheckpointHash, NodeId};

/// The first bytes of every proof file. Version 2: leaves carry a credit balance, so files of version 1 are refused by name.
pub const PROOF_MAGIC: [u8; 8] = *b"CAIRNPF2";
/// Largest proof file read, in bytes.
pub const MAX_PROOF_BYTES: usize = 4 * 1024 * 1024;
/// Most checkpoints a proof may chain.
pub const MAX_CHAIN: usize = 100_000;

/// One checkpoint with its committee's votes.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
pub struct SignedCheckpoint {
    /// The checkpoint.
    pub checkpoint: Checkpoint,
    /// Signed [`CheckpointVote`](crate::CheckpointVote) envelopes of its committee.
    pub votes: Vec<Envelope>,
}

/// Where a checkpoint hash was committed, with what proves it.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
pub struct AnchorProof {
    /// Chain name, as in the network spec (`simulated` for the test chain).
    pub chain: String,
    /// The anchor transaction, consensus-encoded without witness data.
    pub transaction: Vec<u8>,
    /// `gettxoutproof` of the transaction: the block header and a partial merkle tree.
    pub merkle_block: Vec<u8>,
    /// Headers from the including block up, 80 bytes each.
    pub headers: Vec<[u8; HEADER_LEN]>,
}

/// A proof of one peer's reputation and credit balance at one epoch.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
pub struct ReputationProof {
    /// The peer's leaf.
    pub leaf: ReputationLeaf,
    /// The epoch whose checkpoint holds the leaf.
    pub epoch: u64,
    /// Merkle path from the leaf to that checkpoint's reputation root.
    pub path: MerkleProof,
    /// Checkpoints from epoch 0 up to the anchored one (or the latest, unanchored).
    pub chain: Vec<SignedCheckpoint>,
    /// The anchor of the last checkpoint in `chain`, when there is one.
    pub anchor: Option<AnchorProof>,
}

impl ReputationProof {
    /// The file bytes: [`PROOF_MAGIC`] then the encoded proof.
    pub fn to_bytes(&self) -> Result<Vec<u8>, CodecError> {
        let mut out = PROOF_MAGIC.to_vec();
        out.extend(codec::encode(self)?);
        Ok(out)
    }

    /// Reads file bytes, bounded by [`MAX_PROOF_BYTES`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ProofError> {
        if bytes.len() > MAX_PROOF_BYTES {
            return Err(ProofError::Decode(CodecError::FrameTooLarge {
                len: bytes.len(),
                max: MAX_PROOF_BYTES,
            }));
        }
        let body = bytes
            .strip_prefix(&PROOF_MAGIC)
            .ok_or(ProofError::BadMagic)?;
        codec::decode(body, MAX_PROOF_BYTES).map_err(ProofError::Decode)
    }
}

/// What the verifier takes from the network spec.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct NetworkRules {
    /// The network's genesis: name, first committee, committee size, threshold.
    pub genesis: Genesis,
    /// The anchor chain and its proof-of-work rule; `None` when the network does not anchor.
    pub anchor: Option<AnchorRule>,
}

/// The chain a network anchors to.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct AnchorRule {
    /// Chain name, which the proof must carry.
    pub chain: String,
    /// Proof-of-work rule of its headers.
    pub pow: PowRule,
}

/// What a verified proof establishes.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Verification {
    /// The leaf: peer, score, evidence count and credit balance.
    pub leaf: ReputationLeaf,
    /// Epoch of the leaf's checkpoint.
    pub epoch: u64,
    /// Network name.
    pub network: String,
    /// The last checkpoint of the chain.
    pub tip: CheckpointHash,
    /// Its epoch.
    pub tip_epoch: u64,
    /// The anchor, or `None` when the network does not anchor (reported "not anchored").
    pub anchor: Option<AnchorSummary>,
}

/// Where the chain is anchored.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct AnchorSummary {
    /// Chain name.
    pub chain: String,
    /// Transaction id, as Bitcoin tools show it.
    pub txid: String,
    /// Including block, as Bitcoin tools show it.
    pub block_hash: String,
    /// Confirmations.
    pub depth: u32,
}

/// Why a proof failed; each variant names one check.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError {
    /// The file does not start with the proof magic bytes.
    #[error(
        "not a Cairn proof file of this version (missing CAIRNPF2 header; remake older proofs with `cairn checkpoint prove`)"
    )]
    BadMagic,
    /// The file does not decode.
    #[error("proof file does not decode: {0}")]
    Decode(CodecError),
    /// The network spec could not be hashed.
    #[error("network spec could not be encoded: {0}")]
    Spec(CodecError),
    /// The chain is empty or longer than [`MAX_CHAIN`].
    #[error("checkpoint chain has {len} entries; it must have 1 to {MAX_CHAIN}")]
    ChainLength {
        /// Its length.
        len: usize,
    },
    /// A checkpoint belongs to another network.
    #[error(
        "checkpoint of epoch {epoch} is for network {found:?}, the spec says {expected:?}: wrong network spec?"
    )]
    WrongNetwork {
        /// Epoch.
        epoch: u64,
        /// Network in the spec.
        expected: String,
        /// Network in the checkpoint.
        found: String,
    },
    /// A checkpoint has a format version this code does not read.
    #[error(
        "checkpoint of epoch {epoch} has version {found}, this code reads {CHECKPOINT_VERSION}"
    )]
    CheckpointVersion {
        /// Epoch.
        epoch: u64,
        /// Its version.
        found: u16,
    },
    /// Checkpoints are out of order, or one does not name its predecessor (for epoch 0: the
    /// spec's genesis).
    #[error(
        "checkpoint chain broken at position {index}: wrong epoch or previous hash (wrong network spec?)"
    )]
    BrokenChain {
        /// Position in the chain.
        index: usize,
    },
    /// A committee list is longer than [`MAX_COMMITTEE`].
    #[error("committee of epoch {epoch} exceeds {MAX_COMMITTEE} members")]
    CommitteeTooLarge {
        /// Epoch.
        epoch: u64,
    },
    /// The committee signatures of a checkpoint failed.
    #[error("signatures of epoch {epoch}: {source}")]
    Signatures {
        /// Epoch.
        epoch: u64,
        /// What failed.
        source: CheckpointError,
    },
    /// The leaf's epoch is not in the chain.
    #[error("the chain has no checkpoint for epoch {epoch}")]
    EpochNotInChain {
        /// The leaf's epoch.
        epoch: u64,
    },
    /// The leaf is not under the checkpoint's reputation root.
    #[error("Merkle path of peer {peer} does not lead to the reputation root of epoch {epoch}")]
    MerklePath {
        /// The leaf's peer.
        peer: NodeId,
        /// Epoch.
        epoch: u64,
    },
    /// The network anchors but the proof has no anchor.
    #[error("the network spec requires an anchor on {chain}, the proof has none")]
    NotAnchored {
        /// Required chain.
        chain: String,
    },
    /// The anchor is on another chain than the spec's.
    #[error("anchor is on chain {found:?}, the spec says {expected:?}")]
    WrongChain {
        /// Spec's chain.
        expected: String,
        /// Proof's chain.
        found: String,
    },
    /// Transaction inclusion or header chain failed.
    #[error("anchor inclusion: {0}")]
    Spv(#[from] SpvError),
    /// The OP_RETURN payload is missing or malformed.
    #[error("OP_RETURN payload: {0}")]
    Payload(#[from] AnchorError),
    /// The OP_RETURN payload commits to another checkpoint than the chain's last.
    #[error(
        "OP_RETURN payload commits to epoch {epoch} hash {found}, not the chain's last checkpoint"
    )]
    PayloadMismatch {
        /// Payload epoch.
        epoch: u64,
        /// Payload hash.
        found: CheckpointHash,
    },
}

impl ProofError {
    /// A short, stable name of the failed check.
    pub fn check(&self) -> &'static str {
        match self {
            ProofError::BadMagic | ProofError::Decode(_) | ProofError::ChainLength { .. } => {
                "format"
            }
            ProofError::Spec(_) => "spec",
            ProofError::WrongNetwork { .. } | ProofError::BrokenChain { .. } => "network_spec",
            ProofError::CheckpointVersion { .. } | ProofError::CommitteeTooLarge { .. } => {
                "checkpoint"
            }
            ProofError::Signatures { .. } => "signatures",
            ProofError::EpochNotInChain { .. } | ProofError::MerklePath { .. } => "merkle_path",
            ProofError::NotAnchored { .. } | ProofError::WrongChain { .. } => "anchor_chain",
            ProofError::Payload(_) | ProofError::PayloadMismatch { .. } => "op_return_payload",
            ProofError::Spv(e) => match e {
                SpvError::InsufficientWork { .. } | SpvError::BadProofOfWork { .. } => {
                    "proof_of_work"
                }
                SpvError::TooFewConfirmations { .. } => "confirmations",
                SpvError::NoHeaders
                | SpvError::MalformedHeader { .. }
                | SpvError::HeaderMismatch
                | SpvError::BrokenLinkage { .. } => "header_chain",
                _ => "tx_inclusion",
            },
        }
    }
}

/// Verifies a proof against a network's rules, offline.
pub fn verify(proof: &ReputationProof, rules: &NetworkRules) -> Result<Verification, ProofError> {
    let tip = verify_chain(&proof.chain, &rules.genesis)?;
    let at = proof
        .chain
        .get(proof.epoch as usize)
        .map(|s| &s.checkpoint)
        .ok_or(ProofError::EpochNotInChain { epoch: proof.epoch })?;
    if !proof.path.verifies(proof.leaf.hash(), &at.reputation_root)
        || proof.path.leaf_count != at.leaf_count
    {
        return Err(ProofError::MerklePath {
            peer: proof.leaf.peer,
            epoch: proof.epoch,
        });
    }
    let tip_epoch = proof.chain.len() as u64 - 1;
    let anchor = match (&rules.anchor, &proof.anchor) {
        (None, _) => None,
        (Some(rule), None) => {
            return Err(ProofError::NotAnchored {
                chain: rule.chain.clone(),
            });
        }
        (Some(rule), Some(anchor)) => Some(verify_anchor(anchor, rule, tip_epoch, tip)?),
    };
    Ok(Verification {
        leaf: proof.leaf,
        epoch: proof.epoch,
        network: rules.genesis.network.clone(),
        tip,
        tip_epoch,
        anchor,
    })
}

/// Checks a chain of signed checkpoints from the genesis and returns its last hash.
pub fn verify_chain(
    chain: &[SignedCheckpoint],
    genesis: &Genesis,
) -> Result<CheckpointHash, ProofError> {
    if chain.is_empty() || chain.len() > MAX_CHAIN {
        return Err(ProofError::ChainLength { len: chain.len() });
    }
    let start = ChainTip {
        len: 0,
        hash: genesis.hash().map_err(ProofError::Spec)?,
        committee: &genesis.committee,
    };
    verify_extension(chain, start, genesis)
}

/// The end of a verified chain, which more checkpoints may extend.
#[derive(Clone, Copy, Debug)]
pub struct ChainTip<'a> {
    /// Checkpoints in the chain (the next one's epoch).
    pub len: usize,
    /// The last checkpoint's hash (the genesis hash for an empty chain).
    pub hash: CheckpointHash,
    /// The committee that signs the next checkpoint.
    pub committee: &'a [NodeId],
}

/// Checks `next`, checkpoints that extend the verified chain ending at `tip` (a node catching
/// up), with the same rules as [`verify_chain`]; returns the new last hash.
pub fn verify_extension(
    next: &[SignedCheckpoint],
    tip: ChainTip<'_>,
    genesis: &Genesis,
) -> Result<CheckpointHash, ProofError> {
    if tip.len.saturating_add(next.len()) > MAX_CHAIN {
        return Err(ProofError::ChainLength {
            len: tip.len.saturating_add(next.len()),
        });
    }
    let network = genesis.network_id().map_err(ProofError::Spec)?;
    let mut previous = tip.hash;
    let mut committee = tip.committee;
    for (offset, signed) in next.iter().enumerate() {
        let c = &signed.checkpoint;
        check_header(c, tip.len + offset, previous, genesis)?;
        let hash = c.hash().map_err(ProofError::Decode)?;
        let votes = &signed.votes;
        checkpoint::check_votes(&network, c.epoch, hash, committee, genesis.threshold, votes)
            .map_err(|source| ProofError::Signatures {
                epoch: c.epoch,
                source,
            })?;
        previous = hash;
        committee = &c.next_committee;
    }
    Ok(previous)
}

fn check_header(
    c: &Checkpoint,
    index: usize,
    previous: CheckpointHash,
    genesis: &Genesis,
) -> Result<(), ProofError> {
    if c.network != genesis.network {
        return Err(ProofError::WrongNetwork {
            epoch: c.epoch,
            expected: genesis.network.clone(),
            found: c.network.clone(),
        });
    }
    if c.version != CHECKPOINT_VERSION {
        return Err(ProofError::CheckpointVersion {
            epoch: c.epoch,
            found: c.version,
        });
    }
    if c.epoch != index as u64 || c.previous != previous {
        return Err(ProofError::BrokenChain { index });
    }
    if c.next_committee.len() > MAX_COMMITTEE {
        return Err(ProofError::CommitteeTooLarge { epoch: c.epoch });
    }
    Ok(())
}

/// Checks that `anchor` commits the checkpoint `tip` of epoch `tip_epoch` on the rule's chain:
/// its chain name, the transaction's inclusion under enough proof-of-work headers, and its
/// single Cairn OP_RETURN payload. What [`verify`] checks of a proof's anchor, and what a
/// node checks of an anchor another member reports.
pub fn verify_anchor(
    anchor: &AnchorProof,
    rule: &AnchorRule,
    tip_epoch: u64,
    tip: CheckpointHash,
) -> Result<AnchorSummary, ProofError> {
    if anchor.chain != rule.chain {
        return Err(ProofError::WrongChain {
            expected: rule.chain.clone(),
            found: anchor.chain.clone(),
        });
    }
    let spv = spv::verify(
        &anchor.transaction,
        &anchor.merkle_block,
        &anchor.headers,
        &rule.pow,
    )?;
    let (_, payload) = AnchorPayload::find_in(&spv.tx)?;
    if payload.epoch != tip_epoch || payload.checkpoint != tip {
        return Err(ProofError::PayloadMismatch {
            epoch: payload.epoch,
            found: payload.checkpoint,
        });
    }
    Ok(AnchorSummary {
        chain: anchor.chain.clone(),
        txid: spv.txid.to_string(),
        block_hash: spv.block_hash.to_string(),
        depth: spv.depth,
    })
}
