//! The sync protocol: a node that has just joined asks a few peers for what they know instead
//! of waiting for everyone to republish. One frame each way (see [`super::framed`]), with a
//! larger limit than the market's; every item in an answer is a signed envelope that the asker
//! verifies like gossip.

use std::io;

use bincode::{Decode, Encode};

use super::framed::{Frame, Framed};

/// Largest sync frame, in bytes.
pub const MAX_SYNC_FRAME: usize = 4 << 20;

/// Most adverts in one answer.
pub const MAX_SYNC_ADVERTS: usize = 4096;

/// What a node asks a peer for.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
#[non_exhaustive]
pub enum SyncRequest {
    /// Every unexpired capability advert the peer holds.
    Adverts,
}

/// The answer.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
#[non_exhaustive]
pub enum SyncResponse {
    /// Signed advert envelopes, at most [`MAX_SYNC_ADVERTS`] and [`MAX_SYNC_FRAME`] bytes.
    Adverts(Vec<Vec<u8>>),
}

impl Frame for SyncRequest {
    // A request is a few bytes; a large one is hostile.
    const LIMIT: usize = 64;
}

impl Frame for SyncResponse {
    const LIMIT: usize = MAX_SYNC_FRAME;

    fn check(&self) -> io::Result<()> {
        let SyncResponse::Adverts(adverts) = self;
        if adverts.len() > MAX_SYNC_ADVERTS {
            let msg = format!(
                "{} adverts in a sync answer exceed {MAX_SYNC_ADVERTS}",
                adverts.len()
            );
            return Err(io::Error::new(io::ErrorKind::InvalidData, msg));
        }
        Ok(())
    }
}

/// Codec of the sync protocol.
pub type SyncCodec = Framed<SyncRequest, SyncResponse>;

#[cfg(test)]
mod tests {
    use super::*;
    use futures::io::Cursor;
    use libp2p::StreamProtocol;
    use libp2p::request_response::Codec;

    fn proto() -> StreamProtocol {
        StreamProtocol::new("/test/sync")
    }

    #[tokio::test]
    async fn an_answer_round_trips() {
        let answer = SyncResponse::Adverts(vec![vec![1, 2, 3], vec![4; 100]]);
        let mut wire = Cursor::new(Vec::new());
        SyncCodec::default()
            .write_response(&proto(), &mut wire, answer.clone())
            .await
            .unwrap();
        let mut read = Cursor::new(wire.into_inner());
        let back = SyncCodec::default()
            .read_response(&proto(), &mut read)
            .await
            .unwrap();
        assert_eq!(back, answer);
    }

    #[tokio::test]
    async fn an_oversized_frame_is_refused_before_reading_it() {
        let mut wire = ((MAX_SYNC_FRAME + 1) as u32).to_le_bytes().to_vec();
        wire.extend([0u8; 16]);
        let err = SyncCodec::default()
            .read_response(&proto(), &mut Cursor::new(wire))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("exceeds"), "{err}");
    }

    #[tokio::test]
    async fn too_many_adverts_are_refused() {
        let answer = SyncResponse::Adverts(vec![Vec::new(); MAX_SYNC_ADVERTS + 1]);
        let mut wire = Cursor::new(Vec::new());
        SyncCodec::default()
            .write_response(&proto(), &mut wire, answer)
            .await
            .unwrap();
        let err = SyncCodec::default()
            .read_response(&proto(), &mut Cursor::new(wire.into_inner()))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("exceed"), "{err}");
    }

    #[tokio::test]
    async fn a_frame_of_millions_of_empty_adverts_is_refused_by_the_decoder() {
        // 4 MiB of one-byte empty adverts would be 4 million Vec headers (96 MiB) if the
        // decoder allocated what the count claims; bincode's limit counts each claimed
        // element's in-memory size against the frame limit and refuses first.
        let count: u32 = 4_000_000;
        let mut body = vec![0u8]; // the enum variant
        body.push(252); // bincode varint: a u32 follows
        body.extend(count.to_le_bytes());
        body.resize(body.len() + count as usize, 0);
        let mut wire = (body.len() as u32).to_le_bytes().to_vec();
        assert!(body.len() <= MAX_SYNC_FRAME);
        wire.extend(body);
        let err = SyncCodec::default()
            .read_response(&proto(), &mut Cursor::new(wire))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().to_lowercase().contains("limit"), "{err}");
    }

    #[tokio::test]
    async fn a_large_request_is_refused() {
        let mut wire = 1000u32.to_le_bytes().to_vec();
        wire.extend([0u8; 1000]);
        assert!(
            SyncCodec::default()
                .read_request(&proto(), &mut Cursor::new(wire))
                .await
                .is_err()
        );
    }
}
