//! Why a node could not start or an operation failed.

use std::path::PathBuf;

use cairn_protocol::BlobHash;

use crate::net::{self, NetError};
use crate::store::StoreError;

/// Why a node could not start or an operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The network failed.
    #[error(transparent)]
    Net(#[from] NetError),
    /// The swarm could not be built.
    #[error(transparent)]
    Swarm(#[from] net::SwarmBuildError),
    /// A file in the data dir could not be written or read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The stored identity is not a valid key.
    #[error("the identity in the data dir is corrupt: {0}")]
    Identity(String),
    /// An address is not a valid multiaddr.
    #[error("invalid multiaddr {addr:?}: {reason}")]
    Multiaddr {
        /// The text.
        addr: String,
        /// Why.
        reason: String,
    },
    /// A blob could not be found on any provider.
    #[error("blob {hash} not found: {reason}")]
    BlobUnavailable {
        /// The blob.
        hash: BlobHash,
        /// What was tried.
        reason: String,
    },
    /// A job request's numbers do not make a job.
    #[error(transparent)]
    Request(#[from] cairn_protocol::RequestError),
    /// A job names a blob this node does not hold.
    #[error("blob {0} is not on this node; put it first")]
    MissingBlob(BlobHash),
    /// The sandbox could not be created.
    #[error("cannot create the sandbox: {0}")]
    Sandbox(String),
    /// A message of this node's could not be signed.
    #[error("cannot sign: {0}")]
    Sign(#[from] cairn_protocol::EnvelopeError),
    /// A message or record could not be encoded.
    #[error("cannot encode: {0}")]
    Encode(#[from] cairn_protocol::codec::CodecError),
    /// A signed record in the store does not open (corrupt, or of another network).
    #[error("stored {what} is unreadable: {source}")]
    StoredRecord {
        /// What it is.
        what: &'static str,
        /// Why it does not open.
        source: cairn_protocol::EnvelopeError,
    },
    /// A job's private data could not be sealed to its party, or what a party sent does not
    /// open (see `cairn_protocol::seal`).
    #[error("sealed job data: {0}")]
    Seal(#[from] cairn_protocol::seal::SealError),
    /// This node's credits do not cover a job: its balance, less what other jobs hold in
    /// escrow, is below the most the job can cost at its first auction.
    #[error(
        "this job can cost up to {needed} credits ({replicas} replicas at a maximum price of \
         {max_price}), but this node has {available} available (balance {balance}, {escrowed} \
         held for running jobs). {how}"
    )]
    CannotPay {
        /// The node's balance.
        balance: u64,
        /// Held in escrow for this node's other jobs.
        escrowed: u64,
        /// `balance - escrowed`.
        available: u64,
        /// What the job may cost: replicas times its maximum price.
        needed: u64,
        /// The job's replicas.
        replicas: u8,
        /// The job's maximum price per replica.
        max_price: u64,
        /// How to get credits on this network.
        how: String,
    },
    /// The network spec or config is not usable.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
}
