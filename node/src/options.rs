//! What a node needs to start.

use std::path::PathBuf;

use crate::config::{NetworkSpec, NodeConfig};
use crate::gpu::Hardware;
use crate::market::FaultInjection;
use crate::net::NetConfig;

/// Everything a node needs to start.
#[derive(Clone, Debug)]
pub struct NodeOptions {
    /// Data directory (database, API token and address).
    pub data_dir: PathBuf,
    /// Settings, with command-line overrides already applied.
    pub config: NodeConfig,
    /// The network to join.
    pub spec: NetworkSpec,
    /// What this machine offers.
    pub hardware: Hardware,
    /// The sandbox identity advertised.
    pub runtime: String,
    /// Gossipsub heartbeat and other network timings.
    pub net: Option<NetConfig>,
    /// Fault injection for tests and simulations; off by default.
    pub faults: FaultInjection,
    /// A sandbox to share with other nodes in the same process (simulations: one engine,
    /// one compiled-module cache, one ticker thread); `None` builds the node's own.
    pub sandbox: Option<SharedSandbox>,
    /// The ed25519 secret key to create the identity from when the data dir has none yet
    /// (seeded simulations); `None` generates a random one. A stored identity always wins.
    pub identity_seed: Option<[u8; 32]>,
}

/// A [`cairn_runtime::Sandbox`] shared by several in-process nodes.
#[derive(Clone)]
pub struct SharedSandbox(pub cairn_runtime::Sandbox);

impl std::fmt::Debug for SharedSandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedSandbox")
            .field("config", self.0.config())
            .finish()
    }
}
