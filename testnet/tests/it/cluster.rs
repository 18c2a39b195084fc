//! `cairn-testnet up` / `down` with real `cairn node` processes, and a CLI job against them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use cairn_protocol::JobId;
use cairn_runtime::{Job, Sandbox, SandboxConfig};

const TESTNET: &str = env!("CARGO_BIN_EXE_cairn-testnet");

/// The `cairn` binary cargo built next to `cairn-testnet` (it belongs to cairn-node, so
/// `cargo test --workspace` builds it; `cargo test -p cairn-testnet` alone needs
/// `cargo build -p cairn-node` first).
pub(crate) fn cairn_bin() -> PathBuf {
    let path = Path::new(TESTNET).with_file_name("cairn");
    assert!(
        path.is_file(),
        "{} is missing: run `cargo build -p cairn-node` (or `cargo test --workspace`) first",
        path.display()
    );
    path
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Stops the cluster even when an assertion fails.
struct Cluster(PathBuf);

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(TESTNET)
            .args(["down", "--dir"])
            .arg(&self.0)
            .output();
    }
}

/// `check`'s value once it has one, asking again every 200 ms (a verdict spreads by gossip);
/// panics after 100 tries.
fn eventually<T>(mut check: impl FnMut() -> Option<T>) -> T {
    for _ in 0..100 {
        if let Some(v) = check() {
            return v;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    panic!("gave up waiting");
}

#[test]
fn up_starts_a_cluster_that_runs_a_cli_job_and_down_stops_it() {
    let cairn = cairn_bin();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cluster");
    let out = run(Command::new(TESTNET)
        .args(["up", "--nodes", "3", "--dir"])
        .arg(&dir)
        .arg("--cairn")
        .arg(&cairn));
    let guard = Cluster(dir.clone());
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.contains("--data-dir") && text.contains("node2"),
        "{text}"
    );
    let spec = std::fs::read_to_string(dir.join("network.toml")).unwrap();
    assert!(
        spec.contains("/p2p/"),
        "the spec names node 0 as bootstrap: {spec}"
    );
    let pids: Vec<u32> = std::fs::read_to_string(dir.join("pids"))
        .unwrap()
        .lines()
        .map(|l| l.split_once(' ').unwrap().1.parse().unwrap())
        .collect();
    assert_eq!(pids.len(), 3);
    assert!(text.contains("3 adverts held"), "adverts spread: {text}");

    // A job from node 0's CLI, run by the two other processes.
    let wasm = cairn_runtime::guests::path("wordcount");
    let input = tmp.path().join("in.txt");
    std::fs::write(&input, b"to be or not to be\nthat is the question\n").unwrap();
    let output = tmp.path().join("out.txt");
    run(Command::new(&cairn)
        .arg("--data-dir")
        .arg(dir.join("node0"))
        .args(["job", "submit"])
        .arg(&wasm)
        .arg("--input")
        .arg(&input)
        .args([
            "--replicas",
            "2",
            "--quorum",
            "2",
            "--deadline",
            "60",
            // A tight fuel limit: the price is for the limit, the payment for the fuel used
            // (about 9 000 here), so at the default limit this job would cost under a credit.
            "--fuel",
            "100000",
            "--wait",
            "-o",
        ])
        .arg(&output));
    // wordcount reads neither clock nor randomness, so any job id gives the same output.
    let local = Sandbox::new(SandboxConfig::default())
        .unwrap()
        .run_wasm_blocking(
            &std::fs::read(&wasm).unwrap(),
            &Job::new(JobId::of(b"local"), std::fs::read(&input).unwrap()),
        )
        .unwrap();
    assert_eq!(std::fs::read(&output).unwrap(), local.output);

    // The requester paid for it from its genesis credits; the receipt shows the price and the
    // payment, and both providers' wallets agree with the requester's.
    let wallet = |node: usize, peer: Option<&str>| -> serde_json::Value {
        let mut cmd = Command::new(&cairn);
        cmd.arg("--data-dir")
            .arg(dir.join(format!("node{node}")))
            .arg("wallet");
        cmd.args(peer).arg("--json");
        serde_json::from_slice(&run(&mut cmd).stdout).unwrap()
    };
    let mine = eventually(|| {
        let w = wallet(0, None);
        (w["payments"].as_array()?.len() == 1).then_some(w)
    });
    let payment = &mine["payments"][0];
    assert_eq!(payment["direction"], "paid", "{mine}");
    let paid = payment["amount"].as_u64().unwrap();
    assert!(paid > 0, "{mine}");
    let genesis = cairn_testnet::cluster::CLUSTER_GENESIS_CREDITS;
    assert_eq!(mine["balance"].as_u64(), Some(genesis - paid), "{mine}");
    let job = payment["job"].as_str().unwrap().to_owned();
    let receipt: serde_json::Value = serde_json::from_slice(
        &run(Command::new(&cairn)
            .arg("--data-dir")
            .arg(dir.join("node0"))
            .args(["job", "receipt", &job, "--json"]))
        .stdout,
    )
    .unwrap();
    assert!(receipt["price"].as_u64().unwrap() >= paid, "{receipt}");
    assert_eq!(
        receipt["payment"]["amount"].as_u64(),
        Some(paid),
        "{receipt}"
    );
    let requester = mine["node_id"].as_str().unwrap().to_owned();
    let mut earned = 0;
    for node in [1, 2] {
        let theirs = eventually(|| {
            let w = wallet(node, None);
            (w["payments"].as_array()?.len() == 1).then_some(w)
        });
        assert_eq!(theirs["payments"][0]["direction"], "received", "{theirs}");
        earned += theirs["balance"].as_u64().unwrap() - genesis;
        let seen = wallet(node, Some(&requester));
        assert_eq!(seen["balance"], mine["balance"], "node {node}: {seen}");
    }
    assert_eq!(earned, paid, "what the requester paid, the providers got");

    let out = run(Command::new(TESTNET).args(["down", "--dir"]).arg(&dir));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    for i in 0..3 {
        assert!(text.contains(&format!("stopped node{i} ")), "{text}");
    }
    for pid in pids {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        assert!(
            stat.is_empty() || stat.rsplit_once(") ").unwrap().1.starts_with('Z'),
            "pid {pid} still running"
        );
    }
    assert!(!dir.join("pids").exists());
    drop(guard);
}
