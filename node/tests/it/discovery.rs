//! Adverts spread to every node; invalid ones are rejected and counted; the DHT finds nodes by
//! capability class.

use std::collections::BTreeSet;
use std::time::Duration;

use cairn_node::market::FaultInjection;
use cairn_node::now;
use cairn_node::{Node, testing};
use cairn_protocol::{CapabilityAdvert, Envelope, NodeId, Requirements, Timestamp};

use crate::harness::{cluster, cpu_only, h100, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_learns_every_advert() {
    let c = cluster(
        "adverts-all",
        vec![cpu_only(), h100(), cpu_only(), h100(), cpu_only()],
    )
    .await;
    for (i, n) in c.nodes.iter().enumerate() {
        wait_for(
            &format!("node {i} to hold 5 adverts"),
            Duration::from_secs(30),
            || async { (n.node().adverts().count() == 5).then_some(()) },
        )
        .await;
    }
    // The adverts say what each node has: exactly the two H100 nodes match a GPU requirement.
    let gpu = Requirements {
        gpu: Some(cairn_protocol::GpuRequirement {
            min_vram_bytes: 80_000_000_000,
            min_compute_capability: None,
        }),
        ..Requirements::default()
    };
    let found: BTreeSet<NodeId> = c.nodes[0]
        .node()
        .adverts()
        .matching(&gpu)
        .iter()
        .map(|a| a.peer)
        .collect();
    let expected: BTreeSet<NodeId> = [1, 3]
        .iter()
        .map(|&i| c.nodes[i].node().node_id())
        .collect();
    assert_eq!(found, expected);
    assert!(
        c.nodes[2]
            .node()
            .adverts()
            .matching(&gpu)
            .iter()
            .all(|a| a.simulated_gpus)
    );
    // Every other node dialed the first one, which counts them as inbound; each later node
    // counts its own dials, and everyone's DHT routing table holds someone.
    let first = c.nodes[0].node().net().connection_stats().await.unwrap();
    assert!(first.inbound >= 4, "{first:?}");
    for n in &c.nodes[1..] {
        let stats = n.node().net().connection_stats().await.unwrap();
        assert!(stats.outbound >= 1 && stats.routing_table >= 1, "{stats:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dht_lookup_by_class_finds_exactly_that_class() {
    let c = cluster(
        "dht-class",
        vec![cpu_only(), h100(), cpu_only(), h100(), cpu_only()],
    )
    .await;
    let expected: BTreeSet<_> = [1, 3]
        .iter()
        .map(|&i| c.nodes[i].node().peer_id())
        .collect();
    let asker = c.nodes[4].node();
    for class in ["gpu", "gpu:sm90", "gpu:vram>=80GB"] {
        let found = wait_for(
            &format!("providers of {class}"),
            Duration::from_secs(30),
            || async {
                let found: BTreeSet<_> = asker
                    .adverts()
                    .lookup_class(class)
                    .await
                    .ok()?
                    .into_iter()
                    .collect();
                (found.len() >= expected.len()).then_some(found)
            },
        )
        .await;
        assert_eq!(found, expected, "{class}");
    }
    assert!(
        asker
            .adverts()
            .lookup_class("gpu:sm80")
            .await
            .unwrap()
            .is_empty()
    );
}

/// Publishes raw bytes on the advert topic from `from`.
async fn publish_raw(node: &cairn_node::Node, bytes: Vec<u8>) {
    node.net().publish(bytes).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_adverts_are_rejected_counted_and_penalised() {
    let c = cluster("adverts-bad", vec![cpu_only(), cpu_only()]).await;
    let (good, bad) = (c.nodes[0].node(), c.nodes[1].node());
    wait_for("both adverts", Duration::from_secs(30), || async {
        (good.adverts().count() == 2 && bad.adverts().count() == 2).then_some(())
    })
    .await;
    let key =
        cairn_node::identity::load_or_create(&bad.options().data_dir, bad.kv().as_ref(), None)
            .unwrap();
    let fresh = |sequence: u64, issued: Timestamp, expires: Timestamp| -> CapabilityAdvert {
        let mut a = bad.adverts().make_advert().unwrap().message().clone();
        a.sequence = sequence;
        a.issued_at = issued;
        a.expires_at = expires;
        a
    };
    let t = now();

    // A tampered payload: the signature no longer matches.
    let mut tampered =
        Envelope::seal(&fresh(t.0 + 10, t, t.plus_ms(60_000)), &key, bad.network()).unwrap();
    tampered.payload[3] ^= 0xff;
    publish_raw(bad, tampered.to_bytes().unwrap()).await;
    // Expired.
    let expired = fresh(t.0 + 20, Timestamp(t.0 - 120_000), Timestamp(t.0 - 60_000));
    publish_raw(
        bad,
        Envelope::seal(&expired, &key, bad.network())
            .unwrap()
            .to_bytes()
            .unwrap(),
    )
    .await;
    // Replayed: a sequence number below the one already held.
    let replayed = fresh(1, t, t.plus_ms(60_000));
    publish_raw(
        bad,
        Envelope::seal(&replayed, &key, bad.network())
            .unwrap()
            .to_bytes()
            .unwrap(),
    )
    .await;
    // Malformed bytes.
    publish_raw(bad, b"not an envelope".to_vec()).await;

    let m = good.metrics();
    for reason in ["bad_signature", "expired", "replayed", "malformed"] {
        wait_for(
            &format!("a counted {reason} rejection"),
            Duration::from_secs(10),
            || async { (m.rejections("advert", reason) == 1).then_some(()) },
        )
        .await;
    }
    let score = good.net().peer_score(bad.peer_id()).await.unwrap().unwrap();
    assert!(score < 0.0, "gossipsub score of the sender is {score}");
    // The node keeps serving: the sender's real advert is still held and a new one is taken.
    assert_eq!(good.adverts().count(), 2);
}

/// A node that joins late learns the adverts published before it arrived by asking its first
/// peers (the sync protocol): nobody republishes for it, and the refresh interval (60 s) is
/// far longer than the wait. Its own advert reaches the nodes already there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_joiner_pulls_the_advert_book() {
    let dir = tempfile::tempdir().unwrap();
    let c = cluster("adverts-sync", vec![cpu_only(), h100(), cpu_only(), h100()]).await;
    for (i, n) in c.nodes.iter().enumerate() {
        wait_for(
            &format!("node {i} to hold 4 adverts"),
            Duration::from_secs(30),
            || async { (n.node().adverts().count() == 4).then_some(()) },
        )
        .await;
    }
    let bootstrap = testing::address(c.nodes[0].node())
        .await
        .into_iter()
        .collect();
    let spec = testing::spec("adverts-sync");
    let late = Node::start(testing::options(
        &dir.path().join("late"),
        &spec,
        cpu_only(),
        bootstrap,
        FaultInjection::None,
    ))
    .await
    .unwrap();
    wait_for(
        "the late node to hold 5 adverts",
        Duration::from_secs(20),
        || async { (late.node().adverts().count() == 5).then_some(()) },
    )
    .await;
    let synced = late
        .node()
        .metrics()
        .adverts_synced
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(synced >= 4, "learned {synced} adverts by sync");
    for (i, n) in c.nodes.iter().enumerate() {
        wait_for(
            &format!("node {i} to hold the late node's advert"),
            Duration::from_secs(20),
            || async { (n.node().adverts().count() == 5).then_some(()) },
        )
        .await;
    }
    // The late node's advert lists where it listens, so peers can dial it by its advert.
    let advert = c.nodes[0]
        .node()
        .adverts()
        .of(&late.node().node_id())
        .unwrap();
    assert!(
        advert
            .addresses
            .iter()
            .any(|a| a.starts_with("/ip4/127.0.0.1/tcp/")),
        "{:?}",
        advert.addresses
    );
}

/// Many identities on one address (free to make) get only that address's share of a node's
/// inbound connections: the rest are denied and counted, and the node keeps serving those
/// it took.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_gets_its_share_of_inbound_connections_whatever_its_identities() {
    let dir = tempfile::tempdir().unwrap();
    let spec = testing::spec("per-ip");
    let mut options = testing::options(
        &dir.path().join("target"),
        &spec,
        cpu_only(),
        Vec::new(),
        FaultInjection::None,
    );
    options.config.max_connections_per_ip = 2;
    // Every node of this test is on 127.0.0.1, which is exempt unless asked.
    if let Some(net) = options.net.as_mut() {
        net.limit_loopback = true;
    }
    let target = Node::start(options).await.unwrap();
    let address = testing::address(target.node()).await.unwrap();
    let mut sybils = Vec::new();
    for i in 0..5 {
        let sybil = testing::start(
            &dir.path().join(format!("sybil{i}")),
            &spec,
            cpu_only(),
            vec![address.clone()],
        )
        .await
        .unwrap();
        sybils.push(sybil);
    }
    let stats = wait_for(
        "the target to deny the dials over its per-address cap",
        Duration::from_secs(20),
        || async {
            let stats = target.node().net().connection_stats().await.ok()?;
            (stats.denied_per_ip >= 3).then_some(stats)
        },
    )
    .await;
    assert!(
        stats.inbound <= 2,
        "at most two inbound connections taken: {stats:?}"
    );
    // The connections it took are still served: their peers learn the target's advert.
    wait_for(
        "a peer that got in to hold the target's advert",
        Duration::from_secs(20),
        || async {
            sybils
                .iter()
                .any(|s| s.node().adverts().count() >= 2)
                .then_some(())
        },
    )
    .await;
}

/// What a client in another libp2p implementation brings: identify with a protocol version it
/// cannot choose (js-libp2p sends `ipfs/0.1.0`), ping, and the network's kad protocol.
#[derive(libp2p::swarm::NetworkBehaviour)]
struct OutsideClient {
    identify: libp2p::identify::Behaviour,
    kad: libp2p::kad::Behaviour<libp2p::kad::store::MemoryStore>,
    ping: libp2p::ping::Behaviour,
}

/// Dials `node` from such a client speaking `kad_protocol`; returns its peer id and a receiver
/// that yields once the node closes the connection.
fn dial_as_outside_client(
    node: libp2p::Multiaddr,
    kad_protocol: &str,
) -> (libp2p::PeerId, tokio::sync::oneshot::Receiver<()>) {
    use futures::StreamExt;
    use libp2p::{StreamProtocol, identify, kad, noise, ping, swarm::SwarmEvent, tcp, yamux};
    let protocol = StreamProtocol::try_from_owned(kad_protocol.to_owned()).unwrap();
    let mut swarm = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )
        .unwrap()
        .with_behaviour(|key| {
            let me = key.public().to_peer_id();
            let store = kad::store::MemoryStore::new(me);
            let mut kad = kad::Behaviour::with_config(me, store, kad::Config::new(protocol));
            kad.set_mode(Some(kad::Mode::Server));
            let identify = identify::Config::new("ipfs/0.1.0".into(), key.public())
                .with_agent_version("js-libp2p/3.3.0".into());
            OutsideClient {
                identify: identify::Behaviour::new(identify),
                kad,
                ping: ping::Behaviour::default(),
            }
        })
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    let me = *swarm.local_peer_id();
    swarm.dial(node).unwrap();
    let (closed, on_close) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut closed = Some(closed);
        while let Some(event) = swarm.next().await {
            if let SwarmEvent::ConnectionClosed { .. } = event
                && let Some(closed) = closed.take()
            {
                let _ = closed.send(());
            }
        }
    });
    (me, on_close)
}

/// A node gates peers on what they speak, not on identify's protocol version: a client of
/// another libp2p implementation that speaks the network's kad protocol is identified and
/// kept, and one that speaks another Cairn network's is disconnected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outside_client_that_speaks_the_networks_protocols_is_kept_and_another_networks_is_not()
{
    let dir = tempfile::tempdir().unwrap();
    let spec = testing::spec("interop");
    let node = testing::start(&dir.path().join("node"), &spec, cpu_only(), Vec::new())
        .await
        .unwrap();
    let address: libp2p::Multiaddr = testing::address(node.node())
        .await
        .unwrap()
        .parse()
        .unwrap();

    let ours = format!("/cairn/{}/kad/1.0.0", spec.name);
    let (client, mut closed) = dial_as_outside_client(address.clone(), &ours);
    wait_for(
        "the node to identify the outside client and keep it",
        Duration::from_secs(20),
        || async {
            let peers = node.node().net().peers().await.ok()?;
            peers
                .iter()
                .any(|p| {
                    p.peer_id == client.to_string() && p.agent.as_deref() == Some("js-libp2p/3.3.0")
                })
                .then_some(())
        },
    )
    .await;
    assert!(
        closed.try_recv().is_err(),
        "the node kept the connection after identify"
    );

    let (stranger, closed) = dial_as_outside_client(address, "/cairn/another/kad/1.0.0");
    tokio::time::timeout(Duration::from_secs(20), closed)
        .await
        .expect("the node disconnects a peer of another network")
        .unwrap();
    let peers = node.node().net().peers().await.unwrap();
    assert!(!peers.iter().any(|p| p.peer_id == stranger.to_string()));
}
