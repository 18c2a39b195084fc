//! The blob protocol's wire format: a request is a 32-byte blob hash; a response is a status
//! byte, then for a found blob its length (u64, little-endian) and bytes, and for a refused
//! request one byte saying why. The reader checks the length against its limit before
//! allocating, and the requester checks the hash. The writer streams a served blob from its
//! file in chunks of [`CHUNK_BYTES`], so serving one costs a chunk of memory whatever its size.

use std::any::Any;
use std::fmt;
use std::io;

use cairn_protocol::BlobHash;
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use libp2p::request_response::Codec;
use tokio::io::AsyncReadExt as _;

const FOUND: u8 = 0;
const NOT_FOUND: u8 = 1;
const REFUSED: u8 = 2;

/// The most bytes read from a blob's file and written to the stream at once.
pub const CHUNK_BYTES: usize = 64 * 1024;

/// Why a peer refused a blob request. Refusals are typed so the asker can tell "try another
/// holder later" from "you may not have this".
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BlobRefusal {
    /// The holder is serving as many blob requests as it allows (to this peer, or in all);
    /// ask again later or ask another holder.
    #[error("busy: serving as many blob requests as it allows; try later or another holder")]
    Busy,
    /// The blob is a job's private data and the asker is not one of the job's parties (its
    /// requester or a provider it awarded).
    #[error("not a party to the job this blob belongs to")]
    NotAParty,
}

impl BlobRefusal {
    fn code(self) -> u8 {
        match self {
            Self::Busy => 0,
            Self::NotAParty => 1,
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(Self::Busy),
            1 => Some(Self::NotAParty),
            _ => None,
        }
    }
}

/// A blob served from its file: the open file, the length to send, and whatever must live as
/// long as the transfer (the serving permit). Sent, never received.
pub struct BlobStream {
    file: tokio::fs::File,
    len: u64,
    _guard: Box<dyn Any + Send>,
}

impl BlobStream {
    /// A transfer of the first `len` bytes of `file`; `guard` is dropped when it ends.
    pub fn new(file: tokio::fs::File, len: u64, guard: Box<dyn Any + Send>) -> Self {
        Self {
            file,
            len,
            _guard: guard,
        }
    }

    /// The number of bytes it sends.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether it sends no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copies the blob to `io` a chunk at a time; a file shorter than announced is an error
    /// (the asker gets a broken stream, not a short blob).
    async fn copy_to<T>(mut self, io: &mut T) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        let mut chunk = vec![0u8; CHUNK_BYTES];
        let mut left = self.len;
        while left > 0 {
            let want = usize::try_from(left).map_or(CHUNK_BYTES, |l| l.min(CHUNK_BYTES));
            let n = self.file.read(&mut chunk[..want]).await?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            io.write_all(&chunk[..n]).await?;
            left -= n as u64;
        }
        Ok(())
    }
}

impl fmt::Debug for BlobStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlobStream")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

/// A peer's answer to a blob request.
#[derive(Debug)]
pub enum BlobResponse {
    /// The blob's bytes as the peer holds them; the requester checks them against the hash.
    /// What a requester receives for [`BlobResponse::Stream`].
    Found(Vec<u8>),
    /// A blob this node serves, streamed from its file (sent as [`BlobResponse::Found`]).
    Stream(BlobStream),
    /// The peer does not hold the blob.
    NotFound,
    /// The peer holds it, or may, but will not send it (see [`BlobRefusal`]).
    Refused(BlobRefusal),
}

/// Codec for the blob protocol, with the largest blob it will read.
#[derive(Clone, Debug)]
pub struct BlobCodec {
    /// Largest blob accepted in a response, in bytes.
    pub max_blob_bytes: u64,
}

impl BlobCodec {
    async fn read_found<T>(&self, io: &mut T) -> io::Result<BlobResponse>
    where
        T: AsyncRead + Unpin + Send,
    {
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
            FOUND => self.read_found(io).await,
            REFUSED => {
                io.read_exact(&mut status).await?;
                BlobRefusal::from_code(status[0])
                    .map(BlobResponse::Refused)
                    .ok_or_else(|| {
                        io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("bad refusal {}", status[0]),
                        )
                    })
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
            BlobResponse::Refused(why) => io.write_all(&[REFUSED, why.code()]).await?,
            BlobResponse::Found(bytes) => {
                io.write_all(&[FOUND]).await?;
                io.write_all(&(bytes.len() as u64).to_le_bytes()).await?;
                io.write_all(&bytes).await?;
            }
            BlobResponse::Stream(blob) => {
                io.write_all(&[FOUND]).await?;
                io.write_all(&blob.len().to_le_bytes()).await?;
                blob.copy_to(io).await?;
            }
        }
        io.close().await
    }
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use super::*;

    /// A sink that keeps what it is given and the largest single write.
    #[derive(Default)]
    struct Recorder {
        bytes: Vec<u8>,
        largest_write: usize,
    }

    impl AsyncWrite for Recorder {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.largest_write = self.largest_write.max(buf.len());
            self.bytes.extend_from_slice(buf);
            Poll::Ready(Ok(buf.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    fn protocol() -> StreamProtocol {
        StreamProtocol::new("/cairn/test/blob/1.0.0")
    }

    async fn stream_of(bytes: &[u8], len: u64) -> (tempfile::TempDir, BlobStream) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        std::fs::write(&path, bytes).unwrap();
        let file = tokio::fs::File::open(&path).await.unwrap();
        (dir, BlobStream::new(file, len, Box::new(())))
    }

    #[tokio::test]
    async fn a_served_blob_is_streamed_in_chunks_and_read_back_whole() {
        let blob: Vec<u8> = (0..(3 * CHUNK_BYTES + 17)).map(|i| i as u8).collect();
        let (_dir, stream) = stream_of(&blob, blob.len() as u64).await;
        let mut codec = BlobCodec {
            max_blob_bytes: 1 << 20,
        };
        let mut wire = Recorder::default();
        codec
            .write_response(&protocol(), &mut wire, BlobResponse::Stream(stream))
            .await
            .unwrap();
        assert!(
            wire.largest_write <= CHUNK_BYTES,
            "one write of {} bytes: serving holds more than a chunk",
            wire.largest_write
        );
        let read = codec
            .read_response(&protocol(), &mut &wire.bytes[..])
            .await
            .unwrap();
        assert!(matches!(read, BlobResponse::Found(b) if b == blob));
    }

    #[tokio::test]
    async fn a_file_shorter_than_announced_breaks_the_stream() {
        let (_dir, stream) = stream_of(b"short", 100).await;
        let mut codec = BlobCodec {
            max_blob_bytes: 100,
        };
        let mut wire = Recorder::default();
        let written = codec
            .write_response(&protocol(), &mut wire, BlobResponse::Stream(stream))
            .await;
        assert_eq!(written.unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
        assert!(
            codec
                .read_response(&protocol(), &mut &wire.bytes[..])
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn refusals_round_trip_and_unknown_ones_are_errors() {
        let mut codec = BlobCodec { max_blob_bytes: 10 };
        for why in [BlobRefusal::Busy, BlobRefusal::NotAParty] {
            let mut wire = Recorder::default();
            codec
                .write_response(&protocol(), &mut wire, BlobResponse::Refused(why))
                .await
                .unwrap();
            let read = codec
                .read_response(&protocol(), &mut &wire.bytes[..])
                .await
                .unwrap();
            assert!(matches!(read, BlobResponse::Refused(w) if w == why));
        }
        let bad = [REFUSED, 9];
        assert!(
            codec
                .read_response(&protocol(), &mut &bad[..])
                .await
                .is_err()
        );
    }
}
