//! What the trust checks cost per verdict, printed as a report: opening a verdict's envelope
//! (signature, decode, and the canonical re-encode), the canonical re-encode alone, hashing the
//! spec to its job id, and checking the evidence (three report signatures, the spec, the
//! awards). Every node does the first and last for every verdict it hears. Then what sealing a
//! job's input or output to one party costs, and opening it (`seal`): a requester seals the
//! input once per awarded provider, a provider its output once.
//!
//! Run with `cargo bench -p cairn-protocol --bench checks`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use cairn_protocol::quorum::QuorumTally;
use cairn_protocol::*;
use libp2p_identity::ed25519;

const ROUNDS: usize = 2_000;

fn keypair(seed: u8) -> ed25519::Keypair {
    let mut secret = [seed; 32];
    secret[31] = 0x5a;
    ed25519::Keypair::from(ed25519::SecretKey::try_from_bytes(&mut secret).expect("key"))
}

fn main() {
    let net = NetworkId([7; 32]);
    let requester = keypair(100);
    let spec = JobSpec {
        requester: NodeId::from_keypair(&requester),
        nonce: 1,
        module: BlobHash::of(b"module"),
        input: BlobHash::of(b"input"),
        args: vec!["--words".into()],
        limits: Limits {
            fuel: 1_000_000_000,
            memory_bytes: 64 << 20,
            wall_time_ms: 10_000,
            max_output_bytes: 1 << 20,
        },
        requirements: Requirements::default(),
        replicas: 3,
        quorum: 2,
        max_replicas: 5,
        max_price: 1_000_000,
        bid_deadline: Timestamp(1_000),
        deadline: Timestamp(100_000),
    };
    let job = spec.id().expect("id");
    let mut tally = QuorumTally::new(job, &spec);
    let output = Outcome::Output {
        digest: BlobHash::of(b"out"),
        size: 3,
    };
    for p in 1..=3u8 {
        let key = keypair(p);
        let provider = NodeId::from_keypair(&key);
        tally.award(provider, 10, Timestamp(50_000)).expect("award");
        let report = ResultReport {
            job,
            provider,
            outcome: output,
            fuel_used: 1_000,
            price: 10,
            runtime: "wasmtime-48".into(),
            sealed_output: None,
        };
        let signed = Verified::sign(report, &key, &net).expect("report");
        tally.add_report(signed, Timestamp(2_000)).expect("counted");
    }
    let decision = tally.decide(Timestamp(2_000));
    let verdict = tally
        .verdict(&decision, &spec, Timestamp(2_000))
        .expect("verdict");
    let bytes = Envelope::seal(&verdict, &requester, &net)
        .expect("seal")
        .to_bytes()
        .expect("bytes");
    let size = |bytes: Result<Vec<u8>, _>| bytes.map_or(0, |b: Vec<u8>| b.len());
    println!(
        "verdict with 3 reports: {} bytes, of which the spec {} and each award's terms {}; \
         median of {ROUNDS} rounds",
        bytes.len(),
        size(codec::encode(&spec)),
        size(codec::encode(&verdict.awards[0])),
    );
    report("open the envelope (signature, decode, canonical)", || {
        black_box(Envelope::open::<Verdict>(black_box(&bytes), &net).is_ok());
    });
    report("canonical re-encode alone (encode the verdict)", || {
        black_box(codec::encode(black_box(&verdict)).is_ok());
    });
    report("spec to job id (encode + blake3)", || {
        black_box(black_box(&spec).id().is_ok());
    });
    report("evidence (3 report signatures, spec, awards)", || {
        black_box(black_box(&verdict).evidence(&net).is_ok());
    });

    let recipient = keypair(1);
    let to = NodeId::from_keypair(&recipient);
    let opening = seal::OpeningKey::of(&recipient).expect("opening key");
    let scope = seal::Scope {
        network: net,
        job,
        purpose: seal::Purpose::Input,
    };
    for kib in [1usize, 1024] {
        let data = vec![7u8; kib << 10];
        let hash = BlobHash::of(&data);
        let sealed = seal::seal(&to, &scope, &data, [1; 32]).expect("sealed");
        report(&format!("seal {kib} KiB to one party"), || {
            black_box(seal::seal(&to, &scope, black_box(&data), [1; 32]).is_ok());
        });
        report(&format!("open {kib} KiB and check its hash"), || {
            black_box(seal::open(&opening, &scope, black_box(&sealed), hash).is_ok());
        });
    }
}

fn report(what: &str, mut f: impl FnMut()) {
    let mut times: Vec<Duration> = (0..ROUNDS)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    times.sort();
    let median = times[times.len() / 2];
    println!("  {what}: {:.1} µs", median.as_secs_f64() * 1e6);
}
