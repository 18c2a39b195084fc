//! Signed envelopes: every message travels as payload bytes, the signer's key and an ed25519
//! signature over a domain-separated digest of version, network, kind, signer and payload.
//!
//! [`Envelope::open`] is the only way to get a message out of bytes from a peer, and it checks,
//! in order: frame size, (canonical) encoding, protocol version, network, message kind,
//! signature, payload size and encoding, and that the payload names the signer as its author.
//! Each failure is a distinct [`EnvelopeError`]. The network id is signed, so a message signed
//! for one network never verifies on another, even where the same keys take part in both.

use bincode::{Decode, Encode};
use libp2p_identity::ed25519;

use crate::codec::{self, CodecError};
use crate::{NetworkId, NodeId, PROTOCOL_VERSION};

/// The kinds of signed message. Each has its own signing domain, so a signature made for one
/// kind is never valid for another.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Encode, Decode)]
#[non_exhaustive]
pub enum MessageKind {
    /// [`CapabilityAdvert`](crate::CapabilityAdvert).
    Advert,
    /// [`CallForBids`](crate::CallForBids).
    CallForBids,
    /// [`Bid`](crate::Bid).
    Bid,
    /// [`Award`](crate::Award).
    Award,
    /// [`ResultReport`](crate::ResultReport).
    ResultReport,
    /// [`Verdict`](crate::Verdict).
    Verdict,
    /// [`Checkpoint`](crate::Checkpoint) proposal.
    Checkpoint,
    /// [`CheckpointVote`](crate::CheckpointVote).
    CheckpointVote,
    /// [`AnchorReceipt`](crate::AnchorReceipt).
    AnchorReceipt,
    /// [`JobReceipt`](crate::JobReceipt).
    JobReceipt,
    /// [`FaucetGrant`](crate::credits::FaucetGrant).
    FaucetGrant,
}

impl MessageKind {
    /// The key-derivation context of this kind's signatures.
    pub fn signing_context(self) -> &'static str {
        match self {
            MessageKind::Advert => "cairn 2026 signed advert v1",
            MessageKind::CallForBids => "cairn 2026 signed call for bids v1",
            MessageKind::Bid => "cairn 2026 signed bid v1",
            MessageKind::Award => "cairn 2026 signed award v1",
            MessageKind::ResultReport => "cairn 2026 signed result report v1",
            MessageKind::Verdict => "cairn 2026 signed verdict v1",
            MessageKind::Checkpoint => "cairn 2026 signed checkpoint v1",
            MessageKind::CheckpointVote => "cairn 2026 signed checkpoint vote v1",
            MessageKind::AnchorReceipt => "cairn 2026 signed anchor receipt v1",
            MessageKind::JobReceipt => "cairn 2026 signed job receipt v1",
            MessageKind::FaucetGrant => "cairn 2026 signed faucet grant v1",
        }
    }

    /// The largest payload of this kind that is decoded, in bytes.
    pub fn max_payload_bytes(self) -> usize {
        match self {
            MessageKind::Advert => 16 * 1024,
            MessageKind::CallForBids => 64 * 1024,
            MessageKind::Bid | MessageKind::Award | MessageKind::ResultReport => 4 * 1024,
            MessageKind::CheckpointVote | MessageKind::AnchorReceipt => 4 * 1024,
            MessageKind::FaucetGrant => 4 * 1024,
            MessageKind::JobReceipt => 16 * 1024,
            MessageKind::Verdict => MAX_VERDICT_PAYLOAD_BYTES,
            MessageKind::Checkpoint => 256 * 1024,
        }
    }
}

/// Largest verdict payload: room for the evidence of [`MAX_EVIDENCE_REPORTS`] signed reports.
const MAX_VERDICT_PAYLOAD_BYTES: usize = 256 * 1024;

/// The most signed reports a verdict may carry as evidence.
pub const MAX_EVIDENCE_REPORTS: usize = 32;

/// The largest encoded envelope, in bytes: the largest payload plus the header.
pub const MAX_ENVELOPE_BYTES: usize = MAX_VERDICT_PAYLOAD_BYTES + 1024;

/// A message type that travels in an envelope.
pub trait Message: Encode + Decode<()> + Sized {
    /// The kind tag, which selects the signing domain.
    const KIND: MessageKind;
    /// The node the message claims to come from; it must equal the envelope's signer.
    fn author(&self) -> &NodeId;
}

/// An ed25519 signature.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Encode, Decode)]
pub struct Signature(pub [u8; 64]);

/// A signed message as it travels: header, payload bytes and signature.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
pub struct Envelope {
    /// Protocol version of the sender; must equal [`PROTOCOL_VERSION`].
    pub version: u16,
    /// The network the message was signed for; must equal the verifier's.
    pub network: NetworkId,
    /// What the payload is.
    pub kind: MessageKind,
    /// Who signed.
    pub signer: NodeId,
    /// The encoded message.
    pub payload: Vec<u8>,
    /// Signature over [`Envelope::signing_digest`].
    pub signature: Signature,
}

/// Why an envelope was refused. Each reason is distinct so that rejections can be counted by
/// cause.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// The envelope itself is oversize, malformed or followed by trailing bytes.
    #[error("bad envelope framing: {0}")]
    Framing(CodecError),
    /// The sender speaks another protocol version.
    #[error("unsupported protocol version {found}, this node speaks {expected}")]
    UnsupportedVersion {
        /// Version in the envelope.
        found: u16,
        /// Version this node speaks.
        expected: u16,
    },
    /// The envelope was signed for another network.
    #[error("message signed for network {found}, this node is on {expected}")]
    WrongNetwork {
        /// Network in the envelope.
        found: NetworkId,
        /// This node's network.
        expected: NetworkId,
    },
    /// The envelope holds another kind of message than the one expected here.
    #[error("expected a {expected:?} message, got {found:?}")]
    WrongKind {
        /// Kind expected by the caller.
        expected: MessageKind,
        /// Kind in the envelope.
        found: MessageKind,
    },
    /// The signer field is not a valid ed25519 public key.
    #[error("signer {signer} is not a valid ed25519 key")]
    InvalidSignerKey {
        /// The signer field.
        signer: NodeId,
    },
    /// The signature does not match payload and signer: the message was altered or forged.
    #[error("bad signature from {signer}: the message was altered or not signed by this key")]
    BadSignature {
        /// The claimed signer.
        signer: NodeId,
    },
    /// The payload is validly signed but oversize, malformed or has trailing bytes.
    #[error("bad payload: {0}")]
    Payload(CodecError),
    /// The payload names another node as its author than the one that signed it.
    #[error("message claims to be from {author} but was signed by {signer}")]
    SignerMismatch {
        /// Author named in the payload.
        author: NodeId,
        /// Key that signed the envelope.
        signer: NodeId,
    },
}

impl EnvelopeError {
    /// A stable, short label of the cause, for counting rejections by reason.
    pub fn reason(&self) -> &'static str {
        match self {
            EnvelopeError::Framing(c) => match c {
                CodecError::FrameTooLarge { .. } => "frame_too_large",
                CodecError::TrailingBytes { .. } => "trailing_bytes",
                CodecError::NonCanonical => "non_canonical",
                _ => "malformed",
            },
            EnvelopeError::UnsupportedVersion { .. } => "unsupported_version",
            EnvelopeError::WrongNetwork { .. } => "wrong_network",
            EnvelopeError::WrongKind { .. } => "wrong_kind",
            EnvelopeError::InvalidSignerKey { .. } => "invalid_signer_key",
            EnvelopeError::BadSignature { .. } => "bad_signature",
            EnvelopeError::Payload(_) => "bad_payload",
            EnvelopeError::SignerMismatch { .. } => "signer_mismatch",
        }
    }
}

impl Envelope {
    /// Encodes and signs `message` with `keypair`, for `network`.
    pub fn seal<T: Message>(
        message: &T,
        keypair: &ed25519::Keypair,
        network: &NetworkId,
    ) -> Result<Self, CodecError> {
        let payload = codec::encode(message)?;
        let max = T::KIND.max_payload_bytes();
        if payload.len() > max {
            return Err(CodecError::FrameTooLarge {
                len: payload.len(),
                max,
            });
        }
        let signer = NodeId::from_keypair(keypair);
        let digest = signing_digest(PROTOCOL_VERSION, network, T::KIND, &signer, &payload);
        let mut signature = [0u8; 64];
        signature.copy_from_slice(&keypair.sign(&digest));
        Ok(Self {
            version: PROTOCOL_VERSION,
            network: *network,
            kind: T::KIND,
            signer,
            payload,
            signature: Signature(signature),
        })
    }

    /// The envelope's wire bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>, CodecError> {
        codec::encode(self)
    }

    /// Decodes an envelope from untrusted bytes without checking its signature yet.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, EnvelopeError> {
        codec::decode(bytes, MAX_ENVELOPE_BYTES).map_err(EnvelopeError::Framing)
    }

    /// Decodes, checks and verifies a `T` signed for `network` from untrusted bytes.
    pub fn open<T: Message>(
        bytes: &[u8],
        network: &NetworkId,
    ) -> Result<Verified<T>, EnvelopeError> {
        Self::from_bytes(bytes)?.verify(network)
    }

    /// Checks version, network, kind, signature, payload and author, and yields the message.
    pub fn verify<T: Message>(self, network: &NetworkId) -> Result<Verified<T>, EnvelopeError> {
        if self.version != PROTOCOL_VERSION {
            return Err(EnvelopeError::UnsupportedVersion {
                found: self.version,
                expected: PROTOCOL_VERSION,
            });
        }
        if self.network != *network {
            return Err(EnvelopeError::WrongNetwork {
                found: self.network,
                expected: *network,
            });
        }
        if self.kind != T::KIND {
            return Err(EnvelopeError::WrongKind {
                expected: T::KIND,
                found: self.kind,
            });
        }
        let key = self
            .signer
            .public_key()
            .map_err(|_| EnvelopeError::InvalidSignerKey {
                signer: self.signer,
            })?;
        let digest = self.signing_digest();
        if !key.verify(&digest, &self.signature.0) {
            return Err(EnvelopeError::BadSignature {
                signer: self.signer,
            });
        }
        let message: T = codec::decode(&self.payload, T::KIND.max_payload_bytes())
            .map_err(EnvelopeError::Payload)?;
        if *message.author() != self.signer {
            return Err(EnvelopeError::SignerMismatch {
                author: *message.author(),
                signer: self.signer,
            });
        }
        Ok(Verified {
            envelope: self,
            message,
        })
    }

    /// The 32 bytes that are signed: a digest in the kind's own domain over version, network,
    /// signer and payload, so a signature binds all of them.
    pub fn signing_digest(&self) -> [u8; 32] {
        signing_digest(
            self.version,
            &self.network,
            self.kind,
            &self.signer,
            &self.payload,
        )
    }
}

fn signing_digest(
    version: u16,
    network: &NetworkId,
    kind: MessageKind,
    signer: &NodeId,
    payload: &[u8],
) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new_derive_key(kind.signing_context());
    hasher.update(&version.to_le_bytes());
    hasher.update(network.as_bytes());
    hasher.update(signer.as_bytes());
    hasher.update(&(payload.len() as u64).to_le_bytes());
    hasher.update(payload);
    *hasher.finalize().as_bytes()
}

/// A message whose envelope has been verified. Only [`Envelope::verify`] makes one, so holding
/// a `Verified<T>` proves the checks ran.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Verified<T> {
    envelope: Envelope,
    message: T,
}

impl<T> Verified<T> {
    /// The verified message.
    pub fn message(&self) -> &T {
        &self.message
    }

    /// The node that signed it (equal to the message's author).
    pub fn signer(&self) -> NodeId {
        self.envelope.signer
    }

    /// The original signed envelope, for forwarding or as evidence.
    pub fn envelope(&self) -> &Envelope {
        &self.envelope
    }

    /// Splits into envelope and message.
    pub fn into_parts(self) -> (Envelope, T) {
        (self.envelope, self.message)
    }
}

impl<T: Message> Verified<T> {
    /// Signs `message` for `network` and wraps it; for the local node's own messages.
    pub fn sign(
        message: T,
        keypair: &ed25519::Keypair,
        network: &NetworkId,
    ) -> Result<Self, EnvelopeError> {
        let envelope =
            Envelope::seal(&message, keypair, network).map_err(EnvelopeError::Payload)?;
        if *message.author() != envelope.signer {
            return Err(EnvelopeError::SignerMismatch {
                author: *message.author(),
                signer: envelope.signer,
            });
        }
        Ok(Self { envelope, message })
    }
}
