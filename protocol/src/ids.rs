//! Identifiers: content hashes and node identities, all 32 bytes, shown and parsed as hex.

use std::fmt;
use std::str::FromStr;

use bincode::{Decode, Encode};
use libp2p_identity::{PeerId, PublicKey, ed25519};

/// Why a hex identifier could not be parsed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseIdError {
    /// The text is not 64 hexadecimal digits.
    #[error("expected 64 hex digits, got {len} characters")]
    WrongLength {
        /// Length of the text that was given.
        len: usize,
    },
    /// The text has a character that is not a hex digit.
    #[error("not a hex digit in identifier: {0}")]
    NotHex(#[from] hex::FromHexError),
    /// The bytes are not a valid ed25519 public key.
    #[error("not a valid ed25519 public key")]
    InvalidKey,
}

/// Parses 64 hex digits into 32 bytes.
fn parse_hex32(s: &str) -> Result<[u8; 32], ParseIdError> {
    if s.len() != 64 {
        return Err(ParseIdError::WrongLength { len: s.len() });
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out)?;
    Ok(out)
}

macro_rules! hash_id {
    ($(#[$doc:meta])* $name:ident, $context:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Encode, Decode)]
        pub struct $name(pub [u8; 32]);

        impl $name {
            /// Key-derivation context that separates this kind of hash from every other.
            pub const CONTEXT: &'static str = $context;

            /// Hashes `bytes` in this identifier's domain.
            pub fn of(bytes: &[u8]) -> Self {
                Self(blake3::derive_key(Self::CONTEXT, bytes))
            }

            /// The raw 32 bytes.
            pub fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&hex::encode(self.0))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self)
            }
        }

        impl FromStr for $name {
            type Err = ParseIdError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                parse_hex32(s).map(Self)
            }
        }
    };
}

hash_id!(
    /// Identifier of a job: the hash of its encoded [`JobSpec`](crate::JobSpec).
    JobId,
    "cairn 2026 job id v1"
);
hash_id!(
    /// Identifier of a verdict: the hash of the verdict's signed envelope.
    VerdictId,
    "cairn 2026 verdict id v1"
);
hash_id!(
    /// Identifier of a network: the hash of its genesis (see
    /// [`Genesis::network_id`](crate::checkpoint::Genesis::network_id)). Every signature covers
    /// it, so a message signed for one network is never valid on another.
    NetworkId,
    "cairn 2026 network id v1"
);
hash_id!(
    /// Identifier of a faucet grant: the hash of the grant's signed envelope (see
    /// [`FaucetGrant`](crate::credits::FaucetGrant)).
    GrantId,
    "cairn 2026 faucet grant id v1"
);
hash_id!(
    /// Identifier of a checkpoint: the hash of its encoded [`Checkpoint`](crate::Checkpoint).
    CheckpointHash,
    "cairn 2026 checkpoint v1"
);

/// Address of a blob (module, input or output): the plain blake3 hash of its bytes.
///
/// Blobs are hashed without a domain context so that anyone can check one with any blake3
/// tool (`b3sum`); their role is always clear from where the hash appears.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Encode, Decode)]
pub struct BlobHash(pub [u8; 32]);

impl BlobHash {
    /// The blake3 hash of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(*blake3::hash(bytes).as_bytes())
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl From<blake3::Hash> for BlobHash {
    fn from(hash: blake3::Hash) -> Self {
        Self(*hash.as_bytes())
    }
}

impl fmt::Display for BlobHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for BlobHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlobHash({self})")
    }
}

impl FromStr for BlobHash {
    type Err = ParseIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_hex32(s).map(Self)
    }
}

/// A node's identity: its ed25519 public key.
///
/// The bytes are checked to be a valid key when parsed, decoded from an envelope or built from
/// a keypair; [`NodeId::peer_id`] gives the libp2p `PeerId` of the same key.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Encode, Decode)]
pub struct NodeId(pub [u8; 32]);

impl NodeId {
    /// The identity of `keypair`.
    pub fn from_keypair(keypair: &ed25519::Keypair) -> Self {
        Self(keypair.public().to_bytes())
    }

    /// The ed25519 public key, or an error when the bytes are not one.
    pub fn public_key(&self) -> Result<ed25519::PublicKey, ParseIdError> {
        ed25519::PublicKey::try_from_bytes(&self.0).map_err(|_| ParseIdError::InvalidKey)
    }

    /// The libp2p peer id of this key, or an error when the bytes are not a valid key.
    pub fn peer_id(&self) -> Result<PeerId, ParseIdError> {
        Ok(PublicKey::from(self.public_key()?).to_peer_id())
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Short form: node ids show up in many log lines.
        write!(f, "NodeId({}…)", &hex::encode(&self.0[..6]))
    }
}

impl FromStr for NodeId {
    type Err = ParseIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let id = Self(parse_hex32(s)?);
        id.public_key()?;
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_errors() {
        let job = JobId::of(b"spec");
        assert_eq!(job.to_string().parse::<JobId>(), Ok(job));
        assert_eq!(
            "ab".parse::<JobId>(),
            Err(ParseIdError::WrongLength { len: 2 })
        );
        assert!(matches!(
            "z".repeat(64).parse::<BlobHash>(),
            Err(ParseIdError::NotHex(_))
        ));
    }

    #[test]
    fn domains_separate_equal_bytes() {
        assert_ne!(JobId::of(b"x").0, VerdictId::of(b"x").0);
        assert_ne!(JobId::of(b"x").0, BlobHash::of(b"x").0);
        assert_eq!(BlobHash::of(b"abc").0, *blake3::hash(b"abc").as_bytes());
    }

    #[test]
    fn node_id_matches_libp2p_peer_id() {
        let kp = ed25519::Keypair::generate();
        let id = NodeId::from_keypair(&kp);
        let expected = PublicKey::from(kp.public()).to_peer_id();
        assert_eq!(id.peer_id(), Ok(expected));
        assert_eq!(id.to_string().parse::<NodeId>(), Ok(id));
    }
}
