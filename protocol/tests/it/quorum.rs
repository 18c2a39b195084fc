//! The quorum decision as a table of cases.

use cairn_protocol::quorum::{Decision, FailReason, QuorumTally, ReportRejection};
use cairn_protocol::*;

use crate::fixtures::{NET, node, output, report, spec};

const DUE: Timestamp = Timestamp(5_000);
const NOW: Timestamp = Timestamp(2_000);

/// The spec of the fixture job with these tweaks.
fn job_spec(quorum: u8, max_replicas: u8) -> JobSpec {
    JobSpec {
        quorum,
        max_replicas,
        ..spec(100)
    }
}

/// A tally with providers `awarded` and the given spec tweaks.
fn tally(awarded: &[u8], quorum: u8, max_replicas: u8) -> (JobId, QuorumTally) {
    let spec = job_spec(quorum, max_replicas);
    let job = spec.id().unwrap();
    let mut tally = QuorumTally::new(job, &spec);
    for p in awarded {
        tally.award(node(*p), 10, DUE).unwrap();
    }
    (job, tally)
}

fn ids(peers: &[u8]) -> Vec<NodeId> {
    let mut v: Vec<NodeId> = peers.iter().map(|p| node(*p)).collect();
    v.sort();
    v
}

fn sorted(mut v: Vec<NodeId>) -> Vec<NodeId> {
    v.sort();
    v
}

/// One row: awarded providers, reports (provider, outcome), quorum, cap, the time of the
/// decision, and the expected decision.
struct Case {
    name: &'static str,
    awarded: &'static [u8],
    reports: &'static [(u8, &'static [u8])],
    quorum: u8,
    cap: u8,
    now: Timestamp,
    expect: Expect,
}

#[derive(Debug)]
enum Expect {
    Accept {
        output: &'static [u8],
        agreeing: &'static [u8],
        dissenting: &'static [u8],
    },
    Escalate(u8),
    Fail(FailReason),
    Pending,
}

#[test]
fn decision_table() {
    use Expect::*;
    let cases = [
        Case {
            name: "unanimous",
            awarded: &[1, 2, 3],
            reports: &[(1, b"x"), (2, b"x"), (3, b"x")],
            quorum: 2,
            cap: 5,
            now: NOW,
            expect: Accept {
                output: b"x",
                agreeing: &[1, 2, 3],
                dissenting: &[],
            },
        },
        Case {
            name: "2 against 1 is not enough: the dissent must be out-voted by a quorum",
            awarded: &[1, 2, 3],
            reports: &[(1, b"x"), (2, b"y"), (3, b"x")],
            quorum: 2,
            cap: 5,
            now: NOW,
            expect: Escalate(1),
        },
        Case {
            name: "3 against 1",
            awarded: &[1, 2, 3, 4],
            reports: &[(1, b"x"), (2, b"y"), (3, b"x"), (4, b"x")],
            quorum: 2,
            cap: 5,
            now: NOW,
            expect: Accept {
                output: b"x",
                agreeing: &[1, 3, 4],
                dissenting: &[2],
            },
        },
        Case {
            name: "2 of 3 wait for the third, which could still dissent",
            awarded: &[1, 2, 3],
            reports: &[(1, b"x"), (2, b"x")],
            quorum: 2,
            cap: 5,
            now: NOW,
            expect: Pending,
        },
        Case {
            name: "3 of 4 decided before the fourth reports",
            awarded: &[1, 2, 3, 4],
            reports: &[(1, b"x"), (2, b"x"), (3, b"x")],
            quorum: 2,
            cap: 5,
            now: NOW,
            expect: Accept {
                output: b"x",
                agreeing: &[1, 2, 3],
                dissenting: &[],
            },
        },
        Case {
            name: "1 of 3 so far waits",
            awarded: &[1, 2, 3],
            reports: &[(1, b"x"), (2, b"y")],
            quorum: 2,
            cap: 5,
            now: NOW,
            expect: Pending,
        },
        Case {
            name: "split 1-1-1 escalates",
            awarded: &[1, 2, 3],
            reports: &[(1, b"x"), (2, b"y"), (3, b"z")],
            quorum: 2,
            cap: 6,
            now: NOW,
            expect: Escalate(3),
        },
        Case {
            name: "split 1-1-1 at the cap fails",
            awarded: &[1, 2, 3],
            reports: &[(1, b"x"), (2, b"y"), (3, b"z")],
            quorum: 2,
            cap: 3,
            now: NOW,
            expect: Fail(FailReason::NoQuorum),
        },
        Case {
            name: "all different after escalation fails",
            awarded: &[1, 2, 3, 4, 5],
            reports: &[(1, b"a"), (2, b"b"), (3, b"c"), (4, b"d"), (5, b"e")],
            quorum: 2,
            cap: 5,
            now: NOW,
            expect: Fail(FailReason::NoQuorum),
        },
        Case {
            name: "a 2-2 tie at the cap is no majority",
            awarded: &[1, 2, 3, 4],
            reports: &[(1, b"x"), (2, b"x"), (3, b"y"), (4, b"y")],
            quorum: 2,
            cap: 4,
            now: NOW,
            expect: Fail(FailReason::NoQuorum),
        },
        Case {
            name: "missing reports time out, the rest decide",
            awarded: &[1, 2, 3],
            reports: &[(1, b"x"), (2, b"x")],
            quorum: 2,
            cap: 5,
            now: Timestamp(DUE.0 + 1),
            expect: Accept {
                output: b"x",
                agreeing: &[1, 2],
                dissenting: &[],
            },
        },
        Case {
            name: "past the job deadline without agreement fails",
            awarded: &[1, 2, 3],
            reports: &[(1, b"x")],
            quorum: 2,
            cap: 5,
            now: Timestamp(100_000),
            expect: Fail(FailReason::DeadlinePassed),
        },
    ];
    for case in cases {
        let (job, mut t) = tally(case.awarded, case.quorum, case.cap);
        for (p, bytes) in case.reports {
            t.add_report(report(*p, job, output(bytes)), NOW).unwrap();
        }
        let got = t.decide(case.now);
        match (&case.expect, &got) {
            (
                Expect::Accept {
                    output: o,
                    agreeing,
                    dissenting,
                },
                Decision::Accept {
                    outcome,
                    agreeing: a,
                    dissenting: d,
                },
            ) => {
                assert_eq!(*outcome, output(o), "{}", case.name);
                assert_eq!(sorted(a.clone()), ids(agreeing), "{}", case.name);
                assert_eq!(sorted(d.clone()), ids(dissenting), "{}", case.name);
            }
            (Expect::Escalate(n), Decision::Escalate { additional }) => {
                assert_eq!(additional, n, "{}", case.name)
            }
            (Expect::Fail(r), Decision::Fail(got)) => assert_eq!(got, r, "{}", case.name),
            (Expect::Pending, Decision::Pending) => {}
            (expected, got) => panic!("{}: expected {expected:?}, got {got:?}", case.name),
        }
    }
}

#[test]
fn a_2_2_tie_escalates_when_there_is_room() {
    // Quorum 2, cap 6: two more replicas could make it 4-2.
    let (job, mut t) = tally(&[1, 2, 3, 4], 2, 6);
    for (p, b) in [(1, b"x"), (2, b"x"), (3, b"y"), (4, b"y")] {
        t.add_report(report(p, job, output(b)), NOW).unwrap();
    }
    assert_eq!(t.decide(NOW), Decision::Escalate { additional: 2 });
}

#[test]
fn two_colluders_cannot_outvote_an_audit() {
    // Replicas 2, quorum 2: two colluders agree on a wrong output, and the audit replica
    // (or a hidden one) dissents. A bare majority would accept the lie and blame the auditor.
    let (job, mut t) = tally(&[1, 2, 3], 2, 6);
    for (p, b) in [(1, b"lie"), (2, b"lie")] {
        t.add_report(report(p, job, output(b)), NOW).unwrap();
    }
    assert_eq!(
        t.decide(NOW),
        Decision::Pending,
        "while the third replica is out, the pair is not accepted"
    );
    t.add_report(report(3, job, output(b"x")), NOW).unwrap();
    assert_eq!(t.decide(NOW), Decision::Escalate { additional: 1 });
    // Honest replicas settle it against the pair: 2-2, then 4-2.
    t.award(node(4), 10, DUE).unwrap();
    t.add_report(report(4, job, output(b"x")), NOW).unwrap();
    assert_eq!(t.decide(NOW), Decision::Escalate { additional: 2 });
    for p in [5, 6] {
        t.award(node(p), 10, DUE).unwrap();
    }
    t.add_report(report(5, job, output(b"x")), NOW).unwrap();
    assert_eq!(t.decide(NOW), Decision::Pending);
    t.add_report(report(6, job, output(b"x")), NOW).unwrap();
    match t.decide(NOW) {
        Decision::Accept {
            outcome,
            dissenting,
            ..
        } => {
            assert_eq!(outcome, output(b"x"));
            assert_eq!(sorted(dissenting), ids(&[1, 2]));
        }
        other => panic!("expected the honest output, got {other:?}"),
    }
}

#[test]
fn a_report_after_the_jobs_deadline_is_refused_and_counts_as_timeout() {
    let spec = job_spec(2, 5);
    let (job, mut t) = tally(&[1, 2, 3], 2, 5);
    t.add_report(report(1, job, output(b"x")), NOW).unwrap();
    t.add_report(report(2, job, output(b"x")), NOW).unwrap();
    let late = Timestamp(spec.deadline.0 + 1);
    let err = t
        .add_report(report(3, job, output(b"y")), late)
        .unwrap_err();
    assert!(matches!(err, ReportRejection::Late { provider, .. } if provider == node(3)));
    assert_eq!(t.timed_out(), vec![node(3)]);
    assert!(
        matches!(t.decide(late), Decision::Accept { ref dissenting, .. } if dissenting.is_empty())
    );
}

#[test]
fn a_report_after_its_own_deadline_but_before_the_jobs_clears_the_timeout() {
    let spec = job_spec(2, 5);
    let (job, mut t) = tally(&[1, 2, 3], 2, 5);
    t.add_report(report(1, job, output(b"x")), NOW).unwrap();
    let after_due = Timestamp(DUE.0 + 1);
    assert_eq!(t.outstanding_at(after_due), 0);
    assert_eq!(t.timed_out(), ids(&[2, 3]));
    // Node 2 kept its report while the requester was down and delivers it later, still
    // before the job's deadline: it counts, and node 2 is no longer blamed.
    t.add_report(report(2, job, output(b"x")), after_due)
        .unwrap();
    assert_eq!(t.timed_out(), vec![node(3)]);
    let decision = t.decide(after_due);
    assert!(
        matches!(decision, Decision::Accept { ref agreeing, .. } if sorted(agreeing.clone()) == ids(&[1, 2]))
    );
    let verdict = t.verdict(&decision, &spec, after_due).unwrap();
    assert_eq!(verdict.timed_out, vec![node(3)]);
    assert_eq!(verdict.agreeing.len(), 2);
}

#[test]
fn an_excused_replica_does_not_time_out_until_the_excuse_ends() {
    let (job, mut t) = tally(&[1, 2], 2, 5);
    let restart = Timestamp(DUE.0 + 10_000);
    t.excuse_until(Timestamp(restart.0 + 5_000));
    assert_eq!(
        t.outstanding_at(restart),
        2,
        "the requester's downtime is not theirs"
    );
    assert_eq!(t.next_report_by(), Some(Timestamp(restart.0 + 5_000)));
    t.add_report(report(1, job, output(b"x")), restart).unwrap();
    assert_eq!(t.outstanding_at(Timestamp(restart.0 + 5_001)), 0);
    assert_eq!(t.timed_out(), vec![node(2)]);
}

#[test]
fn duplicate_reports_from_one_peer_count_once() {
    let (job, mut t) = tally(&[1, 2, 3], 2, 5);
    t.add_report(report(1, job, output(b"x")), NOW).unwrap();
    let again = t.add_report(report(1, job, output(b"x")), NOW).unwrap_err();
    assert_eq!(again, ReportRejection::Duplicate { provider: node(1) });
    assert_eq!(
        t.decide(NOW),
        Decision::Pending,
        "one peer alone is no quorum of 2"
    );
}

#[test]
fn reports_for_another_job_or_from_non_winners_are_refused() {
    let (job, mut t) = tally(&[1, 2, 3], 2, 5);
    let other = JobId::of(b"other job");
    let err = t
        .add_report(report(1, other, output(b"x")), NOW)
        .unwrap_err();
    assert_eq!(
        err,
        ReportRejection::OtherJob {
            expected: job,
            found: other
        }
    );
    let err = t.add_report(report(9, job, output(b"x")), NOW).unwrap_err();
    assert_eq!(err, ReportRejection::NotAwarded { provider: node(9) });
    assert_eq!(t.decide(NOW), Decision::Pending);
}

#[test]
fn host_dependent_failures_abstain() {
    let (job, mut t) = tally(&[1, 2, 3], 2, 5);
    t.add_report(report(1, job, output(b"x")), NOW).unwrap();
    t.add_report(
        report(2, job, Outcome::Failed(FailureKind::StackOverflow)),
        NOW,
    )
    .unwrap();
    t.add_report(report(3, job, output(b"x")), NOW).unwrap();
    let decision = t.decide(NOW);
    assert!(matches!(decision, Decision::Accept { ref dissenting, .. } if dissenting.is_empty()));
    let verdict = t.verdict(&decision, &job_spec(2, 5), NOW).unwrap();
    assert!(verdict.dissenting.is_empty() && verdict.agreeing.len() == 2);
}

#[test]
fn deterministic_failures_can_be_the_agreed_outcome() {
    let (job, mut t) = tally(&[1, 2], 2, 5);
    let exit = Outcome::Failed(FailureKind::Exit(3));
    t.add_report(report(1, job, exit), NOW).unwrap();
    t.add_report(report(2, job, exit), NOW).unwrap();
    assert!(matches!(t.decide(NOW), Decision::Accept { outcome, .. } if outcome == exit));
}

#[test]
fn a_peer_never_holds_two_replicas_and_the_cap_holds() {
    let (_, mut t) = tally(&[1, 2, 3], 2, 4);
    assert!(t.award(node(1), 10, DUE).is_err());
    t.award(node(4), 10, DUE).unwrap();
    assert!(t.award(node(5), 10, DUE).is_err());
}

#[test]
fn the_verdict_carries_evidence_that_checks_out() {
    let (job, mut t) = tally(&[1, 2, 3, 4], 2, 5);
    t.add_report(report(1, job, output(b"x")), NOW).unwrap();
    t.add_report(report(2, job, output(b"y")), NOW).unwrap();
    t.add_report(report(3, job, output(b"x")), NOW).unwrap();
    t.add_report(report(4, job, output(b"x")), NOW).unwrap();
    let decision = t.decide(NOW);
    let verdict = t.verdict(&decision, &job_spec(2, 5), NOW).unwrap();
    let evidence = verdict.evidence(&NET).unwrap();
    assert_eq!(sorted(evidence.agreeing), ids(&[1, 3, 4]));
    assert_eq!(evidence.dissenting, vec![node(2)]);
}

#[test]
fn forged_evidence_is_caught() {
    let (job, mut t) = tally(&[1, 2, 3, 4], 2, 5);
    for (p, b) in [(1, b"x"), (2, b"y"), (3, b"x"), (4, b"x")] {
        t.add_report(report(p, job, output(b)), NOW).unwrap();
    }
    let decision = t.decide(NOW);
    let honest = t.verdict(&decision, &job_spec(2, 5), NOW).unwrap();

    // A requester that swaps the sides to frame the honest majority.
    let swapped = Verdict {
        decision: VerdictDecision::Accepted(output(b"y")),
        agreeing: honest.dissenting.clone(),
        dissenting: honest.agreeing.clone(),
        ..honest.clone()
    };
    assert!(swapped.evidence(&NET).is_err());

    // A report whose bytes were changed.
    let mut tampered = honest.clone();
    tampered.agreeing[0].payload[0] ^= 1;
    assert!(matches!(
        tampered.evidence(&NET),
        Err(VerdictError::BadReport { index: 0, .. })
    ));

    // A report of another job slipped in.
    let mut mixed = honest.clone();
    let other = report(4, JobId::of(b"other"), output(b"y"));
    mixed.dissenting.push(other.envelope().clone());
    assert!(matches!(
        mixed.evidence(&NET),
        Err(VerdictError::OtherJob { .. })
    ));

    // The same provider twice.
    let mut doubled = honest;
    doubled.agreeing.push(doubled.agreeing[0].clone());
    assert!(matches!(
        doubled.evidence(&NET),
        Err(VerdictError::DuplicateProvider { .. })
    ));
}

/// The honest verdict of a 4-replica job where providers 1, 3 and 4 agree and 2 dissents.
fn honest_verdict() -> Verdict {
    let (job, mut t) = tally(&[1, 2, 3, 4], 2, 5);
    for (p, b) in [(1, b"x"), (2, b"y"), (3, b"x"), (4, b"x")] {
        t.add_report(report(p, job, output(b)), NOW).unwrap();
    }
    let decision = t.decide(NOW);
    t.verdict(&decision, &job_spec(2, 5), NOW).unwrap()
}

#[test]
fn a_verdict_for_a_made_up_job_is_refused() {
    // C1: a verdict must carry the spec its job id is the hash of.
    let mut invented = honest_verdict();
    invented.job = JobId::of(b"a job nobody submitted");
    assert!(matches!(
        invented.evidence(&NET),
        Err(VerdictError::SpecMismatch { .. })
    ));
    // Another spec whose hash matches the id, but another requester wrote it.
    let mut borrowed = honest_verdict();
    borrowed.spec.requester = node(66);
    borrowed.job = borrowed.spec.id().unwrap();
    assert!(matches!(
        borrowed.evidence(&NET),
        Err(VerdictError::NotRequester { .. })
    ));
}

#[test]
fn only_awarded_providers_are_credited_or_blamed() {
    // C1/C2: a report from a provider the requester never awarded counts for nothing.
    let honest = honest_verdict();
    let mut extra = honest.clone();
    extra.awards.retain(|a| a.provider != node(3));
    assert!(matches!(
        extra.evidence(&NET),
        Err(VerdictError::NotAwarded { provider }) if provider == node(3)
    ));
    // A timeout for a provider that held no award.
    let mut framed = honest.clone();
    framed.timed_out.push(node(9));
    assert!(matches!(
        framed.evidence(&NET),
        Err(VerdictError::NotAwarded { provider }) if provider == node(9)
    ));
}

#[test]
fn a_timeout_needs_a_deadline_that_passed() {
    // C2: `timed_out` is checked against the award's deadline.
    let spec = job_spec(2, 5);
    let job = spec.id().unwrap();
    let mut t = QuorumTally::new(job, &spec);
    for p in [1, 2, 3] {
        t.award(node(p), 10, DUE).unwrap();
    }
    t.add_report(report(1, job, output(b"x")), NOW).unwrap();
    t.add_report(report(2, job, output(b"x")), NOW).unwrap();
    let late = DUE.plus_ms(1);
    let decision = t.decide(late);
    let verdict = t.verdict(&decision, &spec, late).unwrap();
    assert_eq!(verdict.timed_out, vec![node(3)]);
    assert_eq!(verdict.evidence(&NET).unwrap().timed_out, vec![node(3)]);
    // The same blame issued before the deadline is refused.
    let early = Verdict {
        issued_at: NOW,
        ..verdict
    };
    assert!(matches!(
        early.evidence(&NET),
        Err(VerdictError::DeadlineNotPassed { .. })
    ));
}

#[test]
fn the_quorum_is_the_specs() {
    let mut lowered = honest_verdict();
    lowered.spec.quorum = 3; // the job asked for three agreeing reports; two agree
    lowered.job = lowered.spec.id().unwrap();
    assert!(lowered.evidence(&NET).is_err());
}

#[test]
fn an_honest_report_of_another_job_cannot_be_reused_as_dissent() {
    // C2: the victim's genuine, public report of some other job, listed as dissent.
    let mut framed = honest_verdict();
    let genuine = report(7, JobId::of(b"the victim's real job"), output(b"real"));
    framed.awards.push(AwardTerms {
        provider: node(7),
        price: 10,
        report_by: DUE,
    });
    framed.dissenting.push(genuine.envelope().clone());
    assert!(matches!(
        framed.evidence(&NET),
        Err(VerdictError::OtherJob { .. })
    ));
}

#[test]
fn reports_signed_for_another_network_are_refused() {
    let mut foreign = honest_verdict();
    let (job, other) = (foreign.job, NetworkId([1; 32]));
    let message = foreign.agreeing[0]
        .clone()
        .verify::<ResultReport>(&NET)
        .unwrap();
    let resigned = Envelope::seal(message.message(), &crate::fixtures::keypair(1), &other).unwrap();
    foreign.agreeing[0] = resigned;
    assert_eq!(foreign.job, job);
    assert!(matches!(
        foreign.evidence(&NET),
        Err(VerdictError::BadReport {
            index: 0,
            source: EnvelopeError::WrongNetwork { .. }
        })
    ));
}

#[test]
fn verdicts_outside_the_time_window_are_refused() {
    // H7: a verdict dated far ahead would sit uncovered in every checkpoint ledger for ever; a
    // backdated one would slip under a checkpoint already final.
    let verdict = honest_verdict();
    let issued = verdict.issued_at;
    assert!(verdict.check_fresh(issued).is_ok());
    assert!(
        verdict
            .check_fresh(issued.plus_ms(VERDICT_MAX_AGE_MS))
            .is_ok()
    );
    let stale = verdict.check_fresh(issued.plus_ms(VERDICT_MAX_AGE_MS + 1));
    assert!(matches!(stale, Err(VerdictError::OutsideWindow { .. })));
    let future = Verdict {
        issued_at: issued.plus_ms(VERDICT_MAX_SKEW_MS + 1),
        ..verdict.clone()
    };
    assert!(matches!(
        future.check_fresh(issued),
        Err(VerdictError::OutsideWindow { .. })
    ));
    // A verdict issued long after its job's deadline fails its own check, whenever it is heard.
    let late = Verdict {
        issued_at: verdict.spec.deadline.plus_ms(VERDICT_GRACE_MS + 1),
        ..verdict
    };
    assert!(matches!(
        late.evidence(&NET),
        Err(VerdictError::AfterDeadline { .. })
    ));
}
