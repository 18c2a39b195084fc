//! Network benchmarks of cairn-node, on loopback, printed as a report:
//!
//! - advert propagation: time from a node publishing a new advert until every node of a
//!   20-node in-process network holds it (after the mesh has formed);
//! - blob transfer: fetching a 1 MiB and a 64 MiB blob from another node (DHT lookup,
//!   transfer, blake3 check, durable store), next to a plain TCP copy of the same bytes.
//!
//! Run with `cargo bench -p cairn-node --bench network`.

use std::time::{Duration, Instant};

use cairn_node::testing;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const NODES: usize = 20;
const ADVERT_ROUNDS: usize = 40;
const BLOB_ROUNDS: usize = 5;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        advert_propagation().await;
        blob_transfer().await;
    });
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn advert_propagation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hardware = (0..NODES).map(|_| testing::cpu_only()).collect();
    let nodes = testing::cluster(dir.path(), "bench-adverts", hardware)
        .await
        .expect("cluster");
    let formed = Instant::now();
    let all = testing::wait_for(Duration::from_secs(120), || async {
        nodes
            .iter()
            .all(|n| n.node().adverts().count() == NODES)
            .then_some(())
    })
    .await;
    assert!(all.is_some(), "adverts did not reach every node");
    println!(
        "advert coverage: all {NODES} nodes hold all {NODES} adverts after {:.0} ms",
        ms(formed.elapsed())
    );
    tokio::time::sleep(Duration::from_secs(2)).await; // let the mesh settle

    let mut times = Vec::new();
    for round in 0..ADVERT_ROUNDS {
        let publisher = nodes[round % NODES].node();
        let id = publisher.node_id();
        let start = Instant::now();
        publisher.adverts().publish().await.expect("publish");
        let sequence = publisher.adverts().of(&id).expect("own advert").sequence;
        let everywhere = testing::wait_for(Duration::from_secs(10), || async {
            let held = |n: &cairn_node::RunningNode| {
                n.node()
                    .adverts()
                    .of(&id)
                    .is_some_and(|a| a.sequence >= sequence)
            };
            nodes.iter().all(held).then_some(())
        })
        .await;
        assert!(
            everywhere.is_some(),
            "round {round}: advert did not reach every node"
        );
        times.push(start.elapsed());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    times.sort();
    println!(
        "advert propagation to all {NODES} nodes ({ADVERT_ROUNDS} rounds): p50 {:.1} ms, p90 {:.1} ms, max {:.1} ms",
        ms(percentile(&times, 0.5)),
        ms(percentile(&times, 0.9)),
        ms(times[times.len() - 1])
    );
}

fn data(size: usize, seed: u64) -> Vec<u8> {
    let mut out = vec![0u8; size];
    blake3::Hasher::new()
        .update(&seed.to_le_bytes())
        .finalize_xof()
        .fill(&mut out);
    out
}

async fn tcp_copy(bytes: &[u8]) -> Duration {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let len = bytes.len();
    let server = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.expect("accept");
        let mut received = Vec::new();
        socket.read_to_end(&mut received).await.expect("read");
        assert_eq!(received.len(), len);
    });
    let start = Instant::now();
    let mut client = tokio::net::TcpStream::connect(addr).await.expect("connect");
    client.write_all(bytes).await.expect("write");
    client.shutdown().await.expect("shutdown");
    server.await.expect("server");
    start.elapsed()
}

async fn blob_transfer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hardware = vec![testing::cpu_only(), testing::cpu_only()];
    let nodes = testing::cluster(dir.path(), "bench-blobs", hardware)
        .await
        .expect("cluster");
    let (a, b) = (nodes[0].node(), nodes[1].node());
    testing::wait_for(Duration::from_secs(30), || async {
        (b.adverts().count() == 2).then_some(())
    })
    .await;
    for size in [1 << 20, 64 << 20] {
        let (mut fetch, mut tcp, mut put) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..BLOB_ROUNDS {
            let bytes = data(size, (size + round) as u64);
            let start = Instant::now();
            let hash = a.blobs().put(bytes.clone()).await.expect("put");
            put.push(start.elapsed());
            let start = Instant::now();
            let fetched = b.blobs().fetch(hash).await.expect("fetch");
            fetch.push(start.elapsed());
            assert_eq!(fetched.len(), size);
            tcp.push(tcp_copy(&bytes).await);
        }
        fetch.sort();
        tcp.sort();
        put.sort();
        let mbps = |d: Duration| size as f64 / 1e6 / d.as_secs_f64();
        let (f, t) = (percentile(&fetch, 0.5), percentile(&tcp, 0.5));
        println!(
            "blob {:>2} MiB: fetch p50 {:.1} ms = {:.0} MB/s; plain TCP copy p50 {:.1} ms = {:.0} MB/s; ratio {:.2}",
            size >> 20,
            ms(f),
            mbps(f),
            ms(t),
            mbps(t),
            mbps(f) / mbps(t)
        );
        println!(
            "          of which a local durable store + DHT announce (put_blob) takes p50 {:.1} ms",
            ms(percentile(&put, 0.5))
        );
    }
}
