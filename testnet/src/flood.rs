//! Resource attacks (`sim --attack flood-*`): one attacking peer asks honest nodes for more
//! than they should give, while the honest jobs run.
//!
//! - `flood-calls`: calls for bids of the gateway's, each a new job, as fast as the answers
//!   come (a provider remembers every call it bids on until its bid expires). Providers take
//!   calls and awards only from their requester's own connection, so the attacker floods
//!   in its gateway's name, the one identity it can answer for;
//! - `flood-awards`: for each call the attacker makes, its award sent many times over, and
//!   awards for jobs never called (each accepted award takes a slot);
//! - `flood-blobs`: requests for the blobs of honest jobs (module hashes are public) and for
//!   blobs nobody holds;
//! - `flood-sync`: advert, checkpoint and reputation-leaf sync requests (a few bytes asking for
//!   up to 4 MiB);
//! - `flood-connections`: K identities of one host (127.0.0.2) dialing every honest node.
//!
//! Every request goes to one victim per round, the victims taken in turn, so that one node
//! sees the whole burst. `requests_sent` counts the requests (or dials); `requests_refused`
//! those the victim refused: a busy or duplicate answer, a closed stream, a denied
//! connection.

use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Poll;
use std::time::Duration;

use cairn_node::Node;
use cairn_node::net::{BlobResponse, MarketRequest, MarketResponse, SyncRequest};
use cairn_protocol::{
    Award, BlobHash, CallForBids, Envelope, JobId, JobSpec, Limits, NetworkId, NodeId,
    Requirements, Timestamp,
};
use futures::future::{BoxFuture, join_all};
use futures::{FutureExt, StreamExt};
use libp2p::core::transport::{DialOpts, ListenerId, TransportError, TransportEvent};
use libp2p::core::{Transport, upgrade};
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{SwarmEvent, dummy};
use libp2p::{Multiaddr, PeerId, Swarm, SwarmBuilder, noise, yamux};
use libp2p_identity::ed25519;
use tokio::sync::watch;

use crate::rng::SimRng;

/// The limits of the attacker's own jobs: small, so that a provider bids on them
/// (the trust attacks' forged jobs use them too).
pub(crate) const ATTACK_JOB_LIMITS: Limits = Limits {
    fuel: 1_000_000,
    memory_bytes: 1 << 20,
    wall_time_ms: 1_000,
    max_output_bytes: 1 << 10,
};

/// Requests sent to the victim of a round, at once.
pub(crate) const BURST: usize = 64;

/// Where the connection flood dials from: one host, not the honest nodes' 127.0.0.1.
const FLOOD_HOST: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

/// What a flood sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FloodKind {
    Calls,
    Awards,
    Blobs,
    Sync,
}

/// An honest node as the flood sees it.
#[derive(Clone, Debug)]
pub(crate) struct Victim {
    pub peer: PeerId,
    pub id: NodeId,
}

/// Requests sent and refused so far; shared with the connection flood's tasks.
#[derive(Clone, Default)]
pub(crate) struct Counts {
    sent: Arc<AtomicU64>,
    refused: Arc<AtomicU64>,
}

impl Counts {
    fn sent(&self, n: u64) {
        self.sent.fetch_add(n, Ordering::Relaxed);
    }

    fn refused(&self, n: u64) {
        self.refused.fetch_add(n, Ordering::Relaxed);
    }

    /// (sent, refused).
    pub(crate) fn read(&self) -> (u64, u64) {
        (
            self.sent.load(Ordering::Relaxed),
            self.refused.load(Ordering::Relaxed),
        )
    }
}

/// A request flood from the gateway node.
pub(crate) struct Flood {
    kind: FloodKind,
    /// The gateway's key: the calls and awards are its own.
    key: ed25519::Keypair,
    id: NodeId,
    network: NetworkId,
    /// Public blob hashes (the example guests), asked for by `flood-blobs`.
    known_blobs: Vec<BlobHash>,
    rng: SimRng,
    round: usize,
    pub(crate) counts: Counts,
}

impl Flood {
    /// A flood of `kind` in the name of the gateway whose key is `key`.
    pub(crate) fn new(
        kind: FloodKind,
        key: ed25519::Keypair,
        network: NetworkId,
        seed: u64,
    ) -> Self {
        let rng = SimRng::new(seed ^ 0xf100d);
        let known_blobs = cairn_runtime::guests::NAMES
            .iter()
            .filter_map(|name| cairn_runtime::guests::bytes(name).ok())
            .map(|bytes| BlobHash::of(&bytes))
            .collect();
        Self {
            kind,
            id: NodeId::from_keypair(&key),
            key,
            network,
            known_blobs,
            rng,
            round: 0,
            counts: Counts::default(),
        }
    }

    /// One round: a burst of [`BURST`] requests to the next victim, waiting for their
    /// answers.
    pub(crate) async fn strike(&mut self, gateway: &Node, victims: &[Victim], now: Timestamp) {
        let Some(victim) = victims.get(self.round % victims.len().max(1)).cloned() else {
            return;
        };
        self.round += 1;
        let net = gateway.net();
        let refused: usize = match self.kind {
            FloodKind::Calls => {
                let calls = (0..BURST)
                    .filter_map(|_| self.call(now).map(|(_, c)| MarketRequest::CallForBids(c)))
                    .collect();
                self.market_burst(gateway, victim.peer, calls, |a| {
                    matches!(a, MarketResponse::Bid(_))
                })
                .await
            }
            FloodKind::Awards => {
                // One real call, so that one award is valid; then that award many times over,
                // and awards for jobs never called.
                let Some((spec, call)) = self.call(now) else {
                    return;
                };
                let refused = self
                    .market_burst(
                        gateway,
                        victim.peer,
                        vec![MarketRequest::CallForBids(call)],
                        |a| matches!(a, MarketResponse::Bid(_)),
                    )
                    .await;
                let Ok(job) = spec.id() else {
                    return;
                };
                let mut awards: Vec<MarketRequest> = (0..BURST / 2)
                    .filter_map(|_| self.award(job, &victim, now))
                    .map(MarketRequest::Award)
                    .collect();
                for _ in 0..BURST / 2 {
                    let made_up = JobId(self.rng.bytes32());
                    awards.extend(self.award(made_up, &victim, now).map(MarketRequest::Award));
                }
                refused
                    + self
                        .market_burst(gateway, victim.peer, awards, |a| {
                            matches!(a, MarketResponse::Accepted)
                        })
                        .await
            }
            FloodKind::Blobs => {
                let hashes: Vec<BlobHash> = (0..BURST)
                    .map(
                        |i| match self.known_blobs.get(i % (self.known_blobs.len() + 1)) {
                            Some(hash) => *hash,
                            None => BlobHash(self.rng.bytes32()),
                        },
                    )
                    .collect();
                self.counts.sent(hashes.len() as u64);
                let answers =
                    join_all(hashes.into_iter().map(|h| net.request_blob(victim.peer, h))).await;
                // Not holding a blob is an answer; a refusal is anything but the bytes or
                // "not found".
                answers
                    .iter()
                    .filter(|a| {
                        !matches!(a, Ok(BlobResponse::Found(_)) | Ok(BlobResponse::NotFound))
                    })
                    .count()
            }
            FloodKind::Sync => {
                let requests: Vec<SyncRequest> = (0..BURST)
                    .map(|i| match i % 3 {
                        0 => SyncRequest::Adverts,
                        1 => SyncRequest::Checkpoints { from: 0 },
                        _ => SyncRequest::Leaves { epoch: 0 },
                    })
                    .collect();
                self.counts.sent(requests.len() as u64);
                let answers =
                    join_all(requests.into_iter().map(|r| net.sync(victim.peer, r))).await;
                answers.iter().filter(|a| a.is_err()).count()
            }
        };
        self.counts.refused(refused as u64);
    }

    /// Sends `requests` to `peer` at once and counts them as sent; returns how many got an
    /// answer other than one `taken` says the victim took.
    async fn market_burst(
        &self,
        gateway: &Node,
        peer: PeerId,
        requests: Vec<MarketRequest>,
        taken: impl Fn(&MarketResponse) -> bool,
    ) -> usize {
        self.counts.sent(requests.len() as u64);
        let net = gateway.net();
        let answers = join_all(requests.into_iter().map(|r| net.market(peer, r))).await;
        answers
            .iter()
            .filter(|a| !a.as_ref().is_ok_and(&taken))
            .count()
    }

    /// A call for bids of a new job of the gateway's, with its spec.
    fn call(&mut self, now: Timestamp) -> Option<(JobSpec, Envelope)> {
        let spec = JobSpec {
            requester: self.id,
            nonce: self.rng.next_u64(),
            module: self
                .known_blobs
                .first()
                .copied()
                .unwrap_or(BlobHash([0; 32])),
            input: BlobHash(self.rng.bytes32()),
            args: Vec::new(),
            limits: ATTACK_JOB_LIMITS,
            requirements: Requirements::default(),
            replicas: 1,
            quorum: 1,
            max_replicas: 1,
            max_price: u64::MAX,
            bid_deadline: now.plus_ms(2_000),
            deadline: now.plus_ms(60_000),
        };
        let call = CallForBids {
            spec: spec.clone(),
            issued_at: now,
        };
        let envelope = Envelope::seal(&call, &self.key, &self.network).ok()?;
        Some((spec, envelope))
    }

    fn award(&self, job: JobId, victim: &Victim, now: Timestamp) -> Option<Envelope> {
        let award = Award {
            job,
            requester: self.id,
            provider: victim.id,
            // Above any bid: a provider refuses an award below its bid, and the flood wants
            // its awards taken (each takes a slot).
            price: u64::MAX,
            report_by: now.plus_ms(30_000),
            sealed_input: None,
        };
        Envelope::seal(&award, &self.key, &self.network).ok()
    }
}

/// The connection flood: `identities` swarms on one host dialing every address in `targets`
/// (again each second while not connected) until `stop` turns true. Dials count as sent;
/// dials that fail, and connections the target closes, as refused.
pub(crate) fn flood_connections(
    identities: usize,
    targets: Vec<Multiaddr>,
    counts: Counts,
    stop: watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..identities)
        .filter_map(|_| {
            let swarm = raw_swarm().ok()?;
            let targets = targets.clone();
            let counts = counts.clone();
            let stop = stop.clone();
            Some(tokio::spawn(dial_until_stopped(
                swarm, targets, counts, stop,
            )))
        })
        .collect()
}

fn raw_swarm() -> Result<Swarm<dummy::Behaviour>, Box<dyn std::error::Error>> {
    let swarm = SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_other_transport(|key| {
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(
                FromHost(FLOOD_HOST)
                    .upgrade(upgrade::Version::V1)
                    .authenticate(noise::Config::new(key)?)
                    .multiplex(yamux::Config::default()),
            )
        })?
        .with_behaviour(|_| dummy::Behaviour)?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(600)))
        .build();
    Ok(swarm)
}

/// TCP dialing from one source address (libp2p's TCP transport lets the kernel choose it,
/// which on loopback is always 127.0.0.1). It only dials.
struct FromHost(Ipv4Addr);

impl Transport for FromHost {
    type Output = libp2p::tcp::tokio::TcpStream;
    type Error = std::io::Error;
    type ListenerUpgrade = futures::future::Pending<Result<Self::Output, Self::Error>>;
    type Dial = BoxFuture<'static, Result<Self::Output, Self::Error>>;

    fn listen_on(
        &mut self,
        _id: ListenerId,
        addr: Multiaddr,
    ) -> Result<(), TransportError<Self::Error>> {
        Err(TransportError::MultiaddrNotSupported(addr))
    }

    fn remove_listener(&mut self, _id: ListenerId) -> bool {
        false
    }

    fn dial(
        &mut self,
        addr: Multiaddr,
        _opts: DialOpts,
    ) -> Result<Self::Dial, TransportError<Self::Error>> {
        let mut parts = addr.iter();
        let target = match (parts.next(), parts.next()) {
            (Some(Protocol::Ip4(ip)), Some(Protocol::Tcp(port))) => SocketAddr::from((ip, port)),
            _ => return Err(TransportError::MultiaddrNotSupported(addr)),
        };
        let from = SocketAddr::from((self.0, 0));
        Ok(async move {
            let socket = tokio::net::TcpSocket::new_v4()?;
            socket.bind(from)?;
            let stream = socket.connect(target).await?;
            Ok(libp2p::tcp::tokio::TcpStream(stream))
        }
        .boxed())
    }

    fn poll(
        self: Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> Poll<TransportEvent<Self::ListenerUpgrade, Self::Error>> {
        Poll::Pending
    }
}

async fn dial_until_stopped(
    mut swarm: Swarm<dummy::Behaviour>,
    targets: Vec<Multiaddr>,
    counts: Counts,
    mut stop: watch::Receiver<bool>,
) {
    let mut redial = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            _ = redial.tick() => {
                for target in &targets {
                    let connected = target
                        .iter()
                        .find_map(|p| match p {
                            Protocol::P2p(peer) => Some(peer),
                            _ => None,
                        })
                        .is_some_and(|peer| swarm.is_connected(&peer));
                    if !connected && swarm.dial(target.clone()).is_ok() {
                        counts.sent(1);
                    }
                }
            }
            event = swarm.select_next_some() => match event {
                SwarmEvent::OutgoingConnectionError { .. } => counts.refused(1),
                SwarmEvent::ConnectionClosed { num_established: 0, .. } => counts.refused(1),
                _ => {}
            },
        }
        if *stop.borrow() {
            break;
        }
    }
}
