//! Job data on providers: cached copies make room for new jobs within a quota per requester,
//! and a job's module, input and output go only to the job's parties.

use std::path::Path;
use std::time::Duration;

use cairn_node::config::NodeConfig;
use cairn_node::market::{FaultInjection, JobView};
use cairn_node::{Node, RunningNode, now, testing};
use cairn_protocol::requester::Phase;
use cairn_protocol::seal::OVERHEAD;
use cairn_protocol::{BlobHash, GpuRequirement, JobId, JobSpec, Limits, Outcome, Requirements};
use libp2p::PeerId;

use crate::harness::{cpu_only, finish, h100, wait_for};

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
    let view = finish(requester, &id, Duration::from_secs(60)).await;
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

    let mut first_round = Vec::new();
    for round in 0..6u64 {
        let input = format!("round {round} brings many words ")
            .repeat(6_000)
            .into_bytes();
        let spec = gpu_job(flooder, &input, round, 1, 1).await;
        let module = spec.module;
        run_to_acceptance(flooder, spec).await;
        if round == 0 {
            // The input sealed to the provider and the output sealed to the requester (the
            // module is used again by every round).
            first_round = store.list().unwrap();
            first_round.retain(|h| *h != module);
            assert_eq!(first_round.len(), 2);
        }
        assert!(
            store.cached_bytes_of(&flooder.node_id()) <= 500_000,
            "round {round}: one requester stays within its quota"
        );
    }
    assert!(store.evicted() > 0, "old cached copies made room");
    for old in &first_round {
        assert!(
            !store.contains(old).unwrap(),
            "the oldest copies went first"
        );
    }

    let input = b"another requester's words still count".repeat(5_000);
    let spec = gpu_job(other, &input, 1, 1, 1).await;
    run_to_acceptance(other, spec).await;
    assert!(store.cached_bytes_of(&other.node_id()) > 0);
    assert!(store.used_bytes() <= 1_000_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_sealed_to_its_parties_verifies_by_quorum_and_an_outsider_gets_no_byte_of_it() {
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
    let words = b"words only its parties read ".repeat(100);
    let spec = gpu_job(requester, &words, 1, 2, 2).await;
    let (module, input) = (spec.module, spec.input);
    let (_, view, output) = run_to_acceptance(requester, spec).await;
    let Phase::Accepted(Outcome::Output { size, .. }) = view.job.phase() else {
        unreachable!("run_to_acceptance checks it");
    };
    let plain_output = requester
        .blobs()
        .local()
        .get_verified(&output)
        .unwrap()
        .expect("the requester opened and kept the output");

    // Accepted by a quorum of two, each provider having run the input sealed to it and
    // reported the digest of the plain output, with its own copy sealed to the requester.
    assert_eq!(view.job.providers().len(), 2);
    let sealed_outputs: Vec<BlobHash> = providers
        .iter()
        .map(|p| {
            view.job
                .sealed_output(&p.node_id())
                .expect("a sealed output")
        })
        .collect();
    assert_ne!(sealed_outputs[0], sealed_outputs[1]);
    let mut sealed_inputs = Vec::new();
    for (p, sealed_output) in providers.iter().zip(&sealed_outputs) {
        let store = p.blobs().local();
        assert!(
            !store.contains(&input).unwrap(),
            "no plain input on a provider"
        );
        assert!(
            !store.contains(&output).unwrap(),
            "no plain output on a provider"
        );
        assert_eq!(
            store.size_of(sealed_output).unwrap(),
            Some(*size + OVERHEAD as u64)
        );
        let held: Vec<BlobHash> = store.list().unwrap();
        assert_eq!(held.len(), 3, "module, sealed input and sealed output");
        for hash in held.iter().filter(|h| **h != module) {
            let bytes = store.get_verified(hash).unwrap().unwrap();
            assert_eq!(&bytes[..4], b"CSB1", "only sealed job data at rest");
            for plain in [&words[..], &plain_output[..]] {
                assert!(!bytes.windows(16).any(|w| plain.windows(16).any(|p| p == w)));
            }
        }
        let sealed_input = held
            .iter()
            .find(|h| **h != module && *h != sealed_output)
            .copied()
            .unwrap();
        assert_eq!(
            store.size_of(&sealed_input).unwrap(),
            Some((words.len() + OVERHEAD) as u64)
        );
        sealed_inputs.push(sealed_input);
    }
    assert_ne!(
        sealed_inputs[0], sealed_inputs[1],
        "each provider's own copy"
    );

    // The outsider asks every node of the job for each of its blobs, plain or sealed, and
    // gets nothing: a refusal from each node that holds it.
    let job_nodes: Vec<&Node> = nodes[..3].iter().map(|n| n.node()).collect();
    let holders: Vec<PeerId> = job_nodes.iter().map(|n| n.peer_id()).collect();
    let mut refusals = vec![0u64; 3];
    let every = [module, input, output]
        .into_iter()
        .chain(sealed_inputs.iter().copied())
        .chain(sealed_outputs.iter().copied());
    for hash in every {
        let held_by: Vec<usize> = (0..3)
            .filter(|&i| job_nodes[i].blobs().local().contains(&hash).unwrap())
            .collect();
        assert!(!held_by.is_empty());
        let err = outsider
            .blobs()
            .fetch_from(hash, holders.clone())
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string().matches("refused (not a party").count(),
            held_by.len(),
            "{err}"
        );
        assert!(!outsider.blobs().local().contains(&hash).unwrap());
        for i in held_by {
            refusals[i] += 1;
        }
    }
    for (holder, refused) in job_nodes.iter().zip(refusals) {
        assert_eq!(
            holder.metrics().rejections("blob_request", "not_a_party"),
            refused
        );
    }

    // The parties get what is theirs, and only that: a provider its own sealed input (not
    // the other provider's, nor the input in the clear), the requester each sealed output.
    let mine = providers[0]
        .blobs()
        .fetch_from(sealed_inputs[0], vec![requester.peer_id()])
        .await;
    assert_eq!(BlobHash::of(&mine.unwrap()), sealed_inputs[0]);
    for theirs in [sealed_inputs[1], input] {
        let err = providers[0]
            .blobs()
            .fetch_from(theirs, vec![requester.peer_id()])
            .await
            .unwrap_err();
        assert!(err.to_string().contains("not a party"), "{err}");
    }
    for (p, sealed) in providers.iter().zip(&sealed_outputs) {
        let again = requester
            .blobs()
            .fetch_from(*sealed, vec![p.peer_id()])
            .await;
        assert_eq!(BlobHash::of(&again.unwrap()), *sealed);
    }

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
