//! The composed network behaviour.
// The NetworkBehaviour derive generates `BehaviourEvent`, one variant per field, without docs.
#![allow(missing_docs)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use libp2p::gossipsub::{self, MessageAuthenticity, PeerScoreParams, PeerScoreThresholds};
use libp2p::identity::Keypair;
use libp2p::kad::store::{MemoryStore, MemoryStoreConfig};
use libp2p::swarm::NetworkBehaviour;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::{
    StreamProtocol, allow_block_list, autonat, connection_limits, dcutr, identify, kad, mdns, ping,
    relay, request_response,
};

use super::nat::RelayServerMode;
use super::relay_server::GuardedRelay;
use super::{BlobCodec, IpLimits, MAX_GOSSIP_BYTES, MarketCodec, NetConfig, SyncCodec};

/// Everything a Cairn node speaks.
#[derive(NetworkBehaviour)]
pub struct Behaviour {
    /// Caps on inbound connections per IP address.
    pub ip_limits: IpLimits,
    /// Caps on connections.
    pub limits: connection_limits::Behaviour,
    /// Exchanges listen addresses and protocol versions.
    pub identify: identify::Behaviour,
    /// Keeps connections alive and measures round trips.
    pub ping: ping::Behaviour,
    /// Adverts, verdicts and checkpoint votes.
    pub gossipsub: gossipsub::Behaviour,
    /// Provider records for capability classes and blobs.
    pub kad: kad::Behaviour<MemoryStore>,
    /// Blob transfer.
    pub blobs: request_response::Behaviour<BlobCodec>,
    /// Calls for bids, bids, awards and reports.
    pub market: request_response::Behaviour<MarketCodec>,
    /// A newcomer's pull of what its first peers know (adverts).
    pub sync: request_response::Behaviour<SyncCodec>,
    /// Local discovery, off unless the network spec turns it on.
    pub mdns: Toggle<mdns::tokio::Behaviour>,
    /// Asks peers to dial back (am I reachable?) and answers their requests.
    pub autonat: autonat::Behaviour,
    /// Relay v2 server for peers behind NAT; absent when its mode is off.
    pub relay: Toggle<GuardedRelay>,
    /// Relay v2 client: reservations on relays (`/p2p-circuit` listen addresses) and relayed
    /// dials.
    pub relay_client: relay::client::Behaviour,
    /// Upgrades relayed connections to direct ones by hole punching.
    pub dcutr: dcutr::Behaviour,
    /// Peers this node refuses (simulated partitions).
    pub blocked: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
}

/// Why the behaviour could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A protocol name built from the network name is invalid.
    #[error("invalid protocol name {0:?}")]
    Protocol(String),
    /// Gossipsub refused its configuration.
    #[error("gossipsub configuration: {0}")]
    Gossipsub(String),
    /// mDNS could not start.
    #[error("mDNS: {0}")]
    Mdns(#[from] std::io::Error),
}

fn protocol(name: String) -> Result<StreamProtocol, BuildError> {
    StreamProtocol::try_from_owned(name.clone()).map_err(|_| BuildError::Protocol(name))
}

impl Behaviour {
    /// Builds the behaviour for `keypair` on the network in `config`, with the relay client
    /// that the swarm builder made along with its transport.
    pub fn new(
        keypair: &Keypair,
        config: &NetConfig,
        relay_client: relay::client::Behaviour,
    ) -> Result<Self, BuildError> {
        let peer_id = keypair.public().to_peer_id();
        let limits = connection_limits::ConnectionLimits::default()
            .with_max_established(Some(config.max_connections))
            .with_max_established_incoming(Some(config.max_connections / 4 * 3))
            .with_max_established_per_peer(Some(4))
            .with_max_pending_incoming(Some(64))
            .with_max_pending_outgoing(Some(64));

        let identify = identify::Behaviour::new(
            identify::Config::new(config.identify_version(), keypair.public())
                .with_agent_version(format!("cairn/{}", env!("CARGO_PKG_VERSION")))
                // Tell peers at once when a listen address appears (a relay reservation), so
                // that the relay's DHT hands out the relayed address.
                .with_push_listen_addr_updates(true),
        );

        let mut kad_config = kad::Config::new(protocol(config.kad_protocol())?);
        kad_config
            // The swarm task adds peers itself, and only to buckets with room (see
            // `EventLoop::add_to_routing_table`).
            .set_kbucket_inserts(kad::BucketInserts::Manual)
            .set_max_packet_size(64 * 1024)
            .set_query_timeout(Duration::from_secs(30))
            .set_periodic_bootstrap_interval(Some(super::dht::BUCKET_REFRESH));
        let store_config = MemoryStoreConfig {
            max_records: 4096,
            max_value_bytes: 64 * 1024,
            max_providers_per_key: 256,
            max_provided_keys: 65_536,
        };
        let mut kad = kad::Behaviour::with_config(
            peer_id,
            MemoryStore::with_config(peer_id, store_config),
            kad_config,
        );
        // Local clusters have no confirmed external address, so force server mode.
        kad.set_mode(Some(kad::Mode::Server));

        let blobs = request_response::Behaviour::with_codec(
            BlobCodec {
                max_blob_bytes: config.max_blob_bytes,
            },
            [(
                protocol(config.blob_protocol())?,
                request_response::ProtocolSupport::Full,
            )],
            request_response::Config::default().with_request_timeout(config.request_timeout),
        );

        let market = request_response::Behaviour::with_codec(
            MarketCodec::default(),
            [(
                protocol(config.market_protocol())?,
                request_response::ProtocolSupport::Full,
            )],
            request_response::Config::default().with_request_timeout(Duration::from_secs(30)),
        );

        let sync = request_response::Behaviour::with_codec(
            SyncCodec::default(),
            [(
                protocol(config.sync_protocol())?,
                request_response::ProtocolSupport::Full,
            )],
            request_response::Config::default().with_request_timeout(Duration::from_secs(30)),
        );

        let mdns = if config.mdns {
            Some(mdns::tokio::Behaviour::new(
                mdns::Config::default(),
                peer_id,
            )?)
        } else {
            None
        };

        Ok(Self {
            ip_limits: IpLimits::new(
                usize::try_from(config.max_inbound_per_ip).unwrap_or(usize::MAX),
                config.limit_loopback,
            ),
            limits: connection_limits::Behaviour::new(limits),
            identify,
            ping: ping::Behaviour::new(ping::Config::new()),
            gossipsub: gossipsub(config)?,
            kad,
            blobs,
            market,
            sync,
            mdns: mdns.into(),
            autonat: autonat::Behaviour::new(peer_id, config.nat.autonat()),
            relay: relay_server(peer_id, config).into(),
            relay_client,
            dcutr: dcutr::Behaviour::new(peer_id),
            blocked: allow_block_list::Behaviour::default(),
        })
    }
}

/// The relay server, `None` when off. In `auto` mode it serves only while the node has a
/// confirmed external address; `on` forces it to serve.
fn relay_server(peer_id: libp2p::PeerId, config: &NetConfig) -> Option<GuardedRelay> {
    let mut server = relay::Behaviour::new(peer_id, config.nat.relay_server()?);
    if config.nat.relay_server == RelayServerMode::On {
        server.set_status(Some(relay::Status::Enable));
    }
    Some(GuardedRelay::new(server))
}

fn gossipsub(config: &NetConfig) -> Result<gossipsub::Behaviour, BuildError> {
    let gossip_config = gossipsub::ConfigBuilder::default()
        .heartbeat_interval(config.heartbeat)
        .heartbeat_initial_delay(Duration::from_millis(100))
        .max_transmit_size(MAX_GOSSIP_BYTES)
        // A node's own messages go to its mesh peers, as forwarded ones do, not to every
        // connected subscriber: a requester connected to hundreds of providers would
        // otherwise send each verdict hundreds of times.
        .flood_publish(false)
        // Every payload is an envelope signed by its author and checked by the node once per
        // message. Gossipsub's own signatures would add nothing but cost: it checks them on
        // every copy received, before de-duplication (about D copies per message per node).
        .validation_mode(gossipsub::ValidationMode::Anonymous)
        .validate_messages()
        // De-duplicate by content, not by source and sequence number.
        .message_id_fn(|m: &gossipsub::Message| {
            gossipsub::MessageId::from(blake3::hash(&m.data).as_bytes().to_vec())
        })
        .build()
        .map_err(|e| BuildError::Gossipsub(e.to_string()))?;
    let mut behaviour = gossipsub::Behaviour::new(MessageAuthenticity::Anonymous, gossip_config)
        .map_err(|e| BuildError::Gossipsub(e.to_string()))?;

    // Invalid messages cost the peer that forwarded them: the penalty grows with the square of
    // the count, so a few (a clock-skewed advert) are tolerated and about nine bring the peer
    // below the graylist threshold (-80), after which its messages are ignored. More than
    // eight mesh peers on one IP cost each of them (gossipsub's colocation factor: one host with
    // many free identities is graylisted at about twelve), except on loopback, where local
    // clusters put every node.
    let topic = gossipsub::IdentTopic::new(config.gossip_topic());
    let mut params = PeerScoreParams {
        ip_colocation_factor_weight: -5.0,
        ip_colocation_factor_threshold: 8.0,
        ip_colocation_factor_whitelist: [
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
        ]
        .into_iter()
        .collect(),
        ..PeerScoreParams::default()
    };
    let topic_params = gossipsub::TopicScoreParams {
        topic_weight: 1.0,
        invalid_message_deliveries_weight: -1.0,
        invalid_message_deliveries_decay: 0.9,
        ..gossipsub::TopicScoreParams::default()
    };
    params.topics.insert(topic.hash(), topic_params);
    behaviour
        .with_peer_score(params, PeerScoreThresholds::default())
        .map_err(|e| BuildError::Gossipsub(e.to_string()))?;
    Ok(behaviour)
}
