//! A kept simulation stays inspectable: one of its nodes restarts on the network spec the
//! simulation wrote, and a proof taken from it verifies offline against that spec.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cluster::cairn_bin;

const TESTNET: &str = env!("CARGO_BIN_EXE_cairn-testnet");

/// Kills the restarted node even when an assertion fails.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn cairn(data_dir: &Path, args: &[&str]) -> Output {
    Command::new(cairn_bin())
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .output()
        .unwrap()
}

fn json_of(out: &Output) -> Option<Value> {
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).ok())
        .flatten()
}

#[test]
fn a_kept_sim_node_restarts_on_the_written_spec_and_its_proof_verifies_offline() {
    let tmp = tempfile::tempdir().unwrap();
    let kept = tmp.path().join("kept");
    let out = Command::new(TESTNET)
        .args(["sim", "--nodes", "4", "--jobs", "12", "--json", "--keep"])
        .arg(&kept)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["checkpoints"]["anchored"].as_u64().unwrap() > 0);
    let spec = kept.join("network.toml");
    assert!(spec.is_file(), "the sim wrote the spec it ran");

    // Node 0 restarts on its own: its config names the written spec, loopback, free ports.
    let node = kept.join("node0");
    let log = std::fs::File::create(tmp.path().join("node0.log")).unwrap();
    let child = Command::new(cairn_bin())
        .arg("--data-dir")
        .arg(&node)
        .arg("node")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let _node = Killed(child);
    let start = Instant::now();
    let table = loop {
        // The sim's api.addr names a port that is gone until the node rewrites it.
        if let Some(table) = json_of(&cairn(&node, &["rep", "--json"]))
            && table.as_array().is_some_and(|t| !t.is_empty())
        {
            break table;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the kept node did not come back: {}",
            std::fs::read_to_string(tmp.path().join("node0.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    // On the simulation's network, not the built-in `local` one.
    let status = json_of(&cairn(&node, &["status", "--json"])).unwrap();
    let written: toml::Value = toml::from_str(&std::fs::read_to_string(&spec).unwrap()).unwrap();
    assert_eq!(
        status["network"].as_str(),
        written["name"].as_str(),
        "{status}"
    );
    assert_ne!(status["network"].as_str(), Some("local"));

    // A proof of one of the peers its checkpoints cover, verified offline.
    let proof = tmp.path().join("proof.bin");
    let proven = table.as_array().unwrap().iter().any(|row| {
        let peer = row["node_id"].as_str().unwrap();
        cairn(
            &node,
            &["checkpoint", "prove", peer, "-o", proof.to_str().unwrap()],
        )
        .status
        .success()
    });
    assert!(proven, "no peer of {table} could be proven");
    let verify = |network: Option<&Path>| {
        let mut cmd = Command::new(cairn_bin());
        cmd.args(["checkpoint", "verify"]).arg(&proof);
        if let Some(network) = network {
            cmd.arg("--network").arg(network);
        }
        cmd.output().unwrap()
    };
    let ok = verify(Some(&spec));
    assert!(
        ok.status.success(),
        "{}{}",
        String::from_utf8_lossy(&ok.stdout),
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(
        !verify(None).status.success(),
        "against another network's spec the proof does not verify"
    );
}
