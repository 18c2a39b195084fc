//! The requester's job state machine, driven event by event.

use cairn_protocol::quorum::FailReason;
use cairn_protocol::reputation::ReputationTable;
use cairn_protocol::requester::{Action, Context, Event, Phase, RequesterConfig, RequesterJob};
use cairn_protocol::*;

use crate::fixtures::{node, output, report, spec};

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
            config: RequesterConfig::default(),
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
        self.on(Event::Report(r))
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
    // Two agree: accepted at once, and the output can be fetched...
    let actions = d.report(ids[1], b"out");
    assert!(matches!(d.job.phase(), Phase::Accepted(o) if *o == output(b"out")));
    let [Action::FetchOutput { from, .. }] = &actions[..] else {
        panic!("{actions:?}")
    };
    assert_eq!(from.len(), 2);
    assert!(
        d.job.is_decided() && !d.job.is_finished(),
        "the verdict waits for the third"
    );
    // ...but the verdict waits for the third report, which a slow cheater cannot dodge.
    let actions = d.report(ids[2], b"lie");
    let [Action::PublishVerdict(verdict)] = &actions[..] else {
        panic!("{actions:?}")
    };
    let evidence = verdict.evidence().unwrap();
    assert_eq!(
        (evidence.agreeing.len(), evidence.dissenting),
        (2, vec![node(ids[2])])
    );
    assert!(d.job.is_finished());
    assert!(
        d.report(ids[2], b"out").is_empty(),
        "a finished job ignores late events"
    );
}

#[test]
fn the_verdict_names_a_replica_that_never_reports_after_its_deadline() {
    let (mut d, _) = to_running(spec(100), 3);
    d.report(1, b"x");
    let actions = d.report(2, b"x");
    assert_eq!(actions.len(), 1, "accepted, verdict pending: {actions:?}");
    d.now = Timestamp(3_000);
    assert!(d.on(Event::Tick).is_empty(), "node 3 still has time");
    d.now = Timestamp(20_000);
    let actions = d.on(Event::Tick);
    let [Action::PublishVerdict(verdict)] = &actions[..] else {
        panic!("{actions:?}")
    };
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
    assert!(matches!(d.job.phase(), Phase::Auction { needed: 2, .. }));
    // Already-awarded providers are not asked again.
    let calls = d.on(Event::Candidates(nodes(&[1, 2, 3, 4, 5])));
    assert_eq!(calls, vec![Action::CallForBids(sorted(&[4, 5]))]);
    d.bid(4);
    let actions = d.bid(5);
    assert_eq!(awarded(&actions).len(), 2);
    d.report(4, b"x");
    let actions = d.report(5, b"x");
    assert!(matches!(d.job.phase(), Phase::Accepted(o) if *o == output(b"x")));
    let Some(Action::PublishVerdict(verdict)) = actions.get(1) else {
        panic!("{actions:?}")
    };
    let evidence = verdict.evidence().unwrap();
    assert_eq!(evidence.agreeing.len(), 3);
    assert_eq!(evidence.dissenting.len(), 2);
}

#[test]
fn a_provider_that_misses_its_deadline_is_replaced() {
    let (mut d, _) = to_running(spec(100), 3);
    d.report(1, b"x");
    d.report(2, b"y");
    // Node 3 never reports; past its deadline the job asks for one more replica.
    d.now = Timestamp(20_000);
    assert_eq!(d.on(Event::Tick), vec![Action::FindCandidates]);
    d.on(Event::Candidates(nodes(&[1, 2, 3, 4])));
    let actions = d.bid(4);
    assert_eq!(awarded(&actions), nodes(&[4]));
    let actions = d.report(4, b"x");
    let Some(Action::PublishVerdict(verdict)) = actions.get(1) else {
        panic!("{actions:?}")
    };
    assert_eq!(verdict.timed_out, nodes(&[3]));
    assert_eq!(verdict.evidence().unwrap().dissenting, nodes(&[2]));
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
        config: RequesterConfig::default(),
        now: d.now,
    };
    assert_eq!(twin.report(2, b"x"), d.report(2, b"x"));
    assert_eq!(twin.job.phase(), d.job.phase());
    assert_eq!(twin.job.log(), d.job.log());
}
