//! The requester's job state machine, driven event by event.

use cairn_protocol::quorum::FailReason;
use cairn_protocol::reputation::ReputationTable;
use cairn_protocol::requester::{
    Action, Context, Event, LogEntry, Phase, RequesterConfig, RequesterJob,
};
use cairn_protocol::*;

use crate::fixtures::{NET, node, output, report, spec};

/// The default rules without the random extras (hidden replicas, audits), so that scenarios
/// are exact; the extras have their own tests below.
fn plain() -> RequesterConfig {
    RequesterConfig {
        hidden_replica_probability: 0.0,
        audit_probability: 0.0,
        audit_scale: 0,
        ..RequesterConfig::default()
    }
}

struct Driver {
    job: RequesterJob,
    reputation: ReputationTable,
    config: RequesterConfig,
    now: Timestamp,
}

impl Driver {
    fn new(spec: JobSpec) -> (Self, Vec<Action>) {
        let id = spec.id().unwrap();
        let (job, actions) = RequesterJob::new(id, spec, Timestamp(0));
        let d = Self {
            job,
            reputation: ReputationTable::default(),
            config: plain(),
            now: Timestamp(0),
        };
        (d, actions)
    }

    fn on(&mut self, event: Event) -> Vec<Action> {
        let cx = Context {
            now: self.now,
            reputation: &self.reputation,
            seed: &[7; 32],
            config: &self.config,
        };
        self.job.handle(event, &cx)
    }

    fn bid(&mut self, bidder: u8) -> Vec<Action> {
        let bid = Bid {
            job: self.job.id(),
            bidder: node(bidder),
            price: 10,
            device: Device::Cpu { cores: 1 },
            runtime: "wasmtime-48/test".into(),
            expires_at: Timestamp(60_000),
        };
        self.on(Event::Bid(bid))
    }

    fn report(&mut self, provider: u8, bytes: &[u8]) -> Vec<Action> {
        let r = report(provider, self.job.id(), output(bytes));
        self.on(Event::Report(Box::new(r)))
    }
}

fn awarded(actions: &[Action]) -> Vec<NodeId> {
    let mut v: Vec<NodeId> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Award(award) => Some(award.provider),
            _ => None,
        })
        .collect();
    v.sort();
    v
}

fn nodes(ids: &[u8]) -> Vec<NodeId> {
    ids.iter().map(|i| node(*i)).collect()
}

fn sorted(ids: &[u8]) -> Vec<NodeId> {
    let mut v = nodes(ids);
    v.sort();
    v
}

/// Drives a job from submission to its awards with candidates 1..=n all bidding.
fn to_running(spec: JobSpec, n: u8) -> (Driver, Vec<NodeId>) {
    let (mut d, first) = Driver::new(spec);
    assert_eq!(first, vec![Action::FindCandidates]);
    let calls = d.on(Event::Candidates(nodes(&(1..=n).collect::<Vec<_>>())));
    assert!(matches!(&calls[..], [Action::CallForBids(to)] if to.len() == usize::from(n)));
    let mut actions = Vec::new();
    for b in 1..=n {
        actions.extend(d.bid(b));
    }
    let winners = awarded(&actions);
    assert_eq!(d.job.phase(), &Phase::Running);
    (d, winners)
}

#[test]
fn a_job_goes_from_auction_to_accepted_with_a_checkable_verdict() {
    let (mut d, winners) = to_running(spec(100), 5);
    assert_eq!(winners.len(), 3);
    let ids: Vec<u8> = (1..=5).filter(|i| winners.contains(&node(*i))).collect();
    assert!(d.report(ids[0], b"out").is_empty());
    // Two agree, but the third could still dissent: a slow cheater cannot dodge the count.
    assert!(d.report(ids[1], b"out").is_empty());
    assert!(!d.job.is_decided());
    // The third agrees: accepted, the output can be fetched, and the verdict is out.
    let actions = d.report(ids[2], b"out");
    assert!(matches!(d.job.phase(), Phase::Accepted(o) if *o == output(b"out")));
    let [
        Action::FetchOutput { from, .. },
        Action::PublishVerdict(verdict),
    ] = &actions[..]
    else {
        panic!("{actions:?}")
    };
    assert_eq!(from.len(), 3);
    let evidence = verdict.evidence(&NET).unwrap();
    assert_eq!((evidence.agreeing.len(), evidence.dissenting.len()), (3, 0));
    assert!(d.job.is_finished());
    assert!(
        d.report(ids[2], b"lie").is_empty(),
        "a finished job ignores late events"
    );
}

#[test]
fn the_verdict_names_a_replica_that_never_reports_after_its_deadline() {
    let (mut d, _) = to_running(spec(100), 3);
    d.report(1, b"x");
    assert!(d.report(2, b"x").is_empty(), "node 3 could still dissent");
    d.now = Timestamp(3_000);
    assert!(d.on(Event::Tick).is_empty(), "node 3 still has time");
    d.now = Timestamp(20_000);
    let actions = d.on(Event::Tick);
    let [Action::FetchOutput { .. }, Action::PublishVerdict(verdict)] = &actions[..] else {
        panic!("{actions:?}")
    };
    assert!(matches!(d.job.phase(), Phase::Accepted(_)));
    assert_eq!(verdict.timed_out, nodes(&[3]));
}

#[test]
fn too_few_candidates_queue_the_job_with_back_off_and_say_why() {
    let (mut d, _) = Driver::new(spec(100));
    assert!(d.on(Event::Candidates(nodes(&[1]))).is_empty());
    assert!(
        d.job
            .log()
            .last()
            .unwrap()
            .what
            .contains("only 1 eligible candidates for 3 replicas")
    );
    d.now = Timestamp(100);
    assert!(d.on(Event::Tick).is_empty(), "not before the back-off");
    d.now = Timestamp(250);
    assert_eq!(d.on(Event::Tick), vec![Action::FindCandidates]);
    assert!(d.on(Event::Candidates(nodes(&[1, 2]))).is_empty());
    assert!(
        d.job
            .log()
            .last()
            .unwrap()
            .what
            .contains("next auction in 500 ms"),
        "back-off doubles"
    );
    // Nobody ever comes: the job fails at its deadline.
    d.now = Timestamp(100_000);
    assert!(d.on(Event::Tick).is_empty());
    assert_eq!(d.job.phase(), &Phase::Failed(FailReason::DeadlinePassed));
}

#[test]
fn the_requester_never_awards_itself_or_unsolicited_bidders() {
    let (mut d, _) = Driver::new(spec(100));
    // The requester (node 100) is among the candidates; it is skipped.
    let calls = d.on(Event::Candidates(nodes(&[100, 1, 2, 3])));
    assert_eq!(calls, vec![Action::CallForBids(sorted(&[1, 2, 3]))]);
    assert!(d.bid(9).is_empty(), "node 9 was not asked");
    d.bid(1);
    d.bid(2);
    let actions = d.bid(3);
    assert_eq!(awarded(&actions), sorted(&[1, 2, 3]));
}

#[test]
fn disagreement_escalates_to_new_providers() {
    let (mut d, winners) = to_running(spec(100), 3);
    assert_eq!(winners.len(), 3);
    d.report(1, b"x");
    d.report(2, b"y");
    let actions = d.report(3, b"z");
    assert_eq!(actions, vec![Action::FindCandidates]);
    // An outcome must out-number the two others by the quorum: 4 against 2.
    assert!(matches!(d.job.phase(), Phase::Auction { needed: 3, .. }));
    // Already-awarded providers are not asked again.
    let calls = d.on(Event::Candidates(nodes(&[1, 2, 3, 4, 5, 6])));
    assert_eq!(calls, vec![Action::CallForBids(sorted(&[4, 5, 6]))]);
    d.bid(4);
    d.bid(5);
    let actions = d.bid(6);
    assert_eq!(awarded(&actions).len(), 3);
    d.report(4, b"x");
    d.report(5, b"x");
    // The winner of a dispute is audited before it stands.
    assert_eq!(d.report(6, b"x"), vec![Action::FindCandidates]);
    d.on(Event::Candidates(nodes(&[1, 7])));
    d.bid(7);
    let actions = d.report(7, b"x");
    assert!(matches!(d.job.phase(), Phase::Accepted(o) if *o == output(b"x")));
    let Some(Action::PublishVerdict(verdict)) = actions.get(1) else {
        panic!("{actions:?}")
    };
    let evidence = verdict.evidence(&NET).unwrap();
    assert_eq!(evidence.agreeing.len(), 5);
    assert_eq!(evidence.dissenting.len(), 2);
}

#[test]
fn a_provider_that_misses_its_deadline_is_replaced() {
    let (mut d, _) = to_running(spec(100), 3);
    d.report(1, b"x");
    d.report(2, b"y");
    // Node 3 never reports; past its deadline the job asks for two more replicas (3 against
    // 1 settles it).
    d.now = Timestamp(20_000);
    assert_eq!(d.on(Event::Tick), vec![Action::FindCandidates]);
    d.on(Event::Candidates(nodes(&[1, 2, 3, 4, 5])));
    d.bid(4);
    let actions = d.bid(5);
    assert_eq!(awarded(&actions), sorted(&[4, 5]));
    d.report(4, b"x");
    assert_eq!(
        d.report(5, b"x"),
        vec![Action::FindCandidates],
        "disputed: audited"
    );
    d.on(Event::Candidates(nodes(&[6])));
    d.bid(6);
    let actions = d.report(6, b"x");
    let Some(Action::PublishVerdict(verdict)) = actions.get(1) else {
        panic!("{actions:?}")
    };
    assert_eq!(verdict.timed_out, nodes(&[3]));
    assert_eq!(verdict.evidence(&NET).unwrap().dissenting, nodes(&[2]));
}

#[test]
fn a_refused_award_is_withdrawn_without_blame_and_replaced_when_needed() {
    let (mut d, winners) = to_running(spec(100), 3);
    assert_eq!(winners, sorted(&[1, 2, 3]));
    // A refusal from someone holding no replica changes nothing.
    let stranger = Event::AwardRefused {
        provider: node(9),
        reason: "busy".into(),
    };
    assert!(d.on(stranger).is_empty());
    // A peer's words in the log are bounded, however long.
    let long = Event::AwardRefused {
        provider: node(1),
        reason: "é".repeat(10_000),
    };
    let mut probe = d.job.clone();
    let cx = Context {
        now: d.now,
        reputation: &d.reputation,
        seed: &[7; 32],
        config: &d.config,
    };
    probe.handle(long, &cx);
    let last = &probe.log().last().unwrap().what;
    assert!(last.contains("refused its award"), "{last}");
    assert_eq!(
        last.chars().count(),
        cairn_protocol::requester::MAX_LOG_ENTRY_CHARS
    );
    // Node 3 refuses (busy); 1 and 2 agree: the quorum stands with nothing outstanding, and
    // node 3 is neither blamed nor in the evidence.
    d.report(1, b"x");
    let refused = Event::AwardRefused {
        provider: node(3),
        reason: "busy".into(),
    };
    assert!(d.on(refused).is_empty(), "still waiting for node 2");
    let actions = d.report(2, b"x");
    let Some(Action::PublishVerdict(verdict)) = actions.get(1) else {
        panic!("{actions:?}")
    };
    assert!(verdict.timed_out.is_empty());
    assert!(verdict.awards.iter().all(|a| a.provider != node(3)));
    assert_eq!(verdict.evidence(&NET).unwrap().agreeing, sorted(&[1, 2]));

    // When the refusal leaves the job short, it is replaced.
    let (mut d, _) = to_running(spec(101), 3);
    d.report(1, b"x");
    d.report(3, b"y");
    let refused = Event::AwardRefused {
        provider: node(2),
        reason: "restarted".into(),
    };
    assert_eq!(d.on(refused), vec![Action::FindCandidates]);
    // The refuser is not awarded this job again, even with a bid in hand.
    d.on(Event::Candidates(nodes(&[2, 4, 5])));
    let mut actions = d.bid(2);
    actions.extend(d.bid(4));
    actions.extend(d.bid(5));
    assert_eq!(awarded(&actions), sorted(&[4, 5]));
}

#[test]
fn a_job_says_when_it_next_needs_the_clock() {
    let (d, first) = Driver::new(spec(100));
    assert_eq!(first, vec![Action::FindCandidates]);
    let Phase::Auction { closes_at, .. } = *d.job.phase() else {
        panic!("{:?}", d.job.phase())
    };
    assert_eq!(d.job.next_wake(), Some(closes_at));
    let (mut d, _) = to_running(spec(100), 3);
    let wake = d.job.next_wake().unwrap();
    assert!(wake <= d.job.spec().deadline);
    // Just before the wake nothing is due; at it, the silent replicas are timed out and
    // replaced, exactly as a tick every few milliseconds would have found.
    d.report(1, b"x");
    d.now = Timestamp(wake.0 - 1);
    assert!(d.on(Event::Tick).is_empty());
    d.now = d.job.next_wake().unwrap();
    assert_eq!(d.on(Event::Tick), vec![Action::FindCandidates]);
    // A finished job needs no clock.
    let (mut d, _) = to_running(spec(100), 3);
    d.report(1, b"x");
    d.report(2, b"x");
    d.report(3, b"x");
    assert!(d.job.is_finished());
    assert_eq!(d.job.next_wake(), None);
}

#[test]
fn a_persisted_job_resumes_exactly_where_it_was() {
    let (mut d, _) = to_running(spec(100), 3);
    d.report(1, b"x");
    let bytes = codec::encode(&d.job).unwrap();
    let restored: RequesterJob = codec::decode(&bytes, codec::MAX_FRAME_BYTES).unwrap();
    let mut twin = Driver {
        job: restored,
        reputation: ReputationTable::default(),
        config: plain(),
        now: d.now,
    };
    assert_eq!(twin.report(2, b"x"), d.report(2, b"x"));
    assert_eq!(twin.job.phase(), d.job.phase());
    assert_eq!(twin.job.log(), d.job.log());
}

/// A job awarded to nodes 1, 2 and 3 (all bidding), with `established` out of probation.
fn running_on_1_2_3(established_peers: &[u8]) -> Driver {
    running_on_1_2_3_judged_by(established(established_peers))
}

/// A job awarded to nodes 1, 2 and 3 (all bidding), judged by `reputation`.
fn running_on_1_2_3_judged_by(reputation: ReputationTable) -> Driver {
    let (mut d, _) = Driver::new(spec(100));
    d.reputation = reputation;
    d.on(Event::Candidates(nodes(&[1, 2, 3])));
    for b in 1..=3 {
        d.bid(b);
    }
    assert_eq!(d.job.providers().len(), 3);
    d
}

/// A reputation table in which each of `established` has left probation.
fn established(peers: &[u8]) -> ReputationTable {
    let mut table = ReputationTable::default();
    let jobs = table.params().probation_jobs;
    credit(&mut table, peers, jobs);
    table
}

/// Applies `times` verdicts in which `peers` agreed (each verdict its own job and id).
fn credit(table: &mut ReputationTable, peers: &[u8], times: u64) {
    for _ in 0..times {
        let evidence = cairn_protocol::messages::Evidence {
            agreeing: nodes(peers),
            ..crate::fixtures::evidence(&[], &[], &[])
        };
        table.apply(VerdictId::of(evidence.job.as_bytes()), &evidence);
    }
}

/// A two-replica job awarded to nodes 1 and 2, judged by `reputation`, with every outcome
/// audited.
fn audited_pair_job(nonce: u64, reputation: &ReputationTable) -> Driver {
    let (mut d, _) = Driver::new(JobSpec {
        nonce,
        replicas: 2,
        ..spec(100)
    });
    d.reputation = reputation.clone();
    d.config.audit_probability = 1.0;
    d.on(Event::Candidates(nodes(&[1, 2])));
    d.bid(1);
    d.bid(2);
    d
}

#[test]
fn a_hidden_replica_is_awarded_when_the_draw_says_so() {
    let (mut d, _) = Driver::new(spec(100));
    d.config.hidden_replica_probability = 1.0;
    d.on(Event::Candidates(nodes(&[1, 2, 3, 4, 5])));
    let mut actions = Vec::new();
    for b in 1..=5 {
        actions.extend(d.bid(b));
    }
    assert_eq!(awarded(&actions).len(), 4, "3 asked for, 1 hidden");
    // The awards themselves do not say how many replicas the job has.
    let Action::Award(award) = &actions[0] else {
        panic!("{actions:?}")
    };
    assert_eq!(award.job, d.job.id());

    // Never when the candidates only just suffice, and never with probability 0.
    let (mut d, _) = Driver::new(spec(100));
    d.config.hidden_replica_probability = 1.0;
    assert!(
        matches!(&d.on(Event::Candidates(nodes(&[1, 2, 3])))[..], [Action::CallForBids(to)] if to.len() == 3)
    );
    let (_, winners) = to_running(spec(100), 5);
    assert_eq!(winners.len(), 3);
}

#[test]
fn the_hidden_replica_draw_is_secret_and_near_its_probability() {
    let mut hidden = 0;
    for seed in 0..400u32 {
        let (mut d, _) = Driver::new(spec(100));
        d.config.hidden_replica_probability = 0.25;
        let mut secret = [0u8; 32];
        secret[..4].copy_from_slice(&seed.to_le_bytes());
        let cx = Context {
            now: d.now,
            reputation: &d.reputation,
            seed: &secret,
            config: &d.config,
        };
        d.job
            .handle(Event::Candidates(nodes(&[1, 2, 3, 4, 5, 6])), &cx);
        if matches!(d.job.phase(), Phase::Auction { needed: 4, .. }) {
            hidden += 1;
        }
    }
    assert!((70..130).contains(&hidden), "{hidden} of 400 at p = 0.25");
}

#[test]
fn only_some_candidates_are_asked_and_which_depends_on_the_secret_seed() {
    let all: Vec<u8> = (1..=40).collect();
    let asked = |seed: u8| {
        let (mut d, _) = Driver::new(spec(100));
        let cx = Context {
            now: d.now,
            reputation: &d.reputation,
            seed: &[seed; 32],
            config: &d.config,
        };
        match &d.job.handle(Event::Candidates(nodes(&all)), &cx)[..] {
            [Action::CallForBids(to)] => to.clone(),
            other => panic!("{other:?}"),
        }
    };
    let (a, b) = (asked(1), asked(2));
    assert_eq!(a.len(), 9, "3 replicas x 3 bids per replica");
    assert_eq!(asked(1), a, "reproducible from the seed");
    assert_ne!(a, b, "another seed asks others");
}

#[test]
fn probationers_alone_never_make_a_quorum_when_an_established_provider_exists() {
    let mut d = running_on_1_2_3(&[9]);
    d.report(1, b"out");
    d.report(2, b"out");
    let actions = d.report(3, b"out");
    assert_eq!(actions, vec![Action::FindCandidates], "not accepted yet");
    assert!(!d.job.is_decided());
    // Only the established node is asked for the extra replica.
    let calls = d.on(Event::Candidates(nodes(&[1, 2, 3, 4, 5, 9])));
    assert_eq!(calls, vec![Action::CallForBids(nodes(&[9]))]);
    assert_eq!(awarded(&d.bid(9)), nodes(&[9]));
    assert!(!d.job.is_decided(), "waits for the established provider");
    let actions = d.report(9, b"out");
    assert!(matches!(d.job.phase(), Phase::Accepted(o) if *o == output(b"out")));
    let Some(Action::PublishVerdict(verdict)) = actions.get(1) else {
        panic!("{actions:?}")
    };
    assert_eq!(verdict.evidence(&NET).unwrap().agreeing.len(), 4);
}

#[test]
fn probationers_wait_queued_while_the_established_provider_is_busy() {
    let mut d = running_on_1_2_3(&[9]);
    d.report(1, b"out");
    d.report(2, b"out");
    d.report(3, b"out");
    assert_eq!(
        d.on(Event::Candidates(nodes(&[4, 5, 9]))),
        vec![Action::CallForBids(nodes(&[9]))]
    );
    d.on(Event::Declined {
        peer: node(9),
        reason: "busy".into(),
    });
    let last = &d.job.log().last().unwrap().what;
    assert!(
        last.starts_with("queued: 0 acceptable bids for 1 replicas"),
        "{last}"
    );
    d.now = Timestamp(100_000);
    d.on(Event::Tick);
    assert_eq!(d.job.phase(), &Phase::Failed(FailReason::DeadlinePassed));
}

#[test]
fn an_established_provider_in_the_quorum_is_enough() {
    let mut d = running_on_1_2_3(&[1]);
    d.report(1, b"out");
    d.report(2, b"out");
    d.report(3, b"out");
    assert!(matches!(d.job.phase(), Phase::Accepted(_)));
}

#[test]
fn an_audit_catches_a_colluding_majority() {
    // Two replicas, both colluders (1 and 2, established) on one wrong output; 9 to 12 are
    // established and honest; 3 is on probation.
    let (mut d, _) = Driver::new(JobSpec {
        replicas: 2,
        max_replicas: 6,
        ..spec(100)
    });
    d.reputation = established(&[1, 2, 9, 10, 11, 12]);
    d.config.audit_probability = 1.0;
    d.on(Event::Candidates(nodes(&[1, 2])));
    d.bid(1);
    d.bid(2);
    d.report(1, b"wrong");
    let actions = d.report(2, b"wrong");
    assert_eq!(
        actions,
        vec![Action::FindCandidates],
        "audited, not accepted"
    );
    assert!(d.job.log().iter().any(|e| e.what.starts_with("audit")));
    // The audit goes to an established provider that does not hold a replica.
    let calls = d.on(Event::Candidates(nodes(&[1, 2, 3, 9])));
    assert_eq!(calls, vec![Action::CallForBids(nodes(&[9]))]);
    d.bid(9);
    // The auditor dissents: 2 against 1 does not out-vote it; the disagreement is settled
    // by established providers only.
    assert_eq!(d.report(9, b"right"), vec![Action::FindCandidates]);
    let calls = d.on(Event::Candidates(nodes(&[3, 10])));
    assert_eq!(calls, vec![Action::CallForBids(nodes(&[10]))]);
    d.bid(10);
    // 2 against 2: two more.
    assert_eq!(d.report(10, b"right"), vec![Action::FindCandidates]);
    d.on(Event::Candidates(nodes(&[3, 11, 12])));
    d.bid(11);
    d.bid(12);
    d.report(11, b"right");
    let actions = d.report(12, b"right");
    assert!(matches!(d.job.phase(), Phase::Accepted(o) if *o == output(b"right")));
    let Some(Action::PublishVerdict(verdict)) = actions.get(1) else {
        panic!("{actions:?}")
    };
    let evidence = verdict.evidence(&NET).unwrap();
    assert_eq!(evidence.dissenting, sorted(&[1, 2]));
    assert_eq!(evidence.agreeing.len(), 4);
}

#[test]
fn a_disputed_outcome_is_always_audited() {
    // No audit lottery at all (plain rules), yet the winner of a dispute is checked: a liar
    // is at work, and it may be on the winning side.
    let mut d = running_on_1_2_3(&[1, 2, 3, 4, 5]);
    d.report(1, b"x");
    d.report(2, b"x");
    assert_eq!(d.report(3, b"y"), vec![Action::FindCandidates]);
    d.on(Event::Candidates(nodes(&[4])));
    d.bid(4);
    // 3 against 1 would stand, but it was disputed: one more replica first.
    assert_eq!(d.report(4, b"x"), vec![Action::FindCandidates]);
    assert!(d.job.log().iter().any(|e| e.what.starts_with("audit")));
    d.on(Event::Candidates(nodes(&[5])));
    d.bid(5);
    let actions = d.report(5, b"x");
    assert!(matches!(d.job.phase(), Phase::Accepted(o) if *o == output(b"x")));
    let Some(Action::PublishVerdict(verdict)) = actions.get(1) else {
        panic!("{actions:?}")
    };
    assert_eq!(verdict.evidence(&NET).unwrap().dissenting, nodes(&[3]));
}

#[test]
fn checks_go_to_the_most_proven_bidders() {
    // 1 and 2 just left probation; 5 has as short a record, 6 and 7 much longer ones.
    let mut reputation = established(&[1, 2, 5, 6, 7]);
    credit(&mut reputation, &[6, 7], 40);
    let mut auditors = std::collections::BTreeSet::new();
    for nonce in 0..20u64 {
        let mut d = audited_pair_job(nonce, &reputation);
        d.report(1, b"out");
        assert_eq!(d.report(2, b"out"), vec![Action::FindCandidates]);
        d.on(Event::Candidates(nodes(&[5, 6, 7])));
        d.bid(5);
        d.bid(6);
        auditors.extend(awarded(&d.bid(7)));
    }
    assert_eq!(
        auditors,
        [node(6), node(7)].into_iter().collect(),
        "the short record never audits; both long ones do"
    );
}

#[test]
fn an_expired_bid_from_a_long_record_does_not_block_a_check() {
    // Node 6 has the longest record, but its bid expires before the audit round closes: the
    // audit goes to node 5, the best valid bidder, instead of waiting for nobody.
    let mut reputation = established(&[1, 2, 5, 6, 7]);
    credit(&mut reputation, &[6], 40);
    let mut d = audited_pair_job(0, &reputation);
    d.report(1, b"out");
    assert_eq!(d.report(2, b"out"), vec![Action::FindCandidates]);
    d.on(Event::Candidates(nodes(&[5, 6, 7])));
    let short_lived = Bid {
        job: d.job.id(),
        bidder: node(6),
        price: 10,
        device: Device::Cpu { cores: 1 },
        runtime: "wasmtime-48/test".into(),
        expires_at: Timestamp(300),
    };
    assert!(d.on(Event::Bid(short_lived)).is_empty());
    assert!(d.bid(5).is_empty(), "the round waits for node 7");
    d.now = Timestamp(5_000);
    let actions = d.on(Event::Tick);
    assert_eq!(awarded(&actions), nodes(&[5]), "{:#?}", d.job.log());
}

#[test]
fn an_audit_without_room_under_the_cap_leaves_the_quorum_standing() {
    let mut s = spec(100);
    s.max_replicas = 3;
    let (mut d, _) = Driver::new(s);
    d.config.audit_probability = 1.0;
    d.on(Event::Candidates(nodes(&[1, 2, 3])));
    for b in 1..=3 {
        d.bid(b);
    }
    d.report(1, b"out");
    d.report(2, b"out");
    d.report(3, b"out");
    assert!(matches!(d.job.phase(), Phase::Accepted(_)));
    assert!(d.job.log().iter().any(|e| e.what.contains("audit skipped")));
}

#[test]
fn probationers_wait_for_an_established_provider_that_already_holds_a_replica() {
    let mut d = running_on_1_2_3(&[3]);
    d.report(1, b"out");
    assert!(
        d.report(2, b"out").is_empty(),
        "waits for node 3, no extra replica"
    );
    assert!(!d.job.is_decided());
    let actions = d.report(3, b"out");
    assert!(matches!(d.job.phase(), Phase::Accepted(_)), "{actions:?}");
    assert_eq!(awarded(&actions), vec![], "no replica beyond the three");
}

#[test]
fn a_round_with_too_few_bids_awards_what_it_has_and_auctions_the_rest() {
    let (mut d, _) = Driver::new(spec(100));
    d.on(Event::Candidates(nodes(&[1, 2, 3, 4])));
    d.bid(1);
    d.on(Event::Declined {
        peer: node(2),
        reason: "busy".into(),
    });
    d.on(Event::Declined {
        peer: node(3),
        reason: "busy".into(),
    });
    let actions = d.on(Event::Declined {
        peer: node(4),
        reason: "busy".into(),
    });
    assert_eq!(
        awarded(&actions),
        nodes(&[1]),
        "one replica awarded at once"
    );
    assert!(matches!(d.job.phase(), Phase::Auction { needed: 2, .. }));
    // The rest is auctioned on the next tick, without back-off, and not asked of node 1.
    assert_eq!(d.on(Event::Tick), vec![Action::FindCandidates]);
    assert!(d.on(Event::Tick).is_empty(), "one lookup at a time");
    let calls = d.on(Event::Candidates(nodes(&[1, 2, 3, 4, 5])));
    assert_eq!(calls, vec![Action::CallForBids(sorted(&[2, 3, 4, 5]))]);
    d.bid(5);
    d.report(1, b"out");
    let actions = d.bid(2);
    assert!(actions.is_empty(), "waits for more answers: {actions:?}");
    d.on(Event::Declined {
        peer: node(3),
        reason: "busy".into(),
    });
    let actions = d.on(Event::Declined {
        peer: node(4),
        reason: "busy".into(),
    });
    assert_eq!(awarded(&actions), sorted(&[2, 5]));
    assert_eq!(d.job.phase(), &Phase::Running);
    assert_eq!(d.job.providers().len(), 3);
}

#[test]
fn a_late_bid_from_an_earlier_round_still_counts() {
    let (mut d, _) = Driver::new(spec(100));
    d.on(Event::Candidates(nodes(&[1, 2, 3])));
    d.bid(1);
    d.bid(2);
    // Node 3 is slow: the window closes with two bids, which win two replicas.
    d.now = Timestamp(600);
    let actions = d.on(Event::Tick);
    assert_eq!(awarded(&actions).len(), 2);
    // Its bid arrives between rounds and fills the last replica in the next one.
    assert!(d.bid(3).is_empty());
    d.now = Timestamp(650);
    d.on(Event::Tick);
    let actions = d.on(Event::Candidates(nodes(&[3, 4])));
    assert_eq!(
        actions,
        vec![Action::CallForBids(nodes(&[4]))],
        "node 3's bid is held"
    );
    let actions = d.bid(4);
    assert_eq!(awarded(&actions).len(), 1, "{:#?}", d.job.log());
    assert_eq!(d.job.phase(), &Phase::Running);
}

#[test]
fn probation_is_waived_when_no_established_provider_can_run_the_job() {
    // Node 9 is established but cannot run this job (the node filters candidates by the
    // job's requirements, so it never appears among them).
    let mut d = running_on_1_2_3(&[9]);
    d.report(1, b"out");
    d.report(2, b"out");
    assert_eq!(d.report(3, b"out"), vec![Action::FindCandidates]);
    // The able candidates are all on probation: the quorum stands, no replica is added.
    let actions = d.on(Event::Candidates(nodes(&[1, 2, 3, 4])));
    let waived = |e: &LogEntry| {
        e.what
            .starts_with("no established provider can run this job")
    };
    assert!(d.job.log().iter().any(waived));
    assert!(
        matches!(d.job.phase(), Phase::Accepted(_)),
        "{:#?}",
        d.job.log()
    );
    assert!(
        matches!(
            &actions[..],
            [Action::FetchOutput { .. }, Action::PublishVerdict(_)]
        ),
        "{actions:?}"
    );
    assert_eq!(d.job.providers().len(), 3);
}

#[test]
fn an_audit_that_no_other_provider_can_make_is_skipped_not_waited_for() {
    // One replica, and the only able provider already holds it: the audit cannot happen.
    let mut s = spec(100);
    s.replicas = 1;
    s.quorum = 1;
    let (mut d, _) = Driver::new(s);
    d.config.audit_probability = 1.0;
    d.on(Event::Candidates(nodes(&[1])));
    d.bid(1);
    assert_eq!(
        d.report(1, b"out"),
        vec![Action::FindCandidates],
        "audit asked"
    );
    let actions = d.on(Event::Candidates(nodes(&[1])));
    assert!(
        matches!(d.job.phase(), Phase::Accepted(_)),
        "{:#?}",
        d.job.log()
    );
    assert!(
        matches!(&actions[0], Action::FetchOutput { .. }),
        "{actions:?}"
    );
    let skipped = |e: &LogEntry| e.what.contains("the extra check is skipped");
    assert!(d.job.log().iter().any(skipped));
}

/// A network whose spec names node 50 as its only trust root.
fn rooted() -> ReputationTable {
    ReputationTable::default().with_roots([node(50)])
}

#[test]
fn with_roots_a_probationers_quorum_fails_when_no_established_provider_can_run_the_job() {
    // The same situation in which a closed cluster waives probation (the test above).
    let mut d = running_on_1_2_3_judged_by(rooted());
    d.report(1, b"out");
    d.report(2, b"out");
    assert_eq!(d.report(3, b"out"), vec![Action::FindCandidates]);
    let actions = d.on(Event::Candidates(nodes(&[1, 2, 3, 4])));
    assert!(actions.is_empty(), "{actions:?}");
    assert_eq!(
        d.job.phase(),
        &Phase::Failed(FailReason::NoEstablishedProvider)
    );
    let why = |e: &LogEntry| {
        e.what
            .starts_with("no established provider can run this job;")
    };
    assert!(d.job.log().iter().any(why), "{:#?}", d.job.log());
    assert!(d.job.is_finished(), "no verdict credits the probationers");
}

#[test]
fn with_roots_a_root_checks_the_probationers_quorum() {
    let mut d = running_on_1_2_3_judged_by(rooted());
    d.report(1, b"out");
    d.report(2, b"out");
    d.report(3, b"out");
    let calls = d.on(Event::Candidates(nodes(&[1, 2, 3, 4, 50])));
    assert_eq!(calls, vec![Action::CallForBids(nodes(&[50]))]);
    assert_eq!(awarded(&d.bid(50)), nodes(&[50]));
    d.report(50, b"out");
    assert!(matches!(d.job.phase(), Phase::Accepted(o) if *o == output(b"out")));
}

#[test]
fn with_roots_a_silent_established_provider_fails_the_job_at_its_deadline() {
    let mut d = running_on_1_2_3_judged_by(rooted());
    d.report(1, b"out");
    d.report(2, b"out");
    d.report(3, b"out");
    d.on(Event::Candidates(nodes(&[4, 50])));
    d.on(Event::Declined {
        peer: node(50),
        reason: "busy".into(),
    });
    assert!(!d.job.is_decided(), "queued while the deadline allows");
    d.now = Timestamp(100_000);
    d.on(Event::Tick);
    assert_eq!(
        d.job.phase(),
        &Phase::Failed(FailReason::NoEstablishedProvider)
    );
}

#[test]
fn with_roots_a_probationers_majority_over_a_root_needs_another_established_provider() {
    // Node 50 is a root and holds a replica, but it dissents: the majority are probationers.
    let (mut d, _) = Driver::new(spec(100));
    d.reputation = rooted();
    d.on(Event::Candidates(nodes(&[1, 2, 50])));
    for b in [1, 2, 50] {
        d.bid(b);
    }
    d.report(50, b"right");
    d.report(1, b"wrong");
    // 2 against 1 settles nothing: one more replica, from anyone, as no other established
    // provider can run it.
    assert_eq!(d.report(2, b"wrong"), vec![Action::FindCandidates]);
    assert_eq!(
        d.on(Event::Candidates(nodes(&[1, 2, 3, 50]))),
        vec![Action::CallForBids(nodes(&[3]))]
    );
    d.bid(3);
    // Three probationers against the root: they out-number it, but alone they never stand.
    assert_eq!(d.report(3, b"wrong"), vec![Action::FindCandidates]);
    d.on(Event::Candidates(nodes(&[1, 2, 3, 50])));
    assert_eq!(
        d.job.phase(),
        &Phase::Failed(FailReason::NoEstablishedProvider)
    );
}

#[test]
fn with_roots_a_quorum_with_a_root_in_it_stands() {
    let (mut d, _) = Driver::new(spec(100));
    d.reputation = rooted();
    d.on(Event::Candidates(nodes(&[1, 2, 50])));
    for b in [1, 2, 50] {
        d.bid(b);
    }
    d.report(1, b"out");
    d.report(50, b"out");
    d.report(2, b"out");
    assert!(matches!(d.job.phase(), Phase::Accepted(_)));
}

#[test]
fn adaptive_audits_check_unproven_providers_and_spare_long_records() {
    // Nodes 1 and 2 just left probation (score 10): with scale 5 an outcome they agree on is
    // audited with probability 5/15; with a score of 0 (a root that never worked, say) always.
    let audited = |reputation: ReputationTable| {
        let mut hits = 0;
        for nonce in 0..300u64 {
            let (mut d, _) = Driver::new(JobSpec {
                nonce,
                replicas: 2,
                ..spec(100)
            });
            d.reputation = reputation.clone();
            d.config.audit_scale = 5;
            d.on(Event::Candidates(nodes(&[1, 2])));
            for b in 1..=2 {
                d.bid(b);
            }
            d.report(1, b"out");
            let actions = d.report(2, b"out");
            if d.job.log().iter().any(|e| e.what.starts_with("audit")) {
                assert_eq!(
                    actions,
                    vec![Action::FindCandidates],
                    "audited, not accepted"
                );
                hits += 1;
            }
        }
        hits
    };
    let fresh_roots = ReputationTable::default().with_roots([node(1), node(2), node(3)]);
    assert_eq!(
        audited(fresh_roots),
        300,
        "score 0: every outcome is audited"
    );
    let young = audited(established(&[1, 2, 3]));
    assert!(
        (70..130).contains(&young),
        "score 10: about a third, got {young}"
    );
    let mut veteran = ReputationTable::default();
    credit(&mut veteran, &[1, 2, 3], 200);
    let old = audited(veteran);
    assert!(old < 25, "score 200: about 2.4 %, got {old}");
}

/// The job as a restarted requester reads it back from its store.
fn restored(job: &RequesterJob) -> RequesterJob {
    let bytes = codec::encode(job).unwrap();
    codec::decode(&bytes, 1 << 20).unwrap()
}

#[test]
fn a_restarted_requester_asks_its_providers_and_blames_none_for_its_downtime() {
    let (mut d, winners) = to_running(spec(100), 3);
    assert_eq!(winners, sorted(&[1, 2, 3]));
    // The requester is down from t=0 until t=30 s, past every report deadline (15 s): the
    // providers' pushes found no one.
    d.now = Timestamp(30_000);
    d.job = restored(&d.job);
    let actions = d.job.resume(d.now, &d.config);
    assert_eq!(actions, vec![Action::PullReports(winners.clone())]);
    assert!(
        d.on(Event::Tick).is_empty(),
        "nobody times out while the pulled reports are on their way"
    );
    assert_eq!(d.job.phase(), &Phase::Running);
    d.report(1, b"out");
    d.report(2, b"out");
    let actions = d.report(3, b"out");
    let [Action::FetchOutput { .. }, Action::PublishVerdict(verdict)] = &actions[..] else {
        panic!("{actions:?}")
    };
    assert!(verdict.timed_out.is_empty(), "{:?}", verdict.timed_out);
    assert_eq!(verdict.agreeing.len(), 3);
    assert_eq!(
        d.job.providers(),
        winners,
        "no replica was added: the original providers' work was used"
    );
}

#[test]
fn the_resume_grace_is_bounded_a_provider_that_never_answers_still_times_out() {
    let (mut d, _) = to_running(spec(100), 3);
    d.now = Timestamp(30_000);
    d.job = restored(&d.job);
    d.job.resume(d.now, &d.config);
    d.report(1, b"out");
    assert!(d.report(2, b"out").is_empty(), "node 3 is excused for now");
    d.now = Timestamp(30_000 + d.config.resume_grace_ms + 2);
    let actions = d.on(Event::Tick);
    let [Action::FetchOutput { .. }, Action::PublishVerdict(verdict)] = &actions[..] else {
        panic!("{actions:?}")
    };
    assert_eq!(verdict.timed_out, nodes(&[3]));
}

#[test]
fn a_requester_restarted_after_acceptance_fetches_the_output_asks_the_rest_and_republishes_its_verdict()
 {
    let mut spec = spec(100);
    spec.quorum = 1;
    let (mut d, _) = to_running(spec, 3);
    d.report(1, b"out");
    let actions = d.report(2, b"out");
    assert!(
        matches!(&actions[..], [Action::FetchOutput { .. }]),
        "accepted, the verdict waits for node 3: {actions:?}"
    );
    // The requester dies before it has the output.
    d.now = Timestamp(2_000);
    d.job = restored(&d.job);
    let actions = d.job.resume(d.now, &d.config);
    let [
        Action::FetchOutput { outcome, from },
        Action::PullReports(ask),
    ] = &actions[..]
    else {
        panic!("{actions:?}")
    };
    assert_eq!(*outcome, output(b"out"));
    assert_eq!(from, &sorted(&[1, 2]));
    assert_eq!(ask, &nodes(&[3]));
    // The verdict is made, and the requester dies again, perhaps before it went out: a
    // restart fetches a missing output and publishes the very same verdict again (it counts
    // once), and asks nobody for reports.
    let actions = d.report(3, b"out");
    let [Action::PublishVerdict(made)] = &actions[..] else {
        panic!("{actions:?}")
    };
    d.job = restored(&d.job);
    let actions = d.job.resume(d.now, &d.config);
    let [Action::FetchOutput { .. }, Action::PublishVerdict(again)] = &actions[..] else {
        panic!("{actions:?}")
    };
    assert_eq!(again, made);
    // Past the age at which a verdict is refused as stale, it is not published again.
    d.now = Timestamp(made.issued_at.0 + d.config.republish_verdict_ms + 1);
    let actions = d.job.resume(d.now, &d.config);
    assert!(
        matches!(&actions[..], [Action::FetchOutput { .. }]),
        "{actions:?}"
    );
}
