//! Integration tests of cairn-node: several real nodes on loopback in one process, and the
//! `cairn` binary as separate processes.

mod blobs;
mod checkpoints;
mod cli;
mod credits;
mod discovery;
mod fuzz_seeds;
mod harness;
mod market;
mod netns;
mod private;
mod run;
