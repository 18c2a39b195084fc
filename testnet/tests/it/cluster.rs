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
