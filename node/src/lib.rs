//! `cairn-node`: one Cairn node — the libp2p swarm, the sled store, the control API — and the
//! `cairn` command-line interface.
//!
//! Depends on `cairn-protocol` (types and rules) and `cairn-runtime` (the sandbox); nothing
//! but `cairn-testnet` depends on it.
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
