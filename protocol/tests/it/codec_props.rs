//! Every message type, three ways: it round-trips, its encoded length is exactly what the
//! decoder consumes, and mutated or truncated bytes never panic (and, for signed envelopes,
//! never verify).

use cairn_protocol::codec::{self, CodecError, MAX_FRAME_BYTES};
use cairn_protocol::*;
use proptest::collection::vec;
use proptest::prelude::*;

use crate::fixtures::{self, NET};

fn id32() -> impl Strategy<Value = [u8; 32]> {
    any::<[u8; 32]>()
}
fn node_id() -> impl Strategy<Value = NodeId> {
    id32().prop_map(NodeId)
}
fn blob() -> impl Strategy<Value = BlobHash> {
    id32().prop_map(BlobHash)
}
fn job_id() -> impl Strategy<Value = JobId> {
    id32().prop_map(JobId)
}
fn ts() -> impl Strategy<Value = Timestamp> {
    any::<u64>().prop_map(Timestamp)
}
fn text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 ._:/-]{0,24}"
}
fn cc() -> impl Strategy<Value = ComputeCapability> {
    (any::<u8>(), any::<u8>()).prop_map(|(major, minor)| ComputeCapability { major, minor })
}

fn gpu() -> impl Strategy<Value = GpuInfo> {
    (text(), any::<u64>(), cc(), any::<u32>(), text(), text()).prop_map(
        |(model, vram_bytes, compute_capability, count, driver, cuda)| GpuInfo {
            model,
            vram_bytes,
            compute_capability,
            count,
            driver,
            cuda,
        },
    )
}

pub(crate) fn advert() -> impl Strategy<Value = CapabilityAdvert> {
    let price = (any::<u64>(), any::<u64>(), any::<u64>()).prop_map(|(a, b, c)| PriceSchedule {
        per_mega_fuel: a,
        per_gpu_second: b,
        minimum: c,
    });
    (
        (
            node_id(),
            any::<u64>(),
            ts(),
            ts(),
            vec(gpu(), 0..4),
            any::<bool>(),
        ),
        (any::<u32>(), any::<u64>(), text(), price, any::<u32>()),
    )
        .prop_map(
            |(
                (peer, sequence, issued_at, expires_at, gpus, simulated_gpus),
                (cpu_cores, memory_bytes, runtime, price, capacity),
            )| CapabilityAdvert {
                peer,
                sequence,
                issued_at,
                expires_at,
                gpus,
                simulated_gpus,
                cpu_cores,
                memory_bytes,
                runtime,
                price,
                capacity,
                addresses: vec!["/ip4/10.0.0.1/tcp/4001".into()],
            },
        )
}

pub(crate) fn spec() -> impl Strategy<Value = JobSpec> {
    let limits = (any::<u64>(), any::<u64>(), any::<u64>(), any::<u64>()).prop_map(
        |(fuel, memory_bytes, wall_time_ms, max_output_bytes)| Limits {
            fuel,
            memory_bytes,
            wall_time_ms,
            max_output_bytes,
        },
    );
    let gpu_req = (any::<u64>(), proptest::option::of(cc())).prop_map(
        |(min_vram_bytes, min_compute_capability)| GpuRequirement {
            min_vram_bytes,
            min_compute_capability,
        },
    );
    let requirements = (
        proptest::option::of(gpu_req),
        any::<u64>(),
        proptest::option::of(text()),
    )
        .prop_map(|(gpu, min_memory_bytes, runtime)| Requirements {
            gpu,
            min_memory_bytes,
            runtime,
        });
    (
        (
            node_id(),
            any::<u64>(),
            blob(),
            blob(),
            vec(text(), 0..4),
            limits,
        ),
        (
            requirements,
            any::<u8>(),
            any::<u8>(),
            any::<u8>(),
            any::<u64>(),
            ts(),
            ts(),
        ),
    )
        .prop_map(
            |(
                (requester, nonce, module, input, args, limits),
                (requirements, replicas, quorum, max_replicas, max_price, bid_deadline, deadline),
            )| JobSpec {
                requester,
                nonce,
                module,
                input,
                args,
                limits,
                requirements,
                replicas,
                quorum,
                max_replicas,
                max_price,
                bid_deadline,
                deadline,
            },
        )
}

fn device() -> impl Strategy<Value = Device> {
    prop_oneof![
        any::<u32>().prop_map(|cores| Device::Cpu { cores }),
        (any::<u32>(), text()).prop_map(|(index, model)| Device::Gpu { index, model }),
    ]
}

pub(crate) fn bid() -> impl Strategy<Value = Bid> {
    (job_id(), node_id(), any::<u64>(), device(), text(), ts()).prop_map(
        |(job, bidder, price, device, runtime, expires_at)| Bid {
            job,
            bidder,
            price,
            device,
            runtime,
            expires_at,
        },
    )
}

pub(crate) fn award() -> impl Strategy<Value = Award> {
    (
        job_id(),
        node_id(),
        node_id(),
        any::<u64>(),
        ts(),
        proptest::option::of(blob()),
    )
        .prop_map(
            |(job, requester, provider, price, report_by, sealed_input)| Award {
                job,
                requester,
                provider,
                price,
                report_by,
                sealed_input,
            },
        )
}

fn failure() -> impl Strategy<Value = FailureKind> {
    prop_oneof![
        Just(FailureKind::InvalidModule),
        Just(FailureKind::MissingImport),
        Just(FailureKind::NoEntryPoint),
        Just(FailureKind::OutOfFuel),
        Just(FailureKind::OutOfMemory),
        Just(FailureKind::Trap),
        Just(FailureKind::OutputTooLarge),
        any::<i32>().prop_map(FailureKind::Exit),
        Just(FailureKind::Timeout),
        Just(FailureKind::StackOverflow),
    ]
}

fn outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        (blob(), any::<u64>()).prop_map(|(digest, size)| Outcome::Output { digest, size }),
        failure().prop_map(Outcome::Failed),
    ]
}

pub(crate) fn report() -> impl Strategy<Value = ResultReport> {
    (
        job_id(),
        node_id(),
        outcome(),
        any::<u64>(),
        any::<u64>(),
        text(),
        proptest::option::of(blob()),
    )
        .prop_map(
            |(job, provider, outcome, fuel_used, price, runtime, sealed_output)| ResultReport {
                job,
                provider,
                outcome,
                fuel_used,
                price,
                runtime,
                sealed_output,
            },
        )
}

fn kind() -> impl Strategy<Value = MessageKind> {
    prop_oneof![
        Just(MessageKind::Advert),
        Just(MessageKind::CallForBids),
        Just(MessageKind::Bid),
        Just(MessageKind::Award),
        Just(MessageKind::ResultReport),
        Just(MessageKind::Verdict),
        Just(MessageKind::Checkpoint),
        Just(MessageKind::CheckpointVote),
        Just(MessageKind::AnchorReceipt),
        Just(MessageKind::JobReceipt),
        Just(MessageKind::FaucetGrant),
    ]
}

pub(crate) fn envelope() -> impl Strategy<Value = Envelope> {
    (
        any::<u16>(),
        kind(),
        node_id(),
        vec(any::<u8>(), 0..64),
        any::<[u8; 32]>(),
        any::<[u8; 32]>(),
    )
        .prop_map(|(version, kind, signer, payload, sig, network)| {
            let mut signature = [0u8; 64];
            signature[..32].copy_from_slice(&sig);
            Envelope {
                version,
                network: NetworkId(network),
                kind,
                signer,
                payload,
                signature: Signature(signature),
            }
        })
}

fn award_terms() -> impl Strategy<Value = AwardTerms> {
    (node_id(), any::<u64>(), ts()).prop_map(|(provider, price, report_by)| AwardTerms {
        provider,
        price,
        report_by,
    })
}

pub(crate) fn verdict() -> impl Strategy<Value = Verdict> {
    let decision = prop_oneof![
        outcome().prop_map(VerdictDecision::Accepted),
        Just(VerdictDecision::NoQuorum)
    ];
    (
        (job_id(), node_id(), spec(), decision),
        (
            vec(award_terms(), 0..3),
            vec(envelope(), 0..3),
            vec(envelope(), 0..3),
            vec(node_id(), 0..3),
            ts(),
        ),
    )
        .prop_map(
            |(
                (job, requester, spec, decision),
                (awards, agreeing, dissenting, timed_out, issued_at),
            )| {
                Verdict {
                    job,
                    requester,
                    spec,
                    decision,
                    awards,
                    agreeing,
                    dissenting,
                    timed_out,
                    issued_at,
                }
            },
        )
}

pub(crate) fn checkpoint() -> impl Strategy<Value = Checkpoint> {
    (
        (text(), any::<u64>(), id32(), id32(), any::<u64>()),
        (id32(), vec(node_id(), 0..5), node_id(), ts(), any::<u16>()),
    )
        .prop_map(
            |(
                (network, epoch, previous, reputation_root, leaf_count),
                (verdict_root, next_committee, proposer, proposed_at, version),
            )| Checkpoint {
                version,
                network,
                epoch,
                previous: CheckpointHash(previous),
                reputation_root,
                leaf_count,
                verdict_root,
                next_committee,
                proposer,
                proposed_at,
            },
        )
}

pub(crate) fn vote() -> impl Strategy<Value = CheckpointVote> {
    (id32(), any::<u64>(), node_id()).prop_map(|(c, epoch, voter)| CheckpointVote {
        checkpoint: CheckpointHash(c),
        epoch,
        voter,
    })
}

pub(crate) fn receipt() -> impl Strategy<Value = AnchorReceipt> {
    (
        id32(),
        any::<u64>(),
        text(),
        id32(),
        id32(),
        any::<u64>(),
        node_id(),
    )
        .prop_map(
            |(c, epoch, chain, txid, block_hash, height, anchored_by)| AnchorReceipt {
                checkpoint: CheckpointHash(c),
                epoch,
                chain,
                txid,
                block_hash,
                height,
                anchored_by,
            },
        )
}

/// The three codec properties for one value.
fn check_codec<T>(value: &T, mutations: &[(usize, u8)]) -> Result<(), TestCaseError>
where
    T: bincode::Encode + bincode::Decode<()> + PartialEq + std::fmt::Debug,
{
    let bytes = codec::encode(value).unwrap();
    // Round trip.
    prop_assert_eq!(&codec::decode::<T>(&bytes, MAX_FRAME_BYTES).unwrap(), value);
    // Length: the frame is consumed exactly, and a limit one byte short refuses it unread.
    let too_small = codec::decode::<T>(&bytes, bytes.len() - 1);
    prop_assert!(
        matches!(too_small, Err(CodecError::FrameTooLarge { .. })),
        "{too_small:?}"
    );
    let mut longer = bytes.clone();
    longer.push(0);
    let trailing = codec::decode::<T>(&longer, MAX_FRAME_BYTES);
    prop_assert!(
        matches!(trailing, Err(CodecError::TrailingBytes { extra: 1 })),
        "{trailing:?}"
    );
    // Truncation: no strict prefix decodes.
    for cut in 0..bytes.len() {
        prop_assert!(
            codec::decode::<T>(&bytes[..cut], MAX_FRAME_BYTES).is_err(),
            "prefix {cut}"
        );
    }
    // Mutation: never panics, and whatever decodes is canonical: it re-encodes to exactly the
    // bytes it came from, so no second byte string carries the same message.
    let mut mutated = bytes.clone();
    for &(at, xor) in mutations {
        let i = at % mutated.len();
        mutated[i] ^= xor.max(1);
        if let Ok(decoded) = codec::decode::<T>(&mutated, MAX_FRAME_BYTES) {
            prop_assert_eq!(codec::encode(&decoded).unwrap(), mutated.clone());
        }
    }
    Ok(())
}

fn mutations() -> impl Strategy<Value = Vec<(usize, u8)>> {
    vec((any::<usize>(), any::<u8>()), 1..8)
}

macro_rules! codec_property {
    ($name:ident, $strategy:expr) => {
        proptest! {
            #[test]
            fn $name(value in $strategy, m in mutations()) {
                check_codec(&value, &m)?;
            }
        }
    };
}

codec_property!(advert_codec, advert());
codec_property!(job_spec_codec, spec());
codec_property!(
    call_for_bids_codec,
    (spec(), ts()).prop_map(|(spec, issued_at)| CallForBids { spec, issued_at })
);
codec_property!(bid_codec, bid());
codec_property!(award_codec, award());
codec_property!(report_codec, report());
codec_property!(verdict_codec, verdict());
codec_property!(checkpoint_codec, checkpoint());
codec_property!(vote_codec, vote());
codec_property!(receipt_codec, receipt());
codec_property!(envelope_codec, envelope());

pub(crate) fn job_receipt() -> impl Strategy<Value = JobReceipt> {
    (
        (job_id(), node_id(), blob(), blob(), blob()),
        (any::<u64>(), any::<u64>(), vec(node_id(), 0..5), ts()),
    )
        .prop_map(
            |(
                (job, requester, module, input, output),
                (output_size, fuel_used, providers, issued_at),
            )| JobReceipt {
                job,
                requester,
                module,
                input,
                output,
                output_size,
                fuel_used,
                providers,
                issued_at,
            },
        )
}

codec_property!(job_receipt_codec, job_receipt());

pub(crate) fn faucet_grant() -> impl Strategy<Value = credits::FaucetGrant> {
    (node_id(), node_id(), any::<u64>(), ts(), any::<u64>()).prop_map(
        |(faucet, recipient, amount, issued_at, nonce)| credits::FaucetGrant {
            faucet,
            recipient,
            amount,
            issued_at,
            nonce,
        },
    )
}

codec_property!(faucet_grant_codec, faucet_grant());

pub(crate) fn market_request() -> impl Strategy<Value = wire::MarketRequest> {
    prop_oneof![
        envelope().prop_map(wire::MarketRequest::CallForBids),
        envelope().prop_map(wire::MarketRequest::Award),
        envelope().prop_map(wire::MarketRequest::Report),
        job_id().prop_map(wire::MarketRequest::FetchReport),
    ]
}

pub(crate) fn market_response() -> impl Strategy<Value = wire::MarketResponse> {
    prop_oneof![
        envelope().prop_map(wire::MarketResponse::Bid),
        text().prop_map(wire::MarketResponse::Declined),
        Just(wire::MarketResponse::Accepted),
        text().prop_map(wire::MarketResponse::Refused),
        envelope().prop_map(wire::MarketResponse::Report),
    ]
}

pub(crate) fn sync_request() -> impl Strategy<Value = wire::SyncRequest> {
    prop_oneof![
        Just(wire::SyncRequest::Adverts),
        any::<u64>().prop_map(|from| wire::SyncRequest::Checkpoints { from }),
        any::<u64>().prop_map(|epoch| wire::SyncRequest::Leaves { epoch }),
    ]
}

pub(crate) fn sync_response() -> impl Strategy<Value = wire::SyncResponse> {
    let signed = (checkpoint(), vec(envelope(), 0..3))
        .prop_map(|(checkpoint, votes)| proof::SignedCheckpoint { checkpoint, votes });
    let leaf = (node_id(), any::<i64>(), any::<u64>(), any::<u64>()).prop_map(
        |(peer, score, evidence_count, balance)| merkle::ReputationLeaf {
            peer,
            score,
            evidence_count,
            balance,
        },
    );
    prop_oneof![
        vec(vec(any::<u8>(), 0..64), 0..4).prop_map(wire::SyncResponse::Adverts),
        vec(signed, 0..3).prop_map(wire::SyncResponse::Checkpoints),
        proptest::option::of(vec(leaf, 0..5)).prop_map(wire::SyncResponse::Leaves),
    ]
}

codec_property!(market_request_codec, market_request());
codec_property!(market_response_codec, market_response());
codec_property!(sync_request_codec, sync_request());
codec_property!(sync_response_codec, sync_response());

#[test]
fn a_sync_answer_with_too_many_items_is_refused_by_name() {
    let leaves = vec![
        merkle::ReputationLeaf {
            peer: NodeId([1; 32]),
            score: 0,
            evidence_count: 0,
            balance: 0,
        };
        wire::MAX_SYNC_LEAVES + 1
    ];
    let err = wire::SyncResponse::Leaves(Some(leaves))
        .check_bounds()
        .unwrap_err();
    assert_eq!(err.what, "leaves");
    assert!(
        wire::SyncResponse::Adverts(vec![Vec::new(); wire::MAX_SYNC_ADVERTS])
            .check_bounds()
            .is_ok()
    );
}

proptest! {
    /// Any change to the bytes of a signed envelope makes it fail to open: nothing a peer
    /// alters in transit is ever accepted.
    #[test]
    fn mutated_signed_envelopes_never_verify(value in bid(), seed in 1u8..50, m in mutations()) {
        let keypair = fixtures::keypair(seed);
        let bid = Bid { bidder: fixtures::node(seed), ..value };
        let bytes = Envelope::seal(&bid, &keypair, &NET).unwrap().to_bytes().unwrap();
        let opened = Envelope::open::<Bid>(&bytes, &NET).unwrap();
        prop_assert_eq!(opened.message(), &bid);
        let mut mutated = bytes.clone();
        for &(at, xor) in &m {
            let i = at % mutated.len();
            mutated[i] ^= xor.max(1);
        }
        // Two flips of the same byte can cancel out; only a real change must fail.
        if mutated != bytes {
            prop_assert!(Envelope::open::<Bid>(&mutated, &NET).is_err());
        }
        for cut in 0..bytes.len() {
            prop_assert!(Envelope::open::<Bid>(&bytes[..cut], &NET).is_err());
        }
    }

    /// Arbitrary bytes never panic any decoder.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..512)) {
        let _ = Envelope::from_bytes(&bytes);
        let _ = Envelope::open::<CapabilityAdvert>(&bytes, &NET);
        let _ = Envelope::open::<Verdict>(&bytes, &NET);
        let _ = codec::decode::<JobSpec>(&bytes, MAX_FRAME_BYTES);
        let _ = codec::decode::<Checkpoint>(&bytes, MAX_FRAME_BYTES);
    }
}

/// Byte strings that once needed care, decoded on every run: each must fail cleanly.
#[test]
fn regression_corpus_fails_cleanly() {
    let corpus = include_str!("corpus/decode-regressions.txt");
    let mut cases = 0;
    for line in corpus
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
    {
        let bytes = hex::decode(line.trim()).unwrap();
        assert!(
            Envelope::from_bytes(&bytes).is_err(),
            "envelope decoded from {line}"
        );
        assert!(
            codec::decode::<JobSpec>(&bytes, MAX_FRAME_BYTES).is_err(),
            "spec from {line}"
        );
        assert!(
            codec::decode::<Verdict>(&bytes, MAX_FRAME_BYTES).is_err(),
            "verdict from {line}"
        );
        cases += 1;
    }
    assert!(cases >= 5, "corpus has only {cases} cases");
}
