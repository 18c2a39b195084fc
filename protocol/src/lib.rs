//! `cairn-protocol`: Cairn's wire types and rules, as pure code.
//!
//! This crate knows nothing of tokio, libp2p's swarm, sled or wasmtime. It holds:
//! - identifiers ([`ids`]) and the one codec ([`codec`]: bincode 2, bounded, strict);
//! - every message ([`messages`]) and the signed [`Envelope`] they travel in;
//! - the rules, as functions and small state machines that take `now` as an argument:
//!   the advert book ([`adverts`]), bid selection ([`auction`]), the quorum decision
//!   ([`quorum`]), reputation ([`reputation`]), credits and escrow ([`credits`]), the
//!   checkpoint ledger ([`ledger`]) and the checkpoint Merkle tree ([`merkle`]);
//! - checkpoints and their anchoring: committee, proposer and vote rules ([`checkpoint`]), the
//!   epoch round that applies them ([`checkpoint::round`]), the OP_RETURN payload
//!   ([`anchor`]), SPV checks of an anchor transaction ([`spv`]) and offline reputation proofs
//!   ([`proof`]);
//! - end-to-end sealing of a job's input and output to its parties ([`seal`]).
//!
//! `cairn-runtime` and `cairn-node` depend on it; it depends on no other Cairn crate.
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod adverts;
pub mod anchor;
pub mod auction;
pub mod blob_wire;
pub mod checkpoint;
pub mod codec;
pub mod credits;
pub mod envelope;
pub mod ids;
pub mod ledger;
pub mod merkle;
pub mod messages;
pub mod proof;
pub mod provider;
pub mod quorum;
pub mod reputation;
pub mod requester;
pub mod seal;
pub mod spv;
mod time;
pub mod wire;

pub use bitcoin;

pub use envelope::{Envelope, EnvelopeError, Message, MessageKind, Signature, Verified};
pub use ids::{
    BlobHash, CheckpointHash, GrantId, JobId, NetworkId, NodeId, ParseIdError, VerdictId,
};
pub use messages::*;
pub use time::Timestamp;

/// The protocol version every envelope carries. Nodes refuse envelopes of other versions.
/// Version 2: envelopes carry and sign the network id, encodings are canonical, and verdicts
/// carry the job's spec and awards. Version 3: checkpoint leaves carry a credit balance (their
/// encoding and the reputation root change) and faucet grants are a message kind. Version 4:
/// result reports carry their award's price, which verdicts must agree with.
pub const PROTOCOL_VERSION: u16 = 4;
