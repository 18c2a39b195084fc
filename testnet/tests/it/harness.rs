//! The [`Testnet`] harness on its own: seeded identities, profiles, crash and restart.

use std::time::Duration;

use cairn_node::Node;
use cairn_node::config::VerificationConfig;
use cairn_node::market::FaultInjection;
use cairn_protocol::requester::Phase;
use cairn_protocol::{JobId, JobSpec, Limits, NodeId, Requirements};
use cairn_testnet::{Testnet, TestnetConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_start_with_seeded_keys_and_a_crashed_node_comes_back_with_its_identity() {
    let config = TestnetConfig::new("it-harness", 4)
        .with_seed(42)
        .with_fault(3, FaultInjection::WrongOutput);
    let mut tn = Testnet::start(config.clone()).await.unwrap();
    assert_eq!(tn.len(), 4);
    assert_eq!(tn.fault(3), Some(FaultInjection::WrongOutput));
    assert_eq!(tn.fault(1), Some(FaultInjection::None));
    let ids: Vec<_> = (0..4).map(|i| tn.node_id(i).unwrap()).collect();
    let coverage = tn.wait_for_adverts(Duration::from_secs(30)).await;
    assert_eq!(coverage, 1.0, "every node holds every advert");
    // Profiles come from the mix: some GPU machines, some CPU-only.
    let gpus = (0..4).filter(|i| tn.profile(*i).unwrap().has_gpu()).count();
    assert!((1..4).contains(&gpus), "{gpus} GPU machines of 4");
    let advert = tn.node(0).unwrap().adverts().of(&ids[1]).unwrap();
    assert_eq!(
        advert.gpus.is_empty(),
        !tn.profile(1).unwrap().has_gpu(),
        "the advert carries the simulated profile"
    );

    tn.crash(2).await.unwrap();
    assert!(tn.node(2).is_none());
    assert!(tn.data_dir(2).unwrap().join("db").exists(), "data survives");
    tn.restart(2).await.unwrap();
    assert_eq!(tn.node(2).unwrap().node_id(), ids[2], "same identity");
    tn.shutdown().await;

    // The same seed gives the same identities.
    let kept = tempfile::tempdir().unwrap();
    let again = Testnet::start(config.with_keep(kept.path())).await.unwrap();
    let ids_again: Vec<_> = (0..4).map(|i| again.node_id(i).unwrap()).collect();
    assert_eq!(ids, ids_again);
    again.shutdown().await;
    assert!(
        kept.path().join("node3").join("db").exists(),
        "--keep leaves the data dirs"
    );
}

/// A wordcount job with `replicas` replicas, submitted by `requester`.
async fn wordcount(requester: &Node, nonce: u64, replicas: u8) -> JobId {
    let t = cairn_node::now();
    let wasm = cairn_runtime::guests::bytes("wordcount").unwrap();
    let spec = JobSpec {
        requester: requester.node_id(),
        nonce,
        module: requester.blobs().store(wasm).await.unwrap(),
        input: requester.blobs().store(b"a b c".to_vec()).await.unwrap(),
        args: vec![],
        limits: Limits {
            fuel: 100_000_000,
            memory_bytes: 64 << 20,
            wall_time_ms: 2_000,
            max_output_bytes: 1 << 16,
        },
        requirements: Requirements::default(),
        replicas,
        quorum: replicas / 2 + 1,
        max_replicas: replicas,
        // Each replica's price is escrowed from the requester's genesis credits: a finite
        // maximum (the simulated nodes ask 100 000 for this fuel limit).
        max_price: 1_000_000,
        bid_deadline: t.plus_ms(2_000),
        deadline: t.plus_ms(60_000),
    };
    requester.market().submit(spec).unwrap()
}

/// The providers of `id` once it is accepted (panics if it fails).
async fn accepted_providers(node: &Node, id: &JobId) -> Vec<NodeId> {
    let done = cairn_node::testing::wait_for(Duration::from_secs(60), || async {
        (node.market().job_finished(id) == Some(true)).then_some(())
    })
    .await;
    let view = node.market().job(id).unwrap();
    assert!(
        done.is_some() && matches!(view.job.phase(), Phase::Accepted(_)),
        "{:#?}",
        view.job.log()
    );
    view.job.providers()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_keeps_jobs_on_the_requesters_side_until_it_heals() {
    let config = TestnetConfig::new("it-partition", 6)
        .with_seed(3)
        .with_verification(VerificationConfig::exact());
    let mut tn = Testnet::start(config).await.unwrap();
    assert_eq!(tn.wait_for_adverts(Duration::from_secs(30)).await, 1.0);
    let ids: Vec<NodeId> = (0..6).map(|i| tn.node_id(i).unwrap()).collect();

    tn.partition(&[0, 1, 2]).await.unwrap();
    let id = wordcount(tn.node(0).unwrap(), 1, 2).await;
    let providers = accepted_providers(tn.node(0).unwrap(), &id).await;
    assert!(
        providers.iter().all(|p| ids[1..3].contains(p)),
        "only nodes 1 and 2 are reachable from node 0"
    );

    tn.heal().await.unwrap();
    // Four replicas from five other nodes: at least two from the side that was cut off.
    let id = wordcount(tn.node(0).unwrap(), 2, 4).await;
    let providers = accepted_providers(tn.node(0).unwrap(), &id).await;
    let across = providers.iter().filter(|p| ids[3..].contains(p)).count();
    assert!(across >= 2, "{across} providers from the other side");
    tn.shutdown().await;
}
