//! The advert book refuses expired, replayed and implausible adverts.

use cairn_protocol::adverts::{AdvertBook, AdvertBookConfig, AdvertRejection, Inserted};
use cairn_protocol::*;

use crate::fixtures::{advert, h100, keypair, node};

fn signed(a: CapabilityAdvert, seed: u8) -> Verified<CapabilityAdvert> {
    Verified::sign(a, &keypair(seed)).unwrap()
}

#[test]
fn newer_sequence_replaces_and_replays_are_refused() {
    let mut book = AdvertBook::new(AdvertBookConfig::default());
    let now = Timestamp(1_000);
    assert_eq!(
        book.insert(signed(advert(1, 5, 900, 60_000), 1), now),
        Ok(Inserted::New)
    );
    assert_eq!(
        book.insert(signed(advert(1, 6, 950, 60_000), 1), now),
        Ok(Inserted::Updated)
    );
    assert_eq!(
        book.insert(signed(advert(1, 6, 950, 60_000), 1), now),
        Err(AdvertRejection::Replayed {
            sequence: 6,
            latest: 6
        })
    );
    assert_eq!(
        book.insert(signed(advert(1, 2, 950, 60_000), 1), now),
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
        book.insert(signed(advert(1, 1, 0, 10_000_000), 1), now),
        Err(AdvertRejection::Expired { .. })
    ));
    assert!(matches!(
        book.insert(signed(advert(1, 1, 10_100_000, 10_200_000), 1), now),
        Err(AdvertRejection::FromTheFuture { .. })
    ));
    assert!(matches!(
        book.insert(signed(advert(1, 1, 9_000_000, 99_000_000), 1), now),
        Err(AdvertRejection::LifetimeTooLong { .. })
    ));
    assert!(book.is_empty());
}

#[test]
fn adverts_expire_from_the_book() {
    let mut book = AdvertBook::new(AdvertBookConfig::default());
    book.insert(signed(advert(1, 1, 0, 5_000), 1), Timestamp(0))
        .unwrap();
    book.insert(signed(advert(2, 1, 0, 9_000), 2), Timestamp(0))
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
fn a_full_book_evicts_the_soonest_expiring_or_refuses() {
    let config = AdvertBookConfig {
        max_entries: 2,
        ..AdvertBookConfig::default()
    };
    let mut book = AdvertBook::new(config);
    let now = Timestamp(0);
    book.insert(signed(advert(1, 1, 0, 5_000), 1), now).unwrap();
    book.insert(signed(advert(2, 1, 0, 9_000), 2), now).unwrap();
    book.insert(signed(advert(3, 1, 0, 8_000), 3), now).unwrap();
    assert!(book.get(&node(1)).is_none(), "soonest-expiring evicted");
    assert_eq!(
        book.insert(signed(advert(4, 1, 0, 1_000), 4), now),
        Err(AdvertRejection::BookFull { max: 2 })
    );
}

#[test]
fn requirements_select_matching_gpus() {
    let mut book = AdvertBook::new(AdvertBookConfig::default());
    let mut gpu = advert(1, 1, 0, 60_000);
    gpu.gpus = vec![h100()];
    book.insert(signed(gpu, 1), Timestamp(0)).unwrap();
    book.insert(signed(advert(2, 1, 0, 60_000), 2), Timestamp(0))
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
