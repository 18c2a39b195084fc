//! The task that owns the swarm.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use futures::StreamExt;
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance};
use libp2p::identity::Keypair;
use libp2p::kad::{self, GetProvidersOk, QueryId, QueryResult};
use libp2p::request_response;
use libp2p::swarm::{ConnectionId, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm, SwarmBuilder, autonat, identify, mdns, noise, tcp, yamux};
use tokio::sync::{mpsc, oneshot};
use tracing::{Span, debug, debug_span, info, span, warn};

use cairn_protocol::{Envelope, MessageKind};

use super::behaviour::{Behaviour, BehaviourEvent};
use super::dht::{BUCKET_REFRESH, BucketRefresh};
use super::handle::{Command, ConnectionStats, NetError, NetworkEvent, NetworkHandle, PeerInfo};
use super::nat::{NatState, RELAY_RETRY, RelayListens, is_relayed};
use super::peers::{self, PeerActivity};
use super::requests::InFlight;
use super::{BlobRefusal, BlobResponse, MarketRequest, MarketResponse, NetConfig, SyncResponse};

/// Queued commands from the node to the swarm task.
const COMMAND_QUEUE: usize = 256;
/// Queued events from the swarm task to the node; when full, gossip is ignored and blob
/// requests dropped rather than stalling the swarm.
const EVENT_QUEUE: usize = 1024;

/// Most peers whose advertised addresses are remembered (about the advert book's size).
const MAX_PEER_ADDRS: usize = 16_384;

/// Why the swarm could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the libp2p swarm: {0}")]
pub struct SwarmBuildError(String);

/// Builds the swarm: TCP and QUIC, noise, yamux, DNS, the relay client transport, and the
/// [`Behaviour`].
pub fn build_swarm(
    keypair: Keypair,
    config: &NetConfig,
) -> Result<Swarm<Behaviour>, SwarmBuildError> {
    let err = |e: &dyn std::fmt::Display| SwarmBuildError(e.to_string());
    let swarm = SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| err(&e))?
        .with_quic()
        .with_dns()
        .map_err(|e| err(&e))?
        .with_relay_client(noise::Config::new, yamux::Config::default)
        .map_err(|e| err(&e))?
        .with_behaviour(|key, relay_client| {
            Behaviour::new(key, config, relay_client).map_err(Box::from)
        })
        .map_err(|e| err(&e))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(config.idle_timeout))
        .build();
    Ok(swarm)
}

/// A provider lookup in progress: where the answer goes and what was found so far.
type ProviderSearch = (
    oneshot::Sender<Result<Vec<PeerId>, NetError>>,
    HashSet<PeerId>,
);

/// Owns the swarm and answers [`Command`]s.
pub struct EventLoop {
    swarm: Swarm<Behaviour>,
    config: NetConfig,
    topic: IdentTopic,
    commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<NetworkEvent>,
    listen_addrs: Vec<Multiaddr>,
    identified: HashMap<PeerId, (Vec<Multiaddr>, String)>,
    /// Open connections per peer, each marked relayed or direct.
    connections: HashMap<PeerId, HashMap<ConnectionId, bool>>,
    /// One tracing span per open connection: what happens on it is logged inside.
    spans: HashMap<ConnectionId, Span>,
    refresh: BucketRefresh,
    providing: HashMap<QueryId, oneshot::Sender<Result<(), NetError>>>,
    finding: HashMap<QueryId, ProviderSearch>,
    blob_requests: InFlight<BlobResponse>,
    market_requests: InFlight<MarketResponse>,
    sync_requests: InFlight<SyncResponse>,
    nat: NatState,
    relay_listens: RelayListens,
    activity: PeerActivity,
    /// Where peers say they can be reached (their adverts), for dialing them by peer id.
    peer_addrs: HashMap<PeerId, Vec<Multiaddr>>,
    stats: ConnectionStats,
}

impl EventLoop {
    /// Wraps `swarm`; returns the loop, a handle to it and the node's event receiver.
    pub fn new(
        mut swarm: Swarm<Behaviour>,
        config: NetConfig,
    ) -> Result<(Self, NetworkHandle, mpsc::Receiver<NetworkEvent>), NetError> {
        let topic = IdentTopic::new(config.gossip_topic());
        swarm
            .behaviour_mut()
            .gossipsub
            .subscribe(&topic)
            .map_err(|e| NetError::Publish(e.to_string()))?;
        for addr in &config.nat.external_addrs {
            // Announced as confirmed: identify tells peers, and the relay server (in `auto`
            // mode) starts serving.
            swarm.add_external_address(addr.clone());
        }
        let (command_tx, commands) = mpsc::channel(COMMAND_QUEUE);
        let (events, event_rx) = mpsc::channel(EVENT_QUEUE);
        let handle = NetworkHandle::new(command_tx, *swarm.local_peer_id(), config.added_latency);
        let peer_target = config.peer_target;
        let max_requests_per_peer = config.max_requests_per_peer;
        let this = Self {
            nat: NatState::new(&config.nat),
            relay_listens: RelayListens::default(),
            swarm,
            config,
            topic,
            commands,
            events,
            listen_addrs: Vec::new(),
            identified: HashMap::new(),
            connections: HashMap::new(),
            spans: HashMap::new(),
            refresh: BucketRefresh::new(BUCKET_REFRESH, Instant::now()),
            providing: HashMap::new(),
            finding: HashMap::new(),
            blob_requests: InFlight::new(max_requests_per_peer),
            market_requests: InFlight::new(max_requests_per_peer),
            sync_requests: InFlight::new(max_requests_per_peer),
            activity: PeerActivity::new(peer_target, peers::GRACE),
            peer_addrs: HashMap::new(),
            stats: ConnectionStats::default(),
        };
        Ok((this, handle, event_rx))
    }

    /// Runs until every handle is dropped.
    pub async fn run(mut self) {
        let mut relay_retry = tokio::time::interval(RELAY_RETRY);
        let mut trim = tokio::time::interval(peers::TRIM_INTERVAL);
        trim.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                command = self.commands.recv() => match command {
                    Some(command) => self.on_command(command),
                    None => break,
                },
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                _ = relay_retry.tick() => self.relay_listens.ensure(&mut self.swarm),
                _ = trim.tick() => self.trim_connections(),
            }
        }
        debug!(target: "cairn::net", "network task stopped");
    }

    fn on_command(&mut self, command: Command) {
        let swarm = &mut self.swarm;
        match command {
            Command::Listen { addr, reply } if is_relayed(&addr) => {
                let result = self.relay_listens.add(addr.clone());
                self.relay_listens.ensure(swarm);
                let _ = reply.send(result.map_err(|reason| NetError::Listen {
                    addr: addr.to_string(),
                    reason,
                }));
            }
            Command::Listen { addr, reply } => {
                let result =
                    swarm
                        .listen_on(addr.clone())
                        .map(|_| ())
                        .map_err(|e| NetError::Listen {
                            addr: addr.to_string(),
                            reason: e.to_string(),
                        });
                let _ = reply.send(result);
            }
            Command::Dial { addr, reply } => {
                let result = swarm.dial(addr.clone()).map_err(|e| NetError::Dial {
                    addr: addr.to_string(),
                    reason: e.to_string(),
                });
                let _ = reply.send(result);
            }
            Command::ListenAddrs { reply } => {
                let _ = reply.send(self.listen_addrs.clone());
            }
            Command::AdvertisedAddrs { reply } => {
                let mut addrs: Vec<Multiaddr> = swarm.external_addresses().cloned().collect();
                // Relayed addresses reach a node behind NAT; loopback ones only reach it from
                // its own machine, so they go last.
                let mut listen = self.listen_addrs.clone();
                listen.sort_by_key(|a| (!is_relayed(a), is_loopback(a)));
                for addr in listen {
                    if !addrs.contains(&addr) {
                        addrs.push(addr);
                    }
                }
                addrs.truncate(cairn_protocol::MAX_ADVERT_ADDRESSES);
                let _ = reply.send(addrs);
            }
            Command::PeerAddresses { peer, mut addrs } => {
                addrs.truncate(cairn_protocol::MAX_ADVERT_ADDRESSES);
                if self.peer_addrs.len() >= MAX_PEER_ADDRS
                    && !self.peer_addrs.contains_key(&peer)
                    && let Some(evict) = self.peer_addrs.keys().next().copied()
                {
                    self.peer_addrs.remove(&evict);
                }
                self.peer_addrs.insert(peer, addrs);
            }
            Command::Peers { reply } => {
                let peers = swarm.connected_peers().map(|peer| {
                    let (addrs, agent) = match self.identified.get(peer) {
                        Some((addrs, agent)) => (addrs.clone(), Some(agent.clone())),
                        None => (Vec::new(), None),
                    };
                    let relayed = self
                        .connections
                        .get(peer)
                        .is_some_and(|c| !c.is_empty() && c.values().all(|relayed| *relayed));
                    PeerInfo {
                        peer_id: peer.to_string(),
                        addresses: addrs.iter().map(ToString::to_string).collect(),
                        agent,
                        relayed,
                    }
                });
                let _ = reply.send(peers.collect());
            }
            Command::Publish { data, reply } => {
                let topic = self.topic.clone();
                let result = swarm.behaviour_mut().gossipsub.publish(topic, data);
                let _ = reply.send(
                    result
                        .map(|_| ())
                        .map_err(|e| NetError::Publish(e.to_string())),
                );
            }
            Command::ReportValidation {
                id,
                source,
                acceptance,
            } => {
                let gossip = &mut swarm.behaviour_mut().gossipsub;
                gossip.report_message_validation_result(&id, &source, acceptance);
            }
            Command::StartProviding { key, reply } => {
                match swarm.behaviour_mut().kad.start_providing(key.into()) {
                    Ok(query) => {
                        self.providing.insert(query, reply);
                    }
                    Err(e) => {
                        let _ = reply.send(Err(NetError::Dht(e.to_string())));
                    }
                }
            }
            Command::GetProviders { key, reply } => {
                let query = swarm.behaviour_mut().kad.get_providers(key.into());
                self.finding.insert(query, (reply, HashSet::new()));
            }
            Command::RequestBlob { peer, hash, reply } => {
                let addrs = self.peer_addrs.get(&peer).cloned().unwrap_or_default();
                let request = swarm
                    .behaviour_mut()
                    .blobs
                    .send_request_with_addresses(&peer, hash, addrs);
                self.activity.request_started(peer, Instant::now());
                self.blob_requests.wait(request, reply);
            }
            Command::RespondBlob { channel, response } => {
                // Fails only when the requester went away; nothing to do then.
                let _ = swarm.behaviour_mut().blobs.send_response(channel, response);
            }
            Command::Market {
                peer,
                request,
                reply,
            } => {
                let addrs = self.peer_addrs.get(&peer).cloned().unwrap_or_default();
                let id = swarm
                    .behaviour_mut()
                    .market
                    .send_request_with_addresses(&peer, request, addrs);
                self.activity.request_started(peer, Instant::now());
                self.market_requests.wait(id, reply);
            }
            Command::RespondMarket { channel, response } => {
                let _ = swarm
                    .behaviour_mut()
                    .market
                    .send_response(channel, response);
            }
            Command::Sync {
                peer,
                request,
                reply,
            } => {
                let addrs = self.peer_addrs.get(&peer).cloned().unwrap_or_default();
                let id = swarm
                    .behaviour_mut()
                    .sync
                    .send_request_with_addresses(&peer, request, addrs);
                self.activity.request_started(peer, Instant::now());
                self.sync_requests.wait(id, reply);
            }
            Command::RespondSync { channel, response } => {
                let _ = swarm.behaviour_mut().sync.send_response(channel, response);
            }
            Command::Block {
                peer,
                blocked,
                reply,
            } => {
                let list = &mut swarm.behaviour_mut().blocked;
                if blocked {
                    list.block_peer(peer);
                } else {
                    list.unblock_peer(peer);
                }
                let _ = reply.send(());
            }
            Command::PeerScore { peer, reply } => {
                let _ = reply.send(swarm.behaviour().gossipsub.peer_score(&peer));
            }
            Command::Nat { reply } => {
                let _ = reply.send(self.nat.info());
            }
            Command::Connections { reply } => {
                let routing_table = swarm
                    .behaviour_mut()
                    .kad
                    .kbuckets()
                    .map(|b| b.num_entries() as u64)
                    .sum();
                let _ = reply.send(ConnectionStats {
                    routing_table,
                    denied_per_ip: self.swarm.behaviour().ip_limits.denied(),
                    requests_refused: self.blob_requests.refused()
                        + self.market_requests.refused()
                        + self.sync_requests.refused(),
                    ..self.stats
                });
            }
        }
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::Behaviour(event) => self.on_behaviour_event(event),
            SwarmEvent::NewListenAddr { address, .. } => {
                info!(target: "cairn::net", %address, "listening");
                self.listen_addrs.push(address);
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                self.listen_addrs.retain(|a| *a != address);
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                num_established,
                ..
            } => {
                let relayed = endpoint.is_relayed();
                let span = debug_span!(target: "cairn::net", "connection", peer = %peer_id, id = %connection_id, relayed, inbound = !endpoint.is_dialer());
                span.in_scope(|| debug!(target: "cairn::net", address = %endpoint.get_remote_address(), "connection established"));
                self.spans.insert(connection_id, span);
                if endpoint.is_dialer() {
                    self.stats.outbound += 1;
                } else {
                    self.stats.inbound += 1;
                }
                let connections = self.connections.entry(peer_id).or_default();
                connections.insert(connection_id, relayed);
                if num_established.get() == 1 {
                    self.activity.connected(peer_id, Instant::now());
                }
                if num_established.get() == 1 {
                    self.relay_listens.ensure(&mut self.swarm);
                    let peers = self.swarm.connected_peers().count();
                    self.emit(NetworkEvent::PeerConnected {
                        peer: peer_id,
                        peers,
                    });
                }
            }
            SwarmEvent::ListenerClosed { listener_id, .. } => {
                self.relay_listens.on_listener_closed(listener_id);
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                num_established,
                cause,
                ..
            } => {
                if let Some(span) = self.spans.remove(&connection_id) {
                    span.in_scope(
                        || debug!(target: "cairn::net", cause = ?cause, "connection closed"),
                    );
                }
                if let Some(connections) = self.connections.get_mut(&peer_id) {
                    connections.remove(&connection_id);
                }
                if num_established > 0 {
                    return;
                }
                self.connections.remove(&peer_id);
                self.activity.forget(&peer_id);
                self.identified.remove(&peer_id);
                self.nat.on_connection_closed(&peer_id);
            }
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                debug!(target: "cairn::net", ?peer_id, %error, "outgoing connection failed");
            }
            _ => {}
        }
    }

    fn on_behaviour_event(&mut self, event: BehaviourEvent) {
        match event {
            BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            }) => self.on_gossip(propagation_source, message_id, message),
            BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. }) => {
                self.on_identify(peer_id, info)
            }
            BehaviourEvent::Kad(kad::Event::OutboundQueryProgressed {
                id,
                result: QueryResult::Bootstrap(_),
                step,
                ..
            }) => {
                let now = Instant::now();
                if !self.refresh.go_on(id, step.count.get(), step.last, now)
                    && let Some(mut query) = self.swarm.behaviour_mut().kad.query_mut(&id)
                {
                    query.finish();
                }
            }
            BehaviourEvent::Kad(kad::Event::OutboundQueryProgressed {
                id, result, step, ..
            }) => self.on_query(id, result, step.last),
            BehaviourEvent::Blobs(event) => {
                let _in_connection = message_span(&self.spans, &event);
                self.blob_requests.route(
                    event,
                    &mut self.swarm.behaviour_mut().blobs,
                    &mut self.activity,
                    &self.events,
                    |peer, hash, channel| NetworkEvent::BlobRequest {
                        peer,
                        hash,
                        channel,
                    },
                    |_| Some(BlobResponse::Refused(BlobRefusal::Busy)),
                )
            }
            BehaviourEvent::Market(event) => {
                let _in_connection = message_span(&self.spans, &event);
                self.market_requests.route(
                    event,
                    &mut self.swarm.behaviour_mut().market,
                    &mut self.activity,
                    &self.events,
                    |peer, request, channel| NetworkEvent::MarketRequest {
                        peer,
                        request,
                        channel,
                    },
                    |request| Some(busy_answer(request)),
                )
            }
            BehaviourEvent::Sync(event) => {
                let _in_connection = message_span(&self.spans, &event);
                self.sync_requests.route(
                    event,
                    &mut self.swarm.behaviour_mut().sync,
                    &mut self.activity,
                    &self.events,
                    |peer, request, channel| NetworkEvent::SyncRequest {
                        peer,
                        request,
                        channel,
                    },
                    |_| None,
                )
            }
            BehaviourEvent::Mdns(mdns::Event::Discovered(found)) => {
                for (peer, addr) in found {
                    self.swarm
                        .behaviour_mut()
                        .kad
                        .add_address(&peer, addr.clone());
                    let _ = self.swarm.dial(addr);
                }
            }
            BehaviourEvent::Autonat(event) => {
                let private = matches!(
                    &event,
                    autonat::Event::StatusChanged {
                        new: autonat::NatStatus::Private,
                        ..
                    }
                );
                self.nat.on_autonat(event);
                if private {
                    self.relay_listens.add_auto(&self.config.nat.auto_relays);
                    self.relay_listens.ensure(&mut self.swarm);
                }
            }
            BehaviourEvent::Relay(event) => self.nat.on_relay_server(event),
            BehaviourEvent::RelayClient(event) => self.nat.on_relay_client(event),
            BehaviourEvent::Dcutr(event) => self.nat.on_dcutr(event),
            _ => {}
        }
    }

    fn on_gossip(&mut self, source: PeerId, id: gossipsub::MessageId, message: gossipsub::Message) {
        // Routed by the envelope's kind; the node checks everything else. Bytes that are not
        // an envelope go the advert way, to be rejected and counted there.
        let kind = Envelope::from_bytes(&message.data).map(|e| e.kind);
        let (msg_id, data) = (id.clone(), message.data);
        let event = match kind {
            Ok(
                MessageKind::Checkpoint | MessageKind::CheckpointVote | MessageKind::AnchorReceipt,
            ) => NetworkEvent::Checkpoint {
                source,
                id: msg_id,
                data,
            },
            // Faucet grants move credits like verdicts do: the verdict service checks both.
            Ok(MessageKind::Verdict | MessageKind::FaucetGrant) => NetworkEvent::Verdict {
                source,
                id: msg_id,
                data,
            },
            _ => NetworkEvent::Advert {
                source,
                id: msg_id,
                data,
            },
        };
        if self.events.try_send(event).is_err() {
            warn!(target: "cairn::net", "node busy; ignoring a gossip message");
            let gossip = &mut self.swarm.behaviour_mut().gossipsub;
            gossip.report_message_validation_result(&id, &source, MessageAcceptance::Ignore);
        }
    }

    fn on_identify(&mut self, peer: PeerId, info: identify::Info) {
        let protocols = info.protocols.iter().map(|p| p.as_ref());
        if !self
            .config
            .speaks_this_network(&info.protocol_version, protocols)
        {
            warn!(target: "cairn::net", %peer, version = %info.protocol_version, "peer of another network (or of none); disconnecting");
            let _ = self.swarm.disconnect_peer_id(peer);
            self.emit(NetworkEvent::WrongNetwork {
                peer,
                version: info.protocol_version,
            });
            return;
        }
        // The first peer in the routing table starts kad's bootstrap (see [`super::dht`]).
        self.add_to_routing_table(peer, &info.listen_addrs);
        self.identified
            .insert(peer, (info.listen_addrs, info.agent_version));
    }

    fn on_query(&mut self, id: QueryId, result: QueryResult, last: bool) {
        match result {
            QueryResult::StartProviding(result) => {
                if let Some(reply) = self.providing.remove(&id) {
                    // With no peer to replicate to, the record still lives locally and is
                    // served to anyone who asks, so only a local failure is an error.
                    let outcome = match result {
                        Ok(_) | Err(kad::AddProviderError::Timeout { .. }) => Ok(()),
                    };
                    let _ = reply.send(outcome);
                }
            }
            QueryResult::GetProviders(result) => {
                if let Some((_, found)) = self.finding.get_mut(&id)
                    && let Ok(GetProvidersOk::FoundProviders { providers, .. }) = result
                {
                    found.extend(providers);
                }
                if last && let Some((reply, found)) = self.finding.remove(&id) {
                    let _ = reply.send(Ok(found.into_iter().collect()));
                }
            }
            _ => {}
        }
    }

    /// Adds `peer` to the DHT routing table, unless its bucket is full: kad would then dial the
    /// bucket's oldest disconnected entry to see whether it is alive, and with connections
    /// trimmed that is a dial for nearly every newly identified peer, each dial identifying
    /// the next.
    fn add_to_routing_table(&mut self, peer: PeerId, addrs: &[Multiaddr]) {
        let kad = &mut self.swarm.behaviour_mut().kad;
        let room = kad.kbucket(peer).is_some_and(|bucket| {
            (bucket.num_entries() < kad::K_VALUE.get() && !bucket.has_pending())
                || bucket.iter().any(|e| *e.node.key.preimage() == peer)
        });
        if room {
            for addr in addrs {
                kad.add_address(&peer, addr.clone());
            }
        }
    }

    /// Closes the least recently used connections nothing needs while there are more than
    /// the high-water mark (see [`peers`]).
    fn trim_connections(&mut self) {
        let connected: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
        if connected.len() <= self.activity.high_water() {
            return;
        }
        let mut protected: HashSet<PeerId> = self
            .swarm
            .behaviour()
            .gossipsub
            .all_mesh_peers()
            .copied()
            .collect();
        protected.extend(self.nat.relay_peers().copied());
        protected.extend(
            self.connections
                .iter()
                .filter(|(_, c)| c.values().any(|relayed| *relayed))
                .map(|(p, _)| *p),
        );
        protected.extend(self.relay_listens.relays());
        let close = self
            .activity
            .to_close(&connected, &protected, Instant::now());
        if !close.is_empty() {
            debug!(target: "cairn::net", connected = connected.len(), closing = close.len(), "trimming idle connections");
        }
        for peer in close {
            if self.swarm.disconnect_peer_id(peer).is_ok() {
                self.stats.trimmed += 1;
            }
        }
    }

    fn emit(&self, event: NetworkEvent) {
        if self.events.try_send(event).is_err() {
            debug!(target: "cairn::net", "node busy; dropped a network event");
        }
    }
}

fn is_loopback(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| match p {
        libp2p::multiaddr::Protocol::Ip4(ip) => ip.is_loopback(),
        libp2p::multiaddr::Protocol::Ip6(ip) => ip.is_loopback(),
        _ => false,
    })
}

/// The answer to a market request refused because its peer has too many waiting.
fn busy_answer(request: &MarketRequest) -> MarketResponse {
    const BUSY: &str = "busy: too many of your requests are waiting for an answer";
    match request {
        MarketRequest::CallForBids(_) => MarketResponse::Declined(BUSY.into()),
        MarketRequest::Award(_) | MarketRequest::Report(_) | MarketRequest::FetchReport(_) => {
            MarketResponse::Refused(BUSY.into())
        }
    }
}

/// The span of the connection a request-response message came on, entered; `None` for other
/// events, or a connection already gone.
fn message_span<'a, Req, Resp>(
    spans: &'a HashMap<ConnectionId, Span>,
    event: &request_response::Event<Req, Resp>,
) -> Option<span::Entered<'a>> {
    match event {
        request_response::Event::Message { connection_id, .. } => {
            spans.get(connection_id).map(Span::enter)
        }
        _ => None,
    }
}
