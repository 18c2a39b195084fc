//! `cairn-testnet`: runs many real Cairn nodes in one process (`sim`) or as separate processes on
//! loopback (`up`/`down`), and measures them.
//!
//! Sits on top of `cairn-node`; nothing depends on it.
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
