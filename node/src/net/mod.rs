//! The libp2p side of a node: one task owns the swarm ([`event_loop`]); the rest of the node
//! talks to it through a cloneable [`NetworkHandle`] that sends [`Command`]s with a oneshot
//! reply, and hears from it through a bounded channel of [`NetworkEvent`]s.
//!
//! Every protocol id and topic carries the network's name, so two networks never mix: a peer
//! that speaks none of this network's protocols, or names another Cairn network, is
//! disconnected once it has identified itself ([`NetConfig::speaks_this_network`]).

mod behaviour;
mod blob_codec;
mod dht;
mod event_loop;
mod framed;
mod handle;
mod ip_limits;
mod market;
mod nat;
mod peers;
mod relay_server;
mod requests;
mod sync;

use std::time::Duration;

pub use behaviour::{Behaviour, BehaviourEvent};
pub use blob_codec::{BlobCodec, BlobRefusal, BlobResponse, BlobStream, CHUNK_BYTES};
pub use event_loop::{EventLoop, SwarmBuildError, build_swarm};
pub use framed::{Frame, Framed};
pub use handle::{Command, ConnectionStats, NetError, NetworkEvent, NetworkHandle, PeerInfo};
pub use ip_limits::{IpLimitExceeded, IpLimits};
pub use market::{MAX_MARKET_FRAME, MarketCodec, MarketRequest, MarketResponse};
pub use nat::{MAX_AUTO_RELAYS, NatConfig, NatInfo, RelayServerMode};
pub use sync::{
    MAX_SYNC_ADVERTS, MAX_SYNC_CHECKPOINTS, MAX_SYNC_FRAME, MAX_SYNC_LEAVES, SyncCodec,
    SyncRequest, SyncResponse,
};

pub use cairn_protocol::blob_wire::MAX_BLOB_TRANSFER_BYTES;

/// Largest gossip message (adverts, verdicts, checkpoint votes), in bytes.
pub const MAX_GOSSIP_BYTES: usize = 64 * 1024;

/// Settings of the network layer.
#[derive(Clone, Debug)]
pub struct NetConfig {
    /// Network name; part of every protocol id.
    pub network: String,
    /// Run mDNS discovery. Default: off (it sends multicast to the local link).
    pub mdns: bool,
    /// Most established connections. Default: 256. At most three quarters of them inbound,
    /// so that peers dialing in can never leave no room for the node's own dials.
    pub max_connections: u32,
    /// Most inbound connections, pending or established, from one IP address. Default: 8.
    pub max_inbound_per_ip: u32,
    /// Count connections from 127.0.0.1 and ::1 against `max_inbound_per_ip` too (tests).
    /// Default: off, as local clusters put every node there.
    pub limit_loopback: bool,
    /// Most requests of one protocol (blob, market, sync) one peer may have waiting for this
    /// node's answer; more are refused at once. Default: 32.
    pub max_requests_per_peer: usize,
    /// Peers kept connected when idle: above one and a half times this many, the least
    /// recently used connections that nothing needs are closed, down to this many. 0 keeps
    /// every connection. Default: 32.
    pub peer_target: usize,
    /// Largest blob accepted in a transfer.
    pub max_blob_bytes: u64,
    /// Gossipsub heartbeat. Default: 500 ms.
    pub heartbeat: Duration,
    /// How long a blob request may take. Default: 60 s.
    pub request_timeout: Duration,
    /// How long an idle connection stays open. Default: 60 s.
    pub idle_timeout: Duration,
    /// AutoNAT, relay and hole punching settings. Default: [`NatConfig::default`].
    pub nat: NatConfig,
    /// SIMULATION ONLY: delay added before every market and blob request this node sends, to
    /// model link latency in in-process clusters. Default: none.
    pub added_latency: Duration,
}

impl NetConfig {
    /// Defaults for `network`.
    pub fn new(network: &str) -> Self {
        Self {
            network: network.to_owned(),
            mdns: false,
            max_connections: 256,
            max_inbound_per_ip: 8,
            limit_loopback: false,
            max_requests_per_peer: 32,
            peer_target: 32,
            max_blob_bytes: 64 << 20,
            heartbeat: Duration::from_millis(500),
            request_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(60),
            added_latency: Duration::ZERO,
            nat: NatConfig::default(),
        }
    }

    /// Identify's protocol version, which names the network.
    pub fn identify_version(&self) -> String {
        format!("/cairn/{}/1.0.0", self.network)
    }

    /// Whether a peer belongs to this network by what it told identify: it speaks at least one
    /// of this network's protocols (`/cairn/NETWORK/...`: kad, market, blob, sync) and names
    /// no other Cairn network, neither in its protocols nor in its protocol version. The
    /// protocol version alone decides nothing: other libp2p implementations (js-libp2p, for
    /// one) cannot set it, and a client that speaks the network's kad protocol is a peer of
    /// the network whatever it calls itself.
    pub fn speaks_this_network<'a>(
        &self,
        protocol_version: &str,
        protocols: impl IntoIterator<Item = &'a str>,
    ) -> bool {
        let ours = format!("/cairn/{}/", self.network);
        let other = |p: &str| p.starts_with("/cairn/") && !p.starts_with(&ours);
        let mut speaks_ours = false;
        for protocol in protocols {
            if other(protocol) {
                return false;
            }
            speaks_ours |= protocol.starts_with(&ours);
        }
        speaks_ours && !other(protocol_version)
    }

    /// The one gossip topic: capability adverts, verdicts, checkpoint proposals, votes and
    /// anchor receipts, told apart by their envelopes' kind. One topic means one mesh and one
    /// set of gossip control messages per node instead of one per kind.
    pub fn gossip_topic(&self) -> String {
        format!("cairn/{}/gossip/1", self.network)
    }

    fn market_protocol(&self) -> String {
        format!("/cairn/{}/market/1.0.0", self.network)
    }

    fn kad_protocol(&self) -> String {
        format!("/cairn/{}/kad/1.0.0", self.network)
    }

    fn blob_protocol(&self) -> String {
        format!("/cairn/{}/blob/1.0.0", self.network)
    }

    fn sync_protocol(&self) -> String {
        format!("/cairn/{}/sync/1.0.0", self.network)
    }
}

/// The DHT key under which providers of a capability class (`cpu`, `gpu:sm90`, ...) register.
pub fn class_key(network: &str, class: &str) -> Vec<u8> {
    format!("/cairn/{network}/class/{class}").into_bytes()
}

/// The DHT key under which holders of a blob register.
pub fn blob_key(network: &str, hash: &cairn_protocol::BlobHash) -> Vec<u8> {
    format!("/cairn/{network}/blob/{hash}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_belongs_to_the_network_whose_protocols_it_speaks_whatever_its_version() {
        let config = NetConfig::new("testnet");
        let kad = "/cairn/testnet/kad/1.0.0";
        let ping = "/ipfs/ping/1.0.0";
        // A cairn node, and a js-libp2p client that cannot set identify's protocol version.
        assert!(config.speaks_this_network(&config.identify_version(), [kad, ping]));
        assert!(config.speaks_this_network("ipfs/0.1.0", [ping, kad]));
        // A peer of another Cairn network, however it presents itself.
        let other_kad = "/cairn/mainnet/kad/1.0.0";
        assert!(!config.speaks_this_network("ipfs/0.1.0", [other_kad]));
        assert!(!config.speaks_this_network("ipfs/0.1.0", [kad, other_kad]));
        assert!(!config.speaks_this_network("/cairn/mainnet/1.0.0", [kad]));
        // A peer that speaks nothing of this network (a plain IPFS node), and a name that
        // only starts like ours.
        assert!(!config.speaks_this_network("ipfs/0.1.0", [ping, "/ipfs/kad/1.0.0"]));
        assert!(!config.speaks_this_network("ipfs/0.1.0", ["/cairn/testnet2/kad/1.0.0"]));
    }
}
