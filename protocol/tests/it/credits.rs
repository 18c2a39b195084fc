//! Credits: payment from verdict evidence, escrow, the faucet, energy rewards, conservation
//! and order independence, and balances in checkpoint leaves.

use cairn_protocol::credits::{
    self, CreditBook, CreditError, CreditEvent, CreditLedger, CreditParams, EnergyRewards, Escrow,
    EscrowError, Faucet, FaucetGrant, GrantRefusal, Granted, OffPeak, Payee, Settled, Settlement,
    SettlementError,
};
use cairn_protocol::ledger::Ledger;
use cairn_protocol::*;
use proptest::prelude::*;

use crate::fixtures::{self, NET, keypair, node, output};

const PRICE: u64 = 1_000;
/// The fixtures' spec's fuel limit.
const LIMIT: u64 = 1_000_000;

fn signed_report(provider: u8, job: JobId, outcome: Outcome, fuel_used: u64) -> Envelope {
    let message = ResultReport {
        job,
        provider: node(provider),
        outcome,
        fuel_used,
        price: PRICE,
        runtime: "wasmtime-48/test".into(),
        sealed_output: None,
    };
    Envelope::seal(&message, &keypair(provider), &NET).unwrap()
}

/// A verdict on node 1's job with a spec of nonce `nonce`, every award at [`PRICE`]:
/// `agreeing` providers with the fuel they report, `dissenting` ones reporting another output,
/// and `timed_out` ones.
fn verdict(nonce: u64, agreeing: &[(u8, u64)], dissenting: &[u8], timed_out: &[u8]) -> Verdict {
    let spec = JobSpec {
        nonce,
        ..fixtures::spec(1)
    };
    let job = spec.id().unwrap();
    let (out, lie) = (output(b"out"), output(b"lie"));
    let awarded = (agreeing.iter().map(|(p, _)| *p))
        .chain(dissenting.iter().copied())
        .chain(timed_out.iter().copied());
    Verdict {
        job,
        requester: node(1),
        spec,
        decision: VerdictDecision::Accepted(out),
        awards: awarded
            .map(|p| AwardTerms {
                provider: node(p),
                price: PRICE,
                report_by: Timestamp(50_000),
            })
            .collect(),
        agreeing: (agreeing.iter())
            .map(|(p, fuel)| signed_report(*p, job, out, *fuel))
            .collect(),
        dissenting: (dissenting.iter())
            .map(|p| signed_report(*p, job, lie, 1))
            .collect(),
        timed_out: timed_out.iter().map(|p| node(*p)).collect(),
        issued_at: Timestamp(60_000),
    }
}

fn settlement(v: &Verdict) -> Settlement {
    Settlement::from_verdict(v, &NET).unwrap().1
}

fn book(genesis: &[(u8, u64)]) -> CreditBook {
    CreditBook::new(CreditParams {
        genesis: genesis.iter().map(|(p, b)| (node(*p), *b)).collect(),
        ..CreditParams::default()
    })
    .unwrap()
}

fn paid(settled: Settled) -> credits::Payment {
    match settled {
        Settled::Paid(payment) => payment,
        other => panic!("expected a payment, got {other:?}"),
    }
}

#[test]
fn agreeing_providers_are_paid_for_the_fuel_used_and_dissenters_and_no_shows_nothing() {
    let mut book = book(&[(1, 10_000)]);
    // Providers 2 and 3 used 40 % of the fuel limit; 6 agrees but claims 90 %.
    let v = verdict(1, &[(2, 400_000), (3, 400_000), (6, 900_000)], &[4], &[5]);
    let payment = paid(book.settle(&settlement(&v)));
    for p in [2, 3, 6] {
        assert_eq!(
            book.balance(&node(p)),
            400,
            "provider {p}: 40 % of its price"
        );
    }
    assert_eq!(book.balance(&node(4)), 0, "dissent is paid nothing");
    assert_eq!(book.balance(&node(5)), 0, "a no-show is paid nothing");
    assert_eq!(book.balance(&node(1)), 10_000 - 1_200);
    assert_eq!(
        (payment.owed(), payment.paid(), payment.shortfall()),
        (1_200, 1_200, 0)
    );
    book.check_conservation().unwrap();
}

#[test]
fn a_verdict_that_understates_an_award_price_is_refused_and_the_reported_price_is_paid() {
    // The providers' signed reports say their awards were at PRICE; the requester's verdict
    // claims it awarded provider 3 at a tenth of that.
    let mut v = verdict(2, &[(2, 400_000), (3, 400_000)], &[], &[]);
    v.awards[1].price = PRICE / 10;
    let understated = v.awards[1].provider;
    match Settlement::from_verdict(&v, &NET) {
        Err(SettlementError::Verdict(VerdictError::PriceMismatch {
            provider,
            award,
            report,
        })) => {
            assert_eq!((provider, award, report), (understated, PRICE / 10, PRICE));
        }
        other => panic!("expected a price mismatch, got {other:?}"),
    }
    // The honest verdict pays each provider what its own report says it was awarded.
    let honest = verdict(2, &[(2, 400_000), (3, 400_000)], &[], &[]);
    let s = settlement(&honest);
    assert!(s.payees.iter().all(|p| p.price == PRICE));
    let mut book = book(&[(1, 10_000)]);
    paid(book.settle(&s));
    assert_eq!(book.balance(&node(3)), PRICE * 4 / 10);
}

#[test]
fn a_requester_that_cannot_pay_pays_pro_rata_and_creates_nothing() {
    let mut book = book(&[(1, 500), (9, 7)]);
    let v = verdict(1, &[(2, LIMIT), (3, LIMIT)], &[], &[]);
    let payment = paid(book.settle(&settlement(&v)));
    assert_eq!(book.balance(&node(2)), 250);
    assert_eq!(book.balance(&node(3)), 250);
    assert_eq!(book.balance(&node(1)), 0);
    assert_eq!(
        (payment.owed(), payment.paid(), payment.shortfall()),
        (2_000, 500, 1_500)
    );
    // Broke now: its next verdict moves nothing.
    let next = paid(book.settle(&settlement(&verdict(
        2,
        &[(2, LIMIT), (3, LIMIT)],
        &[],
        &[],
    ))));
    assert_eq!((next.paid(), next.shortfall()), (0, 2_000));
    assert_eq!(book.balance(&node(2)), 250);
    book.check_conservation().unwrap();
    assert_eq!(book.supply(), 507);
}

#[test]
fn a_job_is_paid_once_whatever_verdicts_its_requester_signs() {
    let mut book = book(&[(1, 10_000)]);
    let v = verdict(1, &[(2, LIMIT), (3, LIMIT)], &[], &[]);
    paid(book.settle(&settlement(&v)));
    assert_eq!(book.settle(&settlement(&v)), Settled::Duplicate);
    let other = Verdict {
        issued_at: Timestamp(61_000),
        ..verdict(1, &[(2, LIMIT), (4, LIMIT)], &[], &[])
    };
    assert_eq!(book.settle(&settlement(&other)), Settled::Duplicate);
    assert_eq!(book.balance(&node(1)), 8_000);
    assert_eq!(book.balance(&node(4)), 0);
}

#[test]
fn a_settlement_comes_only_from_evidence_that_holds_up() {
    let v = verdict(1, &[(2, LIMIT), (3, LIMIT)], &[], &[]);
    let (evidence, s) = Settlement::from_verdict(&v, &NET).unwrap();
    assert_eq!(
        (s.fuel_used, s.fuel_limit, s.payees.len()),
        (LIMIT, LIMIT, 2)
    );
    // Evidence of another verdict is refused.
    let other = verdict(2, &[(2, LIMIT), (3, LIMIT)], &[], &[]);
    assert!(Settlement::from_checked(&other, &evidence).is_err());
    // An award above the spec's maximum price pays nothing: the verdict does not hold up.
    let mut greedy = v.clone();
    greedy.awards[0].price = fixtures::spec(1).max_price + 1;
    assert!(Settlement::from_verdict(&greedy, &NET).is_err());
    // Nor does one that pays a provider that was never awarded.
    let mut unawarded = v;
    unawarded.awards.remove(0);
    assert!(Settlement::from_verdict(&unawarded, &NET).is_err());
}

#[test]
fn a_requester_cannot_overspend_with_many_concurrent_jobs() {
    let balance = 10_000;
    let mut escrow = Escrow::new();
    let mut accepted = Vec::new();
    // 40 jobs of 3 replicas at 1000 each arrive at once: only 10 awards fit.
    for job in 0..40u64 {
        for provider in 2..5u8 {
            let id = JobId::of(&job.to_le_bytes());
            match escrow.reserve(id, node(provider), PRICE, balance) {
                Ok(()) => accepted.push((id, provider)),
                Err(EscrowError::InsufficientFunds { available, .. }) => {
                    assert!(available < PRICE);
                }
                Err(other) => panic!("{other}"),
            }
        }
    }
    assert_eq!(accepted.len(), 10);
    assert_eq!(escrow.reserved(), balance);
    assert_eq!(escrow.available(balance), 0);
    let err = escrow
        .reserve(JobId::of(b"one more"), node(2), 1, balance)
        .unwrap_err();
    assert!(err.to_string().contains("get credits"), "{err}");
    // Every accepted award paid in full never leaves the requester short.
    let mut book = book(&[(1, balance)]);
    for nonce in 0..3 {
        let v = verdict(nonce, &[(2, LIMIT), (3, LIMIT), (4, LIMIT)], &[], &[]);
        assert_eq!(paid(book.settle(&settlement(&v))).shortfall(), 0);
    }
    assert_eq!(book.balance(&node(1)), 1_000);
}

#[test]
fn escrow_returns_when_a_job_fails_and_when_a_provider_misses_its_deadline() {
    let (a, b) = (JobId::of(b"a"), JobId::of(b"b"));
    let mut escrow = Escrow::new();
    escrow.reserve(a, node(2), 300, 1_000).unwrap();
    escrow.reserve(a, node(3), 300, 1_000).unwrap();
    escrow.reserve(b, node(2), 400, 1_000).unwrap();
    assert_eq!(escrow.available(1_000), 0);
    assert!(matches!(
        escrow.reserve(b, node(2), 0, 1_000),
        Err(EscrowError::AlreadyReserved { .. })
    ));
    // Provider 3 missed its deadline: no-shows are not paid, its share returns.
    assert_eq!(escrow.release_award(&a, &node(3)), 300);
    assert_eq!(escrow.available(1_000), 300);
    // Job a failed: everything it held returns; job b's reservation stays.
    assert_eq!(escrow.release(&a), 300);
    assert_eq!((escrow.held(&a), escrow.held(&b)), (0, 400));
    assert_eq!(escrow.available(1_000), 600);
    assert_eq!(escrow.release(&a), 0, "releasing twice returns nothing");
}

fn faucet_params() -> CreditParams {
    CreditParams {
        genesis: vec![(node(1), 50)],
        faucet: Some(Faucet {
            id: node(30),
            per_identity: 100,
            total: 250,
        }),
        ..CreditParams::default()
    }
}

fn grant(faucet: u8, recipient: u8, amount: u64, nonce: u64) -> (GrantId, FaucetGrant) {
    let grant = FaucetGrant {
        faucet: node(faucet),
        recipient: node(recipient),
        amount,
        issued_at: Timestamp(1_000),
        nonce,
    };
    let envelope = Envelope::seal(&grant, &keypair(faucet), &NET).unwrap();
    (GrantId::of(&envelope.to_bytes().unwrap()), grant)
}

#[test]
fn faucet_grants_stop_at_the_cap_and_when_the_pool_is_empty() {
    let mut book = CreditBook::new(faucet_params()).unwrap();
    let (id, g) = grant(30, 2, 70, 0);
    assert_eq!(book.grant(id, &g), Granted::Credited { amount: 70 });
    assert_eq!(book.grant(id, &g), Granted::Duplicate);
    // Only up to the per-identity cap of 100.
    let (id, g) = grant(30, 2, 70, 1);
    assert_eq!(book.grant(id, &g), Granted::Credited { amount: 30 });
    let (id, g) = grant(30, 2, 1, 2);
    assert_eq!(book.grant(id, &g), Granted::Refused(GrantRefusal::AtCap));
    // Node 1 holds 50 from genesis: topped up to 100.
    let (id, g) = grant(30, 1, 1_000, 3);
    assert_eq!(book.grant(id, &g), Granted::Credited { amount: 50 });
    // 100 left in the pool of 250.
    let (id, g) = grant(30, 3, 100, 4);
    assert_eq!(book.grant(id, &g), Granted::Credited { amount: 100 });
    let (id, g) = grant(30, 4, 100, 5);
    assert_eq!(
        book.grant(id, &g),
        Granted::Refused(GrantRefusal::FaucetEmpty)
    );
    // Only the network's faucet grants, and never to itself.
    let (id, g) = grant(31, 5, 10, 6);
    assert_eq!(
        book.grant(id, &g),
        Granted::Refused(GrantRefusal::NotTheFaucet)
    );
    let (id, g) = grant(30, 30, 10, 7);
    assert_eq!(
        book.grant(id, &g),
        Granted::Refused(GrantRefusal::BadRecipient)
    );
    book.check_conservation().unwrap();
    assert_eq!(book.supply(), 300);
    assert_eq!(book.balance(&credits::faucet_pool()), 0);
}

#[test]
fn grants_are_refused_outside_their_freshness_window() {
    let (_, g) = grant(30, 2, 10, 0);
    assert!(
        g.check_fresh(Timestamp(1_000 + credits::GRANT_MAX_AGE_MS))
            .is_ok()
    );
    assert!(
        g.check_fresh(Timestamp(2_000 + credits::GRANT_MAX_AGE_MS))
            .is_err()
    );
    assert!(g.check_fresh(Timestamp(0)).is_ok());
}

#[test]
fn energy_rewards_come_from_the_pool_and_stop_when_it_is_empty() {
    let params = CreditParams {
        genesis: vec![(node(1), 10_000)],
        reward_pool: 150,
        rewards: EnergyRewards {
            renewable_bps: 1_000,
            off_peak_bps: 500,
            off_peak: Some(OffPeak {
                start_hour: 0,
                end_hour: 6,
            }),
        },
        ..CreditParams::default()
    };
    let mut book = CreditBook::new(params).unwrap();
    // Issued at 00:01 UTC: off peak. The first payee (by id) declared renewable energy and
    // earns 10 % + 5 % = 150, which empties the pool before the second's 5 %.
    let mut s = settlement(&verdict(1, &[(2, LIMIT), (3, LIMIT)], &[], &[]));
    s.payees[0].renewable = true;
    let (green, other) = (s.payees[0].provider, s.payees[1].provider);
    let payment = paid(book.settle(&s));
    assert_eq!(book.balance(&green), 1_000 + 150);
    assert_eq!(book.balance(&other), 1_000, "the pool ran dry first");
    assert_eq!(payment.bonus(), 150);
    assert_eq!(book.balance(&credits::reward_pool()), 0);
    // Empty pool: no more bonus, and nothing minted.
    let next = verdict(2, &[(2, LIMIT), (3, LIMIT)], &[], &[]);
    assert_eq!(paid(book.settle(&settlement(&next))).bonus(), 0);
    book.check_conservation().unwrap();
}

#[test]
fn checkpoint_leaves_carry_balances_and_a_node_that_adopts_them_holds_the_same_book() {
    let params = CreditParams {
        genesis: vec![(node(1), 5_000)],
        reward_pool: 10,
        ..CreditParams::default()
    };
    let mut ledger = Ledger::default().with_credits(params.clone()).unwrap();
    let v = verdict(1, &[(2, LIMIT), (3, 500_000)], &[], &[]);
    let (evidence, s) = Settlement::from_verdict(&v, &NET).unwrap();
    let id = VerdictId::of(b"v1");
    ledger.note(id, v.issued_at, evidence);
    ledger.note_settlement(id, s);
    let leaves = ledger.leaves_at(Timestamp(100_000));
    ledger.check_leaves(&leaves).unwrap();
    let balance = |p: NodeId| leaves.iter().find(|l| l.peer == p).map(|l| l.balance);
    // The lower median of 1 000 000 and 500 000 fuel: both paid half their price.
    assert_eq!(balance(node(2)), Some(500));
    assert_eq!(balance(node(3)), Some(500));
    assert_eq!(
        balance(node(1)),
        Some(4_000),
        "the requester has a leaf for its balance"
    );
    assert_eq!(balance(credits::reward_pool()), Some(10));
    assert_eq!(leaves.iter().find(|l| l.peer == node(1)).unwrap().score, 0);

    let mut late = Ledger::default().with_credits(params.clone()).unwrap();
    late.adopt_leaves(&leaves, Timestamp(100_000)).unwrap();
    assert_eq!(late.leaves_at(Timestamp(200_000)), leaves);
    // Leaves that create credits are refused for credits.
    let mut forged = leaves.clone();
    forged[0].balance += 1;
    let mut other = Ledger::default().with_credits(params).unwrap();
    assert!(matches!(
        other.adopt_leaves(&forged, Timestamp(100_000)),
        Err(CreditError::NotConserved { .. })
    ));
    assert!(other.check_leaves(&forged).is_err());
}

#[test]
fn two_ledgers_fed_the_same_verdicts_in_different_orders_hold_the_same_balances() {
    // The requester can pay for two of these jobs, not three: who is paid in full depends on
    // the order of application, which the ledger fixes by verdict id.
    let params = CreditParams {
        genesis: vec![(node(1), 4_500)],
        ..CreditParams::default()
    };
    let events: Vec<CreditEvent> = (0..3u64)
        .map(|nonce| CreditEvent::Settlement {
            verdict: VerdictId::of(&nonce.to_le_bytes()),
            settlement: settlement(&verdict(
                nonce,
                &[(2, LIMIT), (3 + nonce as u8, LIMIT)],
                &[],
                &[],
            )),
        })
        .collect();
    let balances = |order: &mut dyn Iterator<Item = &CreditEvent>| {
        let mut ledger = CreditLedger::new(params.clone()).unwrap();
        for event in order {
            ledger.note(event.clone());
        }
        let book = ledger.book_at(Timestamp(100_000));
        book.check_conservation().unwrap();
        book.iter().map(|(p, b)| (*p, *b)).collect::<Vec<_>>()
    };
    let forward = balances(&mut events.iter());
    assert_eq!(forward, balances(&mut events.iter().rev()));
    assert_eq!(
        forward,
        balances(&mut [&events[1], &events[0], &events[2]].into_iter())
    );
}

#[test]
fn a_restarted_node_holds_the_same_balances_without_paying_twice() {
    let params = CreditParams {
        genesis: vec![(node(1), 5_000)],
        ..CreditParams::default()
    };
    let event = |nonce: u64, issued_at: u64| {
        let mut settlement = settlement(&verdict(nonce, &[(2, LIMIT), (3, LIMIT)], &[], &[]));
        settlement.issued_at = Timestamp(issued_at);
        CreditEvent::Settlement {
            verdict: VerdictId::of(&nonce.to_le_bytes()),
            settlement,
        }
    };
    let mut everyone = CreditLedger::new(params.clone()).unwrap();
    everyone.note(event(1, 100));
    everyone.cover(Timestamp(150));
    everyone.note(event(2, 200));
    // Restarted: the last checkpoint's leaves, then every stored event replayed.
    let mut leaves: Vec<_> = (everyone.book_at(Timestamp(150)).iter())
        .map(|(peer, balance)| merkle::ReputationLeaf {
            peer: *peer,
            score: 0,
            evidence_count: 0,
            balance: *balance,
        })
        .collect();
    leaves.sort_by_key(|l| l.peer);
    let mut restarted = CreditLedger::new(params).unwrap();
    restarted.adopt(&leaves, Timestamp(150)).unwrap();
    assert!(restarted.restore(event(1, 100)), "covered: skipped");
    assert!(restarted.restore(event(2, 200)));
    let balances = |book: CreditBook| book.iter().map(|(p, b)| (*p, *b)).collect::<Vec<_>>();
    assert_eq!(balances(restarted.latest()), balances(everyone.latest()));
    assert_eq!(restarted.latest().balance(&node(1)), 1_000);
    assert_eq!(restarted.uncovered(), 1);
}

/// One random event: a job's outcome (requester, agreeing payees with price and declared
/// energy, fuel) or a grant, from the faucet or from an impostor.
#[derive(Clone, Debug)]
enum Random {
    Job {
        job: u8,
        requester: u8,
        payees: Vec<(u8, u64, bool)>,
        fuel_used: u64,
        fuel_limit: u64,
        issued_at: u64,
    },
    Grant {
        faucet: u8,
        recipient: u8,
        amount: u64,
        issued_at: u64,
        nonce: u64,
    },
}

fn outcome() -> impl Strategy<Value = Random> {
    let payees = proptest::collection::vec((10u8..16, 0u64..3_000, any::<bool>()), 0..5);
    prop_oneof![
        4 => (0u8..30, 0u8..4, payees, 0u64..1_500, 1u64..1_000, 0u64..1_000).prop_map(
            |(job, requester, payees, fuel_used, fuel_limit, issued_at)| Random::Job {
                job,
                requester,
                payees,
                fuel_used,
                fuel_limit,
                issued_at,
            }
        ),
        1 => (prop_oneof![Just(30u8), Just(31)], 0u8..16, 0u64..500, 0u64..1_000, any::<u64>())
            .prop_map(|(faucet, recipient, amount, issued_at, nonce)| Random::Grant {
                faucet,
                recipient,
                amount,
                issued_at,
                nonce,
            }),
    ]
}

fn event(index: usize, outcome: &Random) -> CreditEvent {
    match outcome {
        Random::Job {
            job,
            requester,
            payees,
            fuel_used,
            fuel_limit,
            issued_at,
        } => {
            let mut payees: Vec<Payee> = (payees.iter())
                .map(|(p, price, renewable)| Payee {
                    provider: node(*p),
                    price: *price,
                    renewable: *renewable,
                })
                .collect();
            payees.sort_by_key(|p| p.provider);
            payees.dedup_by_key(|p| p.provider);
            CreditEvent::Settlement {
                verdict: VerdictId::of(&index.to_le_bytes()),
                settlement: Settlement {
                    job: JobId::of(&[*job]),
                    requester: node(*requester),
                    issued_at: Timestamp(*issued_at),
                    expires_at: Timestamp(10_000),
                    fuel_limit: *fuel_limit,
                    fuel_used: (*fuel_used).min(*fuel_limit),
                    payees,
                },
            }
        }
        Random::Grant {
            faucet,
            recipient,
            amount,
            issued_at,
            nonce,
        } => CreditEvent::Grant {
            id: GrantId::of(&index.to_le_bytes()),
            grant: FaucetGrant {
                faucet: node(*faucet),
                recipient: node(*recipient),
                amount: *amount,
                issued_at: Timestamp(*issued_at),
                nonce: *nonce,
            },
        },
    }
}

fn random_params() -> impl Strategy<Value = CreditParams> {
    (
        proptest::collection::vec(0u64..5_000, 4),
        0u64..2_000,
        0u32..=10_000,
        0u32..=10_000,
    )
        .prop_map(
            |(genesis, pool, renewable_bps, off_peak_bps)| CreditParams {
                genesis: (0u8..).zip(genesis).map(|(i, b)| (node(i), b)).collect(),
                faucet: Some(Faucet {
                    id: node(30),
                    per_identity: 300,
                    total: 1_000,
                }),
                reward_pool: pool,
                rewards: EnergyRewards {
                    renewable_bps,
                    off_peak_bps,
                    off_peak: Some(OffPeak {
                        start_hour: 0,
                        end_hour: 12,
                    }),
                },
            },
        )
}

fn outcomes_in_two_orders()
-> impl Strategy<Value = (CreditParams, Vec<CreditEvent>, Vec<CreditEvent>, u64)> {
    (
        random_params(),
        proptest::collection::vec(outcome(), 0..40),
        0u64..1_000,
    )
        .prop_flat_map(|(params, outcomes, cutoff)| {
            let events: Vec<CreditEvent> = outcomes
                .iter()
                .enumerate()
                .map(|(i, o)| event(i, o))
                .collect();
            let shuffled = Just(events.clone()).prop_shuffle();
            (Just(params), Just(events), shuffled, Just(cutoff))
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn credits_are_conserved_and_arrival_order_does_not_matter(
        (params, events, shuffled, cutoff) in outcomes_in_two_orders()
    ) {
        // Applied one by one, every event keeps the sum of balances at the supply.
        let mut book = CreditBook::new(params.clone()).unwrap();
        for e in &events {
            match e {
                CreditEvent::Settlement { settlement, .. } => {
                    if let Settled::Paid(p) = book.settle(settlement) {
                        prop_assert!(p.paid() <= p.owed());
                    }
                }
                CreditEvent::Grant { id, grant } => {
                    book.grant(*id, grant);
                }
            }
            prop_assert_eq!(book.check_conservation(), Ok(()));
        }
        // Two nodes that received the same events in different orders and covered the same
        // checkpoint hold the same balances at every cutoff; so does one that has not covered
        // it yet (what it proposes is what the others finalise).
        let mut a = CreditLedger::new(params.clone()).unwrap();
        let mut b = CreditLedger::new(params.clone()).unwrap();
        let mut c = CreditLedger::new(params).unwrap();
        for e in &events {
            a.note(e.clone());
        }
        for e in &shuffled {
            b.note(e.clone());
            c.note(e.clone());
        }
        a.cover(Timestamp(cutoff));
        b.cover(Timestamp(cutoff));
        let balances = |book: CreditBook| book.iter().map(|(p, v)| (*p, *v)).collect::<Vec<_>>();
        prop_assert_eq!(
            balances(a.book_at(Timestamp(cutoff))),
            balances(c.book_at(Timestamp(cutoff)))
        );
        for at in [cutoff, cutoff + 1, 999, u64::MAX] {
            let (x, y) = (a.book_at(Timestamp(at)), b.book_at(Timestamp(at)));
            prop_assert_eq!(x.check_conservation(), Ok(()));
            prop_assert_eq!(balances(x), balances(y));
        }
    }
}
