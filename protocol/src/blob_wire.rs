//! The blob protocol's frames, as pure functions over bytes (`cairn-node`'s
//! `net/blob_codec.rs` moves them over a stream).
//!
//! A request is a 32-byte blob hash. A response is a status byte, then for a found blob its
//! length (u64, little-endian) and bytes, and for a refused request one byte saying why. The
//! head (status and what follows it before the blob) is decoded, and the length checked
//! against the reader's limit, before anything is allocated for the blob.

use crate::BlobHash;

/// Bytes of a request: the blob's hash.
pub const REQUEST_BYTES: usize = 32;

/// Largest blob that can cross the wire, whatever a node's configuration says: 256 MiB.
pub const MAX_BLOB_TRANSFER_BYTES: u64 = 256 << 20;

const FOUND: u8 = 0;
const NOT_FOUND: u8 = 1;
const REFUSED: u8 = 2;

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

/// The head of a blob response: everything before a found blob's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponseHead {
    /// The blob follows: `len` bytes.
    Found {
        /// The blob's length in bytes.
        len: u64,
    },
    /// The peer does not hold the blob.
    NotFound,
    /// The peer will not send it.
    Refused(BlobRefusal),
}

/// A blob frame that does not decode.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BlobFrameError {
    /// The status byte is none of found, not found or refused.
    #[error("bad blob response status {status}")]
    BadStatus {
        /// The byte read.
        status: u8,
    },
    /// The reason of a refusal is unknown.
    #[error("bad blob refusal {code}")]
    BadRefusal {
        /// The byte read.
        code: u8,
    },
    /// A found blob is longer than the reader accepts.
    #[error("blob of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// The announced length.
        len: u64,
        /// The reader's limit.
        max: u64,
    },
    /// The frame is shorter than its head says.
    #[error("blob frame of {got} bytes, {want} expected")]
    Length {
        /// The bytes given.
        got: usize,
        /// The bytes the frame needs.
        want: usize,
    },
}

/// The request for `bytes` (exactly [`REQUEST_BYTES`]).
pub fn decode_request(bytes: &[u8]) -> Result<BlobHash, BlobFrameError> {
    let hash = <[u8; REQUEST_BYTES]>::try_from(bytes).map_err(|_| BlobFrameError::Length {
        got: bytes.len(),
        want: REQUEST_BYTES,
    })?;
    Ok(BlobHash(hash))
}

/// How many bytes follow the status byte `status` in the head: 8 (the length) for a found
/// blob, 1 (the reason) for a refusal, none for not found.
pub fn head_rest_len(status: u8) -> Result<usize, BlobFrameError> {
    match status {
        FOUND => Ok(8),
        NOT_FOUND => Ok(0),
        REFUSED => Ok(1),
        status => Err(BlobFrameError::BadStatus { status }),
    }
}

/// The head made of `status` and the [`head_rest_len`] bytes after it; a found blob longer
/// than `max_blob_bytes` is refused here, before its bytes are read.
pub fn decode_head(
    status: u8,
    rest: &[u8],
    max_blob_bytes: u64,
) -> Result<ResponseHead, BlobFrameError> {
    let want = head_rest_len(status)?;
    if rest.len() != want {
        let got = rest.len();
        return Err(BlobFrameError::Length { got, want });
    }
    match (status, rest) {
        (FOUND, rest) => {
            let mut len = [0u8; 8];
            len.copy_from_slice(rest);
            let len = u64::from_le_bytes(len);
            if len > max_blob_bytes {
                return Err(BlobFrameError::TooLarge {
                    len,
                    max: max_blob_bytes,
                });
            }
            Ok(ResponseHead::Found { len })
        }
        (REFUSED, [code]) => BlobRefusal::from_code(*code)
            .map(ResponseHead::Refused)
            .ok_or(BlobFrameError::BadRefusal { code: *code }),
        _ => Ok(ResponseHead::NotFound),
    }
}

/// The bytes of `head`.
pub fn encode_head(head: ResponseHead) -> Vec<u8> {
    match head {
        ResponseHead::Found { len } => {
            let mut bytes = vec![FOUND];
            bytes.extend_from_slice(&len.to_le_bytes());
            bytes
        }
        ResponseHead::NotFound => vec![NOT_FOUND],
        ResponseHead::Refused(why) => vec![REFUSED, why.code()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_round_trip_and_lengths_are_checked_first() {
        let heads = [
            ResponseHead::Found { len: 7 },
            ResponseHead::NotFound,
            ResponseHead::Refused(BlobRefusal::Busy),
            ResponseHead::Refused(BlobRefusal::NotAParty),
        ];
        for head in heads {
            let bytes = encode_head(head);
            assert_eq!(decode_head(bytes[0], &bytes[1..], 7), Ok(head));
        }
        let big = encode_head(ResponseHead::Found { len: 8 });
        assert_eq!(
            decode_head(big[0], &big[1..], 7),
            Err(BlobFrameError::TooLarge { len: 8, max: 7 })
        );
        assert!(decode_head(3, &[], 7).is_err());
        assert!(decode_head(2, &[9], 7).is_err());
        assert!(decode_request(&[0; 31]).is_err());
    }
}
