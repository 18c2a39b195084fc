//! A sync request frame, under its small limit.
#![no_main]

use cairn_protocol::wire::{MAX_SYNC_REQUEST, SyncRequest};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = cairn_fuzz::canonical::<SyncRequest>(data, MAX_SYNC_REQUEST);
});
