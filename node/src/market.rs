//! The job market on a node: the provider side (bid, run, report) and the driver of the
//! requester's state machine (`cairn_protocol::requester`), wired to the network and the store.
//!
//! Each submitted job gets one driver task that owns its [`RequesterJob`], feeds it events
//! (candidates, bids, reports, ticks), persists it in the `jobs` tree after every step, and
//! carries out its actions. Network calls run in their own tasks and report back as events, so
//! a slow peer never stalls a job.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn_protocol::reputation::{Applied, ReputationTable};
use cairn_protocol::requester::{Action, Context, Event, Phase, RequesterConfig, RequesterJob};
use cairn_protocol::{
    Award, Bid, BlobHash, CallForBids, Device, Envelope, FailureKind, JobId, JobReceipt, JobSpec,
    Message, NodeId, Outcome, ResultReport, Timestamp, Verdict, VerdictDecision, VerdictId,
    Verified,
};
use cairn_runtime::{Job, JobLimits, RunError, Sandbox};
use libp2p::PeerId;
use libp2p::gossipsub::MessageId;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::net::{MarketRequest, MarketResponse};
use crate::node::{Node, NodeError, now};
use crate::store::{self, Durability, GroupFlush, KvStore, Tree};

/// Calls for bids remembered (so an award can be matched to its spec).
const MAX_REMEMBERED_CALLS: usize = 4096;
/// Events queued per job.
const JOB_EVENT_QUEUE: usize = 256;
/// How often a job's driver ticks.
const TICK: Duration = Duration::from_millis(50);
/// How long a provider's bid stays valid.
const BID_LIFETIME_MS: u64 = 30_000;
/// How long a DHT answer for a capability class is reused.
const CLASS_CACHE_TTL: Duration = Duration::from_secs(10);
/// How long a DHT lookup of candidates may take.
const CLASS_LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);

/// Deliberate misbehaviour, for tests and simulations only. Off by default; a node started
/// with it is a cheater and the network treats it as one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum FaultInjection {
    /// Behave.
    #[default]
    None,
    /// Report a wrong output for every job, different from every other cheater's.
    WrongOutput,
    /// Report the same wrong output as every other colluding cheater.
    ColludingWrongOutput,
    /// Behave while on probation in this node's own table, then report the same wrong output
    /// as every other colluder ([`FaultInjection::ColludingWrongOutput`]): a colluder that
    /// earns standing first.
    ColludingOnceEstablished,
    /// Report a wrong output (its own, as [`FaultInjection::WrongOutput`]) for about
    /// `per_mille` of every thousand jobs, chosen by hashing the job id, and behave otherwise.
    WrongOutputSometimes {
        /// Jobs in a thousand that get a wrong output.
        per_mille: u16,
    },
}

impl FaultInjection {
    /// What this fault does to the honest output of `job`.
    fn corrupt(self, output: Vec<u8>, job: &JobId, me: &NodeId) -> Vec<u8> {
        let own_lie = |output: Vec<u8>| [output.as_slice(), b"cheated by ", me.as_bytes()].concat();
        match self {
            FaultInjection::None => output,
            FaultInjection::WrongOutput => own_lie(output),
            FaultInjection::ColludingWrongOutput | FaultInjection::ColludingOnceEstablished => {
                [output.as_slice(), b"colluding"].concat()
            }
            FaultInjection::WrongOutputSometimes { per_mille } => {
                let roll = blake3::keyed_hash(me.as_bytes(), job.as_bytes());
                let roll = u16::from_le_bytes([roll.as_bytes()[0], roll.as_bytes()[1]]) % 1000;
                if roll < per_mille {
                    own_lie(output)
                } else {
                    output
                }
            }
        }
    }

    /// Whether this node ever reports a wrong output.
    pub fn is_cheating(self) -> bool {
        !matches!(self, FaultInjection::None)
    }
}

/// The market's state inside a node.
pub struct MarketState {
    sandbox: Sandbox,
    reputation: Mutex<ReputationTable>,
    calls: Mutex<(HashMap<JobId, JobSpec>, VecDeque<JobId>)>,
    running: AtomicUsize,
    jobs: Mutex<HashMap<JobId, JobHandle>>,
    config: RequesterConfig,
    /// Group commit of job records and receipts.
    durable: GroupFlush,
    /// Recent DHT answers per capability class, so a burst of jobs makes one lookup.
    class_cache: Mutex<HashMap<&'static str, (Instant, Vec<NodeId>)>>,
    /// What verdicts did to this node's table, by requester (at most
    /// [`MAX_EFFECT_REQUESTERS`]): for operators and the simulation's attack report.
    effects: Mutex<HashMap<NodeId, VerdictEffects>>,
}

/// Requesters whose verdict effects a node tallies at most.
const MAX_EFFECT_REQUESTERS: usize = 65_536;

/// Applied verdict ids the live table holds at most; past it, it forgets them (its
/// one-verdict-per-job memory stays) and prunes jobs past their last verdict time.
const MAX_APPLIED_IDS: usize = 65_536;

/// Rejection reason of a valid verdict whose requester has no standing here.
const NO_STANDING: &str = "requester_without_standing";
/// Rejection reason of a verdict that finds the reputation table's job memory full.
const TABLE_FULL: &str = "reputation_table_full";

/// What one requester's verdicts did to a node's reputation table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VerdictEffects {
    /// Verdicts that passed every check.
    pub checked: u64,
    /// Verdicts that moved a score (counted or equivocation).
    pub applied: u64,
    /// Points credited to providers.
    pub credited: i64,
    /// Points debited from providers (and from the requester itself for equivocating).
    pub debited: i64,
}

#[derive(Clone)]
struct JobHandle {
    events: mpsc::Sender<Event>,
    view: Arc<Mutex<JobView>>,
}

/// What the node knows of a job it submitted.
#[derive(Clone, Debug)]
pub struct JobView {
    /// The state machine.
    pub job: RequesterJob,
    /// The verified output blob, once fetched.
    pub output: Option<BlobHash>,
    /// Why fetching the output failed, if it did.
    pub output_error: Option<String>,
}

impl MarketState {
    pub(crate) fn new(
        sandbox: Sandbox,
        kv: Arc<dyn KvStore>,
        verification: &crate::config::VerificationConfig,
        roots: Vec<NodeId>,
    ) -> Self {
        let config = RequesterConfig {
            hidden_replica_probability: f64::from(verification.hidden_replica_per_mille) / 1000.0,
            audit_probability: f64::from(verification.audit_per_mille) / 1000.0,
            require_established: verification.require_established,
            audit_scale: verification.audit_scale,
            ..RequesterConfig::default()
        };
        Self {
            sandbox,
            reputation: Mutex::new(ReputationTable::default().with_roots(roots)),
            effects: Mutex::new(HashMap::new()),
            calls: Mutex::new((HashMap::new(), VecDeque::new())),
            running: AtomicUsize::new(0),
            jobs: Mutex::new(HashMap::new()),
            config,
            durable: GroupFlush::new(kv),
            class_cache: Mutex::new(HashMap::new()),
        }
    }
}

/// The key of a stored verdict: issue time (big-endian, so keys sort by time), then its id.
fn verdict_key(issued_at: Timestamp, id: &VerdictId) -> Vec<u8> {
    let mut key = issued_at.0.to_be_bytes().to_vec();
    key.extend_from_slice(id.as_bytes());
    key
}

/// The libp2p peer id of a node id (ed25519 keys map one to one).
fn peer_of(node: &NodeId) -> Option<PeerId> {
    node.peer_id().ok()
}

/// The node id inside an ed25519 peer id.
pub fn node_of(peer: &PeerId) -> Option<NodeId> {
    let multihash = peer.as_ref();
    if multihash.code() != 0 {
        return None;
    }
    let key = libp2p::identity::PublicKey::try_decode_protobuf(multihash.digest()).ok()?;
    Some(NodeId(key.try_into_ed25519().ok()?.to_bytes()))
}

/// What a provider asks for a job: its price schedule applied to the job's fuel limit.
pub fn price_for(spec: &JobSpec, price: &crate::config::PriceConfig) -> u64 {
    let mega_fuel = spec.limits.fuel.div_ceil(1_000_000);
    price
        .minimum
        .max(mega_fuel.saturating_mul(price.per_mega_fuel))
}

fn failure_kind(e: &RunError) -> FailureKind {
    match e {
        RunError::InvalidModule { .. } => FailureKind::InvalidModule,
        RunError::MissingImport { .. } => FailureKind::MissingImport,
        RunError::NoEntryPoint => FailureKind::NoEntryPoint,
        RunError::OutOfFuel { .. } => FailureKind::OutOfFuel,
        RunError::Timeout { .. } => FailureKind::Timeout,
        RunError::OutOfMemory { .. } => FailureKind::OutOfMemory,
        RunError::StackOverflow => FailureKind::StackOverflow,
        RunError::OutputTooLarge { .. } => FailureKind::OutputTooLarge,
        RunError::Exit { code } => FailureKind::Exit(*code),
        RunError::Trap { .. } => FailureKind::Trap,
        // A host fault, or a kind this node does not know: never reported as the guest's.
        _ => FailureKind::HostFault,
    }
}

fn job_limits(spec: &JobSpec) -> JobLimits {
    JobLimits::default()
        .with_fuel(spec.limits.fuel)
        .with_memory_bytes(spec.limits.memory_bytes)
        .with_timeout(Duration::from_millis(spec.limits.wall_time_ms))
        .with_max_output_bytes(spec.limits.max_output_bytes)
}

impl Node {
    fn market(&self) -> &MarketState {
        &self.inner.market
    }

    fn sign<T: Message>(&self, message: T) -> Result<Verified<T>, NodeError> {
        Verified::sign(message, &self.inner.keypair, self.network())
            .map_err(|e| NodeError::Sign(e.to_string()))
    }

    /// The advert-book tier of `peer` in this node's live table.
    pub(crate) fn tier_of(&self, peer: &NodeId) -> cairn_protocol::adverts::Tier {
        self.market()
            .reputation
            .lock()
            .map(|t| cairn_protocol::adverts::Tier::of(&t, peer))
            .unwrap_or(cairn_protocol::adverts::Tier::Probation)
    }

    /// What each requester's verdicts did to this node's table.
    pub fn verdict_effects(&self) -> HashMap<NodeId, VerdictEffects> {
        self.market()
            .effects
            .lock()
            .map(|e| e.clone())
            .unwrap_or_default()
    }

    /// The reputation this node has computed from the verdicts it checked.
    pub fn reputation(&self) -> ReputationTable {
        self.market()
            .reputation
            .lock()
            .map(|t| t.clone())
            .unwrap_or_default()
    }

    // ----- provider -----

    pub(crate) async fn on_market_request(
        &self,
        peer: PeerId,
        request: MarketRequest,
    ) -> MarketResponse {
        match request {
            MarketRequest::CallForBids(envelope) => self.on_call_for_bids(envelope),
            MarketRequest::Award(envelope) => self.on_award(envelope),
            MarketRequest::Report(envelope) => self.on_report(peer, envelope).await,
        }
    }

    fn on_call_for_bids(&self, envelope: Envelope) -> MarketResponse {
        let call = match envelope.verify::<CallForBids>(self.network()) {
            Ok(call) => call.into_parts().1,
            Err(e) => {
                self.inner.metrics.reject("call_for_bids", e.reason());
                return MarketResponse::Declined(format!("invalid call for bids: {e}"));
            }
        };
        match self.bid_for(&call.spec) {
            Ok(bid) => MarketResponse::Bid(bid),
            Err(reason) => MarketResponse::Declined(reason),
        }
    }

    /// Decides whether and at what price to bid; remembers the spec for the award.
    fn bid_for(&self, spec: &JobSpec) -> Result<Envelope, String> {
        let job = spec.id().map_err(|e| e.to_string())?;
        let caps = self.capabilities();
        if !spec.requirements.matches(&caps) {
            return Err("this node does not meet the job's requirements".into());
        }
        let busy = self.market().running.load(Ordering::Relaxed);
        // Up to `capacity` run at once (the sandbox's permits); a bounded backlog waits.
        let backlog = self.inner.options.config.backlog_per_slot;
        let most = caps.capacity.saturating_mul(backlog.saturating_add(1)) as usize;
        if busy >= most {
            return Err(format!(
                "busy: {busy} jobs held, {} running at once plus a backlog of {}",
                caps.capacity,
                most - caps.capacity as usize
            ));
        }
        let price = price_for(spec, &self.inner.options.config.price);
        if price > spec.max_price {
            return Err(format!(
                "price {price} is above the job's maximum {}",
                spec.max_price
            ));
        }
        if let Ok(mut calls) = self.market().calls.lock() {
            let (map, order) = &mut *calls;
            if map.insert(job, spec.clone()).is_none() {
                order.push_back(job);
            }
            while order.len() > MAX_REMEMBERED_CALLS {
                if let Some(old) = order.pop_front() {
                    map.remove(&old);
                }
            }
        }
        let device = match spec.requirements.matching_gpus(&caps) {
            // Spread concurrent jobs over the group's devices.
            Some((first, gpu)) => Device::Gpu {
                index: first + u32::try_from(busy).unwrap_or(0) % gpu.count.max(1),
                model: gpu.model.clone(),
            },
            None => Device::Cpu { cores: 1 },
        };
        let bid = Bid {
            job,
            bidder: self.node_id(),
            price,
            device,
            runtime: caps.runtime,
            expires_at: now().plus_ms(BID_LIFETIME_MS),
        };
        self.sign(bid)
            .map(|b| b.envelope().clone())
            .map_err(|e| e.to_string())
    }

    fn on_award(&self, envelope: Envelope) -> MarketResponse {
        let award = match envelope.verify::<Award>(self.network()) {
            Ok(award) => award.into_parts().1,
            Err(e) => {
                self.inner.metrics.reject("award", e.reason());
                return MarketResponse::Refused(format!("invalid award: {e}"));
            }
        };
        if award.provider != self.node_id() {
            return MarketResponse::Refused("award names another provider".into());
        }
        let spec = self
            .market()
            .calls
            .lock()
            .ok()
            .and_then(|c| c.0.get(&award.job).cloned());
        let Some(spec) = spec.filter(|s| s.requester == award.requester) else {
            return MarketResponse::Refused(
                "no call for bids of this job from this requester".into(),
            );
        };
        self.market().running.fetch_add(1, Ordering::Relaxed);
        let node = self.clone();
        self.spawn(async move {
            node.run_and_report(award, spec).await;
            node.market().running.fetch_sub(1, Ordering::Relaxed);
        });
        MarketResponse::Accepted
    }

    async fn run_and_report(&self, award: Award, spec: JobSpec) {
        let (outcome, fuel_used) = match self.run_job(award.job, &spec).await {
            Ok(result) => result,
            Err(e) => {
                warn!(target: "cairn::provider", job = %award.job, error = %e, "cannot run job");
                return; // the requester times us out and replaces us
            }
        };
        let report = ResultReport {
            job: award.job,
            provider: self.node_id(),
            outcome,
            fuel_used,
            runtime: self.inner.options.runtime.clone(),
        };
        let (Ok(report), Some(requester)) = (self.sign(report), peer_of(&award.requester)) else {
            return;
        };
        let request = MarketRequest::Report(report.envelope().clone());
        if let Err(e) = self.inner.net.market(requester, request).await {
            warn!(target: "cairn::provider", job = %award.job, error = %e, "cannot deliver report");
        }
    }

    /// Fetches the blobs, runs the job in the sandbox, and stores the output as a blob.
    async fn run_job(&self, job_id: JobId, spec: &JobSpec) -> Result<(Outcome, u64), NodeError> {
        let module = self.job_blob(spec.module, &spec.requester).await?;
        let input = self.job_blob(spec.input, &spec.requester).await?;
        let sandbox = self.market().sandbox.clone();
        let prepared = tokio::task::spawn_blocking(move || sandbox.prepare(&module))
            .await
            .map_err(|e| NodeError::Sandbox(e.to_string()))?;
        let prepared = match prepared {
            Ok(p) => p,
            Err(e) => return Ok((Outcome::Failed(failure_kind(&e)), 0)),
        };
        let job = Job::new(job_id, input)
            .with_args(spec.args.clone())
            .with_limits(job_limits(spec));
        match self.market().sandbox.run(prepared, job).await {
            Ok(out) => {
                let me = self.node_id();
                let fault = match self.inner.options.faults {
                    FaultInjection::ColludingOnceEstablished
                        if self.reputation().on_probation(&me) =>
                    {
                        FaultInjection::None
                    }
                    fault => fault,
                };
                let output = fault.corrupt(out.output, &job_id, &me);
                let size = output.len() as u64;
                let digest = self.keep_blob(output).await?;
                Ok((Outcome::Output { digest, size }, out.fuel_used))
            }
            Err(e) => {
                let fuel = if matches!(e, RunError::OutOfFuel { .. }) {
                    spec.limits.fuel
                } else {
                    0
                };
                Ok((Outcome::Failed(failure_kind(&e)), fuel))
            }
        }
    }

    /// A job's blob: held here, else from the requester (which must hold it), else from any
    /// provider the DHT names. Always checked against its hash.
    async fn job_blob(&self, hash: BlobHash, requester: &NodeId) -> Result<Vec<u8>, NodeError> {
        if let Some(bytes) = self.blobs().get_verified(&hash)? {
            return Ok(bytes);
        }
        let direct = peer_of(requester).into_iter().collect();
        match self.fetch_blob_as(hash, direct, Durability::Cached).await {
            Ok(bytes) => Ok(bytes),
            Err(_) => self.fetch_blob(hash).await,
        }
    }

    async fn on_report(&self, peer: PeerId, envelope: Envelope) -> MarketResponse {
        let report = match envelope.verify::<ResultReport>(self.network()) {
            Ok(r) => r,
            Err(e) => {
                self.inner.metrics.reject("report", e.reason());
                return MarketResponse::Refused(format!("invalid report: {e}"));
            }
        };
        if peer_of(&report.signer()) != Some(peer) {
            self.inner.metrics.reject("report", "relayed");
            return MarketResponse::Refused("reports must come from their provider".into());
        }
        let handle = self
            .market()
            .jobs
            .lock()
            .ok()
            .and_then(|j| j.get(&report.message().job).cloned());
        let Some(handle) = handle else {
            self.inner.metrics.reject("report", "unknown_job");
            return MarketResponse::Refused("no such job here".into());
        };
        let awarded = handle
            .view
            .lock()
            .is_ok_and(|v| v.job.providers().contains(&report.signer()));
        if !awarded {
            self.inner.metrics.reject("report", "not_awarded");
            return MarketResponse::Refused("this provider holds no replica of the job".into());
        }
        match handle.events.send(Event::Report(report)).await {
            Ok(()) => MarketResponse::Accepted,
            Err(_) => MarketResponse::Refused("the job is finished".into()),
        }
    }

    // ----- verdicts -----

    pub(crate) async fn on_verdict(&self, source: PeerId, id: MessageId, data: Vec<u8>) {
        match self.apply_verdict_bytes(&data) {
            // Valid, but of no weight on this node: not forwarded, and not the fault of the
            // peer that forwarded it (its own table may weigh the requester otherwise).
            Err(reason @ (NO_STANDING | TABLE_FULL)) => {
                self.inner.metrics.reject("verdict", reason);
                let ignore = libp2p::gossipsub::MessageAcceptance::Ignore;
                let _ = self.inner.net.report_validation(id, source, ignore).await;
            }
            checked => {
                self.settle_gossip("verdict", source, id, checked).await;
            }
        }
    }

    /// Checks a verdict heard now (fresh, proven, from a requester with standing) and applies
    /// it; stores it so that a restart replays it. Returns whether it moved a score.
    fn apply_verdict_bytes(&self, data: &[u8]) -> Result<bool, &'static str> {
        let verdict = Envelope::open::<Verdict>(data, self.network()).map_err(|e| e.reason())?;
        verdict
            .message()
            .check_fresh(now())
            .map_err(|e| e.reason())?;
        let applied = self.apply_checked_verdict(data, &verdict, false)?;
        if applied {
            let key = verdict_key(verdict.message().issued_at, &VerdictId::of(data));
            if let Err(e) = self.inner.kv.put(Tree::Verdicts, &key, data) {
                warn!(target: "cairn::verdicts", error = %e, "cannot store verdict");
            }
        }
        Ok(applied)
    }

    /// Applies a verdict whose envelope was verified: checks its evidence, weighs it by its
    /// requester's standing in the live table, and hands what counted to the checkpoint
    /// ledger (as `restored` when replayed from the store at start: the ledger then skips
    /// what its restored table already covers).
    fn apply_checked_verdict(
        &self,
        data: &[u8],
        verdict: &Verified<Verdict>,
        restored: bool,
    ) -> Result<bool, &'static str> {
        let evidence = verdict
            .message()
            .evidence(self.network())
            .map_err(|e| e.reason())?;
        let id = VerdictId::of(data);
        let applied = {
            let mut table = self.market().reputation.lock().map_err(|_| "internal")?;
            if table.applied_ids_len() >= MAX_APPLIED_IDS {
                table.forget_applied();
                table.prune_jobs(now());
            }
            table.apply(id, &evidence)
        };
        self.tally_effect(&evidence.requester, applied);
        match applied {
            Applied::Counted { .. } | Applied::Equivocation { .. } => {
                let issued_at = verdict.message().issued_at;
                self.note_checked_verdict(id, issued_at, evidence, restored);
                Ok(applied.changed())
            }
            Applied::Duplicate => Ok(false),
            Applied::NoStanding => Err(NO_STANDING),
            Applied::Full => Err(TABLE_FULL),
        }
    }

    fn tally_effect(&self, requester: &NodeId, applied: Applied) {
        let Ok(mut effects) = self.market().effects.lock() else {
            return;
        };
        if effects.len() >= MAX_EFFECT_REQUESTERS && !effects.contains_key(requester) {
            return;
        }
        let e = effects.entry(*requester).or_default();
        e.checked += 1;
        e.applied += u64::from(applied.changed());
        match applied {
            Applied::Counted { credited, debited } => {
                e.credited += credited;
                e.debited += debited;
            }
            Applied::Equivocation { debited } => e.debited += debited,
            _ => {}
        }
    }

    /// Replays the verdicts stored by earlier runs into the live table and the checkpoint
    /// ledger (their freshness was checked when they first arrived), oldest first, so that a
    /// restarted node knows who is on probation and, on the committee, votes again. When this
    /// node holds the leaves of its last finalised checkpoint, the live table starts from them
    /// and only later verdicts are replayed; those the checkpoint covers leave the store.
    pub(crate) fn replay_verdicts(&self) {
        let Ok(keys) = self.inner.kv.keys(Tree::Verdicts, b"") else {
            return;
        };
        let covered = self.last_covered();
        if let Some((_, leaves)) = &covered
            && let Ok(mut table) = self.market().reputation.lock()
        {
            let roots: Vec<NodeId> = table.roots().copied().collect();
            *table = ReputationTable::from_leaves(*table.params(), leaves).with_roots(roots);
        }
        let cutoff = covered.map(|(cutoff, _)| cutoff);
        let mut replayed = 0usize;
        for key in keys {
            let issued = key
                .get(..8)
                .and_then(|b| b.try_into().ok())
                .map_or(0, u64::from_be_bytes);
            if cutoff.is_some_and(|c| Timestamp(issued) <= c) {
                let _ = self.inner.kv.remove(Tree::Verdicts, &key);
                continue;
            }
            let Ok(Some(bytes)) = self.inner.kv.get(Tree::Verdicts, &key) else {
                continue;
            };
            match Envelope::open::<Verdict>(&bytes, self.network()) {
                Ok(v) => {
                    replayed += usize::from(self.apply_checked_verdict(&bytes, &v, true).is_ok())
                }
                Err(_) => {
                    let _ = self.inner.kv.remove(Tree::Verdicts, &key);
                }
            }
        }
        debug!(target: "cairn::verdicts", replayed, "verdicts replayed from the store");
    }

    // ----- requester -----

    /// Submits a job: the node becomes its requester and drives it to a verdict.
    pub fn submit_job(&self, spec: JobSpec) -> Result<JobId, NodeError> {
        let id = spec.id().map_err(|e| NodeError::Sign(e.to_string()))?;
        let (job, actions) = RequesterJob::new(id, spec, now());
        self.spawn_driver(job, actions);
        Ok(id)
    }

    /// Restarts the drivers of unfinished jobs found in the store (after a restart) and lists
    /// the finished ones. A job whose record does not decode is dropped with a warning.
    pub(crate) fn resume_jobs(&self) {
        let Ok(keys) = self.inner.kv.keys(Tree::Jobs, b"") else {
            return;
        };
        for key in keys {
            let Ok(Some(bytes)) = self.inner.kv.get(Tree::Jobs, &key) else {
                continue;
            };
            match store::decode_value::<RequesterJob>(&bytes) {
                Ok(job) if job.is_finished() => {
                    let view = JobView {
                        job: job.clone(),
                        output: None,
                        output_error: None,
                    };
                    let view = Arc::new(Mutex::new(self.with_stored_output(view)));
                    let (events, _) = mpsc::channel(1);
                    if let Ok(mut jobs) = self.market().jobs.lock() {
                        jobs.insert(job.id(), JobHandle { events, view });
                    }
                }
                Ok(job) => {
                    debug!(target: "cairn::requester", job = %job.id(), "resuming job");
                    self.spawn_driver(job, Vec::new());
                }
                Err(e) => {
                    warn!(target: "cairn::requester", error = %e, "dropping an unreadable job record")
                }
            }
        }
    }

    /// Fills in the output of an accepted job when its blob is already stored here.
    fn with_stored_output(&self, mut view: JobView) -> JobView {
        if let Phase::Accepted(Outcome::Output { digest, .. }) = view.job.phase() {
            if self.blobs().contains(digest).unwrap_or(false) {
                view.output = Some(*digest);
            } else {
                view.output_error = Some("the node restarted before fetching the output".into());
            }
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
        if let Ok(mut jobs) = self.market().jobs.lock() {
            jobs.insert(job.id(), handle);
        }
        // Written now, made durable by the driver before its first action; `last` tells the
        // driver not to write the same bytes again.
        let mut last = Vec::new();
        self.record(&job, &mut last);
        let node = self.clone();
        self.spawn(async move { node.drive(job, actions, events, rx, view, last).await });
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
        if let Err(e) = self.inner.kv.put(Tree::Jobs, job.id().as_bytes(), &bytes) {
            warn!(target: "cairn::requester", job = %job.id(), error = %e, "cannot persist job");
            return false;
        }
        *last = bytes;
        true
    }

    /// Records the job and waits until the record is durable (sharing the flush with every
    /// other job that persists at the same time), so no action runs ahead of its record.
    async fn persist(&self, job: &RequesterJob, last: &mut Vec<u8>) {
        if self.record(job, last)
            && let Err(e) = self.market().durable.flush().await
        {
            warn!(target: "cairn::requester", job = %job.id(), error = %e, "cannot flush job");
        }
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
        if let Err(e) = self.market().durable.flush().await {
            warn!(target: "cairn::requester", job = %job.id(), error = %e, "cannot flush job");
        }
        self.persist(&job, &mut last).await; // writes only if spawn_driver could not
        self.execute(&job, first, &events, &view);
        let mut tick = tokio::time::interval(TICK);
        while !job.is_finished() {
            let event = tokio::select! {
                Some(event) = rx.recv() => event,
                _ = tick.tick() => Event::Tick,
            };
            let seed: [u8; 32] = rand::random();
            let actions = {
                // Held for one pure step only; cloning the table per step would cost
                // O(verdicts applied).
                let Ok(reputation) = self.market().reputation.lock() else {
                    warn!(target: "cairn::requester", job = %job.id(), "reputation lock poisoned");
                    return;
                };
                let cx = Context {
                    now: now(),
                    reputation: &reputation,
                    seed: &seed,
                    config: &self.market().config,
                };
                job.handle(event, &cx)
            };
            self.persist(&job, &mut last).await;
            if let Ok(mut v) = view.lock() {
                v.job = job.clone();
            }
            self.execute(&job, actions, &events, &view);
        }
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
            let node = self.clone();
            let events = events.clone();
            let spec = job.spec().clone();
            let view = view.clone();
            self.spawn(async move {
                match action {
                    Action::FindCandidates => {
                        let candidates = node.find_candidates(&spec).await;
                        let _ = events.send(Event::Candidates(candidates)).await;
                    }
                    Action::CallForBids(to) => node.call_for_bids(spec, to, events).await,
                    Action::Award(award) => node.send_award(award).await,
                    Action::FetchOutput { outcome, from } => {
                        node.fetch_output(outcome, from, view).await
                    }
                    Action::PublishVerdict(verdict) => {
                        node.issue_receipt(&verdict, &spec).await;
                        node.publish_verdict(*verdict).await
                    }
                    _ => {}
                }
            });
        }
    }

    /// Candidates: nodes whose adverts meet the requirements, plus DHT providers of the job's
    /// capability class when the advert book alone has fewer than a round can ask (a node
    /// that joined moments ago). A DHT provider counts only with an advert held here, so a
    /// full book makes the lookup, a walk that dials a few dozen peers, redundant.
    async fn find_candidates(&self, spec: &JobSpec) -> Vec<NodeId> {
        let mut found: BTreeSet<NodeId> = self
            .adverts_matching(&spec.requirements)
            .iter()
            .map(|a| a.peer)
            .collect();
        if found.len() > self.market().config.max_candidates {
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
            self.advert_of(n)
                .is_some_and(|a| spec.requirements.matches(&a))
        });
        found.into_iter().collect()
    }

    /// DHT providers of a capability class, reusing an answer younger than
    /// [`CLASS_CACHE_TTL`] so that a burst of jobs makes one lookup, not one each.
    async fn class_providers(&self, class: &'static str) -> Vec<NodeId> {
        let cached = self.market().class_cache.lock().ok().and_then(|cache| {
            let (at, peers) = cache.get(class)?;
            (at.elapsed() < CLASS_CACHE_TTL).then(|| peers.clone())
        });
        if let Some(peers) = cached {
            return peers;
        }
        let peers: Vec<NodeId> =
            match tokio::time::timeout(CLASS_LOOKUP_TIMEOUT, self.lookup_class(class)).await {
                Ok(Ok(peers)) => peers.iter().filter_map(node_of).collect(),
                _ => Vec::new(),
            };
        if let Ok(mut cache) = self.market().class_cache.lock() {
            cache.insert(class, (Instant::now(), peers.clone()));
        }
        peers
    }

    async fn call_for_bids(&self, spec: JobSpec, to: Vec<NodeId>, events: mpsc::Sender<Event>) {
        let Ok(call) = self.sign(CallForBids {
            spec,
            issued_at: now(),
        }) else {
            return;
        };
        for candidate in to {
            let (node, events, envelope) = (self.clone(), events.clone(), call.envelope().clone());
            self.spawn(async move {
                let Some(peer) = peer_of(&candidate) else {
                    return;
                };
                let event = match node
                    .inner
                    .net
                    .market(peer, MarketRequest::CallForBids(envelope))
                    .await
                {
                    Ok(MarketResponse::Bid(bid)) => match bid.verify::<Bid>(node.network()) {
                        Ok(bid) if bid.signer() == candidate => Event::Bid(bid.into_parts().1),
                        Ok(_) => Event::Declined {
                            peer: candidate,
                            reason: "bid signed by another node".into(),
                        },
                        Err(e) => {
                            node.inner.metrics.reject("bid", e.reason());
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

    async fn send_award(&self, award: Award) {
        let (Ok(signed), Some(peer)) = (self.sign(award.clone()), peer_of(&award.provider)) else {
            return;
        };
        match self
            .inner
            .net
            .market(peer, MarketRequest::Award(signed.envelope().clone()))
            .await
        {
            Ok(MarketResponse::Accepted) => {}
            Ok(other) => {
                debug!(target: "cairn::requester", job = %award.job, ?other, "award not taken")
            }
            Err(e) => {
                debug!(target: "cairn::requester", job = %award.job, error = %e, "award not delivered")
            }
        }
    }

    async fn fetch_output(&self, outcome: Outcome, from: Vec<NodeId>, view: Arc<Mutex<JobView>>) {
        let Outcome::Output { digest, .. } = outcome else {
            return;
        };
        let peers = from.iter().filter_map(peer_of).collect();
        let fetched = self.fetch_blob_from(digest, peers).await;
        if let Ok(mut v) = view.lock() {
            match fetched {
                Ok(_) => v.output = Some(digest),
                Err(e) => {
                    v.output_error = Some(format!("no agreeing provider delivered the output: {e}"))
                }
            }
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
            .filter_map(|e| e.clone().verify::<ResultReport>(self.network()).ok())
            .map(|r| r.into_parts().1)
            .collect();
        let receipt = JobReceipt {
            job: verdict.job,
            requester: self.node_id(),
            module: spec.module,
            input: spec.input,
            output: digest,
            output_size: size,
            fuel_used: reports.first().map_or(0, |r| r.fuel_used),
            providers: reports.iter().map(|r| r.provider).collect(),
            issued_at: now(),
        };
        let stored = self
            .sign(receipt)
            .and_then(|r| {
                r.envelope()
                    .to_bytes()
                    .map_err(|e| NodeError::Sign(e.to_string()))
            })
            .and_then(|bytes| {
                Ok(self
                    .inner
                    .kv
                    .put(Tree::Results, verdict.job.as_bytes(), &bytes)?)
            });
        let durable = match stored {
            Ok(()) => self.market().durable.flush().await.map_err(NodeError::from),
            Err(e) => Err(e),
        };
        if let Err(e) = durable {
            warn!(target: "cairn::requester", job = %verdict.job, error = %e, "cannot store receipt");
        }
    }

    /// The signed receipt of an accepted job this node submitted, once its verdict is out.
    pub fn receipt(&self, job: &JobId) -> Result<Option<Verified<JobReceipt>>, NodeError> {
        let Some(bytes) = self.inner.kv.get(Tree::Results, job.as_bytes())? else {
            return Ok(None);
        };
        Envelope::open::<JobReceipt>(&bytes, self.network())
            .map(Some)
            .map_err(|e| NodeError::Sign(e.to_string()))
    }

    /// Cancels a job this node submitted; `false` when there is no such running job.
    pub async fn cancel_job(&self, job: &JobId) -> bool {
        let handle = self
            .market()
            .jobs
            .lock()
            .ok()
            .and_then(|j| j.get(job).cloned());
        match handle {
            Some(h) => h.events.send(Event::Cancel).await.is_ok(),
            None => false,
        }
    }

    async fn publish_verdict(&self, verdict: Verdict) {
        let Ok(signed) = self.sign(verdict) else {
            return;
        };
        let Ok(bytes) = signed.envelope().to_bytes() else {
            return;
        };
        if let Err(reason) = self.apply_verdict_bytes(&bytes) {
            warn!(target: "cairn::requester", reason, "own verdict does not check out");
        }
        if let Err(e) = self.inner.net.publish(bytes).await {
            debug!(target: "cairn::requester", error = %e, "verdict not published");
        }
    }

    /// A submitted job's state, if this node submitted it.
    pub fn job(&self, id: &JobId) -> Option<JobView> {
        let jobs = self.market().jobs.lock().ok()?;
        let view = jobs.get(id)?.view.lock().ok()?;
        Some(view.clone())
    }

    /// Every job this node submitted (this run), newest first by id order.
    pub fn jobs(&self) -> Vec<JobView> {
        let Ok(jobs) = self.market().jobs.lock() else {
            return Vec::new();
        };
        jobs.values()
            .filter_map(|h| h.view.lock().ok().map(|v| v.clone()))
            .collect()
    }

    /// Whether a submitted job has ended.
    pub fn job_finished(&self, id: &JobId) -> Option<bool> {
        self.job(id).map(|v| match v.job.phase() {
            Phase::Accepted(Outcome::Output { .. }) => {
                v.output.is_some() || v.output_error.is_some()
            }
            Phase::Accepted(_) | Phase::Failed(_) => true,
            _ => false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sometimes_cheater_lies_on_about_its_share_of_jobs_and_only_there() {
        let me = NodeId([7; 32]);
        let fault = FaultInjection::WrongOutputSometimes { per_mille: 300 };
        let mut lies = 0;
        for i in 0u32..2000 {
            let job = JobId::of(&i.to_le_bytes());
            let out = fault.corrupt(b"honest".to_vec(), &job, &me);
            if out != b"honest" {
                lies += 1;
                // The same job always gets the same answer.
                assert_eq!(fault.corrupt(b"honest".to_vec(), &job, &me), out);
            }
        }
        assert!(
            (480..720).contains(&lies),
            "{lies} lies in 2000 jobs at 30%"
        );
        let never = FaultInjection::WrongOutputSometimes { per_mille: 0 };
        let job = JobId::of(b"job");
        assert_eq!(never.corrupt(b"x".to_vec(), &job, &me), b"x");
    }
}
