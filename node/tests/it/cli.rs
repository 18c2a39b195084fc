//! The `cairn` binary as separate processes on loopback.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const CAIRN: &str = env!("CARGO_BIN_EXE_cairn");

fn cairn(dir: &Path, args: &[&str]) -> Output {
    Command::new(CAIRN)
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .output()
        .unwrap()
}

fn json(dir: &Path, args: &[&str]) -> Option<serde_json::Value> {
    let out = cairn(dir, args);
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).unwrap())
}

struct NodeProcess {
    child: Child,
    dir: PathBuf,
}

impl NodeProcess {
    fn start(dir: &Path, network: &Path, bootstrap: Option<&str>) -> Self {
        // A stale address file from an earlier run must not be mistaken for this one.
        let _ = std::fs::remove_file(dir.join("api.addr"));
        let mut cmd = Command::new(CAIRN);
        cmd.arg("--data-dir")
            .arg(dir)
            .arg("--api")
            .arg("127.0.0.1:0");
        cmd.args(["node", "--listen", "/ip4/127.0.0.1/tcp/0", "--network"])
            .arg(network);
        if let Some(b) = bootstrap {
            cmd.args(["--bootstrap", b]);
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let this = Self {
            child,
            dir: dir.to_owned(),
        };
        this.status();
        this
    }

    /// Waits until the node answers, and returns its status.
    fn status(&self) -> serde_json::Value {
        poll("the node's status", || {
            let status = json(&self.dir, &["status", "--json"])?;
            (!status["listen_addrs"].as_array()?.is_empty()).then_some(status)
        })
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn poll<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn peer_ids(dir: &Path) -> Option<Vec<String>> {
    let peers = json(dir, &["peers", "--json"])?;
    Some(
        peers
            .as_array()?
            .iter()
            .filter_map(|p| Some(p["peer_id"].as_str()?.to_owned()))
            .collect(),
    )
}

#[test]
fn two_processes_find_each_other_and_survive_kill_9() {
    let tmp = tempfile::tempdir().unwrap();
    let network = tmp.path().join("net.toml");
    std::fs::write(&network, "name = \"cli-test\"\nbootstrap = []\n").unwrap();
    let (dir_a, dir_b) = (tmp.path().join("a"), tmp.path().join("b"));

    let a = NodeProcess::start(&dir_a, &network, None);
    let status_a = a.status();
    let addr_a = status_a["listen_addrs"][0].as_str().unwrap().to_owned();
    let id_a = status_a["peer_id"].as_str().unwrap().to_owned();
    let mut b = NodeProcess::start(&dir_b, &network, Some(&addr_a));
    let id_b = b.status()["peer_id"].as_str().unwrap().to_owned();

    poll("b in a's peers", || {
        peer_ids(&dir_a)?.contains(&id_b).then_some(())
    });
    poll("a in b's peers", || {
        peer_ids(&dir_b)?.contains(&id_a).then_some(())
    });

    // A blob stored on b, then b is killed without warning and restarted.
    let file = tmp.path().join("data.bin");
    std::fs::write(&file, b"kept across kill -9").unwrap();
    let put = cairn(&dir_b, &["blob", "put", file.to_str().unwrap()]);
    assert!(
        put.status.success(),
        "{}",
        String::from_utf8_lossy(&put.stderr)
    );
    let hash = String::from_utf8(put.stdout).unwrap().trim().to_owned();
    b.child.kill().unwrap(); // SIGKILL
    b.child.wait().unwrap();
    drop(b);

    let b = NodeProcess::start(&dir_b, &network, Some(&addr_a));
    assert_eq!(
        b.status()["peer_id"].as_str().unwrap(),
        id_b,
        "identity survives"
    );
    let out = tmp.path().join("out.bin");
    let get = cairn(&dir_b, &["blob", "get", &hash, "-o", out.to_str().unwrap()]);
    assert!(
        get.status.success(),
        "{}",
        String::from_utf8_lossy(&get.stderr)
    );
    assert_eq!(std::fs::read(&out).unwrap(), b"kept across kill -9");
    // And a fetches it from b over the network.
    let out_a = tmp.path().join("out_a.bin");
    let get = cairn(
        &dir_a,
        &["blob", "get", &hash, "-o", out_a.to_str().unwrap()],
    );
    assert!(
        get.status.success(),
        "{}",
        String::from_utf8_lossy(&get.stderr)
    );
    assert_eq!(std::fs::read(&out_a).unwrap(), b"kept across kill -9");
}

#[test]
fn the_api_refuses_requests_without_the_token() {
    let tmp = tempfile::tempdir().unwrap();
    let network = tmp.path().join("net.toml");
    std::fs::write(&network, "name = \"cli-token\"\n").unwrap();
    let dir = tmp.path().join("n");
    let node = NodeProcess::start(&dir, &network, None);
    node.status();
    let addr = std::fs::read_to_string(dir.join("api.addr")).unwrap();
    for token in ["wrong", ""] {
        let out = Command::new(CAIRN)
            .args(["--api", addr.trim(), "--token", token, "status"])
            .output()
            .unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("HTTP 401") && stderr.contains("api.token"),
            "{stderr}"
        );
    }
    // Without any Authorization header at all.
    let client = cairn_node::client::Client::new(addr.trim(), "");
    let err = client.get_text_unauthenticated("/v1/status").unwrap_err();
    assert!(err.to_string().contains("401"), "{err}");
    // /metrics answers without the token.
    let metrics = client.get_text_unauthenticated("/metrics").unwrap();
    assert!(
        metrics.contains("cairn_peers 0")
            && metrics.contains("cairn_rejections_total")
            && metrics.contains("cairn_nat_public 0")
            && metrics.contains("cairn_relay_reservations 0"),
        "{metrics}"
    );
    // A job whose numbers make no job is refused with the reason, and nothing is submitted.
    let wasm = tmp.path().join("m.wasm");
    std::fs::write(&wasm, b"\0asm\x01\0\0\0").unwrap();
    let out = cairn(
        &dir,
        &["job", "submit", wasm.to_str().unwrap(), "--quorum", "5"],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bad_request")
            && stderr.contains("quorum 5 must be between 1 and replicas (3)"),
        "{stderr}"
    );
    let jobs = json(&dir, &["job", "list", "--json"]).unwrap();
    assert_eq!(jobs.as_array().map(Vec::len), Some(0), "{jobs}");
}

#[test]
fn gpu_reports_cpu_only_or_the_real_devices() {
    let out = Command::new(CAIRN)
        .args(["gpu", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let has_nvidia = Path::new("/dev/nvidiactl").exists();
    if has_nvidia {
        assert_eq!(report["source"]["kind"], "detected", "{report}");
        assert!(report["gpus"][0]["vram_bytes"].as_u64().unwrap() > 0);
    } else {
        assert_eq!(report["source"]["kind"], "none", "{report}");
        assert_eq!(report["gpus"].as_array().unwrap().len(), 0);
        assert_eq!(report["classes"], serde_json::json!(["cpu"]));
    }
    let sim = Command::new(CAIRN)
        .args(["gpu", "--json", "--simulate-gpu", "H100:80GB:9.0"])
        .output()
        .unwrap();
    let sim: serde_json::Value = serde_json::from_slice(&sim.stdout).unwrap();
    assert_eq!(sim["source"]["kind"], "simulated");
    assert!(
        sim["classes"]
            .as_array()
            .unwrap()
            .contains(&"gpu:sm90".into())
    );
}

#[test]
fn a_job_submitted_from_the_cli_to_a_local_cluster_returns_the_verified_output() {
    let tmp = tempfile::tempdir().unwrap();
    let network = tmp.path().join("net.toml");
    std::fs::write(&network, "name = \"cli-job\"\n").unwrap();
    let first = NodeProcess::start(&tmp.path().join("n0"), &network, None);
    let addr = first.status()["listen_addrs"][0]
        .as_str()
        .unwrap()
        .to_owned();
    let others: Vec<NodeProcess> = (1..4)
        .map(|i| NodeProcess::start(&tmp.path().join(format!("n{i}")), &network, Some(&addr)))
        .collect();
    poll("all four adverts", || {
        let adverts = json(&first.dir, &["adverts", "--json"])?;
        (adverts.as_array()?.len() == 4).then_some(())
    });

    let module = cairn_runtime::guests::path("wordcount");
    let input = tmp.path().join("input.txt");
    std::fs::write(&input, "one two three\nfour five\n").unwrap();
    let out = tmp.path().join("out.bin");
    let submit = cairn(
        &first.dir,
        &[
            "job",
            "submit",
            module.to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
            "--replicas",
            "3",
            "--wait",
            "-o",
            out.to_str().unwrap(),
        ],
    );
    let stderr = String::from_utf8_lossy(&submit.stderr);
    assert!(
        submit.status.success(),
        "{stderr}\n{}",
        String::from_utf8_lossy(&submit.stdout)
    );
    assert!(
        stderr.contains("auction") && stderr.contains("wrote"),
        "progress is shown: {stderr}"
    );

    let local = Command::new(CAIRN)
        .args([
            "run",
            module.to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(local.status.success());
    assert_eq!(
        std::fs::read(&out).unwrap(),
        local.stdout,
        "the network's output is the local run's"
    );

    // The verdict credited the agreeing providers; `cairn rep --json` lists them.
    let rep = poll("credited providers", || {
        let rep = json(&first.dir, &["rep", "--json"])?;
        let credited = rep
            .as_array()?
            .iter()
            .filter(|r| r["score"].as_i64() >= Some(1))
            .count();
        (credited >= 2).then_some(rep)
    });
    assert!(
        rep[0]["peer"].as_str().unwrap().starts_with("12D3"),
        "{rep}"
    );

    // The limits a user sets reach every provider: an output limit below the output fails
    // each replica alike, and the failure is accepted and said in words.
    let limited = cairn(
        &first.dir,
        &[
            "job",
            "submit",
            module.to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
            "--max-output",
            "4",
            "--timeout",
            "5",
            "--wait",
            "--json",
        ],
    );
    assert_eq!(limited.status.code(), Some(1), "{limited:?}");
    // `--json --wait` streams one object a line: phases and the job's events, then the end.
    let events: Vec<serde_json::Value> = String::from_utf8_lossy(&limited.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["event"].as_str()).collect();
    assert_eq!(kinds.first(), Some(&"phase"), "{kinds:?}");
    assert!(
        kinds.iter().filter(|k| **k == "log").count() >= 3,
        "{kinds:?}"
    );
    assert_eq!(kinds.last(), Some(&"finished"), "{kinds:?}");
    let status = &events.last().unwrap()["status"];
    assert_eq!(status["state"], "accepted", "{status}");
    assert_eq!(
        status["outcome"], "failed: output above the limit",
        "{status}"
    );
    drop(others);
}

#[test]
fn a_node_joins_the_shipped_testnet_by_name_and_says_how_to_bootstrap() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("node");
    let log = tmp.path().join("node.log");
    let child = Command::new(CAIRN)
        .arg("--data-dir")
        .arg(&dir)
        .args(["--api", "127.0.0.1:0", "node", "--network", "testnet"])
        .args(["--listen", "/ip4/127.0.0.1/tcp/0"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let node = NodeProcess {
        child,
        dir: dir.clone(),
    };
    let status = node.status();
    assert_eq!(status["network"], "testnet", "{status}");
    let said = std::fs::read_to_string(&log).unwrap();
    assert!(
        said.contains("no public bootstrap node is listed yet") && said.contains("--bootstrap"),
        "{said}"
    );
    // A name that is neither a file nor a shipped network is refused, naming the shipped ones.
    let out = Command::new(CAIRN)
        .arg("--data-dir")
        .arg(tmp.path().join("other"))
        .args(["node", "--network", "no-such-network"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("shipped: testnet"), "{err}");
}

#[test]
fn under_json_an_error_is_json_on_stderr_with_a_stable_kind() {
    let tmp = tempfile::tempdir().unwrap();
    let error_of = |args: &[&str]| {
        let out = cairn(tmp.path(), args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
        let error: serde_json::Value = serde_json::from_slice(&out.stderr)
            .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", String::from_utf8_lossy(&out.stderr)));
        let kind = error["error"]["kind"].as_str().unwrap().to_owned();
        assert!(!error["error"]["message"].as_str().unwrap().is_empty());
        kind
    };
    // No node in the data dir, a bad argument, a file that is not there.
    assert_eq!(error_of(&["status", "--json"]), "no_node");
    assert_eq!(
        error_of(&["job", "status", "--json", "--no-such-flag"]),
        "usage"
    );
    assert_eq!(error_of(&["run", "/no/such/module.wasm", "--json"]), "io");
    // Without --json, the same error in words.
    let out = cairn(tmp.path(), &["status"]);
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("error: no node found"));
}

#[test]
fn help_lists_the_exit_statuses_and_the_environment() {
    let out = Command::new(CAIRN).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "Exit status: 0",
        "2 the command could not run",
        "CAIRN_API",
        "CAIRN_LOG",
    ] {
        assert!(help.contains(needle), "{needle}: {help}");
    }
}

/// The subcommands `cairn PATH... --help` lists (without `help`).
fn subcommands(path: &[String]) -> Vec<String> {
    let out = Command::new(CAIRN)
        .args(path)
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout).into_owned();
    let Some(list) = help.split("Commands:\n").nth(1) else {
        return Vec::new();
    };
    list.lines()
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_owned)
        .collect()
}

/// Every command that prints a result takes `--json`, and under it an error is JSON: walks
/// the whole command tree, so a new command without `--json` fails here.
#[test]
fn every_command_that_prints_takes_json_and_its_errors_are_json() {
    // `cairn node` runs a node and logs; completions and the man page are scripts and roff.
    const NO_RESULT: [&str; 3] = ["node", "completions", "man"];
    let tmp = tempfile::tempdir().unwrap();
    let mut leaves = Vec::new();
    let mut todo: Vec<Vec<String>> = subcommands(&[]).into_iter().map(|c| vec![c]).collect();
    while let Some(path) = todo.pop() {
        let children = subcommands(&path);
        if children.is_empty() {
            leaves.push(path);
        } else {
            todo.extend(children.into_iter().map(|c| {
                let mut p = path.clone();
                p.push(c);
                p
            }));
        }
    }
    assert!(leaves.len() >= 20, "{leaves:?}");
    for path in leaves
        .iter()
        .filter(|p| !NO_RESULT.contains(&p[0].as_str()))
    {
        let help = Command::new(CAIRN)
            .args(path)
            .arg("--help")
            .output()
            .unwrap();
        let help = String::from_utf8_lossy(&help.stdout);
        assert!(
            help.contains("--json"),
            "`cairn {}` has no --json",
            path.join(" ")
        );
        // Missing arguments, or no node in an empty data dir: an error, as JSON.
        let out = Command::new(CAIRN)
            .arg("--data-dir")
            .arg(tmp.path())
            .args(path)
            .arg("--json")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        if out.status.success() {
            continue; // `gpu` and friends need nothing
        }
        let error: serde_json::Value = serde_json::from_slice(&out.stderr).unwrap_or_else(|e| {
            panic!(
                "`cairn {} --json` failed without a JSON error ({e}): {}",
                path.join(" "),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        assert!(error["error"]["kind"].is_string(), "{error}");
    }
}

#[test]
fn completions_and_the_man_page_cover_every_command() {
    let run = |args: &[&str]| {
        let out = Command::new(CAIRN).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let bash = run(&["completions", "bash"]);
    let man = run(&["man"]);
    assert!(man.contains(".TH cairn"), "{man}");
    for command in subcommands(&[]) {
        assert!(bash.contains(&command), "completions lack {command}");
        assert!(man.contains(&command), "the man page lacks {command}");
    }
    assert!(run(&["completions", "zsh"]).contains("#compdef cairn"));
}
