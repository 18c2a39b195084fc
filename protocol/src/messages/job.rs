//! Jobs and the auction: the job spec, the call for bids, bids and awards.

use bincode::{Decode, Encode};

use crate::envelope::{Message, MessageKind};
use crate::messages::{CapabilityAdvert, GpuInfo};
use crate::{BlobHash, JobId, NodeId, Timestamp, codec};

/// Resource limits the sandbox enforces for one run of a job.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Encode, Decode)]
pub struct Limits {
    /// Fuel (deterministic instruction budget).
    pub fuel: u64,
    /// Linear memory, in bytes.
    pub memory_bytes: u64,
    /// Wall-clock safety net, in milliseconds. Not deterministic: a provider that hits it is
    /// never counted as dissenting.
    pub wall_time_ms: u64,
    /// Largest output the job may write, in bytes.
    pub max_output_bytes: u64,
}

/// A GPU the job needs.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
pub struct GpuRequirement {
    /// Minimum memory per device, in bytes.
    pub min_vram_bytes: u64,
    /// Minimum compute capability, if any.
    pub min_compute_capability: Option<crate::ComputeCapability>,
}

/// What a provider must have to take a job.
#[derive(Clone, PartialEq, Eq, Debug, Default, Encode, Decode)]
pub struct Requirements {
    /// A GPU, or `None` for CPU jobs.
    pub gpu: Option<GpuRequirement>,
    /// Memory the provider must offer, in bytes.
    pub min_memory_bytes: u64,
    /// Exact sandbox identity required, so that fuel and outputs are comparable; `None`
    /// accepts any.
    pub runtime: Option<String>,
}

impl Requirements {
    /// Whether `advert` satisfies these requirements.
    pub fn matches(&self, advert: &CapabilityAdvert) -> bool {
        if advert.memory_bytes < self.min_memory_bytes {
            return false;
        }
        if self.runtime.as_ref().is_some_and(|r| *r != advert.runtime) {
            return false;
        }
        self.gpu.is_none() || self.matching_gpus(advert).is_some()
    }

    /// The first group of `advert`'s GPUs that meets the GPU requirement, with the device index
    /// of its first device (indices count through the groups in order); `None` when no group
    /// does or the job needs no GPU.
    pub fn matching_gpus<'a>(&self, advert: &'a CapabilityAdvert) -> Option<(u32, &'a GpuInfo)> {
        let req = self.gpu.as_ref()?;
        let mut first_index = 0u32;
        for gpu in &advert.gpus {
            let fits = gpu.count > 0
                && gpu.vram_bytes >= req.min_vram_bytes
                && req
                    .min_compute_capability
                    .is_none_or(|cc| gpu.compute_capability >= cc);
            if fits {
                return Some((first_index, gpu));
            }
            first_index = first_index.saturating_add(gpu.count);
        }
        None
    }
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Device::Cpu { cores } => write!(f, "{cores} CPU core(s)"),
            Device::Gpu { index, model } => write!(f, "GPU {index} ({model})"),
        }
    }
}

/// Everything that defines a job. Its [`JobId`] is the hash of its encoding, so two nodes that
/// talk about the same id talk about the same module, input, arguments and limits.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
pub struct JobSpec {
    /// The node that submits and pays.
    pub requester: NodeId,
    /// Makes otherwise equal submissions distinct jobs.
    pub nonce: u64,
    /// The WebAssembly module (WASI preview 1 command).
    pub module: BlobHash,
    /// Bytes given to the module on stdin.
    pub input: BlobHash,
    /// Command-line arguments (after the program name).
    pub args: Vec<String>,
    /// Sandbox limits.
    pub limits: Limits,
    /// What a provider must have.
    pub requirements: Requirements,
    /// Providers that run the job in the first round.
    pub replicas: u8,
    /// Agreeing reports needed to accept an output.
    pub quorum: u8,
    /// Most replicas the job may ever get, escalations included.
    pub max_replicas: u8,
    /// Highest price per replica the requester pays.
    pub max_price: u64,
    /// Bids arriving after this time are ignored.
    pub bid_deadline: Timestamp,
    /// The job fails if not accepted by this time.
    pub deadline: Timestamp,
}

impl JobSpec {
    /// The job's id: the domain-separated hash of its encoding.
    pub fn id(&self) -> Result<JobId, codec::CodecError> {
        Ok(JobId::of(&codec::encode(self)?))
    }
}

/// A requester's call for bids, sent point to point to a bounded set of candidates.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
pub struct CallForBids {
    /// The job.
    pub spec: JobSpec,
    /// When the call was made.
    pub issued_at: Timestamp,
}

impl Message for CallForBids {
    const KIND: MessageKind = MessageKind::CallForBids;
    fn author(&self) -> &NodeId {
        &self.spec.requester
    }
}

/// The concrete device a bid commits to.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
pub enum Device {
    /// CPU cores.
    Cpu {
        /// Cores reserved for the job.
        cores: u32,
    },
    /// One GPU.
    Gpu {
        /// Device index on the provider.
        index: u32,
        /// Model name, as in the advert.
        model: String,
    },
}

/// A provider's sealed offer to run one replica of a job.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
pub struct Bid {
    /// The job bid for.
    pub job: JobId,
    /// The bidding provider; must be the envelope's signer.
    pub bidder: NodeId,
    /// Price for one replica.
    pub price: u64,
    /// The device the provider will use.
    pub device: Device,
    /// Sandbox identity the provider will run.
    pub runtime: String,
    /// The offer lapses after this time.
    pub expires_at: Timestamp,
}

impl Message for Bid {
    const KIND: MessageKind = MessageKind::Bid;
    fn author(&self) -> &NodeId {
        &self.bidder
    }
}

/// The requester's signed award of one replica to a provider.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
pub struct Award {
    /// The job.
    pub job: JobId,
    /// The requester; must be the envelope's signer.
    pub requester: NodeId,
    /// The winning provider.
    pub provider: NodeId,
    /// The agreed price.
    pub price: u64,
    /// The provider's report must arrive by this time.
    pub report_by: Timestamp,
}

impl Message for Award {
    const KIND: MessageKind = MessageKind::Award;
    fn author(&self) -> &NodeId {
        &self.requester
    }
}
