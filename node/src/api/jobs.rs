//! The control API's job routes: submit, list, status (with the job's log) and output.

use axum::Json;
use axum::extract::{Path as UrlPath, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use cairn_protocol::requester::Phase;
use cairn_protocol::{GpuRequirement, JobId, JobRequest, Limits, Outcome};
use serde::{Deserialize, Serialize};

use super::state::{ApiState, error, node_error};
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

/// A job as the API shows it.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct JobStatus {
    /// Job id.
    pub id: String,
    /// `auction`, `running`, `accepted` or `failed`.
    pub state: String,
    /// Whether nothing more will happen.
    pub finished: bool,
    /// For accepted jobs: the output digest, or the agreed failure.
    pub outcome: Option<String>,
    /// For failed jobs: why.
    pub reason: Option<String>,
    /// Output blob, once fetched and verified.
    pub output: Option<String>,
    /// Why the output could not be fetched.
    pub output_error: Option<String>,
    /// Providers holding a replica.
    pub providers: Vec<String>,
    /// History, oldest first: `[ms since epoch, what]`.
    pub log: Vec<(u64, String)>,
}

impl From<&JobView> for JobStatus {
    fn from(v: &JobView) -> Self {
        let (state, outcome, reason) = match v.job.phase() {
            Phase::Auction { .. } => ("auction", None, None),
            Phase::Running => ("running", None, None),
            Phase::Accepted(Outcome::Output { digest, .. }) => {
                ("accepted", Some(digest.to_string()), None)
            }
            Phase::Accepted(Outcome::Failed(kind)) => {
                ("accepted", Some(format!("failed: {kind:?}")), None)
            }
            Phase::Failed(reason) => ("failed", None, Some(format!("{reason:?}"))),
        };
        let finished = match v.job.phase() {
            Phase::Accepted(Outcome::Output { .. }) => {
                v.output.is_some() || v.output_error.is_some()
            }
            Phase::Accepted(_) | Phase::Failed(_) => true,
            _ => false,
        };
        Self {
            id: v.job.id().to_string(),
            state: state.into(),
            finished,
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
        Err(e) => node_error(e),
    }
}

pub(crate) async fn list(State(s): State<ApiState>) -> Response {
    let mut jobs: Vec<JobStatus> = s.node.market.jobs().iter().map(JobStatus::from).collect();
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
        Some(view) => Json(JobStatus::from(&view)).into_response(),
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
