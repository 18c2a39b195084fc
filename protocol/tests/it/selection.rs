//! Winner selection: reproducible from the seed, spread among comparable bidders, weighted
//! towards cheaper and more reputable bids, never two replicas to one peer.

use std::collections::{BTreeMap, BTreeSet};

use cairn_protocol::auction::{Auction, BidRejection, SelectionParams};
use cairn_protocol::messages::Evidence;
use cairn_protocol::reputation::{ReputationParams, ReputationTable};
use cairn_protocol::*;

use crate::fixtures::{node, spec};

const NOW: Timestamp = Timestamp(500);

fn bid(job: JobId, bidder: u8, price: u64) -> Bid {
    Bid {
        job,
        bidder: node(bidder),
        price,
        device: Device::Cpu { cores: 1 },
        runtime: "wasmtime-48/test".into(),
        expires_at: Timestamp(10_000),
    }
}

fn seed(i: u32) -> [u8; 32] {
    *blake3::hash(&i.to_le_bytes()).as_bytes()
}

/// How often each bidder wins over `rounds` seeds, for the job of `spec(100)`.
fn wins(
    bids: &[Bid],
    reputation: &ReputationTable,
    count: usize,
    rounds: u32,
) -> BTreeMap<NodeId, u32> {
    wins_in(&spec(100), bids, reputation, count, rounds)
}

/// How often each bidder wins over `rounds` seeds, for the job of `spec`.
fn wins_in(
    spec: &JobSpec,
    bids: &[Bid],
    reputation: &ReputationTable,
    count: usize,
    rounds: u32,
) -> BTreeMap<NodeId, u32> {
    let auction = Auction {
        job: bids[0].job,
        spec,
        reputation,
        params: SelectionParams::default(),
    };
    let mut wins: BTreeMap<NodeId, u32> = BTreeMap::new();
    for i in 0..rounds {
        for w in auction
            .select(bids, count, &BTreeSet::new(), &seed(i), NOW)
            .winners
        {
            *wins.entry(w.bidder).or_insert(0) += 1;
        }
    }
    wins
}

#[test]
fn the_same_seed_and_bids_give_the_same_winners_in_any_order() {
    let spec = spec(100);
    let job = spec.id().unwrap();
    let bids: Vec<Bid> = (1..=8).map(|b| bid(job, b, 100 + u64::from(b))).collect();
    let reputation = ReputationTable::default();
    let auction = Auction {
        job,
        spec: &spec,
        reputation: &reputation,
        params: SelectionParams::default(),
    };
    let a = auction.select(&bids, 3, &BTreeSet::new(), &seed(1), NOW);
    let mut reversed = bids.clone();
    reversed.reverse();
    let b = auction.select(&reversed, 3, &BTreeSet::new(), &seed(1), NOW);
    assert_eq!(a, b);
    assert_eq!(a.winners.len(), 3);
    let other = (2..50).map(|i| auction.select(&bids, 3, &BTreeSet::new(), &seed(i), NOW));
    assert!(
        other.into_iter().any(|s| s.winners != a.winners),
        "the seed changes nothing"
    );
}

#[test]
fn winners_are_spread_among_comparable_bidders() {
    let job = spec(100).id().unwrap();
    let bids: Vec<Bid> = (1..=6).map(|b| bid(job, b, 100)).collect();
    let wins = wins(&bids, &ReputationTable::default(), 3, 1200);
    // Each of six equal bidders should win half the rounds (600); allow wide noise.
    assert_eq!(wins.len(), 6, "{wins:?}");
    for (peer, n) in &wins {
        assert!(
            (450..=750).contains(n),
            "{peer:?} won {n} of 1200: {wins:?}"
        );
    }
}

#[test]
fn a_peer_never_gets_two_replicas() {
    let spec = spec(100);
    let job = spec.id().unwrap();
    // Peer 1 bids three times; peer 2 already holds a replica.
    let bids = vec![
        bid(job, 1, 10),
        bid(job, 1, 5),
        bid(job, 1, 1),
        bid(job, 2, 10),
        bid(job, 3, 10),
    ];
    let reputation = ReputationTable::default();
    let auction = Auction {
        job,
        spec: &spec,
        reputation: &reputation,
        params: SelectionParams::default(),
    };
    let exclude = BTreeSet::from([node(2)]);
    for i in 0..200 {
        let s = auction.select(&bids, 3, &exclude, &seed(i), NOW);
        let winners: BTreeSet<NodeId> = s.winners.iter().map(|w| w.bidder).collect();
        assert_eq!(winners, BTreeSet::from([node(1), node(3)]));
        let dupes = s
            .rejected
            .iter()
            .filter(|(_, r)| *r == BidRejection::Duplicate)
            .count();
        assert_eq!(
            dupes, 3,
            "two repeat bids of peer 1 and the excluded peer 2"
        );
    }
}

#[test]
fn cheaper_bids_win_more_often() {
    let job = spec(100).id().unwrap();
    let bids = vec![
        bid(job, 1, 50),
        bid(job, 2, 100),
        bid(job, 3, 100),
        bid(job, 4, 100),
    ];
    let wins = wins(&bids, &ReputationTable::default(), 1, 2000);
    let cheap = wins[&node(1)];
    for p in 2..=4 {
        assert!(cheap > wins[&node(p)] * 3 / 2, "{wins:?}");
    }
}

/// A table in which each `(peer, agreements)` agreed that many times.
fn agreed(records: &[(u8, u32)]) -> ReputationTable {
    let mut reputation = ReputationTable::new(ReputationParams::default());
    for &(peer, times) in records {
        for i in 0..times {
            let evidence = Evidence {
                agreeing: vec![node(peer)],
                ..crate::fixtures::evidence(&[], &[], &[])
            };
            let id = VerdictId::of(&[&[peer][..], &i.to_le_bytes()].concat());
            reputation.apply(id, &evidence);
        }
    }
    reputation
}

#[test]
fn more_reputable_bids_win_more_often() {
    let job = spec(100).id().unwrap();
    // All three have left probation; node 1 has ten times the record.
    let reputation = agreed(&[(1, 100), (2, 10), (3, 10)]);
    let bids = vec![bid(job, 1, 100), bid(job, 2, 100), bid(job, 3, 100)];
    let wins = wins(&bids, &reputation, 1, 2000);
    assert!(wins[&node(1)] > wins[&node(2)] * 3 / 2, "{wins:?}");
    assert!(wins[&node(1)] > wins[&node(3)] * 3 / 2, "{wins:?}");
}

#[test]
fn cheap_probationers_never_outweigh_an_established_bidder() {
    let params = SelectionParams::default();
    // The bound itself: the cheapest probationer against an established provider's price.
    let sybil = params.weight(params.probation_trust, 1, 10_000);
    let honest = params.weight(1.0, 10_000, 10_000);
    assert!(
        sybil < honest * params.pool_ratio,
        "{sybil} against {honest}"
    );

    // Thirty fresh identities bid 1; one established provider bids the usual 10 000.
    let mut s = spec(100);
    s.max_price = 20_000;
    let job = s.id().unwrap();
    let reputation = agreed(&[(50, 10)]);
    assert!(!reputation.on_probation(&node(50)));
    let mut bids: Vec<Bid> = (1..=30).map(|b| bid(job, b, 1)).collect();
    bids.push(bid(job, 50, 10_000));
    let one = wins_in(&s, &bids, &reputation, 1, 500);
    assert!(one.get(&node(50)).copied().unwrap_or(0) >= 450, "{one:?}");
    // Probationers still fill the replicas the established provider cannot.
    let three = wins_in(&s, &bids, &reputation, 3, 200);
    assert_eq!(three[&node(50)], 200, "{three:?}");
    assert_eq!(three.values().sum::<u32>(), 600);
}

#[test]
fn among_equal_trust_a_cheaper_bid_wins_more_but_boundedly_often() {
    let mut s = spec(100);
    s.max_price = 20_000;
    let job = s.id().unwrap();
    let reputation = agreed(&[(1, 10), (2, 10), (3, 10), (4, 10)]);
    let at = |price: u64| {
        let mut bids = vec![bid(job, 1, price)];
        bids.extend((2..=4).map(|b| bid(job, b, 10_000)));
        wins_in(&s, &bids, &reputation, 1, 2000)
    };
    // Half the price: twice the weight.
    let half = at(5_000);
    for p in 2..=4 {
        assert!(half[&node(1)] > half[&node(p)] * 3 / 2, "{half:?}");
    }
    // Any price below a quarter weighs four times, no more: the others keep winning.
    let one = at(1);
    let cheap = one[&node(1)];
    assert!(
        (1_000..1_300).contains(&cheap),
        "4/7 of 2000 expected: {one:?}"
    );
    for p in 2..=4 {
        assert!(one[&node(p)] > 200, "{one:?}");
    }
}

#[test]
fn invalid_bids_are_rejected_with_reasons() {
    let spec = spec(100);
    let job = spec.id().unwrap();
    let mut expired = bid(job, 4, 10);
    expired.expires_at = NOW;
    let bids = vec![
        bid(JobId::of(b"other"), 1, 10),
        bid(job, 2, spec.max_price + 1),
        bid(job, 100, 10),
        expired,
        bid(job, 5, 10),
    ];
    let reputation = ReputationTable::default();
    let auction = Auction {
        job,
        spec: &spec,
        reputation: &reputation,
        params: SelectionParams::default(),
    };
    let s = auction.select(&bids, 3, &BTreeSet::new(), &seed(0), NOW);
    assert_eq!(
        s.winners.iter().map(|w| w.bidder).collect::<Vec<_>>(),
        vec![node(5)]
    );
    let reasons: Vec<_> = s.rejected.iter().map(|(_, r)| r.clone()).collect();
    assert!(matches!(reasons[0], BidRejection::OtherJob { .. }));
    assert!(matches!(reasons[1], BidRejection::TooExpensive { .. }));
    assert_eq!(reasons[2], BidRejection::OwnJob);
    assert!(matches!(reasons[3], BidRejection::Expired { .. }));
}

#[test]
fn far_worse_bids_stay_out_of_the_draw_unless_needed() {
    let job = spec(100).id().unwrap();
    // Peer 3 asks four times the price of peers 1 and 2 and was caught lying, which put it
    // back on probation: below the pool ratio, so it never wins one of two replicas while two
    // comparable bids exist, but fills a third.
    let mut reputation = agreed(&[(1, 10), (2, 10), (3, 10)]);
    let evidence = Evidence {
        dissenting: vec![node(3)],
        ..crate::fixtures::evidence(&[], &[], &[])
    };
    reputation.apply(VerdictId::of(b"caught"), &evidence);
    let bids = vec![bid(job, 1, 100), bid(job, 2, 100), bid(job, 3, 400)];
    let two = wins(&bids, &reputation, 2, 300);
    assert_eq!(two.get(&node(3)), None, "{two:?}");
    let three = wins(&bids, &reputation, 3, 10);
    assert_eq!(three[&node(3)], 10);
}

#[test]
fn price_alone_never_drops_an_equally_trusted_bid() {
    let job = spec(100).id().unwrap();
    // Ten times the price weighs a quarter: still in the pool, so it wins now and then.
    let bids = vec![bid(job, 1, 100), bid(job, 2, 100), bid(job, 3, 1000)];
    let two = wins(&bids, &ReputationTable::default(), 2, 300);
    assert!(two.get(&node(3)).copied().unwrap_or(0) > 10, "{two:?}");
}
