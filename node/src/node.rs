//! A running node: where its services are assembled, where network events are dispatched to
//! them, and where they are shut down.
//!
//! [`Node::start`] opens the data dir, loads or creates the identity, starts the swarm, builds
//! the services ([`Blobs`], [`Adverts`], [`Verdicts`], [`Market`], [`Checkpoints`]) around one
//! shared [`Context`], listens, dials the bootstrap peers, and spawns the background tasks.
//! The returned [`RunningNode`] stops them when dropped or shut down (swarm, services, then a
//! final store flush).
//!
//! Where each step of a job happens: `docs/architecture.md`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use cairn_protocol::adverts::AdvertBookConfig;
use cairn_protocol::{NetworkId, NodeId};
use libp2p::identity::Keypair;
use libp2p::{Multiaddr, PeerId};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::adverts::Adverts;
use crate::blobs::Blobs;
use crate::checkpoints::{CheckpointService, Checkpoints};
use crate::context::Context;
use crate::error::NodeError;
use crate::identity;
use crate::market::Market;
use crate::metrics::Metrics;
use crate::net::{self, EventLoop, NetConfig, NetworkEvent, NetworkHandle};
use crate::options::NodeOptions;
use crate::store::{BlobStore, KvStore, SledStore};
use crate::sync::SyncServer;
use crate::verdicts::Verdicts;

/// Peers from the last run's adverts dialled at start, beside the bootstrap peers.
const KNOWN_PEERS_DIALLED: usize = 8;

/// A cloneable handle to a running node: its context and its services.
#[derive(Clone)]
pub struct Node {
    ctx: Arc<Context>,
    blobs: Blobs,
    adverts: Adverts,
    verdicts: Verdicts,
    market: Market,
    checkpoints: Checkpoints,
    sync: SyncServer,
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
        let kv = self.node.ctx.kv.clone();
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
        self.node.ctx.abort_tasks();
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
        let io = |path: std::path::PathBuf| move |source| NodeError::Io { path, source };
        crate::files::create_private_dir(&options.data_dir)
            .map_err(io(options.data_dir.clone()))?;
        let kv: Arc<dyn KvStore> = Arc::new(SledStore::open(
            &options.data_dir.join("db"),
            options.config.cache_bytes,
        )?);
        let keypair =
            identity::load_or_create(&options.data_dir, kv.as_ref(), options.identity_seed)?;
        let blob_store = BlobStore::open(
            kv.clone(),
            &options.data_dir.join("blobs"),
            options.config.max_blob_bytes,
            options.config.blob_store_bytes,
        )?
        .with_requester_quota(options.config.requester_blob_quota());

        let mut net_config = options
            .net
            .clone()
            .unwrap_or_else(|| NetConfig::new(&options.spec.name));
        net_config.network = options.spec.name.clone();
        net_config.mdns = options.spec.mdns;
        net_config.max_connections = options.config.max_connections;
        net_config.max_inbound_per_ip = options.config.max_connections_per_ip;
        net_config.peer_target = options.config.peer_target;
        net_config.max_blob_bytes = options.config.max_blob_bytes;
        net_config.nat = net::NatConfig::from_config(&options.config, &options.spec);
        let sandbox_config = cairn_runtime::SandboxConfig::default()
            .with_max_concurrent_jobs(usize::try_from(options.config.capacity.max(1)).unwrap_or(1))
            .with_compile_limits(crate::config::compile_limits(
                &options.config.limits.compile,
            ));
        let sandbox = match &options.sandbox {
            Some(shared) => shared.0.clone(),
            None => cairn_runtime::Sandbox::new(sandbox_config)
                .map_err(|e| NodeError::Sandbox(e.to_string()))?,
        };
        let checkpoint_state =
            CheckpointService::open(&options.spec, kv.as_ref(), &options.data_dir).await?;
        let swarm = net::build_swarm(Keypair::from(keypair.clone()), &net_config)?;
        let (event_loop, net, events) = EventLoop::new(swarm, net_config)?;
        let mut tasks = vec![tokio::spawn(event_loop.run())];
        let network = options.spec.network_id()?;
        let roots = options.spec.roots()?;
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

        let ctx = Arc::new(Context::new(keypair, network, options, net, kv.clone())?);
        let blobs = Blobs::new(ctx.clone(), blob_store)?;
        let checkpoints = Checkpoints::new(ctx.clone(), checkpoint_state);
        let credits = ctx.options().spec.credit_params()?;
        let verdicts = Verdicts::new(ctx.clone(), checkpoints.clone(), roots, credits)?;
        let adverts = Adverts::new(ctx.clone(), verdicts.clone(), book_config);
        let market = Market::new(
            ctx.clone(),
            blobs.clone(),
            adverts.clone(),
            verdicts.clone(),
            sandbox,
        );
        let sync = SyncServer::new(ctx.clone(), adverts.clone(), checkpoints.clone());
        let node = Node {
            ctx,
            blobs,
            adverts,
            verdicts,
            market,
            checkpoints,
            sync,
        };
        node.verdicts.replay();
        node.adverts.load().await;
        node.market.resume_jobs();
        node.market.resume_served();
        tasks.push(tokio::spawn(node.clone().dispatch(events)));
        node.listen_and_dial().await?;
        tasks.push(tokio::spawn(node.adverts.clone().advertise()));
        tasks.push(tokio::spawn(node.checkpoints.clone().run()));
        let (api_addr, api_task) = crate::api::serve(crate::api::Services {
            ctx: node.ctx.clone(),
            blobs: node.blobs.clone(),
            adverts: node.adverts.clone(),
            verdicts: node.verdicts.clone(),
            market: node.market.clone(),
            checkpoints: node.checkpoints.clone(),
        })
        .await?;
        tasks.push(api_task);
        info!(target: "cairn::node", peer_id = %node.peer_id(), %api_addr, network = %node.ctx.options().spec.name, "node started");
        Ok(RunningNode {
            node,
            api_addr,
            tasks,
        })
    }

    async fn listen_and_dial(&self) -> Result<(), NodeError> {
        let options = self.ctx.options();
        for addr in &options.config.listen {
            self.ctx.net.listen(parse_addr(addr)?).await?;
        }
        let bootstrap = options
            .spec
            .bootstrap
            .iter()
            .chain(&options.config.bootstrap);
        for addr in bootstrap {
            if let Err(e) = self.ctx.net.dial(parse_addr(addr)?).await {
                warn!(target: "cairn::node", %addr, error = %e, "cannot dial bootstrap peer");
            }
        }
        // Peers known from the last run too: the bootstrap peers may have moved.
        for addr in self.adverts.known_addresses(KNOWN_PEERS_DIALLED) {
            if let Err(e) = self.ctx.net.dial(addr.clone()).await {
                debug!(target: "cairn::node", %addr, error = %e, "cannot dial a known peer");
            }
        }
        Ok(())
    }

    /// Hands each network event to the service that owns it. Whatever may take long runs in
    /// the service's own tasks, so one slow request never holds up the others.
    async fn dispatch(self, mut events: mpsc::Receiver<NetworkEvent>) {
        while let Some(event) = events.recv().await {
            match event {
                NetworkEvent::Advert { source, id, data } => {
                    self.adverts.on_gossip(source, id, data).await
                }
                NetworkEvent::Verdict { source, id, data } => {
                    self.verdicts.on_gossip(source, id, data).await
                }
                NetworkEvent::Checkpoint { source, id, data } => {
                    self.checkpoints.on_gossip(source, id, data).await
                }
                NetworkEvent::BlobRequest {
                    peer,
                    hash,
                    channel,
                } => self.blobs.serve(peer, hash, channel),
                NetworkEvent::MarketRequest {
                    peer,
                    request,
                    channel,
                } => self.market.serve(peer, request, channel),
                NetworkEvent::SyncRequest {
                    peer,
                    request,
                    channel,
                } => self.sync.serve(peer, request, channel),
                NetworkEvent::PeerConnected { peer, peers } => {
                    if peers == 1 {
                        self.blobs.reprovide();
                    }
                    self.adverts.on_peer_connected(peer, peers);
                }
                NetworkEvent::WrongNetwork { .. } => {
                    self.ctx.metrics.reject("peer", "wrong_network")
                }
            }
        }
    }

    /// The blob service.
    pub fn blobs(&self) -> &Blobs {
        &self.blobs
    }

    /// The advert service.
    pub fn adverts(&self) -> &Adverts {
        &self.adverts
    }

    /// The verdict service (the live reputation table).
    pub fn verdicts(&self) -> &Verdicts {
        &self.verdicts
    }

    /// The market service (submit and follow jobs).
    pub fn market(&self) -> &Market {
        &self.market
    }

    /// The checkpoint service.
    pub fn checkpoints(&self) -> &Checkpoints {
        &self.checkpoints
    }

    /// This node's libp2p peer id.
    pub fn peer_id(&self) -> PeerId {
        self.ctx.peer_id()
    }

    /// This node's protocol identity.
    pub fn node_id(&self) -> NodeId {
        self.ctx.node_id()
    }

    /// The network this node signs and verifies messages for.
    pub fn network(&self) -> &NetworkId {
        self.ctx.network()
    }

    /// The options it runs with.
    pub fn options(&self) -> &NodeOptions {
        self.ctx.options()
    }

    /// The network handle.
    pub fn net(&self) -> &NetworkHandle {
        self.ctx.net()
    }

    /// The raw key-value store (for inspection and tests).
    pub fn kv(&self) -> &Arc<dyn KvStore> {
        self.ctx.kv()
    }

    /// The counters.
    pub fn metrics(&self) -> &Metrics {
        self.ctx.metrics()
    }
}

fn parse_addr(text: &str) -> Result<Multiaddr, NodeError> {
    text.parse()
        .map_err(|e: libp2p::multiaddr::Error| NodeError::Multiaddr {
            addr: text.to_owned(),
            reason: e.to_string(),
        })
}
