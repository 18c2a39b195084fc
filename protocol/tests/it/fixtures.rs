//! Seeded keys and ready-made messages shared by the scenarios.

use cairn_protocol::*;
use libp2p_identity::ed25519;

/// The network every fixture message is signed for.
pub const NET: NetworkId = NetworkId([0x4e; 32]);

/// The award price the fixture reports state (the price the scenarios award at).
pub const REPORT_PRICE: u64 = 10;

/// A keypair derived from `seed`, the same on every run.
pub fn keypair(seed: u8) -> ed25519::Keypair {
    let mut secret = [seed; 32];
    secret[31] = 0x5a;
    ed25519::Keypair::from(ed25519::SecretKey::try_from_bytes(&mut secret).unwrap())
}

pub fn node(seed: u8) -> NodeId {
    NodeId::from_keypair(&keypair(seed))
}

pub fn spec(requester: u8) -> JobSpec {
    JobSpec {
        requester: node(requester),
        nonce: 7,
        module: BlobHash::of(b"module"),
        input: BlobHash::of(b"input"),
        args: vec!["--size".into(), "8".into()],
        limits: Limits {
            fuel: 1_000_000,
            memory_bytes: 64 << 20,
            wall_time_ms: 10_000,
            max_output_bytes: 1 << 20,
        },
        requirements: Requirements::default(),
        replicas: 3,
        quorum: 2,
        max_replicas: 8,
        max_price: 1_000,
        bid_deadline: Timestamp(1_000),
        deadline: Timestamp(100_000),
    }
}

pub fn output(bytes: &[u8]) -> Outcome {
    Outcome::Output {
        digest: BlobHash::of(bytes),
        size: bytes.len() as u64,
    }
}

pub fn report(provider: u8, job: JobId, outcome: Outcome) -> Verified<ResultReport> {
    let message = ResultReport {
        job,
        provider: node(provider),
        outcome,
        fuel_used: 1234,
        price: REPORT_PRICE,
        runtime: "wasmtime-48/test".into(),
        sealed_output: None,
    };
    Verified::sign(message, &keypair(provider), &NET).unwrap()
}

pub fn advert(peer: u8, sequence: u64, issued: u64, expires: u64) -> CapabilityAdvert {
    CapabilityAdvert {
        peer: node(peer),
        sequence,
        issued_at: Timestamp(issued),
        expires_at: Timestamp(expires),
        gpus: vec![],
        simulated_gpus: false,
        cpu_cores: 2,
        memory_bytes: 8 << 30,
        runtime: "wasmtime-48/test".into(),
        price: PriceSchedule {
            per_mega_fuel: 1,
            per_gpu_second: 0,
            minimum: 1,
        },
        capacity: 2,
        addresses: vec!["/ip4/127.0.0.1/tcp/4001".into()],
    }
}

pub fn h100() -> GpuInfo {
    GpuInfo {
        model: "NVIDIA H100 80GB HBM3".into(),
        vram_bytes: 85_520_809_984,
        compute_capability: ComputeCapability { major: 9, minor: 0 },
        count: 1,
        driver: "580.159.04".into(),
        cuda: "13.0".into(),
    }
}

/// Checked verdict evidence of a job of its own (each call a new job), requested by node 200.
pub fn evidence(agreeing: &[u8], dissenting: &[u8], timed_out: &[u8]) -> messages::Evidence {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let ids = |v: &[u8]| v.iter().map(|p| node(*p)).collect();
    messages::Evidence {
        job: JobId::of(&n.to_le_bytes()),
        requester: node(200),
        issued_at: Timestamp(1_000),
        expires_at: Timestamp(1_000_000),
        agreeing: ids(agreeing),
        dissenting: ids(dissenting),
        timed_out: ids(timed_out),
    }
}
