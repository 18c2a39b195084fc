//! Job-market benchmark on a 20-node in-process network on loopback: a trivial job (the `echo`
//! guest on 16 bytes) with 3 replicas and quorum 2, printed as a report:
//!
//! - submit-to-award and submit-to-accepted latency, p50 and p99, one job at a time;
//! - sustained accepted jobs per second with 32 jobs in flight, from one requester and spread
//!   over all 20 nodes as requesters.
//!
//! Run with `cargo bench -p cairn-node --bench market`.

use std::time::{Duration, Instant};

use cairn_node::now;
use cairn_node::{Node, testing};
use cairn_protocol::requester::Phase;
use cairn_protocol::{JobId, JobSpec, Limits, Requirements};

const NODES: usize = 20;
const SEQUENTIAL_JOBS: u64 = 100;
const THROUGHPUT_JOBS: u64 = 400;
const IN_FLIGHT: usize = 32;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run());
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn spec(requester: &Node, module: cairn_protocol::BlobHash, nonce: u64) -> JobSpec {
    // Providers fetch job blobs from the requester directly, so no DHT announcement is awaited.
    let input = requester
        .blobs()
        .store(nonce.to_le_bytes().repeat(2))
        .await
        .expect("input");
    let t = now();
    JobSpec {
        requester: requester.node_id(),
        nonce,
        module,
        input,
        args: vec![],
        limits: Limits {
            fuel: 10_000_000,
            memory_bytes: 16 << 20,
            wall_time_ms: 5_000,
            max_output_bytes: 1 << 16,
        },
        requirements: Requirements::default(),
        replicas: 3,
        quorum: 2,
        max_replicas: 5,
        max_price: 1_000,
        bid_deadline: t.plus_ms(2_000),
        deadline: t.plus_ms(120_000),
    }
}

/// (submit → first award, submit → accepted) in ms, from the job's own log.
fn latencies(requester: &Node, id: &JobId) -> Option<(u64, u64)> {
    let view = requester.market().job(id)?;
    if !matches!(view.job.phase(), Phase::Accepted(_)) || view.output.is_none() {
        return None;
    }
    let log = view.job.log();
    let start = log.first()?.at.0;
    let award = log.iter().find(|e| e.what.starts_with("awarded"))?.at.0;
    let accepted = log.iter().find(|e| e.what.starts_with("accepted"))?.at.0;
    Some((award - start, accepted - start))
}

async fn run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hardware = (0..NODES).map(|_| testing::cpu_only()).collect();
    let nodes = testing::cluster(dir.path(), "bench-market", hardware)
        .await
        .expect("cluster");
    testing::wait_for(Duration::from_secs(120), || async {
        nodes
            .iter()
            .all(|n| n.node().adverts().count() == NODES)
            .then_some(())
    })
    .await
    .expect("adverts everywhere");
    let requester = nodes[0].node();
    let module = requester
        .blobs()
        .put(cairn_runtime::guests::bytes("echo").expect("echo guest"))
        .await
        .expect("module");

    // Latency, one job at a time.
    let (mut award, mut accepted) = (Vec::new(), Vec::new());
    for nonce in 0..SEQUENTIAL_JOBS {
        let id = requester
            .market()
            .submit(spec(requester, module, nonce).await)
            .expect("submit");
        let done = testing::wait_for(Duration::from_secs(30), || async {
            latencies(requester, &id)
        })
        .await;
        let (a, b) = done.unwrap_or_else(|| {
            panic!(
                "job {nonce} not accepted: {:#?}",
                requester.market().job(&id).map(|v| v.job.log().to_vec())
            )
        });
        award.push(a);
        accepted.push(b);
    }
    award.sort_unstable();
    accepted.sort_unstable();
    println!(
        "{NODES} nodes, trivial job, 3 replicas, {SEQUENTIAL_JOBS} jobs one at a time: submit-to-award p50 {} ms, p99 {} ms; submit-to-accepted p50 {} ms, p99 {} ms",
        percentile(&award, 0.5),
        percentile(&award, 0.99),
        percentile(&accepted, 0.5),
        percentile(&accepted, 0.99)
    );

    // Throughput, IN_FLIGHT jobs at a time: first from one requester, then spread over all.
    let one = throughput(&[requester], &[module], SEQUENTIAL_JOBS).await;
    println!(
        "{NODES} nodes, {THROUGHPUT_JOBS} trivial jobs, {IN_FLIGHT} in flight from 1 requester: {:.1} accepted jobs/s",
        one
    );
    let all: Vec<&Node> = nodes.iter().map(|n| n.node()).collect();
    let mut modules = Vec::new();
    for node in &all {
        let echo = cairn_runtime::guests::bytes("echo").expect("echo guest");
        modules.push(node.blobs().store(echo).await.expect("module"));
    }
    let spread = throughput(&all, &modules, SEQUENTIAL_JOBS + THROUGHPUT_JOBS).await;
    println!(
        "{NODES} nodes, {THROUGHPUT_JOBS} trivial jobs, {IN_FLIGHT} in flight spread over all {NODES} nodes as requesters: {:.1} accepted jobs/s",
        spread
    );
}

/// Accepted jobs per second over [`THROUGHPUT_JOBS`] jobs kept [`IN_FLIGHT`] at a time,
/// submitted round robin by `requesters` (each with its copy of the module in `modules`).
async fn throughput(
    requesters: &[&Node],
    modules: &[cairn_protocol::BlobHash],
    first_nonce: u64,
) -> f64 {
    let start = Instant::now();
    let mut pending: Vec<(usize, JobId)> = Vec::new();
    let mut finished: Vec<(u64, usize, JobId)> = Vec::new();
    let mut submitted = 0u64;
    let mut done = 0u64;
    while done < THROUGHPUT_JOBS {
        while pending.len() < IN_FLIGHT && submitted < THROUGHPUT_JOBS {
            let r = usize::try_from(submitted).expect("small") % requesters.len();
            let job = spec(requesters[r], modules[r], first_nonce + submitted).await;
            pending.push((r, requesters[r].market().submit(job).expect("submit")));
            submitted += 1;
        }
        let before = pending.len();
        pending.retain(|(r, id)| match latencies(requesters[*r], id) {
            Some((_, accepted)) => {
                finished.push((accepted, *r, *id));
                false
            }
            None => true,
        });
        done += (before - pending.len()) as u64;
        tokio::time::sleep(Duration::from_millis(2)).await;
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "throughput run did not finish"
        );
    }
    let rate = THROUGHPUT_JOBS as f64 / start.elapsed().as_secs_f64();
    finished.sort_unstable_by_key(|f| f.0);
    let ms: Vec<u64> = finished.iter().map(|f| f.0).collect();
    println!(
        "  submit-to-accepted under load: p50 {} ms, p99 {} ms",
        percentile(&ms, 0.5),
        percentile(&ms, 0.99)
    );
    if std::env::var_os("CAIRN_BENCH_VERBOSE").is_some()
        && let Some((_, r, id)) = finished.last()
        && let Some(view) = requesters[*r].market().job(id)
    {
        let t0 = view.job.log().first().map_or(0, |e| e.at.0);
        for e in view.job.log() {
            eprintln!("  +{:>5} ms {}", e.at.0 - t0, e.what);
        }
    }
    rate
}
