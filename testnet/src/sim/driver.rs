//! The loop of a run: submit, collect, crash and restart, sample.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use cairn_protocol::requester::Phase;
use cairn_protocol::{BlobHash, JobId, Outcome};
use cairn_runtime::Sandbox;

use super::{
    CRASH_DOWNTIME, POLL, PROGRESS_EVERY, Roles, SAMPLE_EVERY, SimConfig, SimOutcome, progress,
};
use crate::TestnetError;
use crate::harness::Testnet;
use crate::jobs::JobPlan;
use crate::report::{
    CreditsReport, Percentiles, ReputationMeans, ReputationSample, SimReport, peak_rss_bytes,
};
use crate::rng::SimRng;

/// A submitted job the run is waiting for.
pub(super) struct InFlight {
    requester: usize,
    id: JobId,
    submitted: Instant,
    gpu: bool,
    expected: tokio::task::JoinHandle<Result<BlobHash, String>>,
}

/// Counts and series as jobs end.
#[derive(Default)]
pub(super) struct Tally {
    accepted: usize,
    failed: usize,
    pub(super) wrong: usize,
    executions: usize,
    reasons: BTreeMap<String, usize>,
    auction: Vec<u64>,
    end_to_end: Vec<u64>,
    samples: Vec<ReputationSample>,
    crashes: usize,
    restarts: usize,
    gpu_jobs: usize,
    gpu_runs_on_cpu_only: usize,
    /// Accepted jobs, with their requester's index: checked for a payment at the end.
    accepted_jobs: Vec<(usize, cairn_protocol::JobId)>,
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

/// The run's loop state.
pub(super) struct Driver<'a> {
    pub(super) config: &'a SimConfig,
    pub(super) roles: Roles,
    pub(super) rng: SimRng,
    pub(super) modules: HashMap<(usize, &'static str), (BlobHash, Vec<u8>)>,
    pub(super) reference: Sandbox,
    pub(super) tally: Tally,
    pub(super) in_flight: Vec<InFlight>,
    /// (when, node) of crashed nodes to restart.
    pub(super) restarts: Vec<(Instant, usize)>,
    pub(super) next: usize,
    pub(super) start: Instant,
    /// When the last job ended: the run's length, whatever is waited for after it.
    pub(super) ended: Option<Instant>,
}

impl Driver<'_> {
    /// On a network with credits, waits a bounded moment until the requester of every
    /// accepted job has applied the verdict that pays for it (a requester publishes and
    /// applies its verdict just after the job is accepted).
    pub(super) async fn wait_for_payments(&self, testnet: &Testnet) {
        let credits = testnet
            .node(0)
            .is_some_and(|n| n.verdicts().balance(&n.node_id()).is_some());
        if !credits {
            return;
        }
        let paid = || {
            self.tally.accepted_jobs.iter().all(|(requester, job)| {
                testnet
                    .node(*requester)
                    .is_none_or(|n| n.verdicts().payment_of(job).is_some())
            })
        };
        cairn_node::testing::wait_for(std::time::Duration::from_secs(10), || async {
            paid().then_some(())
        })
        .await;
    }

    /// Submits and collects until every job ended or the timeout; returns whether all ended.
    pub(super) async fn drive(&mut self, testnet: &mut Testnet) -> Result<bool, TestnetError> {
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
            .blobs()
            .save(plan.input.clone())
            .await
            .map_err(|e| job_error(format!("cannot store the input: {e}")))?;
        let request = plan.request(module, input, self.config.replicas);
        let id = node
            .market()
            .submit_request(request)
            .await
            .map_err(|e| job_error(format!("submit refused: {e}")))?;
        let gpu = plan.gpu;
        let sandbox = self.reference.clone();
        let expected =
            tokio::task::spawn_blocking(move || plan.expected_digest(&sandbox, &wasm, id));
        self.in_flight.push(InFlight {
            requester,
            id,
            submitted: Instant::now(),
            gpu,
            expected,
        });
        Ok(())
    }

    /// Records every in-flight job that has ended.
    async fn collect(&mut self, testnet: &Testnet) {
        let mut still = Vec::with_capacity(self.in_flight.len());
        for job in std::mem::take(&mut self.in_flight) {
            match testnet.node(job.requester) {
                Some(node) if node.market().job_finished(&job.id) == Some(true) => {
                    let ended = job.submitted.elapsed();
                    self.record(testnet, node, job, ended).await;
                }
                _ => still.push(job),
            }
        }
        self.in_flight = still;
    }

    async fn record(
        &mut self,
        testnet: &Testnet,
        node: &cairn_node::Node,
        job: InFlight,
        ended: Duration,
    ) {
        let Some(view) = node.market().job(&job.id) else {
            return self.tally.fail("job vanished from its requester".into());
        };
        let providers = view.job.providers();
        self.tally.executions += providers.len();
        if job.gpu {
            self.tally.gpu_jobs += 1;
            let cpu_only = |id: &cairn_protocol::NodeId| {
                (0..testnet.len()).any(|i| {
                    testnet.node_id(i) == Some(*id)
                        && testnet.profile(i).is_some_and(|p| !p.has_gpu())
                })
            };
            self.tally.gpu_runs_on_cpu_only += providers.iter().filter(|p| cpu_only(p)).count();
        }
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
                self.tally.accepted_jobs.push((job.requester, job.id));
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
        let Some(table) = testnet.node(0).map(|n| n.verdicts().table()) else {
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
        // Honest: the simulation's own nodes (an attacker's come after them) that do not cheat.
        let honest = (0..self.config.nodes.min(testnet.len()))
            .filter(|i| !self.roles.cheaters.contains(i))
            .collect();
        ReputationMeans {
            honest_mean: mean(honest).unwrap_or(0.0),
            cheater_mean: mean(self.roles.cheaters.clone()),
        }
    }

    /// What credits did, from the nodes' own books; `None` on a network without credits.
    fn credits(&self, testnet: &Testnet) -> Option<CreditsReport> {
        let node0 = testnet.node(0)?;
        node0.verdicts().balance(&node0.node_id())?;
        let genesis = node0.verdicts().with_book(|b| b.supply()).unwrap_or(0);
        let (mut paid, mut accepted_unpaid) = (0u64, 0usize);
        for (requester, job) in &self.tally.accepted_jobs {
            let payment = testnet
                .node(*requester)
                .and_then(|n| n.verdicts().payment_of(job));
            match payment {
                Some(p) if p.amount > 0 => paid = paid.saturating_add(p.amount),
                _ => accepted_unpaid += 1,
            }
        }
        let conserved = (0..testnet.len()).filter_map(|i| testnet.node(i)).all(|n| {
            n.verdicts()
                .with_book(|b| b.check_conservation().is_ok())
                .unwrap_or(false)
        });
        let earned = |nodes: Vec<usize>| {
            let sums: Vec<f64> = nodes
                .iter()
                .filter_map(|i| testnet.node(*i))
                .map(|n| {
                    let received = n.verdicts().payments().into_iter();
                    received
                        .filter(|p| p.direction == "received")
                        .map(|p| p.amount as f64)
                        .sum::<f64>()
                        + 0.0 // an empty sum is -0.0
                })
                .collect();
            (!sums.is_empty()).then(|| sums.iter().sum::<f64>() / sums.len() as f64)
        };
        let honest = (0..self.config.nodes.min(testnet.len()))
            .filter(|i| !self.roles.cheaters.contains(i))
            .collect();
        Some(CreditsReport {
            genesis,
            paid,
            accepted_unpaid,
            conserved,
            honest_earned_mean: earned(honest).unwrap_or(0.0),
            cheater_earned_mean: earned(self.roles.cheaters.clone()),
        })
    }

    fn sample(&mut self, testnet: &Testnet) {
        let means = self.means(testnet);
        self.tally.samples.push(ReputationSample {
            at_secs: self.start.elapsed().as_secs_f64(),
            means,
        });
    }

    pub(super) fn finish(
        self,
        testnet: &Testnet,
        finished: bool,
        startup_secs: f64,
        coverage: f64,
    ) -> SimOutcome {
        let run_secs = self
            .ended
            .unwrap_or_else(Instant::now)
            .duration_since(self.start)
            .as_secs_f64();
        let t = &self.tally;
        let ended = t.ended();
        let peak = peak_rss_bytes();
        let table = testnet
            .node(0)
            .map(|n| n.verdicts().table())
            .unwrap_or_default();
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
            gpu_jobs: t.gpu_jobs,
            gpu_runs_on_cpu_only: t.gpu_runs_on_cpu_only,
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
            credits: self.credits(testnet),
            kept_in: self.config.keep.as_ref().map(|d| d.display().to_string()),
            checkpoints: testnet.checkpoint_counts(),
            attack: None,
        };
        SimOutcome {
            report,
            auction_ms: self.tally.auction,
            end_to_end_ms: self.tally.end_to_end,
            reputation: self.tally.samples,
        }
    }
}
