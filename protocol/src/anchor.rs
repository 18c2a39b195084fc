//! The OP_RETURN anchor: 46 bytes that commit a checkpoint hash to a Bitcoin-family
//! transaction.
//!
//! Layout (46 bytes): the tag `CAIRN` (5 bytes), the payload version (1 byte, `1`), the epoch
//! (8 bytes, big-endian) and the checkpoint hash (32 bytes). The output script is
//! `OP_RETURN OP_PUSHBYTES_46 <payload>`, 48 bytes. The `bitcoin` crate builds any size of
//! OP_RETURN; relay policy of Bitcoin Core only forwards data up to 80 bytes, which this module
//! enforces itself.

use bitcoin::script::{Instruction, PushBytesBuf};
use bitcoin::{Script, ScriptBuf, Transaction};

use crate::CheckpointHash;

/// The tag that starts every Cairn anchor payload.
pub const ANCHOR_TAG: [u8; 5] = *b"CAIRN";
/// The payload version this code writes and accepts.
pub const ANCHOR_VERSION: u8 = 1;
/// Length of the payload in bytes.
pub const ANCHOR_PAYLOAD_LEN: usize = 46;
/// The most data bytes an OP_RETURN output may carry under standard relay policy.
pub const MAX_OP_RETURN_DATA: usize = 80;

/// Why bytes, a script or a transaction hold no valid anchor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AnchorError {
    /// The payload has the wrong length.
    #[error("anchor payload is {len} bytes, expected {ANCHOR_PAYLOAD_LEN}")]
    WrongLength {
        /// Its length.
        len: usize,
    },
    /// The payload does not start with the Cairn tag.
    #[error("anchor payload does not start with the CAIRN tag")]
    WrongTag,
    /// The payload version is not one this code reads.
    #[error("anchor payload version {found} is not supported (this code reads {ANCHOR_VERSION})")]
    UnsupportedVersion {
        /// The version byte.
        found: u8,
    },
    /// The data would exceed the 80-byte standardness limit.
    #[error("OP_RETURN data of {len} bytes exceeds the {MAX_OP_RETURN_DATA}-byte relay limit")]
    TooLarge {
        /// Its length.
        len: usize,
    },
    /// The script is not `OP_RETURN <one push>`.
    #[error("output script is not OP_RETURN followed by a single data push")]
    NotOpReturn,
    /// The transaction has no Cairn anchor output.
    #[error("the transaction has no Cairn OP_RETURN output")]
    Missing,
    /// The transaction has more than one Cairn anchor output.
    #[error("the transaction has {count} Cairn OP_RETURN outputs; exactly one is allowed")]
    Ambiguous {
        /// How many.
        count: usize,
    },
}

/// What an anchor commits to.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct AnchorPayload {
    /// Epoch of the anchored checkpoint.
    pub epoch: u64,
    /// Hash of the anchored checkpoint.
    pub checkpoint: CheckpointHash,
}

impl AnchorPayload {
    /// The 46 payload bytes.
    pub fn to_bytes(&self) -> [u8; ANCHOR_PAYLOAD_LEN] {
        let mut out = [0u8; ANCHOR_PAYLOAD_LEN];
        out[..5].copy_from_slice(&ANCHOR_TAG);
        out[5] = ANCHOR_VERSION;
        out[6..14].copy_from_slice(&self.epoch.to_be_bytes());
        out[14..].copy_from_slice(self.checkpoint.as_bytes());
        out
    }

    /// Parses payload bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, AnchorError> {
        if bytes.len() != ANCHOR_PAYLOAD_LEN {
            return Err(AnchorError::WrongLength { len: bytes.len() });
        }
        if bytes[..5] != ANCHOR_TAG {
            return Err(AnchorError::WrongTag);
        }
        if bytes[5] != ANCHOR_VERSION {
            return Err(AnchorError::UnsupportedVersion { found: bytes[5] });
        }
        let mut epoch = [0u8; 8];
        epoch.copy_from_slice(&bytes[6..14]);
        let mut hash = [0u8; 32];
        hash.copy_from_slice(&bytes[14..]);
        Ok(Self {
            epoch: u64::from_be_bytes(epoch),
            checkpoint: CheckpointHash(hash),
        })
    }

    /// The output script `OP_RETURN <payload>`.
    pub fn script(&self) -> Result<ScriptBuf, AnchorError> {
        op_return_script(&self.to_bytes())
    }

    /// Parses an `OP_RETURN <payload>` script.
    pub fn from_script(script: &Script) -> Result<Self, AnchorError> {
        Self::from_bytes(&op_return_data(script)?)
    }

    /// The single Cairn anchor among a transaction's outputs, with its output index.
    pub fn find_in(tx: &Transaction) -> Result<(usize, Self), AnchorError> {
        let found: Vec<(usize, Self)> = tx
            .output
            .iter()
            .enumerate()
            .filter_map(|(i, out)| Self::from_script(&out.script_pubkey).ok().map(|p| (i, p)))
            .collect();
        match found.as_slice() {
            [] => Err(AnchorError::Missing),
            [one] => Ok(*one),
            many => Err(AnchorError::Ambiguous { count: many.len() }),
        }
    }
}

/// `OP_RETURN <data>` for data of at most [`MAX_OP_RETURN_DATA`] bytes.
pub fn op_return_script(data: &[u8]) -> Result<ScriptBuf, AnchorError> {
    if data.len() > MAX_OP_RETURN_DATA {
        return Err(AnchorError::TooLarge { len: data.len() });
    }
    let push = PushBytesBuf::try_from(data.to_vec())
        .map_err(|_| AnchorError::TooLarge { len: data.len() })?;
    Ok(ScriptBuf::new_op_return(push))
}

/// The data of an `OP_RETURN <one push>` script of at most [`MAX_OP_RETURN_DATA`] bytes.
pub fn op_return_data(script: &Script) -> Result<Vec<u8>, AnchorError> {
    if !script.is_op_return() {
        return Err(AnchorError::NotOpReturn);
    }
    let mut instructions = script.instructions().skip(1);
    let data = match (instructions.next(), instructions.next()) {
        (Some(Ok(Instruction::PushBytes(push))), None) => push.as_bytes().to_vec(),
        _ => return Err(AnchorError::NotOpReturn),
    };
    if data.len() > MAX_OP_RETURN_DATA {
        return Err(AnchorError::TooLarge { len: data.len() });
    }
    Ok(data)
}
