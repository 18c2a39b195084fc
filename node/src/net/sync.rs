//! The sync protocol's codec: a node that has just joined asks a few peers for what they know
//! instead of waiting for everyone to republish: adverts, and the reputation checkpoints
//! finalised before it joined. One frame each way (see [`super::framed`]), with a larger limit
//! than the market's, and every answer's item counts checked after decoding. The messages
//! are [`cairn_protocol::wire`]'s.

use std::io;

pub use cairn_protocol::wire::{
    MAX_SYNC_ADVERTS, MAX_SYNC_CHECKPOINTS, MAX_SYNC_FRAME, MAX_SYNC_LEAVES, MAX_SYNC_REQUEST,
    SyncRequest, SyncResponse,
};

use super::framed::{Frame, Framed};

impl Frame for SyncRequest {
    const LIMIT: usize = MAX_SYNC_REQUEST;
}

impl Frame for SyncResponse {
    const LIMIT: usize = MAX_SYNC_FRAME;

    fn check(&self) -> io::Result<()> {
        self.check_bounds()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
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
