//! `cairn-protocol`: Cairn's wire types and rules.
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod ids;

pub use ids::{BlobHash, CheckpointHash, JobId, NodeId, ParseIdError, VerdictId};
