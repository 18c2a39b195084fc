//! `cairn-runtime`: the deterministic wasmtime sandbox in which providers run jobs.
//!
//! Depends on `cairn-protocol` only; `cairn-node` drives it. Built in the runtime issue.
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
