//! A running node: the store, the swarm task, the advert and blob services, and the API.
//!
//! [`Node::start`] opens the data dir, loads or creates the identity, starts the swarm, listens,
//! dials the bootstrap peers, and spawns the background tasks. The returned [`RunningNode`]
//! stops them when dropped or shut down (swarm, services, then a final store flush).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cairn_protocol::adverts::{AdvertBook, AdvertBookConfig, Inserted, Tier};
use cairn_protocol::{
    BlobHash, CapabilityAdvert, Envelope, NetworkId, NodeId, PriceSchedule, Requirements,
    Timestamp, Verified,
};
use libp2p::gossipsub::{MessageAcceptance, MessageId};
use libp2p::identity::{Keypair, ed25519};
use libp2p::{Multiaddr, PeerId};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::config::{NetworkSpec, NodeConfig};
use crate::gpu::Hardware;
use crate::metrics::Metrics;
use crate::net::{
    self, BlobResponse, EventLoop, NetConfig, NetError, NetworkEvent, NetworkHandle, SyncRequest,
    SyncResponse,
};
use crate::store::{self, BlobStore, Durability, KvStore, SledStore, StoreError, Tree};

const IDENTITY_KEY: &[u8] = b"ed25519";
const ADVERT_SEQ_KEY: &[u8] = b"advert_seq";
/// How long storing a blob waits for its DHT announcement before returning.
const PROVIDE_WAIT: Duration = Duration::from_secs(10);
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

/// Everything a node needs to start.
#[derive(Clone, Debug)]
pub struct NodeOptions {
    /// Data directory (database, API token and address).
    pub data_dir: PathBuf,
    /// Settings, with command-line overrides already applied.
    pub config: NodeConfig,
    /// The network to join.
    pub spec: NetworkSpec,
    /// What this machine offers.
    pub hardware: Hardware,
    /// The sandbox identity advertised.
    pub runtime: String,
    /// Gossipsub heartbeat and other network timings.
    pub net: Option<NetConfig>,
    /// Fault injection for tests and simulations; off by default.
    pub faults: crate::market::FaultInjection,
    /// A sandbox to share with other nodes in the same process (simulations: one engine,
    /// one compiled-module cache, one ticker thread); `None` builds the node's own.
    pub sandbox: Option<SharedSandbox>,
    /// The ed25519 secret key to create the identity from when the data dir has none yet
    /// (seeded simulations); `None` generates a random one. A stored identity always wins.
    pub identity_seed: Option<[u8; 32]>,
}

/// A [`cairn_runtime::Sandbox`] shared by several in-process nodes.
#[derive(Clone)]
pub struct SharedSandbox(pub cairn_runtime::Sandbox);

impl std::fmt::Debug for SharedSandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedSandbox")
            .field("config", self.0.config())
            .finish()
    }
}

/// Why a node could not start or an operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The network failed.
    #[error(transparent)]
    Net(#[from] NetError),
    /// The swarm could not be built.
    #[error(transparent)]
    Swarm(#[from] net::SwarmBuildError),
    /// A file in the data dir could not be written or read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The stored identity is not a valid key.
    #[error("the identity in the data dir is corrupt: {0}")]
    Identity(String),
    /// An address is not a valid multiaddr.
    #[error("invalid multiaddr {addr:?}: {reason}")]
    Multiaddr {
        /// The text.
        addr: String,
        /// Why.
        reason: String,
    },
    /// A blob could not be found on any provider.
    #[error("blob {hash} not found: {reason}")]
    BlobUnavailable {
        /// The blob.
        hash: BlobHash,
        /// What was tried.
        reason: String,
    },
    /// The sandbox could not be created.
    #[error("cannot create the sandbox: {0}")]
    Sandbox(String),
    /// A message could not be signed or encoded.
    #[error("cannot sign: {0}")]
    Sign(String),
    /// The network spec or config is not usable.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
}

/// The current time as the protocol counts it.
pub fn now() -> Timestamp {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    Timestamp(u64::try_from(ms).unwrap_or(u64::MAX))
}

/// Loads the node's key from the store, creating it on first start.
pub fn load_or_create_identity(kv: &dyn KvStore) -> Result<ed25519::Keypair, NodeError> {
    load_or_create_identity_from(kv, None)
}

/// The node id a fresh data dir gets from identity seed `seed` (see
/// [`NodeOptions::identity_seed`]), known before the node starts (a simulation's first
/// checkpoint committee names it).
pub fn node_id_from_seed(mut seed: [u8; 32]) -> Result<NodeId, NodeError> {
    let secret = ed25519::SecretKey::try_from_bytes(&mut seed)
        .map_err(|e| NodeError::Identity(e.to_string()))?;
    Ok(NodeId::from_keypair(&ed25519::Keypair::from(secret)))
}

/// [`load_or_create_identity`], creating the key from `seed` (an ed25519 secret key) when
/// the store has none and a seed is given.
pub fn load_or_create_identity_from(
    kv: &dyn KvStore,
    seed: Option<[u8; 32]>,
) -> Result<ed25519::Keypair, NodeError> {
    if let Some(bytes) = kv.get(Tree::Identity, IDENTITY_KEY)? {
        let mut raw: Vec<u8> = store::decode_value(&bytes)?;
        return ed25519::Keypair::try_from_bytes(&mut raw)
            .map_err(|e| NodeError::Identity(e.to_string()));
    }
    let keypair = match seed {
        Some(mut seed) => ed25519::SecretKey::try_from_bytes(&mut seed)
            .map(ed25519::Keypair::from)
            .map_err(|e| NodeError::Identity(e.to_string()))?,
        None => ed25519::Keypair::generate(),
    };
    kv.put(
        Tree::Identity,
        IDENTITY_KEY,
        &store::encode_value(&keypair.to_bytes().to_vec())?,
    )?;
    kv.flush()?;
    Ok(keypair)
}

/// A cloneable handle to a running node.
#[derive(Clone)]
pub struct Node {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) keypair: ed25519::Keypair,
    node_id: NodeId,
    /// The network every signature covers.
    network: NetworkId,
    pub(crate) options: NodeOptions,
    pub(crate) net: NetworkHandle,
    pub(crate) kv: Arc<dyn KvStore>,
    blobs: BlobStore,
    adverts: Mutex<AdvertBook>,
    pub(crate) metrics: Metrics,
    republish: Notify,
    /// The addresses this node's advert lists, as of its last publication.
    advertised: Mutex<Vec<String>>,
    /// Capability classes registered in the DHT since the node last had no peer. Provider
    /// records live 48 h and kad republishes them itself, so an advert refresh does not
    /// register them again (each registration is a DHT walk that dials about 20 peers).
    provided_classes: Mutex<BTreeSet<String>>,
    /// Peers asked for their adverts since start (see [`SYNC_PEERS`]).
    synced_from: std::sync::atomic::AtomicUsize,
    pub(crate) market: crate::market::MarketState,
    pub(crate) checkpoints: crate::checkpoints::CheckpointService,
    /// Tasks spawned by the node's services, aborted at shutdown.
    tasks: Mutex<Vec<tokio::task::AbortHandle>>,
}

/// A started node and its tasks; dropping it stops them.
#[must_use = "the node stops when this is dropped"]
pub struct RunningNode {
    node: Node,
    api_addr: SocketAddr,
    tasks: Vec<JoinHandle<()>>,
}

impl RunningNode {
    /// The node's handle.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// Where the control API listens.
    pub fn api_addr(&self) -> SocketAddr {
        self.api_addr
    }

    /// Stops the tasks (API, services, swarm, then everything they spawned), flushes the
    /// store, and waits (up to 5 s, for runs in the sandbox to end) until the store is closed,
    /// so the same data dir can be opened again.
    pub async fn shutdown(mut self) {
        self.stop();
        let kv = self.node.inner.kv.clone();
        let store = Arc::downgrade(&kv);
        let _ = tokio::task::spawn_blocking(move || kv.flush()).await;
        drop(self);
        // Aborted tasks drop their handles when next polled, and blocking reads finish on
        // their own; the database closes when the last handle goes.
        for _ in 0..500 {
            if store.strong_count() == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        warn!(target: "cairn::node", "node state still in use 5 s after shutdown");
    }

    fn stop(&mut self) {
        for task in self.tasks.drain(..).rev() {
            task.abort();
        }
        self.node.abort_tasks();
    }
}

impl Drop for RunningNode {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Node {
    /// Opens the data dir and starts the node.
    pub async fn start(options: NodeOptions) -> Result<RunningNode, NodeError> {
        let io = |path: PathBuf| move |source| NodeError::Io { path, source };
        crate::files::create_private_dir(&options.data_dir)
            .map_err(io(options.data_dir.clone()))?;
        let kv: Arc<dyn KvStore> = Arc::new(SledStore::open(
            &options.data_dir.join("db"),
            options.config.cache_bytes,
        )?);
        let keypair = load_or_create_identity_from(kv.as_ref(), options.identity_seed)?;
        let blobs = BlobStore::open(
            kv.clone(),
            &options.data_dir.join("blobs"),
            options.config.max_blob_bytes,
            options.config.blob_store_bytes,
        )?;

        let mut net_config = options
            .net
            .clone()
            .unwrap_or_else(|| NetConfig::new(&options.spec.name));
        net_config.network = options.spec.name.clone();
        net_config.mdns = options.spec.mdns;
        net_config.max_connections = options.config.max_connections;
        net_config.peer_target = options.config.peer_target;
        net_config.max_blob_bytes = options.config.max_blob_bytes;
        net_config.nat = options.config.nat_config(&options.spec);
        let sandbox_config = cairn_runtime::SandboxConfig::default()
            .with_max_concurrent_jobs(usize::try_from(options.config.capacity.max(1)).unwrap_or(1));
        let sandbox = match &options.sandbox {
            Some(shared) => shared.0.clone(),
            None => cairn_runtime::Sandbox::new(sandbox_config)
                .map_err(|e| NodeError::Sandbox(e.to_string()))?,
        };
        let checkpoints = crate::checkpoints::CheckpointService::open(
            &options.spec,
            kv.as_ref(),
            &options.data_dir,
        )
        .await?;
        let swarm = net::build_swarm(Keypair::from(keypair.clone()), &net_config)?;
        let (event_loop, net, events) = EventLoop::new(swarm, net_config)?;
        let mut tasks = vec![tokio::spawn(event_loop.run())];
        let network = options.spec.network_id().map_err(NodeError::Config)?;
        let roots = options.spec.roots().map_err(NodeError::Config)?;
        if roots.is_empty() {
            warn!(target: "cairn::node", network = %options.spec.name, "this network names no trust roots (`trust_roots`, or a first checkpoint committee): every requester's verdicts count, which only a closed cluster can afford; see docs/trust.md");
        }
        let book_config = if roots.is_empty() {
            // A closed cluster (no trust roots): every member is on probation at first and
            // typically on one address range, so the Sybil caps would shut members out.
            AdvertBookConfig {
                probation_share_percent: 100,
                max_probationers_per_range: usize::MAX,
                ..AdvertBookConfig::default()
            }
        } else {
            AdvertBookConfig::default()
        };
        let market = crate::market::MarketState::new(
            sandbox,
            kv.clone(),
            &options.config.verification,
            roots,
        );

        let node = Node {
            inner: Arc::new(Inner {
                node_id: NodeId::from_keypair(&keypair),
                network,
                keypair,
                options,
                net,
                kv,
                blobs,
                adverts: Mutex::new(AdvertBook::new(book_config)),
                metrics: Metrics::default(),
                republish: Notify::new(),
                synced_from: std::sync::atomic::AtomicUsize::new(0),
                advertised: Mutex::new(Vec::new()),
                provided_classes: Mutex::new(BTreeSet::new()),
                market,
                checkpoints,
                tasks: Mutex::new(Vec::new()),
            }),
        };
        node.replay_verdicts();
        node.load_adverts().await;
        node.resume_jobs();
        tasks.push(tokio::spawn(node.clone().serve_network(events)));
        node.listen_and_dial().await?;
        tasks.push(tokio::spawn(node.clone().advertise()));
        tasks.push(tokio::spawn(node.clone().run_checkpoints()));
        let (api_addr, api_task) = crate::api::serve(node.clone()).await?;
        tasks.push(api_task);
        info!(target: "cairn::node", peer_id = %node.peer_id(), %api_addr, network = %node.inner.options.spec.name, "node started");
        Ok(RunningNode {
            node,
            api_addr,
            tasks,
        })
    }

    async fn listen_and_dial(&self) -> Result<(), NodeError> {
        let options = &self.inner.options;
        for addr in &options.config.listen {
            self.inner.net.listen(parse_addr(addr)?).await?;
        }
        let bootstrap = options
            .spec
            .bootstrap
            .iter()
            .chain(&options.config.bootstrap);
        for addr in bootstrap {
            if let Err(e) = self.inner.net.dial(parse_addr(addr)?).await {
                warn!(target: "cairn::node", %addr, error = %e, "cannot dial bootstrap peer");
            }
        }
        Ok(())
    }

    /// Spawns a task that lives no longer than the node: [`RunningNode::shutdown`] aborts it.
    pub(crate) fn spawn<F>(&self, task: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let handle = tokio::spawn(task);
        if let Ok(mut tasks) = self.inner.tasks.lock() {
            tasks.retain(|t| !t.is_finished());
            tasks.push(handle.abort_handle());
        }
    }

    fn abort_tasks(&self) {
        if let Ok(mut tasks) = self.inner.tasks.lock() {
            tasks.drain(..).for_each(|t| t.abort());
        }
    }

    /// This node's libp2p peer id.
    pub fn peer_id(&self) -> PeerId {
        self.inner.net.peer_id()
    }

    /// This node's protocol identity.
    pub fn node_id(&self) -> NodeId {
        self.inner.node_id
    }

    /// The network this node signs and verifies messages for.
    pub fn network(&self) -> &NetworkId {
        &self.inner.network
    }

    /// The options it runs with.
    pub fn options(&self) -> &NodeOptions {
        &self.inner.options
    }

    /// The network handle.
    pub fn net(&self) -> &NetworkHandle {
        &self.inner.net
    }

    /// The blob store.
    pub fn blobs(&self) -> &BlobStore {
        &self.inner.blobs
    }

    /// The raw key-value store (for inspection and tests).
    pub fn kv(&self) -> &Arc<dyn KvStore> {
        &self.inner.kv
    }

    /// The counters.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Unexpired adverts that meet `requirements`, this node's own included.
    pub fn adverts_matching(&self, requirements: &Requirements) -> Vec<CapabilityAdvert> {
        let book = self.inner.adverts.lock();
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
    pub fn advert_of(&self, peer: &NodeId) -> Option<CapabilityAdvert> {
        let book = self.inner.adverts.lock().ok()?;
        book.get(peer).map(|v| v.message().clone())
    }

    /// Number of peers whose adverts are held (this node's own included).
    pub fn advert_count(&self) -> usize {
        self.inner.adverts.lock().map_or(0, |b| b.len())
    }

    /// Stores a blob, flushes it to disk, and waits (up to 10 s) until the DHT knows this node
    /// holds it, so another node can fetch it as soon as this returns. For blobs a user hands
    /// in; the job path uses [`Node::store_blob`].
    pub async fn put_blob(&self, bytes: Vec<u8>) -> Result<BlobHash, NodeError> {
        let hash = self.write_blob(bytes).await?;
        let key = net::blob_key(&self.inner.options.spec.name, &hash);
        match tokio::time::timeout(PROVIDE_WAIT, self.inner.net.start_providing(key)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => warn!(target: "cairn::dht", %hash, error = %e, "cannot announce blob"),
            Err(_) => debug!(target: "cairn::dht", %hash, "blob announcement still in progress"),
        }
        Ok(hash)
    }

    /// Stores a blob durably and announces it in the background: for outputs and fetched
    /// blobs, which their next reader gets point to point from a known holder.
    pub async fn store_blob(&self, bytes: Vec<u8>) -> Result<BlobHash, NodeError> {
        let hash = self.write_blob(bytes).await?;
        self.provide_in_background(net::blob_key(&self.inner.options.spec.name, &hash));
        Ok(hash)
    }

    /// Stores a blob durably without announcing it in the DHT: a job's module and input on
    /// its requester, and its accepted output, which providers and the requester fetch point
    /// to point from a holder they know. Announcing each would cost a DHT walk (a few dozen
    /// requests, most over new connections) per blob.
    pub async fn save_blob(&self, bytes: Vec<u8>) -> Result<BlobHash, NodeError> {
        self.write_blob(bytes).await
    }

    /// Keeps a copy the job path can fetch again (a provider's module, input and output):
    /// not synced to disk and not announced in the DHT, because its next reader asks this
    /// node point to point and checks the hash.
    pub(crate) async fn keep_blob(&self, bytes: Vec<u8>) -> Result<BlobHash, NodeError> {
        self.write_blob_with(bytes, Durability::Cached).await
    }

    async fn write_blob(&self, bytes: Vec<u8>) -> Result<BlobHash, NodeError> {
        self.write_blob_with(bytes, Durability::Synced).await
    }

    async fn write_blob_with(
        &self,
        bytes: Vec<u8>,
        durability: Durability,
    ) -> Result<BlobHash, NodeError> {
        let blobs = self.inner.blobs.clone();
        tokio::task::spawn_blocking(move || blobs.put_with(&bytes, durability))
            .await
            .map_err(|e| NodeError::Io {
                path: "blob store".into(),
                source: std::io::Error::other(e),
            })?
            .map_err(NodeError::from)
    }

    /// The blob, from the local store or else from any provider in the network (verified).
    pub async fn get_blob(&self, hash: BlobHash) -> Result<Vec<u8>, NodeError> {
        let blobs = self.inner.blobs.clone();
        let local = tokio::task::spawn_blocking(move || blobs.get_verified(&hash))
            .await
            .map_err(|e| NodeError::Io {
                path: "blob store".into(),
                source: std::io::Error::other(e),
            })??;
        match local {
            Some(bytes) => Ok(bytes),
            None => self.fetch_blob(hash).await,
        }
    }

    /// Fetches a blob from the providers the DHT names, trying each until one sends bytes that
    /// match the hash; stores and announces it.
    pub async fn fetch_blob(&self, hash: BlobHash) -> Result<Vec<u8>, NodeError> {
        let key = net::blob_key(&self.inner.options.spec.name, &hash);
        let providers = self.inner.net.get_providers(key).await?;
        if providers.is_empty() {
            let reason = "no provider in the DHT".to_owned();
            return Err(NodeError::BlobUnavailable { hash, reason });
        }
        let bytes = self.fetch_blob_from(hash, providers).await?;
        // Found through the DHT: this node becomes one more holder others can find.
        self.provide_in_background(net::blob_key(&self.inner.options.spec.name, &hash));
        Ok(bytes)
    }

    /// Fetches a blob from the first of `peers` that sends bytes matching the hash, and
    /// stores it durably without announcing it (see [`Node::save_blob`]). Mismatching bytes
    /// are refused and counted, and the next peer is tried.
    pub async fn fetch_blob_from(
        &self,
        hash: BlobHash,
        peers: Vec<PeerId>,
    ) -> Result<Vec<u8>, NodeError> {
        self.fetch_blob_as(hash, peers, Durability::Synced).await
    }

    /// [`Node::fetch_blob_from`], keeping the bytes as `durability` says; neither is announced
    /// in the DHT.
    pub(crate) async fn fetch_blob_as(
        &self,
        hash: BlobHash,
        peers: Vec<PeerId>,
        durability: Durability,
    ) -> Result<Vec<u8>, NodeError> {
        let mut tried = Vec::new();
        for peer in peers.into_iter().filter(|p| *p != self.peer_id()) {
            match self.inner.net.request_blob(peer, hash).await {
                Ok(BlobResponse::Found(bytes)) if BlobHash::of(&bytes) == hash => {
                    self.inner
                        .metrics
                        .blobs_fetched
                        .fetch_add(1, Ordering::Relaxed);
                    self.write_blob_with(bytes.clone(), durability).await?;
                    return Ok(bytes);
                }
                Ok(BlobResponse::Found(_)) => {
                    warn!(target: "cairn::blobs", %peer, %hash, "peer sent bytes that do not match the hash");
                    self.inner.metrics.reject("blob", "hash_mismatch");
                    tried.push(format!("{peer}: corrupted"));
                }
                Ok(BlobResponse::NotFound) => tried.push(format!("{peer}: not found")),
                Err(e) => {
                    self.inner.metrics.reject("blob", "transfer_failed");
                    tried.push(format!("{peer}: {e}"));
                }
            }
        }
        Err(NodeError::BlobUnavailable {
            hash,
            reason: format!("tried {}", tried.join("; ")),
        })
    }

    /// Peers that registered capability `class` (`cpu`, `gpu`, `gpu:sm90`, ...) in the DHT.
    pub async fn lookup_class(&self, class: &str) -> Result<Vec<PeerId>, NodeError> {
        let key = net::class_key(&self.inner.options.spec.name, class);
        Ok(self.inner.net.get_providers(key).await?)
    }

    fn provide_in_background(&self, key: Vec<u8>) {
        let net = self.inner.net.clone();
        self.spawn(async move {
            if let Err(e) = net.start_providing(key).await {
                debug!(target: "cairn::dht", error = %e, "start providing failed");
            }
        });
    }

    /// What this node offers, as an unsigned advert with sequence 0 and no lifetime.
    pub fn capabilities(&self) -> CapabilityAdvert {
        let o = &self.inner.options;
        CapabilityAdvert {
            peer: self.node_id(),
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
                .inner
                .advertised
                .lock()
                .map(|a| a.clone())
                .unwrap_or_default(),
        }
    }

    /// This node's advert as of now, with the next sequence number (persisted first, so a
    /// restarted node never reuses one).
    pub fn make_advert(&self) -> Result<Verified<CapabilityAdvert>, NodeError> {
        let o = &self.inner.options;
        let kv = &self.inner.kv;
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
        Verified::sign(advert, &self.inner.keypair, self.network())
            .map_err(|e| NodeError::Sign(e.to_string()))
    }

    /// Signs and publishes a fresh advert, and registers its capability classes in the DHT.
    /// Yields whether any peer was sent it (`false`: no subscribed peer yet).
    pub async fn publish_advert(&self) -> Result<bool, NodeError> {
        let addrs = self.inner.net.advertised_addrs().await?;
        if let Ok(mut advertised) = self.inner.advertised.lock() {
            *advertised = addrs.iter().map(ToString::to_string).collect();
        }
        let advert = self.make_advert()?;
        let new_classes: Vec<String> = match self.inner.provided_classes.lock() {
            Ok(mut provided) => advert
                .message()
                .classes()
                .into_iter()
                .filter(|class| provided.insert(class.clone()))
                .collect(),
            Err(_) => advert.message().classes(),
        };
        for class in new_classes {
            self.provide_in_background(net::class_key(&self.inner.options.spec.name, &class));
        }
        let bytes = advert
            .envelope()
            .to_bytes()
            .map_err(|e| NodeError::Sign(e.to_string()))?;
        let tier = self.tier_of(&self.node_id());
        if let Ok(mut book) = self.inner.adverts.lock() {
            let _ = book.insert(advert, |_| tier, now());
        }
        match self.inner.net.publish(bytes).await {
            Ok(()) => {
                self.inner
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
    async fn advertise(self) {
        let refresh = Duration::from_secs(self.inner.options.spec.advert_refresh_secs);
        let mut ticker = tokio::time::interval(refresh);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                () = self.inner.republish.notified() => {
                    tokio::time::sleep(REPUBLISH_DEBOUNCE.min(refresh)).await;
                }
            }
            for _ in 0..PUBLISH_TRIES {
                match self.publish_advert().await {
                    Ok(true) => break,
                    Ok(false) => tokio::time::sleep(PUBLISH_RETRY).await,
                    Err(e) => {
                        warn!(target: "cairn::adverts", error = %e, "cannot publish advert");
                        break;
                    }
                }
            }
            if let Ok(mut book) = self.inner.adverts.lock() {
                book.prune(now());
            }
        }
    }

    async fn serve_network(self, mut events: mpsc::Receiver<NetworkEvent>) {
        while let Some(event) = events.recv().await {
            match event {
                NetworkEvent::Advert { source, id, data } => self.on_advert(source, id, data).await,
                NetworkEvent::BlobRequest {
                    peer,
                    hash,
                    channel,
                } => {
                    let node = self.clone();
                    self.spawn(async move {
                        let blobs = node.inner.blobs.clone();
                        let found = tokio::task::spawn_blocking(move || blobs.get(&hash)).await;
                        let response = match found {
                            Ok(Ok(Some(bytes))) => BlobResponse::Found(bytes),
                            _ => BlobResponse::NotFound,
                        };
                        debug!(target: "cairn::blobs", %peer, %hash, found = matches!(response, BlobResponse::Found(_)), "blob request");
                        node.inner
                            .metrics
                            .blobs_served
                            .fetch_add(1, Ordering::Relaxed);
                        let _ = node.inner.net.respond_blob(channel, response).await;
                    });
                }
                NetworkEvent::PeerConnected { peer, peers } => {
                    if peers == 1 {
                        // The first peer after being alone (start, or a network outage):
                        // what was announced meanwhile reached nobody.
                        if let Ok(mut provided) = self.inner.provided_classes.lock() {
                            provided.clear();
                        }
                        self.inner.republish.notify_one();
                        self.reprovide_blobs();
                    }
                    if self.inner.synced_from.fetch_add(1, Ordering::Relaxed) < SYNC_PEERS {
                        let node = self.clone();
                        self.spawn(async move { node.sync_adverts_from(peer).await });
                    }
                }
                NetworkEvent::SyncRequest {
                    peer,
                    request,
                    channel,
                } => {
                    let response = match request {
                        SyncRequest::Adverts => {
                            let adverts = self.advert_envelopes();
                            debug!(target: "cairn::adverts", %peer, count = adverts.len(), "advert sync served");
                            SyncResponse::Adverts(adverts)
                        }
                        SyncRequest::Checkpoints { from } => {
                            SyncResponse::Checkpoints(self.checkpoints_from(from))
                        }
                        SyncRequest::Leaves { epoch } => {
                            SyncResponse::Leaves(self.checkpoint_leaves(epoch))
                        }
                    };
                    let _ = self.inner.net.respond_sync(channel, response).await;
                }
                NetworkEvent::WrongNetwork { .. } => {
                    self.inner.metrics.reject("peer", "wrong_network")
                }
                NetworkEvent::Verdict { source, id, data } => {
                    self.on_verdict(source, id, data).await
                }
                NetworkEvent::Checkpoint { source, id, data } => {
                    self.on_checkpoint_gossip(source, id, data).await
                }
                NetworkEvent::MarketRequest {
                    peer,
                    request,
                    channel,
                } => {
                    let node = self.clone();
                    self.spawn(async move {
                        let response = node.on_market_request(peer, request).await;
                        let _ = node.inner.net.respond_market(channel, response).await;
                    });
                }
            }
        }
    }

    fn reprovide_blobs(&self) {
        if let Ok(hashes) = self.inner.blobs.list() {
            for hash in hashes {
                self.provide_in_background(net::blob_key(&self.inner.options.spec.name, &hash));
            }
        }
    }

    async fn on_advert(&self, source: PeerId, id: MessageId, data: Vec<u8>) {
        let checked = self.accept_advert(&data).await;
        if self
            .settle_gossip("advert", source, id, checked)
            .await
            .is_some()
        {
            self.inner
                .metrics
                .adverts_accepted
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The signed bytes of every unexpired advert held (this node's own included), as a sync
    /// answer: at most [`net::MAX_SYNC_ADVERTS`] adverts and [`net::MAX_SYNC_FRAME`] bytes.
    fn advert_envelopes(&self) -> Vec<Vec<u8>> {
        let Ok(book) = self.inner.adverts.lock() else {
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
    async fn sync_adverts_from(self, peer: PeerId) {
        let adverts = match self.inner.net.sync(peer, SyncRequest::Adverts).await {
            Ok(SyncResponse::Adverts(adverts)) => adverts,
            Ok(_) => {
                self.inner.metrics.reject("synced_advert", "wrong_answer");
                self.inner.synced_from.fetch_sub(1, Ordering::Relaxed);
                return;
            }
            Err(e) => {
                debug!(target: "cairn::adverts", %peer, error = %e, "advert sync failed");
                // Let another peer be asked instead.
                self.inner.synced_from.fetch_sub(1, Ordering::Relaxed);
                return;
            }
        };
        let mut learned = 0u64;
        for data in adverts {
            match self.accept_advert(&data).await {
                Ok(_) => learned += 1,
                // Already held (the same or a newer sequence): not an offence.
                Err("replayed") => {}
                Err(reason) => self.inner.metrics.reject("synced_advert", reason),
            }
        }
        self.inner
            .metrics
            .adverts_synced
            .fetch_add(learned, Ordering::Relaxed);
        debug!(target: "cairn::adverts", %peer, learned, "advert sync done");
    }

    /// Reports a checked gossip message to gossipsub (which forwards it or penalises the
    /// sender) and counts a rejection of `what` by reason; yields the accepted value.
    pub(crate) async fn settle_gossip<T>(
        &self,
        what: &'static str,
        source: PeerId,
        id: MessageId,
        checked: Result<T, &'static str>,
    ) -> Option<T> {
        let (acceptance, value) = match checked {
            Ok(value) => (MessageAcceptance::Accept, Some(value)),
            Err(reason) => {
                debug!(target: "cairn::gossip", %source, what, reason, "gossip message rejected");
                self.inner.metrics.reject(what, reason);
                (MessageAcceptance::Reject, None)
            }
        };
        let _ = self
            .inner
            .net
            .report_validation(id, source, acceptance)
            .await;
        value
    }

    /// Checks and keeps an advert, gossiped or synced: its signature vouches for it,
    /// whoever forwarded it.
    async fn accept_advert(&self, data: &[u8]) -> Result<Inserted, &'static str> {
        if data.len() > net::MAX_GOSSIP_BYTES {
            return Err("oversize");
        }
        let advert =
            Envelope::open::<CapabilityAdvert>(data, self.network()).map_err(|e| e.reason())?;
        let peer = advert.signer();
        let reach = reachable_at(advert.message());
        let tier = self.tier_of(&peer);
        let inserted = {
            let mut book = self.inner.adverts.lock().map_err(|_| "internal")?;
            book.insert(advert, |_| tier, now())
                .map_err(|e| e.reason())?
        };
        // Not flushed: the book is a cache that peers and refreshes rebuild, and a sync per
        // advert would cost every node a disk flush for every advert in the network.
        if self
            .inner
            .kv
            .put(Tree::Adverts, peer.as_bytes(), data)
            .is_err()
        {
            warn!(target: "cairn::adverts", "cannot persist advert");
        }
        if let Some((peer, addrs)) = reach {
            let _ = self.inner.net.add_peer_addresses(peer, addrs).await;
        }
        Ok(inserted)
    }

    /// Loads the adverts kept from the last run that are still valid, and where their peers
    /// said they can be reached.
    async fn load_adverts(&self) {
        let mut reach = Vec::new();
        let table = self.reputation();
        {
            let kv = &self.inner.kv;
            let Ok(keys) = kv.keys(Tree::Adverts, b"") else {
                return;
            };
            let Ok(mut book) = self.inner.adverts.lock() else {
                return;
            };
            for key in keys {
                let Ok(Some(bytes)) = kv.get(Tree::Adverts, &key) else {
                    continue;
                };
                let Ok(advert) = Envelope::open::<CapabilityAdvert>(&bytes, self.network()) else {
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
            let _ = self.inner.net.add_peer_addresses(peer, addrs).await;
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

fn parse_addr(text: &str) -> Result<Multiaddr, NodeError> {
    text.parse()
        .map_err(|e: libp2p::multiaddr::Error| NodeError::Multiaddr {
            addr: text.to_owned(),
            reason: e.to_string(),
        })
}
