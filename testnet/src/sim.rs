//! `cairn-testnet sim`: start a [`Testnet`], submit jobs from a few requester nodes, check
//! every accepted output against a local run, crash and restart nodes if asked, and measure.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cairn_node::market::FaultInjection;
use cairn_node::node::now;
use cairn_protocol::requester::Phase;
use cairn_protocol::{BlobHash, JobId, Outcome};
use cairn_runtime::{Sandbox, SandboxConfig};

use crate::TestnetError;
use crate::harness::{Testnet, TestnetConfig};
use crate::jobs::{Guest, JobMix, JobPlan, SpecBlobs};
use crate::report::{Percentiles, ReputationMeans, ReputationSample, SimReport, peak_rss_bytes};
use crate::rng::SimRng;

/// How long a crashed node stays down before it is restarted.
pub const CRASH_DOWNTIME: Duration = Duration::from_secs(2);
/// How often the run checks its jobs.
const POLL: Duration = Duration::from_millis(10);
/// How often reputation is sampled for the HTML report.
const SAMPLE_EVERY: Duration = Duration::from_millis(500);
/// How often progress is printed on stderr.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);
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
struct Roles {
    requesters: usize,
    cheaters: Vec<usize>,
    /// (job index at whose submission the node crashes, node)
    crashes: Vec<(usize, usize)>,
}

impl Roles {
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

/// A submitted job the run is waiting for.
struct InFlight {
    requester: usize,
    id: JobId,
    submitted: Instant,
    expected: tokio::task::JoinHandle<Result<BlobHash, String>>,
}

/// Counts and series as jobs end.
#[derive(Default)]
struct Tally {
    accepted: usize,
    failed: usize,
    wrong: usize,
    executions: usize,
    reasons: BTreeMap<String, usize>,
    auction: Vec<u64>,
    end_to_end: Vec<u64>,
    samples: Vec<ReputationSample>,
    crashes: usize,
    restarts: usize,
}

impl Tally {
    fn ended(&self) -> usize {
        self.accepted + self.failed + self.wrong
    }

    fn fail(&mut self, reason: String) {
        self.failed += 1;
        *self.reasons.entry(reason).or_default() += 1;
    }
}

static RUNS: AtomicU64 = AtomicU64::new(0);

/// Runs a simulation. Must be called inside a multi-threaded tokio runtime.
pub async fn run(config: &SimConfig) -> Result<SimOutcome, TestnetError> {
    config.validate()?;
    let mut rng = SimRng::new(config.seed);
    let roles = Roles::draw(config, &mut rng);
    let fault = if config.colluding {
        FaultInjection::ColludingWrongOutput
    } else {
        FaultInjection::WrongOutput
    };
    let name = format!(
        "sim-{}-{}",
        std::process::id(),
        RUNS.fetch_add(1, Ordering::Relaxed)
    );
    let mut tn_config = TestnetConfig::new(&name, config.nodes).with_seed(config.seed);
    for &c in &roles.cheaters {
        tn_config = tn_config.with_fault(c, fault);
    }
    if let Some(dir) = &config.keep {
        tn_config = tn_config.with_keep(dir);
    }
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
    let mut driver = Driver {
        config,
        roles,
        rng,
        modules,
        reference: reference_sandbox()?,
        tally: Tally::default(),
        in_flight: Vec::new(),
        restarts: Vec::new(),
        next: 0,
        start: Instant::now(),
    };
    let finished = driver.drive(&mut testnet).await?;
    let outcome = driver.finish(&testnet, finished, startup_secs, coverage);
    testnet.shutdown().await;
    Ok(outcome)
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
                .store_blob(wasm.clone())
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

fn progress(config: &SimConfig, what: std::fmt::Arguments<'_>) {
    if config.progress {
        eprintln!("[cairn-testnet sim] {what}");
    }
}

/// The run's loop state.
struct Driver<'a> {
    config: &'a SimConfig,
    roles: Roles,
    rng: SimRng,
    modules: HashMap<(usize, &'static str), (BlobHash, Vec<u8>)>,
    reference: Sandbox,
    tally: Tally,
    in_flight: Vec<InFlight>,
    /// (when, node) of crashed nodes to restart.
    restarts: Vec<(Instant, usize)>,
    next: usize,
    start: Instant,
}

impl Driver<'_> {
    /// Submits and collects until every job ended or the timeout; returns whether all ended.
    async fn drive(&mut self, testnet: &mut Testnet) -> Result<bool, TestnetError> {
        let (mut last_sample, mut last_progress) = (Instant::now(), Instant::now());
        self.sample(testnet);
        while self.tally.ended() < self.config.jobs {
            if self.start.elapsed() > self.config.timeout {
                return Ok(false);
            }
            while self.in_flight.len() < self.config.concurrency && self.next < self.config.jobs {
                self.chaos(testnet).await?;
                self.submit(testnet).await?;
            }
            self.collect(testnet).await;
            self.restart_due(testnet).await?;
            if last_sample.elapsed() >= SAMPLE_EVERY {
                self.sample(testnet);
                last_sample = Instant::now();
            }
            if last_progress.elapsed() >= PROGRESS_EVERY {
                self.report_progress();
                last_progress = Instant::now();
            }
            tokio::time::sleep(POLL).await;
        }
        self.sample(testnet);
        Ok(true)
    }

    fn report_progress(&self) {
        let t = &self.tally;
        progress(
            self.config,
            format_args!(
                "{:.1} s: {}/{} jobs ended ({} accepted, {} failed, {} wrongly accepted), {} in flight",
                self.start.elapsed().as_secs_f64(),
                t.ended(),
                self.config.jobs,
                t.accepted,
                t.failed,
                t.wrong,
                self.in_flight.len()
            ),
        );
    }

    /// Crashes the nodes scheduled for the job about to be submitted.
    async fn chaos(&mut self, testnet: &mut Testnet) -> Result<(), TestnetError> {
        let due: Vec<usize> = self
            .roles
            .crashes
            .iter()
            .filter(|(at, _)| *at == self.next)
            .map(|(_, n)| *n)
            .collect();
        for node in due {
            progress(self.config, format_args!("crashing node {node}"));
            testnet.crash(node).await?;
            self.tally.crashes += 1;
            self.restarts.push((Instant::now() + CRASH_DOWNTIME, node));
        }
        Ok(())
    }

    async fn restart_due(&mut self, testnet: &mut Testnet) -> Result<(), TestnetError> {
        let now = Instant::now();
        let (due, later): (Vec<_>, Vec<_>) = self.restarts.drain(..).partition(|(t, _)| *t <= now);
        self.restarts = later;
        for (_, node) in due {
            testnet.restart(node).await?;
            self.tally.restarts += 1;
            progress(self.config, format_args!("restarted node {node}"));
        }
        Ok(())
    }

    async fn submit(&mut self, testnet: &Testnet) -> Result<(), TestnetError> {
        let index = self.next;
        self.next += 1;
        let requester = index % self.roles.requesters;
        let node = testnet
            .node(requester)
            .ok_or(TestnetError::NoSuchNode { index: requester })?;
        let plan = JobPlan::new(self.config.job_mix, index, &mut self.rng);
        let job_error = |reason: String| TestnetError::Job { index, reason };
        let (module, wasm) = self
            .modules
            .get(&(requester, plan.guest.name()))
            .cloned()
            .ok_or_else(|| job_error("module not uploaded".into()))?;
        let input = node
            .store_blob(plan.input.clone())
            .await
            .map_err(|e| job_error(format!("cannot store the input: {e}")))?;
        let blobs = SpecBlobs {
            requester: node.node_id(),
            module,
            input,
        };
        let spec = plan.spec(blobs, index as u64, self.config.replicas, now());
        let id = node
            .submit_job(spec)
            .map_err(|e| job_error(format!("submit refused: {e}")))?;
        let sandbox = self.reference.clone();
        let expected =
            tokio::task::spawn_blocking(move || plan.expected_digest(&sandbox, &wasm, id));
        self.in_flight.push(InFlight {
            requester,
            id,
            submitted: Instant::now(),
            expected,
        });
        Ok(())
    }

    /// Records every in-flight job that has ended.
    async fn collect(&mut self, testnet: &Testnet) {
        let mut still = Vec::with_capacity(self.in_flight.len());
        for job in std::mem::take(&mut self.in_flight) {
            match testnet.node(job.requester) {
                Some(node) if node.job_finished(&job.id) == Some(true) => {
                    let ended = job.submitted.elapsed();
                    self.record(node, job, ended).await;
                }
                _ => still.push(job),
            }
        }
        self.in_flight = still;
    }

    async fn record(&mut self, node: &cairn_node::Node, job: InFlight, ended: Duration) {
        let Some(view) = node.job(&job.id) else {
            return self.tally.fail("job vanished from its requester".into());
        };
        self.tally.executions += view.job.providers().len();
        let log = view.job.log();
        let start = log.first().map_or(0, |e| e.at.0);
        let at = |prefix: &str| {
            log.iter()
                .find(|e| e.what.starts_with(prefix))
                .map(|e| e.at.0.saturating_sub(start))
        };
        if let Some(award) = at("awarded") {
            self.tally.auction.push(award);
        }
        let expected = match job.expected.await {
            Ok(Ok(digest)) => digest,
            Ok(Err(e)) => return self.tally.fail(e),
            Err(e) => return self.tally.fail(format!("reference run panicked: {e}")),
        };
        match view.job.phase() {
            Phase::Accepted(Outcome::Output { digest, .. }) if *digest != expected => {
                self.tally.wrong += 1;
            }
            Phase::Accepted(Outcome::Output { .. }) if view.output.is_some() => {
                self.tally.accepted += 1;
                let e2e = at("accepted").unwrap_or(ended.as_millis() as u64);
                self.tally.end_to_end.push(e2e);
            }
            Phase::Accepted(Outcome::Output { .. }) => {
                let why = view.output_error.unwrap_or_default();
                self.tally.fail(format!("output not fetched: {why}"));
            }
            // The job succeeds when run locally, so an accepted failure is a wrong outcome.
            Phase::Accepted(_) => self.tally.wrong += 1,
            Phase::Failed(reason) => self.tally.fail(format!("{reason:?}")),
            other => self.tally.fail(format!("ended in phase {other:?}")),
        }
    }

    /// Reputation means as node 0 sees them.
    fn means(&self, testnet: &Testnet) -> ReputationMeans {
        let Some(table) = testnet.node(0).map(|n| n.reputation()) else {
            return ReputationMeans::default();
        };
        let mean = |nodes: Vec<usize>| {
            let scores: Vec<f64> = nodes
                .iter()
                .filter_map(|i| testnet.node_id(*i))
                .map(|id| table.standing(&id).score as f64)
                .collect();
            (!scores.is_empty()).then(|| scores.iter().sum::<f64>() / scores.len() as f64)
        };
        let honest = (0..testnet.len())
            .filter(|i| !self.roles.cheaters.contains(i))
            .collect();
        ReputationMeans {
            honest_mean: mean(honest).unwrap_or(0.0),
            cheater_mean: mean(self.roles.cheaters.clone()),
        }
    }

    fn sample(&mut self, testnet: &Testnet) {
        let means = self.means(testnet);
        self.tally.samples.push(ReputationSample {
            at_secs: self.start.elapsed().as_secs_f64(),
            means,
        });
    }

    fn finish(
        self,
        testnet: &Testnet,
        finished: bool,
        startup_secs: f64,
        coverage: f64,
    ) -> SimOutcome {
        let run_secs = self.start.elapsed().as_secs_f64();
        let t = &self.tally;
        let ended = t.ended();
        let peak = peak_rss_bytes();
        let table = testnet.node(0).map(|n| n.reputation()).unwrap_or_default();
        let (timeouts, dissents) = table
            .iter()
            .fold((0, 0), |(t, d), (_, s)| (t + s.timed_out, d + s.dissented));
        let report = SimReport {
            nodes: self.config.nodes,
            jobs: self.config.jobs,
            submitted: self.next,
            accepted: t.accepted,
            failed: t.failed,
            wrongly_accepted: t.wrong,
            unfinished: self.config.jobs - ended,
            finished: finished && ended == self.config.jobs,
            failure_reasons: t.reasons.clone(),
            replicas: self.config.replicas,
            job_mix: self.config.job_mix,
            concurrency: self.config.concurrency,
            seed: self.config.seed,
            cheaters: self.roles.cheaters.len(),
            colluding: self.config.colluding,
            requesters: self.roles.requesters,
            crashes: t.crashes,
            restarts: t.restarts,
            replica_timeouts: timeouts,
            dissenting_reports: dissents,
            startup_secs,
            run_secs,
            auction_ms: Percentiles::of(&t.auction),
            end_to_end_ms: Percentiles::of(&t.end_to_end),
            jobs_per_sec: t.accepted as f64 / run_secs.max(1e-9),
            executions_per_job: t.executions as f64 / ended.max(1) as f64,
            advert_coverage: coverage,
            peak_rss_bytes: peak,
            peak_rss_per_node_bytes: peak / self.config.nodes.max(1) as u64,
            reputation: self.means(testnet),
            kept_in: self.config.keep.as_ref().map(|d| d.display().to_string()),
        };
        SimOutcome {
            report,
            auction_ms: self.tally.auction,
            end_to_end_ms: self.tally.end_to_end,
            reputation: self.tally.samples,
        }
    }
}
