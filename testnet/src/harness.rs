//! [`Testnet`]: many real nodes in one process.
//!
//! Every node is a full `cairn-node` — its own libp2p swarm on 127.0.0.1 (port 0), its own
//! sled store under `DIR/nodeI`, its own control API — started through
//! [`cairn_node::testing`]. The nodes share one [`cairn_runtime::Sandbox`] (one wasmtime engine,
//! one compiled-module cache, one epoch thread) to save memory and threads; every node still
//! runs its own jobs through it. Keys are derived from the seed, so a run with the same seed
//! has the same node ids.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cairn_node::anchor::{CheckpointSpec, SimulatedChain};
use cairn_node::checkpoints::CheckpointCounts;
use cairn_node::config::{NetworkSpec, VerificationConfig};
use cairn_node::market::FaultInjection;
use cairn_node::{Node, NodeOptions, RunningNode, SharedSandbox, testing};
use cairn_protocol::NodeId;

use crate::TestnetError;
use crate::profiles::{Profile, profile_for};
use crate::rng::SimRng;

/// Jobs the shared sandbox runs at once, for all nodes together.
pub const SHARED_SANDBOX_SLOTS: usize = 64;
/// How long starting one node may take before the testnet gives up.
const NODE_START_LIMIT: Duration = Duration::from_secs(30);

/// What to start.
#[derive(Clone, Debug)]
pub struct TestnetConfig {
    /// Network name (lowercase letters, digits, `-`); concurrent testnets must differ.
    pub name: String,
    /// Number of nodes.
    pub nodes: usize,
    /// Seed for keys and profiles.
    pub seed: u64,
    /// Fault injection per node index; nodes not listed behave.
    pub faults: Vec<(usize, FaultInjection)>,
    /// Keep the node data dirs under this directory (`DIR/node0`, ...); `None` uses a
    /// temporary directory removed at the end.
    pub keep: Option<PathBuf>,
    /// Gossipsub heartbeat of every node. Default: [`TestnetConfig::heartbeat_for`] the
    /// number of nodes.
    pub heartbeat: Duration,
    /// How requesters guard their jobs (hidden replicas, audits, probation). Default: the
    /// node's defaults, as on a real network.
    pub verification: VerificationConfig,
    /// Checkpoint epochs, anchored on an in-process simulated chain (labelled `simulated`
    /// everywhere it shows), with the first nodes (up to 7) as the first committee; `None`
    /// runs without checkpoints. Default: `None`.
    pub checkpoint_epoch: Option<Duration>,
    /// An attacker's gateway: a node that gossips but never takes a job (capacity 0), so it
    /// earns no standing of its own.
    pub gateway: Option<usize>,
    /// Nodes from this index on are an attacker's flood of attractive providers: eight
    /// H100s claimed, price 1, adverts living an hour (see [`crate::attack`]).
    pub flood_from: Option<usize>,
    /// Indices of the nodes that are the network's trust roots (its genesis set); none leaves
    /// the spec's default (the first checkpoint committee, or none).
    pub trust_roots: Vec<usize>,
    /// Delay each node adds before every market and blob request it sends (simulated link
    /// latency; gossip and the DHT are not delayed). Default: none.
    pub latency: Duration,
    /// Connections each node keeps when idle ([`cairn_node::config::NodeConfig::peer_target`]).
    /// Default: [`TestnetConfig::PEER_TARGET`].
    pub peer_target: usize,
    /// Credits every node holds at genesis (the spec's `[credits]` allocation, one entry per
    /// seeded key); `None` runs a network without credits. Default:
    /// [`TestnetConfig::GENESIS_CREDITS`].
    pub genesis_credits: Option<u64>,
}

impl TestnetConfig {
    /// Credits each node of a test network holds at genesis: enough for thousands of jobs at
    /// the default maximum price.
    pub const GENESIS_CREDITS: u64 = 10_000_000_000;

    /// What each node of a test network with credits asks per million fuel units: a job at
    /// the simulation's fuel limit (500 million) costs 500 000, half the default maximum price.
    pub const PRICE_PER_MEGA_FUEL: u64 = 1_000;

    /// Sets each node's genesis credits; `None` runs a network without credits.
    pub fn with_genesis_credits(mut self, credits: Option<u64>) -> Self {
        self.genesis_credits = credits;
        self
    }

    /// `nodes` honest nodes on network `name`, seed 0, in a temporary directory.
    pub fn new(name: &str, nodes: usize) -> Self {
        Self {
            name: name.into(),
            nodes,
            seed: 0,
            faults: Vec::new(),
            keep: None,
            heartbeat: Self::heartbeat_for(nodes),
            verification: VerificationConfig::default(),
            checkpoint_epoch: None,
            trust_roots: Vec::new(),
            flood_from: None,
            gateway: None,
            latency: Duration::ZERO,
            peer_target: Self::PEER_TARGET,
            genesis_credits: Some(Self::GENESIS_CREDITS),
        }
    }

    /// Idle connections per node in simulations: half a real node's default, because both
    /// ends of every connection are file descriptors of this one process (200 nodes at 24
    /// connections each, plus the moments above it, fit a 20,000 descriptor limit).
    pub const PEER_TARGET: usize = 16;

    /// Simulated link latency on the job path.
    pub fn with_latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    /// Requesters' verification rules.
    pub fn with_verification(mut self, verification: VerificationConfig) -> Self {
        self.verification = verification;
        self
    }

    /// Node `index` as an attacker's gateway (it never takes a job).
    pub fn with_gateway(mut self, index: usize) -> Self {
        self.gateway = Some(index);
        self
    }

    /// Nodes from `index` on as an attacker's flood of attractive providers (their faults are
    /// set with [`TestnetConfig::with_fault`]).
    pub fn with_flood_from(mut self, index: usize) -> Self {
        self.flood_from = Some(index);
        self
    }

    /// The nodes at `indices` as the network's trust roots: the genesis set whose verdicts
    /// count in full (see `cairn_protocol::reputation`).
    pub fn with_trust_roots(mut self, indices: Vec<usize>) -> Self {
        self.trust_roots = indices;
        self
    }

    /// Checkpoints every `epoch`, anchored on a simulated chain.
    pub fn with_checkpoints(mut self, epoch: Duration) -> Self {
        self.checkpoint_epoch = Some(epoch);
        self
    }

    /// The default heartbeat for `nodes` nodes on one machine: 100 ms (fast mesh forming)
    /// up to 20 nodes, then 5 ms per node up to 1 s, so that the heartbeats of all nodes
    /// together stay near 200 per second instead of growing with N.
    pub fn heartbeat_for(nodes: usize) -> Duration {
        let ms = u64::try_from(nodes).unwrap_or(u64::MAX).saturating_mul(5);
        Duration::from_millis(ms.clamp(100, 1_000))
    }

    /// Sets the gossipsub heartbeat of every node.
    pub fn with_heartbeat(mut self, heartbeat: Duration) -> Self {
        self.heartbeat = heartbeat;
        self
    }

    /// Sets the seed (default 0).
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Makes node `index` misbehave with `fault`.
    pub fn with_fault(mut self, index: usize, fault: FaultInjection) -> Self {
        self.faults.push((index, fault));
        self
    }

    /// Keeps the data dirs under `dir` (default: a temporary directory).
    pub fn with_keep(mut self, dir: impl Into<PathBuf>) -> Self {
        self.keep = Some(dir.into());
        self
    }
}

/// Where the node data dirs live.
enum Root {
    Temp(tempfile::TempDir),
    Kept(PathBuf),
}

impl Root {
    fn path(&self) -> &Path {
        match self {
            Root::Temp(t) => t.path(),
            Root::Kept(p) => p,
        }
    }
}

/// One node of the testnet: how to start it, and the running node while it is up.
struct Slot {
    options: NodeOptions,
    profile: Profile,
    /// Known once the node has started (the same after every restart).
    node_id: Option<NodeId>,
    running: Option<RunningNode>,
}

/// Many real nodes in one process, with one shared clock.
///
/// Must be created inside a multi-threaded tokio runtime. Dropping it stops every node;
/// [`Testnet::shutdown`] does so in order and waits until the stores are closed.
#[must_use = "the nodes stop when the testnet is dropped"]
pub struct Testnet {
    slots: Vec<Slot>,
    /// The nodes of one side of the current partition (empty: none).
    partition: Vec<usize>,
    // After the nodes, which talk to it.
    chain: Option<SimulatedChain>,
    sandbox: SharedSandbox,
    bootstrap: Vec<String>,
    clock: Instant,
    // Dropped last, after the nodes: removes a temporary directory.
    root: Root,
}

impl Testnet {
    /// Starts the nodes one after another, each bootstrapping from node 0.
    pub async fn start(config: TestnetConfig) -> Result<Self, TestnetError> {
        let clock = Instant::now();
        let root = match &config.keep {
            Some(dir) => {
                std::fs::create_dir_all(dir).map_err(|source| TestnetError::Io {
                    path: dir.clone(),
                    source,
                })?;
                Root::Kept(dir.clone())
            }
            None => Root::Temp(tempfile::tempdir().map_err(|source| TestnetError::Io {
                path: std::env::temp_dir(),
                source,
            })?),
        };
        let mut spec = testing::spec(&config.name);
        let sandbox = shared_sandbox()?;
        let mut rng = SimRng::new(config.seed);
        let offset = rng.below(crate::profiles::MIX.len());
        let seeds: Vec<[u8; 32]> = (0..config.nodes).map(|_| rng.bytes32()).collect();
        let chain = match config.checkpoint_epoch {
            Some(epoch) => Some(with_checkpoints(&mut spec, &seeds, epoch, rng.bytes32()).await?),
            None => None,
        };
        if let Some(amount) = config.genesis_credits {
            spec.credits = Some(genesis_credits(&seeds, amount)?);
        }
        for seed in config.trust_roots.iter().filter_map(|&i| seeds.get(i)) {
            let id = cairn_node::identity::node_id_from_seed(*seed).map_err(|e| {
                TestnetError::Start {
                    index: 0,
                    reason: e.to_string(),
                }
            })?;
            spec.trust_roots.push(id.to_string());
        }
        if let Root::Kept(dir) = &root {
            write_kept_spec(dir, &spec)?;
        }
        let mut testnet = Self {
            slots: Vec::with_capacity(config.nodes),
            partition: Vec::new(),
            chain,
            sandbox: sandbox.clone(),
            bootstrap: Vec::new(),
            clock,
            root,
        };
        for (i, seed) in seeds.into_iter().enumerate() {
            let fault = config
                .faults
                .iter()
                .find(|(n, _)| *n == i)
                .map_or(FaultInjection::None, |(_, f)| *f);
            let flood = config.flood_from.is_some_and(|from| i >= from);
            let profile = if flood {
                crate::profiles::H100
            } else {
                profile_for(i, offset)
            };
            let mut slot = testnet.slot(i, &spec, profile, fault, &sandbox, seed)?;
            if config.gateway == Some(i) {
                slot.options.config.capacity = 0;
            }
            if config.genesis_credits.is_some() {
                // Priced so that even a small job's fuel is worth a credit: a price of 1 per
                // mega-fuel pays nothing for a job under a million fuel units.
                slot.options.config.price.per_mega_fuel = TestnetConfig::PRICE_PER_MEGA_FUEL;
            }
            if flood {
                slot.options.config.price.minimum = 1;
                slot.options.config.price.per_mega_fuel = 0;
                slot.options.config.price.per_gpu_second = 0;
                // The longest lifetime the advert book takes.
                slot.options.spec.advert_ttl_secs = 3_600;
            }
            if let Some(net) = slot.options.net.as_mut() {
                net.heartbeat = config.heartbeat;
                net.added_latency = config.latency;
            }
            slot.options.config.verification = config.verification;
            slot.options.config.peer_target = config.peer_target;
            testnet.slots.push(slot);
            testnet.start_slot(i).await?;
            if let Root::Kept(dir) = &testnet.root {
                write_kept_config(dir, i)?;
            }
            if i == 0 {
                testnet.bootstrap = testnet.address_of_first().await?;
            }
        }
        Ok(testnet)
    }

    fn slot(
        &self,
        i: usize,
        spec: &NetworkSpec,
        profile: Profile,
        fault: FaultInjection,
        sandbox: &SharedSandbox,
        seed: [u8; 32],
    ) -> Result<Slot, TestnetError> {
        let dir = self.root.path().join(format!("node{i}"));
        let mut options = testing::options(
            &dir,
            spec,
            profile.hardware()?,
            self.bootstrap.clone(),
            fault,
        );
        // Jobs run at once, as the simulated machine would (the node's default is this
        // machine's core count, 2 here, which would make every node look saturated).
        options.config.capacity = profile.cpu_cores;
        options.sandbox = Some(sandbox.clone());
        options.identity_seed = Some(seed);
        Ok(Slot {
            node_id: None,
            options,
            profile,
            running: None,
        })
    }

    async fn start_slot(&mut self, i: usize) -> Result<(), TestnetError> {
        let slot = self
            .slots
            .get_mut(i)
            .ok_or(TestnetError::NoSuchNode { index: i })?;
        let options = slot.options.clone();
        let started = tokio::time::timeout(NODE_START_LIMIT, Node::start(options))
            .await
            .map_err(|_| TestnetError::Start {
                index: i,
                reason: format!("did not start within {NODE_START_LIMIT:?}"),
            })?
            .map_err(|e| TestnetError::Start {
                index: i,
                reason: e.to_string(),
            })?;
        slot.node_id = Some(started.node().node_id());
        slot.running = Some(started);
        Ok(())
    }

    async fn address_of_first(&self) -> Result<Vec<String>, TestnetError> {
        let node = self.node(0).ok_or(TestnetError::NoSuchNode { index: 0 })?;
        let addr = testing::address(node).await.ok_or(TestnetError::Start {
            index: 0,
            reason: "no listen address after 5 s".into(),
        })?;
        Ok(vec![addr])
    }

    /// Cuts the network in two: every running node in `side` refuses every running node
    /// outside it, and the other way round (open connections close, new ones are refused).
    /// [`Testnet::heal`] ends it.
    pub async fn partition(&mut self, side: &[usize]) -> Result<(), TestnetError> {
        self.set_blocked(side, true).await?;
        self.partition = side.to_vec();
        Ok(())
    }

    /// Ends a [`Testnet::partition`]: the two sides accept each other again and each node of
    /// the cut-off side dials every node of the other.
    pub async fn heal(&mut self) -> Result<(), TestnetError> {
        let side = std::mem::take(&mut self.partition);
        self.set_blocked(&side, false).await?;
        for (i, node) in self.up_nodes().filter(|(i, _)| side.contains(i)) {
            for (_, other) in self.up_nodes().filter(|(j, _)| !side.contains(j)) {
                let addr = testing::address(other).await.ok_or(TestnetError::Start {
                    index: i,
                    reason: "a node lost its listen address".into(),
                })?;
                if let Ok(addr) = addr.parse() {
                    // A failed dial is retried by the next request to that peer.
                    let _ = node.net().dial(addr).await;
                }
            }
        }
        Ok(())
    }

    async fn set_blocked(&self, side: &[usize], blocked: bool) -> Result<(), TestnetError> {
        for (i, node) in self.up_nodes() {
            for (j, other) in self.up_nodes() {
                if side.contains(&i) != side.contains(&j) {
                    node.net()
                        .set_blocked(other.peer_id(), blocked)
                        .await
                        .map_err(|e| TestnetError::Start {
                            index: i,
                            reason: format!("cannot change the partition: {e}"),
                        })?;
                }
            }
        }
        Ok(())
    }

    /// Whether node 0 holds an anchored checkpoint that covers verdicts (one over an empty
    /// table proves nothing anyone would check).
    pub fn anchored_covering_verdicts(&self) -> bool {
        let Some(node) = self.node(0) else {
            return false;
        };
        let checkpoints = node.checkpoints();
        checkpoints.chain().iter().any(|c| {
            c.checkpoint.leaf_count > 0 && checkpoints.anchor_proof(c.checkpoint.epoch).is_some()
        })
    }

    /// Checkpoints finalised and anchored, as node 0 counts them; `None` without checkpoints.
    pub fn checkpoint_counts(&self) -> Option<CheckpointCounts> {
        self.chain.as_ref()?;
        Some(self.node(0)?.checkpoints().counts())
    }

    /// Number of nodes (up or crashed).
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether the testnet has no nodes.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Node `index`, if it exists and is up.
    pub fn node(&self, index: usize) -> Option<&Node> {
        self.slots.get(index)?.running.as_ref().map(|r| r.node())
    }

    /// The running node `index` (for its API address), if it is up.
    pub fn running(&self, index: usize) -> Option<&RunningNode> {
        self.slots.get(index)?.running.as_ref()
    }

    /// Node `index`'s identity (known even while it is down).
    pub fn node_id(&self, index: usize) -> Option<NodeId> {
        self.slots.get(index).and_then(|s| s.node_id)
    }

    /// Node `index`'s machine profile.
    pub fn profile(&self, index: usize) -> Option<Profile> {
        self.slots.get(index).map(|s| s.profile)
    }

    /// Node `index`'s fault injection.
    pub fn fault(&self, index: usize) -> Option<FaultInjection> {
        self.slots.get(index).map(|s| s.options.faults)
    }

    /// Node `index`'s data dir (usable with `cairn --data-dir` once the node is stopped).
    pub fn data_dir(&self, index: usize) -> Option<&Path> {
        self.slots.get(index).map(|s| s.options.data_dir.as_path())
    }

    /// The nodes that are up, with their indices.
    pub fn up_nodes(&self) -> impl Iterator<Item = (usize, &Node)> {
        (0..self.len()).filter_map(|i| Some((i, self.node(i)?)))
    }

    /// The sandbox every node runs its jobs in.
    pub fn sandbox(&self) -> &cairn_runtime::Sandbox {
        &self.sandbox.0
    }

    /// The shared clock: when the testnet started.
    pub fn clock(&self) -> Instant {
        self.clock
    }

    /// Time since the testnet started.
    pub fn elapsed(&self) -> Duration {
        self.clock.elapsed()
    }

    /// Crashes node `index`: its tasks are stopped and its store closed, as after a kill;
    /// what it had made durable stays in its data dir. A node already down is left alone.
    pub async fn crash(&mut self, index: usize) -> Result<(), TestnetError> {
        let slot = self
            .slots
            .get_mut(index)
            .ok_or(TestnetError::NoSuchNode { index })?;
        if let Some(running) = slot.running.take() {
            running.shutdown().await;
        }
        Ok(())
    }

    /// Starts a crashed node again on the same data dir (same identity, same stored jobs);
    /// a node already up is left alone.
    pub async fn restart(&mut self, index: usize) -> Result<(), TestnetError> {
        let slot = self
            .slots
            .get(index)
            .ok_or(TestnetError::NoSuchNode { index })?;
        if slot.running.is_some() {
            return Ok(());
        }
        if let Some(s) = self.slots.get_mut(index) {
            // Node 0 may have moved (if it was restarted itself): join through a live node.
            s.options.config.bootstrap.clone_from(&self.bootstrap);
        }
        self.start_slot(index).await
    }

    /// The fraction of (node, peer) pairs for which the node holds the peer's advert, over
    /// the nodes that are up: 1.0 when every node knows every node.
    pub fn advert_coverage(&self) -> f64 {
        let n = self.len();
        let up: Vec<usize> = self
            .up_nodes()
            .map(|(_, node)| node.adverts().count())
            .collect();
        if up.is_empty() || n == 0 {
            return 0.0;
        }
        let held: usize = up.iter().map(|c| (*c).min(n)).sum();
        held as f64 / (up.len() * n) as f64
    }

    /// Waits until every node that is up holds every node's advert, or `limit` passes;
    /// returns the coverage reached.
    pub async fn wait_for_adverts(&self, limit: Duration) -> f64 {
        let start = Instant::now();
        loop {
            let coverage = self.advert_coverage();
            if coverage >= 1.0 || start.elapsed() >= limit {
                return coverage;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops every node at once and waits until their stores are closed (each node waits up
    /// to 5 s for its store, so one by one this would take minutes for hundreds of nodes).
    pub async fn shutdown(mut self) {
        let mut stopping = tokio::task::JoinSet::new();
        for slot in self.slots.iter_mut().rev() {
            if let Some(running) = slot.running.take() {
                stopping.spawn(running.shutdown());
            }
        }
        while stopping.join_next().await.is_some() {}
    }
}

/// The sandbox all nodes of a testnet share. Without the pooling allocator, which was seen to
/// refuse an instance while fewer than `max_concurrent_jobs` runs held permits (see
/// `sim::reference_sandbox`); results and fuel do not depend on the allocator.
fn shared_sandbox() -> Result<SharedSandbox, TestnetError> {
    let config = cairn_runtime::SandboxConfig::default()
        .with_max_concurrent_jobs(SHARED_SANDBOX_SLOTS)
        .with_pooling(false);
    cairn_runtime::Sandbox::new(config)
        .map(SharedSandbox)
        .map_err(|e| TestnetError::Sandbox {
            reason: e.to_string(),
        })
}

/// A `[credits]` section giving each seeded node `amount` credits at genesis.
fn genesis_credits(
    seeds: &[[u8; 32]],
    amount: u64,
) -> Result<cairn_node::config::CreditsSpec, TestnetError> {
    let genesis = seeds
        .iter()
        .enumerate()
        .map(|(index, seed)| {
            let id = cairn_node::identity::node_id_from_seed(*seed).map_err(|e| {
                TestnetError::Start {
                    index,
                    reason: e.to_string(),
                }
            })?;
            Ok(cairn_node::config::GenesisEntry {
                id: id.to_string(),
                amount,
            })
        })
        .collect::<Result<Vec<_>, TestnetError>>()?;
    Ok(cairn_node::config::CreditsSpec {
        genesis,
        ..Default::default()
    })
}

/// Turns checkpoints on in `spec`: epochs of `epoch`, the nodes of the first (up to 7) seeds
/// as the first committee, anchored on a new simulated chain, which is returned.
async fn with_checkpoints(
    spec: &mut NetworkSpec,
    seeds: &[[u8; 32]],
    epoch: Duration,
    chain_seed: [u8; 32],
) -> Result<SimulatedChain, TestnetError> {
    let committee = seeds
        .iter()
        .take(7)
        .map(|seed| cairn_node::identity::node_id_from_seed(*seed))
        .collect::<Result<Vec<NodeId>, _>>()
        .map_err(|e| TestnetError::Start {
            index: 0,
            reason: e.to_string(),
        })?;
    let chain = SimulatedChain::start(chain_seed)
        .await
        .map_err(|e| TestnetError::Start {
            index: 0,
            reason: format!("cannot start the simulated chain: {e}"),
        })?;
    let epoch_ms = u64::try_from(epoch.as_millis()).unwrap_or(u64::MAX);
    spec.checkpoints = CheckpointSpec::with_committee(&committee, epoch_ms);
    spec.anchor = chain.anchor_spec(1);
    Ok(chain)
}

/// The name of the network spec a kept simulation writes into its directory.
pub const KEPT_SPEC: &str = "network.toml";

/// Writes the spec the simulation runs to `dir/network.toml`, so a kept node restarts on its
/// network and its proofs verify offline (`cairn checkpoint verify --network DIR/network.toml`).
fn write_kept_spec(dir: &Path, spec: &NetworkSpec) -> Result<(), TestnetError> {
    let path = dir.join(KEPT_SPEC);
    let text = toml::to_string_pretty(spec).map_err(|e| TestnetError::Io {
        path: path.clone(),
        source: std::io::Error::other(e),
    })?;
    let header = "# The network spec of a `cairn-testnet sim --keep` run: its nodes restart on it\n\
                  # (`cairn --data-dir DIR/nodeN node`), and their proofs verify against it.\n";
    std::fs::write(&path, format!("{header}{text}"))
        .map_err(|source| TestnetError::Io { path, source })
}

/// Writes `dir/nodeI/config.toml`: the kept spec as its network, and loopback addresses chosen
/// by the system (the simulation's ports are gone once it ends).
fn write_kept_config(dir: &Path, index: usize) -> Result<(), TestnetError> {
    let spec = std::path::absolute(dir.join(KEPT_SPEC)).map_err(|source| TestnetError::Io {
        path: dir.to_owned(),
        source,
    })?;
    let spec = toml::Value::String(spec.display().to_string());
    let text = format!(
        "# Written by `cairn-testnet sim --keep`: `cairn --data-dir THIS_DIR node` restarts this\n\
         # node on the simulation's network.\n\
         network = {spec}\n\
         listen = [\"/ip4/127.0.0.1/tcp/0\"]\n\
         api = \"127.0.0.1:0\"\n"
    );
    let path = dir.join(format!("node{index}")).join("config.toml");
    std::fs::write(&path, text).map_err(|source| TestnetError::Io { path, source })
}
