//! `cairn-testnet up` / `down`: `cairn node` processes on loopback, one data dir each under a
//! cluster directory, sharing a network spec file whose bootstrap is node 0.
//!
//! Layout of a cluster directory: `network.toml` (the spec), `pids` (one `INDEX PID` line per
//! node), and `node0`, `node1`, ... (data dirs, each with a `node.log`).

use std::io::Write as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::TestnetError;
use crate::profiles::profile_for;

/// The network name of local clusters.
pub const CLUSTER_NETWORK: &str = "local-cluster";
/// How long `up` waits for one node to answer.
const NODE_UP_LIMIT: Duration = Duration::from_secs(30);
/// How long `up` waits for every node to hold every advert.
const ADVERTS_LIMIT: Duration = Duration::from_secs(60);
/// How long `down` waits after SIGTERM before SIGKILL.
pub const TERM_GRACE: Duration = Duration::from_secs(10);
/// Most nodes `up` starts.
pub const MAX_CLUSTER_NODES: usize = 64;

/// A started node of a cluster.
#[derive(Clone, Debug)]
pub struct ClusterNode {
    /// Its number.
    pub index: usize,
    /// Its data dir.
    pub dir: PathBuf,
    /// Its process id.
    pub pid: u32,
    /// Its first listen address, with `/p2p/PEER_ID`.
    pub address: String,
    /// Adverts it held when `up` returned.
    pub adverts: u64,
}

/// A process `down` stopped.
#[derive(Clone, Debug)]
pub struct Stopped {
    /// The node's number.
    pub index: usize,
    /// Its process id.
    pub pid: u32,
    /// Whether SIGKILL was needed.
    pub killed: bool,
}

/// The `cairn` binary: `explicit` if given, else `$CAIRN_BIN`, else next to the current
/// executable (where cargo puts every binary of the workspace).
pub fn find_cairn(explicit: Option<&Path>) -> Result<PathBuf, TestnetError> {
    let candidate = match explicit {
        Some(p) => p.to_owned(),
        None => match std::env::var_os("CAIRN_BIN") {
            Some(p) => PathBuf::from(p),
            None => std::env::current_exe()
                .map_err(|source| TestnetError::Io {
                    path: "current executable".into(),
                    source,
                })?
                .with_file_name("cairn"),
        },
    };
    if candidate.is_file() {
        return Ok(candidate);
    }
    Err(TestnetError::Cluster {
        reason: format!(
            "the cairn binary is not at {}; build it with `cargo build --release -p cairn-node` \
             (or `cargo build -p cairn-node` for a debug cairn-testnet), or pass --cairn PATH",
            candidate.display()
        ),
    })
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TestnetError + '_ {
    move |source| TestnetError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Starts `nodes` `cairn node` processes with data dirs under `dir`, waits until each answers
/// and until adverts have spread, and returns them; the processes keep running.
pub fn up(cairn: &Path, dir: &Path, nodes: usize) -> Result<Vec<ClusterNode>, TestnetError> {
    if nodes == 0 || nodes > MAX_CLUSTER_NODES {
        return Err(TestnetError::Config {
            field: "nodes",
            reason: format!("use 1 to {MAX_CLUSTER_NODES}"),
        });
    }
    if !running(dir).is_empty() {
        return Err(TestnetError::Cluster {
            reason: format!(
                "a cluster is already running in {0}; stop it with `cairn-testnet down --dir {0}`",
                dir.display()
            ),
        });
    }
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let dir = dir.canonicalize().map_err(io(dir))?;
    let spec = dir.join("network.toml");
    // Every node's identity first, so the spec's genesis allocation can name it.
    let mut ids = Vec::with_capacity(nodes);
    for index in 0..nodes {
        let data = dir.join(format!("node{index}"));
        let id =
            cairn_node::identity::prepare_identity(&data).map_err(|e| TestnetError::Start {
                index,
                reason: e.to_string(),
            })?;
        ids.push(id);
        // Priced so that a small job's fuel is worth a credit (at the default price of 1 per
        // million fuel units a job under a million pays nothing), and a job at the default
        // fuel limit costs at most the default maximum price.
        let config = data.join("config.toml");
        if !config.exists() {
            let text = format!(
                "# Written by cairn-testnet up.\n[price]\nper_mega_fuel = {CLUSTER_PER_MEGA_FUEL}\n"
            );
            std::fs::write(&config, text).map_err(io(&config))?;
        }
    }
    write_spec(&spec, None, &ids)?;
    std::fs::write(dir.join("pids"), "").map_err(io(&dir))?;
    let mut started = Vec::new();
    for index in 0..nodes {
        let node = start_node(cairn, &dir, &spec, index, ANY_PORT)?;
        if index == 0 {
            write_spec(&spec, Some(&node.address), &ids)?;
        }
        started.push(node);
    }
    wait_for_adverts(cairn, &mut started, nodes);
    Ok(started)
}

/// What each node of a local cluster asks per million fuel units.
pub const CLUSTER_PER_MEGA_FUEL: u64 = 100;

/// Credits each node of a local cluster holds at genesis.
pub const CLUSTER_GENESIS_CREDITS: u64 = crate::TestnetConfig::GENESIS_CREDITS;

fn write_spec(
    path: &Path,
    bootstrap: Option<&str>,
    genesis: &[cairn_protocol::NodeId],
) -> Result<(), TestnetError> {
    let bootstrap = bootstrap.map_or(String::new(), |b| format!("\"{b}\""));
    let mut text = format!(
        "# Written by cairn-testnet up: the network of this local cluster.\n\
         name = \"{CLUSTER_NETWORK}\"\nbootstrap = [{bootstrap}]\n\n\
         # Credits: every node of the cluster holds {CLUSTER_GENESIS_CREDITS} at genesis \
         (see docs/credits.md).\n[credits]\ngenesis = [\n"
    );
    for id in genesis {
        text.push_str(&format!(
            "  {{ id = \"{id}\", amount = {CLUSTER_GENESIS_CREDITS} }},\n"
        ));
    }
    text.push_str("]\n");
    std::fs::write(path, text).map_err(io(path))
}

/// Listen address of a node that takes any free port.
const ANY_PORT: &str = "/ip4/127.0.0.1/tcp/0";

/// Starts node `index` of the cluster in `dir` again, on its data dir as it was left (after
/// `down`, or after the process was killed), listening on `listen` (a multiaddr such as
/// `/ip4/127.0.0.1/tcp/4011`; `None`: any free port, so most likely not the one it had). Waits
/// until it answers; `down` stops it with the rest.
pub fn restart(
    cairn: &Path,
    dir: &Path,
    index: usize,
    listen: Option<&str>,
) -> Result<ClusterNode, TestnetError> {
    let dir = dir.canonicalize().map_err(io(dir))?;
    if !dir.join(format!("node{index}")).is_dir() {
        return Err(TestnetError::NoSuchNode { index });
    }
    if let Some((_, pid)) = running(&dir).into_iter().find(|&(i, _)| i == index) {
        return Err(TestnetError::Cluster {
            reason: format!("node {index} is still running (pid {pid}); stop it first"),
        });
    }
    let spec = dir.join("network.toml");
    start_node(cairn, &dir, &spec, index, listen.unwrap_or(ANY_PORT))
}

#[allow(clippy::zombie_processes)] // The nodes outlive `up` on purpose; `down` stops them.
fn start_node(
    cairn: &Path,
    dir: &Path,
    spec: &Path,
    index: usize,
    listen: &str,
) -> Result<ClusterNode, TestnetError> {
    let data = dir.join(format!("node{index}"));
    std::fs::create_dir_all(&data).map_err(io(&data))?;
    // A stale address file from an earlier run must not be mistaken for this one.
    let _ = std::fs::remove_file(data.join("api.addr"));
    let log_path = data.join("node.log");
    // Appended to, so a restarted node's log follows the one before its restart.
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(io(&log_path))?;
    let log_err = log.try_clone().map_err(io(&log_path))?;
    let mut cmd = Command::new(cairn);
    cmd.arg("--data-dir")
        .arg(&data)
        .args(["--api", "127.0.0.1:0", "node", "--listen", listen])
        .arg("--network")
        .arg(spec);
    if let Some(gpus) = profile_for(index, 0).gpus {
        cmd.args(["--simulate-gpu", gpus]);
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .process_group(0) // not stopped by the terminal's Ctrl-C aimed at `up`
        .spawn()
        .map_err(io(cairn))?;
    let pid = child.id();
    let mut pids = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.join("pids"))
        .map_err(io(dir))?;
    writeln!(pids, "{index} {pid}").map_err(io(dir))?;
    let start = Instant::now();
    loop {
        if let Some(address) = status(cairn, &data)
            .and_then(|s| Some(s["listen_addrs"].as_array()?.first()?.as_str()?.to_owned()))
        {
            return Ok(ClusterNode {
                index,
                dir: data,
                pid,
                address,
                adverts: 0,
            });
        }
        if let Ok(Some(exit)) = child.try_wait() {
            return Err(TestnetError::Cluster {
                reason: format!("node {index} exited ({exit}); see {}", log_path.display()),
            });
        }
        if start.elapsed() > NODE_UP_LIMIT {
            return Err(TestnetError::Cluster {
                reason: format!(
                    "node {index} did not answer within {NODE_UP_LIMIT:?}; see {} and stop the \
                     cluster with `cairn-testnet down --dir {}`",
                    log_path.display(),
                    dir.display()
                ),
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `cairn --data-dir DIR status --json`, if the node answers.
fn status(cairn: &Path, data: &Path) -> Option<serde_json::Value> {
    let out = Command::new(cairn)
        .arg("--data-dir")
        .arg(data)
        .args(["status", "--json"])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).ok())
        .flatten()
}

fn wait_for_adverts(cairn: &Path, nodes: &mut [ClusterNode], n: usize) {
    let start = Instant::now();
    loop {
        for node in nodes.iter_mut() {
            if let Some(count) = status(cairn, &node.dir).and_then(|s| s["adverts"].as_u64()) {
                node.adverts = count;
            }
        }
        let all = nodes.iter().all(|node| node.adverts >= n as u64);
        if all || start.elapsed() > ADVERTS_LIMIT {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The (index, pid) lines of `dir/pids` whose process is still a `cairn` of this cluster.
pub fn running(dir: &Path) -> Vec<(usize, u32)> {
    let Ok(text) = std::fs::read_to_string(dir.join("pids")) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|l| {
            let (i, p) = l.split_once(' ')?;
            Some((i.parse().ok()?, p.trim().parse().ok()?))
        })
        .filter(|&(_, pid)| is_cluster_process(pid, dir))
        .collect()
}

/// Whether `pid` is alive (not a zombie) and is a `cairn` process with a data dir under `dir`
/// (so a recycled pid is never signalled).
fn is_cluster_process(pid: u32, dir: &Path) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| rest.starts_with('Z')))
        .unwrap_or(true);
    let text = String::from_utf8_lossy(&cmdline);
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_owned());
    !zombie && text.contains("cairn") && text.contains(&*dir.to_string_lossy())
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args([sig, &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

/// Stops the cluster in `dir`: SIGTERM to every node still running, SIGKILL to those still
/// alive after [`TERM_GRACE`]. Returns what it stopped; the data dirs stay.
pub fn down(dir: &Path) -> Result<Vec<Stopped>, TestnetError> {
    if !dir.join("pids").exists() {
        return Err(TestnetError::Cluster {
            reason: format!(
                "{} has no pids file: no cluster was started there with `cairn-testnet up`",
                dir.display()
            ),
        });
    }
    let alive = running(dir);
    for &(_, pid) in &alive {
        signal(pid, "-TERM");
    }
    let start = Instant::now();
    while start.elapsed() < TERM_GRACE && alive.iter().any(|&(_, p)| is_cluster_process(p, dir)) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let stopped = alive
        .into_iter()
        .map(|(index, pid)| {
            let killed = is_cluster_process(pid, dir);
            if killed {
                signal(pid, "-KILL");
            }
            Stopped { index, pid, killed }
        })
        .collect();
    std::fs::remove_file(dir.join("pids")).map_err(io(dir))?;
    Ok(stopped)
}
