//! Simplified payment verification of an anchor transaction: its inclusion in a block through
//! a `gettxoutproof` merkle block, and a chain of headers on top of that block with valid proof
//! of work, each at least as hard as the network spec demands.
//!
//! Everything arrives as consensus-encoded bytes from an untrusted file; each check that fails
//! has its own [`SpvError`].

use bitcoin::block::Header;
use bitcoin::consensus::{deserialize, serialize};
use bitcoin::merkle_tree::PartialMerkleTree;
use bitcoin::{BlockHash, CompactTarget, MerkleBlock, Target, Transaction, Txid};

/// Length of a consensus-encoded block header.
pub const HEADER_LEN: usize = 80;
/// Largest anchor transaction accepted, in bytes.
pub const MAX_TX_BYTES: usize = 100_000;
/// Largest merkle block accepted, in bytes (a proof for one transaction in a block of up to
/// about 2^22 transactions is far smaller).
pub const MAX_MERKLE_BLOCK_BYTES: usize = 16 * 1024;
/// Most headers a proof may carry.
pub const MAX_HEADERS: usize = 10_000;

/// The proof-of-work rule of a chain, from the network spec.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct PowRule {
    /// The easiest target any header may have, in compact form (`0x1d00ffff` on Bitcoin
    /// mainnet, `0x207fffff` on regtest). A header whose target is easier fails, so a chain of
    /// cheap headers cannot pass for a hard one.
    pub max_target_bits: u32,
    /// Headers needed from the anchor's block up (the block itself counts as one).
    pub min_confirmations: u32,
}

/// What a successful check established.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SpvOutcome {
    /// The transaction.
    pub tx: Transaction,
    /// Its id.
    pub txid: Txid,
    /// The block that includes it.
    pub block_hash: BlockHash,
    /// Confirmations: headers from that block to the tip of the proof.
    pub depth: u32,
}

/// Why the inclusion or header check failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SpvError {
    /// A part is larger than its limit.
    #[error("{part} is {len} bytes, above the limit of {max}")]
    TooLarge {
        /// Which part.
        part: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The transaction bytes are not one complete transaction.
    #[error("anchor transaction is malformed: {reason}")]
    MalformedTransaction {
        /// The decoder's message.
        reason: String,
    },
    /// The transaction carries witness data, which its txid does not commit to.
    #[error("anchor transaction must be stored without witness data (the txid does not cover it)")]
    TransactionHasWitness,
    /// The merkle block bytes are not one complete, canonically encoded merkle block.
    #[error("merkle block is malformed: {reason}")]
    MalformedMerkleBlock {
        /// What is wrong.
        reason: String,
    },
    /// The partial merkle tree does not lead to the header's merkle root.
    #[error("merkle block does not authenticate: {reason}")]
    MerkleProof {
        /// The check that failed.
        reason: String,
    },
    /// The merkle block proves other transactions than exactly the anchor.
    #[error("the merkle block does not prove the anchor transaction {txid}")]
    NotInBlock {
        /// The anchor's txid.
        txid: Txid,
    },
    /// No headers were given.
    #[error("no block headers: the proof needs the anchor block's header and the ones after it")]
    NoHeaders,
    /// A header is not 80 bytes of a valid header.
    #[error("header {index} is malformed")]
    MalformedHeader {
        /// Position in the list.
        index: usize,
    },
    /// The first header is not the merkle block's header.
    #[error("the first header is not the header of the block that includes the anchor")]
    HeaderMismatch,
    /// A header does not point at the one before it.
    #[error("header {index} does not link to header {prev}", prev = index - 1)]
    BrokenLinkage {
        /// Position of the header that does not link.
        index: usize,
    },
    /// A header's hash is above its own target.
    #[error("header {index} fails its proof of work")]
    BadProofOfWork {
        /// Position in the list.
        index: usize,
    },
    /// A header's target is easier than the network spec allows.
    #[error(
        "header {index} has target bits {bits:#010x}, easier than the spec's limit {limit:#010x}: not enough proof of work"
    )]
    InsufficientWork {
        /// Position in the list.
        index: usize,
        /// Its compact target.
        bits: u32,
        /// The spec's limit.
        limit: u32,
    },
    /// Fewer headers than the confirmations the spec demands.
    #[error("{depth} confirmations, the network spec requires {required}")]
    TooFewConfirmations {
        /// Confirmations in the proof.
        depth: u32,
        /// Required.
        required: u32,
    },
}

/// Checks that `tx` is in the block of `merkle_block`, and that `headers` (starting with that
/// block's header) link up with valid, hard enough proof of work.
pub fn verify(
    tx: &[u8],
    merkle_block: &[u8],
    headers: &[[u8; HEADER_LEN]],
    rule: &PowRule,
) -> Result<SpvOutcome, SpvError> {
    let tx = decode_tx(tx)?;
    let txid = tx.compute_txid();
    let block = decode_merkle_block(merkle_block)?;
    check_inclusion(&block, txid)?;
    let depth = check_headers(&block.header, headers, rule)?;
    Ok(SpvOutcome {
        tx,
        txid,
        block_hash: block.header.block_hash(),
        depth,
    })
}

fn decode_tx(bytes: &[u8]) -> Result<Transaction, SpvError> {
    limit("anchor transaction", bytes.len(), MAX_TX_BYTES)?;
    let tx: Transaction = deserialize(bytes).map_err(|e| SpvError::MalformedTransaction {
        reason: e.to_string(),
    })?;
    if tx.input.iter().any(|i| !i.witness.is_empty()) {
        return Err(SpvError::TransactionHasWitness);
    }
    Ok(tx)
}

fn decode_merkle_block(bytes: &[u8]) -> Result<MerkleBlock, SpvError> {
    limit("merkle block", bytes.len(), MAX_MERKLE_BLOCK_BYTES)?;
    let block: MerkleBlock = deserialize(bytes).map_err(|e| SpvError::MalformedMerkleBlock {
        reason: e.to_string(),
    })?;
    // Flag bits are packed per byte; the bits past the last one the traversal reads are padding
    // that the decoder keeps but nothing checks. They must be zero, so that one proof has one
    // encoding.
    let used = bits_used(&block.txn).ok_or_else(|| SpvError::MalformedMerkleBlock {
        reason: "flag bits run out before the tree is traversed".into(),
    })?;
    if block.txn.bits()[used..].iter().any(|b| *b) || serialize(&block) != bytes {
        return Err(SpvError::MalformedMerkleBlock {
            reason: "non-canonical encoding (padding flag bits set)".into(),
        });
    }
    Ok(block)
}

/// Number of flag bits a depth-first traversal of the partial tree reads, or `None` when the
/// bits run out.
fn bits_used(tree: &PartialMerkleTree) -> Option<usize> {
    let n = tree.num_transactions();
    if n == 0 {
        return None;
    }
    let width = |height: u32| (u64::from(n) + (1u64 << height) - 1) >> height;
    let mut height = 0;
    while width(height) > 1 {
        height += 1;
    }
    let mut used = 0usize;
    walk(tree.bits(), &width, height, 0, &mut used)?;
    Some(used)
}

fn walk(
    bits: &[bool],
    width: &dyn Fn(u32) -> u64,
    height: u32,
    pos: u64,
    used: &mut usize,
) -> Option<()> {
    let parent = *bits.get(*used)?;
    *used += 1;
    if height > 0 && parent {
        walk(bits, width, height - 1, pos * 2, used)?;
        if pos * 2 + 1 < width(height - 1) {
            walk(bits, width, height - 1, pos * 2 + 1, used)?;
        }
    }
    Some(())
}

fn check_inclusion(block: &MerkleBlock, txid: Txid) -> Result<(), SpvError> {
    let (mut matches, mut indexes) = (Vec::new(), Vec::new());
    block
        .extract_matches(&mut matches, &mut indexes)
        .map_err(|e| SpvError::MerkleProof {
            reason: e.to_string(),
        })?;
    if matches != [txid] {
        return Err(SpvError::NotInBlock { txid });
    }
    Ok(())
}

fn check_headers(
    first: &Header,
    raw: &[[u8; HEADER_LEN]],
    rule: &PowRule,
) -> Result<u32, SpvError> {
    limit("header list", raw.len(), MAX_HEADERS)?;
    if raw.is_empty() {
        return Err(SpvError::NoHeaders);
    }
    let limit_target = Target::from_compact(CompactTarget::from_consensus(rule.max_target_bits));
    let mut previous: Option<BlockHash> = None;
    for (index, bytes) in raw.iter().enumerate() {
        let header: Header = deserialize(bytes).map_err(|_| SpvError::MalformedHeader { index })?;
        if index == 0 && header != *first {
            return Err(SpvError::HeaderMismatch);
        }
        if previous.is_some_and(|p| p != header.prev_blockhash) {
            return Err(SpvError::BrokenLinkage { index });
        }
        let target = header.target();
        if target > limit_target {
            return Err(SpvError::InsufficientWork {
                index,
                bits: header.bits.to_consensus(),
                limit: rule.max_target_bits,
            });
        }
        let hash = header
            .validate_pow(target)
            .map_err(|_| SpvError::BadProofOfWork { index })?;
        previous = Some(hash);
    }
    let depth = raw.len() as u32;
    if depth < rule.min_confirmations {
        return Err(SpvError::TooFewConfirmations {
            depth,
            required: rule.min_confirmations,
        });
    }
    Ok(depth)
}

fn limit(part: &'static str, len: usize, max: usize) -> Result<(), SpvError> {
    if len > max {
        return Err(SpvError::TooLarge { part, len, max });
    }
    Ok(())
}
