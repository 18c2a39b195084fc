//! `cairn-node`: one Cairn node — the libp2p swarm, the sled store, the control API — and the
//! `cairn` command-line interface.
//!
//! - [`config`]: `config.toml` and network specs; [`files`]: files only their owner reads;
//! - [`store`]: sled behind a small trait, and the blob store;
//! - [`gpu`]: what the machine offers (NVML detection or a simulated list);
//! - [`net`]: the swarm task and its handle;
//! - [`node`]: the running node that ties them together; [`api`]: its HTTP control API;
//! - [`client`]: the API client the CLI uses;
//! - [`anchor`]: anchoring backends (none, bitcoind, simulated) and the spec's anchor settings.
//!
//! Depends on `cairn-protocol` (types and rules) and `cairn-runtime` (the sandbox); nothing
//! but `cairn-testnet` depends on it.
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod anchor;
pub mod api;
pub mod checkpoints;
pub mod client;
pub mod config;
pub mod files;
pub mod gpu;
pub mod market;
pub mod metrics;
pub mod net;
pub mod node;
pub mod store;
pub mod testing;

pub use node::{Node, NodeError, NodeOptions, RunningNode, SharedSandbox};
