//! Integration tests of `cairn-runtime`: one binary, a module per scenario.

mod common;
mod compile_bounds;
mod concurrency;
mod determinism;
mod errors;
mod hostile;
mod identity;
mod report;
mod tensor_cuda;
mod tensor_guests;
mod tensor_hostile;
mod tensor_ops;
