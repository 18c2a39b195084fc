//! Result reports: what a provider says its run produced.

use bincode::{Decode, Encode};

use crate::envelope::{Message, MessageKind};
use crate::{BlobHash, JobId, NodeId};

/// Why a run ended without output, as reported. The names match the sandbox's error kinds.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Encode, Decode)]
#[non_exhaustive]
pub enum FailureKind {
    /// The module is not valid WebAssembly.
    InvalidModule,
    /// The module imports something the sandbox does not provide.
    MissingImport,
    /// The module has no `_start`.
    NoEntryPoint,
    /// The fuel limit was reached.
    OutOfFuel,
    /// The memory limit was reached.
    OutOfMemory,
    /// The module trapped.
    Trap,
    /// The module wrote more than the output limit.
    OutputTooLarge,
    /// The module exited with a non-zero code.
    Exit(i32),
    /// The host's wall-clock safety net fired. Host-dependent.
    Timeout,
    /// The host's native stack ran out. Host-dependent: `max_wasm_stack` is not exact.
    StackOverflow,
    /// The host failed, not the guest. Host-dependent: never dissent.
    HostFault,
}

impl std::fmt::Display for FailureKind {
    /// In words, for users.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FailureKind::InvalidModule => f.write_str("the module is not valid WebAssembly"),
            FailureKind::MissingImport => {
                f.write_str("the module imports something the sandbox does not provide")
            }
            FailureKind::NoEntryPoint => f.write_str("the module has no _start"),
            FailureKind::OutOfFuel => f.write_str("out of fuel"),
            FailureKind::OutOfMemory => f.write_str("out of memory"),
            FailureKind::Trap => f.write_str("the module trapped"),
            FailureKind::OutputTooLarge => f.write_str("output above the limit"),
            FailureKind::Exit(code) => write!(f, "exited with code {code}"),
            FailureKind::Timeout => f.write_str("wall-clock limit reached"),
            FailureKind::StackOverflow => f.write_str("stack overflow"),
            FailureKind::HostFault => f.write_str("the host failed"),
        }
    }
}

impl FailureKind {
    /// Whether every honest host reaches the same failure on the same job. Host-dependent
    /// failures (timeouts, stack overflows) are never held against a provider and never count
    /// towards or against a quorum.
    pub fn is_deterministic(self) -> bool {
        !matches!(
            self,
            FailureKind::Timeout | FailureKind::StackOverflow | FailureKind::HostFault
        )
    }
}

/// How a run ended.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Encode, Decode)]
pub enum Outcome {
    /// The run finished with exit code 0 and produced this output.
    Output {
        /// blake3 of the output bytes.
        digest: BlobHash,
        /// Output length in bytes.
        size: u64,
    },
    /// The run failed.
    Failed(FailureKind),
}

impl Outcome {
    /// Whether honest replicas must agree on this outcome.
    pub fn is_deterministic(&self) -> bool {
        match self {
            Outcome::Output { .. } => true,
            Outcome::Failed(kind) => kind.is_deterministic(),
        }
    }
}

/// A provider's signed report of one run.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
pub struct ResultReport {
    /// The job.
    pub job: JobId,
    /// The reporting provider; must be the envelope's signer.
    pub provider: NodeId,
    /// What the run produced.
    pub outcome: Outcome,
    /// Fuel the run consumed.
    pub fuel_used: u64,
    /// The price of the provider's award (for a run to the spec's fuel limit), as the
    /// requester's signed award said: the provider's own word on what it is owed, so a
    /// verdict whose award terms state another price is refused and settlement pays this one.
    pub price: u64,
    /// Sandbox identity that ran it.
    pub runtime: String,
    /// The output sealed to the job's requester ([`crate::seal`], purpose output): the blob
    /// the requester fetches from this provider and opens. The outcome's digest is that of
    /// the plaintext, so replicas' reports still agree. `None`: no output, or it is served in
    /// the clear by its digest.
    pub sealed_output: Option<BlobHash>,
}

impl Message for ResultReport {
    const KIND: MessageKind = MessageKind::ResultReport;
    fn author(&self) -> &NodeId {
        &self.provider
    }
}
