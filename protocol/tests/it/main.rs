//! Integration tests of cairn-protocol: one binary, a module per scenario.

mod adverts;
mod anchoring;
mod codec_props;
mod credits;
mod envelope;
mod fixtures;
mod fuzz_seeds;
mod merkle;
mod quorum;
mod reputation;
mod requester;
mod round;
mod selection;
