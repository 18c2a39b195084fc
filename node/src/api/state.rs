//! What every API handler shares: the services it serves and the way errors are answered.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use std::sync::Arc;

use crate::adverts::Adverts;
use crate::blobs::Blobs;
use crate::checkpoints::Checkpoints;
use crate::context::Context;
use crate::error::NodeError;
use crate::market::Market;
use crate::verdicts::Verdicts;

/// The node's services, as the API serves them.
#[derive(Clone)]
pub(crate) struct Services {
    pub(crate) ctx: Arc<Context>,
    pub(crate) blobs: Blobs,
    pub(crate) adverts: Adverts,
    pub(crate) verdicts: Verdicts,
    pub(crate) market: Market,
    pub(crate) checkpoints: Checkpoints,
}

/// The state every handler gets: the node's services, and the token requests must present.
#[derive(Clone)]
pub(crate) struct ApiState {
    pub(crate) node: Services,
    pub(super) token: String,
}

/// An error answer: `{"error": {"kind", "message"}}` with `status`.
pub(crate) fn error(status: StatusCode, kind: &str, message: impl std::fmt::Display) -> Response {
    (
        status,
        Json(json!({ "error": { "kind": kind, "message": message.to_string() } })),
    )
        .into_response()
}

/// The answer for a node error: not found, too large, full, or internal.
pub(crate) fn node_error(e: NodeError) -> Response {
    match e {
        NodeError::BlobUnavailable { .. } => error(StatusCode::NOT_FOUND, "blob_unavailable", e),
        NodeError::Store(crate::store::StoreError::BlobTooLarge { .. }) => {
            error(StatusCode::PAYLOAD_TOO_LARGE, "blob_too_large", e)
        }
        NodeError::Store(crate::store::StoreError::BlobStoreFull { .. }) => {
            error(StatusCode::INSUFFICIENT_STORAGE, "blob_store_full", e)
        }
        other => error(StatusCode::INTERNAL_SERVER_ERROR, "internal", other),
    }
}
