//! `cairn-testnet`'s integration tests: the harness, simulations, and local clusters.

mod cluster;
mod harness;
mod sim;
