//! Request-response codecs of one frame each way: a u32 length (little-endian) and that many
//! bytes of bincode. The length is checked against the message type's limit before anything
//! is read, and a decoded message can refuse itself (a count beyond its bound).

use std::fmt;
use std::io;
use std::marker::PhantomData;

use bincode::{Decode, Encode};
use cairn_protocol::codec;
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use libp2p::request_response::Codec;

/// A message that travels as one frame.
pub trait Frame: Encode + Decode<()> + Send + Sync + Sized {
    /// Largest frame, in bytes.
    const LIMIT: usize;

    /// Refuses a decoded message that breaks a bound its size alone does not.
    fn check(&self) -> io::Result<()> {
        Ok(())
    }
}

/// The codec of a protocol whose requests are `Req` and answers `Resp`.
pub struct Framed<Req, Resp>(PhantomData<fn() -> (Req, Resp)>);

impl<Req, Resp> Default for Framed<Req, Resp> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<Req, Resp> Clone for Framed<Req, Resp> {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl<Req, Resp> fmt::Debug for Framed<Req, Resp> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Framed")
    }
}

/// Reads one frame of a `T`; the length is checked before anything is allocated.
async fn read_frame<T: Frame, R: AsyncRead + Unpin + Send>(io: &mut R) -> io::Result<T> {
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    let len = u32::from_le_bytes(len) as usize;
    if len > T::LIMIT {
        let msg = format!("frame of {len} bytes exceeds {}", T::LIMIT);
        return Err(io::Error::new(io::ErrorKind::InvalidData, msg));
    }
    let mut bytes = vec![0u8; len];
    io.read_exact(&mut bytes).await?;
    let value: T = codec::decode(&bytes, T::LIMIT)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    value.check()?;
    Ok(value)
}

/// Writes one frame and closes the stream.
async fn write_frame<T: Encode, W: AsyncWrite + Unpin + Send>(
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

impl<Req: Frame, Resp: Frame> Codec for Framed<Req, Resp> {
    type Protocol = StreamProtocol;
    type Request = Req;
    type Response = Resp;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Req>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io).await
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Resp>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io).await
    }

    async fn write_request<T>(&mut self, _: &StreamProtocol, io: &mut T, req: Req) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &req).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Resp,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &res).await
    }
}
