//! Anchoring: the `bitcoind` backend end to end against the simulated chain (and against a real
//! `bitcoind -regtest` when `BITCOIND_EXE` is set), and an anchored proof that the offline
//! verifier accepts.

use bitcoin::consensus::encode::deserialize_hex;
use cairn_node::anchor::{
    AnchorBackend, BitcoindBackend, EsploraBackend, REGTEST_BITS, SimulatedChain,
};
use cairn_node::checkpoints::CheckpointGossip;
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
            Envelope::seal(&vote, k, &genesis.network_id().unwrap()).unwrap()
        })
        .collect();
    SignedCheckpoint {
        checkpoint: c,
        votes,
    }
}

/// Anchors a checkpoint through `backend`, mining with `mine`, and verifies a proof offline.
fn anchor_and_verify(backend: &dyn AnchorBackend, mine: &dyn Fn(u32)) -> bitcoin::Txid {
    let keys: Vec<_> = (1..=3).map(keypair).collect();
    let mut committee: Vec<NodeId> = keys.iter().map(NodeId::from_keypair).collect();
    committee.sort();
    let genesis = Genesis {
        network: "anchor-it".into(),
        committee: committee.clone(),
        committee_size: 3,
        threshold: Threshold::default(),
        credits: None,
    };
    let mut leaves: Vec<ReputationLeaf> = committee
        .iter()
        .enumerate()
        .map(|(i, peer)| ReputationLeaf {
            peer: *peer,
            score: 10 + i as i64,
            evidence_count: 3,
            balance: 0,
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
    txid
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
        let txid = anchor_and_verify(&backend, &|n| {
            miner.mine(n);
        });
        let vsize = txid_vsize(&backend, &txid);
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

/// One wordcount job with three replicas from `requester`, to give the tables some verdicts.
async fn one_job(requester: &cairn_node::Node, nonce: u64) {
    let spec = crate::market::wordcount_spec(requester, b"checkpoint words", nonce, 3, 2).await;
    let id = requester.market().submit(spec).unwrap();
    crate::harness::finish(requester, &id, std::time::Duration::from_secs(60)).await;
}

/// Nodes under `dir` that form the first checkpoint committee of their spec, started in order,
/// each bootstrapping from the first.
struct Committee {
    dirs: Vec<std::path::PathBuf>,
    ids: Vec<NodeId>,
    spec: cairn_node::config::NetworkSpec,
    nodes: Vec<cairn_node::RunningNode>,
}

/// Data dirs, identities and the spec `name` naming `n` nodes under `dir` as its committee,
/// with these epoch and proposer timeouts and `anchor` (none when `None`).
pub(crate) fn committee_spec(
    dir: &std::path::Path,
    name: &str,
    n: usize,
    (epoch_ms, proposer_timeout_ms): (u64, u64),
    anchor: Option<cairn_node::anchor::AnchorSpec>,
) -> (
    Vec<std::path::PathBuf>,
    Vec<NodeId>,
    cairn_node::config::NetworkSpec,
) {
    use cairn_node::anchor::CheckpointSpec;

    let dirs: Vec<_> = (0..n).map(|i| dir.join(format!("node{i}"))).collect();
    let ids: Vec<NodeId> = dirs
        .iter()
        .map(|d| cairn_node::identity::prepare_identity(d).unwrap())
        .collect();
    let mut spec = cairn_node::testing::spec(name);
    spec.checkpoints = CheckpointSpec {
        epoch_ms,
        proposer_timeout_ms,
        committee: ids.iter().map(ToString::to_string).collect(),
        committee_size: n as u32,
        ..CheckpointSpec::default()
    };
    if let Some(anchor) = anchor {
        spec.anchor = anchor;
    }
    (dirs, ids, spec)
}

/// Starts `n` nodes named in the spec `name` as its committee (see [`committee_spec`]).
async fn committee(
    dir: &std::path::Path,
    name: &str,
    n: usize,
    timing: (u64, u64),
    anchor: Option<cairn_node::anchor::AnchorSpec>,
) -> Committee {
    use cairn_node::testing;

    let (dirs, ids, spec) = committee_spec(dir, name, n, timing, anchor);
    let mut nodes = Vec::new();
    let mut bootstrap = Vec::new();
    for d in &dirs {
        let node = testing::start(d, &spec, testing::cpu_only(), bootstrap.clone())
            .await
            .unwrap();
        if bootstrap.is_empty() {
            bootstrap = testing::address(node.node()).await.into_iter().collect();
        }
        nodes.push(node);
    }
    Committee {
        dirs,
        ids,
        spec,
        nodes,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn seven_nodes_finalise_and_anchor_identical_checkpoints() {
    use cairn_node::checkpoints::CheckpointFault;
    use cairn_node::config::network_rules;
    use cairn_node::testing;
    use std::time::Duration;

    let dir = tempfile::tempdir().unwrap();
    let chain = SimulatedChain::start([3; 32]).await.unwrap();
    chain.mine(5);
    let anchor = chain.anchor_spec(1);
    let Committee {
        dirs,
        ids,
        spec,
        mut nodes,
    } = committee(dir.path(), "ckpt-seven", 7, (1_500, 2_000), Some(anchor)).await;
    let mut sorted = ids.clone();
    sorted.sort();
    // The first proposer of epoch 0 goes silent; another member signs a different root.
    let silent = sorted[0];
    let liar = sorted[3];
    let index = |id: NodeId| ids.iter().position(|i| *i == id).unwrap();
    nodes[index(silent)]
        .node()
        .checkpoints()
        .set_fault(CheckpointFault::Silent);
    nodes[index(liar)]
        .node()
        .checkpoints()
        .set_fault(CheckpointFault::WrongRoot);
    let requester = nodes[index(sorted[6])].node().clone();
    crate::harness::wait_for("all adverts", Duration::from_secs(30), || async {
        (requester.adverts().count() == 7).then_some(())
    })
    .await;
    one_job(&requester, 1).await;

    // Every node finalises the same checkpoints, until one covers the job's verdict.
    let covered = |n: &cairn_node::RunningNode| {
        n.node()
            .checkpoints()
            .chain()
            .iter()
            .any(|c| c.checkpoint.leaf_count > 0)
    };
    for n in &nodes {
        crate::harness::wait_for(
            "a checkpoint with the verdict",
            Duration::from_secs(120),
            || async {
                (covered(n) && n.node().checkpoints().counts().finalised >= 3).then_some(())
            },
        )
        .await;
    }
    let shortest = nodes
        .iter()
        .map(|n| n.node().checkpoints().chain().len())
        .min()
        .unwrap();
    let reference = nodes[0].node().checkpoints().chain();
    for n in &nodes {
        let chain = n.node().checkpoints().chain();
        for e in 0..shortest {
            assert_eq!(
                chain[e].checkpoint, reference[e].checkpoint,
                "epoch {e} differs"
            );
        }
    }
    // The silent proposer was replaced; the liar's votes never counted.
    assert_ne!(reference[0].checkpoint.proposer, silent);
    for c in &reference {
        assert_eq!(c.votes.len(), 5, "threshold 5 of 7");
        for v in &c.votes {
            assert_ne!(v.signer, liar, "a vote on another root was counted");
            assert_ne!(v.signer, silent);
        }
    }
    let ignored: u64 = nodes
        .iter()
        .map(|n| {
            n.node()
                .metrics()
                .rejections("checkpoint_vote", "other_checkpoint")
        })
        .sum();
    assert!(ignored > 0, "votes on another root are counted as ignored");

    // An anchored proof of a provider's score verifies offline against the spec.
    let epoch = reference
        .iter()
        .position(|c| c.checkpoint.leaf_count > 0)
        .unwrap() as u64;
    let table = requester.verdicts().table();
    let (peer, standing) = table.iter().next().map(|(p, s)| (*p, *s)).unwrap();
    let holder = crate::harness::wait_for("an anchored proof", Duration::from_secs(60), || async {
        nodes
            .iter()
            .find(|n| n.node().checkpoints().prove(&peer, Some(epoch)).is_ok())
    })
    .await;
    let proof = holder
        .node()
        .checkpoints()
        .prove(&peer, Some(epoch))
        .unwrap();
    let verified = proof::verify(&proof, &network_rules(&spec).unwrap()).unwrap();
    assert_eq!(
        (verified.leaf.peer, verified.leaf.score),
        (peer, standing.score)
    );
    assert_eq!(verified.anchor.unwrap().chain, "simulated");
    // The same through the CLI: list, prove, then verify offline against the spec file.
    let holder_dir = dirs[index(holder.node().node_id())].clone();
    let spec_file = dir.path().join("spec.toml");
    std::fs::write(&spec_file, toml::to_string(&spec).unwrap()).unwrap();
    let out_file = dir.path().join("proof.bin");
    let (peer_hex, epoch_text) = (peer.to_string(), epoch.to_string());
    let expected_score = standing.score;
    tokio::task::spawn_blocking(move || {
        cli_round_trip(
            &holder_dir,
            &spec_file,
            &out_file,
            &peer_hex,
            &epoch_text,
            expected_score,
        )
    })
    .await
    .unwrap();
    // The proposer anchored, and the others fetched the proof from their view of the chain.
    for n in &nodes {
        crate::harness::wait_for(
            "every node to hold an anchor",
            Duration::from_secs(60),
            || async { (n.node().checkpoints().counts().anchored >= 1).then_some(()) },
        )
        .await;
    }
    // A restarted node reads its chain and anchors back from sled.
    let bootstrap: Vec<String> = testing::address(nodes[0].node())
        .await
        .into_iter()
        .collect();
    let pick = (index(sorted[6]) + 1) % nodes.len();
    let node = nodes.remove(pick);
    let before = node.node().checkpoints().chain();
    let anchored = node.node().checkpoints().counts().anchored;
    node.shutdown().await;
    let again = testing::start(&dirs[pick], &spec, testing::cpu_only(), bootstrap)
        .await
        .unwrap();
    let after = again.node().checkpoints().chain();
    assert_eq!(after[..before.len()], before[..]);
    assert!(again.node().checkpoints().counts().anchored >= anchored);
}

fn cairn(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(args)
        .output()
        .unwrap()
}

fn cli_round_trip(
    data_dir: &std::path::Path,
    spec: &std::path::Path,
    file: &std::path::Path,
    peer: &str,
    epoch: &str,
    score: i64,
) {
    let (data_dir, spec, file) = (
        data_dir.to_str().unwrap(),
        spec.to_str().unwrap(),
        file.to_str().unwrap(),
    );
    let list = cairn(&["--data-dir", data_dir, "checkpoint", "list", "--json"]);
    assert!(list.status.success(), "{list:?}");
    let list: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(list["backend"], "simulated");
    assert!(list["finalised"].as_u64().unwrap() >= 3, "{list}");
    let prove = cairn(&[
        "--data-dir",
        data_dir,
        "checkpoint",
        "prove",
        peer,
        "--epoch",
        epoch,
        "-o",
        file,
    ]);
    assert!(prove.status.success(), "{prove:?}");
    let verify = cairn(&["checkpoint", "verify", file, "--network", spec, "--json"]);
    assert!(verify.status.success(), "{verify:?}");
    let report: serde_json::Value = serde_json::from_slice(&verify.stdout).unwrap();
    assert_eq!(report["score"], score);
    // A network without credits: the proven balance is 0, and shown.
    assert_eq!(report["balance"], 0, "{report}");
    assert_eq!(report["chain"], "simulated");
    assert!(report["depth"].as_u64().unwrap() >= 1);
    // A flipped byte, and the wrong network spec, fail with exit 1 naming the check.
    let mut bytes = std::fs::read(file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(file, &bytes).unwrap();
    let flipped = cairn(&["checkpoint", "verify", file, "--network", spec]);
    assert_eq!(flipped.status.code(), Some(1), "{flipped:?}");
    assert!(String::from_utf8_lossy(&flipped.stderr).contains("check failed"));
    bytes[middle] ^= 0x40;
    std::fs::write(file, &bytes).unwrap();
    let wrong = cairn(&["checkpoint", "verify", file, "--json"]);
    assert_eq!(wrong.status.code(), Some(1), "{wrong:?}");
    let report: serde_json::Value = serde_json::from_slice(&wrong.stdout).unwrap();
    assert_eq!(report["check"], "network_spec", "{report}");
}

/// The same backend against a real `bitcoind -regtest`, when `BITCOIND_EXE` names one.
#[test]
fn bitcoind_backend_anchors_on_a_real_regtest_node() {
    let Some(exe) = std::env::var_os("BITCOIND_EXE") else {
        eprintln!("skipped: set BITCOIND_EXE to a bitcoind binary to run this test");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = std::process::Command::new(exe)
        .arg("-regtest")
        .arg(format!("-datadir={}", dir.path().display()))
        .args([
            "-listen=0",
            "-server=1",
            "-rpcbind=127.0.0.1",
            "-rpcallowip=127.0.0.1",
        ])
        .args([
            "-rpcuser=cairn",
            "-rpcpassword=cairn",
            "-fallbackfee=0.0001",
        ])
        .arg(format!("-rpcport={port}"))
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let backend = BitcoindBackend::new(
        &format!("http://127.0.0.1:{port}/"),
        "cairn",
        "cairn",
        "bitcoin-regtest",
    );
    let ready = (0..300).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(100));
        backend.call("getblockcount", json!([])).is_ok()
    });
    assert!(ready, "bitcoind did not answer RPC");
    backend.call("createwallet", json!(["cairn"])).unwrap();
    let address = backend.call("getnewaddress", json!([])).unwrap();
    // 101 blocks: the first coinbase matures.
    backend
        .call("generatetoaddress", json!([101, address]))
        .unwrap();
    let txid = anchor_and_verify(&backend, &|n| {
        backend
            .call("generatetoaddress", json!([n, address]))
            .unwrap();
    });
    let vsize = txid_vsize(&backend, &txid);
    println!("anchor transaction on bitcoind regtest: {vsize} vB");
    let _ = backend.call("stop", json!([]));
    let _ = child.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn esplora_backend_anchors_and_needs_agreeing_endpoints() {
    let chain = std::sync::Arc::new(SimulatedChain::start([8; 32]).await.unwrap());
    let other = SimulatedChain::start([9; 32]).await.unwrap();
    let url = chain.esplora_url();
    let key = bitcoin::secp256k1::SecretKey::from_slice(&[0x42; 32]).unwrap();
    let backend = EsploraBackend::new(
        vec![url.clone(), url.clone()],
        key,
        bitcoin::Network::Regtest,
        "simulated",
    );
    chain.mine_to(1, &backend.script()); // fund the backend's own key
    let miner = chain.clone();
    let other_url = other.esplora_url();
    tokio::task::spawn_blocking(move || {
        let txid = anchor_and_verify(&backend, &|n| {
            miner.mine(n);
        });
        // A second endpoint that answers differently (another chain) makes proofs fail.
        let split = EsploraBackend::new(
            vec![url, other_url],
            key,
            bitcoin::Network::Regtest,
            "simulated",
        );
        let err = split.proof(&txid, 1).unwrap_err();
        assert!(
            err.to_string().contains("disagree") || err.to_string().contains("404"),
            "{err}"
        );
    })
    .await
    .unwrap();
}

/// While jobs keep ending, checkpoints keep finalising on one chain, and once the stream stops
/// a checkpoint covers every verdict: its leaves equal the live table of every node.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn checkpoints_finalise_while_verdicts_stream_in_and_cover_them_all() {
    use std::time::Duration;

    let dir = tempfile::tempdir().unwrap();
    let nodes = committee(dir.path(), "ckpt-stream", 5, (600, 1_000), None)
        .await
        .nodes;
    crate::harness::wait_for("all adverts", Duration::from_secs(30), || async {
        nodes
            .iter()
            .all(|n| n.node().adverts().count() == 5)
            .then_some(())
    })
    .await;

    // Two requesters, three jobs in flight each, for six seconds (ten epochs).
    let covering = |n: &cairn_node::RunningNode| {
        n.node()
            .checkpoints()
            .chain()
            .iter()
            .filter(|c| c.checkpoint.leaf_count > 0)
            .count()
    };
    let until = std::time::Instant::now() + Duration::from_secs(6);
    let mut streams = Vec::new();
    for (r, requester) in [nodes[0].node().clone(), nodes[1].node().clone()]
        .into_iter()
        .enumerate()
    {
        for lane in 0..3u64 {
            let requester = requester.clone();
            streams.push(tokio::spawn(async move {
                let mut nonce = 1_000_000 * r as u64 + 1_000 * lane;
                while std::time::Instant::now() < until {
                    one_job(&requester, nonce).await;
                    nonce += 1;
                }
            }));
        }
    }
    let mut during = 0;
    while !streams.iter().all(|s| s.is_finished()) {
        during = covering(&nodes[2]);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for s in streams {
        s.await.unwrap();
    }
    assert!(
        during >= 2,
        "checkpoints with verdicts finalised while jobs ran: {during}"
    );

    // After the stream, some checkpoint covers every verdict on every node.
    let live = nodes[0].node().verdicts().table();
    assert!(live.iter().map(|(_, s)| s.agreed).sum::<u64>() >= 6 * 3);
    for n in &nodes {
        assert_eq!(
            n.node().verdicts().table().leaves(),
            live.leaves(),
            "the live tables agree"
        );
    }
    let all_covered = |n: &cairn_node::RunningNode| {
        let epoch = n.node().checkpoints().chain().len().checked_sub(1)? as u64;
        live.iter()
            .all(|(peer, s)| {
                n.node()
                    .checkpoints()
                    .prove(peer, Some(epoch))
                    .is_ok_and(|p| {
                        (p.leaf.score, p.leaf.evidence_count) == (s.score, s.evidence_count())
                    })
            })
            .then_some(())
    };
    for n in &nodes {
        crate::harness::wait_for(
            "a checkpoint covering every verdict",
            Duration::from_secs(30),
            || async { all_covered(n) },
        )
        .await;
    }
    let shortest = nodes
        .iter()
        .map(|n| n.node().checkpoints().chain().len())
        .min()
        .unwrap();
    // Votes may differ (each node keeps the first threshold it saw); checkpoints may not.
    let contents = |n: &cairn_node::RunningNode| -> Vec<_> {
        n.node().checkpoints().chain()[..shortest]
            .iter()
            .map(|c| c.checkpoint.hash().unwrap())
            .collect()
    };
    for n in &nodes {
        assert_eq!(contents(n), contents(&nodes[0]), "one chain");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_member_that_starts_late_catches_up_and_gets_the_chain_going_again() {
    use cairn_node::testing;
    use std::time::Duration;

    // A committee of three (two signatures needed), of which two start.
    let dir = tempfile::tempdir().unwrap();
    let (dirs, ids, spec) = committee_spec(dir.path(), "ckpt-late", 3, (600, 1_000), None);
    let first = testing::start(&dirs[0], &spec, testing::cpu_only(), Vec::new())
        .await
        .unwrap();
    let bootstrap: Vec<String> = testing::address(first.node()).await.into_iter().collect();
    let second = testing::start(&dirs[1], &spec, testing::cpu_only(), bootstrap.clone())
        .await
        .unwrap();
    crate::harness::wait_for("adverts", Duration::from_secs(30), || async {
        (first.node().adverts().count() == 2 && second.node().adverts().count() == 2).then_some(())
    })
    .await;

    // A job gives the table a verdict, and a checkpoint covers it.
    let spec_job = crate::market::wordcount_spec(first.node(), b"late words", 7, 1, 1).await;
    let job = first.node().market().submit(spec_job).unwrap();
    crate::harness::finish(first.node(), &job, Duration::from_secs(60)).await;
    crate::harness::wait_for(
        "a checkpoint with leaves",
        Duration::from_secs(30),
        || async {
            first
                .node()
                .checkpoints()
                .chain()
                .iter()
                .any(|c| c.checkpoint.leaf_count > 0)
                .then_some(())
        },
    )
    .await;

    // The second member stops: one of three cannot finalise anything.
    second.shutdown().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stuck = first.node().checkpoints().chain().len();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        first.node().checkpoints().chain().len(),
        stuck,
        "no quorum, no checkpoint"
    );

    // The third member starts now, having seen none of it.
    let late = testing::start(&dirs[2], &spec, testing::cpu_only(), bootstrap)
        .await
        .unwrap();
    crate::harness::wait_for(
        "the late member to catch up",
        Duration::from_secs(30),
        || async { (late.node().checkpoints().chain().len() >= stuck).then_some(()) },
    )
    .await;
    crate::harness::wait_for("the chain to go on", Duration::from_secs(30), || async {
        (first.node().checkpoints().chain().len() > stuck + 1).then_some(())
    })
    .await;

    // One chain, and the late node holds the same table: it proves the provider's record.
    let chain = |n: &cairn_node::Node| -> Vec<_> {
        n.checkpoints()
            .chain()
            .iter()
            .map(|c| c.checkpoint.hash().unwrap())
            .collect()
    };
    let common = late
        .node()
        .checkpoints()
        .chain()
        .len()
        .min(first.node().checkpoints().chain().len());
    assert!(common > stuck);
    assert_eq!(chain(late.node())[..common], chain(first.node())[..common]);
    // The newest shared epoch whose table both hold (a member keeps the leaves only of
    // checkpoints it recomputed itself; under load the newest may have finalised first).
    let (theirs, mine) = (0..common as u64)
        .rev()
        .find_map(|e| {
            let theirs = first.node().checkpoints().prove(&ids[1], Some(e)).ok()?;
            let mine = late.node().checkpoints().prove(&ids[1], Some(e)).ok()?;
            Some((theirs, mine))
        })
        .expect("both nodes hold the table of some shared checkpoint");
    assert_eq!(
        (mine.leaf.score, mine.leaf.evidence_count),
        (theirs.leaf.score, 1)
    );
}

/// Appends to `chain` a checkpoint signed by every key of a committee that never changes;
/// `branch` makes its content differ from another branch's at the same epoch.
fn extend_chain(
    genesis: &Genesis,
    keys: &[ed25519::Keypair],
    chain: &mut Vec<SignedCheckpoint>,
    branch: u8,
) {
    let epoch = chain.len() as u64;
    let previous = match chain.last() {
        Some(last) => last.checkpoint.hash().unwrap(),
        None => genesis.hash().unwrap(),
    };
    let input = CheckpointInput {
        network: &genesis.network,
        epoch,
        previous,
        committee: &genesis.committee,
        committee_size: genesis.committee.len(),
        verdicts: &[VerdictId::of(&[branch, epoch as u8])],
        proposer: genesis.committee[0],
        now: Timestamp(1_000 * epoch + u64::from(branch)),
    };
    let c = checkpoint::build(&input, &[]).unwrap();
    let votes = keys
        .iter()
        .map(|k| {
            let vote = CheckpointVote {
                checkpoint: c.hash().unwrap(),
                epoch,
                voter: NodeId::from_keypair(k),
            };
            Envelope::seal(&vote, k, &genesis.network_id().unwrap()).unwrap()
        })
        .collect();
    chain.push(SignedCheckpoint {
        checkpoint: c,
        votes,
    });
}

/// Writes `chain` into the store of a node that will start in `dir`, as finalising would.
fn store_chain(dir: &std::path::Path, chain: &[SignedCheckpoint]) {
    use cairn_node::store::{KvStore, SledStore, Tree, encode_value};
    let kv = SledStore::open(&dir.join("db"), 1 << 20).unwrap();
    for signed in chain {
        let mut key = vec![b'c'];
        key.extend(signed.checkpoint.epoch.to_be_bytes());
        kv.put(Tree::Checkpoints, &key, &encode_value(signed).unwrap())
            .unwrap();
    }
    kv.flush().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_on_forked_branches_settle_on_one_chain_and_keep_it() {
    use cairn_node::anchor::CheckpointSpec;
    use cairn_node::testing;

    // Two chains from one genesis that agree on epoch 0 and differ from epoch 1 on, both
    // signed by the whole committee (members that signed two proposals of one epoch).
    let keys: Vec<ed25519::Keypair> = (1..=3).map(keypair).collect();
    let committee: Vec<NodeId> = {
        let mut ids: Vec<NodeId> = keys.iter().map(NodeId::from_keypair).collect();
        ids.sort();
        ids
    };
    let mut spec = testing::spec("ckpt-fork");
    spec.checkpoints = CheckpointSpec {
        // Long epochs: no member runs, so no proposal comes; the test starts the catch-up.
        epoch_ms: 600_000,
        proposer_timeout_ms: 600_000,
        committee: committee.iter().map(ToString::to_string).collect(),
        committee_size: 3,
        ..CheckpointSpec::default()
    };
    let genesis = Genesis {
        network: spec.name.clone(),
        committee,
        committee_size: 3,
        threshold: spec.checkpoints.threshold(),
        credits: None,
    };
    let mut short = Vec::new();
    extend_chain(&genesis, &keys, &mut short, 0);
    let mut long = short.clone();
    extend_chain(&genesis, &keys, &mut short, 1);
    for _ in 0..3 {
        extend_chain(&genesis, &keys, &mut long, 2);
    }
    assert_ne!(short[1].checkpoint, long[1].checkpoint);

    let dir = tempfile::tempdir().unwrap();
    let (a_dir, b_dir) = (dir.path().join("a"), dir.path().join("b"));
    store_chain(&a_dir, &short);
    store_chain(&b_dir, &long);
    let a = testing::start(&a_dir, &spec, testing::cpu_only(), Vec::new())
        .await
        .unwrap();
    let bootstrap: Vec<String> = testing::address(a.node()).await.into_iter().collect();
    let b = testing::start(&b_dir, &spec, testing::cpu_only(), bootstrap.clone())
        .await
        .unwrap();
    assert!(a.node().checkpoints().chain() == short);

    // The node on the longer branch keeps it; the other takes it.
    b.node().checkpoints().catch_up(a.node().peer_id()).await;
    assert!(b.node().checkpoints().chain() == long);
    a.node().checkpoints().catch_up(b.node().peer_id()).await;
    assert!(a.node().checkpoints().chain() == long);

    // Of two branches as long, both nodes settle on the one that branches with the lower
    // hash, whichever asks whom.
    let mut rival = long[..1].to_vec();
    for _ in 0..3 {
        extend_chain(&genesis, &keys, &mut rival, 3);
    }
    let c_dir = dir.path().join("c");
    store_chain(&c_dir, &rival);
    let c = testing::start(&c_dir, &spec, testing::cpu_only(), bootstrap)
        .await
        .unwrap();
    let hashes = |chain: &[SignedCheckpoint]| -> Vec<_> {
        chain.iter().map(|c| c.checkpoint.hash().unwrap()).collect()
    };
    let winner = if hashes(&rival)[1] < hashes(&long)[1] {
        hashes(&rival)
    } else {
        hashes(&long)
    };
    crate::harness::wait_for("adverts", std::time::Duration::from_secs(30), || async {
        [&a, &b, &c]
            .iter()
            .all(|n| n.node().adverts().count() == 3)
            .then_some(())
    })
    .await;
    b.node().checkpoints().catch_up(c.node().peer_id()).await;
    c.node().checkpoints().catch_up(b.node().peer_id()).await;
    assert_eq!(hashes(&b.node().checkpoints().chain()), winner);
    assert_eq!(hashes(&c.node().checkpoints().chain()), winner);

    // The store holds the new chain: a restart reads it back.
    a.shutdown().await;
    let a = testing::start(&a_dir, &spec, testing::cpu_only(), Vec::new())
        .await
        .unwrap();
    assert!(
        a.node().checkpoints().chain() == long,
        "the switch is stored"
    );
}

/// A spec `name` whose first committee is `members` (sorted), with epochs too long for any
/// member to propose during a test, and its genesis.
fn quiet_spec(
    name: &str,
    members: &[NodeId],
    anchor: Option<cairn_node::anchor::AnchorSpec>,
) -> (cairn_node::config::NetworkSpec, Genesis) {
    use cairn_node::anchor::CheckpointSpec;
    let mut committee = members.to_vec();
    committee.sort();
    let mut spec = cairn_node::testing::spec(name);
    spec.checkpoints = CheckpointSpec {
        epoch_ms: 600_000,
        proposer_timeout_ms: 600_000,
        committee: committee.iter().map(ToString::to_string).collect(),
        committee_size: committee.len() as u32,
        ..CheckpointSpec::default()
    };
    if let Some(anchor) = anchor {
        spec.anchor = anchor;
    }
    let genesis = Genesis {
        network: spec.name.clone(),
        committee_size: committee.len() as u32,
        committee,
        threshold: spec.checkpoints.threshold(),
        credits: None,
    };
    (spec, genesis)
}

/// `key`'s proposal of an empty table at `epoch` on top of `previous`, made at `at`.
fn proposal(
    genesis: &Genesis,
    key: &ed25519::Keypair,
    epoch: u64,
    previous: cairn_protocol::CheckpointHash,
    at: Timestamp,
) -> cairn_protocol::Checkpoint {
    let input = CheckpointInput {
        network: &genesis.network,
        epoch,
        previous,
        committee: &genesis.committee,
        committee_size: genesis.committee.len(),
        verdicts: &[],
        proposer: NodeId::from_keypair(key),
        now: at,
    };
    checkpoint::build(&input, &[]).unwrap()
}

fn vote(
    network: &cairn_protocol::NetworkId,
    key: &ed25519::Keypair,
    checkpoint: cairn_protocol::CheckpointHash,
    epoch: u64,
) -> Envelope {
    let vote = CheckpointVote {
        checkpoint,
        epoch,
        voter: NodeId::from_keypair(key),
    };
    Envelope::seal(&vote, key, network).unwrap()
}

/// What `node` does with `envelope` gossiped by one of its peers.
async fn receive(node: &cairn_node::Node, envelope: &Envelope) -> CheckpointGossip {
    node.checkpoints()
        .receive(node.peer_id(), &envelope.to_bytes().unwrap())
        .await
}

fn made_up(i: u32) -> cairn_protocol::CheckpointHash {
    cairn_protocol::CheckpointHash(blake3::hash(&i.to_be_bytes()).into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn votes_from_outside_the_committee_or_for_other_epochs_never_fill_the_queue() {
    use CheckpointGossip::{Accept, Ignore, Reject};
    use cairn_node::testing;

    let dir = tempfile::tempdir().unwrap();
    let a_dir = dir.path().join("a");
    let member = keypair(41);
    let a_id = cairn_node::identity::prepare_identity(&a_dir).unwrap();
    let (spec, genesis) = quiet_spec("ckpt-votes", &[a_id, NodeId::from_keypair(&member)], None);
    let a = testing::start(&a_dir, &spec, testing::cpu_only(), Vec::new())
        .await
        .unwrap();
    let node = a.node();
    let p = proposal(
        &genesis,
        &member,
        0,
        genesis.hash().unwrap(),
        cairn_node::now(),
    );
    let hash = p.hash().unwrap();

    // Outsiders vote for made-up checkpoints: refused before they queue.
    for i in 0..1_100 {
        let outsider = ed25519::Keypair::generate();
        assert_eq!(
            receive(node, &vote(node.network(), &outsider, made_up(i), 0)).await,
            Reject("not_member")
        );
    }
    // The other member's early vote still queues; it cannot fill the queue itself, and votes
    // for other epochs are ignored.
    assert_eq!(
        receive(node, &vote(node.network(), &member, hash, 0)).await,
        Accept
    );
    assert_eq!(
        receive(node, &vote(node.network(), &member, made_up(1), 0)).await,
        Accept
    );
    assert_eq!(
        receive(node, &vote(node.network(), &member, made_up(2), 0)).await,
        Ignore("too_many_pending")
    );
    assert_eq!(
        receive(node, &vote(node.network(), &member, made_up(3), 5)).await,
        Ignore("other_epoch")
    );
    let m = node.metrics();
    assert_eq!(m.rejections("checkpoint", "not_member"), 1_100);
    assert_eq!(m.rejections("checkpoint", "other_epoch"), 1);

    // The proposal comes: this node agrees, and its vote with the queued one makes it final.
    let signed = Envelope::seal(&p, &member, node.network()).unwrap();
    assert_eq!(receive(node, &signed).await, Accept);
    crate::harness::wait_for(
        "the checkpoint",
        std::time::Duration::from_secs(10),
        || async { (node.checkpoints().chain().len() == 1).then_some(()) },
    )
    .await;
    let signers: Vec<NodeId> = node.checkpoints().chain()[0]
        .votes
        .iter()
        .map(|v| v.signer)
        .collect();
    assert!(signers.contains(&NodeId::from_keypair(&member)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proposals_are_checked_before_they_start_anything() {
    use CheckpointGossip::{Ignore, Reject};
    use cairn_node::testing;

    let dir = tempfile::tempdir().unwrap();
    let a_dir = dir.path().join("a");
    let member = keypair(42);
    let a_id = cairn_node::identity::prepare_identity(&a_dir).unwrap();
    let (spec, genesis) = quiet_spec(
        "ckpt-proposals",
        &[a_id, NodeId::from_keypair(&member)],
        None,
    );
    let a = testing::start(&a_dir, &spec, testing::cpu_only(), Vec::new())
        .await
        .unwrap();
    let node = a.node();
    let m = node.metrics();
    let now = cairn_node::now();
    let outsider = ed25519::Keypair::generate();
    let seal = |c: &cairn_protocol::Checkpoint, key: &ed25519::Keypair| {
        Envelope::seal(c, key, node.network()).unwrap()
    };

    // An outsider's proposal far ahead of this node's chain: ignored (not forwarded), and it
    // starts no catch-up.
    let ahead = proposal(&genesis, &outsider, 7, made_up(7), now);
    assert_eq!(
        receive(node, &seal(&ahead, &outsider)).await,
        Ignore("other_epoch")
    );
    assert_eq!(m.rejections("checkpoint_sync", "unknown_proposer"), 1);
    // A member's is ignored too, and starts one catch-up per peer and interval.
    let ahead = proposal(&genesis, &member, 7, made_up(7), now);
    assert_eq!(
        receive(node, &seal(&ahead, &member)).await,
        Ignore("other_epoch")
    );
    let again = proposal(&genesis, &member, 8, made_up(8), now);
    assert_eq!(
        receive(node, &seal(&again, &member)).await,
        Ignore("other_epoch")
    );
    assert_eq!(m.rejections("checkpoint_sync", "unknown_proposer"), 1);
    assert_eq!(m.rejections("checkpoint_sync", "rate_limited"), 1);

    // For this epoch: from the future, another network, or an outsider, all refused.
    let previous = genesis.hash().unwrap();
    let future = proposal(&genesis, &member, 0, previous, now.plus_ms(3_600_000));
    assert_eq!(
        receive(node, &seal(&future, &member)).await,
        Reject("future")
    );
    let mut elsewhere = proposal(&genesis, &member, 0, previous, now);
    elsewhere.network = "another-network".into();
    assert_eq!(
        receive(node, &seal(&elsewhere, &member)).await,
        Reject("wrong_network")
    );
    let usurper = proposal(&genesis, &outsider, 0, previous, now);
    assert_eq!(
        receive(node, &seal(&usurper, &outsider)).await,
        Reject("not_proposer")
    );
    assert!(node.checkpoints().chain().is_empty());
}

/// Broadcasts anchors of `payloads` on `chain` through its wallet and mines `blocks` on top.
async fn anchor_on(
    chain: &std::sync::Arc<SimulatedChain>,
    payloads: Vec<AnchorPayload>,
    blocks: u32,
) -> Vec<(bitcoin::Txid, cairn_protocol::proof::AnchorProof)> {
    let chain = chain.clone();
    tokio::task::spawn_blocking(move || {
        let backend =
            BitcoindBackend::new(&chain.url(), chain.user(), chain.password(), "simulated");
        let txids: Vec<_> = payloads
            .iter()
            .map(|p| backend.broadcast(p).unwrap().unwrap())
            .collect();
        chain.mine(blocks);
        txids
            .into_iter()
            .map(|t| (t, backend.proof(&t, blocks).unwrap().unwrap()))
            .collect()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anchor_receipts_are_checked_before_they_mark_an_epoch() {
    use CheckpointGossip::{Accept, Reject};
    use bitcoin::hashes::Hash;
    use cairn_node::testing;

    let chain = std::sync::Arc::new(SimulatedChain::start([5; 32]).await.unwrap());
    chain.mine(3);
    let keys: Vec<ed25519::Keypair> = (1..=3).map(keypair).collect();
    let ids: Vec<NodeId> = keys.iter().map(NodeId::from_keypair).collect();
    let (spec, genesis) = quiet_spec("ckpt-receipts", &ids, Some(chain.anchor_spec(1)));
    let mut held = Vec::new();
    extend_chain(&genesis, &keys, &mut held, 0);
    let hash = held[0].checkpoint.hash().unwrap();
    let dir = tempfile::tempdir().unwrap();
    store_chain(dir.path(), &held);
    // One transaction anchors the checkpoint, another anchors something else.
    let anchors = anchor_on(
        &chain,
        vec![
            AnchorPayload {
                epoch: 0,
                checkpoint: hash,
            },
            AnchorPayload {
                epoch: 0,
                checkpoint: made_up(0),
            },
        ],
        1,
    )
    .await;
    let (good, bad) = (anchors[0].0, anchors[1].0);
    let a = testing::start(dir.path(), &spec, testing::cpu_only(), Vec::new())
        .await
        .unwrap();
    let node = a.node();
    let receipt = |key: &ed25519::Keypair, txid: bitcoin::Txid, chain: &str| {
        let r = cairn_protocol::AnchorReceipt {
            checkpoint: hash,
            epoch: 0,
            chain: chain.into(),
            txid: txid.to_byte_array(),
            block_hash: [0; 32],
            height: 0,
            anchored_by: NodeId::from_keypair(key),
        };
        Envelope::seal(&r, key, node.network()).unwrap()
    };

    // An outsider's receipt, even for the real anchor, is refused before any fetch.
    let outsider = ed25519::Keypair::generate();
    assert_eq!(
        receive(node, &receipt(&outsider, good, "simulated")).await,
        Reject("not_member")
    );
    assert_eq!(
        receive(node, &receipt(&keys[0], good, "bitcoin")).await,
        Reject("wrong_chain")
    );
    // A member's receipt for a transaction that anchors something else: fetched, refused.
    assert_eq!(
        receive(node, &receipt(&keys[0], bad, "simulated")).await,
        Accept
    );
    let m = node.metrics();
    crate::harness::wait_for(
        "the bad receipt",
        std::time::Duration::from_secs(10),
        || async { (m.rejections("anchor_receipt", "op_return_payload") == 1).then_some(()) },
    )
    .await;
    assert_eq!(node.checkpoints().counts().anchored, 0);
    assert!(node.checkpoints().anchor_proof(0).is_none());

    // The real receipt is still taken.
    assert_eq!(
        receive(node, &receipt(&keys[1], good, "simulated")).await,
        Accept
    );
    crate::harness::wait_for("the anchor", std::time::Duration::from_secs(10), || async {
        (node.checkpoints().counts().anchored == 1).then_some(())
    })
    .await;
    let kept = node.checkpoints().anchor_proof(0).unwrap();
    assert_eq!(kept.transaction, anchors[0].1.transaction);
}

/// Writes an anchor proof of `epoch` into the store of a node that will start in `dir`.
fn store_anchor(dir: &std::path::Path, epoch: u64, anchor: &cairn_protocol::proof::AnchorProof) {
    use cairn_node::store::{KvStore, SledStore, Tree, encode_value};
    let kv = SledStore::open(&dir.join("db"), 1 << 20).unwrap();
    let mut key = vec![b'a'];
    key.extend(epoch.to_be_bytes());
    kv.put(Tree::Checkpoints, &key, &encode_value(anchor).unwrap())
        .unwrap();
    kv.flush().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anchored_checkpoint_is_final_whatever_the_length_of_another_branch() {
    use cairn_node::testing;

    let chain = std::sync::Arc::new(SimulatedChain::start([6; 32]).await.unwrap());
    chain.mine(2);
    let keys: Vec<ed25519::Keypair> = (1..=3).map(keypair).collect();
    let ids: Vec<NodeId> = keys.iter().map(NodeId::from_keypair).collect();
    let (spec, genesis) = quiet_spec("ckpt-final", &ids, Some(chain.anchor_spec(1)));
    // This node's chain, anchored at epoch 1; a longer branch from epoch 1 (at the anchor);
    // a longer branch from epoch 2 (after it).
    let mut base = Vec::new();
    extend_chain(&genesis, &keys, &mut base, 0);
    extend_chain(&genesis, &keys, &mut base, 0);
    let mut mine = base.clone();
    extend_chain(&genesis, &keys, &mut mine, 1);
    let mut early = base[..1].to_vec();
    for _ in 0..4 {
        extend_chain(&genesis, &keys, &mut early, 2);
    }
    let mut late = base.clone();
    for _ in 0..2 {
        extend_chain(&genesis, &keys, &mut late, 3);
    }
    let payload = AnchorPayload {
        epoch: 1,
        checkpoint: base[1].checkpoint.hash().unwrap(),
    };
    let anchor = anchor_on(&chain, vec![payload], 1).await.remove(0).1;

    let dir = tempfile::tempdir().unwrap();
    let dirs: Vec<_> = ["a", "b", "c"].iter().map(|d| dir.path().join(d)).collect();
    store_chain(&dirs[0], &mine);
    store_anchor(&dirs[0], 1, &anchor);
    store_chain(&dirs[1], &early);
    store_chain(&dirs[2], &late);
    let a = testing::start(&dirs[0], &spec, testing::cpu_only(), Vec::new())
        .await
        .unwrap();
    let bootstrap: Vec<String> = testing::address(a.node()).await.into_iter().collect();
    let b = testing::start(&dirs[1], &spec, testing::cpu_only(), bootstrap.clone())
        .await
        .unwrap();
    let c = testing::start(&dirs[2], &spec, testing::cpu_only(), bootstrap)
        .await
        .unwrap();
    assert!(a.node().checkpoints().chain() == mine);
    assert_eq!(a.node().checkpoints().counts().anchored, 1);
    crate::harness::wait_for("adverts", std::time::Duration::from_secs(30), || async {
        (a.node().adverts().count() == 3).then_some(())
    })
    .await;

    // The longer branch that replaces the anchored checkpoint is refused.
    a.node().checkpoints().catch_up(b.node().peer_id()).await;
    assert!(
        a.node().checkpoints().chain() == mine,
        "an anchored checkpoint was replaced"
    );
    assert_eq!(
        a.node().metrics().rejections("checkpoint_sync", "anchored"),
        1
    );
    // A better branch after it is still taken.
    a.node().checkpoints().catch_up(c.node().peer_id()).await;
    assert!(a.node().checkpoints().chain() == late);
    assert_eq!(a.node().checkpoints().counts().anchored, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restarted_member_votes_again() {
    use cairn_node::testing;
    use std::time::Duration;

    // A committee of three (two signatures needed) finalises a checkpoint with a verdict.
    let dir = tempfile::tempdir().unwrap();
    let Committee {
        dirs,
        ids,
        spec,
        mut nodes,
    } = committee(dir.path(), "ckpt-restart", 3, (600, 1_000), None).await;
    crate::harness::wait_for("adverts", Duration::from_secs(30), || async {
        nodes
            .iter()
            .all(|n| n.node().adverts().count() == 3)
            .then_some(())
    })
    .await;
    let first = nodes[0].node().clone();
    let job_spec = crate::market::wordcount_spec(&first, b"restart words", 11, 1, 1).await;
    let job = first.market().submit(job_spec).unwrap();
    crate::harness::finish(&first, &job, Duration::from_secs(60)).await;
    // The verdict is applied here just after the job ends (its own task), so wait for it.
    let peer = crate::harness::wait_for("the verdict", Duration::from_secs(10), || async {
        first
            .verdicts()
            .table()
            .iter()
            .next()
            .map(|(peer, _)| *peer)
    })
    .await;
    // The member that will restart holds the table of its last checkpoint.
    crate::harness::wait_for(
        "a checkpoint with the verdict on every member",
        Duration::from_secs(30),
        || async {
            nodes
                .iter()
                .all(|n| n.node().checkpoints().prove(&peer, None).is_ok())
                .then_some(())
        },
    )
    .await;

    // One member stops for good; another restarts, so checkpoints need its vote.
    nodes.remove(1).shutdown().await;
    let restarted = nodes.remove(1);
    restarted.shutdown().await;
    let bootstrap: Vec<String> = testing::address(&first).await.into_iter().collect();
    let again = testing::start(&dirs[2], &spec, testing::cpu_only(), bootstrap)
        .await
        .unwrap();
    let len = first.checkpoints().chain().len();
    crate::harness::wait_for("the chain to go on", Duration::from_secs(30), || async {
        (first.checkpoints().chain().len() >= len + 2).then_some(())
    })
    .await;
    let last = first.checkpoints().chain().last().unwrap().clone();
    assert!(
        last.votes.iter().any(|v| v.signer == ids[2]),
        "the restarted member signed"
    );
    assert!(again.node().checkpoints().prove(&peer, None).is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_chain_is_checked_again_at_start() {
    use cairn_node::testing;

    let keys: Vec<ed25519::Keypair> = (1..=3).map(keypair).collect();
    let ids: Vec<NodeId> = keys.iter().map(NodeId::from_keypair).collect();
    let (spec, genesis) = quiet_spec("ckpt-stored", &ids, None);
    let mut chain = Vec::new();
    for _ in 0..3 {
        extend_chain(&genesis, &keys, &mut chain, 0);
    }
    // Epoch 1 lost its signatures on disk: it and what follows are dropped, not trusted.
    let mut damaged = chain.clone();
    damaged[1].votes.truncate(1);
    let dir = tempfile::tempdir().unwrap();
    store_chain(dir.path(), &damaged);
    let a = testing::start(dir.path(), &spec, testing::cpu_only(), Vec::new())
        .await
        .unwrap();
    assert!(a.node().checkpoints().chain() == chain[..1]);
}
