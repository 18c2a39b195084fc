//! SIMULATED chain, for tests and simulations only: an in-memory, regtest-style Bitcoin chain
//! that mines real blocks (real headers, real proof of work at regtest difficulty, real merkle
//! roots and witness commitments) and holds a one-key P2WPKH wallet that funds and signs
//! transactions for real. It is not Bitcoin and secures nothing; everything that shows it is
//! labelled `simulated`.
//!
//! Simplifications, all on the side of the simulated node (none in what a verifier checks):
//! coinbase outputs may be spent at once (no 100-block maturity), it spends only P2WPKH outputs
//! (checking their signatures), a spent output leaves the UTXO set when its transaction enters
//! the mempool, and there is no fee market (a flat 1 sat/vB).

use std::collections::{BTreeMap, HashMap};

use super::p2wpkh;

use bitcoin::block::{Header, Version as BlockVersion};
use bitcoin::hashes::Hash;
use bitcoin::secp256k1::{self, Secp256k1, SecretKey};
use bitcoin::{
    Amount, Block, BlockHash, CompactTarget, CompressedPublicKey, MerkleBlock, OutPoint, ScriptBuf,
    Sequence, Transaction, TxIn, TxMerkleNode, TxOut, Txid, Witness, absolute, transaction,
};

pub use cairn_config::anchor::REGTEST_BITS;
/// Block subsidy paid to the wallet.
const SUBSIDY: Amount = Amount::from_sat(50 * 100_000_000);
/// Fee rate, in satoshi per virtual byte.
const FEE_RATE: u64 = 1;
/// Seconds between simulated block times.
const BLOCK_INTERVAL: u32 = 600;
/// Most transactions waiting for a block.
const MAX_MEMPOOL: usize = 10_000;

/// Why the simulated chain refused a call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimChainError {
    /// The wallet has no unspent output left to fund a transaction.
    #[error("simulated wallet has no funds: mine a block first (generatetoaddress)")]
    NoFunds,
    /// A transaction spends an output that is unknown or already spent.
    #[error("input {outpoint} is missing or already spent")]
    MissingInput {
        /// The outpoint.
        outpoint: OutPoint,
    },
    /// The transaction or block is unknown.
    #[error("{what} {id} not found")]
    NotFound {
        /// What was looked up.
        what: &'static str,
        /// Its id.
        id: String,
    },
    /// An input's signature does not verify.
    #[error("input spending {outpoint} has no valid P2WPKH signature")]
    BadSignature {
        /// The outpoint.
        outpoint: OutPoint,
    },
    /// The mempool is full.
    #[error("simulated mempool is full ({MAX_MEMPOOL} transactions): mine blocks")]
    MempoolFull,
    /// Signing failed.
    #[error("cannot sign: {0}")]
    Sign(String),
}

/// Where a transaction stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxStatus {
    /// Confirmations (0 in the mempool).
    pub confirmations: u32,
    /// Including block, once mined.
    pub block_hash: Option<BlockHash>,
    /// Its height.
    pub height: Option<u32>,
}

/// The chain, its mempool and its wallet.
pub struct SimChain {
    secp: Secp256k1<secp256k1::All>,
    key: SecretKey,
    pubkey: CompressedPublicKey,
    blocks: Vec<Block>,
    by_hash: HashMap<BlockHash, u32>,
    tx_height: HashMap<Txid, u32>,
    mempool: Vec<Transaction>,
    /// Every unspent, spendable output (not only the wallet's).
    utxos: BTreeMap<OutPoint, TxOut>,
    time: u32,
}

impl SimChain {
    /// A chain with only its genesis block, whose wallet key is derived from `seed`.
    pub fn new(seed: [u8; 32]) -> Result<Self, SimChainError> {
        let secp = Secp256k1::new();
        let key_bytes = blake3::derive_key("cairn 2026 simulated chain wallet v1", &seed);
        let key =
            SecretKey::from_slice(&key_bytes).map_err(|e| SimChainError::Sign(e.to_string()))?;
        let pubkey = CompressedPublicKey(key.public_key(&secp));
        let mut chain = Self {
            secp,
            key,
            pubkey,
            blocks: Vec::new(),
            by_hash: HashMap::new(),
            tx_height: HashMap::new(),
            mempool: Vec::new(),
            utxos: BTreeMap::new(),
            time: 1_700_000_000,
        };
        chain.mine(1);
        Ok(chain)
    }

    /// The wallet's output script (P2WPKH).
    pub fn wallet_script(&self) -> ScriptBuf {
        ScriptBuf::new_p2wpkh(&self.pubkey.wpubkey_hash())
    }

    /// Height of the tip (genesis is 0).
    pub fn height(&self) -> u32 {
        self.blocks.len().saturating_sub(1) as u32
    }

    /// Hash of the block at `height`.
    pub fn block_hash(&self, height: u32) -> Option<BlockHash> {
        self.blocks.get(height as usize).map(|b| b.block_hash())
    }

    /// Header of the block `hash`.
    pub fn header(&self, hash: &BlockHash) -> Option<(Header, u32)> {
        let height = *self.by_hash.get(hash)?;
        Some((self.blocks[height as usize].header, height))
    }

    /// Mines `count` blocks paying the wallet, the whole mempool in the first; returns their
    /// hashes.
    pub fn mine(&mut self, count: u32) -> Vec<BlockHash> {
        self.mine_to(count, &self.wallet_script())
    }

    /// Mines `count` blocks whose coinbase pays `script`.
    pub fn mine_to(&mut self, count: u32, script: &ScriptBuf) -> Vec<BlockHash> {
        (0..count).map(|_| self.mine_one(script)).collect()
    }

    /// Unspent outputs paying `script`, with the height of their block.
    pub fn utxos_of(&self, script: &ScriptBuf) -> Vec<(OutPoint, TxOut, u32)> {
        self.utxos
            .iter()
            .filter(|(_, out)| out.script_pubkey == *script)
            .filter_map(|(o, out)| Some((*o, out.clone(), *self.tx_height.get(&o.txid)?)))
            .collect()
    }

    fn mine_one(&mut self, pay_to: &ScriptBuf) -> BlockHash {
        let height = self.blocks.len() as u32;
        let mut txdata = vec![coinbase(height, pay_to)];
        txdata.append(&mut self.mempool);
        let mut block = Block {
            header: Header {
                version: BlockVersion::TWO,
                prev_blockhash: self
                    .blocks
                    .last()
                    .map_or(BlockHash::all_zeros(), |b| b.block_hash()),
                merkle_root: TxMerkleNode::all_zeros(),
                time: self.time + height * BLOCK_INTERVAL,
                bits: CompactTarget::from_consensus(REGTEST_BITS),
                nonce: 0,
            },
            txdata,
        };
        commit_witnesses(&mut block);
        block.header.merkle_root = block
            .compute_merkle_root()
            .unwrap_or(TxMerkleNode::all_zeros());
        while block.header.validate_pow(block.header.target()).is_err() {
            block.header.nonce = block.header.nonce.wrapping_add(1);
        }
        let hash = block.block_hash();
        for tx in &block.txdata {
            let txid = tx.compute_txid();
            self.tx_height.insert(txid, height);
            for (vout, out) in tx.output.iter().enumerate() {
                if !out.script_pubkey.is_op_return() {
                    self.utxos
                        .insert(OutPoint::new(txid, vout as u32), out.clone());
                }
            }
        }
        self.by_hash.insert(hash, height);
        self.blocks.push(block);
        hash
    }

    /// Adds wallet inputs and a change output so that inputs pay outputs and the fee.
    pub fn fund(&self, mut tx: Transaction) -> Result<Transaction, SimChainError> {
        let spent: Vec<OutPoint> = self
            .mempool
            .iter()
            .flat_map(|t| t.input.iter().map(|i| i.previous_output))
            .collect();
        let wallet = self.wallet_script();
        let (outpoint, prevout) = self
            .utxos
            .iter()
            .find(|(o, out)| out.script_pubkey == wallet && !spent.contains(o))
            .ok_or(SimChainError::NoFunds)?;
        tx.input.push(TxIn {
            previous_output: *outpoint,
            script_sig: ScriptBuf::new(),
            sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
            witness: Witness::new(),
        });
        tx.output.push(TxOut {
            value: Amount::ZERO,
            script_pubkey: self.wallet_script(),
        });
        // Fee from the size once signed: marker, flag and a P2WPKH witness add at most 110
        // weight units, 28 vB rounded up.
        let vsize = tx.vsize() as u64 + 28;
        let paid: Amount = tx.output.iter().map(|o| o.value).sum();
        let change = prevout
            .value
            .checked_sub(paid + Amount::from_sat(vsize * FEE_RATE));
        let change = change.ok_or(SimChainError::NoFunds)?;
        if let Some(last) = tx.output.last_mut() {
            last.value = change;
        }
        Ok(tx)
    }

    /// Signs every input that spends a wallet output.
    pub fn sign(&self, mut tx: Transaction) -> Result<Transaction, SimChainError> {
        let wallet = self.wallet_script();
        for index in 0..tx.input.len() {
            let prevout = self.utxos.get(&tx.input[index].previous_output);
            if let Some(prevout) = prevout.filter(|p| p.script_pubkey == wallet) {
                p2wpkh::sign_input(&self.secp, &mut tx, index, prevout, &self.key)
                    .map_err(SimChainError::Sign)?;
            }
        }
        Ok(tx)
    }

    /// Accepts a transaction whose inputs are unspent P2WPKH outputs with valid signatures;
    /// returns its id.
    pub fn send(&mut self, tx: Transaction) -> Result<Txid, SimChainError> {
        if self.mempool.len() >= MAX_MEMPOOL {
            return Err(SimChainError::MempoolFull);
        }
        for (index, input) in tx.input.iter().enumerate() {
            let outpoint = input.previous_output;
            let in_mempool = self
                .mempool
                .iter()
                .flat_map(|t| &t.input)
                .any(|i| i.previous_output == outpoint);
            let Some(prevout) = self.utxos.get(&outpoint).filter(|_| !in_mempool) else {
                return Err(SimChainError::MissingInput { outpoint });
            };
            if !p2wpkh::verify_input(&self.secp, &tx, index, prevout) {
                return Err(SimChainError::BadSignature { outpoint });
            }
        }
        for input in &tx.input {
            self.utxos.remove(&input.previous_output);
        }
        let txid = tx.compute_txid();
        self.mempool.push(tx);
        Ok(txid)
    }

    /// Where `txid` stands, or `None` when the chain never saw it.
    pub fn status(&self, txid: &Txid) -> Option<TxStatus> {
        if let Some(height) = self.tx_height.get(txid) {
            return Some(TxStatus {
                confirmations: self.height() - height + 1,
                block_hash: self.block_hash(*height),
                height: Some(*height),
            });
        }
        self.mempool
            .iter()
            .any(|t| t.compute_txid() == *txid)
            .then_some(TxStatus {
                confirmations: 0,
                block_hash: None,
                height: None,
            })
    }

    /// The transaction `txid`, from a block or the mempool.
    pub fn transaction(&self, txid: &Txid) -> Option<Transaction> {
        let in_block = self
            .tx_height
            .get(txid)
            .and_then(|h| self.blocks.get(*h as usize));
        in_block
            .map(|b| b.txdata.as_slice())
            .unwrap_or(&self.mempool)
            .iter()
            .find(|t| t.compute_txid() == *txid)
            .cloned()
    }

    /// `gettxoutproof`: a merkle block proving `txids` in block `hash`.
    pub fn txout_proof(
        &self,
        txids: &[Txid],
        hash: &BlockHash,
    ) -> Result<MerkleBlock, SimChainError> {
        let height = self
            .by_hash
            .get(hash)
            .ok_or_else(|| SimChainError::NotFound {
                what: "block",
                id: hash.to_string(),
            })?;
        let block = &self.blocks[*height as usize];
        Ok(MerkleBlock::from_block_with_predicate(block, |t| {
            txids.contains(t)
        }))
    }
}

fn coinbase(height: u32, pay_to: &ScriptBuf) -> Transaction {
    let script_sig = bitcoin::script::Builder::new()
        .push_int(i64::from(height))
        .push_opcode(bitcoin::opcodes::OP_0)
        .into_script();
    Transaction {
        version: transaction::Version::TWO,
        lock_time: absolute::LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint::null(),
            script_sig,
            sequence: Sequence::MAX,
            witness: Witness::from_slice(&[[0u8; 32]]),
        }],
        output: vec![TxOut {
            value: SUBSIDY,
            script_pubkey: pay_to.clone(),
        }],
    }
}

/// Puts the BIP141 witness commitment into the coinbase (its witness holds the reserved value).
fn commit_witnesses(block: &mut Block) {
    let Some(root) = block.witness_root() else {
        return;
    };
    let commitment = Block::compute_witness_commitment(&root, &[0u8; 32]);
    let mut data = vec![0xaa, 0x21, 0xa9, 0xed];
    data.extend_from_slice(commitment.as_byte_array());
    if let Ok(script) = cairn_protocol::anchor::op_return_script(&data)
        && let Some(coinbase) = block.txdata.first_mut()
    {
        coinbase.output.push(TxOut {
            value: Amount::ZERO,
            script_pubkey: script,
        });
    }
}

#[cfg(test)]
mod tests {
    use bitcoin::sighash::{EcdsaSighashType, SighashCache};

    use super::*;

    #[test]
    fn blocks_are_real_and_the_wallet_signs_for_real() {
        let mut chain = SimChain::new([1; 32]).unwrap();
        let hashes = chain.mine(3);
        // Headers link, meet regtest's target, and commit to their transactions.
        for (height, hash) in hashes.iter().enumerate() {
            let (header, h) = chain.header(hash).unwrap();
            assert_eq!(h as usize, height + 1);
            assert!(header.validate_pow(header.target()).is_ok());
            assert_eq!(header.prev_blockhash, chain.block_hash(h - 1).unwrap());
            let block = &chain.blocks[h as usize];
            assert!(block.check_merkle_root());
        }
        let script = cairn_protocol::anchor::op_return_script(b"cairn test").unwrap();
        let tx = Transaction {
            version: transaction::Version::TWO,
            lock_time: absolute::LockTime::ZERO,
            input: vec![],
            output: vec![TxOut {
                value: Amount::ZERO,
                script_pubkey: script,
            }],
        };
        let signed = chain.sign(chain.fund(tx).unwrap()).unwrap();
        // The witness signature verifies against the BIP143 digest of the spent output.
        let prevout = chain.utxos[&signed.input[0].previous_output].clone();
        let sighash = SighashCache::new(&signed)
            .p2wpkh_signature_hash(
                0,
                &prevout.script_pubkey,
                prevout.value,
                EcdsaSighashType::All,
            )
            .unwrap();
        let witness: Vec<&[u8]> = signed.input[0].witness.iter().collect();
        let signature = bitcoin::ecdsa::Signature::from_slice(witness[0]).unwrap();
        let key = bitcoin::PublicKey::from_slice(witness[1]).unwrap();
        let message = secp256k1::Message::from_digest(sighash.to_byte_array());
        assert!(
            chain
                .secp
                .verify_ecdsa(&message, &signature.signature, &key.inner)
                .is_ok()
        );
        // Inputs pay outputs plus a fee of about 1 sat/vB.
        let out: Amount = signed.output.iter().map(|o| o.value).sum();
        let fee = (prevout.value - out).to_sat();
        let vsize = signed.vsize() as u64;
        assert!(
            (vsize..=vsize + 1).contains(&fee),
            "fee {fee} for {vsize} vB"
        );
        // Sent once, mined, proven; a second spend of the same output is refused.
        let mut forged = signed.clone();
        forged.output[1].value = Amount::from_sat(1);
        assert!(matches!(
            chain.send(forged),
            Err(SimChainError::BadSignature { .. })
        ));
        let txid = chain.send(signed.clone()).unwrap();
        assert!(matches!(
            chain.send(signed),
            Err(SimChainError::MissingInput { .. })
        ));
        assert_eq!(chain.status(&txid).unwrap().confirmations, 0);
        let block = chain.mine(1)[0];
        let status = chain.status(&txid).unwrap();
        assert_eq!((status.confirmations, status.block_hash), (1, Some(block)));
        let mined = &chain.blocks[chain.height() as usize];
        assert!(mined.check_witness_commitment(), "BIP141 commitment");
        let proof = chain.txout_proof(&[txid], &block).unwrap();
        let (mut matches, mut indexes) = (vec![], vec![]);
        proof.extract_matches(&mut matches, &mut indexes).unwrap();
        assert_eq!(matches, vec![txid]);
    }
}
