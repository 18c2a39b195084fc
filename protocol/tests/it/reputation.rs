//! Reputation is a deterministic function of verdict evidence.

use cairn_protocol::adverts::Tier;
use cairn_protocol::messages::Evidence;
use cairn_protocol::reputation::Applied;
use cairn_protocol::reputation::{ReputationParams, ReputationTable};
use cairn_protocol::*;

use crate::fixtures::{evidence, node};

fn vid(i: u32) -> VerdictId {
    VerdictId::of(&i.to_le_bytes())
}

#[test]
fn agreeing_earns_little_and_dissent_costs_much_more() {
    let p = ReputationParams::default();
    let mut table = ReputationTable::new(p);
    table.apply(vid(0), &evidence(&[1, 2], &[3], &[4]));
    assert_eq!(table.standing(&node(1)).score, p.initial + p.agree);
    assert_eq!(table.standing(&node(3)).score, p.initial + p.dissent);
    assert_eq!(table.standing(&node(4)).score, p.initial + p.timeout);
    // One caught lie outweighs many honest jobs; a timeout sits in between.
    assert!(-p.dissent >= 20 * p.agree);
    assert!(p.dissent < p.timeout && p.timeout < 0);
    assert!(table.trust(&node(3)) < table.trust(&node(4)));
    assert!(table.trust(&node(4)) < table.trust(&node(1)));
}

#[test]
fn a_verdict_applies_once() {
    let mut table = ReputationTable::default();
    let once = evidence(&[1], &[2], &[]);
    assert!(table.apply(vid(1), &once).changed());
    assert_eq!(table.apply(vid(1), &once), Applied::Duplicate);
    assert_eq!(table.standing(&node(1)).agreed, 1);
}

#[test]
fn every_order_of_the_same_verdicts_gives_the_same_table() {
    let verdicts: Vec<(VerdictId, Evidence)> = (0..20u32)
        .map(|i| {
            let a = (i % 5) as u8 + 1;
            (
                vid(i),
                evidence(&[a, a + 5], &[(i % 3) as u8 + 20], &[(i % 2) as u8 + 30]),
            )
        })
        .collect();
    let mut forward = ReputationTable::default();
    let mut backward = ReputationTable::default();
    for (id, e) in &verdicts {
        forward.apply(*id, e);
    }
    for (id, e) in verdicts.iter().rev() {
        backward.apply(*id, e);
        backward.apply(*id, e); // a repeat changes nothing either
    }
    assert_eq!(forward.leaves(), backward.leaves());
}

#[test]
fn new_identities_start_low_and_on_probation() {
    let p = ReputationParams::default();
    let mut table = ReputationTable::new(p);
    assert!(table.on_probation(&node(1)));
    for i in 0..p.probation_jobs as u32 {
        assert!(table.on_probation(&node(1)));
        table.apply(vid(i), &evidence(&[1], &[], &[]));
    }
    assert!(!table.on_probation(&node(1)));
    // A fresh identity is trusted less than an established one.
    assert!(table.trust(&node(2)) < table.trust(&node(1)));
    // One dissent puts an established node back on probation.
    table.apply(vid(1000), &evidence(&[], &[1], &[]));
    assert!(table.on_probation(&node(1)));
}

#[test]
fn scores_stay_within_bounds() {
    let p = ReputationParams::default();
    let mut table = ReputationTable::new(p);
    for i in 0..100 {
        table.apply(vid(i), &evidence(&[], &[1], &[]));
    }
    assert_eq!(table.standing(&node(1)).score, p.min);
    assert_eq!(table.standing(&node(1)).dissented, 100);
}

#[test]
fn a_table_rebuilt_from_its_leaves_gives_the_same_leaves_after_more_verdicts() {
    let p = ReputationParams::default();
    let mut original = ReputationTable::new(p);
    for i in 0..40u32 {
        let a = (i % 4) as u8 + 1;
        original.apply(vid(i), &evidence(&[a], &[(i % 3) as u8 + 10], &[20]));
    }
    let mut rebuilt = ReputationTable::from_leaves(p, &original.leaves());
    assert_eq!(rebuilt.leaves(), original.leaves());
    // Later verdicts change both tables alike.
    for i in 40..60u32 {
        let e = evidence(&[1, 10], &[11], &[(i % 2) as u8 + 20]);
        original.apply(vid(i), &e);
        rebuilt.apply(vid(i), &e);
    }
    assert_eq!(rebuilt.leaves(), original.leaves());
    assert!(rebuilt.applied_ids().len() == 20);
}

#[test]
fn trust_roots_are_established_from_genesis() {
    let table = ReputationTable::default();
    assert!(!table.has_roots() && !table.is_root(&node(1)));
    assert!(table.on_probation(&node(1)));

    let table = ReputationTable::default().with_roots([node(1), node(2)]);
    assert!(table.has_roots());
    assert!(table.is_root(&node(1)) && table.is_root(&node(2)));
    assert!(!table.is_root(&node(3)));
    assert!(
        !table.on_probation(&node(1)),
        "a root needs no track record"
    );
    assert!(table.on_probation(&node(3)), "anyone else still does");
    assert_eq!(Tier::of(&table, &node(1)), Tier::Root);

    // A root caught on the wrong side of a verdict is on probation like anyone: genesis
    // standing is not a licence to cheat.
    let mut caught = table.clone();
    let evidence = Evidence {
        requester: node(2),
        ..evidence(&[3, 4, 5], &[1], &[])
    };
    caught.apply(VerdictId::of(b"caught"), &evidence);
    assert!(caught.standing(&node(1)).score < 0);
    assert!(caught.on_probation(&node(1)));
    assert_eq!(Tier::of(&caught, &node(1)), Tier::Probation);
    assert!(
        caught.is_root(&node(1)),
        "its verdicts as a requester still count"
    );

    let leaves = table.leaves();
    let adopted = ReputationTable::from_leaves(ReputationParams::default(), &leaves);
    assert!(
        !adopted.has_roots(),
        "roots come from the spec, not the leaves"
    );
}

/// Evidence of a job requested by `requester`.
fn requested_by(requester: u8, agreeing: &[u8], dissenting: &[u8]) -> Evidence {
    Evidence {
        requester: node(requester),
        ..evidence(agreeing, dissenting, &[])
    }
}

#[test]
fn identities_outside_the_roots_cannot_mint_reputation_for_each_other() {
    // C1: ten Sybils run real jobs for each other; with roots named, none of it counts.
    let p = ReputationParams::default();
    let mut table = ReputationTable::new(p).with_roots([node(1)]);
    for i in 0..1_000u32 {
        let requester = 10 + (i % 10) as u8;
        let provider = 10 + ((i + 1) % 10) as u8;
        let applied = table.apply(vid(i), &requested_by(requester, &[provider], &[]));
        assert_eq!(applied, Applied::NoStanding);
    }
    for sybil in 10..20 {
        assert_eq!(table.standing(&node(sybil)).score, p.initial);
        assert!(table.on_probation(&node(sybil)));
    }
    // Nor can they blame anyone.
    table.apply(vid(5_000), &requested_by(10, &[11], &[2]));
    assert_eq!(table.standing(&node(2)).score, p.initial);
    // A root's verdicts count.
    assert!(
        table
            .apply(vid(6_000), &requested_by(1, &[2], &[]))
            .changed()
    );
    assert_eq!(table.standing(&node(2)).score, p.initial + p.agree);
}

#[test]
fn a_vouching_requester_cannot_lift_anyone_to_vouching() {
    let p = ReputationParams::default();
    let mut table = ReputationTable::new(p).with_roots([node(1)]);
    // Node 2 earns standing by work for the root.
    for i in 0..p.vouch_min as u32 {
        table.apply(vid(i), &requested_by(1, &[2], &[]));
    }
    assert!(table.standing(&node(2)).score >= p.vouch_min);
    // Node 2 now vouches: its verdicts credit node 3, but never past `sponsored_max`.
    for i in 0..500u32 {
        table.apply(vid(10_000 + i), &requested_by(2, &[3], &[]));
    }
    assert_eq!(table.standing(&node(3)).score, p.sponsored_max);
    assert!(p.sponsored_max < p.vouch_min);
    // So node 3's own verdicts count for nothing.
    let applied = table.apply(vid(20_000), &requested_by(3, &[4], &[]));
    assert_eq!(applied, Applied::NoStanding);
    // A voucher's blame counts in full.
    table.apply(vid(30_000), &requested_by(2, &[5, 6], &[3]));
    assert_eq!(table.standing(&node(3)).score, p.sponsored_max + p.dissent);
}

#[test]
fn one_verdict_per_job_and_a_second_one_costs_the_requester() {
    let p = ReputationParams::default();
    let mut table = ReputationTable::new(p).with_roots([node(1)]);
    let first = requested_by(1, &[2], &[]);
    assert!(table.apply(vid(1), &first).changed());
    // Another verdict for the same job: it moves nothing for the providers it names, and the
    // requester pays for equivocating, once.
    let second = Evidence {
        agreeing: vec![node(3)],
        dissenting: vec![node(2)],
        ..first.clone()
    };
    assert_eq!(
        table.apply(vid(2), &second),
        Applied::Equivocation {
            debited: -p.equivocation
        }
    );
    assert_eq!(
        table.apply(vid(3), &second),
        Applied::Equivocation { debited: 0 }
    );
    assert_eq!(table.standing(&node(2)).score, p.initial + p.agree);
    assert_eq!(table.standing(&node(3)).score, p.initial);
    assert_eq!(table.standing(&node(1)).score, p.initial + p.equivocation);
    // Even once the applied-id set is forgotten (a checkpoint covered it), the job is known.
    table.forget_applied();
    assert_eq!(table.apply(vid(1), &first), Applied::Duplicate);
    // After its last valid verdict time the job is forgotten.
    table.prune_jobs(Timestamp(first.expires_at.0 + 1));
    assert_eq!(table.tracked_jobs(), 0);
}
