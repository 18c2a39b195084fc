//! Joining as separate hosts: `cairn node` processes in their own Linux network namespaces,
//! joined by veth pairs through a bridge in a "switch" namespace, each given only the first
//! node's address as bootstrap. One scenario puts a node behind a router namespace that
//! masquerades (NAT) and lets it reach only the relay, so that it is reachable only through
//! relay v2.
//!
//! Needs root, `ip` (iproute2) and, for the NAT scenario, `iptables`; without them each test
//! prints "skipped: ..." and returns. Addresses (10.213.0.0/24 and 192.168.R.0/24) exist
//! only inside the namespaces the test creates, so no traffic leaves them; everything created
//! is removed on drop, also when the test fails.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

mod lab;

use lab::Lab;

const CAIRN: &str = env!("CARGO_BIN_EXE_cairn");
/// The "public" subnet on the switch's bridge.
const WAN: &str = "10.213.0";
/// The private subnet behind NAT router `R` is `LAN_PREFIX.R.0/24`.
const LAN_PREFIX: &str = "192.168";
/// Each node has its own namespace, so all use the same ports.
const P2P_PORT: u16 = 4741;
const API: &str = "127.0.0.1:4740";
/// Longest wait for any one condition (machines running these tests are shared and noisy).
const WAIT: Duration = Duration::from_secs(90);

/// A `cairn node` process in a namespace; killed on drop, its log printed if the test failed.
struct NsNode {
    name: &'static str,
    ns: String,
    dir: PathBuf,
    log: PathBuf,
    child: Child,
}

impl NsNode {
    fn start(name: &'static str, ns: &str, dir: &Path, listen: &[String], extra: &[&str]) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let log = dir.join("node.log");
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns, CAIRN, "--data-dir"])
            .arg(dir)
            .args([
                "--api",
                API,
                "node",
                "--log",
                "info,cairn=debug,libp2p_relay=debug,libp2p_dcutr=debug",
            ]);
        for addr in listen {
            cmd.args(["--listen", addr]);
        }
        let child = cmd
            .args(extra)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Self {
            name,
            ns: ns.to_owned(),
            dir: dir.to_owned(),
            log,
            child,
        }
    }

    /// Runs the CLI against this node, inside its namespace.
    fn cli(&self, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.ns, CAIRN, "--data-dir"])
            .arg(&self.dir)
            .args(args)
            .output()
            .unwrap()
    }

    fn json(&self, args: &[&str]) -> Option<serde_json::Value> {
        let out = self.cli(args);
        out.status
            .success()
            .then(|| serde_json::from_slice(&out.stdout).ok())
            .flatten()
    }

    /// Waits until the node answers with at least one listen address; returns its status.
    fn status(&self) -> serde_json::Value {
        poll(&format!("{}'s status", self.name), || {
            let status = self.json(&["status", "--json"])?;
            (!status["listen_addrs"].as_array()?.is_empty()).then_some(status)
        })
    }

    fn peer_id(&self) -> String {
        self.status()["peer_id"].as_str().unwrap().to_owned()
    }
}

impl Drop for NsNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            eprintln!("---- log of {} ({}) ----\n{log}", self.name, self.ns);
        }
    }
}

/// Polls `check` every 200 ms until it yields, or panics after [`WAIT`] naming `what`.
fn poll<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(start.elapsed() < WAIT, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// What the test runs in: nodes first, so they are killed before their namespaces go.
struct Scenario {
    nodes: Vec<NsNode>,
    lab: Lab,
    tmp: tempfile::TempDir,
    spec: PathBuf,
}

impl Scenario {
    fn new(tag: &str) -> Result<Self, String> {
        let lab = Lab::new(tag)?;
        let tmp = tempfile::tempdir().unwrap();
        let spec = tmp.path().join("lab.toml");
        // A lab network: private addresses count as reachable for AutoNAT, probes start soon.
        std::fs::write(
            &spec,
            "name = \"netns-lab\"\nautonat_private_addrs = true\nautonat_probe_secs = 1\n",
        )
        .unwrap();
        Ok(Self {
            nodes: Vec::new(),
            lab,
            tmp,
            spec,
        })
    }

    /// Starts a node; returns its index in `nodes`.
    fn start(&mut self, name: &'static str, ns: &str, listen: &[String], extra: &[&str]) -> usize {
        let dir = self.tmp.path().join(name);
        let mut args = vec!["--network", self.spec.to_str().unwrap()];
        args.extend_from_slice(extra);
        self.nodes
            .push(NsNode::start(name, ns, &dir, listen, &args));
        self.nodes.len() - 1
    }

    /// Submits wordcount from `requester` to a GPU provider (only `expected` simulates one),
    /// checks the output against a local run, and that `expected` ran it.
    fn job_runs_on(&self, requester: usize, expected: usize) -> serde_json::Value {
        let provider = self.nodes[expected].peer_id();
        poll("the provider's advert at the requester", || {
            let adverts = self.nodes[requester].json(&["adverts", "--json"])?;
            adverts
                .as_array()?
                .iter()
                .any(|a| a.to_string().contains(&provider))
                .then_some(())
        });
        let module = cairn_runtime::guests::path("wordcount");
        let input = self.tmp.path().join("input.txt");
        std::fs::write(&input, "across namespaces\nand through a relay\n").unwrap();
        let out = self.tmp.path().join("out.bin");
        let submit = self.nodes[requester].cli(&[
            "job",
            "submit",
            module.to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
            "--replicas",
            "1",
            "--quorum",
            "1",
            "--gpu",
            "--deadline",
            "120",
            "--wait",
            "--json",
            "-o",
            out.to_str().unwrap(),
        ]);
        let stderr = String::from_utf8_lossy(&submit.stderr);
        assert!(
            submit.status.success(),
            "job failed: {stderr}\n{}",
            String::from_utf8_lossy(&submit.stdout)
        );
        // `--wait --json` streams one object per event and ends with the final status.
        let stdout = String::from_utf8_lossy(&submit.stdout);
        let last = stdout.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("");
        let last: serde_json::Value = serde_json::from_str(last).unwrap();
        let status = last.get("status").cloned().unwrap_or(last);
        assert_eq!(
            status["providers"],
            serde_json::json!([provider]),
            "{status}"
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
        status
    }
}

fn listen(host: u8) -> Vec<String> {
    vec![format!("/ip4/{WAN}.{host}/tcp/{P2P_PORT}")]
}

#[test]
fn three_hosts_in_separate_namespaces_run_a_job() {
    let mut s = match Scenario::new("hosts") {
        Ok(s) => s,
        Err(why) => return eprintln!("skipped: {why}"),
    };
    let ns: Vec<String> = (1..=3).map(|h| s.lab.host(h).unwrap()).collect();
    let first = s.start("first", &ns[0], &listen(1), &[]);
    let bootstrap = format!("{}/p2p/{}", listen(1)[0], s.nodes[first].peer_id());
    let requester = s.start(
        "requester",
        &ns[1],
        &listen(2),
        &["--bootstrap", &bootstrap],
    );
    let provider = s.start(
        "provider",
        &ns[2],
        &listen(3),
        &["--bootstrap", &bootstrap, "--simulate-gpu", "H100:80GB:9.0"],
    );
    s.job_runs_on(requester, provider);
}

/// The GPU a provider simulates; only the provider of each scenario has one, so a `--gpu` job
/// can only run there.
const GPU: &str = "H100:80GB:9.0";

/// How a NAT'd node comes to listen through the relay.
#[derive(PartialEq)]
enum Relay {
    /// A `/p2p-circuit` listen address on the command line.
    Listen,
    /// Nothing: `auto_relay` (on by default) reserves on the bootstrap peer once AutoNAT says
    /// private.
    Auto,
}

impl Scenario {
    /// Starts the relay at `WAN.host`; it knows its public address, so its relay server
    /// (mode `auto`) serves at once. Returns its index and its address with `/p2p/ID`.
    fn start_relay(&mut self, ns: &str, host: u8) -> (usize, String) {
        let addr = listen(host).remove(0);
        let relay = self.start("relay", ns, &listen(host), &["--external-addr", &addr]);
        let full = format!("{addr}/p2p/{}", self.nodes[relay].peer_id());
        (relay, full)
    }

    /// Starts a node behind NAT router `router`, listening on its private address and through
    /// the relay (given as a listen address, or found by `auto_relay` from the bootstrap list),
    /// and waits until the relay holds its reservation.
    fn start_natted(
        &mut self,
        name: &'static str,
        ns: &str,
        router: u8,
        relay: usize,
        listen: Relay,
        extra: &[&str],
    ) -> usize {
        let relay_id = self.nodes[relay].peer_id();
        let relay_addr = self.nodes[relay].status()["listen_addrs"][0]
            .as_str()
            .unwrap()
            .to_owned();
        let mut addrs = vec![format!("/ip4/{LAN_PREFIX}.{router}.2/tcp/{P2P_PORT}")];
        if listen == Relay::Listen {
            addrs.push(format!("{relay_addr}/p2p-circuit"));
        }
        let mut args = vec!["--bootstrap", relay_addr.as_str()];
        args.extend_from_slice(extra);
        let node = self.start(name, ns, &addrs, &args);
        poll(&format!("{name}'s reservation on the relay"), || {
            let status = self.nodes[node].json(&["status", "--json"])?;
            let reserved = status["nat"]["reservations"]
                .as_array()?
                .contains(&relay_id.clone().into());
            let circuit = status["listen_addrs"].to_string().contains("p2p-circuit");
            (reserved && circuit).then_some(())
        });
        node
    }

    /// How `from` is connected to `to`: `Some(true)` relayed only, `Some(false)` directly.
    fn relayed(&self, from: usize, to: usize) -> Option<bool> {
        let id = self.nodes[to].peer_id();
        let peers = self.nodes[from].json(&["peers", "--json"])?;
        let peer = peers
            .as_array()?
            .iter()
            .find(|p| p["peer_id"] == id.as_str())?;
        peer["relayed"].as_bool()
    }
}

#[test]
fn a_node_behind_nat_joins_through_the_relay_and_runs_a_job() {
    let mut s = match Scenario::new("nat") {
        Ok(s) => s,
        Err(why) => return eprintln!("skipped: {why}"),
    };
    let relay_ns = s.lab.host(1).unwrap();
    let requester_ns = s.lab.host(2).unwrap();
    // The router lets the NAT'd node reach only the relay (WAN.1).
    let natted_ns = match s.lab.host_behind_nat(254, Some(1)) {
        Ok(ns) => ns,
        Err(why) => return eprintln!("skipped: cannot set up the NAT router: {why}"),
    };
    let (relay, relay_addr) = s.start_relay(&relay_ns, 1);
    let requester = s.start(
        "requester",
        &requester_ns,
        &listen(2),
        &["--bootstrap", &relay_addr],
    );
    let natted = s.start_natted(
        "natted",
        &natted_ns,
        254,
        relay,
        Relay::Auto,
        &["--simulate-gpu", GPU],
    );
    poll("AutoNAT: the NAT'd node private", || {
        let status = s.nodes[natted].json(&["status", "--json"])?;
        (status["nat"]["status"] == "private").then_some(())
    });
    s.job_runs_on(requester, natted);
    let relay_status = s.nodes[relay].status();
    assert_eq!(relay_status["nat"]["relay_serving"], true, "{relay_status}");
    assert!(
        relay_status["nat"]["relayed_peers"].as_u64() >= Some(1),
        "{relay_status}"
    );
    // The requester can reach the NAT'd node only through the relay, and since the NAT'd node
    // may reach nothing but the relay, hole punching cannot have made a direct connection.
    assert_eq!(s.relayed(requester, natted), Some(true));
    let natted_status = s.nodes[natted].status();
    assert_eq!(
        natted_status["nat"]["hole_punches_succeeded"], 0,
        "{natted_status}"
    );
    assert_eq!(
        natted_status["nat"]["relay_serving"], false,
        "a relayed node is no relay"
    );
    eprintln!(
        "relay: {}\nNAT'd node: {}",
        relay_status["nat"], natted_status["nat"]
    );
}

#[test]
fn two_nodes_behind_nat_connect_directly_by_hole_punching() {
    let mut s = match Scenario::new("punch") {
        Ok(s) => s,
        Err(why) => return eprintln!("skipped: {why}"),
    };
    let relay_ns = s.lab.host(1).unwrap();
    let routers = (
        s.lab.host_behind_nat(253, None),
        s.lab.host_behind_nat(254, None),
    );
    let (requester_ns, provider_ns) = match routers {
        (Ok(a), Ok(b)) => (a, b),
        (Err(why), _) | (_, Err(why)) => {
            return eprintln!("skipped: cannot set up the NAT routers: {why}");
        }
    };
    let (relay, _) = s.start_relay(&relay_ns, 1);
    let requester = s.start_natted("requester", &requester_ns, 253, relay, Relay::Listen, &[]);
    let provider = s.start_natted(
        "provider",
        &provider_ns,
        254,
        relay,
        Relay::Listen,
        &["--simulate-gpu", GPU],
    );
    s.job_runs_on(requester, provider);
    // Neither can dial the other's private address; DCUtR upgrades the relayed connection.
    poll("a direct connection made by hole punching", || {
        (!s.relayed(requester, provider)?).then_some(())
    });
    let punched: u64 = [requester, provider]
        .iter()
        .map(|&n| {
            s.nodes[n].status()["nat"]["hole_punches_succeeded"]
                .as_u64()
                .unwrap()
        })
        .sum();
    assert!(punched >= 1, "the direct connection came from DCUtR");
}
