//! `cairn-testnet sim`: start a [`Testnet`], submit jobs from a few requester nodes, check
//! every accepted output against a local run, crash and restart nodes if asked, and measure.

mod driver;

use cairn_node::config::VerificationConfig;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cairn_node::market::FaultInjection;
use cairn_protocol::BlobHash;
use cairn_runtime::{Sandbox, SandboxConfig};

use self::driver::{Driver, Tally};
use crate::TestnetError;
use crate::attack::{AttackKind, Attacker};
use crate::flood::{Victim, flood_connections};
use crate::harness::{Testnet, TestnetConfig};
use crate::jobs::{Guest, JobMix};
use crate::report::{ReputationSample, SimReport};
use crate::rng::SimRng;

/// How long a crashed node stays down before it is restarted.
pub const CRASH_DOWNTIME: Duration = Duration::from_secs(2);
/// How often the run checks its jobs.
pub(crate) const POLL: Duration = Duration::from_millis(10);
/// How often reputation is sampled for the HTML report.
pub(crate) const SAMPLE_EVERY: Duration = Duration::from_millis(500);
/// How often progress is printed on stderr.
pub(crate) const PROGRESS_EVERY: Duration = Duration::from_secs(2);
/// One requester per this many nodes (at least one).
const NODES_PER_REQUESTER: usize = 10;
/// Most nodes a simulation starts.
pub const MAX_NODES: usize = 1_000;

/// What a simulation does. The defaults are those of `cairn-testnet sim` without flags.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Nodes to start (at least `replicas + 1`).
    pub nodes: usize,
    /// Jobs to submit.
    pub jobs: usize,
    /// Replicas per job; the quorum is a strict majority of them.
    pub replicas: u8,
    /// Fraction of the non-requester nodes that cheat.
    pub cheaters: f64,
    /// Whether cheaters report the same wrong output (collude) instead of each their own.
    pub colluding: bool,
    /// Fraction of the non-requester nodes that crash once during the run (restarted after
    /// [`CRASH_DOWNTIME`] on the same data dir).
    pub crash_rate: f64,
    /// Which jobs.
    pub job_mix: JobMix,
    /// Jobs in flight at once.
    pub concurrency: usize,
    /// Seed for everything chosen at random.
    pub seed: u64,
    /// Keep node data dirs here (`DIR/node0`, ...).
    pub keep: Option<PathBuf>,
    /// Print progress lines on stderr.
    pub progress: bool,
    /// Give up after this long (the run then counts as not finished).
    pub timeout: Duration,
    /// Reputation checkpoint epoch, anchored on a simulated chain; `None` turns checkpoints
    /// off.
    pub checkpoint_epoch: Option<Duration>,
    /// How requesters guard their jobs (hidden replicas, audits, probation).
    pub verification: VerificationConfig,
    /// Simulated link latency added before every market and blob request.
    pub latency: Duration,
    /// An attacker next to the honest nodes, and what it does (see [`crate::attack`]).
    pub attack: Option<AttackKind>,
    /// Identities the attacker holds (its gateway node comes on top of `nodes`).
    pub sybils: usize,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            nodes: 20,
            jobs: 200,
            replicas: 3,
            cheaters: 0.0,
            colluding: false,
            crash_rate: 0.0,
            job_mix: JobMix::Trivial,
            concurrency: 32,
            seed: 1,
            keep: None,
            progress: false,
            timeout: Duration::from_secs(600),
            checkpoint_epoch: Some(Duration::from_secs(1)),
            verification: VerificationConfig::default(),
            latency: Duration::ZERO,
            attack: None,
            sybils: 0,
        }
    }
}

impl SimConfig {
    /// Checks the settings.
    pub fn validate(&self) -> Result<(), TestnetError> {
        let bad = |field, reason: String| Err(TestnetError::Config { field, reason });
        if self.replicas == 0 {
            return bad("replicas", "use at least 1".into());
        }
        if self.nodes < usize::from(self.replicas) + 1 || self.nodes > MAX_NODES {
            return bad(
                "nodes",
                format!(
                    "use {} to {MAX_NODES} (replicas + 1 at least)",
                    self.replicas + 1
                ),
            );
        }
        for (field, v) in [("cheaters", self.cheaters), ("crash-rate", self.crash_rate)] {
            if !(0.0..=1.0).contains(&v) {
                return bad(field, format!("{v} is not a fraction between 0 and 1"));
            }
        }
        if self.concurrency == 0 {
            return bad("concurrency", "use at least 1".into());
        }
        Ok(())
    }

    fn requesters(&self) -> usize {
        (self.nodes / NODES_PER_REQUESTER).max(1)
    }
}

/// Who does what in a run.
pub(crate) struct Roles {
    pub(crate) requesters: usize,
    pub(crate) cheaters: Vec<usize>,
    /// (job index at whose submission the node crashes, node)
    pub(crate) crashes: Vec<(usize, usize)>,
}

/// Providers among the trust roots besides the requesters: enough for a replica of every job
/// to go to an established provider from the start.
const ROOT_PROVIDERS: usize = 6;

impl Roles {
    /// The network's genesis set: the requesters and the first [`ROOT_PROVIDERS`] honest
    /// other nodes. Their verdicts count, and every other node's standing derives from work
    /// done for them. Cheaters are never roots: they join later, as anyone can. With
    /// `colluding`, every node is a root instead: the colluders are established members of the
    /// network (long-standing, never on probation) that cheat together, the hardest case for
    /// the requesters' checks.
    pub(crate) fn roots(&self, config: &SimConfig) -> Vec<usize> {
        if config.colluding {
            return (0..config.nodes).collect();
        }
        let providers = (self.requesters..config.nodes)
            .filter(|i| !self.cheaters.contains(i))
            .take(ROOT_PROVIDERS);
        (0..self.requesters).chain(providers).collect()
    }

    fn draw(config: &SimConfig, rng: &mut SimRng) -> Self {
        let requesters = config.requesters();
        let others: Vec<usize> = (requesters..config.nodes).collect();
        let count = |f: f64| ((f * others.len() as f64).round() as usize).min(others.len());
        let cheaters = rng.choose(&others, count(config.cheaters));
        let victims = rng.choose(&others, count(config.crash_rate));
        let (lo, hi) = (
            config.jobs / 10,
            (config.jobs * 6 / 10).max(config.jobs / 10 + 1),
        );
        let crashes = victims
            .into_iter()
            .map(|n| (lo + rng.below(hi - lo), n))
            .collect();
        Self {
            requesters,
            cheaters,
            crashes,
        }
    }
}

/// Everything a run produced: the report, and the raw series behind it (for `--html`).
#[derive(Clone, Debug)]
pub struct SimOutcome {
    /// The report.
    pub report: SimReport,
    /// Auction latency of each awarded job, in ms.
    pub auction_ms: Vec<u64>,
    /// End-to-end latency of each accepted job, in ms.
    pub end_to_end_ms: Vec<u64>,
    /// Mean reputation over time.
    pub reputation: Vec<ReputationSample>,
}

static RUNS: AtomicU64 = AtomicU64::new(0);

/// Runs a simulation. Must be called inside a multi-threaded tokio runtime.
pub async fn run(config: &SimConfig) -> Result<SimOutcome, TestnetError> {
    config.validate()?;
    let mut rng = SimRng::new(config.seed);
    let roles = Roles::draw(config, &mut rng);
    // Colluders earn standing honestly first, then cheat together: established colluders.
    let fault = if config.colluding {
        FaultInjection::ColludingOnceEstablished
    } else {
        FaultInjection::WrongOutput
    };
    let name = format!(
        "sim-{}-{}",
        std::process::id(),
        RUNS.fetch_add(1, Ordering::Relaxed)
    );
    // An attacker's gateway is one more node, after the honest ones; a flood of providers
    // comes after it.
    let flood = if config.attack == Some(AttackKind::FloodAdverts) {
        config.sybils
    } else {
        0
    };
    let total = config.nodes + usize::from(config.attack.is_some()) + flood;
    let mut tn_config = TestnetConfig::new(&name, total).with_seed(config.seed);
    if config.attack.is_some() {
        tn_config = tn_config.with_gateway(config.nodes);
    }
    if flood > 0 {
        tn_config = tn_config.with_flood_from(config.nodes + 1);
        for i in config.nodes + 1..total {
            tn_config = tn_config.with_fault(i, FaultInjection::ColludingWrongOutput);
        }
    }
    for &c in &roles.cheaters {
        tn_config = tn_config.with_fault(c, fault);
    }
    if let Some(dir) = &config.keep {
        tn_config = tn_config.with_keep(dir);
    }
    if let Some(epoch) = config.checkpoint_epoch {
        tn_config = tn_config.with_checkpoints(epoch);
    }
    tn_config = tn_config
        .with_trust_roots(roles.roots(config))
        .with_verification(config.verification)
        .with_latency(config.latency);
    progress(config, format_args!("starting {} nodes", config.nodes));
    let mut testnet = Testnet::start(tn_config).await?;
    let startup_secs = testnet.elapsed().as_secs_f64();
    let limit =
        Duration::from_millis(10_000 + 200 * config.nodes as u64).min(Duration::from_secs(120));
    let coverage = testnet.wait_for_adverts(limit).await;
    progress(
        config,
        format_args!(
            "{} nodes up in {startup_secs:.1} s; advert coverage {:.1}%",
            config.nodes,
            coverage * 100.0
        ),
    );
    let modules = upload_modules(&testnet, roles.requesters).await?;
    let reference = reference_sandbox()?;
    compile_once(&[testnet.sandbox(), &reference], &modules).await?;
    let mut driver = Driver {
        config,
        roles,
        rng,
        modules,
        reference,
        tally: Tally::default(),
        in_flight: Vec::new(),
        restarts: Vec::new(),
        next: 0,
        start: Instant::now(),
        ended: None,
    };
    let attack = match config.attack {
        Some(kind) => Some(start_attack(config, kind, &testnet).await?),
        None => None,
    };
    let finished = driver.drive(&mut testnet).await?;
    driver.ended = Some(Instant::now());
    driver.wait_for_payments(&testnet).await;
    let wrongly_accepted = driver.tally.wrong;
    let mut outcome = driver.finish(&testnet, finished, startup_secs, coverage);
    if let Some((stop, task)) = attack {
        let _ = stop.send(());
        if let Ok((attacker, gateway)) = task.await {
            let honest: Vec<&cairn_node::Node> =
                (0..config.nodes).filter_map(|i| testnet.node(i)).collect();
            outcome.report.attack = Some(attacker.report(&gateway, &honest, wrongly_accepted));
        }
    }
    if let Some(epoch) = config.checkpoint_epoch {
        // A run shorter than an epoch or two would report no anchored checkpoint over its
        // verdicts: give the committee a bounded moment (after the throughput figures were
        // taken).
        progress(
            config,
            format_args!("waiting for an anchored checkpoint that covers verdicts"),
        );
        let limit = epoch.saturating_mul(4) + Duration::from_secs(5);
        cairn_node::testing::wait_for(limit, || async {
            testnet.anchored_covering_verdicts().then_some(())
        })
        .await;
        outcome.report.checkpoints = testnet.checkpoint_counts();
    }
    testnet.shutdown().await;
    Ok(outcome)
}

/// A running attack: the sender that stops it, and the task that yields the attacker (for its
/// report) and its gateway node.
type RunningAttack = (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<(Attacker, cairn_node::Node)>,
);

/// Starts the attacker on the node after the honest ones, publishing every
/// [`crate::attack::ATTACK_PERIOD`] until told to stop.
async fn start_attack(
    config: &SimConfig,
    kind: AttackKind,
    testnet: &Testnet,
) -> Result<RunningAttack, TestnetError> {
    let mut addresses = Vec::new();
    if kind == AttackKind::FloodConnections {
        for node in (0..config.nodes).filter_map(|i| testnet.node(i)) {
            if let Some(address) = cairn_node::testing::address(node).await
                && let Ok(address) = address.parse()
            {
                addresses.push(address);
            }
        }
    }
    let gateway = testnet
        .node(config.nodes)
        .ok_or(TestnetError::NoSuchNode {
            index: config.nodes,
        })?
        .clone();
    let honest: Vec<Victim> = (0..config.nodes)
        .filter_map(|i| testnet.node(i))
        .map(|n| Victim {
            peer: n.peer_id(),
            id: n.node_id(),
        })
        .collect();
    let flood: Vec<cairn_protocol::NodeId> = (config.nodes + 1..)
        .map_while(|i| testnet.node(i).map(|n| n.node_id()))
        .collect();
    // The attacker owns its gateway, so it holds the gateway's key.
    let data_dir = testnet
        .data_dir(config.nodes)
        .ok_or(TestnetError::NoSuchNode {
            index: config.nodes,
        })?;
    let gateway_key = cairn_node::identity::load_or_create(data_dir, gateway.kv().as_ref(), None)
        .map_err(|e| TestnetError::Start {
        index: config.nodes,
        reason: format!("cannot read the gateway's key: {e}"),
    })?;
    let mut attacker = Attacker::new(
        kind,
        config.sybils,
        flood,
        gateway_key,
        *gateway.network(),
        config.seed,
    );
    let (stop_dialing, dialing_stopped) = tokio::sync::watch::channel(false);
    let dialers = if kind == AttackKind::FloodConnections {
        flood_connections(
            config.sybils,
            addresses,
            attacker.connection_counts(),
            dialing_stopped,
        )
    } else {
        Vec::new()
    };
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(crate::attack::ATTACK_PERIOD);
        loop {
            tokio::select! {
                _ = &mut stopped => break,
                _ = tick.tick() => {
                    attacker.strike(&gateway, &honest, cairn_node::now()).await;
                }
            }
        }
        let _ = stop_dialing.send(true);
        for dialer in dialers {
            let _ = dialer.await;
        }
        (attacker, gateway)
    });
    Ok((stop, task))
}

/// The guest modules, stored once on every requester.
async fn upload_modules(
    testnet: &Testnet,
    requesters: usize,
) -> Result<HashMap<(usize, &'static str), (BlobHash, Vec<u8>)>, TestnetError> {
    let mut modules = HashMap::new();
    for guest in Guest::ALL {
        let wasm = cairn_runtime::guests::bytes(guest.name()).map_err(|e| TestnetError::Job {
            index: 0,
            reason: format!(
                "example guest {} missing ({e}); build the workspace with cargo so that \
                 cairn-runtime's build script makes it",
                guest.name()
            ),
        })?;
        for r in 0..requesters {
            let node = testnet
                .node(r)
                .ok_or(TestnetError::NoSuchNode { index: r })?;
            let hash = node
                .blobs()
                .save(wasm.clone())
                .await
                .map_err(|e| TestnetError::Job {
                    index: 0,
                    reason: format!("cannot store module {}: {e}", guest.name()),
                })?;
            modules.insert((r, guest.name()), (hash, wasm.clone()));
        }
    }
    Ok(modules)
}

/// Compiles every guest in each sandbox before the first job. Without this, the first
/// replicas of every node miss the module cache at the same moment and each compiles the
/// module again (the cache has no single-flight), which costs seconds of CPU at the start.
async fn compile_once(
    sandboxes: &[&Sandbox],
    modules: &HashMap<(usize, &'static str), (BlobHash, Vec<u8>)>,
) -> Result<(), TestnetError> {
    for sandbox in sandboxes {
        for guest in Guest::ALL {
            let Some((_, wasm)) = modules.get(&(0, guest.name())).cloned() else {
                continue;
            };
            let sandbox = (*sandbox).clone();
            let compiled = tokio::task::spawn_blocking(move || sandbox.prepare(&wasm).is_ok());
            if !compiled.await.unwrap_or(false) {
                return Err(TestnetError::Sandbox {
                    reason: format!("example guest {} does not compile", guest.name()),
                });
            }
        }
    }
    Ok(())
}

/// The sandbox of the reference runs. Without the pooling allocator: with it, runs from
/// several threads were seen to trap with "maximum concurrent limit of 2 for memory stripe 0
/// reached" although the sandbox's permits allow only 2 at once (a runtime issue to look at).
fn reference_sandbox() -> Result<Sandbox, TestnetError> {
    let config = SandboxConfig::default()
        .with_max_concurrent_jobs(2)
        .with_pooling(false);
    Sandbox::new(config).map_err(|e| TestnetError::Sandbox {
        reason: e.to_string(),
    })
}

pub(crate) fn progress(config: &SimConfig, what: std::fmt::Arguments<'_>) {
    if config.progress {
        eprintln!("[cairn-testnet sim] {what}");
    }
}
