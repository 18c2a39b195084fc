//! Simulations end to end: small runs (CI budget) that check the acceptance points.

use std::process::Command;
use std::time::Duration;

use cairn_testnet::harness::TestnetConfig;
use cairn_testnet::jobs::JobMix;
use cairn_testnet::{SimConfig, run};

fn small(jobs: usize) -> SimConfig {
    SimConfig {
        nodes: 8,
        jobs,
        concurrency: 8,
        timeout: Duration::from_secs(240),
        ..SimConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_mixed_sim_accepts_every_job_and_checks_each_against_a_local_run() {
    let config = SimConfig {
        job_mix: JobMix::Mixed,
        ..small(20)
    };
    let outcome = run(&config).await.unwrap();
    let r = &outcome.report;
    assert!(r.finished, "{}", r.human());
    assert_eq!(r.accepted, 20, "{}", r.human());
    assert_eq!((r.failed, r.wrongly_accepted), (0, 0), "{}", r.human());
    assert!(r.success());
    assert_eq!(outcome.end_to_end_ms.len(), 20);
    assert!(r.executions_per_job >= 3.0, "{}", r.executions_per_job);
    assert_eq!(r.advert_coverage, 1.0);
    assert!(r.gpu_jobs > 0, "the mixed run has GPU jobs");
    assert_eq!(
        r.gpu_runs_on_cpu_only, 0,
        "GPU jobs ran on GPU machines only"
    );
    assert!(r.reputation.honest_mean > 0.0 && r.reputation.cheater_mean.is_none());
    // Every accepted job was paid for, from the genesis allocation, and no credit was made or
    // lost on any node.
    let credits = r.credits.expect("the simulated network has credits");
    assert_eq!(credits.genesis, 8 * TestnetConfig::GENESIS_CREDITS);
    assert_eq!(credits.accepted_unpaid, 0, "{}", r.human());
    assert!(credits.paid > 0 && credits.conserved, "{}", r.human());
    assert!(credits.honest_earned_mean > 0.0, "{}", r.human());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_cheaters_nothing_is_wrongly_accepted_and_cheaters_lose_reputation() {
    let config = SimConfig {
        cheaters: 0.2,
        seed: 7,
        ..small(30)
    };
    let outcome = run(&config).await.unwrap();
    let r = &outcome.report;
    assert_eq!(r.cheaters, 1, "20% of the 7 non-requester nodes");
    assert!(r.finished, "{}", r.human());
    assert_eq!(r.wrongly_accepted, 0, "{}", r.human());
    assert_eq!(r.accepted, 30, "{}", r.human());
    let cheater = r.reputation.cheater_mean.unwrap();
    // The cheater joined as a fresh identity: on probation it weighs 0.05 of its trust in
    // the auction, so the roots and established providers take the replicas, and what it
    // wins it is caught on (one caught lie costs 50 points). Either way it never gains.
    assert!(cheater <= 0.0, "{}", r.human());
    assert!(r.reputation.honest_mean > 0.0, "{}", r.human());
    let last = outcome.reputation.last().unwrap();
    assert_eq!(last.means.cheater_mean, Some(cheater));
    // Dissent is never paid: the cheater earns less than the honest providers.
    let credits = r.credits.unwrap();
    let cheater_earned = credits.cheater_earned_mean.unwrap();
    assert!(cheater_earned < credits.honest_earned_mean, "{}", r.human());
    assert!(
        credits.conserved && credits.accepted_unpaid == 0,
        "{}",
        r.human()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_are_still_accepted_when_nodes_crash_and_restart() {
    let config = SimConfig {
        crash_rate: 0.3,
        seed: 3,
        ..small(30)
    };
    let outcome = run(&config).await.unwrap();
    let r = &outcome.report;
    assert_eq!(
        r.crashes,
        2,
        "30% of the 7 non-requester nodes: {}",
        r.human()
    );
    assert!(r.finished, "{}", r.human());
    assert_eq!(r.wrongly_accepted, 0, "{}", r.human());
    assert_eq!(r.accepted, 30, "{}", r.human());
}

#[test]
fn the_binary_prints_one_json_object_with_every_field_and_writes_html() {
    let tmp = tempfile::tempdir().unwrap();
    let html = tmp.path().join("report.html");
    let keep = tmp.path().join("kept");
    let out = Command::new(env!("CARGO_BIN_EXE_cairn-testnet"))
        .args([
            "sim",
            "--nodes",
            "5",
            "--jobs",
            "8",
            "--seed",
            "5",
            "--json",
            "--quiet",
            "--epoch-ms",
            "500",
        ])
        .arg("--html")
        .arg(&html)
        .arg("--keep")
        .arg(&keep)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.trim().lines().count(), 1, "one line: {text}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    for field in [
        "nodes",
        "jobs",
        "accepted",
        "failed",
        "wrongly_accepted",
        "jobs_per_sec",
        "executions_per_job",
        "advert_coverage",
        "peak_rss_bytes",
    ] {
        assert!(v[field].is_number(), "{field} in {v}");
    }
    for field in ["auction_ms", "end_to_end_ms"] {
        assert!(
            v[field]["p50"].is_u64() && v[field]["p99"].is_u64(),
            "{field}"
        );
    }
    // Checkpoints ran on the simulated chain, and at least one was anchored there.
    assert!(v["checkpoints"]["finalised"].as_u64().unwrap() >= 1, "{v}");
    assert!(v["checkpoints"]["anchored"].as_u64().unwrap() >= 1, "{v}");
    assert!(v["reputation"]["honest_mean"].is_number());
    assert!(v["reputation"].get("cheater_mean").is_some());
    // Credits: paid for every accepted job and conserved, with checkpoints on.
    let credits = &v["credits"];
    assert!(credits["genesis"].as_u64().unwrap() > 0, "{v}");
    assert!(credits["paid"].as_u64().unwrap() > 0, "{v}");
    assert_eq!(credits["accepted_unpaid"].as_u64(), Some(0), "{v}");
    assert_eq!(credits["conserved"].as_bool(), Some(true), "{v}");
    assert!(credits["honest_earned_mean"].is_number(), "{v}");
    assert!(credits.get("cheater_earned_mean").is_some(), "{v}");
    assert_eq!(
        (v["nodes"].as_u64(), v["accepted"].as_u64()),
        (Some(5), Some(8))
    );
    assert!(v["peak_rss_bytes"].as_u64().unwrap() > 1 << 20);

    let page = std::fs::read_to_string(&html).unwrap();
    assert_eq!(
        page.matches("<svg").count(),
        3,
        "two histograms and a chart"
    );
    assert!(!page.contains("<script") && !page.contains("src=\""));
    assert!(keep.join("node4").join("db").exists());
}

#[test]
fn bad_flags_are_refused_with_a_clear_message() {
    let out = Command::new(env!("CARGO_BIN_EXE_cairn-testnet"))
        .args(["sim", "--nodes", "2", "--replicas", "3"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid setting nodes"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn added_link_latency_delays_every_auction_and_jobs_still_complete() {
    let config = SimConfig {
        latency: Duration::from_millis(60),
        ..small(8)
    };
    let r = run(&config).await.unwrap().report;
    assert!(r.success(), "{}", r.human());
    assert_eq!(r.accepted, 8, "{}", r.human());
    // A call for bids waits 60 ms before it leaves, so no award comes sooner.
    assert!(r.auction_ms.p50 >= 60, "{}", r.human());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attacker_with_free_identities_gets_nothing_through() {
    use cairn_testnet::attack::AttackKind;
    for kind in [
        AttackKind::Mint,
        AttackKind::Slash,
        AttackKind::Replay,
        AttackKind::Capture,
        AttackKind::FloodAdverts,
    ] {
        // A flood is made of real nodes: fewer of them keep the test quick.
        let sybils = if kind == AttackKind::FloodAdverts {
            8
        } else {
            24
        };
        let config = SimConfig {
            attack: Some(kind),
            sybils,
            ..small(40)
        };
        let outcome = run(&config).await.unwrap();
        let r = &outcome.report;
        let a = r.attack.as_ref().unwrap();
        if kind != AttackKind::FloodAdverts {
            assert!(a.published > 0, "{kind:?}: {}", r.human());
        }
        assert_eq!(a.forged_applied, 0, "{kind:?}: {}", r.human());
        assert_eq!(a.honest_reputation_lost, 0, "{kind:?}: {}", r.human());
        assert!(a.sybil_reputation_max <= 0, "{kind:?}: {}", r.human());
        assert_eq!(a.sybil_committee_seats, 0, "{kind:?}: {}", r.human());
        assert_eq!(r.wrongly_accepted, 0, "{kind:?}: {}", r.human());
        // Nearly every job: a flooded job may run out of replicas (its Sybil replicas all
        // dissent) before enough honest ones agree, and then fails rather than accept a lie.
        assert!(r.accepted >= 38, "{kind:?}: {}", r.human());
    }
}

/// One peer floods honest nodes with calls for bids, awards, blob and sync requests or
/// connections while the jobs run: every honest job still finishes, none wrongly, and the
/// victims refuse what is beyond a peer's share (duplicate awards, sync requests past one of
/// each kind at a time, connections past the per-address cap). Throughput and memory under
/// each flood against the same run without it are measured by the benchmark in
/// `docs/benchmarks.md`, not here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn honest_jobs_finish_under_every_resource_flood() {
    use cairn_testnet::attack::AttackKind;
    for kind in [
        AttackKind::FloodCalls,
        AttackKind::FloodAwards,
        AttackKind::FloodBlobs,
        AttackKind::FloodSync,
        AttackKind::FloodConnections,
    ] {
        let config = SimConfig {
            attack: Some(kind),
            sybils: 16,
            ..small(24)
        };
        let outcome = run(&config).await.unwrap();
        let r = &outcome.report;
        let a = r.attack.as_ref().unwrap();
        assert!(r.finished, "{kind:?}: {}", r.human());
        assert_eq!(r.accepted, 24, "{kind:?}: {}", r.human());
        assert_eq!(r.wrongly_accepted, 0, "{kind:?}: {}", r.human());
        assert!(a.requests_sent > 0, "{kind:?}: {}", r.human());
        if matches!(
            kind,
            AttackKind::FloodAwards | AttackKind::FloodSync | AttackKind::FloodConnections
        ) {
            assert!(a.requests_refused > 0, "{kind:?}: {}", r.human());
        }
    }
}
