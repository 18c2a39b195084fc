//! The market service: the provider side (`provider.rs`: bid, run, report) and the driver of
//! the requester's state machine (`requester.rs`, over `cairn_protocol::requester`), wired to
//! the network, the blob service and the store.

use std::collections::HashMap;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn_protocol::credits::Escrow;
use cairn_protocol::requester::{Event, Phase, RequesterConfig, RequesterJob};
use cairn_protocol::{BlobHash, FailureKind, JobId, JobSpec, NodeId, Outcome};
use cairn_runtime::{JobLimits, RunError, Sandbox};
use libp2p::PeerId;
use tokio::sync::mpsc;

use crate::adverts::Adverts;
use crate::blobs::Blobs;
use crate::context::Context;
use crate::verdicts::Verdicts;

use calls::OpenCalls;

mod calls;
mod escrow;
mod faults;
mod provider;
mod requester;
mod sealing;
mod served;

pub use faults::FaultInjection;

/// Events queued per job.
const JOB_EVENT_QUEUE: usize = 256;
/// The longest a job's driver sleeps between events when the job names no earlier time
/// (`RequesterJob::next_wake`).
const MAX_SLEEP: Duration = Duration::from_secs(1);
/// The shortest sleep after a tick that changed nothing (the old fixed tick).
const IDLE_TICK: Duration = Duration::from_millis(50);
/// Jobs past the award per slot of capacity: one running, one fetching and compiling.
const STAGES: usize = 2;
/// How long a provider's bid stays valid.
const BID_LIFETIME_MS: u64 = 30_000;
/// How long a DHT answer for a capability class is reused.
const CLASS_CACHE_TTL: Duration = Duration::from_secs(10);
/// How long a DHT lookup of candidates may take.
const CLASS_LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);

/// The market service (see the module docs). Cheap to clone.
#[derive(Clone)]
pub struct Market {
    ctx: Arc<Context>,
    blobs: Blobs,
    adverts: Adverts,
    verdicts: Verdicts,
    state: Arc<State>,
}

struct State {
    sandbox: Sandbox,
    /// Specs of the calls this node bid on, with its bid's expiry, until awarded or forgotten.
    calls: Mutex<OpenCalls>,
    running: AtomicUsize,
    /// Awards kept in the `served` tree (at most `served::MAX_SERVED`).
    served: AtomicUsize,
    /// Jobs past the award at once: twice the node's capacity, so that one job's blobs are
    /// fetched and its module compiled while another runs (the sandbox's own permits hold runs
    /// to the capacity). Taken before a job's blobs are fetched, so that an award waiting for
    /// one holds nothing in memory.
    permits: tokio::sync::Semaphore,
    jobs: Mutex<HashMap<JobId, JobHandle>>,
    config: RequesterConfig,
    /// What this node's running jobs hold of its balance, per award (see
    /// `cairn_protocol::credits::Escrow`): reserved at award, released when the job ends.
    /// Rebuilt from the durable job records at start.
    escrow: Mutex<Escrow>,
    /// Recent DHT answers per capability class, so a burst of jobs makes one lookup.
    class_cache: Mutex<HashMap<&'static str, (Instant, Vec<NodeId>)>>,
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

impl JobView {
    /// Whether nothing more will happen that its submitter waits for: failed, accepted with
    /// an agreed failure, or accepted with its output fetched (or given up on). The one rule
    /// for "finished" (the API's `finished`, the CLI's wait, the simulation).
    pub fn finished(&self) -> bool {
        match self.job.phase() {
            Phase::Accepted(Outcome::Output { .. }) => {
                self.output.is_some() || self.output_error.is_some()
            }
            Phase::Accepted(_) | Phase::Failed(_) => true,
            Phase::Auction { .. } | Phase::Running => false,
        }
    }
}

impl Market {
    pub(crate) fn new(
        ctx: Arc<Context>,
        blobs: Blobs,
        adverts: Adverts,
        verdicts: Verdicts,
        sandbox: Sandbox,
    ) -> Self {
        let verification = &ctx.options().config.verification;
        let config = RequesterConfig {
            hidden_replica_probability: f64::from(verification.hidden_replica_per_mille) / 1000.0,
            audit_probability: f64::from(verification.audit_per_mille) / 1000.0,
            require_established: verification.require_established,
            audit_scale: verification.audit_scale,
            ..RequesterConfig::default()
        };
        let capacity = usize::try_from(ctx.options().config.capacity.max(1)).unwrap_or(1);
        Self {
            ctx,
            blobs,
            adverts,
            verdicts,
            state: Arc::new(State {
                sandbox,
                calls: Mutex::new(OpenCalls::default()),
                running: AtomicUsize::new(0),
                served: AtomicUsize::new(0),
                permits: tokio::sync::Semaphore::new(capacity.saturating_mul(STAGES)),
                jobs: Mutex::new(HashMap::new()),
                config,
                escrow: Mutex::new(Escrow::new()),
                class_cache: Mutex::new(HashMap::new()),
            }),
        }
    }
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
        // This host's compile timeout: host-dependent, like the job's own wall-clock limit.
        RunError::CompileTimeout { .. } => FailureKind::Timeout,
        // This host's own compile limits refused the module: its policy, not the guest's
        // behaviour on every host, so never dissent.
        RunError::ModuleTooComplex { .. } => FailureKind::HostFault,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compile_refusals_and_timeouts_are_never_dissent() {
        let refused = RunError::ModuleTooComplex {
            what: "the number of functions",
            found: 2,
            limit: 1,
        };
        let timed_out = RunError::CompileTimeout { limit_ms: 1 };
        for error in [refused, timed_out] {
            let kind = failure_kind(&error);
            assert!(!kind.is_deterministic(), "{error} reported as {kind:?}");
        }
    }
}
