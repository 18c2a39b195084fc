//! The control API's checkpoint routes: `GET /v1/checkpoints`, `GET /v1/checkpoints/{epoch}`
//! and `GET /v1/proofs/{node_id}?epoch=E` (a proof file, `application/octet-stream`).

use axum::Json;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use cairn_protocol::NodeId;
use cairn_protocol::proof::SignedCheckpoint;
use serde::{Deserialize, Serialize};

use super::state::Services;
use super::state::{ApiState, error};
use crate::checkpoints::{CheckpointCounts, ProveError};

/// One finalised checkpoint as the API shows it.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct CheckpointView {
    /// Epoch.
    pub epoch: u64,
    /// Checkpoint hash (hex).
    pub hash: String,
    /// Previous checkpoint hash, or the genesis hash for epoch 0.
    pub previous: String,
    /// Merkle root of the reputation leaves.
    pub reputation_root: String,
    /// Number of leaves.
    pub leaf_count: u64,
    /// Merkle root of the verdict ids covered.
    pub verdict_root: String,
    /// Proposer (node id).
    pub proposer: String,
    /// Committee members that signed (node ids).
    pub signers: Vec<String>,
    /// Committee of the next epoch (node ids).
    pub next_committee: Vec<String>,
    /// Anchor chain and txid when this node holds the anchor proof; `None`: not anchored.
    pub anchor: Option<AnchorView>,
}

/// Where a checkpoint is anchored.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct AnchorView {
    /// Chain name (`simulated` for the test chain).
    pub chain: String,
    /// Confirmations in the stored proof.
    pub depth: usize,
}

/// `GET /v1/checkpoints`.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct CheckpointList {
    /// Backend (`none`, `bitcoind`, `simulated`).
    pub backend: String,
    /// Chain name.
    pub chain: String,
    /// Counts.
    pub finalised: u64,
    /// Anchored checkpoints this node holds proofs for.
    pub anchored: u64,
    /// The checkpoints, epoch 0 first.
    pub checkpoints: Vec<CheckpointView>,
}

fn view(node: &Services, signed: &SignedCheckpoint) -> CheckpointView {
    let c = &signed.checkpoint;
    CheckpointView {
        epoch: c.epoch,
        hash: c.hash().map_or_else(|_| "?".into(), |h| h.to_string()),
        previous: c.previous.to_string(),
        reputation_root: hex::encode(c.reputation_root),
        leaf_count: c.leaf_count,
        verdict_root: hex::encode(c.verdict_root),
        proposer: c.proposer.to_string(),
        signers: signed.votes.iter().map(|v| v.signer.to_string()).collect(),
        next_committee: c.next_committee.iter().map(ToString::to_string).collect(),
        anchor: node.checkpoints.anchor_proof(c.epoch).map(|a| AnchorView {
            chain: a.chain,
            depth: a.headers.len(),
        }),
    }
}

/// `GET /v1/checkpoints`.
pub(crate) async fn list(State(s): State<ApiState>) -> Response {
    let (backend, chain) = s.node.checkpoints.anchor_backend();
    let CheckpointCounts {
        finalised,
        anchored,
    } = s.node.checkpoints.counts();
    let checkpoints = s
        .node
        .checkpoints
        .chain()
        .iter()
        .map(|c| view(&s.node, c))
        .collect();
    Json(CheckpointList {
        backend: backend.into(),
        chain,
        finalised,
        anchored,
        checkpoints,
    })
    .into_response()
}

/// `GET /v1/checkpoints/{epoch}`.
pub(crate) async fn show(State(s): State<ApiState>, UrlPath(epoch): UrlPath<u64>) -> Response {
    match s.node.checkpoints.chain().get(epoch as usize) {
        Some(c) => Json(view(&s.node, c)).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            "no_checkpoint",
            format!("no finalised checkpoint for epoch {epoch}"),
        ),
    }
}

/// Query of `GET /v1/proofs/{node_id}`.
#[derive(Deserialize, Debug)]
pub(crate) struct ProveQuery {
    epoch: Option<u64>,
}

/// `GET /v1/proofs/{node_id}?epoch=E`: the proof file's bytes.
pub(crate) async fn prove(
    State(s): State<ApiState>,
    UrlPath(peer): UrlPath<String>,
    Query(q): Query<ProveQuery>,
) -> Response {
    let peer: NodeId = match peer.parse() {
        Ok(p) => p,
        Err(e) => return error(StatusCode::BAD_REQUEST, "bad_node_id", e),
    };
    let proof = match s.node.checkpoints.prove(&peer, q.epoch) {
        Ok(p) => p,
        Err(e @ ProveError::Node(_)) => {
            return error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e);
        }
        Err(e) => return error(StatusCode::NOT_FOUND, "no_proof", e),
    };
    match proof.to_bytes() {
        Ok(bytes) => ([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e),
    }
}
