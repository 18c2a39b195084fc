//! The blob protocol's wire format: a request is a 32-byte blob hash; a response is a status
//! byte, then for a found blob its length (u64, little-endian) and bytes. The reader checks
//! the length against its limit before allocating, and the requester checks the hash.

use std::io;

use cairn_protocol::BlobHash;
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use libp2p::request_response::Codec;

const FOUND: u8 = 0;
const NOT_FOUND: u8 = 1;

/// A peer's answer to a blob request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlobResponse {
    /// The blob's bytes as the peer holds them; the requester checks them against the hash.
    Found(Vec<u8>),
    /// The peer does not hold the blob.
    NotFound,
}

/// Codec for the blob protocol, with the largest blob it will read.
#[derive(Clone, Debug)]
pub struct BlobCodec {
    /// Largest blob accepted in a response, in bytes.
    pub max_blob_bytes: u64,
}

impl Codec for BlobCodec {
    type Protocol = StreamProtocol;
    type Request = BlobHash;
    type Response = BlobResponse;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<BlobHash>
    where
        T: AsyncRead + Unpin + Send,
    {
        let mut hash = [0u8; 32];
        io.read_exact(&mut hash).await?;
        Ok(BlobHash(hash))
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<BlobResponse>
    where
        T: AsyncRead + Unpin + Send,
    {
        let mut status = [0u8; 1];
        io.read_exact(&mut status).await?;
        match status[0] {
            NOT_FOUND => Ok(BlobResponse::NotFound),
            FOUND => {
                let mut len = [0u8; 8];
                io.read_exact(&mut len).await?;
                let len = u64::from_le_bytes(len);
                if len > self.max_blob_bytes {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "blob of {len} bytes exceeds the limit of {}",
                            self.max_blob_bytes
                        ),
                    ));
                }
                let mut bytes = Vec::new();
                io.take(len).read_to_end(&mut bytes).await?;
                if bytes.len() as u64 != len {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                Ok(BlobResponse::Found(bytes))
            }
            other => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bad status {other}"),
            )),
        }
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: BlobHash,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        io.write_all(req.as_bytes()).await?;
        io.close().await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: BlobResponse,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        match res {
            BlobResponse::NotFound => io.write_all(&[NOT_FOUND]).await?,
            BlobResponse::Found(bytes) => {
                io.write_all(&[FOUND]).await?;
                io.write_all(&(bytes.len() as u64).to_le_bytes()).await?;
                io.write_all(&bytes).await?;
            }
        }
        io.close().await
    }
}
