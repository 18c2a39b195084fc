//! The cloneable handle through which the node talks to the swarm task.

use cairn_protocol::BlobHash;
use libp2p::gossipsub::{MessageAcceptance, MessageId};
use libp2p::request_response::ResponseChannel;
use libp2p::{Multiaddr, PeerId};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use super::{BlobResponse, MarketRequest, MarketResponse, NatInfo, SyncRequest, SyncResponse};

/// Why a network operation failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// The swarm task has stopped (the node is shutting down).
    #[error("the network task has stopped")]
    Stopped,
    /// Listening on an address failed.
    #[error("cannot listen on {addr}: {reason}")]
    Listen {
        /// The address.
        addr: String,
        /// Why.
        reason: String,
    },
    /// Dialling failed at once (bad address, no transport for it).
    #[error("cannot dial {addr}: {reason}")]
    Dial {
        /// The address.
        addr: String,
        /// Why.
        reason: String,
    },
    /// Publishing on gossipsub failed (for example no peer subscribes yet).
    #[error("cannot publish: {0}")]
    Publish(String),
    /// A DHT operation failed.
    #[error("DHT: {0}")]
    Dht(String),
    /// A request to a peer failed (timeout, refused protocol, connection lost).
    #[error("request to {peer} failed: {reason}")]
    Request {
        /// The peer.
        peer: PeerId,
        /// Why.
        reason: String,
    },
}

/// A connected peer.
#[derive(Clone, Debug, Serialize)]
pub struct PeerInfo {
    /// Its peer id.
    pub peer_id: String,
    /// Addresses it listens on, as identify reported them.
    pub addresses: Vec<String>,
    /// Its agent version (`cairn/0.1.0`), once identify ran.
    pub agent: Option<String>,
    /// Whether every connection to it goes through a relay (none is direct).
    pub relayed: bool,
}

/// Requests to the swarm task. Each carries a oneshot for the answer, where there is one.
#[derive(Debug)]
#[non_exhaustive]
pub enum Command {
    /// Listen on an address.
    Listen {
        /// The address.
        addr: Multiaddr,
        /// Answer.
        reply: oneshot::Sender<Result<(), NetError>>,
    },
    /// Dial an address.
    Dial {
        /// The address (with `/p2p/PEER` where known).
        addr: Multiaddr,
        /// Answer: whether the dial started.
        reply: oneshot::Sender<Result<(), NetError>>,
    },
    /// Addresses the swarm listens on.
    ListenAddrs {
        /// Answer.
        reply: oneshot::Sender<Vec<Multiaddr>>,
    },
    /// Addresses to put in this node's advert: confirmed external ones first, then listen
    /// addresses (relayed ones included), at most [`cairn_protocol::MAX_ADVERT_ADDRESSES`].
    AdvertisedAddrs {
        /// Answer.
        reply: oneshot::Sender<Vec<Multiaddr>>,
    },
    /// Where a peer says it can be reached (from its signed advert); used to dial it for
    /// market, blob and sync requests.
    PeerAddresses {
        /// The peer.
        peer: PeerId,
        /// Its addresses.
        addrs: Vec<Multiaddr>,
    },
    /// Connected peers.
    Peers {
        /// Answer.
        reply: oneshot::Sender<Vec<PeerInfo>>,
    },
    /// Publish on the network's gossip topic (adverts, verdicts, checkpoint messages; the
    /// receiver routes them by envelope kind).
    Publish {
        /// Signed envelope bytes.
        data: Vec<u8>,
        /// Answer.
        reply: oneshot::Sender<Result<(), NetError>>,
    },
    /// Tell gossipsub whether a message was valid (it then forwards or penalises).
    ReportValidation {
        /// The message.
        id: MessageId,
        /// The peer that forwarded it.
        source: PeerId,
        /// The verdict.
        acceptance: MessageAcceptance,
    },
    /// Register as a provider of a DHT key.
    StartProviding {
        /// The key.
        key: Vec<u8>,
        /// Answer, when the query finished.
        reply: oneshot::Sender<Result<(), NetError>>,
    },
    /// Find providers of a DHT key.
    GetProviders {
        /// The key.
        key: Vec<u8>,
        /// Answer.
        reply: oneshot::Sender<Result<Vec<PeerId>, NetError>>,
    },
    /// Ask a peer for a blob.
    RequestBlob {
        /// The peer.
        peer: PeerId,
        /// The blob.
        hash: BlobHash,
        /// Answer.
        reply: oneshot::Sender<Result<BlobResponse, NetError>>,
    },
    /// Answer a peer's blob request.
    RespondBlob {
        /// The request's channel.
        channel: ResponseChannel<BlobResponse>,
        /// The answer.
        response: BlobResponse,
    },
    /// Send a market request to a peer.
    Market {
        /// The peer.
        peer: PeerId,
        /// The request.
        request: MarketRequest,
        /// Answer.
        reply: oneshot::Sender<Result<MarketResponse, NetError>>,
    },
    /// Answer a peer's market request.
    RespondMarket {
        /// The request's channel.
        channel: ResponseChannel<MarketResponse>,
        /// The answer.
        response: MarketResponse,
    },
    /// Ask a peer for what it knows.
    Sync {
        /// The peer.
        peer: PeerId,
        /// The request.
        request: SyncRequest,
        /// Answer.
        reply: oneshot::Sender<Result<SyncResponse, NetError>>,
    },
    /// Answer a peer's sync request.
    RespondSync {
        /// The request's channel.
        channel: ResponseChannel<SyncResponse>,
        /// The answer.
        response: SyncResponse,
    },
    /// Refuse (`true`) or accept again (`false`) every connection with a peer; refusing closes
    /// the open ones. For simulated partitions.
    Block {
        /// The peer.
        peer: PeerId,
        /// Refuse or accept again.
        blocked: bool,
        /// Done.
        reply: oneshot::Sender<()>,
    },
    /// Gossipsub's score of a peer.
    PeerScore {
        /// The peer.
        peer: PeerId,
        /// Answer.
        reply: oneshot::Sender<Option<f64>>,
    },
    /// Reachability: AutoNAT status, relay reservations, hole punching counts.
    Nat {
        /// Answer.
        reply: oneshot::Sender<NatInfo>,
    },
    /// Connections opened and trimmed since start.
    Connections {
        /// Answer.
        reply: oneshot::Sender<ConnectionStats>,
    },
}

/// Connections a node opened, accepted and trimmed since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnectionStats {
    /// Connections this node dialed.
    pub outbound: u64,
    /// Connections peers dialed to this node.
    pub inbound: u64,
    /// Connections closed because the node held more than its peer target.
    pub trimmed: u64,
    /// Peers in the DHT routing table now.
    pub routing_table: u64,
    /// Inbound connections denied because their IP address held its share.
    pub denied_per_ip: u64,
    /// Peers' blob, market and sync requests refused because the peer had too many waiting
    /// or the node was too busy.
    pub requests_refused: u64,
}

/// What the swarm task tells the node.
#[derive(Debug)]
#[non_exhaustive]
pub enum NetworkEvent {
    /// A gossip message to validate and then report on with [`Command::ReportValidation`].
    Advert {
        /// The peer that forwarded it.
        source: PeerId,
        /// Gossipsub's id of it.
        id: MessageId,
        /// The bytes.
        data: Vec<u8>,
    },
    /// A checkpoint proposal, vote or anchor receipt to validate and then report on.
    Checkpoint {
        /// The peer that forwarded it.
        source: PeerId,
        /// Gossipsub's id of it.
        id: MessageId,
        /// The bytes.
        data: Vec<u8>,
    },
    /// A verdict to validate and then report on with [`Command::ReportValidation`].
    Verdict {
        /// The peer that forwarded it.
        source: PeerId,
        /// Gossipsub's id of it.
        id: MessageId,
        /// The bytes.
        data: Vec<u8>,
    },
    /// A market request; answer with [`Command::RespondMarket`].
    MarketRequest {
        /// The peer.
        peer: PeerId,
        /// The request.
        request: MarketRequest,
        /// Where the answer goes.
        channel: ResponseChannel<MarketResponse>,
    },
    /// A peer asks for a blob; answer with [`Command::RespondBlob`].
    BlobRequest {
        /// The peer.
        peer: PeerId,
        /// The blob.
        hash: BlobHash,
        /// Where the answer goes.
        channel: ResponseChannel<BlobResponse>,
    },
    /// A peer asks what this node knows; answer with [`Command::RespondSync`].
    SyncRequest {
        /// The peer.
        peer: PeerId,
        /// The request.
        request: SyncRequest,
        /// Where the answer goes.
        channel: ResponseChannel<SyncResponse>,
    },
    /// A connection to a new peer was established.
    PeerConnected {
        /// The peer.
        peer: PeerId,
        /// Peers connected now, this one included.
        peers: usize,
    },
    /// A peer that speaks none of this network's protocols, or names another Cairn network,
    /// was disconnected (see [`crate::net::NetConfig::speaks_this_network`]).
    WrongNetwork {
        /// The peer.
        peer: PeerId,
        /// The protocol version it announced.
        version: String,
    },
}

/// Cloneable handle to the swarm task.
#[derive(Clone, Debug)]
pub struct NetworkHandle {
    commands: mpsc::Sender<Command>,
    peer_id: PeerId,
    /// Simulated link latency before each market and blob request.
    latency: std::time::Duration,
}

impl NetworkHandle {
    pub(crate) fn new(
        commands: mpsc::Sender<Command>,
        peer_id: PeerId,
        latency: std::time::Duration,
    ) -> Self {
        Self {
            commands,
            peer_id,
            latency,
        }
    }

    /// This node's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, NetError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(make(reply))
            .await
            .map_err(|_| NetError::Stopped)?;
        answer.await.map_err(|_| NetError::Stopped)
    }

    /// Listens on `addr`.
    pub async fn listen(&self, addr: Multiaddr) -> Result<(), NetError> {
        self.ask(|reply| Command::Listen { addr, reply }).await?
    }

    /// Dials `addr`.
    pub async fn dial(&self, addr: Multiaddr) -> Result<(), NetError> {
        self.ask(|reply| Command::Dial { addr, reply }).await?
    }

    /// Addresses the node listens on.
    pub async fn listen_addrs(&self) -> Result<Vec<Multiaddr>, NetError> {
        self.ask(|reply| Command::ListenAddrs { reply }).await
    }

    /// Addresses for this node's advert (see [`Command::AdvertisedAddrs`]).
    pub async fn advertised_addrs(&self) -> Result<Vec<Multiaddr>, NetError> {
        self.ask(|reply| Command::AdvertisedAddrs { reply }).await
    }

    /// Remembers where `peer` can be reached (see [`Command::PeerAddresses`]).
    pub async fn add_peer_addresses(
        &self,
        peer: PeerId,
        addrs: Vec<Multiaddr>,
    ) -> Result<(), NetError> {
        self.commands
            .send(Command::PeerAddresses { peer, addrs })
            .await
            .map_err(|_| NetError::Stopped)
    }

    /// Connected peers.
    pub async fn peers(&self) -> Result<Vec<PeerInfo>, NetError> {
        self.ask(|reply| Command::Peers { reply }).await
    }

    /// Publishes signed envelope bytes (an advert, a verdict, a checkpoint message) on the
    /// network's gossip topic.
    pub async fn publish(&self, data: Vec<u8>) -> Result<(), NetError> {
        self.ask(|reply| Command::Publish { data, reply }).await?
    }

    /// Reports a validation result to gossipsub.
    pub async fn report_validation(
        &self,
        id: MessageId,
        source: PeerId,
        acceptance: MessageAcceptance,
    ) -> Result<(), NetError> {
        let command = Command::ReportValidation {
            id,
            source,
            acceptance,
        };
        self.commands
            .send(command)
            .await
            .map_err(|_| NetError::Stopped)
    }

    /// Registers this node as a provider of `key`.
    pub async fn start_providing(&self, key: Vec<u8>) -> Result<(), NetError> {
        self.ask(|reply| Command::StartProviding { key, reply })
            .await?
    }

    /// Finds providers of `key` in the DHT.
    pub async fn get_providers(&self, key: Vec<u8>) -> Result<Vec<PeerId>, NetError> {
        self.ask(|reply| Command::GetProviders { key, reply })
            .await?
    }

    /// Asks `peer` for a blob. The caller checks the hash of what comes back.
    pub async fn request_blob(
        &self,
        peer: PeerId,
        hash: BlobHash,
    ) -> Result<BlobResponse, NetError> {
        self.simulated_latency().await;
        self.ask(|reply| Command::RequestBlob { peer, hash, reply })
            .await?
    }

    /// Refuses every connection with `peer` (closing the open ones), or accepts it again:
    /// a simulated partition.
    pub async fn set_blocked(&self, peer: PeerId, blocked: bool) -> Result<(), NetError> {
        self.ask(|reply| Command::Block {
            peer,
            blocked,
            reply,
        })
        .await
    }

    async fn simulated_latency(&self) {
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
    }

    /// Answers a peer's blob request.
    pub async fn respond_blob(
        &self,
        channel: ResponseChannel<BlobResponse>,
        response: BlobResponse,
    ) -> Result<(), NetError> {
        let command = Command::RespondBlob { channel, response };
        self.commands
            .send(command)
            .await
            .map_err(|_| NetError::Stopped)
    }

    /// Sends a market request to `peer` and waits for the answer.
    pub async fn market(
        &self,
        peer: PeerId,
        request: MarketRequest,
    ) -> Result<MarketResponse, NetError> {
        self.simulated_latency().await;
        self.ask(|reply| Command::Market {
            peer,
            request,
            reply,
        })
        .await?
    }

    /// Answers a peer's market request.
    pub async fn respond_market(
        &self,
        channel: ResponseChannel<MarketResponse>,
        response: MarketResponse,
    ) -> Result<(), NetError> {
        let command = Command::RespondMarket { channel, response };
        self.commands
            .send(command)
            .await
            .map_err(|_| NetError::Stopped)
    }

    /// Asks `peer` for what it knows.
    pub async fn sync(&self, peer: PeerId, request: SyncRequest) -> Result<SyncResponse, NetError> {
        self.ask(|reply| Command::Sync {
            peer,
            request,
            reply,
        })
        .await?
    }

    /// Answers a peer's sync request.
    pub async fn respond_sync(
        &self,
        channel: ResponseChannel<SyncResponse>,
        response: SyncResponse,
    ) -> Result<(), NetError> {
        let command = Command::RespondSync { channel, response };
        self.commands
            .send(command)
            .await
            .map_err(|_| NetError::Stopped)
    }

    /// Gossipsub's score of `peer` (negative after invalid messages).
    pub async fn peer_score(&self, peer: PeerId) -> Result<Option<f64>, NetError> {
        self.ask(|reply| Command::PeerScore { peer, reply }).await
    }

    /// Reachability: AutoNAT's status, relay reservations held and served, hole punching.
    pub async fn nat(&self) -> Result<NatInfo, NetError> {
        self.ask(|reply| Command::Nat { reply }).await
    }

    /// Connections opened, accepted and trimmed since start.
    pub async fn connection_stats(&self) -> Result<ConnectionStats, NetError> {
        self.ask(|reply| Command::Connections { reply }).await
    }
}
