//! A signed envelope from a peer (gossip, sync answers, market frames): decoded, canonical, then verified as the kind it names.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cairn_fuzz::envelope_bytes(data));
