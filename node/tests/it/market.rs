//! A job submitted on one node is auctioned, run by several providers, verified, and its
//! verdict spreads.

use std::time::Duration;

use cairn_node::node::now;
use cairn_protocol::requester::Phase;
use cairn_protocol::{JobSpec, Limits, Outcome, Requirements};
use cairn_runtime::{Job, Sandbox, SandboxConfig};

use crate::harness::{cluster, cpu_only, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_with_three_replicas_is_accepted_and_matches_a_local_run() {
    let c = cluster("market-happy", (0..5).map(|_| cpu_only()).collect()).await;
    let requester = c.nodes[0].node();
    for n in &c.nodes {
        wait_for("all adverts", Duration::from_secs(30), || async {
            (n.node().advert_count() == 5).then_some(())
        })
        .await;
    }
    let wasm = cairn_runtime::guests::bytes("wordcount").unwrap();
    let input = b"the quick brown fox jumps over the lazy dog\nand again\n".to_vec();
    let t = now();
    let spec = JobSpec {
        requester: requester.node_id(),
        nonce: 1,
        module: requester.put_blob(wasm.clone()).await.unwrap(),
        input: requester.put_blob(input.clone()).await.unwrap(),
        args: vec![],
        limits: Limits {
            fuel: 100_000_000,
            memory_bytes: 64 << 20,
            wall_time_ms: 10_000,
            max_output_bytes: 1 << 20,
        },
        requirements: Requirements::default(),
        replicas: 3,
        quorum: 2,
        max_replicas: 5,
        max_price: 1_000,
        bid_deadline: t.plus_ms(2_000),
        deadline: t.plus_ms(60_000),
    };
    let id = requester.submit_job(spec).unwrap();
    wait_for("the job to finish", Duration::from_secs(60), || async {
        requester.job_finished(&id).unwrap_or(false).then_some(())
    })
    .await;
    let view = requester.job(&id).unwrap();
    let Phase::Accepted(Outcome::Output { digest, .. }) = view.job.phase() else {
        panic!(
            "job ended as {:?}; log: {:#?}",
            view.job.phase(),
            view.job.log()
        );
    };
    assert_eq!(view.output, Some(*digest), "{:?}", view.output_error);
    let output = requester.blobs().get_verified(digest).unwrap().unwrap();

    let local = tokio::task::spawn_blocking(move || {
        let sandbox = Sandbox::new(SandboxConfig::default()).unwrap();
        sandbox
            .run_wasm_blocking(&wasm, &Job::new(id, input))
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(
        output, local.output,
        "the accepted output is what a local run gives"
    );
    assert_eq!(view.job.providers().len(), 3);

    // The verdict reaches every node, and each credits the providers that agreed.
    for n in &c.nodes {
        wait_for(
            "the verdict everywhere",
            Duration::from_secs(20),
            || async {
                let table = n.node().reputation();
                let credited = view
                    .job
                    .providers()
                    .iter()
                    .filter(|p| table.standing(p).agreed == 1)
                    .count();
                (credited >= 2).then_some(())
            },
        )
        .await;
    }
}
