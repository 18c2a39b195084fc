//! `cairn-node`: one Cairn node — the libp2p swarm, the sled store, the control API — and the
//! `cairn` command-line interface.
//!
//! The node is a set of services around one shared [`context::Context`] (identity, options,
//! network handle, store, counters); [`node`] assembles them, hands them the network's events,
//! and shuts them down. Dependencies point one way: `node` → `api` → services → `context`.
//!
//! - services: [`blobs`] (content-addressed files), [`adverts`] (capability adverts),
//!   [`verdicts`] (the live reputation table), [`market`] (provider and requester),
//!   [`checkpoints`] (the epoch round, catch-up and anchoring);
//! - [`config`]: `config.toml` and network specs; [`files`]: files only their owner reads;
//!   [`identity`]: the node's key; [`options`]: what a node starts with;
//! - [`store`]: sled behind a small trait, and the blob store;
//! - [`gpu`]: what the machine offers (NVML detection or a simulated list);
//! - [`net`]: the swarm task and its handle; [`api`]: the HTTP control API;
//! - [`client`]: the API client the CLI uses;
//! - [`anchor`]: anchoring backends (none, bitcoind, simulated) and the spec's anchor settings.
//!
//! Depends on `cairn-protocol` (types and rules) and `cairn-runtime` (the sandbox); nothing
//! but `cairn-testnet` depends on it.
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod adverts;
pub mod anchor;
pub mod api;
pub mod blobs;
pub mod checkpoints;
pub mod client;
pub mod config;
pub mod context;
pub mod credits;
pub mod error;
pub mod files;
pub mod gpu;
pub mod identity;
pub mod market;
pub mod metrics;
pub mod net;
pub mod node;
pub mod options;
pub mod store;
pub mod sync;
pub mod testing;
pub mod verdicts;

pub use context::now;
pub use error::NodeError;
pub use node::{Node, RunningNode};
pub use options::{NodeOptions, SharedSandbox};
