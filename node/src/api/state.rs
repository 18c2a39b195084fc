//! What every API handler shares: the node it serves and the way errors are answered.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::node::{Node, NodeError};

/// The state every handler gets: the node, and the token requests must present.
#[derive(Clone)]
pub(crate) struct ApiState {
    pub(crate) node: Node,
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
