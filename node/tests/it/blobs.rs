//! Blobs move between nodes by hash and are verified on arrival.

use std::time::Duration;

use cairn_node::market::FaultInjection;
use cairn_node::net::{BlobRefusal, BlobResponse};
use cairn_node::{Node, NodeError, testing};
use cairn_protocol::BlobHash;
use libp2p::PeerId;

use crate::harness::{cluster, cpu_only, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_put_on_one_node_is_fetched_and_verified_by_another() {
    let c = cluster("blobs-fetch", vec![cpu_only(), cpu_only(), cpu_only()]).await;
    let (a, b) = (c.nodes[1].node(), c.nodes[2].node());
    let data: Vec<u8> = (0..300_000u32).flat_map(|i| i.to_le_bytes()).collect();
    wait_for("peers", Duration::from_secs(20), || async {
        (a.adverts().count() == 3).then_some(())
    })
    .await;
    let hash = a.blobs().put(data.clone()).await.unwrap();
    assert_eq!(hash, BlobHash::of(&data));
    assert!(!b.blobs().local().contains(&hash).unwrap());
    let fetched = b.blobs().get(hash).await.unwrap();
    assert_eq!(fetched, data);
    assert!(
        b.blobs().local().contains(&hash).unwrap(),
        "the fetched blob is stored"
    );
    assert_eq!(
        b.metrics()
            .blobs_fetched
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_blob_is_refused() {
    let c = cluster("blobs-corrupt", vec![cpu_only(), cpu_only(), cpu_only()]).await;
    let (holder, fetcher) = (c.nodes[1].node(), c.nodes[2].node());
    wait_for("peers", Duration::from_secs(20), || async {
        (holder.adverts().count() == 3).then_some(())
    })
    .await;
    let data = b"the real bytes".to_vec();
    let hash = holder.blobs().put(data).await.unwrap();
    // The holder's disk rots: the stored bytes no longer match their hash.
    std::fs::write(holder.blobs().local().file_of(&hash), b"rotten bytes!!").unwrap();

    let err = fetcher.blobs().fetch(hash).await.unwrap_err();
    assert!(matches!(err, NodeError::BlobUnavailable { .. }), "{err}");
    assert!(err.to_string().contains("corrupted"), "{err}");
    assert_eq!(fetcher.metrics().rejections("blob", "hash_mismatch"), 1);
    assert!(
        !fetcher.blobs().local().contains(&hash).unwrap(),
        "nothing unverified is stored"
    );
    // The fetcher keeps working: another blob still arrives.
    let other = holder.blobs().put(b"fine".to_vec()).await.unwrap();
    assert_eq!(fetcher.blobs().get(other).await.unwrap(), b"fine");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blob_requests_past_the_serving_limits_are_refused_as_busy_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let spec = testing::spec("blobs-busy");
    let mut options = testing::options(dir.path(), &spec, cpu_only(), vec![], FaultInjection::None);
    options.config.blob_serve_per_peer = 1;
    options.config.blob_serve_total = 2;
    let running = Node::start(options).await.unwrap();
    let node = running.node();
    let hash = node.blobs().store(vec![7; 200_000]).await.unwrap();
    let (a, b, c) = (PeerId::random(), PeerId::random(), PeerId::random());

    // An answer being streamed holds its place until it is dropped (its last byte written).
    let first = node.blobs().respond(a, hash).await;
    assert!(
        matches!(first, BlobResponse::Stream(ref s) if s.len() == 200_000),
        "{first:?}"
    );
    let again = node.blobs().respond(a, hash).await;
    assert!(
        matches!(again, BlobResponse::Refused(BlobRefusal::Busy)),
        "{again:?}"
    );
    let other = node.blobs().respond(b, hash).await;
    assert!(matches!(other, BlobResponse::Stream(_)), "{other:?}");
    let third = node.blobs().respond(c, hash).await;
    assert!(
        matches!(third, BlobResponse::Refused(BlobRefusal::Busy)),
        "{third:?}"
    );
    let metrics = node.metrics();
    assert_eq!(metrics.rejections("blob_request", "busy_peer"), 1);
    assert_eq!(metrics.rejections("blob_request", "busy_total"), 1);

    // Once a transfer ends, its peer is served again.
    drop(first);
    let later = node.blobs().respond(a, hash).await;
    assert!(matches!(later, BlobResponse::Stream(_)), "{later:?}");
}
