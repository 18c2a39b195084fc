//! The requester side of the market: one driver task per submitted job owns its
//! [`RequesterJob`], feeds it events (candidates, bids, reports, ticks), persists it in the
//! `jobs` tree after every step, and carries out its actions. Network calls run in their own
//! tasks and report back as events, so a slow peer never stalls a job. A restarted node
//! resumes its unfinished jobs and asks their providers for the reports it missed.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn_protocol::requester::{Action, Context as StepContext, Event, Phase, RequesterJob};
use cairn_protocol::{
    Award, Bid, BlobHash, CallForBids, Envelope, JobId, JobReceipt, JobRequest, JobSpec, NodeId,
    Outcome, ResultReport, Verdict, VerdictDecision, Verified,
};
use libp2p::PeerId;
use tokio::sync::mpsc;
use tracing::{Instrument, debug, warn};

use super::{
    CLASS_CACHE_TTL, CLASS_LOOKUP_TIMEOUT, IDLE_TICK, JOB_EVENT_QUEUE, JobHandle, JobView,
    MAX_SLEEP, Market, node_of, peer_of,
};
use crate::context::now;
use crate::error::NodeError;
use crate::net::{MarketRequest, MarketResponse};
use crate::store::{self, Tree};

/// How often a restarted requester tries to reach a provider for a report it missed
/// (waiting 0.5 s, then twice as long each time: about 8 s in all).
const PULL_TRIES: u32 = 5;
/// How often a verdict is offered to gossip, a second apart, while no peer takes it.
const VERDICT_PUBLISH_TRIES: u32 = 30;

impl Market {
    /// Submits what a user asked for: the one place a [`JobRequest`] becomes a spec, with this
    /// node as its requester and this node's sandbox as the runtime every replica must run.
    /// The module and input must be held here (providers fetch them from this node).
    pub async fn submit_request(&self, request: JobRequest) -> Result<JobId, NodeError> {
        for blob in [request.module, request.input] {
            if !self.blobs.local().contains(&blob)? {
                return Err(NodeError::MissingBlob(blob));
            }
        }
        let spec = request.into_spec(
            self.ctx.node_id(),
            self.ctx.options().runtime.clone(),
            rand::random(),
            now(),
        )?;
        self.submit(spec)
    }

    /// Submits a job spec already made: the node becomes its requester and drives it to a
    /// verdict. For specs made elsewhere (tests); users submit with [`Market::submit_request`].
    /// Refused with [`NodeError::CannotPay`] when this node's available credits do not cover
    /// the spec's replicas at its maximum price.
    pub fn submit(&self, spec: JobSpec) -> Result<JobId, NodeError> {
        let id = spec.id()?;
        self.check_can_pay(&spec)?;
        let (job, actions) = RequesterJob::new(id, spec, now());
        self.spawn_driver(job, actions);
        Ok(id)
    }

    /// Restarts the drivers of unfinished jobs found in the store (after a restart) and lists
    /// the finished ones. A job whose record does not decode is dropped with a warning.
    pub(crate) fn resume_jobs(&self) {
        let Ok(keys) = self.ctx.kv.keys(Tree::Jobs, b"") else {
            return;
        };
        for key in keys {
            let Ok(Some(bytes)) = self.ctx.kv.get(Tree::Jobs, &key) else {
                continue;
            };
            match store::decode_value::<RequesterJob>(&bytes) {
                Ok(mut job) if job.is_finished() => {
                    let view = JobView {
                        job: job.clone(),
                        output: None,
                        output_error: None,
                    };
                    let view = Arc::new(Mutex::new(self.with_stored_output(view)));
                    let (events, _) = mpsc::channel(1);
                    if let Ok(mut jobs) = self.state.jobs.lock() {
                        jobs.insert(
                            job.id(),
                            JobHandle {
                                events,
                                view: view.clone(),
                            },
                        );
                    }
                    // An accepted output the node had not fetched before it stopped, and a
                    // verdict it may have made without publishing it.
                    for action in job.resume(now(), &self.state.config) {
                        let (node, view, spec) = (self.clone(), view.clone(), job.spec().clone());
                        match action {
                            Action::FetchOutput { outcome, from } => {
                                let (id, from) = (job.id(), sealed_outputs(&job, from));
                                self.ctx.spawn(async move {
                                    node.fetch_output(id, outcome, from, view).await
                                })
                            }
                            Action::PublishVerdict(verdict) => self
                                .ctx
                                .spawn(async move { node.publish_verdict(*verdict, &spec).await }),
                            _ => {}
                        }
                    }
                }
                Ok(mut job) => {
                    debug!(target: "cairn::requester", job = %job.id(), "resuming job");
                    // Its providers may fetch its module and sealed input again: grants are
                    // written without a flush of their own, and sealed copies kept like cached
                    // ones; the job's record of its awards is durable, and sealing the input
                    // to a provider again gives the same blob.
                    let (node, id, spec, providers) =
                        (self.clone(), job.id(), job.spec().clone(), job.providers());
                    self.ctx.spawn(async move {
                        for provider in providers {
                            if let Err(e) = node.seal_input_for(id, &spec, provider).await {
                                warn!(target: "cairn::requester", job = %id, %provider, error = %e, "cannot seal the input again");
                            }
                        }
                    });
                    self.restore_escrow(&job);
                    let actions = job.resume(now(), &self.state.config);
                    self.spawn_driver(job, actions);
                }
                Err(e) => {
                    warn!(target: "cairn::requester", error = %e, "dropping an unreadable job record")
                }
            }
        }
    }

    /// Fills in the output of an accepted job when its blob is already stored here; else the
    /// job stays unfinished until [`Market::fetch_output`] fetches it again.
    fn with_stored_output(&self, mut view: JobView) -> JobView {
        if let Phase::Accepted(Outcome::Output { digest, .. }) = view.job.phase()
            && self.blobs.local().contains(digest).unwrap_or(false)
        {
            view.output = Some(*digest);
        }
        view
    }

    fn spawn_driver(&self, job: RequesterJob, actions: Vec<Action>) {
        let (events, rx) = mpsc::channel(JOB_EVENT_QUEUE);
        let view = Arc::new(Mutex::new(JobView {
            job: job.clone(),
            output: None,
            output_error: None,
        }));
        let handle = JobHandle {
            events: events.clone(),
            view: view.clone(),
        };
        if let Ok(mut jobs) = self.state.jobs.lock() {
            jobs.insert(job.id(), handle);
        }
        // Written now, made durable by the driver before its first action; `last` tells the
        // driver not to write the same bytes again.
        let mut last = Vec::new();
        self.record(&job, &mut last);
        let node = self.clone();
        // One span per job: every line its driver and its actions log carries the job id.
        let span = tracing::info_span!("job", id = %job.id());
        self.ctx.spawn(
            async move { node.drive(job, actions, events, rx, view, last).await }.instrument(span),
        );
    }

    /// Writes the job's record when its encoding differs from `last` (most ticks change
    /// nothing); returns whether it wrote.
    fn record(&self, job: &RequesterJob, last: &mut Vec<u8>) -> bool {
        let bytes = match store::encode_value(job) {
            Ok(bytes) if bytes == *last => return false,
            Ok(bytes) => bytes,
            Err(e) => {
                warn!(target: "cairn::requester", job = %job.id(), error = %e, "cannot encode job");
                return false;
            }
        };
        if let Err(e) = self.ctx.kv.put(Tree::Jobs, job.id().as_bytes(), &bytes) {
            warn!(target: "cairn::requester", job = %job.id(), error = %e, "cannot persist job");
            return false;
        }
        *last = bytes;
        true
    }

    /// Records the job and waits until the record is durable (sharing the flush with every
    /// other job that persists at the same time), so no action runs ahead of its record.
    /// Returns whether the job changed (and so was written).
    async fn persist(&self, job: &RequesterJob, last: &mut Vec<u8>) -> bool {
        if !self.record(job, last) {
            return false;
        }
        if let Err(e) = self.ctx.durable.flush().await {
            warn!(target: "cairn::requester", job = %job.id(), error = %e, "cannot flush job");
        }
        true
    }

    async fn drive(
        self,
        mut job: RequesterJob,
        first: Vec<Action>,
        events: mpsc::Sender<Event>,
        mut rx: mpsc::Receiver<Event>,
        view: Arc<Mutex<JobView>>,
        mut last: Vec<u8>,
    ) {
        // The record spawn_driver wrote becomes durable before the first action runs.
        if let Err(e) = self.ctx.durable.flush().await {
            warn!(target: "cairn::requester", job = %job.id(), error = %e, "cannot flush job");
        }
        self.persist(&job, &mut last).await; // writes only if spawn_driver could not
        self.execute(&job, first, &events, &view);
        // Whether the last tick changed nothing: then a wake time already past is not
        // tried again at once (a job stuck at a past time would spin).
        let mut idle_tick = false;
        while !job.is_finished() {
            // Asleep until the job next needs the clock (it says when), or an event comes;
            // `MAX_SLEEP` is a safety net, not a schedule.
            let mut wake = job.next_wake().map_or(MAX_SLEEP, |at| {
                Duration::from_millis(at.0.saturating_sub(now().0))
            });
            if idle_tick {
                wake = wake.max(IDLE_TICK);
            }
            let event = tokio::select! {
                Some(event) = rx.recv() => event,
                () = tokio::time::sleep(wake.min(MAX_SLEEP)) => Event::Tick,
            };
            let tick = event == Event::Tick;
            let seed: [u8; 32] = rand::random();
            let config = &self.state.config;
            let step = self.verdicts.with_table(|reputation| {
                let cx = StepContext {
                    now: now(),
                    reputation,
                    seed: &seed,
                    config,
                };
                job.handle(event, &cx)
            });
            let Some(actions) = step else {
                warn!(target: "cairn::requester", job = %job.id(), "reputation lock poisoned");
                return;
            };
            // The view is a copy of what is stored, renewed only when the job changed.
            let changed = self.persist(&job, &mut last).await;
            idle_tick = tick && !changed && actions.is_empty();
            if changed && let Ok(mut v) = view.lock() {
                v.job = job.clone();
            }
            self.execute(&job, actions, &events, &view);
        }
        // Its verdict is applied here (published before the job finishes) or it failed: what
        // it held returns.
        self.release_job(&job.id());
        debug!(target: "cairn::requester", job = %job.id(), phase = ?job.phase(), "job finished");
    }

    fn execute(
        &self,
        job: &RequesterJob,
        actions: Vec<Action>,
        events: &mpsc::Sender<Event>,
        view: &Arc<Mutex<JobView>>,
    ) {
        for action in actions {
            // The sealed copies of the output, as the agreeing providers' reports name them.
            let sources = match &action {
                Action::FetchOutput { from, .. } => sealed_outputs(job, from.clone()),
                _ => Vec::new(),
            };
            let node = self.clone();
            let events = events.clone();
            let (id, spec) = (job.id(), job.spec().clone());
            let view = view.clone();
            let span = tracing::Span::current();
            self.ctx.spawn(
                async move {
                    match action {
                        Action::FindCandidates => {
                            let candidates = node.find_candidates(&spec).await;
                            let _ = events.send(Event::Candidates(candidates)).await;
                        }
                        Action::CallForBids(to) => node.call_for_bids(spec, to, events).await,
                        Action::Award(mut award) => {
                            if let Err(reason) = node.reserve_award(id, award.provider, award.price) {
                                warn!(target: "cairn::requester", job = %id, provider = %award.provider, %reason, "award not covered by the balance");
                                let refused = Event::AwardRefused {
                                    provider: award.provider,
                                    reason: format!("not covered by this node's credits: {reason}"),
                                };
                                let _ = events.send(refused).await;
                                return;
                            }
                            // The provider may fetch the job's private module, and its input
                            // sealed to it alone.
                            match node.seal_input_for(id, &spec, award.provider).await {
                                Ok(sealed) => {
                                    award.sealed_input = Some(sealed);
                                    node.send_award(award, events).await
                                }
                                Err(e) => {
                                    warn!(target: "cairn::requester", job = %id, provider = %award.provider, error = %e, "cannot seal the input");
                                    let refused = Event::AwardRefused {
                                        provider: award.provider,
                                        reason: format!("cannot seal the input to it: {e}"),
                                    };
                                    let _ = events.send(refused).await;
                                }
                            }
                        }
                        Action::FetchOutput { outcome, .. } => {
                            node.fetch_output(id, outcome, sources, view).await
                        }
                        Action::PublishVerdict(verdict) => {
                            node.publish_verdict(*verdict, &spec).await
                        }
                        Action::PullReports(from) => node.pull_reports(id, from, events).await,
                    }
                }
                .instrument(span),
            );
        }
    }

    /// Candidates: nodes whose adverts meet the requirements, plus DHT providers of the job's
    /// capability class when the advert book alone has fewer than a round can ask (a node
    /// that joined moments ago). A DHT provider counts only with an advert held here, so a
    /// full book makes the lookup, a walk that dials a few dozen peers, redundant.
    async fn find_candidates(&self, spec: &JobSpec) -> Vec<NodeId> {
        let mut found: BTreeSet<NodeId> = self
            .adverts
            .matching(&spec.requirements)
            .iter()
            .map(|a| a.peer)
            .collect();
        if found.len() > self.state.config.max_candidates {
            return found.into_iter().collect();
        }
        let class = if spec.requirements.gpu.is_some() {
            "gpu"
        } else {
            "cpu"
        };
        found.extend(self.class_providers(class).await);
        // DHT providers without an advert cannot be checked against the requirements.
        found.retain(|n| {
            self.adverts
                .of(n)
                .is_some_and(|a| spec.requirements.matches(&a))
        });
        found.into_iter().collect()
    }

    /// DHT providers of a capability class, reusing an answer younger than
    /// [`CLASS_CACHE_TTL`] so that a burst of jobs makes one lookup, not one each.
    async fn class_providers(&self, class: &'static str) -> Vec<NodeId> {
        let cached = self.state.class_cache.lock().ok().and_then(|cache| {
            let (at, peers) = cache.get(class)?;
            (at.elapsed() < CLASS_CACHE_TTL).then(|| peers.clone())
        });
        if let Some(peers) = cached {
            return peers;
        }
        let peers: Vec<NodeId> = match tokio::time::timeout(
            CLASS_LOOKUP_TIMEOUT,
            self.adverts.lookup_class(class),
        )
        .await
        {
            Ok(Ok(peers)) => peers.iter().filter_map(node_of).collect(),
            _ => Vec::new(),
        };
        if let Ok(mut cache) = self.state.class_cache.lock() {
            cache.insert(class, (Instant::now(), peers.clone()));
        }
        peers
    }

    async fn call_for_bids(&self, spec: JobSpec, to: Vec<NodeId>, events: mpsc::Sender<Event>) {
        let Ok(call) = self.ctx.sign(CallForBids {
            spec,
            issued_at: now(),
        }) else {
            return;
        };
        for candidate in to {
            let (node, events, envelope) = (self.clone(), events.clone(), call.envelope().clone());
            self.ctx.spawn(async move {
                let Some(peer) = peer_of(&candidate) else {
                    return;
                };
                let event = match node
                    .ctx
                    .net
                    .market(peer, MarketRequest::CallForBids(envelope))
                    .await
                {
                    Ok(MarketResponse::Bid(bid)) => match bid.verify::<Bid>(node.ctx.network()) {
                        Ok(bid) if bid.signer() == candidate => Event::Bid(bid.into_parts().1),
                        Ok(_) => Event::Declined {
                            peer: candidate,
                            reason: "bid signed by another node".into(),
                        },
                        Err(e) => {
                            node.ctx.metrics.reject("bid", e.reason());
                            Event::Declined {
                                peer: candidate,
                                reason: format!("invalid bid: {e}"),
                            }
                        }
                    },
                    Ok(MarketResponse::Declined(reason)) => Event::Declined {
                        peer: candidate,
                        reason,
                    },
                    Ok(other) => Event::Declined {
                        peer: candidate,
                        reason: format!("unexpected answer {other:?}"),
                    },
                    Err(e) => Event::Declined {
                        peer: candidate,
                        reason: e.to_string(),
                    },
                };
                let _ = events.send(event).await;
            });
        }
    }

    /// Sends an award; a refusal goes back to the job as [`Event::AwardRefused`], so the
    /// replica is replaced without blaming the provider. An award that cannot be delivered
    /// waits for the report deadline as before (the provider may be gone).
    async fn send_award(&self, award: Award, events: mpsc::Sender<Event>) {
        let (Ok(signed), Some(peer)) = (self.ctx.sign(award.clone()), peer_of(&award.provider))
        else {
            return;
        };
        match self
            .ctx
            .net
            .market(peer, MarketRequest::Award(signed.envelope().clone()))
            .await
        {
            Ok(MarketResponse::Accepted) => {}
            Ok(MarketResponse::Refused(reason)) => {
                debug!(target: "cairn::requester", job = %award.job, %reason, "award refused");
                self.release_award(&award.job, &award.provider);
                let refused = Event::AwardRefused {
                    provider: award.provider,
                    reason,
                };
                let _ = events.send(refused).await;
            }
            Ok(other) => {
                debug!(target: "cairn::requester", job = %award.job, ?other, "award not taken")
            }
            Err(e) => {
                debug!(target: "cairn::requester", job = %award.job, error = %e, "award not delivered")
            }
        }
    }

    /// Issues the receipt of the verdict's job (unless one is stored: a verdict published
    /// again after a restart) and publishes the verdict, trying again while no peer takes it
    /// (a node that just started has none yet).
    async fn publish_verdict(&self, verdict: Verdict, spec: &JobSpec) {
        let stored = self.ctx.kv.get(Tree::Results, verdict.job.as_bytes());
        if !matches!(stored, Ok(Some(_))) {
            self.issue_receipt(&verdict, spec).await;
        }
        for _ in 0..VERDICT_PUBLISH_TRIES {
            if self.verdicts.publish(verdict.clone()).await {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Signs and stores (in the `results` tree) the receipt of an accepted job with an output.
    async fn issue_receipt(&self, verdict: &Verdict, spec: &JobSpec) {
        let VerdictDecision::Accepted(Outcome::Output { digest, size }) = verdict.decision else {
            return;
        };
        let reports: Vec<ResultReport> = verdict
            .agreeing
            .iter()
            .filter_map(|e| e.clone().verify::<ResultReport>(self.ctx.network()).ok())
            .map(|r| r.into_parts().1)
            .collect();
        let receipt = JobReceipt {
            job: verdict.job,
            requester: self.ctx.node_id(),
            module: spec.module,
            input: spec.input,
            output: digest,
            output_size: size,
            fuel_used: reports.first().map_or(0, |r| r.fuel_used),
            providers: reports.iter().map(|r| r.provider).collect(),
            issued_at: now(),
        };
        let stored = self
            .ctx
            .sign(receipt)
            .and_then(|r| Ok(r.envelope().to_bytes()?))
            .and_then(|bytes| {
                Ok(self
                    .ctx
                    .kv
                    .put(Tree::Results, verdict.job.as_bytes(), &bytes)?)
            });
        let durable = match stored {
            Ok(()) => self.ctx.durable.flush().await.map_err(NodeError::from),
            Err(e) => Err(e),
        };
        if let Err(e) = durable {
            warn!(target: "cairn::requester", job = %verdict.job, error = %e, "cannot store receipt");
        }
    }

    /// The signed receipt of an accepted job this node submitted, once its verdict is out.
    pub fn receipt(&self, job: &JobId) -> Result<Option<Verified<JobReceipt>>, NodeError> {
        let Some(bytes) = self.ctx.kv.get(Tree::Results, job.as_bytes())? else {
            return Ok(None);
        };
        Envelope::open::<JobReceipt>(&bytes, self.ctx.network())
            .map(Some)
            .map_err(|source| NodeError::StoredRecord {
                what: "receipt",
                source,
            })
    }

    /// Cancels a job this node submitted; `false` when there is no such running job.
    pub async fn cancel(&self, job: &JobId) -> bool {
        let handle = self
            .state
            .jobs
            .lock()
            .ok()
            .and_then(|j| j.get(job).cloned());
        match handle {
            Some(h) => h.events.send(Event::Cancel).await.is_ok(),
            None => false,
        }
    }

    /// A submitted job's state, if this node submitted it.
    pub fn job(&self, id: &JobId) -> Option<JobView> {
        let jobs = self.state.jobs.lock().ok()?;
        let view = jobs.get(id)?.view.lock().ok()?;
        Some(view.clone())
    }

    /// Every job this node submitted (this run), newest first by id order.
    pub fn jobs(&self) -> Vec<JobView> {
        let Ok(jobs) = self.state.jobs.lock() else {
            return Vec::new();
        };
        jobs.values()
            .filter_map(|h| h.view.lock().ok().map(|v| v.clone()))
            .collect()
    }

    /// Whether a submitted job has ended (see [`JobView::finished`]).
    pub fn job_finished(&self, id: &JobId) -> Option<bool> {
        self.job(id).map(|v| v.finished())
    }

    /// A provider's signed report of a job this node submitted, pushed by the provider: taken
    /// only from the provider itself and only for a job it holds a replica of, then handed to
    /// the job's driver.
    pub(super) async fn on_report(&self, peer: PeerId, envelope: Envelope) -> MarketResponse {
        let (handle, report) = match self.check_report(peer, envelope, None) {
            Ok(checked) => checked,
            Err(why) => return MarketResponse::Refused(why),
        };
        match handle.events.send(Event::Report(Box::new(report))).await {
            Ok(()) => MarketResponse::Accepted,
            Err(_) => MarketResponse::Refused("the job is finished".into()),
        }
    }

    /// Checks a report, pushed by `peer` or pulled from it (then `asked` is the job asked
    /// for): a valid signature on this network, signed by `peer` itself, for a job this node
    /// runs (the one asked for, when pulled) and of which `peer` holds a replica.
    fn check_report(
        &self,
        peer: PeerId,
        envelope: Envelope,
        asked: Option<JobId>,
    ) -> Result<(JobHandle, Verified<ResultReport>), String> {
        let report = match envelope.verify::<ResultReport>(self.ctx.network()) {
            Ok(r) => r,
            Err(e) => {
                self.ctx.metrics.reject("report", e.reason());
                return Err(format!("invalid report: {e}"));
            }
        };
        if peer_of(&report.signer()) != Some(peer) {
            self.ctx.metrics.reject("report", "relayed");
            return Err("reports must come from their provider".into());
        }
        let job = report.message().job;
        if asked.is_some_and(|asked| asked != job) {
            self.ctx.metrics.reject("report", "other_job");
            return Err("a report of another job than the one asked for".into());
        }
        let handle = self
            .state
            .jobs
            .lock()
            .ok()
            .and_then(|j| j.get(&job).cloned());
        let Some(handle) = handle else {
            self.ctx.metrics.reject("report", "unknown_job");
            return Err("no such job here".into());
        };
        let awarded = handle
            .view
            .lock()
            .is_ok_and(|v| v.job.providers().contains(&report.signer()));
        if !awarded {
            self.ctx.metrics.reject("report", "not_awarded");
            return Err("this provider holds no replica of the job".into());
        }
        Ok((handle, report))
    }

    /// Asks each provider in `from` for its report of `job` (the node restarted and may have
    /// missed it) and hands each one got to the job. A provider still running pushes its
    /// report when it is done.
    async fn pull_reports(&self, job: JobId, from: Vec<NodeId>, events: mpsc::Sender<Event>) {
        for provider in from {
            let (node, events) = (self.clone(), events.clone());
            self.ctx.spawn(async move {
                if let Some(report) = node.pull_report(job, &provider).await {
                    let _ = events.send(Event::Report(Box::new(report))).await;
                }
            });
        }
    }

    /// One provider's report of `job`, asked for up to [`PULL_TRIES`] times while the provider
    /// cannot be reached, and checked exactly as a pushed one.
    async fn pull_report(&self, job: JobId, provider: &NodeId) -> Option<Verified<ResultReport>> {
        let peer = peer_of(provider)?;
        let mut wait = Duration::from_millis(500);
        for _ in 0..PULL_TRIES {
            match self
                .ctx
                .net
                .market(peer, MarketRequest::FetchReport(job))
                .await
            {
                Ok(MarketResponse::Report(envelope)) => {
                    let checked = self.check_report(peer, envelope, Some(job));
                    if let Err(why) = &checked {
                        debug!(target: "cairn::requester", %job, %why, "pulled report refused");
                    }
                    return checked.ok().map(|(_, report)| report);
                }
                Ok(other) => {
                    debug!(target: "cairn::requester", %job, answer = ?other, "no report pulled");
                    return None;
                }
                Err(e) => {
                    debug!(target: "cairn::requester", %job, error = %e, "cannot ask for a report yet")
                }
            }
            tokio::time::sleep(wait).await;
            wait *= 2;
        }
        None
    }
}

/// Each of `from` (providers that reported the accepted outcome) with the blob its report
/// names as its copy of the output sealed to this requester.
fn sealed_outputs(job: &RequesterJob, from: Vec<NodeId>) -> Vec<(NodeId, Option<BlobHash>)> {
    from.into_iter()
        .map(|provider| (provider, job.sealed_output(&provider)))
        .collect()
}
