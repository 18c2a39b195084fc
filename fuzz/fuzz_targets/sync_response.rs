//! A sync answer frame: decoded, its counts bounded, and what it carries checked as the node checks it (adverts as signed envelopes, checkpoints as a chain).
#![no_main]

use cairn_protocol::proof;
use cairn_protocol::wire::{MAX_SYNC_FRAME, SyncResponse};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some(answer) = cairn_fuzz::canonical::<SyncResponse>(data, MAX_SYNC_FRAME) else {
        return;
    };
    if answer.check_bounds().is_err() {
        return;
    }
    match &answer {
        SyncResponse::Adverts(adverts) => {
            adverts.iter().for_each(|a| cairn_fuzz::envelope_bytes(a))
        }
        SyncResponse::Checkpoints(chain) => {
            // A genesis whose first committee is whoever voted on the first checkpoint, so
            // that seeds reach the vote and chain checks.
            if let Some(first) = chain.first() {
                let genesis = cairn_fuzz::genesis_of(&first.checkpoint.network, &first.votes);
                let _ = proof::verify_chain(chain, &genesis);
            }
        }
        SyncResponse::Leaves(leaves) => {
            if let Some(leaves) = leaves {
                let _ = cairn_protocol::merkle::MerkleTree::from_reputation(leaves);
            }
        }
    }
});
