//! The blob protocol over a stream. The frames (a 32-byte hash as the request; a status byte,
//! then a found blob's length and bytes or a refusal's reason, as the response) are
//! `cairn-protocol`'s `blob_wire`: this codec reads the head, has it decoded (the length is
//! checked against the limit before anything is allocated), then reads the blob; the
//! requester checks the hash. The writer streams a served blob from its file in chunks of
//! [`CHUNK_BYTES`], so serving one costs a chunk of memory whatever its size.

use std::any::Any;
use std::fmt;
use std::io;

use cairn_protocol::BlobHash;
use cairn_protocol::blob_wire::{self, REQUEST_BYTES, ResponseHead};
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use libp2p::request_response::Codec;
use tokio::io::AsyncReadExt as _;

pub use cairn_protocol::blob_wire::BlobRefusal;

/// The most bytes read from a blob's file and written to the stream at once.
pub const CHUNK_BYTES: usize = 64 * 1024;

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
    /// Reads `len` bytes of a found blob (`len` is within the limit: the head was checked).
    async fn read_blob<T>(io: &mut T, len: u64) -> io::Result<BlobResponse>
    where
        T: AsyncRead + Unpin + Send,
    {
        let mut bytes = Vec::new();
        io.take(len).read_to_end(&mut bytes).await?;
        if bytes.len() as u64 != len {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(BlobResponse::Found(bytes))
    }
}

fn invalid(e: blob_wire::BlobFrameError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl Codec for BlobCodec {
    type Protocol = StreamProtocol;
    type Request = BlobHash;
    type Response = BlobResponse;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<BlobHash>
    where
        T: AsyncRead + Unpin + Send,
    {
        let mut hash = [0u8; REQUEST_BYTES];
        io.read_exact(&mut hash).await?;
        blob_wire::decode_request(&hash).map_err(invalid)
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<BlobResponse>
    where
        T: AsyncRead + Unpin + Send,
    {
        let mut status = [0u8; 1];
        io.read_exact(&mut status).await?;
        let mut rest = [0u8; 8];
        let rest = &mut rest[..blob_wire::head_rest_len(status[0]).map_err(invalid)?];
        io.read_exact(rest).await?;
        match blob_wire::decode_head(status[0], rest, self.max_blob_bytes).map_err(invalid)? {
            ResponseHead::Found { len } => Self::read_blob(io, len).await,
            ResponseHead::NotFound => Ok(BlobResponse::NotFound),
            ResponseHead::Refused(why) => Ok(BlobResponse::Refused(why)),
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
        let head = |head| blob_wire::encode_head(head);
        match res {
            BlobResponse::NotFound => io.write_all(&head(ResponseHead::NotFound)).await?,
            BlobResponse::Refused(why) => io.write_all(&head(ResponseHead::Refused(why))).await?,
            BlobResponse::Found(bytes) => {
                let len = bytes.len() as u64;
                io.write_all(&head(ResponseHead::Found { len })).await?;
                io.write_all(&bytes).await?;
            }
            BlobResponse::Stream(blob) => {
                let len = blob.len();
                io.write_all(&head(ResponseHead::Found { len })).await?;
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
        let bad = [2u8, 9]; // refused, for reason 9 (none such)
        assert!(
            codec
                .read_response(&protocol(), &mut &bad[..])
                .await
                .is_err()
        );
    }
}
