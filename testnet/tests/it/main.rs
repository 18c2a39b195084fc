//! `cairn-testnet`'s integration tests: the harness, simulations, and local clusters.

mod cluster;
mod crash;
mod harness;
mod kept;
mod sim;
