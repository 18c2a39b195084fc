//! The blob protocol's frames (`cairn-protocol`'s `blob_wire.rs`, which `cairn-node`'s
//! `net/blob_codec.rs` moves over a stream): a request and a response read as the node reads
//! them. A blob read is never longer than the limit, and writing back what was read gives the
//! bytes that were read.
#![no_main]

use cairn_protocol::blob_wire::{self, REQUEST_BYTES, ResponseHead};

/// A small limit, so that the fuzzer reaches it.
const MAX_BLOB: u64 = 4096;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Some(request) = data.get(..REQUEST_BYTES) {
        let hash = blob_wire::decode_request(request).expect("32 bytes are a request");
        assert_eq!(hash.as_bytes()[..], data[..REQUEST_BYTES]);
    }
    // The response as the node reads it: the status byte, the rest of the head, the blob.
    let Some((&status, rest)) = data.split_first() else {
        return;
    };
    let Ok(want) = blob_wire::head_rest_len(status) else {
        return;
    };
    let Some(head_rest) = rest.get(..want) else {
        return;
    };
    let Ok(head) = blob_wire::decode_head(status, head_rest, MAX_BLOB) else {
        return;
    };
    let mut read = blob_wire::encode_head(head);
    if let ResponseHead::Found { len } = head {
        assert!(len <= MAX_BLOB);
        let Some(blob) = rest[want..].get(..len as usize) else {
            return;
        };
        read.extend_from_slice(blob);
    }
    assert_eq!(read, data[..read.len()]);
});
