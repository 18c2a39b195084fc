//! `cairn-testnet`: runs many real Cairn nodes in one process (`sim`) or as separate processes on
//! loopback (`up`/`down`), and measures them.
//!
//! - [`harness`]: [`Testnet`], N real nodes in one process (other crates' tests may use it);
//! - [`sim`]: the simulation behind `cairn-testnet sim` (jobs from [`jobs`], a [`report`] and
//!   its [`html`] page);
//! - [`cluster`]: `cairn-testnet up`/`down`, `cairn node` processes on loopback.
//!
//! Sits on top of `cairn-node`; nothing depends on it.
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use std::path::PathBuf;

pub mod attack;
pub mod cluster;
pub mod flood;
pub mod harness;
pub mod html;
pub mod jobs;
pub mod profiles;
pub mod report;
pub mod rng;
pub mod sim;

pub use harness::{Testnet, TestnetConfig};
pub use sim::{SimConfig, run};

/// Why a testnet, a simulation or a cluster command failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TestnetError {
    /// A file or directory could not be used.
    #[error("{path}: {source} (check that the directory exists and is writable)")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A built-in machine profile is invalid (a bug in the profile table).
    #[error("machine profile {profile}: {reason}")]
    Profile {
        /// The profile.
        profile: &'static str,
        /// Why.
        reason: String,
    },
    /// A node index out of range.
    #[error("there is no node {index} in this testnet")]
    NoSuchNode {
        /// The index.
        index: usize,
    },
    /// A node could not start.
    #[error("node {index} did not start: {reason}")]
    Start {
        /// The node.
        index: usize,
        /// Why.
        reason: String,
    },
    /// The shared sandbox could not be built.
    #[error("cannot build the sandbox: {reason}")]
    Sandbox {
        /// Why.
        reason: String,
    },
    /// A job could not be prepared or submitted.
    #[error("job {index}: {reason}")]
    Job {
        /// The job's number in the run.
        index: usize,
        /// Why.
        reason: String,
    },
    /// Invalid settings.
    #[error("invalid setting {field}: {reason}")]
    Config {
        /// The setting.
        field: &'static str,
        /// Why, and what is allowed.
        reason: String,
    },
    /// A local cluster could not be started or stopped.
    #[error("cluster: {reason}")]
    Cluster {
        /// Why, and what to do.
        reason: String,
    },
}
