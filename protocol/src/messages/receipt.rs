//! Receipts: the requester's signed record of an accepted job.

use bincode::{Decode, Encode};

use crate::envelope::{Message, MessageKind};
use crate::{BlobHash, JobId, NodeId, Timestamp};

/// What a requester signs when it accepts a job's output: enough to show later which module
/// ran on which input, what came out, and who agreed on it.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
pub struct JobReceipt {
    /// The job.
    pub job: JobId,
    /// The requester; must be the envelope's signer.
    pub requester: NodeId,
    /// The module that ran.
    pub module: BlobHash,
    /// Its input.
    pub input: BlobHash,
    /// The accepted output.
    pub output: BlobHash,
    /// The output's size in bytes.
    pub output_size: u64,
    /// Fuel the run used (the same on every agreeing replica).
    pub fuel_used: u64,
    /// Providers whose signed reports agreed on the output.
    pub providers: Vec<NodeId>,
    /// When the receipt was made.
    pub issued_at: Timestamp,
}

impl Message for JobReceipt {
    const KIND: MessageKind = MessageKind::JobReceipt;
    fn author(&self) -> &NodeId {
        &self.requester
    }
}
