//! `cairn-config`: the files that configure Cairn, parsed and validated: a node's
//! `config.toml` ([`NodeConfig`]) and a network spec `NETWORK.toml` ([`NetworkSpec`]), with
//! the rules an offline verifier derives from a spec ([`network_rules`]).
//!
//! Depends on `cairn-protocol` only; `cairn-node` re-exports it as `cairn_node::config` and
//! adds what needs the node (its NAT settings, the sandbox's compile limits). Kept apart so
//! that these decoders of outside bytes can be fuzzed without compiling libp2p and wasmtime.
//!
//! Every setting has a documented default; the file `cairn init` writes spells them out with
//! comments ([`NodeConfig::commented_toml`]), and command-line flags override the file.
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod anchor;
pub mod error;
mod networks;
mod node;
mod spec;
mod template;

pub use error::ConfigError;
pub use networks::{shipped, shipped_spec};
pub use node::{
    CompileConfig, DATA_DIR_ENV, LimitsConfig, NodeConfig, PriceConfig, RelayServerMode,
    VerificationConfig, default_data_dir, read_toml,
};
pub use spec::{CreditsSpec, FaucetSpec, GenesisEntry, NetworkSpec, network_rules};
