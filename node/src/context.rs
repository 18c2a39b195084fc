//! What every service of a node shares: its identity, options, network handle, store and
//! counters, and the set of tasks that die with the node.
//!
//! Services ([`crate::blobs`], [`crate::adverts`], [`crate::verdicts`], [`crate::market`],
//! [`crate::checkpoints`]) each hold an `Arc<Context>` and own their own state; none reaches
//! into another's.

use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use cairn_protocol::seal::{self, OpeningKey, Purpose, Scope};
use cairn_protocol::{BlobHash, JobId, Message, NetworkId, NodeId, Timestamp, Verified};
use libp2p::PeerId;
use libp2p::gossipsub::{MessageAcceptance, MessageId};
use libp2p::identity::ed25519;
use tokio::task::AbortHandle;
use tracing::debug;

use crate::error::NodeError;
use crate::metrics::Metrics;
use crate::net::NetworkHandle;
use crate::options::NodeOptions;
use crate::store::{GroupFlush, KvStore};

/// The current time as the protocol counts it.
pub fn now() -> Timestamp {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    Timestamp(u64::try_from(ms).unwrap_or(u64::MAX))
}

/// A node's shared context (see the module docs).
pub struct Context {
    keypair: ed25519::Keypair,
    /// Opens what is sealed to this node, and seeds what it seals (`cairn_protocol::seal`).
    opening: OpeningKey,
    node_id: NodeId,
    /// The network every signature covers.
    network: NetworkId,
    options: NodeOptions,
    pub(crate) net: NetworkHandle,
    pub(crate) kv: Arc<dyn KvStore>,
    /// Group commit over `kv`, shared by every service: writes that must be durable before
    /// the node answers (job records, kept awards, blob grants) share flushes.
    pub(crate) durable: GroupFlush,
    pub(crate) metrics: Metrics,
    /// Tasks spawned by the node's services, aborted at shutdown.
    tasks: Mutex<Vec<AbortHandle>>,
}

impl Context {
    pub(crate) fn new(
        keypair: ed25519::Keypair,
        network: NetworkId,
        options: NodeOptions,
        net: NetworkHandle,
        kv: Arc<dyn KvStore>,
    ) -> Result<Self, NodeError> {
        Ok(Self {
            node_id: NodeId::from_keypair(&keypair),
            opening: OpeningKey::of(&keypair)?,
            keypair,
            network,
            options,
            durable: GroupFlush::new(kv.clone()),
            net,
            kv,
            metrics: Metrics::default(),
            tasks: Mutex::new(Vec::new()),
        })
    }

    /// This node's protocol identity.
    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// This node's libp2p peer id.
    pub fn peer_id(&self) -> PeerId {
        self.net.peer_id()
    }

    /// The network this node signs and verifies messages for.
    pub fn network(&self) -> &NetworkId {
        &self.network
    }

    /// The options the node runs with.
    pub fn options(&self) -> &NodeOptions {
        &self.options
    }

    /// The network handle.
    pub fn net(&self) -> &NetworkHandle {
        &self.net
    }

    /// The raw key-value store.
    pub fn kv(&self) -> &Arc<dyn KvStore> {
        &self.kv
    }

    /// The counters.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The name of the network (the prefix of every DHT key).
    pub(crate) fn network_name(&self) -> &str {
        &self.options.spec.name
    }

    /// Signs one of this node's own messages.
    pub(crate) fn sign<T: Message>(&self, message: T) -> Result<Verified<T>, NodeError> {
        Ok(Verified::sign(message, &self.keypair, &self.network)?)
    }

    /// Seals `plaintext`, a blob of `job` for `purpose`, to `to` (see `cairn_protocol::seal`),
    /// off the async threads (about a millisecond per megabyte). The same bytes sealed to the
    /// same party again give the same sealed blob, so a restarted node re-creates what it
    /// sealed before instead of keeping track of it.
    pub(crate) async fn seal_to(
        self: &Arc<Self>,
        to: NodeId,
        job: JobId,
        purpose: Purpose,
        plaintext: Vec<u8>,
    ) -> Result<Vec<u8>, NodeError> {
        let ctx = self.clone();
        blocking(move || {
            let scope = ctx.scope(job, purpose);
            Ok(ctx.opening.seal_deterministic(&to, &scope, &plaintext)?)
        })
        .await
    }

    /// Opens a blob of `job` sealed to this node for `purpose`, and checks that it holds the
    /// bytes `expected` names; off the async threads, like [`Context::seal_to`].
    pub(crate) async fn open_sealed(
        self: &Arc<Self>,
        job: JobId,
        purpose: Purpose,
        sealed: Vec<u8>,
        expected: BlobHash,
    ) -> Result<Vec<u8>, NodeError> {
        let ctx = self.clone();
        blocking(move || {
            let scope = ctx.scope(job, purpose);
            Ok(seal::open(&ctx.opening, &scope, &sealed, expected)?)
        })
        .await
    }

    fn scope(&self, job: JobId, purpose: Purpose) -> Scope {
        Scope {
            network: self.network,
            job,
            purpose,
        }
    }

    /// Spawns a task that lives no longer than the node: shutdown aborts it.
    pub(crate) fn spawn<F>(&self, task: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let handle = tokio::spawn(task);
        if let Ok(mut tasks) = self.tasks.lock() {
            tasks.retain(|t| !t.is_finished());
            tasks.push(handle.abort_handle());
        }
    }

    /// Aborts every task spawned through [`Context::spawn`].
    pub(crate) fn abort_tasks(&self) {
        if let Ok(mut tasks) = self.tasks.lock() {
            tasks.drain(..).for_each(|t| t.abort());
        }
    }

    /// Registers this node in the DHT as a provider of `key`, in the background.
    pub(crate) fn provide_in_background(&self, key: Vec<u8>) {
        let net = self.net.clone();
        self.spawn(async move {
            if let Err(e) = net.start_providing(key).await {
                debug!(target: "cairn::dht", error = %e, "start providing failed");
            }
        });
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
                self.metrics.reject(what, reason);
                (MessageAcceptance::Reject, None)
            }
        };
        let _ = self.net.report_validation(id, source, acceptance).await;
        value
    }
}

/// Runs CPU-bound `work` on the blocking pool.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, NodeError> + Send + 'static,
) -> Result<T, NodeError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| NodeError::Io {
            path: "job data sealing".into(),
            source: std::io::Error::other(e),
        })?
}
