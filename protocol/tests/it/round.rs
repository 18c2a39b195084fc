//! The checkpoint epoch round as a state machine: proposals, votes, finality and the catch-up
//! trigger, driven without a network or a clock.

use cairn_protocol::checkpoint::round::{
    Acceptance, Action, CatchUpRefusal, EpochRound, Finalised, Ignored, Input, MAX_PENDING_VOTES,
    Rejected, RoundConfig,
};
use cairn_protocol::checkpoint::{self, CheckpointInput, Genesis, ProposalTimeError, Threshold};
use cairn_protocol::credits::{self, CreditParams, Payee, Settlement};
use cairn_protocol::ledger::Ledger;
use cairn_protocol::messages::Evidence;
use cairn_protocol::*;
use libp2p_identity::{PeerId, ed25519};
use proptest::prelude::*;

use crate::fixtures::NET;

const EPOCH_MS: u64 = 10_000;
const TIMEOUT_MS: u64 = 4_000;
const T0: Timestamp = Timestamp(1_000_000);

/// A keypair for member `i` (any of 65 536).
fn key(i: u16) -> ed25519::Keypair {
    let mut secret = [0x77; 32];
    secret[..2].copy_from_slice(&i.to_be_bytes());
    ed25519::Keypair::from(ed25519::SecretKey::try_from_bytes(&mut secret).unwrap())
}

fn id(i: u16) -> NodeId {
    NodeId::from_keypair(&key(i))
}

/// A network whose first committee is `members`, at the default threshold (two thirds).
fn genesis(members: impl IntoIterator<Item = u16>) -> Genesis {
    let mut committee: Vec<NodeId> = members.into_iter().map(id).collect();
    committee.sort();
    Genesis {
        network: "round-test".into(),
        committee_size: committee.len() as u32,
        committee,
        threshold: Threshold::default(),
        credits: None,
    }
}

/// Node `me`'s round, its first epoch opened at `T0`.
fn round(g: &Genesis, me: u16, ledger: Ledger) -> EpochRound {
    let config = RoundConfig {
        genesis: g.clone(),
        epoch_ms: EPOCH_MS,
        proposer_timeout_ms: TIMEOUT_MS,
    };
    EpochRound::new(config, id(me), Vec::new(), ledger, T0)
}

/// What a node with `ledger` proposes for `epoch` on top of `previous` at `at`.
fn checkpoint_of(
    g: &Genesis,
    ledger: &Ledger,
    proposer: u16,
    epoch: u64,
    previous: CheckpointHash,
    at: Timestamp,
) -> Checkpoint {
    let settle = cairn_protocol::ledger::settle_ms(EPOCH_MS);
    let cutoff = Timestamp(at.0 - settle);
    let table = ledger.table_at(cutoff);
    let input = CheckpointInput {
        network: &g.network,
        epoch,
        previous,
        committee: &g.committee,
        committee_size: g.committee.len(),
        verdicts: &table.applied_ids(),
        proposer: id(proposer),
        now: at,
    };
    checkpoint::build(&input, &ledger.with_balances(&table, cutoff)).unwrap()
}

/// Member `proposer`'s proposal of epoch 0 at `at`, from an empty ledger.
fn first(g: &Genesis, proposer: u16, at: Timestamp) -> Verified<Checkpoint> {
    let c = checkpoint_of(g, &Ledger::default(), proposer, 0, g.hash().unwrap(), at);
    Verified::sign(c, &key(proposer), &NET).unwrap()
}

fn sign_vote(voter: u16, checkpoint: CheckpointHash, epoch: u64) -> Verified<CheckpointVote> {
    let vote = CheckpointVote {
        checkpoint,
        epoch,
        voter: id(voter),
    };
    Verified::sign(vote, &key(voter), &NET).unwrap()
}

fn made_up(i: u32) -> CheckpointHash {
    CheckpointHash(blake3::hash(&i.to_be_bytes()).into())
}

fn proposal_from(p: &Verified<Checkpoint>, from: PeerId) -> Input {
    Input::Proposal {
        proposal: p.clone(),
        from,
    }
}

fn hash(p: &Verified<Checkpoint>) -> CheckpointHash {
    p.message().hash().unwrap()
}

fn votes_in(actions: &[Action]) -> Vec<CheckpointVote> {
    (actions.iter())
        .filter_map(|a| match a {
            Action::Vote(v) => Some(v.clone()),
            _ => None,
        })
        .collect()
}

fn finalised(actions: &[Action]) -> Option<&Finalised> {
    actions.iter().find_map(|a| match a {
        Action::Finalised(f) => Some(&**f),
        _ => None,
    })
}

/// Signs this node's own vote, as the node does, and hands it back.
fn vote_back(
    round: &mut EpochRound,
    me: u16,
    vote: &CheckpointVote,
    now: Timestamp,
) -> Vec<Action> {
    let signed = sign_vote(me, vote.checkpoint, vote.epoch);
    round.handle(Input::Vote(signed), now).actions
}

#[test]
fn the_proposer_of_each_attempt_proposes_once_when_the_epoch_is_due() {
    let g = genesis(1..=3);
    let who = |i: usize| (1..=3).find(|m| id(*m) == g.committee[i]).unwrap();
    let (first_proposer, second_proposer) = (who(0), who(1));
    let due = T0.plus_ms(EPOCH_MS);

    let mut r = round(&g, first_proposer, Ledger::default());
    assert!(r.tick(Timestamp(due.0 - 1)).is_empty());
    let actions = r.tick(due);
    let [Action::Propose(c)] = actions.as_slice() else {
        panic!("expected one proposal, got {actions:?}");
    };
    assert_eq!(
        (c.epoch, c.proposer, c.proposed_at),
        (0, id(first_proposer), due)
    );
    assert_eq!(c.previous, g.hash().unwrap());
    assert!(
        r.tick(due.plus_ms(1)).is_empty(),
        "one proposal per attempt"
    );

    // After a timeout the next member's attempt begins.
    let mut next = round(&g, second_proposer, Ledger::default());
    assert!(next.tick(due).is_empty());
    let actions = next.tick(due.plus_ms(TIMEOUT_MS));
    assert!(
        matches!(actions.as_slice(), [Action::Propose(c)] if c.proposer == id(second_proposer))
    );
}

#[test]
fn a_member_votes_once_and_only_for_a_proposal_equal_to_its_own() {
    let g = genesis(1..=3);
    let at = T0.plus_ms(EPOCH_MS);
    let p = first(&g, 1, at);
    let peer = PeerId::random();

    let mut member = round(&g, 2, Ledger::default());
    let step = member.handle(proposal_from(&p, peer), at);
    assert_eq!(step.acceptance, Acceptance::Accept);
    let votes = votes_in(&step.actions);
    assert_eq!(votes.len(), 1);
    assert_eq!((votes[0].checkpoint, votes[0].voter), (hash(&p), id(2)));
    let again = member.handle(proposal_from(&p, peer), at);
    assert_eq!(again.acceptance, Acceptance::Accept);
    assert!(again.actions.is_empty(), "a member votes once");
    assert!(votes_in(&member.tick(at.plus_ms(1))).is_empty());

    // An observer keeps the proposal but does not vote.
    let mut observer = round(&g, 9, Ledger::default());
    let step = observer.handle(proposal_from(&p, peer), at);
    assert_eq!(step.acceptance, Acceptance::Accept);
    assert!(step.actions.is_empty());
}

fn evidence(issued_at: Timestamp) -> Evidence {
    Evidence {
        job: JobId::of(b"round job"),
        requester: id(200),
        issued_at,
        expires_at: Timestamp(u64::MAX),
        agreeing: vec![id(201), id(202)],
        dissenting: vec![id(203)],
        timed_out: Vec::new(),
    }
}

#[test]
fn a_member_whose_ledger_lagged_votes_once_the_missing_verdict_arrives() {
    let g = genesis(1..=3);
    let at = T0.plus_ms(EPOCH_MS);
    let verdict = VerdictId::of(b"verdict");
    let issued = Timestamp(T0.0 - 20_000);
    let mut full = Ledger::default();
    full.note(verdict, issued, evidence(issued));
    let c = checkpoint_of(&g, &full, 1, 0, g.hash().unwrap(), at);
    let p = Verified::sign(c, &key(1), &NET).unwrap();

    let mut member = round(&g, 2, Ledger::default());
    let step = member.handle(proposal_from(&p, PeerId::random()), at);
    assert_eq!(step.acceptance, Acceptance::Accept);
    assert!(step.actions.is_empty(), "its own table differs: no vote");
    assert!(votes_in(&member.tick(at.plus_ms(1))).is_empty());

    member.ledger_mut().note(verdict, issued, evidence(issued));
    let votes = votes_in(&member.tick(at.plus_ms(2)));
    assert_eq!(votes.len(), 1);
    assert_eq!(votes[0].checkpoint, hash(&p));
}

/// A ledger with credits from genesis (node 200 holds 1000, the reward pool 5) and the round
/// job's verdict, which pays providers 201 and 202 half their price of 100 when `paid`.
fn ledger_with_credits(paid: bool) -> Ledger {
    let params = CreditParams {
        genesis: vec![(id(200), 1_000)],
        reward_pool: 5,
        ..CreditParams::default()
    };
    let mut ledger = Ledger::default().with_credits(params).unwrap();
    let (verdict, issued) = (VerdictId::of(b"verdict"), Timestamp(T0.0 - 20_000));
    ledger.note(verdict, issued, evidence(issued));
    let payee = |p| Payee {
        provider: id(p),
        price: 100,
        renewable: false,
    };
    let settlement = Settlement {
        job: JobId::of(b"round job"),
        requester: id(200),
        issued_at: issued,
        expires_at: Timestamp(u64::MAX),
        fuel_limit: 1_000,
        fuel_used: 500,
        payees: vec![payee(201), payee(202)],
    };
    if paid {
        ledger.note_settlement(verdict, settlement);
    }
    ledger
}

#[test]
fn checkpoints_carry_balances_and_a_node_that_catches_up_holds_the_same() {
    let g = genesis(1..=3);
    let at = T0.plus_ms(EPOCH_MS);
    let c = checkpoint_of(&g, &ledger_with_credits(true), 1, 0, g.hash().unwrap(), at);
    let p = Verified::sign(c, &key(1), &NET).unwrap();
    // A member whose book lacks the payment computes other leaves: it does not vote.
    let mut unpaid = round(&g, 3, ledger_with_credits(false));
    let step = unpaid.handle(proposal_from(&p, PeerId::random()), at);
    assert_eq!(step.acceptance, Acceptance::Accept);
    assert!(
        votes_in(&step.actions).is_empty(),
        "balances differ: no vote"
    );

    let mut r = round(&g, 2, ledger_with_credits(true));
    let mut actions = r.handle(proposal_from(&p, PeerId::random()), at).actions;
    for v in votes_in(&actions.clone()) {
        actions.extend(vote_back(&mut r, 2, &v, at));
    }
    actions.extend(r.handle(Input::Vote(sign_vote(1, hash(&p), 0)), at).actions);
    let f = finalised(&actions).expect("final").clone();
    let leaves = f.leaves.expect("its own leaves matched");
    let balance = |peer: NodeId| leaves.iter().find(|l| l.peer == peer).map(|l| l.balance);
    assert_eq!(balance(id(201)), Some(50));
    assert_eq!(balance(id(202)), Some(50));
    assert_eq!(balance(id(200)), Some(900));
    assert_eq!(balance(credits::reward_pool()), Some(5));
    assert_eq!(r.ledger().check_leaves(&leaves), Ok(()));

    // A node that held nothing catches up from the leaves and holds the same balances.
    let mut behind = round(&g, 9, ledger_with_credits(false));
    let later = at.plus_ms(3_000);
    behind.adopt(0, r.chain().to_vec(), Some(&leaves), later);
    assert_eq!(behind.ledger().leaves_at(later), leaves);
    assert_eq!(behind.ledger().credits().latest().balance(&id(201)), 50);
}

/// Finding M1: votes from outside the committee are refused before anything is queued, so
/// they cannot crowd out a member's early vote; one member cannot fill the queue either.
#[test]
fn votes_from_outside_the_committee_never_reach_the_queue() {
    let g = genesis([1, 2]);
    let at = T0.plus_ms(EPOCH_MS);
    let p = first(&g, 2, at);
    let mut r = round(&g, 1, Ledger::default());

    for i in 0..1_100 {
        let outsider = 1_000 + i as u16;
        let step = r.handle(Input::Vote(sign_vote(outsider, made_up(i), 0)), at);
        assert_eq!(step.acceptance, Acceptance::Reject(Rejected::NotMember));
    }
    let early = r.handle(Input::Vote(sign_vote(2, hash(&p), 0)), at);
    assert_eq!(early.acceptance, Acceptance::Accept);
    let other = r.handle(Input::Vote(sign_vote(2, made_up(1), 0)), at);
    assert_eq!(other.acceptance, Acceptance::Accept);
    let third = r.handle(Input::Vote(sign_vote(2, made_up(2), 0)), at);
    assert_eq!(
        third.acceptance,
        Acceptance::Ignore(Ignored::TooManyPending)
    );
    let later = r.handle(Input::Vote(sign_vote(2, made_up(3), 5)), at);
    assert_eq!(later.acceptance, Acceptance::Ignore(Ignored::OtherEpoch));

    // The proposal comes: this node votes, and its vote with the queued one is final.
    let step = r.handle(proposal_from(&p, PeerId::random()), at);
    assert_eq!(step.acceptance, Acceptance::Accept);
    let votes = votes_in(&step.actions);
    assert_eq!(votes.len(), 1);
    let done = vote_back(&mut r, 1, &votes[0], at);
    let f = finalised(&done).expect("final");
    let signers: Vec<NodeId> = f.checkpoint.votes.iter().map(|v| v.signer).collect();
    assert_eq!(signers.len(), 2);
    assert!(signers.contains(&id(2)) && signers.contains(&id(1)));
    assert_eq!(f.dropped_votes, 1, "the vote for a made-up checkpoint");
    assert_eq!(r.chain().len(), 1);
}

#[test]
fn the_queue_of_early_votes_is_bounded_in_all() {
    // More members than the queue holds at two votes each.
    let members = (MAX_PENDING_VOTES / 2 + 1) as u16;
    let g = genesis(1..=members);
    let mut r = round(&g, 1, Ledger::default());
    let mut n = 0;
    for m in 1..members {
        for _ in 0..2 {
            let step = r.handle(Input::Vote(sign_vote(m, made_up(n), 0)), T0);
            assert_eq!(step.acceptance, Acceptance::Accept);
            n += 1;
        }
    }
    assert_eq!(n as usize, MAX_PENDING_VOTES);
    let step = r.handle(Input::Vote(sign_vote(members, made_up(n), 0)), T0);
    assert_eq!(step.acceptance, Acceptance::Ignore(Ignored::TooManyPending));
}

/// Finding M2: a proposal ahead of the chain is ignored, not forwarded, and starts a catch-up
/// only when its proposer is plausibly a member; one per peer and interval, one at a time.
#[test]
fn proposals_ahead_start_a_catch_up_only_from_a_plausible_proposer() {
    let g = genesis([1, 2]);
    let now = T0.plus_ms(EPOCH_MS);
    let mut r = round(&g, 1, Ledger::default());
    let ahead = |proposer: u16, epoch: u64| {
        let c = checkpoint_of(&g, &Ledger::default(), proposer, epoch, made_up(7), now);
        Verified::sign(c, &key(proposer), &NET).unwrap()
    };
    let (p, q) = (PeerId::random(), PeerId::random());

    let step = r.handle(proposal_from(&ahead(666, 7), p), now);
    assert_eq!(step.acceptance, Acceptance::Ignore(Ignored::OtherEpoch));
    assert!(matches!(
        step.actions.as_slice(),
        [Action::CatchUpRefused {
            reason: CatchUpRefusal::UnknownProposer,
            ..
        }]
    ));

    let step = r.handle(proposal_from(&ahead(2, 7), p), now);
    assert_eq!(step.acceptance, Acceptance::Ignore(Ignored::OtherEpoch));
    assert!(matches!(step.actions.as_slice(), [Action::CatchUp { peer }] if *peer == p));
    let step = r.handle(proposal_from(&ahead(2, 8), p), now);
    assert!(matches!(
        step.actions.as_slice(),
        [Action::CatchUpRefused {
            reason: CatchUpRefusal::RateLimited,
            ..
        }]
    ));
    // One catch-up at a time: another peer waits until it ends.
    assert!(
        r.handle(proposal_from(&ahead(2, 8), q), now)
            .actions
            .is_empty()
    );
    r.catch_up_ended();
    let step = r.handle(proposal_from(&ahead(2, 8), q), now);
    assert!(matches!(step.actions.as_slice(), [Action::CatchUp { peer }] if *peer == q));
    r.catch_up_ended();
    let later = now.plus_ms(cairn_protocol::checkpoint::round::CATCH_UP_PER_PEER_MS);
    let step = r.handle(proposal_from(&ahead(2, 9), p), later);
    assert!(matches!(step.actions.as_slice(), [Action::CatchUp { peer }] if *peer == p));

    // The open epoch on another branch: ignored, and a member's also catches up.
    r.catch_up_ended();
    let step = r.handle(proposal_from(&ahead(2, 0), PeerId::random()), later);
    assert_eq!(step.acceptance, Acceptance::Ignore(Ignored::OtherBranch));
    assert!(matches!(step.actions.as_slice(), [Action::CatchUp { .. }]));
    assert!(r.chain().is_empty());
}

#[test]
fn proposals_for_the_open_epoch_need_a_member_the_network_and_a_sane_time() {
    let g = genesis([1, 2]);
    let now = T0.plus_ms(EPOCH_MS);
    let mut r = round(&g, 1, Ledger::default());
    let peer = PeerId::random();
    let reject =
        |r: &mut EpochRound, p: &Verified<Checkpoint>| r.handle(proposal_from(p, peer), now);

    let outsider = first(&g, 666, now);
    let step = reject(&mut r, &outsider);
    assert_eq!(step.acceptance, Acceptance::Reject(Rejected::NotProposer));
    assert!(step.actions.is_empty(), "no catch-up, no vote");
    let future = first(&g, 2, now.plus_ms(3_600_000));
    assert_eq!(
        reject(&mut r, &future).acceptance,
        Acceptance::Reject(Rejected::Time(ProposalTimeError::Future))
    );
    let mut c = first(&g, 2, now).message().clone();
    c.network = "another-network".into();
    let elsewhere = Verified::sign(c, &key(2), &NET).unwrap();
    assert_eq!(
        reject(&mut r, &elsewhere).acceptance,
        Acceptance::Reject(Rejected::WrongNetwork)
    );

    // A member may make a few proposals per epoch, not unboundedly many.
    let mut accepted = 0;
    for i in 0..10 {
        let step = reject(&mut r, &first(&g, 2, Timestamp(now.0 - i)));
        if step.acceptance == Acceptance::Accept {
            accepted += 1;
        } else {
            assert_eq!(step.acceptance, Acceptance::Reject(Rejected::NotProposer));
        }
    }
    assert_eq!(accepted, 2 * g.committee.len() + 1);
    assert!(r.chain().is_empty());
}

/// Finalises member 1's proposal of epoch 0 at `at` on `r` (node `me`, committee 1..=3),
/// with this node's own vote and members' votes until it is final.
fn finalise_first(r: &mut EpochRound, g: &Genesis, me: u16, at: Timestamp) -> Finalised {
    let p = first(g, 1, at);
    let mut actions = r.handle(proposal_from(&p, PeerId::random()), at).actions;
    for v in votes_in(&actions.clone()) {
        actions.extend(vote_back(r, me, &v, at));
    }
    for voter in 1..=3 {
        if finalised(&actions).is_some() {
            break;
        }
        let step = r.handle(Input::Vote(sign_vote(voter, hash(&p), 0)), at);
        actions.extend(step.actions);
    }
    finalised(&actions).cloned().expect("final")
}

#[test]
fn votes_count_once_per_member_and_finalise_at_the_threshold() {
    let g = genesis(1..=4); // threshold: 3 of 4
    let at = T0.plus_ms(EPOCH_MS);
    let p = first(&g, 1, at);
    let mut r = round(&g, 9, Ledger::default());
    r.handle(proposal_from(&p, PeerId::random()), at);
    for voter in [1, 2, 2, 1] {
        let step = r.handle(Input::Vote(sign_vote(voter, hash(&p), 0)), at);
        assert_eq!(step.acceptance, Acceptance::Accept);
        assert!(step.actions.is_empty(), "not final on duplicates");
    }
    let step = r.handle(Input::Vote(sign_vote(3, hash(&p), 0)), at);
    let f = finalised(&step.actions).expect("final at three votes");
    assert_eq!(f.checkpoint.checkpoint, *p.message());
    assert_eq!(f.checkpoint.votes.len(), 3);
    assert_eq!(f.hash, hash(&p));
    assert!(f.leaves.is_some(), "this node's table matched");
    assert!(!f.proposed_here);
    assert_eq!((r.chain().len(), r.tip()), (1, Some(hash(&p))));
    // The epoch is closed: its late votes are ignored.
    let late = r.handle(Input::Vote(sign_vote(4, hash(&p), 0)), at);
    assert_eq!(late.acceptance, Acceptance::Ignore(Ignored::OtherEpoch));
}

#[test]
fn the_proposer_finalises_its_own_proposal_and_the_next_epoch_opens_then() {
    let g = genesis(1..=3);
    let proposer = (1..=3).find(|m| id(*m) == g.committee[0]).unwrap();
    let due = T0.plus_ms(EPOCH_MS);
    let mut r = round(&g, proposer, Ledger::default());
    let proposed: [Action; 1] = r.tick(due).try_into().unwrap();
    let [Action::Propose(c)] = proposed else {
        panic!("no proposal")
    };
    let own = Verified::sign(c, &key(proposer), &NET).unwrap();
    let step = r.handle(Input::OwnProposal(own.clone()), due);
    assert_eq!(step.acceptance, Acceptance::Accept);
    let voted: [Action; 1] = step.actions.try_into().unwrap();
    let [Action::Vote(v)] = voted else {
        panic!("no vote")
    };
    assert!(vote_back(&mut r, proposer, &v, due).is_empty());
    let other = (1..=3).find(|m| *m != proposer).unwrap();
    let closed = due.plus_ms(500);
    let step = r.handle(Input::Vote(sign_vote(other, hash(&own), 0)), closed);
    let f = finalised(&step.actions).expect("final");
    assert!(f.proposed_here, "the proposer anchors");

    // Epoch 1 opens when epoch 0 closed; a proposal made too early is refused.
    let next = (1..=3).find(|m| id(*m) == g.committee[1]).unwrap();
    let mut n = round(&g, next, Ledger::default());
    finalise_first(&mut n, &g, next, due);
    assert!(n.tick(Timestamp(due.0 + EPOCH_MS - 1)).is_empty());
    assert!(
        matches!(n.tick(due.plus_ms(EPOCH_MS)).as_slice(), [Action::Propose(c)] if c.epoch == 1)
    );
    let too_soon = Timestamp(due.0 + EPOCH_MS - checkpoint::MAX_CLOCK_SKEW_MS - 1);
    let early = checkpoint_of(&g, &Ledger::default(), 1, 1, n.tip().unwrap(), too_soon);
    let early = Verified::sign(early, &key(1), &NET).unwrap();
    let step = n.handle(proposal_from(&early, PeerId::random()), due);
    assert_eq!(
        step.acceptance,
        Acceptance::Reject(Rejected::Time(ProposalTimeError::TooEarly))
    );
    // A proposal for a past epoch is ignored and starts nothing.
    let step = n.handle(proposal_from(&first(&g, 2, due), PeerId::random()), due);
    assert_eq!(step.acceptance, Acceptance::Ignore(Ignored::OtherEpoch));
    assert!(step.actions.is_empty());
}

#[test]
fn an_adopted_chain_closes_the_open_epoch_and_opens_the_next() {
    let g = genesis(1..=3);
    let at = T0.plus_ms(EPOCH_MS);
    let mut ahead = round(&g, 3, Ledger::default());
    let done = finalise_first(&mut ahead, &g, 3, at);

    // A node that missed it holds another proposal of epoch 0, then catches up.
    let mut behind = round(&g, 9, Ledger::default());
    let stale = first(&g, 2, at);
    behind.handle(proposal_from(&stale, PeerId::random()), at);
    let caught_up = at.plus_ms(3_000);
    behind.adopt(0, ahead.chain().to_vec(), done.leaves.as_deref(), caught_up);
    assert_eq!(behind.chain(), ahead.chain());
    assert_eq!((behind.epoch(), behind.tip()), (1, Some(done.hash)));
    let late = behind.handle(Input::Vote(sign_vote(1, hash(&stale), 0)), caught_up);
    assert_eq!(late.acceptance, Acceptance::Ignore(Ignored::OtherEpoch));

    // Epoch 1 opened when it caught up: its proposer proposes an epoch later.
    let next = (1..=3).find(|m| id(*m) == g.committee[1]).unwrap();
    let mut proposer = round(&g, next, Ledger::default());
    proposer.adopt(0, ahead.chain().to_vec(), done.leaves.as_deref(), caught_up);
    assert!(
        proposer
            .tick(Timestamp(caught_up.0 + EPOCH_MS - 1))
            .is_empty()
    );
    let actions = proposer.tick(caught_up.plus_ms(EPOCH_MS));
    assert!(
        matches!(actions.as_slice(), [Action::Propose(c)] if c.epoch == 1 && c.previous == done.hash)
    );
}

#[test]
fn a_network_without_a_committee_checkpoints_nothing() {
    let g = genesis([]);
    let mut r = round(&g, 1, Ledger::default());
    assert!(r.tick(T0.plus_ms(10 * EPOCH_MS)).is_empty());
    let vote = r.handle(Input::Vote(sign_vote(1, made_up(0), 0)), T0);
    assert_eq!(vote.acceptance, Acceptance::Reject(Rejected::NotMember));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever the order of one proposal, its members' votes and some noise, a node
    /// finalises the same checkpoint with votes only from members.
    #[test]
    fn any_order_of_the_same_messages_finalises_the_same_checkpoint(
        order in Just((0..10usize).collect::<Vec<_>>()).prop_shuffle()
    ) {
        let g = genesis(1..=5); // threshold: 4 of 5
        let at = T0.plus_ms(EPOCH_MS);
        let p = first(&g, 1, at);
        let messages: Vec<Input> = vec![
            proposal_from(&p, PeerId::random()),
            Input::Vote(sign_vote(1, hash(&p), 0)),
            Input::Vote(sign_vote(2, hash(&p), 0)),
            Input::Vote(sign_vote(3, hash(&p), 0)),
            Input::Vote(sign_vote(4, hash(&p), 0)),
            Input::Vote(sign_vote(5, hash(&p), 0)),
            Input::Vote(sign_vote(2, made_up(1), 0)),
            Input::Vote(sign_vote(66, hash(&p), 0)),
            Input::Vote(sign_vote(3, hash(&p), 4)),
            Input::Vote(sign_vote(4, hash(&p), 0)),
        ];
        let mut r = round(&g, 9, Ledger::default());
        let mut finals = Vec::new();
        for i in order {
            let step = r.handle(messages[i].clone(), at);
            finals.extend(finalised(&step.actions).cloned());
        }
        prop_assert_eq!(finals.len(), 1);
        prop_assert_eq!(r.chain().len(), 1);
        let signed = &r.chain()[0];
        prop_assert_eq!(&signed.checkpoint, p.message());
        prop_assert_eq!(signed.votes.len(), 4);
        prop_assert!(signed.votes.iter().all(|v| g.committee.contains(&v.signer)));
        prop_assert_eq!(r.tip(), Some(hash(&p)));
    }
}
