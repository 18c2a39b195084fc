//! The sync protocol: a node that has just joined asks a few peers for what they know instead
//! of waiting for everyone to republish: adverts, and the reputation checkpoints finalised
//! before it joined. One frame each way (see [`super::framed`]), with a larger limit than the
//! market's. Nothing in an answer is taken on the answerer's word: adverts are signed
//! envelopes checked like gossip, checkpoints carry their committee's votes and extend the
//! asker's chain, and leaves must hash to the root of the checkpoint they belong to.

use std::io;

use bincode::{Decode, Encode};
use cairn_protocol::merkle::ReputationLeaf;
use cairn_protocol::proof::SignedCheckpoint;

use super::framed::{Frame, Framed};

/// Largest sync frame, in bytes.
pub const MAX_SYNC_FRAME: usize = 4 << 20;

/// Most adverts in one answer.
pub const MAX_SYNC_ADVERTS: usize = 4096;

/// Most checkpoints in one answer (the asker asks again from where it got to).
pub const MAX_SYNC_CHECKPOINTS: usize = 64;

/// Most leaves (nodes with a reputation) in one answer.
pub const MAX_SYNC_LEAVES: usize = 65_536;

/// What a node asks a peer for.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
#[non_exhaustive]
pub enum SyncRequest {
    /// Every unexpired capability advert the peer holds.
    Adverts,
    /// Finalised checkpoints from epoch `from` on, at most [`MAX_SYNC_CHECKPOINTS`].
    Checkpoints {
        /// The first epoch wanted.
        from: u64,
    },
    /// The reputation leaves of the checkpoint of `epoch`.
    Leaves {
        /// The epoch.
        epoch: u64,
    },
}

/// The answer.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
#[non_exhaustive]
pub enum SyncResponse {
    /// Signed advert envelopes, at most [`MAX_SYNC_ADVERTS`] and [`MAX_SYNC_FRAME`] bytes.
    Adverts(Vec<Vec<u8>>),
    /// Consecutive finalised checkpoints from the epoch asked for (none: the peer has none).
    Checkpoints(Vec<SignedCheckpoint>),
    /// The leaves, when the peer keeps them (it does for checkpoints whose table it computed).
    Leaves(Option<Vec<ReputationLeaf>>),
}

impl Frame for SyncRequest {
    // A request is a few bytes; a large one is hostile.
    const LIMIT: usize = 64;
}

impl Frame for SyncResponse {
    const LIMIT: usize = MAX_SYNC_FRAME;

    fn check(&self) -> io::Result<()> {
        let (what, count, max) = match self {
            SyncResponse::Adverts(adverts) => ("adverts", adverts.len(), MAX_SYNC_ADVERTS),
            SyncResponse::Checkpoints(chain) => ("checkpoints", chain.len(), MAX_SYNC_CHECKPOINTS),
            SyncResponse::Leaves(leaves) => (
                "leaves",
                leaves.as_ref().map_or(0, Vec::len),
                MAX_SYNC_LEAVES,
            ),
        };
        if count > max {
            let msg = format!("{count} {what} in a sync answer exceed {max}");
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
