//! Job data on providers: cached copies make room for new jobs within a quota per requester,
//! and a job's module, input and output go only to the job's parties.

use std::path::Path;
use std::time::Duration;

use cairn_node::config::NodeConfig;
use cairn_node::market::{FaultInjection, JobView};
use cairn_node::{Node, RunningNode, now, testing};
use cairn_protocol::requester::Phase;
use cairn_protocol::{BlobHash, GpuRequirement, JobId, JobSpec, Limits, Outcome, Requirements};
use libp2p::PeerId;

use crate::harness::{cpu_only, h100, wait_for};

/// Nodes on one network: for each entry, a GPU provider (`true`, with its config changed by
/// `provider`) or a CPU-only node that never wins a GPU job. All bootstrap from the first.
pub(crate) async fn start_nodes(
    dir: &Path,
    name: &str,
    gpu: &[bool],
    provider: impl Fn(&mut NodeConfig),
) -> Vec<RunningNode> {
    let spec = testing::spec(name);
    let mut nodes: Vec<RunningNode> = Vec::new();
    let mut bootstrap = Vec::new();
    for (i, &is_gpu) in gpu.iter().enumerate() {
        let hardware = if is_gpu { h100() } else { cpu_only() };
        let mut options = testing::options(
            &dir.join(format!("node{i}")),
            &spec,
            hardware,
            bootstrap.clone(),
            FaultInjection::None,
        );
        if is_gpu {
            provider(&mut options.config);
        }
        let node = Node::start(options).await.unwrap();
        if i == 0 {
            bootstrap = testing::address(node.node()).await.into_iter().collect();
        }
        nodes.push(node);
    }
    for n in &nodes {
        wait_for("all adverts", Duration::from_secs(30), || async {
            (n.node().adverts().count() == gpu.len()).then_some(())
        })
        .await;
    }
    nodes
}

/// A wordcount job over `input` (module and input kept private on the requester) that only
/// GPU nodes can run.
pub(crate) async fn gpu_job(
    requester: &Node,
    input: &[u8],
    nonce: u64,
    replicas: u8,
    quorum: u8,
) -> JobSpec {
    let wasm = cairn_runtime::guests::bytes("wordcount").unwrap();
    let t = now();
    JobSpec {
        requester: requester.node_id(),
        nonce,
        module: requester.blobs().save(wasm).await.unwrap(),
        input: requester.blobs().save(input.to_vec()).await.unwrap(),
        args: vec![],
        limits: Limits {
            fuel: 2_000_000_000,
            memory_bytes: 64 << 20,
            wall_time_ms: 20_000,
            max_output_bytes: 1 << 20,
        },
        requirements: Requirements {
            gpu: Some(GpuRequirement {
                min_vram_bytes: 40_000_000_000,
                min_compute_capability: None,
            }),
            ..Requirements::default()
        },
        replicas,
        quorum,
        max_replicas: replicas + 2,
        max_price: 1_000_000,
        bid_deadline: t.plus_ms(2_000),
        deadline: t.plus_ms(60_000),
    }
}

/// Submits `spec`, waits until it is finished and accepted with an output; returns the view
/// and the output's hash.
pub(crate) async fn run_to_acceptance(
    requester: &Node,
    spec: JobSpec,
) -> (JobId, JobView, BlobHash) {
    let id = requester.market().submit(spec).unwrap();
    wait_for("the job to finish", Duration::from_secs(60), || async {
        requester
            .market()
            .job_finished(&id)
            .unwrap_or(false)
            .then_some(())
    })
    .await;
    let view = requester.market().job(&id).unwrap();
    let Phase::Accepted(Outcome::Output { digest, .. }) = view.job.phase() else {
        panic!(
            "job ended as {:?}; log: {:#?}",
            view.job.phase(),
            view.job.log()
        );
    };
    let digest = *digest;
    assert_eq!(view.output, Some(digest), "{:?}", view.output_error);
    (id, view, digest)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_filled_by_one_requesters_jobs_still_runs_another_requesters_job() {
    let dir = tempfile::tempdir().unwrap();
    // The provider's store holds five of these inputs; one requester may use half of it.
    let nodes = start_nodes(dir.path(), "blobs-evict", &[false, true, false], |c| {
        c.blob_store_bytes = 1_000_000;
        c.max_blob_bytes = 300_000;
        c.blob_quota_percent = 50;
    })
    .await;
    let (flooder, provider, other) = (nodes[0].node(), nodes[1].node(), nodes[2].node());
    let store = provider.blobs().local();

    let mut inputs = Vec::new();
    for round in 0..6u64 {
        let input = format!("round {round} brings many words ")
            .repeat(6_000)
            .into_bytes();
        let spec = gpu_job(flooder, &input, round, 1, 1).await;
        inputs.push(spec.input);
        run_to_acceptance(flooder, spec).await;
        assert!(
            store.cached_bytes_of(&flooder.node_id()) <= 500_000,
            "round {round}: one requester stays within its quota"
        );
    }
    assert!(store.evicted() > 0, "old cached copies made room");
    assert!(
        !store.contains(&inputs[0]).unwrap(),
        "the oldest input went first"
    );

    let input = b"another requester's words still count".repeat(5_000);
    let spec = gpu_job(other, &input, 1, 1, 1).await;
    let theirs = spec.input;
    run_to_acceptance(other, spec).await;
    assert!(store.contains(&theirs).unwrap());
    assert!(store.used_bytes() <= 1_000_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_outside_a_job_gets_no_byte_of_its_module_input_or_output() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = start_nodes(
        dir.path(),
        "blobs-private",
        &[false, true, true, false],
        |_| {},
    )
    .await;
    let (requester, outsider) = (nodes[0].node(), nodes[3].node());
    let providers = [nodes[1].node(), nodes[2].node()];
    let spec = gpu_job(
        requester,
        &b"words only its parties read ".repeat(100),
        1,
        2,
        2,
    )
    .await;
    let (module, input) = (spec.module, spec.input);
    let (_, view, output) = run_to_acceptance(requester, spec).await;
    // Accepted by a quorum of two: both awarded providers fetched module and input from the
    // requester, which fetched the output from one of them.
    assert_eq!(view.job.providers().len(), 2);
    for p in providers {
        assert!(p.blobs().local().contains(&input).unwrap());
        assert!(p.blobs().local().contains(&output).unwrap());
    }
    assert!(requester.blobs().local().contains(&output).unwrap());

    // The outsider asks every holder for each of them and gets only refusals.
    let holders: Vec<PeerId> = nodes[..3].iter().map(|n| n.node().peer_id()).collect();
    for hash in [module, input, output] {
        let err = outsider
            .blobs()
            .fetch_from(hash, holders.clone())
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string().matches("refused (not a party").count(),
            3,
            "{err}"
        );
        assert!(!outsider.blobs().local().contains(&hash).unwrap());
    }
    for holder in nodes[..3].iter().map(|n| n.node()) {
        assert_eq!(
            holder.metrics().rejections("blob_request", "not_a_party"),
            3
        );
    }

    // The parties still get theirs: a provider the input, the requester the output.
    let again = providers[0]
        .blobs()
        .fetch_from(input, vec![requester.peer_id()])
        .await;
    assert_eq!(BlobHash::of(&again.unwrap()), input);
    let again = requester
        .blobs()
        .fetch_from(output, vec![providers[1].peer_id()])
        .await;
    assert_eq!(BlobHash::of(&again.unwrap()), output);

    // A blob published deliberately stays public.
    let public = requester
        .blobs()
        .store(b"for everyone".to_vec())
        .await
        .unwrap();
    let fetched = outsider
        .blobs()
        .fetch_from(public, vec![requester.peer_id()])
        .await;
    assert_eq!(fetched.unwrap(), b"for everyone");
}
