//! The advert service: this node's signed capability advert, published on gossip and
//! registered by class in the DHT, and the book of every other node's, checked and kept by
//! tier (see `cairn_protocol::adverts`), persisted between runs and synced from the first
//! peers a node meets.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_protocol::adverts::{AdvertBook, AdvertBookConfig, AdvertRejection, Inserted, Tier};
use cairn_protocol::{
    CapabilityAdvert, Envelope, EnvelopeError, NodeId, PriceSchedule, Requirements, Timestamp,
    Verified,
};
use libp2p::gossipsub::MessageId;
use libp2p::{Multiaddr, PeerId};
use tokio::sync::Notify;
use tracing::{debug, warn};

use crate::context::{Context, now};
use crate::error::NodeError;
use crate::net::{self, NetError, SyncRequest, SyncResponse};
use crate::store::{self, Tree};
use crate::verdicts::Verdicts;

const ADVERT_SEQ_KEY: &[u8] = b"advert_seq";
/// After the first peer connects, the advert goes out this much later (gossipsub needs a
/// moment to learn the peer's subscriptions).
const REPUBLISH_DEBOUNCE: Duration = Duration::from_millis(750);
/// An advert that reached nobody (no subscribed peer yet) is tried again this often...
const PUBLISH_RETRY: Duration = Duration::from_secs(1);
/// ...at most this many times before waiting for the next refresh.
const PUBLISH_TRIES: u32 = 30;
/// A node asks its first this-many peers for their adverts (the sync protocol) rather than
/// waiting for republication; more than one in case a peer is slow, partial or lying by
/// omission.
const SYNC_PEERS: usize = 3;

/// Why an advert, gossiped or synced, was not kept.
#[derive(Debug, thiserror::Error)]
pub enum AdvertRefused {
    /// Larger than any gossip message may be.
    #[error("larger than a gossip message may be")]
    Oversize,
    /// The envelope does not open.
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    /// The book refuses it (expired, replayed, crowded out, ...).
    #[error(transparent)]
    Book(#[from] AdvertRejection),
    /// The book's lock is poisoned.
    #[error("internal error")]
    Internal,
}

impl AdvertRefused {
    /// A stable, short label of the cause, for counting rejections by reason.
    pub fn reason(&self) -> &'static str {
        match self {
            AdvertRefused::Oversize => "oversize",
            AdvertRefused::Envelope(e) => e.reason(),
            AdvertRefused::Book(e) => e.reason(),
            AdvertRefused::Internal => "internal",
        }
    }
}

/// The advert service (see the module docs). Cheap to clone.
#[derive(Clone)]
pub struct Adverts {
    ctx: Arc<Context>,
    verdicts: Verdicts,
    state: Arc<State>,
}

struct State {
    book: Mutex<AdvertBook>,
    republish: Notify,
    /// The addresses this node's advert lists, as of its last publication.
    advertised: Mutex<Vec<String>>,
    /// Capability classes registered in the DHT since the node last had no peer. Provider
    /// records live 48 h and kad republishes them itself, so an advert refresh does not
    /// register them again (each registration is a DHT walk that dials about 20 peers).
    provided_classes: Mutex<BTreeSet<String>>,
    /// Peers asked for their adverts since start (see [`SYNC_PEERS`]).
    synced_from: AtomicUsize,
}

impl Adverts {
    pub(crate) fn new(ctx: Arc<Context>, verdicts: Verdicts, config: AdvertBookConfig) -> Self {
        Self {
            ctx,
            verdicts,
            state: Arc::new(State {
                book: Mutex::new(AdvertBook::new(config)),
                republish: Notify::new(),
                advertised: Mutex::new(Vec::new()),
                provided_classes: Mutex::new(BTreeSet::new()),
                synced_from: AtomicUsize::new(0),
            }),
        }
    }

    /// A new connection: after being alone (start, or a network outage) the advert goes out
    /// again, because what was announced meanwhile reached nobody; the first few peers are
    /// asked for their adverts.
    pub(crate) fn on_peer_connected(&self, peer: PeerId, peers: usize) {
        if peers == 1 {
            if let Ok(mut provided) = self.state.provided_classes.lock() {
                provided.clear();
            }
            self.state.republish.notify_one();
        }
        if self.state.synced_from.fetch_add(1, Ordering::Relaxed) < SYNC_PEERS {
            let this = self.clone();
            self.ctx.spawn(async move { this.sync_from(peer).await });
        }
    }

    /// Unexpired adverts that meet `requirements`, this node's own included.
    pub fn matching(&self, requirements: &Requirements) -> Vec<CapabilityAdvert> {
        let book = self.state.book.lock();
        book.map_or_else(
            |_| Vec::new(),
            |b| {
                b.matching(requirements, now())
                    .into_iter()
                    .cloned()
                    .collect()
            },
        )
    }

    /// The advert held for `peer`, if any.
    pub fn of(&self, peer: &NodeId) -> Option<CapabilityAdvert> {
        let book = self.state.book.lock().ok()?;
        book.get(peer).map(|v| v.message().clone())
    }

    /// Number of peers whose adverts are held (this node's own included).
    pub fn count(&self) -> usize {
        self.state.book.lock().map_or(0, |b| b.len())
    }

    /// Peers that registered capability `class` (`cpu`, `gpu`, `gpu:sm90`, ...) in the DHT.
    pub async fn lookup_class(&self, class: &str) -> Result<Vec<PeerId>, NodeError> {
        let key = net::class_key(self.ctx.network_name(), class);
        Ok(self.ctx.net.get_providers(key).await?)
    }

    /// What this node offers, as an unsigned advert with sequence 0 and no lifetime.
    pub fn capabilities(&self) -> CapabilityAdvert {
        let o = self.ctx.options();
        CapabilityAdvert {
            peer: self.ctx.node_id(),
            sequence: 0,
            issued_at: Timestamp(0),
            expires_at: Timestamp(0),
            gpus: o.hardware.gpus.clone(),
            simulated_gpus: o.hardware.source == crate::gpu::GpuSource::Simulated,
            cpu_cores: o.hardware.cpu_cores,
            memory_bytes: o.hardware.memory_bytes,
            runtime: o.runtime.clone(),
            price: PriceSchedule {
                per_mega_fuel: o.config.price.per_mega_fuel,
                per_gpu_second: o.config.price.per_gpu_second,
                minimum: o.config.price.minimum,
            },
            capacity: o.config.capacity,
            addresses: self
                .state
                .advertised
                .lock()
                .map(|a| a.clone())
                .unwrap_or_default(),
        }
    }

    /// This node's advert as of now, with the next sequence number (persisted first, so a
    /// restarted node never reuses one).
    pub fn make_advert(&self) -> Result<Verified<CapabilityAdvert>, NodeError> {
        let o = self.ctx.options();
        let kv = &self.ctx.kv;
        let last: u64 = match kv.get(Tree::Identity, ADVERT_SEQ_KEY)? {
            Some(bytes) => store::decode_value(&bytes)?,
            None => 0,
        };
        let issued_at = now();
        let sequence = (last + 1).max(issued_at.0);
        kv.put(
            Tree::Identity,
            ADVERT_SEQ_KEY,
            &store::encode_value(&sequence)?,
        )?;
        kv.flush()?;
        let advert = CapabilityAdvert {
            sequence,
            issued_at,
            expires_at: issued_at.plus_ms(o.spec.advert_ttl_secs.saturating_mul(1000)),
            ..self.capabilities()
        };
        self.ctx.sign(advert)
    }

    /// Signs and publishes a fresh advert, and registers its capability classes in the DHT.
    /// Yields whether any peer was sent it (`false`: no subscribed peer yet).
    pub async fn publish(&self) -> Result<bool, NodeError> {
        let addrs = self.ctx.net.advertised_addrs().await?;
        if let Ok(mut advertised) = self.state.advertised.lock() {
            *advertised = addrs.iter().map(ToString::to_string).collect();
        }
        let advert = self.make_advert()?;
        let new_classes: Vec<String> = match self.state.provided_classes.lock() {
            Ok(mut provided) => advert
                .message()
                .classes()
                .into_iter()
                .filter(|class| provided.insert(class.clone()))
                .collect(),
            Err(_) => advert.message().classes(),
        };
        for class in new_classes {
            self.ctx
                .provide_in_background(net::class_key(self.ctx.network_name(), &class));
        }
        let bytes = advert.envelope().to_bytes()?;
        let tier = self.verdicts.tier_of(&self.ctx.node_id());
        if let Ok(mut book) = self.state.book.lock() {
            let _ = book.insert(advert, |_| tier, now());
        }
        match self.ctx.net.publish(bytes).await {
            Ok(()) => {
                self.ctx
                    .metrics
                    .adverts_published
                    .fetch_add(1, Ordering::Relaxed);
                Ok(true)
            }
            Err(NetError::Publish(reason)) => {
                debug!(target: "cairn::adverts", %reason, "advert not published");
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Publishes at start, when the first peer connects (and again until some peer hears
    /// it), and on the refresh interval. Nodes that join later ask for the book (the sync
    /// protocol) rather than have everyone republish for them.
    pub(crate) async fn advertise(self) {
        let refresh = Duration::from_secs(self.ctx.options().spec.advert_refresh_secs);
        let mut ticker = tokio::time::interval(refresh);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                () = self.state.republish.notified() => {
                    tokio::time::sleep(REPUBLISH_DEBOUNCE.min(refresh)).await;
                }
            }
            for _ in 0..PUBLISH_TRIES {
                match self.publish().await {
                    Ok(true) => break,
                    Ok(false) => tokio::time::sleep(PUBLISH_RETRY).await,
                    Err(e) => {
                        warn!(target: "cairn::adverts", error = %e, "cannot publish advert");
                        break;
                    }
                }
            }
            if let Ok(mut book) = self.state.book.lock() {
                book.prune(now());
            }
        }
    }

    pub(crate) async fn on_gossip(&self, source: PeerId, id: MessageId, data: Vec<u8>) {
        let checked = self.accept(&data).await.map_err(|e| e.reason());
        if self
            .ctx
            .settle_gossip("advert", source, id, checked)
            .await
            .is_some()
        {
            self.ctx
                .metrics
                .adverts_accepted
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Addresses (each ending in `/p2p/PEER`) of up to `most` other peers whose adverts are
    /// held, to dial at start beside the bootstrap peers: a node whose bootstrap peer has
    /// moved (restarted on another port) still finds its way back into the network, and from
    /// there to the peers it owes reports.
    pub(crate) fn known_addresses(&self, most: usize) -> Vec<Multiaddr> {
        let Ok(book) = self.state.book.lock() else {
            return Vec::new();
        };
        let me = self.ctx.peer_id();
        book.verified()
            .filter_map(|advert| reachable_at(advert.message()))
            .filter(|(peer, _)| *peer != me)
            .take(most)
            .flat_map(|(peer, addrs)| {
                addrs
                    .into_iter()
                    .map(move |a| a.with_p2p(peer).unwrap_or_else(|a| a))
            })
            .collect()
    }

    /// The signed bytes of every unexpired advert held (this node's own included), as a sync
    /// answer: at most [`net::MAX_SYNC_ADVERTS`] adverts and [`net::MAX_SYNC_FRAME`] bytes.
    pub(crate) fn envelopes(&self) -> Vec<Vec<u8>> {
        let Ok(book) = self.state.book.lock() else {
            return Vec::new();
        };
        let now = now();
        let mut total = 0usize;
        let mut out = Vec::new();
        for advert in book.verified().filter(|a| a.message().expires_at > now) {
            let Ok(bytes) = advert.envelope().to_bytes() else {
                continue;
            };
            // Room for the frame's length prefixes.
            total += bytes.len() + 16;
            if out.len() >= net::MAX_SYNC_ADVERTS || total > net::MAX_SYNC_FRAME - 1024 {
                break;
            }
            out.push(bytes);
        }
        out
    }

    /// Asks `peer` for its adverts and takes every valid one that is newer than what is held.
    /// Each is checked as a gossiped advert would be; bad ones are counted, not kept.
    async fn sync_from(self, peer: PeerId) {
        let adverts = match self.ctx.net.sync(peer, SyncRequest::Adverts).await {
            Ok(SyncResponse::Adverts(adverts)) => adverts,
            Ok(_) => {
                self.ctx.metrics.reject("synced_advert", "wrong_answer");
                self.state.synced_from.fetch_sub(1, Ordering::Relaxed);
                return;
            }
            Err(e) => {
                debug!(target: "cairn::adverts", %peer, error = %e, "advert sync failed");
                // Let another peer be asked instead.
                self.state.synced_from.fetch_sub(1, Ordering::Relaxed);
                return;
            }
        };
        let mut learned = 0u64;
        for data in adverts {
            match self.accept(&data).await {
                Ok(_) => learned += 1,
                // Already held (the same or a newer sequence): not an offence.
                Err(AdvertRefused::Book(AdvertRejection::Replayed { .. })) => {}
                Err(e) => self.ctx.metrics.reject("synced_advert", e.reason()),
            }
        }
        self.ctx
            .metrics
            .adverts_synced
            .fetch_add(learned, Ordering::Relaxed);
        debug!(target: "cairn::adverts", %peer, learned, "advert sync done");
    }

    /// Checks and keeps an advert, gossiped or synced: its signature vouches for it,
    /// whoever forwarded it.
    async fn accept(&self, data: &[u8]) -> Result<Inserted, AdvertRefused> {
        if data.len() > net::MAX_GOSSIP_BYTES {
            return Err(AdvertRefused::Oversize);
        }
        let advert = Envelope::open::<CapabilityAdvert>(data, self.ctx.network())?;
        let peer = advert.signer();
        let reach = reachable_at(advert.message());
        let tier = self.verdicts.tier_of(&peer);
        let inserted = {
            let mut book = self
                .state
                .book
                .lock()
                .map_err(|_| AdvertRefused::Internal)?;
            book.insert(advert, |_| tier, now())?
        };
        // Not flushed: the book is a cache that peers and refreshes rebuild, and a sync per
        // advert would cost every node a disk flush for every advert in the network.
        if self
            .ctx
            .kv
            .put(Tree::Adverts, peer.as_bytes(), data)
            .is_err()
        {
            warn!(target: "cairn::adverts", "cannot persist advert");
        }
        if let Some((peer, addrs)) = reach {
            let _ = self.ctx.net.add_peer_addresses(peer, addrs).await;
        }
        Ok(inserted)
    }

    /// Loads the adverts kept from the last run that are still valid, and where their peers
    /// said they can be reached.
    pub(crate) async fn load(&self) {
        let mut reach = Vec::new();
        let table = self.verdicts.table();
        {
            let kv = &self.ctx.kv;
            let Ok(keys) = kv.keys(Tree::Adverts, b"") else {
                return;
            };
            let Ok(mut book) = self.state.book.lock() else {
                return;
            };
            for key in keys {
                let Ok(Some(bytes)) = kv.get(Tree::Adverts, &key) else {
                    continue;
                };
                let Ok(advert) = Envelope::open::<CapabilityAdvert>(&bytes, self.ctx.network())
                else {
                    let _ = kv.remove(Tree::Adverts, &key);
                    continue;
                };
                let at = reachable_at(advert.message());
                if book.insert(advert, |p| Tier::of(&table, p), now()).is_err() {
                    let _ = kv.remove(Tree::Adverts, &key);
                } else {
                    reach.extend(at);
                }
            }
        }
        for (peer, addrs) in reach {
            let _ = self.ctx.net.add_peer_addresses(peer, addrs).await;
        }
    }
}

/// The peer of an advert and the addresses it lists that parse (the rest are ignored).
fn reachable_at(advert: &CapabilityAdvert) -> Option<(PeerId, Vec<Multiaddr>)> {
    let peer = advert.peer.peer_id().ok()?;
    let addrs: Vec<Multiaddr> = advert
        .addresses
        .iter()
        .filter_map(|a| a.parse().ok())
        .collect();
    (!addrs.is_empty()).then_some((peer, addrs))
}
