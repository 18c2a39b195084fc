//! A job submitted on one node is auctioned, run by several providers, verified, and its
//! verdict spreads.

use std::time::Duration;

use cairn_node::now;
use cairn_protocol::requester::Phase;
use cairn_protocol::{JobSpec, Limits, Outcome, Requirements};
use cairn_runtime::{Job, Sandbox, SandboxConfig};

use cairn_node::market::FaultInjection;
use cairn_node::{Node, testing};
use cairn_protocol::{GpuRequirement, JobId, NodeId};

use crate::harness::{Cluster, cluster, cpu_only, finish, h100, wait_for};

/// A job of the `wordcount` guest over `input`, submitted by `requester`.
pub(crate) async fn wordcount_spec(
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
        module: requester.blobs().put(wasm).await.unwrap(),
        input: requester.blobs().put(input.to_vec()).await.unwrap(),
        args: vec![],
        limits: Limits {
            fuel: 100_000_000,
            memory_bytes: 64 << 20,
            wall_time_ms: 1_000,
            max_output_bytes: 1 << 20,
        },
        requirements: Requirements::default(),
        replicas,
        quorum,
        max_replicas: replicas + 2,
        max_price: 1_000,
        bid_deadline: t.plus_ms(2_000),
        deadline: t.plus_ms(30_000),
    }
}

async fn local_output(input: &[u8], id: JobId) -> Vec<u8> {
    let input = input.to_vec();
    tokio::task::spawn_blocking(move || {
        let wasm = cairn_runtime::guests::bytes("wordcount").unwrap();
        let sandbox = Sandbox::new(SandboxConfig::default()).unwrap();
        sandbox
            .run_wasm_blocking(&wasm, &Job::new(id, input))
            .unwrap()
            .output
    })
    .await
    .unwrap()
}

async fn all_adverts(c: &Cluster) {
    let n = c.nodes.len();
    for node in &c.nodes {
        wait_for("all adverts", Duration::from_secs(30), || async {
            (node.node().adverts().count() == n).then_some(())
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_with_three_replicas_is_accepted_and_matches_a_local_run() {
    let c = cluster("market-happy", (0..5).map(|_| cpu_only()).collect()).await;
    let requester = c.nodes[0].node();
    for n in &c.nodes {
        wait_for("all adverts", Duration::from_secs(30), || async {
            (n.node().adverts().count() == 5).then_some(())
        })
        .await;
    }
    let wasm = cairn_runtime::guests::bytes("wordcount").unwrap();
    let input = b"the quick brown fox jumps over the lazy dog\nand again\n".to_vec();
    let t = now();
    let spec = JobSpec {
        requester: requester.node_id(),
        nonce: 1,
        module: requester.blobs().put(wasm.clone()).await.unwrap(),
        input: requester.blobs().put(input.clone()).await.unwrap(),
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
    let id = requester.market().submit(spec).unwrap();
    let view = finish(requester, &id, Duration::from_secs(60)).await;
    let Phase::Accepted(Outcome::Output { digest, .. }) = view.job.phase() else {
        panic!(
            "job ended as {:?}; log: {:#?}",
            view.job.phase(),
            view.job.log()
        );
    };
    assert_eq!(view.output, Some(*digest), "{:?}", view.output_error);
    let output = requester
        .blobs()
        .local()
        .get_verified(digest)
        .unwrap()
        .unwrap();

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

    // Forged reports are refused and counted: from a node that holds no replica, with a
    // tampered signature, and for a job the requester does not have.
    let outsider = c.nodes.iter().map(|n| n.node()).find(|n| {
        !view.job.providers().contains(&n.node_id()) && n.node_id() != requester.node_id()
    });
    let outsider = outsider.expect("5 nodes, 3 providers and a requester leave one outsider");
    let forge = |job: JobId| {
        let report = cairn_protocol::ResultReport {
            job,
            provider: outsider.node_id(),
            outcome: Outcome::Output {
                digest: *digest,
                size: 1,
            },
            fuel_used: 1,
            price: 1,
            runtime: "test-runtime".into(),
            sealed_output: None,
        };
        let key = cairn_node::identity::load_or_create(
            &outsider.options().data_dir,
            outsider.kv().as_ref(),
            None,
        )
        .unwrap();
        cairn_protocol::Envelope::seal(&report, &key, outsider.network()).unwrap()
    };
    let send = |envelope: cairn_protocol::Envelope| async {
        let request = cairn_node::net::MarketRequest::Report(envelope);
        outsider
            .net()
            .market(requester.peer_id(), request)
            .await
            .unwrap()
    };
    let refused = |r: &cairn_node::net::MarketResponse| {
        matches!(r, cairn_node::net::MarketResponse::Refused(_))
    };
    assert!(refused(&send(forge(id)).await));
    let mut tampered = forge(id);
    tampered.payload[0] ^= 1;
    assert!(refused(&send(tampered).await));
    assert!(refused(&send(forge(JobId::of(b"no such job"))).await));
    let m = requester.metrics();
    for reason in ["not_awarded", "bad_signature", "unknown_job"] {
        assert_eq!(m.rejections("report", reason), 1, "{reason}");
    }

    // The verdict reaches every node, and all compute the same table: the three providers
    // credited once each.
    let expected = wait_for(
        "the requester's verdict",
        Duration::from_secs(20),
        || async {
            let leaves = requester.verdicts().table().leaves();
            (leaves.len() == 3 && leaves.iter().all(|l| l.score == 1)).then_some(leaves)
        },
    )
    .await;
    for n in &c.nodes {
        wait_for(
            "the same table everywhere",
            Duration::from_secs(20),
            || async { (n.node().verdicts().table().leaves() == expected).then_some(()) },
        )
        .await;
    }

    // The requester signed a receipt naming module, input, output, fuel and the providers.
    let receipt = requester.market().receipt(&id).unwrap().expect("a receipt");
    let r = receipt.message();
    assert_eq!((r.output, r.module), (*digest, view.job.spec().module));
    assert_eq!(
        r.fuel_used, local.fuel_used,
        "every replica and a local run burn the same fuel"
    );
    assert_eq!(r.providers.len(), 3);
    assert_eq!(receipt.signer(), requester.node_id());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cheating_provider_is_outvoted_loses_reputation_and_stops_winning() {
    let dir = tempfile::tempdir().unwrap();
    let mut setups: Vec<_> = (0..4).map(|_| (cpu_only(), FaultInjection::None)).collect();
    setups.push((cpu_only(), FaultInjection::WrongOutput));
    let nodes = testing::cluster_with_faults(dir.path(), "market-cheat", setups)
        .await
        .unwrap();
    let c = Cluster::from_nodes(nodes, dir);
    all_adverts(&c).await;
    let requester = c.nodes[0].node();
    let cheater: NodeId = c.nodes[4].node().node_id();

    // Run jobs until the cheater has been caught twice (an unpunished provider wins three
    // auctions in four here), then four more: it must win none of those.
    let mut round = 0u64;
    let mut after_caught = Vec::new();
    while after_caught.len() < 4 {
        assert!(round < 30, "the cheater was not caught twice in 30 jobs");
        let caught_twice = requester.verdicts().table().standing(&cheater).dissented >= 2;
        let input = format!("round {round}: some words to count\n").into_bytes();
        let spec = wordcount_spec(requester, &input, round, 3, 2).await;
        let id = requester.market().submit(spec).unwrap();
        let view = finish(requester, &id, Duration::from_secs(30)).await;
        let Phase::Accepted(Outcome::Output { digest, .. }) = view.job.phase() else {
            panic!(
                "round {round}: {:?}; log: {:#?}",
                view.job.phase(),
                view.job.log()
            );
        };
        let output = requester
            .blobs()
            .local()
            .get_verified(digest)
            .unwrap()
            .unwrap();
        assert_eq!(
            output,
            local_output(&input, id).await,
            "round {round}: the accepted output is correct"
        );
        if caught_twice {
            after_caught.push(view.job.providers().contains(&cheater));
        }
        // Wait for this job's verdict before the next auction, so reputation is up to date.
        wait_for("the verdict", Duration::from_secs(20), || async {
            requester
                .market()
                .job(&id)
                .unwrap()
                .job
                .is_finished()
                .then_some(())
        })
        .await;
        round += 1;
    }
    assert_eq!(
        after_caught,
        vec![false; 4],
        "a twice-caught cheater keeps winning"
    );
    let table = requester.verdicts().table();
    let cheater_score = table.standing(&cheater).score;
    for honest in &c.nodes[1..4] {
        let score = table.standing(&honest.node().node_id()).score;
        assert!(
            cheater_score < score,
            "cheater {cheater_score} vs honest {score}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gpu_jobs_go_only_to_gpu_nodes_and_unservable_jobs_wait_then_fail() {
    let c = cluster(
        "market-gpu",
        vec![cpu_only(), h100(), cpu_only(), cpu_only()],
    )
    .await;
    all_adverts(&c).await;
    let requester = c.nodes[0].node();
    let gpu_node = c.nodes[1].node().node_id();

    let mut spec = wordcount_spec(requester, b"gpu words", 1, 1, 1).await;
    spec.requirements.gpu = Some(GpuRequirement {
        min_vram_bytes: 40_000_000_000,
        min_compute_capability: None,
    });
    let id = requester.market().submit(spec.clone()).unwrap();
    let view = finish(requester, &id, Duration::from_secs(30)).await;
    assert!(
        matches!(view.job.phase(), Phase::Accepted(_)),
        "{:#?}",
        view.job.log()
    );
    assert_eq!(view.job.providers(), vec![gpu_node]);
    // The winning bid named the concrete device the job runs on.
    assert!(
        view.job
            .log()
            .iter()
            .any(|e| e.what.starts_with("awarded") && e.what.contains("on GPU 0 (H100)")),
        "{:#?}",
        view.job.log()
    );

    // Nobody has 200 GB of VRAM: the job stays queued, says why, and fails at its deadline.
    spec.nonce = 2;
    spec.requirements.gpu = Some(GpuRequirement {
        min_vram_bytes: 200_000_000_000,
        min_compute_capability: None,
    });
    spec.deadline = now().plus_ms(3_000);
    let id = requester.market().submit(spec).unwrap();
    let view = finish(requester, &id, Duration::from_secs(15)).await;
    assert!(
        matches!(view.job.phase(), Phase::Failed(_)),
        "{:?}",
        view.job.phase()
    );
    let log: Vec<&str> = view.job.log().iter().map(|e| e.what.as_str()).collect();
    assert!(
        log.iter().any(|l| l.contains("0 eligible candidates")),
        "{log:#?}"
    );
    assert!(view.job.providers().is_empty());

    // A queued job can be cancelled.
    let mut spec = wordcount_spec(requester, b"never runs", 3, 1, 1).await;
    spec.requirements.gpu = Some(GpuRequirement {
        min_vram_bytes: 200_000_000_000,
        min_compute_capability: None,
    });
    let id = requester.market().submit(spec).unwrap();
    assert!(requester.market().cancel(&id).await);
    let view = finish(requester, &id, Duration::from_secs(10)).await;
    assert_eq!(
        view.job.phase(),
        &Phase::Failed(cairn_protocol::quorum::FailReason::Cancelled)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requester_restarted_mid_job_finishes_it_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = testing::cluster(
        dir.path(),
        "market-restart",
        (0..4).map(|_| cpu_only()).collect(),
    )
    .await
    .unwrap();
    let mut c = Cluster::from_nodes(nodes, dir);
    all_adverts(&c).await;
    let requester = c.nodes.remove(0);
    let spec = wordcount_spec(requester.node(), b"restart me", 1, 3, 2).await;
    let id = requester.node().market().submit(spec).unwrap();
    let data_dir = requester.node().options().data_dir.clone();
    let bootstrap = vec![testing::address(c.nodes[0].node()).await.unwrap()];
    requester.shutdown().await;

    let restarted = testing::start(
        &data_dir,
        &testing::spec("market-restart"),
        cpu_only(),
        bootstrap,
    )
    .await
    .unwrap();
    let node = restarted.node();
    assert!(
        node.market().job(&id).is_some(),
        "the job is known after the restart"
    );
    let view = finish(node, &id, Duration::from_secs(45)).await;
    match view.job.phase() {
        Phase::Accepted(_) | Phase::Failed(_) => {}
        other => panic!("job still {other:?}"),
    }
    assert!(!view.job.log().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_requester_still_knows_each_providers_standing() {
    // H6: reputation lived only in memory, so after a restart every provider was a stranger
    // again (and, with none established, the probation rule was waived).
    let dir = tempfile::tempdir().unwrap();
    let nodes = testing::cluster(
        dir.path(),
        "market-remember",
        (0..4).map(|_| cpu_only()).collect(),
    )
    .await
    .unwrap();
    let mut c = Cluster::from_nodes(nodes, dir);
    all_adverts(&c).await;
    let requester = c.nodes.remove(0);
    for round in 0..3u64 {
        let node = requester.node();
        let spec = wordcount_spec(node, format!("round {round}").as_bytes(), round, 3, 2).await;
        let id = node.market().submit(spec).unwrap();
        finish(node, &id, Duration::from_secs(30)).await;
        wait_for("the verdict", Duration::from_secs(20), || async {
            node.market()
                .job(&id)
                .unwrap()
                .job
                .is_finished()
                .then_some(())
        })
        .await;
    }
    // The verdicts are applied as the jobs' drivers publish them, just after the jobs finish.
    let before = wait_for(
        "three jobs of three replicas in the requester's table",
        Duration::from_secs(20),
        || async {
            let leaves = requester.node().verdicts().table().leaves();
            (leaves.iter().map(|l| l.evidence_count).sum::<u64>() == 9).then_some(leaves)
        },
    )
    .await;
    let data_dir = requester.node().options().data_dir.clone();
    let bootstrap = vec![testing::address(c.nodes[0].node()).await.unwrap()];
    requester.shutdown().await;

    let restarted = testing::start(
        &data_dir,
        &testing::spec("market-remember"),
        cpu_only(),
        bootstrap,
    )
    .await
    .unwrap();
    assert_eq!(restarted.node().verdicts().table().leaves(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_killed_mid_job_is_replaced_and_blamed() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = testing::cluster(
        dir.path(),
        "market-kill",
        (0..5).map(|_| cpu_only()).collect(),
    )
    .await
    .unwrap();
    let mut c = Cluster::from_nodes(nodes, dir);
    all_adverts(&c).await;
    let requester = c.nodes[0].node().clone();
    // A job that runs for about a second, so a provider can be killed while it runs.
    let wasm = cairn_runtime::guests::bytes("hashloop").unwrap();
    let t = now();
    let spec = JobSpec {
        requester: requester.node_id(),
        nonce: 1,
        module: requester.blobs().put(wasm).await.unwrap(),
        input: requester.blobs().put(vec![7u8; 65_536]).await.unwrap(),
        args: vec!["100000".into()],
        limits: Limits {
            fuel: 50_000_000_000,
            memory_bytes: 64 << 20,
            wall_time_ms: 3_000,
            max_output_bytes: 1 << 10,
        },
        requirements: Requirements::default(),
        replicas: 2,
        quorum: 2,
        max_replicas: 4,
        max_price: 1_000_000,
        bid_deadline: t.plus_ms(2_000),
        deadline: t.plus_ms(60_000),
    };
    let id = requester.market().submit(spec).unwrap();
    let awarded = wait_for("the awards", Duration::from_secs(20), || async {
        let providers = requester.market().job(&id)?.job.providers();
        (providers.len() == 2).then_some(providers)
    })
    .await;
    let victim = awarded[0];
    let index = c
        .nodes
        .iter()
        .position(|n| n.node().node_id() == victim)
        .unwrap();
    c.nodes.remove(index).shutdown().await;

    let view = finish(&requester, &id, Duration::from_secs(45)).await;
    assert!(
        matches!(view.job.phase(), Phase::Accepted(_)),
        "{:?}: {:#?}",
        view.job.phase(),
        view.job.log()
    );
    assert_eq!(
        view.job.providers().len(),
        3,
        "a replacement was awarded: {:#?}",
        view.job.log()
    );
    wait_for("the verdict", Duration::from_secs(20), || async {
        (requester.verdicts().table().standing(&victim).timed_out == 1).then_some(())
    })
    .await;
    assert!(requester.verdicts().table().standing(&victim).score < 0);
}

/// A provider checks what it is asked before it takes it: a call above its limits is declined
/// with the reason; an award whose report deadline has passed, or a second award of the same
/// job, is refused and counted; only a fresh award of an open call is taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_checks_calls_and_awards_before_it_takes_them() {
    use cairn_node::net::{MarketRequest, MarketResponse};
    use cairn_protocol::{Award, BlobHash, CallForBids, Envelope, JobRequest};

    let c = cluster("market-awards", vec![cpu_only(), cpu_only()]).await;
    let (a, b) = (c.nodes[0].node(), c.nodes[1].node());
    wait_for("the adverts", Duration::from_secs(30), || async {
        (a.adverts().count() == 2 && b.adverts().count() == 2).then_some(())
    })
    .await;
    let key =
        cairn_node::identity::load_or_create(&a.options().data_dir, a.kv().as_ref(), None).unwrap();
    let ask =
        |request: MarketRequest| async move { a.net().market(b.peer_id(), request).await.unwrap() };
    let call = |request: JobRequest| {
        let spec = request
            .into_spec(a.node_id(), b.options().runtime.clone(), 7, now())
            .unwrap();
        let envelope = Envelope::seal(
            &CallForBids {
                spec: spec.clone(),
                issued_at: now(),
            },
            &key,
            a.network(),
        )
        .unwrap();
        (spec, MarketRequest::CallForBids(envelope))
    };
    let award = |spec: &JobSpec, report_by, price| {
        let award = Award {
            job: spec.id().unwrap(),
            requester: a.node_id(),
            provider: b.node_id(),
            price,
            report_by,
            sealed_input: None,
        };
        MarketRequest::Award(Envelope::seal(&award, &key, a.network()).unwrap())
    };
    let request = || JobRequest::new(BlobHash::of(b"module"), BlobHash::of(b"input"));

    // Above the provider's maxima: declined, naming the resource.
    let most = b.options().config.limits.max_fuel;
    let (_, greedy) = call(JobRequest {
        limits: Limits {
            fuel: most + 1,
            ..Limits::DEFAULT
        },
        ..request()
    });
    match ask(greedy).await {
        MarketResponse::Declined(reason) => assert!(
            reason.contains(&format!("asks {} fuel", most + 1)),
            "{reason}"
        ),
        other => panic!("{other:?}"),
    }

    // Within them: a bid. An award already past its report deadline is refused.
    let (spec, open) = call(request());
    let MarketResponse::Bid(bid) = ask(open).await else {
        panic!("no bid")
    };
    let price = bid.verify::<cairn_protocol::Bid>(b.network()).unwrap();
    let price = price.message().price;
    let late = ask(award(&spec, now().plus_ms(0), price)).await;
    assert!(
        matches!(&late, MarketResponse::Refused(r) if r.contains("deadline")),
        "{late:?}"
    );
    // A fresh award is taken once; the same award again finds no open call.
    let fresh = award(&spec, now().plus_ms(30_000), price);
    assert_eq!(ask(fresh.clone()).await, MarketResponse::Accepted);
    let again = ask(fresh).await;
    assert!(
        matches!(&again, MarketResponse::Refused(r) if r.contains("already awarded")),
        "{again:?}"
    );

    // Calls and awards in the requester's name from another peer's connection are refused:
    // a third party cannot replay them, or flood in the name of keys it cannot answer for.
    let (spec2, open2) = call(request());
    let dir = tempfile::tempdir().unwrap();
    let third = testing::start(
        dir.path(),
        &b.options().spec,
        cpu_only(),
        vec![testing::address(b).await.unwrap()],
    )
    .await
    .unwrap();
    let stranger = third.node();
    let from_stranger = |request: MarketRequest| async move {
        stranger.net().market(b.peer_id(), request).await.unwrap()
    };
    let declined = from_stranger(open2).await;
    assert!(
        matches!(&declined, MarketResponse::Declined(r) if r.contains("own connection")),
        "{declined:?}"
    );
    let refused = from_stranger(award(&spec2, now().plus_ms(30_000), price)).await;
    assert!(
        matches!(&refused, MarketResponse::Refused(r) if r.contains("own connection")),
        "{refused:?}"
    );
    // An award below the provider's bid is refused: its report would state that price, and
    // that is what it would be paid.
    let (spec3, open3) = call(request());
    assert!(matches!(ask(open3).await, MarketResponse::Bid(_)));
    let lowball = ask(award(&spec3, now().plus_ms(30_000), price - 1)).await;
    assert!(
        matches!(&lowball, MarketResponse::Refused(r) if r.contains("below this node's bid")),
        "{lowball:?}"
    );
    // A call made more than a minute ago is a replay.
    let stale = Envelope::seal(
        &CallForBids {
            spec: spec2.clone(),
            issued_at: cairn_protocol::Timestamp(now().0 - 61_000),
        },
        &key,
        a.network(),
    )
    .unwrap();
    let replayed = ask(MarketRequest::CallForBids(stale)).await;
    assert!(
        matches!(&replayed, MarketResponse::Declined(r) if r.contains("too far from")),
        "{replayed:?}"
    );

    let m = b.metrics();
    assert_eq!(m.rejections("award", "report_deadline_passed"), 1);
    assert_eq!(m.rejections("award", "no_call"), 1);
    assert_eq!(m.rejections("call_for_bids", "not_from_requester"), 1);
    assert_eq!(m.rejections("award", "not_from_requester"), 1);
    assert_eq!(m.rejections("call_for_bids", "stale"), 1);
    assert_eq!(m.rejections("award", "below_bid"), 1);
}

/// A provider keeps its signed report for the job's requester, who may fetch it after a
/// restart; nobody else gets it (the report names the output, and outputs are the job's
/// parties' business), and a job it holds no award of gets a refusal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_report_is_fetched_by_the_jobs_requester_and_by_no_one_else() {
    use cairn_node::net::{MarketRequest, MarketResponse};
    use cairn_protocol::{Award, CallForBids, Envelope, ResultReport};

    let c = cluster("market-fetch", vec![cpu_only(), cpu_only(), cpu_only()]).await;
    let (a, b, stranger) = (c.nodes[0].node(), c.nodes[1].node(), c.nodes[2].node());
    all_adverts(&c).await;
    let key =
        cairn_node::identity::load_or_create(&a.options().data_dir, a.kv().as_ref(), None).unwrap();
    let spec = wordcount_spec(a, b"kept for its requester", 11, 1, 1).await;
    let job = spec.id().unwrap();
    let call = CallForBids {
        spec: spec.clone(),
        issued_at: now(),
    };
    let call = MarketRequest::CallForBids(Envelope::seal(&call, &key, a.network()).unwrap());
    let bid = a.net().market(b.peer_id(), call).await.unwrap();
    let MarketResponse::Bid(bid) = bid else {
        panic!("{bid:?}")
    };
    let price = bid.verify::<cairn_protocol::Bid>(b.network()).unwrap();
    let award = Award {
        job,
        requester: a.node_id(),
        provider: b.node_id(),
        price: price.message().price,
        report_by: now().plus_ms(20_000),
        sealed_input: None,
    };
    let award = MarketRequest::Award(Envelope::seal(&award, &key, a.network()).unwrap());
    assert_eq!(
        a.net().market(b.peer_id(), award).await.unwrap(),
        MarketResponse::Accepted
    );

    // The requester gets the signed report once the run is over.
    let fetch = || MarketRequest::FetchReport(job);
    let report = wait_for("the kept report", Duration::from_secs(30), || async {
        match a.net().market(b.peer_id(), fetch()).await.unwrap() {
            MarketResponse::Report(envelope) => Some(envelope),
            _ => None,
        }
    })
    .await;
    let report = report.verify::<ResultReport>(a.network()).unwrap();
    assert_eq!(report.signer(), b.node_id());
    assert_eq!(report.message().job, job);
    assert_eq!(
        b.market().served(),
        (1, 1),
        "one award held, with its report"
    );

    // Anyone else is refused, and so is a job the provider holds no award of.
    let other = stranger.net().market(b.peer_id(), fetch()).await.unwrap();
    assert!(
        matches!(&other, MarketResponse::Refused(r) if r.contains("requester")),
        "{other:?}"
    );
    let unknown = MarketRequest::FetchReport(JobId::of(b"never awarded"));
    let unknown = a.net().market(b.peer_id(), unknown).await.unwrap();
    assert!(matches!(unknown, MarketResponse::Refused(_)), "{unknown:?}");
    let m = b.metrics();
    assert_eq!(m.rejections("fetch_report", "not_requester"), 1);
    assert_eq!(m.rejections("fetch_report", "unknown_job"), 1);
}

/// Review H2/M11: a provider takes a permit before it fetches a job's blobs and compiles it, so
/// an award waiting for a permit holds nothing. With one slot there are two permits (one job
/// runs while the next is fetched and compiled): of three long awards, the third's input is
/// not fetched while the first runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_award_waiting_for_a_run_permit_has_not_fetched_its_blobs() {
    use cairn_node::net::{MarketRequest, MarketResponse};
    use cairn_protocol::{Award, CallForBids, Envelope};

    let dir = tempfile::tempdir().unwrap();
    let spec_net = testing::spec("market-permits");
    let a = testing::start(&dir.path().join("a"), &spec_net, cpu_only(), vec![])
        .await
        .unwrap();
    let bootstrap = vec![testing::address(a.node()).await.unwrap()];
    let mut options = testing::options(
        &dir.path().join("b"),
        &spec_net,
        cpu_only(),
        bootstrap,
        FaultInjection::None,
    );
    options.config.capacity = 1;
    let b = Node::start(options).await.unwrap();
    let (a, b) = (a.node(), b.node());
    wait_for("the adverts", Duration::from_secs(30), || async {
        (a.adverts().count() == 2 && b.adverts().count() == 2).then_some(())
    })
    .await;
    let key =
        cairn_node::identity::load_or_create(&a.options().data_dir, a.kv().as_ref(), None).unwrap();
    let wasm = cairn_runtime::guests::bytes("hashloop").unwrap();
    let module = a.blobs().put(wasm).await.unwrap();
    let mut inputs = Vec::new();
    for nonce in [1u64, 2, 3] {
        let input: Vec<u8> = (0..65_536u32).map(|i| (i as u64 * nonce) as u8).collect();
        let input = a.blobs().put(input).await.unwrap();
        let t = now();
        let spec = JobSpec {
            requester: a.node_id(),
            nonce,
            module,
            input,
            // A run of a few seconds: long enough to look while it runs.
            args: vec!["250000".into()],
            limits: Limits {
                fuel: 90_000_000_000,
                memory_bytes: 64 << 20,
                wall_time_ms: 60_000,
                max_output_bytes: 1 << 20,
            },
            requirements: Requirements::default(),
            replicas: 1,
            quorum: 1,
            max_replicas: 1,
            max_price: 1_000_000,
            bid_deadline: t.plus_ms(2_000),
            deadline: t.plus_ms(120_000),
        };
        let call = CallForBids {
            spec: spec.clone(),
            issued_at: t,
        };
        let call = MarketRequest::CallForBids(Envelope::seal(&call, &key, a.network()).unwrap());
        let bid = a.net().market(b.peer_id(), call).await.unwrap();
        let MarketResponse::Bid(bid) = bid else {
            panic!("{bid:?}")
        };
        let price = bid.verify::<cairn_protocol::Bid>(b.network()).unwrap();
        let award = Award {
            job: spec.id().unwrap(),
            requester: a.node_id(),
            provider: b.node_id(),
            price: price.message().price,
            report_by: t.plus_ms(100_000),
            sealed_input: None,
        };
        let award = MarketRequest::Award(Envelope::seal(&award, &key, a.network()).unwrap());
        let taken = a.net().market(b.peer_id(), award).await.unwrap();
        assert_eq!(taken, MarketResponse::Accepted);
        inputs.push(input);
    }
    let held = || {
        inputs
            .iter()
            .filter(|i| b.blobs().local().contains(i).unwrap())
            .count()
    };
    // Until the first run's report is kept, the third award must not have fetched its input
    // (the blobs are read before the kept reports, so a run that ended in between is seen as
    // ended).
    wait_for("the first run to end", Duration::from_secs(120), || async {
        let fetched = held();
        let (_, reported) = b.market().served();
        assert!(
            reported > 0 || fetched < 3,
            "all three awards fetched their input while the one slot ran the first"
        );
        (reported > 0).then_some(())
    })
    .await;
}
