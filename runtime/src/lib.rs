//! `cairn-runtime`: the deterministic wasmtime sandbox in which providers run jobs.
//!
//! Depends on `cairn-protocol` only (for [`JobId`](cairn_protocol::JobId) and
//! [`BlobHash`](cairn_protocol::BlobHash)); `cairn-node` drives it.
//!
//! A [`Sandbox`] owns one wasmtime engine configured for determinism (NaN canonicalisation,
//! deterministic relaxed SIMD, no threads, fuel), a cache of compiled modules keyed by their
//! blake3 hash, and a bound on jobs running at once. [`Sandbox::prepare`] compiles and links
//! a module; [`Sandbox::run_blocking`] / [`Sandbox::run`] run a [`Job`] in a fresh `Store`
//! with WASI preview 1 (stdin = input, stdout = output, a fixed clock, a random source seeded
//! from the job id, no filesystem, no network) and return a [`RunOutput`] or a typed
//! [`RunError`]. Jobs may also import `cairn_tensor`, the [`tensor`] host API: matrices behind
//! handles with exactly defined operations, run by a CPU reference backend (or any other
//! backend giving the same bits). See `docs/runtime.md` for the rules and the defaults.
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod cache;
mod compile;
mod config;
mod engine;
mod error;
pub mod guests;
mod host;
mod outcome;
mod permits;
mod sandbox;
pub mod tensor;

pub use compile::ModuleShape;
pub use config::{
    CompileLimits, DEFAULT_FUEL, DEFAULT_MAX_OUTPUT_BYTES, DEFAULT_MAX_STDERR_BYTES,
    DEFAULT_MAX_TABLE_ELEMENTS, DEFAULT_MEMORY_BYTES, DEFAULT_TIMEOUT, HostFuel, JobLimits,
    SandboxConfig,
};
pub use engine::{RuntimeIdentity, WASMTIME_VERSION};
pub use error::{RunError, SandboxError};
pub use host::{FIXED_MONOTONIC_NS, FIXED_WALL_CLOCK};
pub use sandbox::{Job, PreparedModule, RunOutput, RunReport, Sandbox};
pub use tensor::{BackendChoice, BackendInfo, BackendKind, DeviceReport, Energy, TensorUsage};
