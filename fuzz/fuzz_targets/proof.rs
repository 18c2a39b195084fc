//! A reputation proof file (`cairn checkpoint verify`): read with its magic and limit, then
//! verified offline, chain, Merkle path, SPV and anchor, as the CLI does.
#![no_main]

use cairn_protocol::proof::{self, MAX_PROOF_BYTES, PROOF_MAGIC, ReputationProof};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(read) = ReputationProof::from_bytes(data) else {
        return;
    };
    assert!(data.len() <= MAX_PROOF_BYTES);
    assert_eq!(read.to_bytes().expect("a read proof encodes"), data);
    assert!(data.starts_with(&PROOF_MAGIC));
    let rules = cairn_fuzz::rules_of(&read);
    match proof::verify(&read, &rules) {
        Ok(v) => assert_eq!(v.leaf, read.leaf),
        Err(e) => assert!(!e.check().is_empty()),
    }
});
