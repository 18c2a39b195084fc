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

/// How often each bidder wins over `rounds` seeds.
fn wins(
    bids: &[Bid],
    reputation: &ReputationTable,
    count: usize,
    rounds: u32,
) -> BTreeMap<NodeId, u32> {
    let spec = spec(100);
    let auction = Auction {
        job: bids[0].job,
        spec: &spec,
        reputation,
        params: SelectionParams::default(),
    };
    let mut wins = BTreeMap::new();
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

#[test]
fn more_reputable_bids_win_more_often() {
    let job = spec(100).id().unwrap();
    let mut reputation = ReputationTable::new(ReputationParams::default());
    for i in 0..100u32 {
        let evidence = Evidence {
            job,
            agreeing: vec![node(1)],
            dissenting: vec![],
            timed_out: vec![],
        };
        reputation.apply(VerdictId::of(&i.to_le_bytes()), &evidence);
    }
    let bids = vec![bid(job, 1, 100), bid(job, 2, 100), bid(job, 3, 100)];
    let wins = wins(&bids, &reputation, 1, 2000);
    assert!(wins[&node(1)] > wins[&node(2)] * 3 / 2, "{wins:?}");
    assert!(wins[&node(1)] > wins[&node(3)] * 3 / 2, "{wins:?}");
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
    // Peer 3 asks ten times the price: below the pool ratio, so it never wins one of two
    // replicas while two comparable bids exist, but fills a third.
    let bids = vec![bid(job, 1, 100), bid(job, 2, 100), bid(job, 3, 1000)];
    let two = wins(&bids, &ReputationTable::default(), 2, 300);
    assert_eq!(two.get(&node(3)), None, "{two:?}");
    let three = wins(&bids, &ReputationTable::default(), 3, 10);
    assert_eq!(three[&node(3)], 10);
}
