//! The [`Testnet`] harness on its own: seeded identities, profiles, crash and restart.

use std::time::Duration;

use cairn_node::market::FaultInjection;
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
    let advert = tn.node(0).unwrap().advert_of(&ids[1]).unwrap();
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
