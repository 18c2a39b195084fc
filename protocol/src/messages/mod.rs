//! Every message of the protocol. Each is a plain struct; on the wire it travels inside a
//! signed [`Envelope`](crate::Envelope) whose header carries the protocol version and the
//! message kind.

mod advert;
mod checkpoint;
mod job;
mod receipt;
mod report;
mod verdict;

pub use advert::{
    CapabilityAdvert, ComputeCapability, GpuInfo, MAX_ADVERT_ADDRESS_LEN, MAX_ADVERT_ADDRESSES,
    PriceSchedule,
};
pub use checkpoint::{AnchorReceipt, CHECKPOINT_VERSION, Checkpoint, CheckpointVote};
pub use job::{
    Award, Bid, CallForBids, Device, GpuRequirement, JobRequest, JobSpec, Limits, RequestError,
    Requirements,
};
pub use receipt::JobReceipt;
pub use report::{FailureKind, Outcome, ResultReport};
pub use verdict::{
    AwardTerms, Evidence, VERDICT_GRACE_MS, VERDICT_MAX_AGE_MS, VERDICT_MAX_SKEW_MS, Verdict,
    VerdictDecision, VerdictError,
};
