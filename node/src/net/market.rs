//! The job-market protocol: point-to-point requests between requester and providers, each
//! carrying a signed envelope. A frame is a u32 length (little-endian) and that many bytes of
//! bincode; the length is checked against the limit before anything is read.

use std::io;

use bincode::{Decode, Encode};
use cairn_protocol::codec;
use cairn_protocol::envelope::{Envelope, MAX_ENVELOPE_BYTES};
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use libp2p::request_response::Codec;

/// Largest market frame, in bytes.
pub const MAX_MARKET_FRAME: usize = MAX_ENVELOPE_BYTES + 4096;

/// What a requester or provider asks of the other.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub enum MarketRequest {
    /// Requester → candidate: a signed [`CallForBids`](cairn_protocol::CallForBids).
    CallForBids(Envelope),
    /// Requester → winner: a signed [`Award`](cairn_protocol::Award).
    Award(Envelope),
    /// Provider → requester: a signed [`ResultReport`](cairn_protocol::ResultReport).
    Report(Envelope),
}

/// The answer.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub enum MarketResponse {
    /// A signed [`Bid`](cairn_protocol::Bid).
    Bid(Envelope),
    /// The candidate will not bid, and why.
    Declined(String),
    /// Taken (an award or a report).
    Accepted,
    /// Refused (an award or a report), and why.
    Refused(String),
}

/// Codec of the market protocol.
#[derive(Clone, Debug, Default)]
pub struct MarketCodec;

/// Reads one frame of at most `limit` bytes; the length is checked before anything is
/// allocated.
pub(super) async fn read_frame<T: Decode<()>, R: AsyncRead + Unpin + Send>(
    io: &mut R,
    limit: usize,
) -> io::Result<T> {
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    let len = u32::from_le_bytes(len) as usize;
    if len > limit {
        let msg = format!("frame of {len} bytes exceeds {limit}");
        return Err(io::Error::new(io::ErrorKind::InvalidData, msg));
    }
    let mut bytes = vec![0u8; len];
    io.read_exact(&mut bytes).await?;
    codec::decode(&bytes, limit).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Writes one frame and closes the stream.
pub(super) async fn write_frame<T: Encode, W: AsyncWrite + Unpin + Send>(
    io: &mut W,
    value: &T,
) -> io::Result<()> {
    let bytes = codec::encode(value).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let len =
        u32::try_from(bytes.len()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    io.write_all(&len.to_le_bytes()).await?;
    io.write_all(&bytes).await?;
    io.close().await
}

impl Codec for MarketCodec {
    type Protocol = StreamProtocol;
    type Request = MarketRequest;
    type Response = MarketResponse;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<MarketRequest>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io, MAX_MARKET_FRAME).await
    }

    async fn read_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<MarketResponse>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io, MAX_MARKET_FRAME).await
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: MarketRequest,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &req).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: MarketResponse,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &res).await
    }
}
