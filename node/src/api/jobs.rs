//! The control API's job routes: submit, list, status (with the job's log) and output.

use axum::Json;
use axum::extract::{Path as UrlPath, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use cairn_protocol::requester::Phase;
use cairn_protocol::{GpuRequirement, JobId, JobRequest, Limits, Outcome};
use serde::{Deserialize, Serialize};

use super::state::{ApiState, error, node_error};
use crate::credits::PaymentView;
use crate::error::NodeError;
use crate::market::JobView;

/// Body of `POST /v1/jobs`.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct SubmitJob {
    /// Module blob hash (put it first with `POST /v1/blobs`).
    pub module: String,
    /// Input blob hash.
    pub input: String,
    /// Arguments after the program name.
    #[serde(default)]
    pub args: Vec<String>,
    /// Providers in the first round. Default 3.
    #[serde(default = "default_replicas")]
    pub replicas: u8,
    /// Agreeing reports needed. Default 2.
    #[serde(default = "default_quorum")]
    pub quorum: u8,
    /// Most replicas ever, escalations included. Default `2 × replicas + 2`: room to settle a
    /// disagreement, where the winner must out-number the dissenters by a quorum.
    pub max_replicas: Option<u8>,
    /// Fuel limit. Default 10^10.
    #[serde(default = "default_fuel")]
    pub fuel: u64,
    /// Memory limit, bytes. Default 256 MiB.
    #[serde(default = "default_memory")]
    pub memory: u64,
    /// Wall-clock limit per run, ms. Default 30 000.
    #[serde(default = "default_wall")]
    pub wall_time_ms: u64,
    /// Output limit, bytes. Default 16 MiB.
    #[serde(default = "default_output")]
    pub max_output: u64,
    /// Needs a GPU.
    #[serde(default)]
    pub gpu: bool,
    /// Needs a GPU with at least this much memory, bytes.
    pub min_vram: Option<u64>,
    /// Highest price per replica. Default 1 000 000.
    #[serde(default = "default_price")]
    pub max_price: u64,
    /// Seconds until the job fails if not accepted. Default 300.
    #[serde(default = "default_deadline")]
    pub deadline_secs: u64,
}

fn default_replicas() -> u8 {
    JobRequest::DEFAULT_REPLICAS
}
fn default_quorum() -> u8 {
    JobRequest::DEFAULT_QUORUM
}
fn default_fuel() -> u64 {
    Limits::DEFAULT.fuel
}
fn default_memory() -> u64 {
    Limits::DEFAULT.memory_bytes
}
fn default_wall() -> u64 {
    Limits::DEFAULT.wall_time_ms
}
fn default_output() -> u64 {
    Limits::DEFAULT.max_output_bytes
}
fn default_price() -> u64 {
    JobRequest::DEFAULT_MAX_PRICE
}
fn default_deadline() -> u64 {
    JobRequest::DEFAULT_DEADLINE_MS / 1000
}

impl SubmitJob {
    /// The request this body asks for; every default is [`JobRequest::new`]'s.
    pub fn request(&self) -> Result<JobRequest, cairn_protocol::ParseIdError> {
        let gpu = (self.gpu || self.min_vram.is_some()).then(|| GpuRequirement {
            min_vram_bytes: self.min_vram.unwrap_or(0),
            min_compute_capability: None,
        });
        Ok(JobRequest {
            args: self.args.clone(),
            limits: Limits {
                fuel: self.fuel,
                memory_bytes: self.memory,
                wall_time_ms: self.wall_time_ms,
                max_output_bytes: self.max_output,
            },
            gpu,
            replicas: self.replicas,
            quorum: self.quorum,
            max_replicas: self.max_replicas,
            max_price: self.max_price,
            deadline_ms: self.deadline_secs.saturating_mul(1000),
            ..JobRequest::new(self.module.parse()?, self.input.parse()?)
        })
    }
}

/// Where a job stands, as the API and the CLI name it.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Looking for providers.
    Auction,
    /// Waiting for reports.
    Running,
    /// An outcome was accepted.
    Accepted,
    /// The job failed.
    Failed,
}

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            JobState::Auction => "auction",
            JobState::Running => "running",
            JobState::Accepted => "accepted",
            JobState::Failed => "failed",
        })
    }
}

/// A job as the API shows it.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct JobStatus {
    /// Job id.
    pub id: String,
    /// `auction`, `running`, `accepted` or `failed`.
    pub state: JobState,
    /// Whether nothing more will happen.
    pub finished: bool,
    /// For accepted jobs: the output digest, or the agreed failure in words.
    pub outcome: Option<String>,
    /// For failed jobs: why, in words.
    pub reason: Option<String>,
    /// Output blob, once fetched and verified.
    pub output: Option<String>,
    /// Why the output could not be fetched.
    pub output_error: Option<String>,
    /// Providers holding a replica.
    pub providers: Vec<String>,
    /// History, oldest first: `[ms since epoch, what]`.
    pub log: Vec<(u64, String)>,
    /// What the awards cost at most: the sum of their prices (each for a run to the fuel
    /// limit; the verdict pays for the fuel used).
    #[serde(default)]
    pub price: u64,
    /// Held in escrow for the job now.
    #[serde(default)]
    pub escrowed: u64,
    /// What its verdict paid, once applied here (networks with credits).
    #[serde(default)]
    pub payment: Option<PaymentView>,
}

impl JobStatus {
    /// Adds what the node's credits say about the job: escrow and payment.
    pub(crate) fn with_credits(mut self, s: &ApiState, id: &JobId) -> Self {
        self.escrowed = s.node.market.escrowed_for(id);
        self.payment = s.node.verdicts.payment_of(id);
        self
    }
}

impl From<&JobView> for JobStatus {
    fn from(v: &JobView) -> Self {
        let (state, outcome, reason) = match v.job.phase() {
            Phase::Auction { .. } => (JobState::Auction, None, None),
            Phase::Running => (JobState::Running, None, None),
            Phase::Accepted(Outcome::Output { digest, .. }) => {
                (JobState::Accepted, Some(digest.to_string()), None)
            }
            Phase::Accepted(Outcome::Failed(kind)) => {
                (JobState::Accepted, Some(format!("failed: {kind}")), None)
            }
            Phase::Failed(reason) => (JobState::Failed, None, Some(reason.to_string())),
        };
        Self {
            id: v.job.id().to_string(),
            state,
            finished: v.finished(),
            outcome,
            reason,
            output: v.output.map(|h| h.to_string()),
            output_error: v.output_error.clone(),
            providers: v
                .job
                .providers()
                .iter()
                .map(|p| {
                    p.peer_id()
                        .map_or_else(|_| p.to_string(), |id| id.to_string())
                })
                .collect(),
            log: v
                .job
                .log()
                .iter()
                .map(|e| (e.at.0, e.what.clone()))
                .collect(),
            price: v
                .job
                .award_prices()
                .iter()
                .fold(0u64, |sum, (_, p)| sum.saturating_add(*p)),
            escrowed: 0,
            payment: None,
        }
    }
}

/// A request the API refuses: status, stable kind, message.
struct Rejection(StatusCode, &'static str, String);

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        error(self.0, self.1, self.2)
    }
}

pub(crate) async fn submit(State(s): State<ApiState>, Json(req): Json<SubmitJob>) -> Response {
    let request = match req.request() {
        Ok(request) => request,
        Err(e) => return error(StatusCode::BAD_REQUEST, "bad_hash", e),
    };
    match s.node.market.submit_request(request).await {
        Ok(id) => Json(serde_json::json!({ "job_id": id.to_string() })).into_response(),
        Err(e @ NodeError::Request(_)) => error(StatusCode::BAD_REQUEST, "bad_request", e),
        Err(e @ NodeError::MissingBlob(_)) => error(StatusCode::BAD_REQUEST, "missing_blob", e),
        Err(e @ NodeError::CannotPay { .. }) => {
            error(StatusCode::PAYMENT_REQUIRED, "insufficient_credits", e)
        }
        Err(e) => node_error(e),
    }
}

pub(crate) async fn list(State(s): State<ApiState>) -> Response {
    let mut jobs: Vec<JobStatus> = (s.node.market.jobs().iter())
        .map(|v| JobStatus::from(v).with_credits(&s, &v.job.id()))
        .collect();
    jobs.sort_by(|a, b| a.log.first().cmp(&b.log.first()));
    Json(jobs).into_response()
}

fn parse_job(id: &str) -> Result<JobId, Rejection> {
    let bad = |e: cairn_protocol::ParseIdError| {
        Rejection(StatusCode::BAD_REQUEST, "bad_job_id", e.to_string())
    };
    id.parse().map_err(bad)
}

pub(crate) async fn status(State(s): State<ApiState>, UrlPath(id): UrlPath<String>) -> Response {
    let id = match parse_job(&id) {
        Ok(id) => id,
        Err(r) => return r.into_response(),
    };
    match s.node.market.job(&id) {
        Some(view) => Json(JobStatus::from(&view).with_credits(&s, &id)).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            "no_such_job",
            format!("no job {id} was submitted to this node"),
        ),
    }
}

pub(crate) async fn output(State(s): State<ApiState>, UrlPath(id): UrlPath<String>) -> Response {
    let id = match parse_job(&id) {
        Ok(id) => id,
        Err(r) => return r.into_response(),
    };
    let Some(view) = s.node.market.job(&id) else {
        return error(
            StatusCode::NOT_FOUND,
            "no_such_job",
            format!("no job {id} was submitted to this node"),
        );
    };
    let Some(hash) = view.output else {
        return error(
            StatusCode::CONFLICT,
            "no_output",
            "the job has no verified output (yet)",
        );
    };
    match s.node.blobs.get_local(hash).await {
        Ok(Some(bytes)) => {
            ([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response()
        }
        _ => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "output_lost",
            "the output blob is missing or corrupt",
        ),
    }
}

/// A signed job receipt as the API shows it; `envelope` is the signed bytes in hex, which
/// anyone can check with the requester's key.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct ReceiptView {
    /// Job id.
    pub job: String,
    /// Requester (libp2p peer id), the signer.
    pub requester: String,
    /// Module blob.
    pub module: String,
    /// Input blob.
    pub input: String,
    /// Output blob.
    pub output: String,
    /// Output size in bytes.
    pub output_size: u64,
    /// Fuel used.
    pub fuel_used: u64,
    /// Agreeing providers (peer ids).
    pub providers: Vec<String>,
    /// When it was issued (ms since the Unix epoch).
    pub issued_at: u64,
    /// The signed envelope, hex.
    pub envelope: String,
    /// What the awards cost at most (sum of their prices), when this node still holds the job.
    #[serde(default)]
    pub price: Option<u64>,
    /// What the verdict paid the providers, once applied here (networks with credits).
    #[serde(default)]
    pub payment: Option<PaymentView>,
}

fn peer_text(id: &cairn_protocol::NodeId) -> String {
    id.peer_id()
        .map_or_else(|_| id.to_string(), |p| p.to_string())
}

pub(crate) async fn receipt(State(s): State<ApiState>, UrlPath(id): UrlPath<String>) -> Response {
    let id = match parse_job(&id) {
        Ok(id) => id,
        Err(r) => return r.into_response(),
    };
    match s.node.market.receipt(&id) {
        Ok(Some(signed)) => {
            let r = signed.message();
            Json(ReceiptView {
                job: r.job.to_string(),
                requester: peer_text(&r.requester),
                module: r.module.to_string(),
                input: r.input.to_string(),
                output: r.output.to_string(),
                output_size: r.output_size,
                fuel_used: r.fuel_used,
                providers: r.providers.iter().map(peer_text).collect(),
                issued_at: r.issued_at.0,
                envelope: hex::encode(signed.envelope().to_bytes().unwrap_or_default()),
                price: s.node.market.job(&id).map(|v| JobStatus::from(&v).price),
                payment: s.node.verdicts.payment_of(&id),
            })
            .into_response()
        }
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            "no_receipt",
            "no receipt: the job is not accepted with an output, or its verdict is not out yet",
        ),
        Err(e) => node_error(e),
    }
}

pub(crate) async fn cancel(State(s): State<ApiState>, UrlPath(id): UrlPath<String>) -> Response {
    let id = match parse_job(&id) {
        Ok(id) => id,
        Err(r) => return r.into_response(),
    };
    if s.node.market.cancel(&id).await {
        Json(serde_json::json!({ "cancelled": true })).into_response()
    } else {
        error(
            StatusCode::NOT_FOUND,
            "no_such_job",
            format!("no running job {id} on this node"),
        )
    }
}

#[cfg(test)]
mod tests {
    use cairn_protocol::reputation::ReputationTable;
    use cairn_protocol::requester::{Context, Event, RequesterConfig, RequesterJob};
    use cairn_protocol::{BlobHash, NodeId, Timestamp};

    use super::*;

    #[test]
    fn a_job_is_shown_in_words_with_one_rule_for_finished() {
        let spec = JobRequest::new(BlobHash::of(b"module"), BlobHash::of(b"input"))
            .into_spec(NodeId([1; 32]), "runtime".into(), 0, Timestamp(0))
            .unwrap();
        let (mut job, _) = RequesterJob::new(spec.id().unwrap(), spec, Timestamp(0));
        let view = |job: &RequesterJob| JobView {
            job: job.clone(),
            output: None,
            output_error: None,
        };
        let status = serde_json::to_value(JobStatus::from(&view(&job))).unwrap();
        assert_eq!(status["state"], "auction");
        assert_eq!(status["finished"], false);

        let reputation = ReputationTable::default();
        let cx = Context {
            now: Timestamp(1),
            reputation: &reputation,
            seed: &[0; 32],
            config: &RequesterConfig::default(),
        };
        job.handle(Event::Cancel, &cx);
        let status = serde_json::to_value(JobStatus::from(&view(&job))).unwrap();
        assert_eq!(status["state"], "failed");
        assert_eq!(status["finished"], true);
        assert_eq!(status["reason"], "cancelled by its requester");
    }
}
