//! Checkpoint rules, the OP_RETURN payload, SPV checks (on real mainnet data and on blocks
//! mined here) and reputation proofs: prove then verify, and each acceptance failure named.

use bitcoin::block::{Header, Version as BlockVersion};
use bitcoin::consensus::serialize;
use bitcoin::hashes::Hash;
use bitcoin::{
    Amount, Block, BlockHash, CompactTarget, MerkleBlock, OutPoint, ScriptBuf, Sequence,
    Transaction, TxIn, TxMerkleNode, TxOut, WPubkeyHash, Witness, absolute, transaction,
};
use cairn_protocol::anchor::{self, AnchorError, AnchorPayload};
use cairn_protocol::checkpoint::{
    self, CheckpointError, CheckpointInput, Genesis, Threshold, VoteOutcome, VoteTally,
};
use cairn_protocol::merkle::{MerkleTree, ReputationLeaf};
use cairn_protocol::proof::{
    self, AnchorProof, AnchorRule, NetworkRules, ProofError, ReputationProof, SignedCheckpoint,
};
use cairn_protocol::spv::{self, PowRule, SpvError};
use cairn_protocol::*;

use proptest::prelude::*;

use crate::fixtures::{keypair, node};

/// Target of the blocks mined here: about 2^-16 of hashes meet it, so a changed header
/// passes proof of work only by a 1-in-65536 chance (and the tests are deterministic).
pub(crate) const TEST_BITS: u32 = 0x1f00_ffff;
/// Regtest's target: half of all hashes meet it.
const REGTEST_BITS: u32 = 0x207f_ffff;
const NETWORK: &str = "anchor-test";

pub(crate) fn genesis(members: u8) -> Genesis {
    Genesis {
        network: NETWORK.into(),
        committee: sorted((1..=members).map(node).collect()),
        committee_size: u32::from(members),
        threshold: Threshold::default(),
        credits: None,
    }
}

fn sorted(mut ids: Vec<NodeId>) -> Vec<NodeId> {
    ids.sort();
    ids
}

fn seed_of(id: &NodeId) -> u8 {
    (1..=40).find(|s| node(*s) == *id).unwrap()
}

/// The table of `epoch`: nodes 1..=9, scores growing with the epoch.
fn leaves(epoch: u64) -> Vec<ReputationLeaf> {
    let mut leaves: Vec<ReputationLeaf> = (1..=9u8)
        .map(|s| ReputationLeaf {
            peer: node(s),
            score: i64::from(s) * 3 + epoch as i64,
            evidence_count: u64::from(s) + epoch,
            balance: u64::from(s) * 100,
        })
        .collect();
    leaves.sort_by_key(|l| l.peer);
    leaves
}

fn vote(g: &Genesis, seed: u8, c: &Checkpoint) -> Envelope {
    let v = CheckpointVote {
        checkpoint: c.hash().unwrap(),
        epoch: c.epoch,
        voter: node(seed),
    };
    Envelope::seal(&v, &keypair(seed), &g.network_id().unwrap()).unwrap()
}

/// `epochs` checkpoints, each signed by every member of its committee.
pub(crate) fn chain(g: &Genesis, epochs: u64) -> Vec<SignedCheckpoint> {
    let mut out: Vec<SignedCheckpoint> = Vec::new();
    let mut previous = g.hash().unwrap();
    let mut committee = g.committee.clone();
    for epoch in 0..epochs {
        let proposer = checkpoint::proposer(&committee, epoch, 0).unwrap();
        let input = CheckpointInput {
            network: NETWORK,
            epoch,
            previous,
            committee: &committee,
            committee_size: g.committee_size as usize,
            verdicts: &[VerdictId::of(&epoch.to_le_bytes())],
            proposer,
            now: Timestamp(1_000 * epoch),
        };
        let c = checkpoint::build(&input, &leaves(epoch)).unwrap();
        let votes = committee.iter().map(|m| vote(g, seed_of(m), &c)).collect();
        previous = c.hash().unwrap();
        committee = c.next_committee.clone();
        out.push(SignedCheckpoint {
            checkpoint: c,
            votes,
        });
    }
    out
}

fn p2wpkh(tag: u8) -> ScriptBuf {
    ScriptBuf::new_p2wpkh(&WPubkeyHash::from_byte_array([tag; 20]))
}

fn tx(input: OutPoint, outputs: Vec<TxOut>) -> Transaction {
    Transaction {
        version: transaction::Version::TWO,
        lock_time: absolute::LockTime::ZERO,
        input: vec![TxIn {
            previous_output: input,
            script_sig: ScriptBuf::new(),
            sequence: Sequence::MAX,
            witness: Witness::new(),
        }],
        output: outputs,
    }
}

fn anchor_tx(payload: &AnchorPayload) -> Transaction {
    let funding = OutPoint::new(bitcoin::Txid::from_byte_array([9; 32]), 1);
    tx(
        funding,
        vec![
            TxOut {
                value: Amount::ZERO,
                script_pubkey: payload.script().unwrap(),
            },
            TxOut {
                value: Amount::from_sat(99_000),
                script_pubkey: p2wpkh(2),
            },
        ],
    )
}

fn mine(prev: BlockHash, merkle_root: TxMerkleNode, time: u32, bits: u32) -> Header {
    let mut header = Header {
        version: BlockVersion::TWO,
        prev_blockhash: prev,
        merkle_root,
        time,
        bits: CompactTarget::from_consensus(bits),
        nonce: 0,
    };
    while header.validate_pow(header.target()).is_err() {
        header.nonce += 1;
    }
    header
}

/// A block holding a coinbase and `anchor`, its merkle block for `anchor`, and `confirmations`
/// headers from it up.
fn anchor_block(anchor: &Transaction, confirmations: u32, bits: u32) -> (Vec<u8>, Vec<[u8; 80]>) {
    let coinbase = tx(
        OutPoint::null(),
        vec![TxOut {
            value: Amount::from_sat(5_000_000_000),
            script_pubkey: p2wpkh(1),
        }],
    );
    let mut block = Block {
        header: mine(BlockHash::all_zeros(), TxMerkleNode::all_zeros(), 0, bits),
        txdata: vec![coinbase, anchor.clone()],
    };
    let root = block.compute_merkle_root().unwrap();
    block.header = mine(
        BlockHash::from_byte_array([3; 32]),
        root,
        1_700_000_000,
        bits,
    );
    let txid = anchor.compute_txid();
    let mb = MerkleBlock::from_block_with_predicate(&block, |t| *t == txid);
    let mut headers = vec![block.header];
    for i in 1..confirmations {
        let prev = headers.last().unwrap().block_hash();
        let filler = TxMerkleNode::from_byte_array([i as u8; 32]);
        headers.push(mine(prev, filler, 1_700_000_000 + i * 600, bits));
    }
    let raw = headers
        .iter()
        .map(|h| serialize(h).try_into().unwrap())
        .collect();
    (serialize(&mb), raw)
}

fn rules(g: Genesis, bits: u32, confirmations: u32) -> NetworkRules {
    NetworkRules {
        genesis: g,
        anchor: Some(AnchorRule {
            chain: "simulated".into(),
            pow: PowRule {
                max_target_bits: bits,
                min_confirmations: confirmations,
            },
        }),
    }
}

/// A proof of node 4's leaf at epoch 1, the chain up to epoch 2 anchored with 2 confirmations.
pub(crate) fn proof_with(g: &Genesis, block_bits: u32) -> ReputationProof {
    let chain = chain(g, 3);
    let tip = &chain[2].checkpoint;
    let payload = AnchorPayload {
        epoch: 2,
        checkpoint: tip.hash().unwrap(),
    };
    let anchor = anchor_tx(&payload);
    let (merkle_block, headers) = anchor_block(&anchor, 2, block_bits);
    let table = leaves(1);
    let index = table.iter().position(|l| l.peer == node(4)).unwrap();
    ReputationProof {
        leaf: table[index],
        epoch: 1,
        path: MerkleTree::from_reputation(&table)
            .unwrap()
            .proof(index)
            .unwrap(),
        chain,
        anchor: Some(AnchorProof {
            chain: "simulated".into(),
            transaction: serialize(&anchor),
            merkle_block,
            headers,
        }),
    }
}

fn failure(proof: &ReputationProof, rules: &NetworkRules) -> ProofError {
    proof::verify(proof, rules).expect_err("the proof should fail")
}

#[test]
fn prove_then_verify_succeeds() {
    let g = genesis(5);
    let p = proof_with(&g, TEST_BITS);
    let bytes = p.to_bytes().unwrap();
    let read = ReputationProof::from_bytes(&bytes).unwrap();
    let v = proof::verify(&read, &rules(g, TEST_BITS, 2)).unwrap();
    assert_eq!(v.leaf.peer, node(4));
    assert_eq!(v.leaf.score, 4 * 3 + 1);
    assert_eq!((v.epoch, v.tip_epoch), (1, 2));
    let anchor = v.anchor.unwrap();
    assert_eq!((anchor.chain.as_str(), anchor.depth), ("simulated", 2));
}

#[test]
fn unanchored_network_verifies_and_says_so() {
    let g = genesis(3);
    let mut p = proof_with(&g, TEST_BITS);
    p.anchor = None;
    let rules = NetworkRules {
        genesis: g.clone(),
        anchor: None,
    };
    assert_eq!(proof::verify(&p, &rules).unwrap().anchor, None);
    // A network that anchors refuses the same proof.
    let err = failure(&p, &self::rules(g, TEST_BITS, 1));
    assert!(matches!(err, ProofError::NotAnchored { .. }), "{err}");
}

#[test]
fn flipping_any_byte_of_the_file_fails() {
    let g = genesis(3);
    let rules = rules(g.clone(), TEST_BITS, 2);
    let bytes = proof_with(&g, TEST_BITS).to_bytes().unwrap();
    let mut checks = std::collections::BTreeMap::<&str, usize>::new();
    for position in 0..bytes.len() {
        for mask in [0x01u8, 0xff] {
            let mut changed = bytes.clone();
            changed[position] ^= mask;
            let result =
                ReputationProof::from_bytes(&changed).and_then(|p| proof::verify(&p, &rules));
            let err = result
                .err()
                .unwrap_or_else(|| panic!("flip {mask:#x} at {position} passed"));
            *checks.entry(err.check()).or_default() += 1;
        }
    }
    eprintln!("{} bytes, failures by check: {checks:?}", bytes.len());
    // Flips land in every part of the file and each part's own check catches them.
    for check in [
        "format",
        "signatures",
        "merkle_path",
        "tx_inclusion",
        "proof_of_work",
        "header_chain",
    ] {
        assert!(
            checks.contains_key(check),
            "no flip caught by {check}: {checks:?}"
        );
    }
}

#[test]
fn wrong_network_spec_fails() {
    let g = genesis(3);
    let p = proof_with(&g, TEST_BITS);
    let renamed = Genesis {
        network: "other".into(),
        ..g.clone()
    };
    let err = failure(&p, &rules(renamed, TEST_BITS, 2));
    assert!(matches!(err, ProofError::WrongNetwork { .. }), "{err}");
    // Same name, another first committee: the chain does not lead back to this spec.
    let other_committee = Genesis {
        committee: sorted(vec![node(20), node(21), node(22)]),
        ..g.clone()
    };
    let err = failure(&p, &rules(other_committee, TEST_BITS, 2));
    assert!(matches!(err, ProofError::BrokenChain { index: 0 }), "{err}");
    assert_eq!(err.check(), "network_spec");
    // Another anchor chain.
    let mut r = rules(g, TEST_BITS, 2);
    r.anchor.as_mut().unwrap().chain = "bitcoin".into();
    assert!(matches!(failure(&p, &r), ProofError::WrongChain { .. }));
}

#[test]
fn signatures_below_threshold_fail() {
    let g = genesis(6); // 2/3 of 6 = 4 signatures needed.
    let mut p = proof_with(&g, TEST_BITS);
    p.chain[1].votes.truncate(3);
    let err = failure(&p, &rules(g, TEST_BITS, 2));
    assert!(
        matches!(
            err,
            ProofError::Signatures {
                epoch: 1,
                source: CheckpointError::BelowThreshold {
                    valid: 3,
                    required: 4
                }
            }
        ),
        "{err}"
    );
    assert_eq!(err.check(), "signatures");
}

#[test]
fn outsider_and_mismatched_votes_fail() {
    let g = genesis(3);
    let r = rules(g.clone(), TEST_BITS, 2);
    let mut p = proof_with(&g, TEST_BITS);
    let c0 = p.chain[0].checkpoint.clone();
    p.chain[0].votes.push(vote(&g, 30, &c0));
    let err = failure(&p, &r);
    assert!(
        matches!(
            err,
            ProofError::Signatures {
                source: CheckpointError::NotMember { .. },
                ..
            }
        ),
        "{err}"
    );

    let mut p = proof_with(&g, TEST_BITS);
    let c1 = p.chain[1].checkpoint.clone();
    let member = seed_of(&p.chain[0].checkpoint.next_committee[0]);
    p.chain[0].votes[0] = vote(&g, member, &c1);
    assert_eq!(failure(&p, &r).check(), "signatures");
}

#[test]
fn leaf_of_another_peer_fails() {
    let g = genesis(3);
    let mut p = proof_with(&g, TEST_BITS);
    p.leaf = *leaves(1).iter().find(|l| l.peer == node(5)).unwrap();
    let err = failure(&p, &rules(g.clone(), TEST_BITS, 2));
    assert!(
        matches!(err, ProofError::MerklePath { epoch: 1, .. }),
        "{err}"
    );
    // The right leaf with a raised score fails the same way.
    let mut p = proof_with(&g, TEST_BITS);
    p.leaf.score += 100;
    assert_eq!(failure(&p, &rules(g, TEST_BITS, 2)).check(), "merkle_path");
}

#[test]
fn a_balance_is_proven_offline_and_a_changed_balance_fails() {
    let g = genesis(3);
    let rules = rules(g.clone(), TEST_BITS, 2);
    let p = proof_with(&g, TEST_BITS);
    let v = proof::verify(&p, &rules).unwrap();
    assert_eq!((v.leaf.peer, v.leaf.balance), (node(4), 400));
    for balance in [0, 399, 401, u64::MAX] {
        let mut tampered = proof_with(&g, TEST_BITS);
        tampered.leaf.balance = balance;
        let err = failure(&tampered, &rules);
        assert!(
            matches!(err, ProofError::MerklePath { epoch: 1, .. }),
            "balance {balance}: {err}"
        );
    }
}

#[test]
fn header_chain_without_enough_work_fails() {
    let g = genesis(3);
    // Mined at regtest difficulty, checked against a spec that demands TEST_BITS or harder.
    let p = proof_with(&g, REGTEST_BITS);
    let err = failure(&p, &rules(g.clone(), TEST_BITS, 2));
    assert!(
        matches!(
            err,
            ProofError::Spv(SpvError::InsufficientWork { index: 0, .. })
        ),
        "{err}"
    );
    assert_eq!(err.check(), "proof_of_work");
    // The same chain passes a spec that accepts regtest work.
    assert!(proof::verify(&p, &rules(g.clone(), REGTEST_BITS, 2)).is_ok());
    // Too few confirmations.
    let err = failure(&p, &rules(g, REGTEST_BITS, 3));
    assert!(matches!(
        err,
        ProofError::Spv(SpvError::TooFewConfirmations {
            depth: 2,
            required: 3
        })
    ));
}

#[test]
fn anchor_of_another_checkpoint_fails() {
    let g = genesis(3);
    let mut p = proof_with(&g, TEST_BITS);
    let other = AnchorPayload {
        epoch: 2,
        checkpoint: CheckpointHash([7; 32]),
    };
    let anchor = anchor_tx(&other);
    let (merkle_block, headers) = anchor_block(&anchor, 2, TEST_BITS);
    p.anchor = Some(AnchorProof {
        chain: "simulated".into(),
        transaction: serialize(&anchor),
        merkle_block,
        headers,
    });
    let err = failure(&p, &rules(g, TEST_BITS, 2));
    assert!(matches!(err, ProofError::PayloadMismatch { .. }), "{err}");
}

/// Block 80000 of Bitcoin mainnet: `gettxoutproof` of its second transaction (from the
/// `bitcoin` crate's `MerkleBlock` documentation), that transaction, and the real header.
const BLOCK_80000_PROOF: &str = "01000000ba8b9cda965dd8e536670f9ddec10e53aab14b20bacad27b9137190000000000190760b278fe7b8565fda3b968b918d5fd997f993b23674c0af3b6fde300b38f33a5914ce6ed5b1b01e32f570200000002252bf9d75c4f481ebb6278d708257d1f12beb6dd30301d26c623f789b2ba6fc0e2d32adb5f8ca820731dff234a84e78ec30bce4ec69dbd562d0b2b8266bf4e5a0105";
const BLOCK_80000_TX: &str = "0100000001a6b97044d03da79c005b20ea9c0e1a6d9dc12d9f7b91a5911c9030a439eed8f5000000004948304502206e21798a42fae0e854281abd38bacd1aeed3ee3738d9e1446618c4571d1090db022100e2ac980643b0b82c0e88ffdfec6b64e3e6ba35e7ba5fdd7d5d6cc8d25c6b241501ffffffff0100f2052a010000001976a914404371705fa9bd789a2fcd52d2c580b65d35549d88ac00000000";
const MAINNET_POW_LIMIT: u32 = 0x1d00_ffff;

fn mainnet_fixture() -> (Vec<u8>, Vec<u8>, [u8; 80]) {
    let proof = hex::decode(BLOCK_80000_PROOF).unwrap();
    let tx = hex::decode(BLOCK_80000_TX).unwrap();
    let header: [u8; 80] = proof[..80].try_into().unwrap();
    (proof, tx, header)
}

#[test]
fn spv_passes_on_mainnet_block_80000() {
    let (proof, tx, header) = mainnet_fixture();
    let rule = PowRule {
        max_target_bits: MAINNET_POW_LIMIT,
        min_confirmations: 1,
    };
    let outcome = spv::verify(&tx, &proof, &[header], &rule).unwrap();
    assert_eq!(
        outcome.txid.to_string(),
        "5a4ebf66822b0b2d56bd9dc64ece0bc38ee7844a23ff1d7320a88c5fdb2ad3e2"
    );
    assert_eq!(
        outcome.block_hash.to_string(),
        "000000000043a8c0fd1d6f726790caa2a406010d19efd2780db27bdbbd93baf6"
    );
    assert_eq!(outcome.depth, 1);
}

#[test]
fn spv_refuses_changed_mainnet_data() {
    let (proof, tx, header) = mainnet_fixture();
    let rule = PowRule {
        max_target_bits: MAINNET_POW_LIMIT,
        min_confirmations: 1,
    };
    // Another transaction (the coinbase's bytes are not given, so change one byte of this one).
    let mut other_tx = tx.clone();
    other_tx[10] ^= 1;
    assert!(matches!(
        spv::verify(&other_tx, &proof, &[header], &rule),
        Err(SpvError::NotInBlock { .. })
    ));
    // A changed nonce breaks the proof of work of the real header.
    let mut bad = header;
    bad[79] ^= 1;
    let mut bad_proof = proof.clone();
    bad_proof[79] ^= 1;
    assert!(matches!(
        spv::verify(&tx, &bad_proof, &[bad], &rule),
        Err(SpvError::BadProofOfWork { index: 0 })
    ));
    // A stricter spec than mainnet's difficulty of that time.
    let strict = PowRule {
        max_target_bits: 0x1a00_ffff,
        ..rule
    };
    assert!(matches!(
        spv::verify(&tx, &proof, &[header], &strict),
        Err(SpvError::InsufficientWork { .. })
    ));
}

#[test]
fn payload_layout_and_limits() {
    let payload = AnchorPayload {
        epoch: 0x0102_0304_0506_0708,
        checkpoint: CheckpointHash([0xab; 32]),
    };
    let bytes = payload.to_bytes();
    assert_eq!(bytes.len(), 46);
    assert_eq!(&bytes[..6], b"CAIRN\x01");
    assert_eq!(&bytes[6..14], &[1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(AnchorPayload::from_bytes(&bytes), Ok(payload));
    let script = payload.script().unwrap();
    assert_eq!(script.len(), 48);
    assert_eq!(script.as_bytes()[..2], [0x6a, 46]);
    assert_eq!(AnchorPayload::from_script(&script), Ok(payload));

    assert!(anchor::op_return_script(&[0; 80]).is_ok());
    assert_eq!(
        anchor::op_return_script(&[0; 81]),
        Err(AnchorError::TooLarge { len: 81 })
    );
    let big =
        ScriptBuf::new_op_return(<&bitcoin::script::PushBytes>::try_from(&[0u8; 81][..]).unwrap());
    assert_eq!(
        anchor::op_return_data(&big),
        Err(AnchorError::TooLarge { len: 81 })
    );
    let mut wrong = bytes;
    wrong[0] = b'X';
    assert_eq!(
        AnchorPayload::from_bytes(&wrong),
        Err(AnchorError::WrongTag)
    );
    wrong = bytes;
    wrong[5] = 2;
    assert_eq!(
        AnchorPayload::from_bytes(&wrong),
        Err(AnchorError::UnsupportedVersion { found: 2 })
    );
    assert_eq!(
        AnchorPayload::from_bytes(&bytes[..45]),
        Err(AnchorError::WrongLength { len: 45 })
    );

    let mut two = anchor_tx(&payload);
    two.output.push(two.output[0].clone());
    assert_eq!(
        AnchorPayload::find_in(&two),
        Err(AnchorError::Ambiguous { count: 2 })
    );
}

#[test]
fn threshold_committee_and_proposer_rules() {
    let t = Threshold::default();
    assert_eq!(
        [1, 2, 3, 6, 7, 10].map(|n| t.required(n)),
        [1, 2, 2, 4, 5, 7]
    );
    // Top scores first, only positive scores, filled from the current committee.
    let l = |s: u8, score: i64| ReputationLeaf {
        peer: node(s),
        score,
        evidence_count: 1,
        balance: 0,
    };
    let table = sorted_leaves(vec![l(1, 5), l(2, 50), l(3, -4), l(4, 20), l(5, 0)]);
    assert_eq!(
        checkpoint::next_committee(&table, &[], 2),
        sorted(vec![node(2), node(4)])
    );
    let next = checkpoint::next_committee(&table, &[node(9)], 4);
    assert_eq!(next, sorted(vec![node(1), node(2), node(4), node(9)]));
    // Round robin by epoch; a timeout hands the epoch to the next member.
    let c = sorted(vec![node(1), node(2), node(3)]);
    assert_eq!(checkpoint::proposer(&c, 4, 0), Some(c[1]));
    assert_eq!(checkpoint::proposer(&c, 4, 1), Some(c[2]));
    assert_eq!(checkpoint::proposer(&c, 4, 2), Some(c[0]));
    assert_eq!(checkpoint::proposer(&[], 4, 0), None);
    assert_eq!(
        checkpoint::attempt_at(Timestamp(1_000), Timestamp(3_500), 1_000),
        2
    );
}

fn sorted_leaves(mut l: Vec<ReputationLeaf>) -> Vec<ReputationLeaf> {
    l.sort_by_key(|x| x.peer);
    l
}

#[test]
fn tally_ignores_other_roots_outsiders_and_repeats() {
    let g = genesis(4); // 3 of 4 needed.
    let chain = chain(&g, 1);
    let c = &chain[0].checkpoint;
    let mut tally = VoteTally::new(0, c.hash().unwrap(), &g.committee, g.threshold);
    let net = g.network_id().unwrap();
    let verified =
        |seed: u8, c: &Checkpoint| vote(&g, seed, c).verify::<CheckpointVote>(&net).unwrap();
    let mut other = c.clone();
    other.reputation_root = [0; 32];
    assert_eq!(
        tally.add(&verified(1, &other)),
        VoteOutcome::WrongCheckpoint
    );
    assert_eq!(tally.add(&verified(30, c)), VoteOutcome::NotMember);
    assert_eq!(
        tally.add(&verified(1, c)),
        VoteOutcome::Counted {
            votes: 1,
            required: 3
        }
    );
    assert_eq!(tally.add(&verified(1, c)), VoteOutcome::Duplicate);
    assert_eq!(
        tally.add(&verified(2, c)),
        VoteOutcome::Counted {
            votes: 2,
            required: 3
        }
    );
    assert!(!tally.is_final());
    assert_eq!(tally.add(&verified(3, c)), VoteOutcome::Final);
    assert!(tally.is_final());
    assert_eq!(tally.signatures().len(), 3);
}

fn proof_bytes() -> &'static (Vec<u8>, NetworkRules) {
    static PROOF: std::sync::OnceLock<(Vec<u8>, NetworkRules)> = std::sync::OnceLock::new();
    PROOF.get_or_init(|| {
        let g = genesis(3);
        (
            proof_with(&g, TEST_BITS).to_bytes().unwrap(),
            rules(g, TEST_BITS, 2),
        )
    })
}

proptest! {
    /// Several changed bytes, or a cut, never panic the reader or the verifier and never pass.
    #[test]
    fn corrupted_proofs_fail_without_panicking(
        changes in proptest::collection::vec((any::<usize>(), 1..=255u8), 1..6),
        cut in proptest::option::of(any::<usize>()),
    ) {
        let (bytes, rules) = proof_bytes();
        let mut changed = bytes.clone();
        for (position, mask) in &changes {
            let i = position % changed.len();
            changed[i] ^= mask;
        }
        if let Some(cut) = cut {
            changed.truncate(cut % changed.len());
        }
        prop_assume!(changed != *bytes);
        let result = ReputationProof::from_bytes(&changed).and_then(|p| proof::verify(&p, rules));
        prop_assert!(result.is_err());
    }
}

#[test]
fn a_chain_verified_in_two_parts_ends_where_the_whole_does() {
    let g = genesis(4);
    let whole = chain(&g, 5);
    let end = proof::verify_chain(&whole, &g).unwrap();
    let head = proof::verify_chain(&whole[..2], &g).unwrap();
    let tip = proof::ChainTip {
        len: 2,
        hash: head,
        committee: &whole[1].checkpoint.next_committee,
    };
    assert_eq!(proof::verify_extension(&whole[2..], tip, &g).unwrap(), end);

    // Extending from the wrong place, or with the wrong committee, fails.
    let off_by_one = proof::ChainTip { len: 1, ..tip };
    assert!(matches!(
        proof::verify_extension(&whole[2..], off_by_one, &g),
        Err(ProofError::BrokenChain { index: 1 })
    ));
    let outsiders = [node(200), node(201), node(202)];
    let strangers = proof::ChainTip {
        committee: &outsiders,
        ..tip
    };
    assert!(matches!(
        proof::verify_extension(&whole[2..], strangers, &g),
        Err(ProofError::Signatures { epoch: 2, .. })
    ));
}
