//! The blob protocol's wire format (`cairn-node`'s `net/blob_codec.rs`): a request and a
//! response read from a peer's stream. A blob read is never longer than the limit, and
//! writing back what was read gives the bytes that were read.
#![no_main]

use cairn_node::net::{BlobCodec, BlobResponse};
use futures::executor::block_on;
use futures::io::Cursor;
use libp2p::StreamProtocol;
use libp2p::request_response::Codec;

/// A small limit, so that the fuzzer reaches it.
const MAX_BLOB: u64 = 4096;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let protocol = StreamProtocol::new("/cairn/fuzz/blob/1");
    let mut codec = BlobCodec {
        max_blob_bytes: MAX_BLOB,
    };
    let mut io = Cursor::new(data);
    if let Ok(hash) = block_on(codec.read_request(&protocol, &mut io)) {
        assert_eq!(hash.as_bytes()[..], data[..32]);
    }
    let mut io = Cursor::new(data);
    let Ok(response) = block_on(codec.read_response(&protocol, &mut io)) else {
        return;
    };
    if let BlobResponse::Found(bytes) = &response {
        assert!(bytes.len() as u64 <= MAX_BLOB);
    }
    let read = io.position() as usize;
    let mut out = Cursor::new(Vec::new());
    block_on(codec.write_response(&protocol, &mut out, response)).expect("writes to memory");
    assert_eq!(out.into_inner(), data[..read]);
});
