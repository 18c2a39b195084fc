//! Capability adverts: what a provider offers, signed, sequenced and expiring.

use bincode::{Decode, Encode};

use crate::envelope::{Message, MessageKind};
use crate::{NodeId, Timestamp};

/// CUDA compute capability, such as 9.0 for an H100.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Encode, Decode)]
pub struct ComputeCapability {
    /// Major version (9 for Hopper).
    pub major: u8,
    /// Minor version.
    pub minor: u8,
}

impl std::fmt::Display for ComputeCapability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// One kind of GPU in a node; `count` identical devices.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
pub struct GpuInfo {
    /// Marketing name as the driver reports it, such as `NVIDIA H100 80GB HBM3`.
    pub model: String,
    /// Memory per device in bytes.
    pub vram_bytes: u64,
    /// CUDA compute capability.
    pub compute_capability: ComputeCapability,
    /// Number of identical devices.
    pub count: u32,
    /// Driver version, such as `580.159.04`.
    pub driver: String,
    /// CUDA version the driver supports, such as `13.0`.
    pub cuda: String,
}

/// What a provider charges. Prices are integers in the network's smallest unit.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, Encode, Decode)]
pub struct PriceSchedule {
    /// Price per million fuel units (the sandbox's deterministic measure of CPU work).
    pub per_mega_fuel: u64,
    /// Price per GPU-second for GPU jobs.
    pub per_gpu_second: u64,
    /// Minimum price of any job.
    pub minimum: u64,
}

/// A provider's signed statement of what it can run and at what price.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
pub struct CapabilityAdvert {
    /// The advertising node; must be the envelope's signer.
    pub peer: NodeId,
    /// Strictly increasing per peer: an advert with a sequence number not above the last one
    /// seen from the same peer is a replay.
    pub sequence: u64,
    /// When the advert was made.
    pub issued_at: Timestamp,
    /// After this time the advert must not be used.
    pub expires_at: Timestamp,
    /// GPUs, one entry per model; empty for a CPU-only node.
    pub gpus: Vec<GpuInfo>,
    /// True when the GPU list was set by hand for a simulation rather than detected.
    pub simulated_gpus: bool,
    /// Logical CPU cores offered.
    pub cpu_cores: u32,
    /// Memory offered to jobs, in bytes.
    pub memory_bytes: u64,
    /// Identity of the sandbox (wasmtime version and configuration fingerprint).
    pub runtime: String,
    /// Prices.
    pub price: PriceSchedule,
    /// Jobs the provider runs at once.
    pub capacity: u32,
    /// Where the node can be reached: multiaddrs as text (public or relayed ones first), at
    /// most [`MAX_ADVERT_ADDRESSES`] of at most [`MAX_ADVERT_ADDRESS_LEN`] bytes. Requesters
    /// dial these, so a provider found through gossip is reachable without a DHT walk.
    pub addresses: Vec<String>,
}

/// Most addresses in an advert.
pub const MAX_ADVERT_ADDRESSES: usize = 8;

/// Longest address in an advert, in bytes.
pub const MAX_ADVERT_ADDRESS_LEN: usize = 256;

impl CapabilityAdvert {
    /// The capability classes this advert belongs to, as used for DHT provider records:
    /// `cpu` always, and for GPUs `gpu`, `gpu:smXY` and `gpu:vram>=NGB` buckets.
    pub fn classes(&self) -> Vec<String> {
        let mut classes = vec!["cpu".to_owned()];
        if !self.gpus.is_empty() {
            classes.push("gpu".to_owned());
        }
        for gpu in &self.gpus {
            let cc = gpu.compute_capability;
            classes.push(format!("gpu:sm{}{}", cc.major, cc.minor));
            for gb in VRAM_BUCKETS_GB {
                if gpu.vram_bytes >= gb * GB {
                    classes.push(format!("gpu:vram>={gb}GB"));
                }
            }
        }
        classes.sort();
        classes.dedup();
        classes
    }
}

const GB: u64 = 1_000_000_000;
/// VRAM thresholds in decimal gigabytes (as cards are sold: an "80GB" H100 reports about
/// 85.5e9 bytes) for the `gpu:vram>=NGB` capability classes.
const VRAM_BUCKETS_GB: [u64; 5] = [8, 16, 24, 40, 80];

impl Message for CapabilityAdvert {
    const KIND: MessageKind = MessageKind::Advert;
    fn author(&self) -> &NodeId {
        &self.peer
    }
}
