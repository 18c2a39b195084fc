//! The one codec: bincode 2 with a fixed configuration, a size limit checked before decoding and
//! trailing bytes rejected.
//!
//! bincode 2 stops reading at the end of a value and no longer complains about bytes left over,
//! so [`decode`] checks that the whole frame was consumed. bincode 2 also accepts integers in
//! longer varint forms than needed (a `u16` of 7 written in three bytes), so [`decode`] encodes
//! the value again and refuses bytes that are not exactly that encoding: two different byte
//! strings never decode to the same message, which content-addressed ids and signatures rely
//! on (a re-encoded copy would otherwise replay under a new id).

use bincode::config::{self, Configuration, Limit, LittleEndian, Varint};
use bincode::{Decode, Encode};

/// The largest frame any Cairn decoder accepts, in bytes. Callers pass smaller limits where
/// they know more (an advert is far smaller); this bound also caps what a length prefix inside
/// a frame can make the decoder allocate.
pub const MAX_FRAME_BYTES: usize = 4 * 1024 * 1024;

type Config = Configuration<LittleEndian, Varint, Limit<MAX_FRAME_BYTES>>;

/// The fixed bincode configuration: little-endian, variable-length integers, bounded.
const CONFIG: Config = config::standard()
    .with_little_endian()
    .with_variable_int_encoding()
    .with_limit::<MAX_FRAME_BYTES>();

/// Why bytes could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The frame is longer than the limit for what it should hold; it was not decoded.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    FrameTooLarge {
        /// Length of the frame.
        len: usize,
        /// The limit that applied.
        max: usize,
    },
    /// The frame decoded to a value but bytes were left over.
    #[error("{extra} trailing bytes after a complete message")]
    TrailingBytes {
        /// Number of bytes after the end of the value.
        extra: usize,
    },
    /// The bytes are not a valid encoding of the expected type.
    #[error("malformed message: {0}")]
    Malformed(#[from] bincode::error::DecodeError),
    /// The bytes decode, but are not the canonical encoding of what they hold (for example an
    /// integer written in a longer varint form than needed).
    #[error("non-canonical encoding: the message re-encodes to other bytes")]
    NonCanonical,
    /// The value could not be encoded (for example it exceeds [`MAX_FRAME_BYTES`]).
    #[error("message could not be encoded: {0}")]
    Encode(#[from] bincode::error::EncodeError),
}

/// Encodes `value` with Cairn's fixed configuration.
pub fn encode<T: Encode>(value: &T) -> Result<Vec<u8>, CodecError> {
    let bytes = bincode::encode_to_vec(value, CONFIG)?;
    if bytes.len() > MAX_FRAME_BYTES {
        return Err(CodecError::FrameTooLarge {
            len: bytes.len(),
            max: MAX_FRAME_BYTES,
        });
    }
    Ok(bytes)
}

/// Decodes exactly one `T` from `bytes`, refusing frames longer than `max` bytes (and than
/// [`MAX_FRAME_BYTES`]) before looking at their contents, refusing trailing bytes, and refusing
/// any bytes that are not the canonical encoding of the value (see the module docs).
pub fn decode<T: Decode<()> + Encode>(bytes: &[u8], max: usize) -> Result<T, CodecError> {
    let max = max.min(MAX_FRAME_BYTES);
    if bytes.len() > max {
        return Err(CodecError::FrameTooLarge {
            len: bytes.len(),
            max,
        });
    }
    let (value, read) = bincode::decode_from_slice(bytes, CONFIG)?;
    if read != bytes.len() {
        return Err(CodecError::TrailingBytes {
            extra: bytes.len() - read,
        });
    }
    // Cheap next to decoding (no allocation beyond the value's own size): one pass of the
    // encoder into a buffer of the frame's length.
    if !reencodes_to(&value, bytes) {
        return Err(CodecError::NonCanonical);
    }
    Ok(value)
}

/// Whether `value` encodes to exactly `bytes`.
fn reencodes_to<T: Encode>(value: &T, bytes: &[u8]) -> bool {
    let mut buf = vec![0u8; bytes.len()];
    match bincode::encode_into_slice(value, &mut buf, CONFIG) {
        Ok(written) => written == bytes.len() && buf == bytes,
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_oversize_before_decoding() {
        let big = vec![0u8; 100];
        assert!(matches!(
            decode::<u8>(&big, 10),
            Err(CodecError::FrameTooLarge { len: 100, max: 10 })
        ));
    }

    #[test]
    fn rejects_trailing_bytes() {
        let mut bytes = encode(&7u32).unwrap();
        bytes.push(0);
        assert!(matches!(
            decode::<u32>(&bytes, 64),
            Err(CodecError::TrailingBytes { extra: 1 })
        ));
    }

    #[test]
    fn rejects_longer_varint_forms() {
        // 7 as a u16 is one byte; 251 followed by a little-endian u16 is the same number in
        // the three-byte form that bincode 2 also reads.
        assert_eq!(encode(&7u16).unwrap(), vec![7]);
        assert!(matches!(
            decode::<u16>(&[251, 7, 0], 64),
            Err(CodecError::NonCanonical)
        ));
        assert_eq!(decode::<u16>(&[7], 64).unwrap(), 7);
    }

    #[test]
    fn huge_length_prefix_does_not_allocate() {
        // A Vec<u8> claiming u64::MAX elements: the limit stops it before any allocation.
        let mut bytes = vec![253u8];
        bytes.extend_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(
            decode::<Vec<u8>>(&bytes, 64),
            Err(CodecError::Malformed(_))
        ));
    }
}
