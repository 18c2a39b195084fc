//! Seed corpora of the fuzz targets (`fuzz/corpus/<target>/`), made from the strategies of the
//! codec property tests and the fixtures' signed messages, so the fuzzer starts from every
//! message shape and from inputs that pass signature and chain checks.
//!
//! `CAIRN_FUZZ_SEEDS=$PWD/fuzz/corpus cargo test -p cairn-protocol --test it fuzz_seeds`
//! (what `fuzz/seed-corpus` runs) rewrites the `seed-*` files; inputs kept for a crash keep
//! their own names. Without the variable the test checks that every seed decodes.

use std::path::Path;

use cairn_protocol::codec::{self, MAX_FRAME_BYTES};
use cairn_protocol::proof::SignedCheckpoint;
use cairn_protocol::wire::{MarketRequest, MarketResponse, SyncResponse};
use cairn_protocol::*;
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;

use crate::anchoring::{TEST_BITS, chain, genesis, proof_with};
use crate::codec_props as strategies;
use crate::fixtures::{self, NET, keypair, node};

/// Values drawn from each strategy.
const PER_STRATEGY: usize = 4;

/// `PER_STRATEGY` values of `strategy`, the same on every run.
fn samples<S: Strategy>(strategy: S) -> Vec<S::Value> {
    let mut runner = TestRunner::deterministic();
    (0..PER_STRATEGY)
        .map(|_| strategy.new_tree(&mut runner).unwrap().current())
        .collect()
}

fn encoded<T: bincode::Encode>(values: &[T]) -> Vec<Vec<u8>> {
    values.iter().map(|v| codec::encode(v).unwrap()).collect()
}

fn sealed<T: Message>(message: &T, seed: u8) -> Envelope {
    Envelope::seal(message, &keypair(seed), &NET).unwrap()
}

/// A verdict of node 1's job that passes every evidence check: providers 2 and 3 awarded, both
/// reporting the same output.
fn valid_verdict() -> Verdict {
    let spec = fixtures::spec(1);
    let job = spec.id().unwrap();
    let out = fixtures::output(b"out");
    let terms = |p| AwardTerms {
        provider: node(p),
        price: 10,
        report_by: Timestamp(50_000),
    };
    let reports = [2, 3].map(|p| fixtures::report(p, job, out).envelope().clone());
    Verdict {
        job,
        requester: node(1),
        spec,
        decision: VerdictDecision::Accepted(out),
        awards: vec![terms(2), terms(3)],
        agreeing: reports.to_vec(),
        dissenting: vec![],
        timed_out: vec![],
        issued_at: Timestamp(60_000),
    }
}

fn signed_bid() -> Envelope {
    let bid = Bid {
        bidder: node(2),
        ..samples(strategies::bid()).remove(0)
    };
    sealed(&bid, 2)
}

fn signed_chain() -> Vec<SignedCheckpoint> {
    chain(&genesis(4), 2)
}

/// Every target's seeds.
fn seeds() -> Vec<(&'static str, Vec<Vec<u8>>)> {
    let verdict = valid_verdict();
    let call = CallForBids {
        spec: fixtures::spec(1),
        issued_at: Timestamp(500),
    };
    let advert = fixtures::advert(4, 1, 0, 600_000);
    let mut envelopes = encoded(&samples(strategies::envelope()));
    envelopes.extend(encoded(&[
        signed_bid(),
        sealed(&advert, 4),
        sealed(&call, 1),
        sealed(&verdict, 1),
        verdict.agreeing[0].clone(),
    ]));
    let mut requests = encoded(&samples(strategies::market_request()));
    requests.extend(encoded(&[
        MarketRequest::CallForBids(sealed(&call, 1)),
        MarketRequest::Report(verdict.agreeing[0].clone()),
    ]));
    let mut responses = encoded(&samples(strategies::market_response()));
    responses.extend(encoded(&[MarketResponse::Bid(signed_bid())]));
    let mut syncs = encoded(&samples(strategies::sync_response()));
    syncs.extend(encoded(&[
        SyncResponse::Checkpoints(signed_chain()),
        SyncResponse::Adverts(vec![sealed(&advert, 4).to_bytes().unwrap()]),
    ]));
    let with = |mut strategy_seeds: Vec<Vec<u8>>, extra: Vec<u8>| {
        strategy_seeds.push(extra);
        strategy_seeds
    };
    vec![
        ("envelope", envelopes),
        (
            "advert",
            with(
                encoded(&samples(strategies::advert())),
                codec::encode(&advert).unwrap(),
            ),
        ),
        (
            "call_for_bids",
            with(
                encoded(&samples(strategies::spec().prop_map(|spec| CallForBids {
                    spec,
                    issued_at: Timestamp(9),
                }))),
                codec::encode(&call).unwrap(),
            ),
        ),
        ("bid", encoded(&samples(strategies::bid()))),
        ("award", encoded(&samples(strategies::award()))),
        ("result_report", encoded(&samples(strategies::report()))),
        (
            "faucet_grant",
            encoded(&samples(strategies::faucet_grant())),
        ),
        (
            "verdict",
            with(
                encoded(&samples(strategies::verdict())),
                codec::encode(&verdict).unwrap(),
            ),
        ),
        (
            "checkpoint",
            with(
                encoded(&samples(strategies::checkpoint())),
                codec::encode(&signed_chain()[1].checkpoint).unwrap(),
            ),
        ),
        ("checkpoint_vote", encoded(&samples(strategies::vote()))),
        ("anchor_receipt", encoded(&samples(strategies::receipt()))),
        ("job_receipt", encoded(&samples(strategies::job_receipt()))),
        ("market_request", requests),
        ("market_response", responses),
        (
            "sync_request",
            encoded(&samples(strategies::sync_request())),
        ),
        ("sync_response", syncs),
        (
            "proof",
            vec![proof_with(&genesis(4), TEST_BITS).to_bytes().unwrap()],
        ),
    ]
}

/// Replaces the `seed-*` files of `dir` with `seeds`.
fn write(dir: &Path, seeds: &[Vec<u8>]) {
    std::fs::create_dir_all(dir).unwrap();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("seed-")
        {
            std::fs::remove_file(path).unwrap();
        }
    }
    for (i, seed) in seeds.iter().enumerate() {
        std::fs::write(dir.join(format!("seed-{i:02}")), seed).unwrap();
    }
}

#[test]
fn fuzz_seeds() {
    let all = seeds();
    for (target, seeds) in &all {
        assert!(!seeds.is_empty(), "{target} has no seeds");
        for seed in seeds {
            assert!(seed.len() <= MAX_FRAME_BYTES + proof::PROOF_MAGIC.len());
        }
    }
    // The seeds that should pass every check do.
    assert!(valid_verdict().evidence(&NET).is_ok());
    let sealed_bid = signed_bid().to_bytes().unwrap();
    assert!(Envelope::open::<Bid>(&sealed_bid, &NET).is_ok());
    if let Some(root) = std::env::var_os("CAIRN_FUZZ_SEEDS") {
        for (target, seeds) in &all {
            write(&Path::new(&root).join(target), seeds);
        }
    }
}
