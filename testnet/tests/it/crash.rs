//! Crashes lose no work: in a `cairn-testnet up` cluster of real `cairn node` processes, a
//! requester and then a provider are killed with SIGKILL in the middle of a job and started
//! again after the work is done (the requester on a new port). The job is accepted with the
//! original providers' work, no honest provider is blamed, and nothing stored is lost.
//!
//! Nothing here is timed: every wait is for a state, with a generous limit that only turns a
//! hang into a failure.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use cairn_protocol::{BlobHash, JobId};
use cairn_runtime::{Job, JobLimits, Sandbox, SandboxConfig};
use cairn_testnet::cluster::{self, ClusterNode};
use serde_json::Value;

const TESTNET: &str = env!("CARGO_BIN_EXE_cairn-testnet");
/// Rounds of `hashloop` over the input: a run of a few seconds, so that a kill right after the
/// awards lands in the middle of it.
const ROUNDS: &str = "160000";
const FUEL: u64 = 60_000_000_000;
/// Longest wait for any one state: far beyond what it takes, only there to end a hang.
const LIMIT: Duration = Duration::from_secs(240);

fn cairn_bin() -> PathBuf {
    let path = Path::new(TESTNET).with_file_name("cairn");
    assert!(
        path.is_file(),
        "{} is missing: run `cargo build -p cairn-node` first",
        path.display()
    );
    path
}

/// Stops the cluster even when an assertion fails.
struct Cluster(PathBuf);

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = cluster::down(&self.0);
    }
}

/// `cairn --data-dir DATA ARGS`, its stdout as JSON; `None` when it fails (a node not up).
fn cairn_json(cairn: &Path, data: &Path, args: &[&str]) -> Option<Value> {
    let out = Command::new(cairn)
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

/// Waits until `check` gives a value, polling; panics naming `what` after [`LIMIT`].
fn wait_for<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(start.elapsed() < LIMIT, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn sigkill(node: &ClusterNode) {
    let status = Command::new("kill")
        .args(["-KILL", &node.pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "cannot kill node {}", node.index);
}

/// A loopback port nothing listens on now.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

struct Setup {
    cairn: PathBuf,
    module: PathBuf,
    input: PathBuf,
    expected: Vec<u8>,
}

impl Setup {
    fn submit(&self, requester: &Path) -> String {
        let fuel = FUEL.to_string();
        let mut args = vec!["job", "submit", self.module.to_str().unwrap()];
        args.extend(["--input", self.input.to_str().unwrap(), "--arg", ROUNDS]);
        args.extend(["--fuel", &fuel, "--replicas", "3", "--quorum", "2"]);
        // The cluster's providers ask 100 credits per million fuel: 6 000 000 for this limit,
        // above the default maximum price (the requester pays for the fuel used).
        args.extend(["--max-price", "10000000"]);
        args.extend(["--deadline", "600", "--json"]);
        let answer = cairn_json(&self.cairn, requester, &args).expect("job submit");
        answer["job_id"].as_str().unwrap().to_owned()
    }

    fn job(&self, requester: &Path, id: &str) -> Option<Value> {
        cairn_json(&self.cairn, requester, &["job", "status", id, "--json"])
    }

    fn status(&self, node: &Path) -> Option<Value> {
        cairn_json(&self.cairn, node, &["status", "--json"])
    }

    /// The job's providers, once it runs with all three replicas awarded.
    fn running_providers(&self, requester: &Path, id: &str) -> Vec<String> {
        wait_for("the job to run on three providers", || {
            let job = self.job(requester, id)?;
            let providers: Vec<String> = job["providers"]
                .as_array()?
                .iter()
                .filter_map(|p| p.as_str().map(str::to_owned))
                .collect();
            (job["state"] == "running" && providers.len() == 3).then_some(providers)
        })
    }

    /// Waits until the job is finished and returns its status.
    fn finished(&self, requester: &Path, id: &str) -> Value {
        wait_for("the job to finish", || {
            let job = self.job(requester, id)?;
            (job["finished"] == true).then_some(job)
        })
    }

    /// The blob `hash` as `node` serves it (checked against its hash on the way).
    fn blob(&self, node: &Path, hash: &str, tmp: &Path) -> Vec<u8> {
        let out = tmp.join(format!("blob-{hash}"));
        let status = Command::new(&self.cairn)
            .arg("--data-dir")
            .arg(node)
            .args(["blob", "get", hash, "-o"])
            .arg(&out)
            .status()
            .unwrap();
        assert!(status.success(), "blob {hash} is not served");
        std::fs::read(out).unwrap()
    }
}

/// The cluster node whose peer id is `peer`.
fn node_of<'a>(setup: &Setup, nodes: &'a [ClusterNode], peer: &str) -> &'a ClusterNode {
    nodes
        .iter()
        .find(|n| setup.status(&n.dir).is_some_and(|s| s["peer_id"] == peer))
        .unwrap_or_else(|| panic!("no node is {peer}"))
}

/// Blobs held by the node in `dir` (0 while it is down).
fn blobs_held(setup: &Setup, dir: &Path) -> u64 {
    setup
        .status(dir)
        .and_then(|s| s["blobs"].as_u64())
        .unwrap_or(0)
}

/// Reports kept by the provider in `dir` (0 while it is down).
fn reports_kept(setup: &Setup, dir: &Path) -> u64 {
    setup
        .status(dir)
        .and_then(|s| s["reports_kept"].as_u64())
        .unwrap_or(0)
}

/// Checks what a user sees of an accepted job: its verified output, the original providers,
/// no escalation, and a receipt.
fn assert_accepted_with_original_work(
    setup: &Setup,
    requester: &Path,
    id: &str,
    providers: &[String],
    tmp: &Path,
) {
    let job = setup.finished(requester, id);
    assert_eq!(job["state"], "accepted", "{job:#}");
    let output = job["output"].as_str().expect("the output was fetched");
    assert_eq!(setup.blob(requester, output, tmp), setup.expected);
    let now: Vec<String> = job["providers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(now, providers, "no replica was added: {job:#}");
    let log = job["log"].to_string();
    assert!(!log.contains("escalat"), "the job escalated: {log}");
    assert!(
        log.contains("verdict: 3 agree, 0 dissent, 0 timed out"),
        "{log}"
    );
    let receipt = cairn_json(&setup.cairn, requester, &["job", "receipt", id, "--json"]);
    assert!(receipt.is_some(), "the receipt is stored and opens");
}

/// Waits until the reputation table of `node` counts `agreed` agreeing reports for each of
/// `providers`, then checks that none of them was blamed for a timeout or a dissent.
fn assert_unblamed(setup: &Setup, node: &Path, providers: &[String], agreed: u64) {
    let table = wait_for("the verdict to be applied", || {
        let table = cairn_json(&setup.cairn, node, &["rep", "--json"])?;
        let rows = table.as_array()?.clone();
        let counted = providers.iter().all(|p| {
            rows.iter()
                .any(|r| r["peer"] == p.as_str() && r["agreed"].as_u64() >= Some(agreed))
        });
        counted.then_some(rows)
    });
    for row in table.iter().filter(|r| {
        providers
            .iter()
            .any(|p| r["peer"].as_str() == Some(p.as_str()))
    }) {
        assert_eq!(row["timed_out"], 0, "an honest provider was blamed: {row}");
        assert_eq!(row["dissented"], 0, "{row}");
    }
}

#[test]
fn a_requester_and_then_a_provider_killed_mid_job_lose_no_work() {
    let cairn = cairn_bin();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cluster");
    let mut nodes = cluster::up(&cairn, &dir, 4).unwrap();
    let _guard = Cluster(dir.clone());

    let module = cairn_runtime::guests::path("hashloop");
    let input = tmp.path().join("in.bin");
    let bytes: Vec<u8> = (0..65_536u32).map(|i| (i * 31 % 251) as u8).collect();
    std::fs::write(&input, &bytes).unwrap();
    // hashloop reads neither clock nor randomness: any job id gives the same output.
    let expected = Sandbox::new(SandboxConfig::default())
        .unwrap()
        .run_wasm_blocking(
            &std::fs::read(&module).unwrap(),
            &Job::new(JobId::of(b"local"), bytes.clone())
                .with_args(vec![ROUNDS.to_owned()])
                .with_limits(JobLimits::default().with_fuel(FUEL)),
        )
        .unwrap()
        .output;
    let setup = Setup {
        cairn: cairn.clone(),
        module: module.clone(),
        input,
        expected,
    };
    let requester = nodes[0].dir.clone();
    let checkpoints_before = cairn_json(&cairn, &requester, &["checkpoint", "list", "--json"]);

    // 1. The requester dies while the providers run the job: once they have fetched its
    // module and input (from the requester, their only holder).
    let blobs_before: Vec<u64> = nodes.iter().map(|n| blobs_held(&setup, &n.dir)).collect();
    let first = setup.submit(&requester);
    let providers = setup.running_providers(&requester, &first);
    let provider_nodes: Vec<ClusterNode> = providers
        .iter()
        .map(|p| node_of(&setup, &nodes, p).clone())
        .collect();
    for node in &provider_nodes {
        wait_for("each provider to fetch the job's module and input", || {
            (blobs_held(&setup, &node.dir) >= blobs_before[node.index] + 2).then_some(())
        });
    }
    sigkill(&nodes[0]);
    for node in &provider_nodes {
        wait_for(
            "each provider to finish the work and keep its report",
            || (reports_kept(&setup, &node.dir) >= 1).then_some(()),
        );
    }
    // Back after the work is done, on a port it never had: the providers must find it by
    // peer id, or it must ask them.
    let old_address = nodes[0].address.clone();
    let port = free_port();
    nodes[0] =
        cluster::restart(&cairn, &dir, 0, Some(&format!("/ip4/127.0.0.1/tcp/{port}"))).unwrap();
    assert_ne!(nodes[0].address, old_address);
    assert_accepted_with_original_work(&setup, &requester, &first, &providers, tmp.path());
    let log = setup.job(&requester, &first).unwrap()["log"].clone();
    let at = |what: &str| {
        log.as_array()
            .unwrap()
            .iter()
            .find(|e| e[1].as_str().is_some_and(|t| t.starts_with(what)))
            .and_then(|e| e[0].as_u64())
            .unwrap_or_else(|| panic!("no {what:?} in the job's log: {log}"))
    };
    // A figure, not an assertion: how long the resumed requester took to a verdict.
    eprintln!(
        "resumed to verdict: {} ms",
        at("verdict").saturating_sub(at("resumed"))
    );
    assert_unblamed(&setup, &requester, &providers, 1);

    // 2. A provider dies in the middle of the next job and comes back after the others'
    // work is done: it runs the job again from its kept award and reports.
    let second = setup.submit(&requester);
    let providers = setup.running_providers(&requester, &second);
    let victim = node_of(&setup, &nodes, &providers[0]).clone();
    sigkill(&victim);
    for peer in &providers[1..] {
        let node = node_of(&setup, &nodes, peer);
        wait_for("the other providers to finish", || {
            (reports_kept(&setup, &node.dir) >= 2).then_some(())
        });
    }
    let restarted = cluster::restart(&cairn, &dir, victim.index, None).unwrap();
    nodes[victim.index] = restarted.clone();
    assert_accepted_with_original_work(&setup, &requester, &second, &providers, tmp.path());
    assert_unblamed(&setup, &requester, &providers, 2);

    // 3. Nothing stored was lost or corrupt: the jobs' records and receipts (checked above),
    // the requester's module and input blobs, the output (opened by the requester; the
    // restarted provider keeps only its copy sealed to the requester), and the checkpoints
    // the requester held before it was killed.
    let jobs = cairn_json(&cairn, &requester, &["job", "list", "--json"]).unwrap();
    for id in [&first, &second] {
        let job = jobs
            .as_array()
            .unwrap()
            .iter()
            .find(|j| j["id"] == id.as_str())
            .unwrap_or_else(|| panic!("job {id} lost: {jobs:#}"));
        assert_eq!(job["state"], "accepted");
    }
    let module_hash = BlobHash::of(&std::fs::read(&module).unwrap()).to_string();
    assert_eq!(
        setup.blob(&requester, &module_hash, tmp.path()),
        std::fs::read(&module).unwrap()
    );
    assert_eq!(
        setup.blob(&requester, &BlobHash::of(&bytes).to_string(), tmp.path()),
        bytes
    );
    let job = setup.job(&requester, &second).unwrap();
    let output = job["output"].as_str().unwrap();
    assert_eq!(setup.blob(&requester, output, tmp.path()), setup.expected);
    let sealed_len = (setup.expected.len() + cairn_protocol::seal::OVERHEAD) as u64;
    let held: Vec<Vec<u8>> = std::fs::read_dir(restarted.dir.join("blobs"))
        .unwrap()
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    assert!(
        held.iter()
            .any(|b| b.len() as u64 == sealed_len && b.starts_with(b"CSB1")),
        "the restarted provider still holds its sealed output"
    );
    assert!(
        !held.iter().any(|b| b == &setup.expected),
        "and no plain copy"
    );
    let checkpoints_after = cairn_json(&cairn, &requester, &["checkpoint", "list", "--json"]);
    assert_checkpoints_kept(checkpoints_before, checkpoints_after);
}

/// Every checkpoint listed before is still listed, with the same hash.
fn assert_checkpoints_kept(before: Option<Value>, after: Option<Value>) {
    let ids = |v: Option<Value>| -> Vec<(u64, String)> {
        let v = v.expect("the checkpoint list");
        v["checkpoints"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["epoch"].as_u64().unwrap(), c["hash"].to_string()))
            .collect()
    };
    let (before, after) = (ids(before), ids(after));
    for checkpoint in &before {
        assert!(
            after.contains(checkpoint),
            "checkpoint {checkpoint:?} lost after the restarts: {after:?}"
        );
    }
}
