//! The advert book refuses expired, replayed and implausible adverts, and keeps room for
//! established providers however many fresh identities advertise.

use cairn_protocol::adverts::{
    AddressRange, AdvertBook, AdvertBookConfig, AdvertRejection, Inserted, Tier,
};
use cairn_protocol::reputation::ReputationTable;
use cairn_protocol::*;

use crate::fixtures::{NET, advert, h100, keypair, node};

fn signed(a: CapabilityAdvert, seed: u8) -> Verified<CapabilityAdvert> {
    Verified::sign(a, &keypair(seed), &NET).unwrap()
}

fn probation(_: &NodeId) -> Tier {
    Tier::Probation
}

fn established(_: &NodeId) -> Tier {
    Tier::Established
}

/// An advert of `peer` reachable at `ip`, issued at `issued`, expiring at `expires`.
fn from(peer: u8, ip: &str, issued: u64, expires: u64) -> Verified<CapabilityAdvert> {
    let mut a = advert(peer, 1, issued, expires);
    a.addresses = vec![format!("/ip4/{ip}/tcp/4001")];
    signed(a, peer)
}

#[test]
fn newer_sequence_replaces_and_replays_are_refused() {
    let mut book = AdvertBook::new(AdvertBookConfig::default());
    let now = Timestamp(1_000);
    assert_eq!(
        book.insert(signed(advert(1, 5, 900, 60_000), 1), probation, now),
        Ok(Inserted::New)
    );
    assert_eq!(
        book.insert(signed(advert(1, 6, 950, 60_000), 1), probation, now),
        Ok(Inserted::Updated)
    );
    assert_eq!(
        book.insert(signed(advert(1, 6, 950, 60_000), 1), probation, now),
        Err(AdvertRejection::Replayed {
            sequence: 6,
            latest: 6
        })
    );
    assert_eq!(
        book.insert(signed(advert(1, 2, 950, 60_000), 1), probation, now),
        Err(AdvertRejection::Replayed {
            sequence: 2,
            latest: 6
        })
    );
    assert_eq!(book.get(&node(1)).unwrap().message().sequence, 6);
}

#[test]
fn expired_future_and_long_lived_adverts_are_refused() {
    let mut book = AdvertBook::new(AdvertBookConfig::default());
    let now = Timestamp(10_000_000);
    assert!(matches!(
        book.insert(signed(advert(1, 1, 0, 10_000_000), 1), probation, now),
        Err(AdvertRejection::Expired { .. })
    ));
    assert!(matches!(
        book.insert(
            signed(advert(1, 1, 10_100_000, 10_200_000), 1),
            probation,
            now
        ),
        Err(AdvertRejection::FromTheFuture { .. })
    ));
    assert!(matches!(
        book.insert(
            signed(advert(1, 1, 9_000_000, 99_000_000), 1),
            probation,
            now
        ),
        Err(AdvertRejection::LifetimeTooLong { .. })
    ));
    assert!(book.is_empty());
}

#[test]
fn adverts_expire_from_the_book() {
    let mut book = AdvertBook::new(AdvertBookConfig::default());
    book.insert(signed(advert(1, 1, 0, 5_000), 1), probation, Timestamp(0))
        .unwrap();
    book.insert(signed(advert(2, 1, 0, 9_000), 2), probation, Timestamp(0))
        .unwrap();
    let reqs = Requirements::default();
    assert_eq!(
        book.matching(&reqs, Timestamp(6_000)).len(),
        1,
        "expired adverts never match"
    );
    assert_eq!(book.prune(Timestamp(6_000)), 1);
    assert_eq!(book.len(), 1);
}

#[test]
fn a_book_full_of_established_providers_evicts_the_soonest_expiring_or_refuses() {
    let config = AdvertBookConfig {
        max_entries: 2,
        ..AdvertBookConfig::default()
    };
    let mut book = AdvertBook::new(config);
    let now = Timestamp(0);
    let mut insert = |peer: u8, expires: u64| {
        book.insert(signed(advert(peer, 1, 0, expires), peer), established, now)
    };
    insert(1, 5_000).unwrap();
    insert(2, 9_000).unwrap();
    insert(3, 8_000).unwrap();
    assert_eq!(insert(4, 1_000), Err(AdvertRejection::BookFull { max: 2 }));
    assert!(book.get(&node(1)).is_none(), "soonest-expiring evicted");
    assert_eq!(book.len(), 2);
}

#[test]
fn sybil_adverts_never_evict_established_ones() {
    // Room for 20; ten established providers advertise for the usual ten minutes.
    let config = AdvertBookConfig {
        max_entries: 20,
        ..AdvertBookConfig::default()
    };
    let mut book = AdvertBook::new(config);
    for peer in 1..=10 {
        let ip = format!("192.0.2.{peer}");
        book.insert(from(peer, &ip, 0, 600_000), established, Timestamp(0))
            .unwrap();
    }
    // Then 200 fresh identities, ten times the book, each from its own /24 so that only the
    // tiers protect the honest adverts: price 1, a big GPU, the longest lifetime allowed.
    let mut admitted = 0;
    for (i, peer) in (30..230u8).enumerate() {
        let now = 1_000 + i as u64;
        let mut sybil = advert(peer, 1, now, now + 3_600_000);
        sybil.addresses = vec![format!("/ip4/10.{i}.0.1/tcp/4001")];
        sybil.price = PriceSchedule {
            per_mega_fuel: 1,
            per_gpu_second: 1,
            minimum: 1,
        };
        sybil.gpus = vec![h100()];
        if book
            .insert(signed(sybil, peer), probation, Timestamp(now))
            .is_ok()
        {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 200, "each newer Sybil replaces an older one");
    for peer in 1..=10 {
        assert!(
            book.get(&node(peer)).is_some(),
            "established {peer} evicted"
        );
    }
    assert_eq!(book.probationers(), 10, "half the book at most");
    assert_eq!(book.len(), 20);
    // The established providers' next adverts still get in.
    let next = signed(advert(1, 2, 2_000, 602_000), 1);
    assert_eq!(
        book.insert(next, established, Timestamp(2_000)),
        Ok(Inserted::Updated)
    );
}

#[test]
fn established_providers_replace_probationers_in_a_full_book() {
    let config = AdvertBookConfig {
        max_entries: 4,
        ..AdvertBookConfig::default()
    };
    let mut book = AdvertBook::new(config);
    book.insert(from(1, "10.0.1.1", 100, 600_000), probation, Timestamp(100))
        .unwrap();
    book.insert(from(2, "10.0.2.1", 200, 600_000), probation, Timestamp(200))
        .unwrap();
    book.insert(from(3, "10.0.3.1", 0, 1_000), established, Timestamp(300))
        .unwrap();
    book.insert(from(4, "10.0.4.1", 0, 1_000), established, Timestamp(300))
        .unwrap();
    assert_eq!(book.len(), 4);
    // A fifth established provider takes the place of the probationer issued first, though
    // both probationers' adverts outlive its own.
    book.insert(from(5, "10.0.5.1", 300, 900), established, Timestamp(300))
        .unwrap();
    assert!(book.get(&node(1)).is_none());
    assert!(book.get(&node(2)).is_some());
    assert_eq!(book.probationers(), 1);
}

#[test]
fn probationers_hold_at_most_their_share_and_the_oldest_makes_way() {
    let config = AdvertBookConfig {
        max_entries: 10,
        probation_share_percent: 50,
        ..AdvertBookConfig::default()
    };
    assert_eq!(config.probation_capacity(), 5);
    let mut book = AdvertBook::new(config);
    for peer in 1..=5u8 {
        let ip = format!("10.0.{peer}.1");
        let issued = u64::from(peer) * 1_000;
        book.insert(
            from(peer, &ip, issued, issued + 600_000),
            probation,
            Timestamp(10_000),
        )
        .unwrap();
    }
    // The book has room, but not for a sixth probationer issued before all of them...
    assert_eq!(
        book.insert(
            from(6, "10.0.6.1", 500, 3_600_000),
            probation,
            Timestamp(10_000)
        ),
        Err(AdvertRejection::ProbationFull { max: 5 })
    );
    // ...while a newer one replaces the one issued first, not the one that expires first:
    // a long claimed lifetime buys nothing.
    book.insert(
        from(7, "10.0.7.1", 9_000, 10_000 + 60_000),
        probation,
        Timestamp(10_000),
    )
    .unwrap();
    assert!(book.get(&node(1)).is_none(), "issued first");
    assert_eq!(book.probationers(), 5);
    // A clock set ahead does not make an advert newer than those that arrive after it.
    book.insert(
        from(8, "10.0.8.1", 40_000, 100_000),
        probation,
        Timestamp(11_000),
    )
    .unwrap();
    for peer in 9..=13u8 {
        let ip = format!("10.0.{peer}.1");
        let now = 12_000 + u64::from(peer);
        book.insert(from(peer, &ip, now, 100_000), probation, Timestamp(now))
            .unwrap();
    }
    assert!(
        book.get(&node(8)).is_none(),
        "counted as issued when it arrived"
    );
    assert!((9..=13).all(|p| book.get(&node(p)).is_some()));
    // The other half stays free for established providers.
    for peer in 20..25u8 {
        book.insert(
            from(peer, "10.1.0.1", 0, 600_000),
            established,
            Timestamp(12_000),
        )
        .unwrap();
    }
    assert_eq!(book.len(), 10);
}

#[test]
fn one_address_range_holds_few_probationers() {
    let config = AdvertBookConfig {
        max_probationers_per_range: 3,
        ..AdvertBookConfig::default()
    };
    let mut book = AdvertBook::new(config);
    let now = Timestamp(0);
    for peer in 1..=3 {
        let ip = format!("203.0.113.{peer}");
        book.insert(from(peer, &ip, 0, 60_000), probation, now)
            .unwrap();
    }
    assert_eq!(
        book.insert(from(4, "203.0.113.200", 0, 60_000), probation, now),
        Err(AdvertRejection::RangeFull {
            range: AddressRange::V4([203, 0, 113]),
            max: 3
        })
    );
    // The next /24 has room; established providers and roots are never capped by range.
    book.insert(from(5, "203.0.114.1", 0, 60_000), probation, now)
        .unwrap();
    book.insert(from(6, "203.0.113.9", 0, 60_000), established, now)
        .unwrap();
    book.insert(from(7, "203.0.113.10", 0, 60_000), |_| Tier::Root, now)
        .unwrap();
    // A probationer's newer advert in its own full range is an update, not a newcomer.
    let mut update = advert(1, 2, 0, 60_000);
    update.addresses = vec!["/ip4/203.0.113.1/tcp/4001".into()];
    assert_eq!(
        book.insert(signed(update, 1), probation, now),
        Ok(Inserted::Updated)
    );
    // Adverts that name no IP share one range.
    for peer in 10..=13u8 {
        let mut a = advert(peer, 1, 0, 60_000);
        a.addresses = vec!["/dns4/example.org/tcp/4001".into()];
        let result = book.insert(signed(a, peer), probation, now);
        if peer < 13 {
            assert_eq!(result, Ok(Inserted::New));
        } else {
            assert!(matches!(
                result,
                Err(AdvertRejection::RangeFull {
                    range: AddressRange::Unknown,
                    ..
                })
            ));
        }
    }
}

#[test]
fn tiers_come_from_the_reputation_table_and_follow_it() {
    let table = ReputationTable::default().with_roots([node(1)]);
    assert_eq!(Tier::of(&table, &node(1)), Tier::Root);
    assert_eq!(Tier::of(&table, &node(2)), Tier::Probation);
    let mut book = AdvertBook::new(AdvertBookConfig::default());
    let now = Timestamp(0);
    for peer in 1..=2 {
        book.insert(
            from(peer, "10.0.0.1", 0, 60_000),
            |p| Tier::of(&table, p),
            now,
        )
        .unwrap();
    }
    assert_eq!(book.tier(&node(1)), Some(Tier::Root));
    assert_eq!(book.probationers(), 1);
    // Node 2 leaves probation: the book follows once told.
    let table = table.with_roots([node(2)]);
    assert_eq!(book.retier(|p| Tier::of(&table, p)), 1);
    assert_eq!(book.tier(&node(2)), Some(Tier::Root));
    assert_eq!(book.probationers(), 0);
}

#[test]
fn requirements_select_matching_gpus() {
    let mut book = AdvertBook::new(AdvertBookConfig::default());
    let mut gpu = advert(1, 1, 0, 60_000);
    gpu.gpus = vec![h100()];
    book.insert(signed(gpu, 1), probation, Timestamp(0))
        .unwrap();
    book.insert(signed(advert(2, 1, 0, 60_000), 2), probation, Timestamp(0))
        .unwrap();
    let now = Timestamp(1);

    let any = Requirements::default();
    assert_eq!(book.matching(&any, now).len(), 2);
    let needs = |vram: u64, cc: Option<(u8, u8)>| Requirements {
        gpu: Some(GpuRequirement {
            min_vram_bytes: vram,
            min_compute_capability: cc.map(|(major, minor)| ComputeCapability { major, minor }),
        }),
        ..Requirements::default()
    };
    let found = book.matching(&needs(80_000_000_000, Some((8, 0))), now);
    assert_eq!(
        found.iter().map(|a| a.peer).collect::<Vec<_>>(),
        vec![node(1)]
    );
    assert!(book.matching(&needs(100_000_000_000, None), now).is_empty());
    assert!(book.matching(&needs(0, Some((10, 0))), now).is_empty());
}

#[test]
fn capability_classes_name_gpus_and_vram_buckets() {
    let mut a = advert(1, 1, 0, 1);
    assert_eq!(a.classes(), vec!["cpu"]);
    a.gpus = vec![h100()];
    let classes = a.classes();
    for c in ["cpu", "gpu", "gpu:sm90", "gpu:vram>=80GB", "gpu:vram>=8GB"] {
        assert!(
            classes.contains(&c.to_string()),
            "{c} missing from {classes:?}"
        );
    }
}

/// The tier of `peer` in the random workload below: a quarter established, a quarter roots,
/// half on probation; each peer keeps its tier, as between two checkpoints.
fn tier_of_peer(peer: u8) -> Tier {
    match peer % 4 {
        0 => Tier::Established,
        1 => Tier::Root,
        _ => Tier::Probation,
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

    /// Whatever arrives, the caps hold, the book's indexes agree with what it holds, and a
    /// probationer's advert never displaces an established or root one.
    #[test]
    fn the_caps_hold_under_any_arrivals(
        steps in proptest::collection::vec((1..=24u8, 0..4u8, 0..400_000u64), 1..60),
    ) {
        let config = AdvertBookConfig {
            max_entries: 8,
            probation_share_percent: 50,
            max_probationers_per_range: 2,
            ..AdvertBookConfig::default()
        };
        let mut book = AdvertBook::new(config);
        let mut now = 0;
        let mut sequence = 0;
        for (peer, range, wait) in steps {
            now += wait;
            sequence += 1;
            let tier = tier_of_peer(peer);
            let mut a = advert(peer, sequence, now, now + 600_000);
            a.addresses = vec![format!("/ip4/10.0.{range}.{peer}/tcp/4001")];
            let before: Vec<NodeId> = book
                .all()
                .iter()
                .filter(|a| book.tier(&a.peer) != Some(Tier::Probation) && a.expires_at > Timestamp(now))
                .map(|a| a.peer)
                .collect();
            let admitted = book.insert(signed(a, peer), |_| tier, Timestamp(now)).is_ok();
            if tier == Tier::Probation {
                for held in &before {
                    proptest::prop_assert!(book.get(held).is_some(), "a probationer evicted {:?}", held);
                }
            }
            proptest::prop_assert!(!admitted || book.get(&node(peer)).is_some());
            let held = book.all();
            proptest::prop_assert!(held.len() <= 8);
            let probationers: Vec<_> = held
                .iter()
                .filter(|a| book.tier(&a.peer) == Some(Tier::Probation))
                .collect();
            proptest::prop_assert_eq!(probationers.len(), book.probationers());
            proptest::prop_assert!(probationers.len() <= 4);
            for r in 0..4u8 {
                let range = AddressRange::V4([10, 0, r]);
                let in_range = probationers
                    .iter()
                    .filter(|a| AddressRange::of(&a.addresses) == range)
                    .count();
                proptest::prop_assert!(in_range <= 2, "{} in {}", in_range, range);
            }
        }
        book.prune(Timestamp(now + 600_000));
        proptest::prop_assert!(book.is_empty());
        proptest::prop_assert_eq!(book.probationers(), 0);
    }
}
