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

impl Limits {
    /// The limits a request gets unless it names others: 10^10 fuel, 256 MiB of memory,
    /// 30 s of wall time per run, 16 MiB of output.
    pub const DEFAULT: Limits = Limits {
        fuel: 10_000_000_000,
        memory_bytes: 256 * 1024 * 1024,
        wall_time_ms: 30_000,
        max_output_bytes: 16 * 1024 * 1024,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}

/// What a user asks of the network: a job before a node takes it on as its requester.
///
/// [`JobRequest::into_spec`] is the one place a request becomes a [`JobSpec`]; the node that
/// submits it adds its own identity, its sandbox's runtime identity, a nonce and the clock.
/// Every field has a documented default ([`JobRequest::new`]), shared by the API, the CLI and
/// the simulation.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct JobRequest {
    /// The WebAssembly module, by hash.
    pub module: BlobHash,
    /// Bytes given to the module on stdin, by hash.
    pub input: BlobHash,
    /// Command-line arguments (after the program name). Default none.
    pub args: Vec<String>,
    /// Sandbox limits. Default [`Limits::DEFAULT`].
    pub limits: Limits,
    /// A GPU the job needs. Default none.
    pub gpu: Option<GpuRequirement>,
    /// Providers in the first round. Default [`JobRequest::DEFAULT_REPLICAS`].
    pub replicas: u8,
    /// Agreeing reports needed. Default [`JobRequest::DEFAULT_QUORUM`].
    pub quorum: u8,
    /// Most replicas ever, escalations included. Default `2 × replicas + 2`: room to settle
    /// a disagreement, where the winner must out-number the dissenters by a quorum.
    pub max_replicas: Option<u8>,
    /// Highest price per replica. Default [`JobRequest::DEFAULT_MAX_PRICE`].
    pub max_price: u64,
    /// How long bids are collected, ms. Default [`JobRequest::DEFAULT_BID_WINDOW_MS`].
    pub bid_window_ms: u64,
    /// Time until the job fails if not accepted, ms. Default
    /// [`JobRequest::DEFAULT_DEADLINE_MS`].
    pub deadline_ms: u64,
}

/// Why a [`JobRequest`] cannot become a job.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum RequestError {
    /// No replica, or a quorum of zero or above the replicas.
    #[error("quorum {quorum} must be between 1 and replicas ({replicas})")]
    Quorum {
        /// The quorum asked for.
        quorum: u8,
        /// The replicas asked for.
        replicas: u8,
    },
    /// A replica cap below the first round.
    #[error("max replicas {max_replicas} is below replicas {replicas}")]
    MaxReplicas {
        /// The cap asked for.
        max_replicas: u8,
        /// The replicas asked for.
        replicas: u8,
    },
}

impl JobRequest {
    /// Providers in the first round unless a request says otherwise.
    pub const DEFAULT_REPLICAS: u8 = 3;
    /// Agreeing reports needed unless a request says otherwise.
    pub const DEFAULT_QUORUM: u8 = 2;
    /// Highest price per replica unless a request says otherwise.
    pub const DEFAULT_MAX_PRICE: u64 = 1_000_000;
    /// How long bids are collected unless a request says otherwise, ms.
    pub const DEFAULT_BID_WINDOW_MS: u64 = 2_000;
    /// Time until an unaccepted job fails unless a request says otherwise, ms (5 minutes).
    pub const DEFAULT_DEADLINE_MS: u64 = 300_000;

    /// A request for `module` on `input` with every default.
    pub fn new(module: BlobHash, input: BlobHash) -> Self {
        Self {
            module,
            input,
            args: Vec::new(),
            limits: Limits::DEFAULT,
            gpu: None,
            replicas: Self::DEFAULT_REPLICAS,
            quorum: Self::DEFAULT_QUORUM,
            max_replicas: None,
            max_price: Self::DEFAULT_MAX_PRICE,
            bid_window_ms: Self::DEFAULT_BID_WINDOW_MS,
            deadline_ms: Self::DEFAULT_DEADLINE_MS,
        }
    }

    /// The replica cap this request gets: its own, else `2 × replicas + 2`.
    pub fn max_replicas(&self) -> u8 {
        self.max_replicas
            .unwrap_or(self.replicas.saturating_mul(2).saturating_add(2))
    }

    /// Checks the request's numbers before anything is spent on it.
    pub fn validate(&self) -> Result<(), RequestError> {
        if self.quorum == 0 || self.quorum > self.replicas {
            return Err(RequestError::Quorum {
                quorum: self.quorum,
                replicas: self.replicas,
            });
        }
        if self.max_replicas() < self.replicas {
            return Err(RequestError::MaxReplicas {
                max_replicas: self.max_replicas(),
                replicas: self.replicas,
            });
        }
        Ok(())
    }

    /// The spec `requester` submits for this request at `now`, for providers running
    /// `runtime` (the requester's own sandbox identity, so that every replica runs the same
    /// engine), told apart from every equal request by `nonce`.
    pub fn into_spec(
        self,
        requester: NodeId,
        runtime: String,
        nonce: u64,
        now: Timestamp,
    ) -> Result<JobSpec, RequestError> {
        self.validate()?;
        let max_replicas = self.max_replicas();
        Ok(JobSpec {
            requester,
            nonce,
            module: self.module,
            input: self.input,
            args: self.args,
            limits: self.limits,
            requirements: Requirements {
                gpu: self.gpu,
                min_memory_bytes: 0,
                runtime: Some(runtime),
            },
            replicas: self.replicas,
            quorum: self.quorum,
            max_replicas,
            max_price: self.max_price,
            bid_deadline: now.plus_ms(self.bid_window_ms),
            deadline: now.plus_ms(self.deadline_ms),
        })
    }
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
    /// The job's input sealed to this provider ([`crate::seal`], purpose input): the blob
    /// the provider fetches from the requester and opens, instead of the input in the clear.
    /// `None`: the input is fetched in the clear by the spec's hash.
    pub sealed_input: Option<BlobHash>,
}

impl Message for Award {
    const KIND: MessageKind = MessageKind::Award;
    fn author(&self) -> &NodeId {
        &self.requester
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> JobRequest {
        JobRequest::new(BlobHash::of(b"module"), BlobHash::of(b"input"))
    }

    #[test]
    fn a_request_becomes_the_spec_of_its_requester_with_the_documented_defaults() {
        let now = Timestamp(1_000_000);
        let me = NodeId([3; 32]);
        let spec = request()
            .into_spec(me, "wasmtime-48".into(), 7, now)
            .unwrap();
        assert_eq!(spec.requester, me);
        assert_eq!(spec.nonce, 7);
        assert_eq!((spec.replicas, spec.quorum, spec.max_replicas), (3, 2, 8));
        assert_eq!(spec.limits, Limits::DEFAULT);
        assert_eq!(spec.max_price, 1_000_000);
        assert_eq!(spec.requirements.runtime.as_deref(), Some("wasmtime-48"));
        assert_eq!(spec.requirements.gpu, None);
        assert_eq!(spec.bid_deadline, now.plus_ms(2_000));
        assert_eq!(spec.deadline, now.plus_ms(300_000));
        // Equal requests are told apart by their nonce.
        let other = request()
            .into_spec(me, "wasmtime-48".into(), 8, now)
            .unwrap();
        assert_ne!(spec.id().unwrap(), other.id().unwrap());
    }

    #[test]
    fn a_request_whose_numbers_make_no_job_is_refused_with_the_reason() {
        let no_quorum = JobRequest {
            quorum: 0,
            ..request()
        };
        assert_eq!(
            no_quorum.validate(),
            Err(RequestError::Quorum {
                quorum: 0,
                replicas: 3
            })
        );
        let too_many = JobRequest {
            quorum: 4,
            ..request()
        };
        assert!(matches!(
            too_many.into_spec(NodeId([1; 32]), String::new(), 0, Timestamp(0)),
            Err(RequestError::Quorum { quorum: 4, .. })
        ));
        let low_cap = JobRequest {
            max_replicas: Some(2),
            ..request()
        };
        assert!(
            low_cap
                .validate()
                .unwrap_err()
                .to_string()
                .contains("below replicas 3")
        );
        let own_cap = JobRequest {
            replicas: 1,
            quorum: 1,
            max_replicas: Some(1),
            ..request()
        };
        assert_eq!(own_cap.max_replicas(), 1);
        assert!(own_cap.validate().is_ok());
    }
}
