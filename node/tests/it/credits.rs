//! Credits on a network whose spec allocates them: a job is paid from its requester's balance
//! to the providers that agreed, every node's book agrees, a restart keeps the balances, and a
//! job the requester cannot pay for is refused at submit with what to do.

use std::time::Duration;

use cairn_node::api::wallet::WalletView;
use cairn_node::client::Client;
use cairn_node::market::FaultInjection;
use cairn_node::{Node, NodeError, testing};
use cairn_protocol::requester::Phase;
use cairn_protocol::{NodeId, Outcome};

use crate::harness::{Cluster, cpu_only, finish, wait_for};
use crate::market::wordcount_spec;

const REQUESTER_CREDITS: u64 = 10_000_000;
/// A provider's price per million fuel: the job's 100 million fuel limit costs 100 000.
const PER_MEGA_FUEL: u64 = 1_000;

async fn all_adverts(c: &Cluster) {
    let n = c.nodes.len();
    for node in &c.nodes {
        wait_for("all adverts", Duration::from_secs(30), || async {
            (node.node().adverts().count() == n).then_some(())
        })
        .await;
    }
}

async fn balance_on(node: &Node, peer: NodeId, expected: u64) {
    wait_for("the balance to show", Duration::from_secs(30), || async {
        (node.verdicts().balance(&peer) == Some(expected)).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_is_paid_from_its_requesters_balance_and_every_book_agrees() {
    let dir = tempfile::tempdir().unwrap();
    let balances = [REQUESTER_CREDITS, 0, 0, 0];
    let nodes = testing::credit_cluster(dir.path(), "credits-paid", &balances, PER_MEGA_FUEL)
        .await
        .unwrap();
    let mut c = Cluster::from_nodes(nodes, dir);
    all_adverts(&c).await;
    let requester = c.nodes[0].node();
    let mut spec = wordcount_spec(requester, b"pay for this\nand this\n", 1, 3, 2).await;
    spec.max_price = 1_000_000;
    let id = requester.market().submit(spec).unwrap();
    let view = finish(requester, &id, Duration::from_secs(60)).await;
    assert!(
        matches!(view.job.phase(), Phase::Accepted(Outcome::Output { .. })),
        "{:?}",
        view.job.log()
    );
    let payment = wait_for("the payment", Duration::from_secs(30), || async {
        requester.verdicts().payment_of(&id)
    })
    .await;
    assert_eq!(payment.direction, "paid");
    // Paid for the fuel used, never the price for the limit.
    assert!(
        payment.amount > 0 && payment.amount < 3 * 100_000,
        "{payment:?}"
    );
    let me = requester.node_id();
    let left = REQUESTER_CREDITS - payment.amount;
    assert_eq!(requester.verdicts().balance(&me), Some(left));
    assert_eq!(requester.market().escrowed(), 0, "the escrow returned");

    // Every node's book holds the same balances, and the providers hold what was paid.
    let mut earned = 0;
    for n in &c.nodes {
        balance_on(n.node(), me, left).await;
        let own = n.node().verdicts().balance(&n.node().node_id()).unwrap();
        if n.node().node_id() != me {
            earned += own;
        }
    }
    assert_eq!(
        earned, payment.amount,
        "what the requester paid, the providers got"
    );

    // The wallet route says the same.
    let data_dir = requester.options().data_dir.clone();
    let wallet: WalletView = tokio::task::spawn_blocking(move || {
        Client::from_data_dir(&data_dir)
            .unwrap()
            .get_json("/v1/wallet")
            .unwrap()
    })
    .await
    .unwrap();
    assert!(wallet.enabled);
    assert_eq!((wallet.balance, wallet.escrowed), (left, 0));
    assert!(wallet.payments.iter().any(|p| p.job == id.to_string()));

    // A provider that restarts holds the same balances, without paying twice.
    let provider = c.nodes.remove(1);
    let paid_to = provider.node().node_id();
    let before = provider.node().verdicts().balance(&paid_to).unwrap();
    let provider_dir = provider.node().options().data_dir.clone();
    let bootstrap = vec![testing::address(c.nodes[0].node()).await.unwrap()];
    provider.shutdown().await;
    let spec = testing::spec_with_credits(
        "credits-paid",
        &(0..4u8)
            .map(|i| ([i + 1; 32], balances[usize::from(i)]))
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let mut options = testing::options(
        &provider_dir,
        &spec,
        cpu_only(),
        bootstrap,
        FaultInjection::None,
    );
    options.identity_seed = Some([2; 32]);
    let restarted = Node::start(options).await.unwrap();
    let node = restarted.node();
    assert_eq!(node.verdicts().balance(&paid_to), Some(before));
    assert_eq!(node.verdicts().balance(&me), Some(left));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_its_requester_cannot_pay_for_is_refused_at_submit_saying_why() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = testing::credit_cluster(dir.path(), "credits-poor", &[1_000], PER_MEGA_FUEL)
        .await
        .unwrap();
    let c = Cluster::from_nodes(nodes, dir);
    let node = c.nodes[0].node();
    let mut spec = wordcount_spec(node, b"too dear", 1, 3, 2).await;
    spec.max_price = 1_000_000;
    let err = node.market().submit(spec.clone()).unwrap_err();
    assert!(
        matches!(
            err,
            NodeError::CannotPay {
                balance: 1_000,
                needed: 3_000_000,
                ..
            }
        ),
        "{err}"
    );
    let text = err.to_string();
    for words in [
        "up to 3000000 credits",
        "balance 1000",
        "genesis allocation",
        "--max-price",
    ] {
        assert!(text.contains(words), "{words:?} in {text}");
    }
    // Through the API (what `cairn job submit` shows): 402, with the same words.
    let data_dir = node.options().data_dir.clone();
    let body = serde_json::json!({
        "module": spec.module.to_string(),
        "input": spec.input.to_string(),
        "max_price": 1_000_000,
    });
    let refused = tokio::task::spawn_blocking(move || {
        Client::from_data_dir(&data_dir)
            .unwrap()
            .post_json::<_, serde_json::Value>("/v1/jobs", &body)
            .unwrap_err()
            .to_string()
    })
    .await
    .unwrap();
    for words in [
        "insufficient_credits",
        "HTTP 402",
        "balance 1000",
        "genesis allocation",
    ] {
        assert!(refused.contains(words), "{words:?} in {refused}");
    }
    // Within its means, the same job is taken.
    spec.max_price = 300;
    assert!(node.market().submit(spec).is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_checkpoint_proves_balances_offline_and_the_proof_shows_what_was_paid() {
    use cairn_node::config::{CreditsSpec, GenesisEntry, network_rules};

    let dir = tempfile::tempdir().unwrap();
    let (dirs, ids, mut spec) =
        crate::checkpoints::committee_spec(dir.path(), "credits-ckpt", 4, (600, 1_000), None);
    spec.credits = Some(CreditsSpec {
        genesis: (ids.iter())
            .map(|id| GenesisEntry {
                id: id.to_string(),
                amount: REQUESTER_CREDITS,
            })
            .collect(),
        ..CreditsSpec::default()
    });
    let mut nodes = Vec::new();
    let mut bootstrap = Vec::new();
    for d in &dirs {
        let mut options = testing::options(
            d,
            &spec,
            cpu_only(),
            bootstrap.clone(),
            FaultInjection::None,
        );
        options.config.price.per_mega_fuel = PER_MEGA_FUEL;
        let node = Node::start(options).await.unwrap();
        if bootstrap.is_empty() {
            bootstrap = testing::address(node.node()).await.into_iter().collect();
        }
        nodes.push(node);
    }
    let c = Cluster::from_nodes(nodes, dir);
    all_adverts(&c).await;
    let requester = c.nodes[0].node();
    let mut job = wordcount_spec(requester, b"prove what I paid\n", 1, 2, 2).await;
    job.max_price = 1_000_000;
    let id = requester.market().submit(job).unwrap();
    let payment = wait_for("the payment", Duration::from_secs(60), || async {
        requester.verdicts().payment_of(&id)
    })
    .await;
    let left = REQUESTER_CREDITS - payment.amount;
    let me = requester.node_id();

    // Another node proves the requester's balance from a finalised checkpoint, and the proof
    // verifies offline against the spec alone.
    let prover = c.nodes[2].node();
    let proof = wait_for(
        "a checkpoint covering the payment",
        Duration::from_secs(30),
        || async {
            prover
                .checkpoints()
                .prove(&me, None)
                .ok()
                .filter(|p| p.leaf.balance == left)
        },
    )
    .await;
    let rules = network_rules(&spec).unwrap();
    let verified = cairn_protocol::proof::verify(&proof, &rules).unwrap();
    assert_eq!(verified.leaf.balance, left);
    // A tampered balance fails.
    let mut forged = proof.clone();
    forged.leaf.balance = REQUESTER_CREDITS;
    assert!(cairn_protocol::proof::verify(&forged, &rules).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_faucet_grants_up_to_its_caps_every_node_applies_it_and_no_one_else_can() {
    use cairn_node::config::FaucetSpec;
    use cairn_node::identity::node_id_from_seed;

    let dir = tempfile::tempdir().unwrap();
    let seeds = [[1; 32], [2; 32], [3; 32]];
    let mut spec = testing::spec_with_credits("credits-faucet", &[]).unwrap();
    if let Some(credits) = spec.credits.as_mut() {
        credits.faucet = Some(FaucetSpec {
            id: node_id_from_seed(seeds[0]).unwrap().to_string(),
            per_identity: 5_000,
            total: 8_000,
        });
    }
    let nodes = testing::start_seeded(dir.path(), &spec, &seeds, PER_MEGA_FUEL)
        .await
        .unwrap();
    let mut c = Cluster::from_nodes(nodes, dir);
    all_adverts(&c).await;
    let faucet = c.nodes[0].node();
    let (one, two) = (c.nodes[1].node().node_id(), c.nodes[2].node().node_id());
    // Capped at the per-identity limit, then at what the pool has left. The second grant is
    // issued once every node holds the first: grants issued in the same millisecond replay
    // after a restart in id order, which may not be the order they arrived in.
    assert_eq!(faucet.verdicts().grant(one, 7_000).await.unwrap(), 5_000);
    for n in &c.nodes {
        balance_on(n.node(), one, 5_000).await;
    }
    assert_eq!(faucet.verdicts().grant(two, 7_000).await.unwrap(), 3_000);
    for n in &c.nodes {
        balance_on(n.node(), one, 5_000).await;
        balance_on(n.node(), two, 3_000).await;
        let conserved = n.node().verdicts().with_book(|b| b.check_conservation());
        assert_eq!(conserved, Some(Ok(())));
    }
    let granted = c.nodes[1].node().verdicts().payments();
    assert!(
        granted
            .iter()
            .any(|p| p.direction == "granted" && p.amount == 5_000)
    );

    // Any other node is told it is not the faucet, through the API too.
    let data_dir = c.nodes[1].node().options().data_dir.clone();
    let refused = tokio::task::spawn_blocking(move || {
        let body = cairn_node::api::wallet::GrantRequest {
            recipient: "00".repeat(32),
            amount: 1,
        };
        Client::from_data_dir(&data_dir)
            .unwrap()
            .post_json::<_, serde_json::Value>("/v1/faucet/grants", &body)
            .unwrap_err()
    })
    .await
    .unwrap();
    assert!(refused.to_string().contains("not_the_faucet"), "{refused}");

    // A restarted node holds the grants again.
    let node = c.nodes.remove(2);
    let data_dir = node.node().options().data_dir.clone();
    let bootstrap = vec![testing::address(c.nodes[0].node()).await.unwrap()];
    node.shutdown().await;
    let mut options = testing::options(
        &data_dir,
        &spec,
        cpu_only(),
        bootstrap,
        FaultInjection::None,
    );
    options.identity_seed = Some(seeds[2]);
    let restarted = Node::start(options).await.unwrap();
    assert_eq!(restarted.node().verdicts().balance(&two), Some(3_000));
    assert_eq!(restarted.node().verdicts().balance(&one), Some(5_000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escrow_holds_a_running_jobs_awards_across_a_restart_and_bounds_new_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let balance = 200_000_000;
    let balances = [balance, 0, 0];
    let nodes = testing::credit_cluster(dir.path(), "credits-escrow", &balances, PER_MEGA_FUEL)
        .await
        .unwrap();
    let mut c = Cluster::from_nodes(nodes, dir);
    all_adverts(&c).await;
    let requester = c.nodes.remove(0);
    // A job of several seconds (hashloop, 53 billion fuel units), two replicas at 60 000 000
    // each (60 billion fuel at 1000 per million).
    let mut job = wordcount_spec(requester.node(), b"", 1, 2, 2).await;
    let wasm = cairn_runtime::guests::bytes("hashloop").unwrap();
    let input: Vec<u8> = (0..65_536u32).map(|i| (i * 31 % 251) as u8).collect();
    job.module = requester.node().blobs().put(wasm).await.unwrap();
    job.input = requester.node().blobs().put(input).await.unwrap();
    job.args = vec!["480000".into()];
    job.limits.fuel = 60_000_000_000;
    job.limits.wall_time_ms = 120_000;
    job.deadline = job.deadline.plus_ms(150_000);
    job.max_price = 60_000_000;
    let id = requester.node().market().submit(job.clone()).unwrap();
    wait_for("the awards", Duration::from_secs(30), || async {
        (requester.node().market().escrowed() == 120_000_000).then_some(())
    })
    .await;
    // Another such job could cost 120 000 000, more than the 80 000 000 left available.
    job.nonce = 2;
    let err = requester.node().market().submit(job).unwrap_err();
    assert!(
        matches!(
            err,
            NodeError::CannotPay {
                escrowed: 120_000_000,
                available: 80_000_000,
                ..
            }
        ),
        "{err}"
    );

    // After a restart the running job holds its awards again, read from its durable record.
    let data_dir = requester.node().options().data_dir.clone();
    let bootstrap = vec![testing::address(c.nodes[0].node()).await.unwrap()];
    requester.shutdown().await;
    let seeds: Vec<([u8; 32], u64)> = (0..3u8)
        .map(|i| ([i + 1; 32], balances[usize::from(i)]))
        .collect();
    let spec = testing::spec_with_credits("credits-escrow", &seeds).unwrap();
    let mut options = testing::options(
        &data_dir,
        &spec,
        cpu_only(),
        bootstrap,
        FaultInjection::None,
    );
    options.identity_seed = Some([1; 32]);
    options.config.price.per_mega_fuel = PER_MEGA_FUEL;
    let restarted = Node::start(options).await.unwrap();
    let market = restarted.node().market();
    assert_eq!(market.job_finished(&id), Some(false), "the job still runs");
    assert_eq!(market.escrowed(), 120_000_000);
    assert_eq!(market.escrowed_for(&id), 120_000_000);
}
