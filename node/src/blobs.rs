//! The blob service: content-addressed files a node stores, serves to peers and fetches from
//! them, always checked against their blake3 hash.
//!
//! Three ways to keep a blob, by who reads it next (see [`Keep`]):
//! - [`Blobs::put`] and [`Blobs::store`]: a blob a user publishes, pinned, public, announced
//!   in the DHT before it returns or in the background;
//! - [`Blobs::save`]: pinned and private, not announced (a job's module, input and output
//!   travel point to point between its parties);
//! - [`Blobs::keep`]: a provider's working copy, cached (evictable, counted against the
//!   job's requester), not synced.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use cairn_protocol::{BlobHash, JobSpec, NodeId, Timestamp};
use libp2p::PeerId;
use libp2p::request_response::ResponseChannel;
use tracing::{debug, warn};

use crate::context::{Context, now};
use crate::error::NodeError;
use crate::net::{self, BlobResponse, BlobStream};
use crate::store::{BlobStore, Keep};

mod access;
mod serve;

use access::{GRANT_GRACE_MS, Grants};
use serve::ServeLimits;

/// How a blob a user publishes is kept.
const PUBLIC: Keep = Keep::Pinned { public: true };

/// How long storing a blob waits for its DHT announcement before returning.
const PROVIDE_WAIT: Duration = Duration::from_secs(10);

/// The blob service (see the module docs). Cheap to clone.
#[derive(Clone)]
pub struct Blobs {
    ctx: Arc<Context>,
    store: BlobStore,
    limits: ServeLimits,
    grants: Grants,
}

impl Blobs {
    pub(crate) fn new(ctx: Arc<Context>, store: BlobStore) -> Result<Self, NodeError> {
        let config = &ctx.options().config;
        let limits = ServeLimits::new(
            config.blob_serve_per_peer as usize,
            config.blob_serve_total as usize,
        );
        let grants = Grants::load(ctx.kv.clone(), now())?;
        Ok(Self {
            ctx,
            store,
            limits,
            grants,
        })
    }

    /// The local store, for inspection.
    pub fn local(&self) -> &BlobStore {
        &self.store
    }

    fn key(&self, hash: &BlobHash) -> Vec<u8> {
        net::blob_key(self.ctx.network_name(), hash)
    }

    /// Stores a blob, flushes it to disk, and waits (up to 10 s) until the DHT knows this node
    /// holds it, so another node can fetch it as soon as this returns. For blobs a user hands
    /// in; the job path uses [`Blobs::save`].
    pub async fn put(&self, bytes: Vec<u8>) -> Result<BlobHash, NodeError> {
        let hash = self.write(bytes, PUBLIC).await?;
        match tokio::time::timeout(PROVIDE_WAIT, self.ctx.net.start_providing(self.key(&hash)))
            .await
        {
            Ok(Ok(())) => {}
            Ok(Err(e)) => warn!(target: "cairn::dht", %hash, error = %e, "cannot announce blob"),
            Err(_) => debug!(target: "cairn::dht", %hash, "blob announcement still in progress"),
        }
        Ok(hash)
    }

    /// Stores a blob durably and publicly, and announces it in the background: for blobs
    /// whose next reader finds them through the DHT.
    pub async fn store(&self, bytes: Vec<u8>) -> Result<BlobHash, NodeError> {
        let hash = self.write(bytes, PUBLIC).await?;
        self.ctx.provide_in_background(self.key(&hash));
        Ok(hash)
    }

    /// Stores a blob durably without announcing it in the DHT: a job's module and input on
    /// its requester, and its accepted output, which providers and the requester fetch point
    /// to point from a holder they know. Announcing each would cost a DHT walk (a few dozen
    /// requests, most over new connections) per blob. Private: served only to the parties of
    /// a job it belongs to.
    pub async fn save(&self, bytes: Vec<u8>) -> Result<BlobHash, NodeError> {
        self.write(bytes, Keep::PINNED).await
    }

    /// Keeps a copy the job path can fetch again (a provider's module, input and output for
    /// `requester`'s job): not synced to disk, not announced in the DHT (its next reader
    /// asks this node point to point and checks the hash), evictable, and counted against
    /// `requester`'s quota.
    pub(crate) async fn keep(
        &self,
        bytes: Vec<u8>,
        requester: NodeId,
    ) -> Result<BlobHash, NodeError> {
        self.write(bytes, Keep::cached(requester)).await
    }

    async fn write(&self, bytes: Vec<u8>, keep: Keep) -> Result<BlobHash, NodeError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.put_with(&bytes, keep))
            .await
            .map_err(|e| NodeError::Io {
                path: "blob store".into(),
                source: std::io::Error::other(e),
            })?
            .map_err(NodeError::from)
    }

    /// The blob from the local store, checked against its hash, read off the async threads.
    pub async fn get_local(&self, hash: BlobHash) -> Result<Option<Vec<u8>>, NodeError> {
        let store = self.store.clone();
        Ok(
            tokio::task::spawn_blocking(move || store.get_verified(&hash))
                .await
                .map_err(|e| NodeError::Io {
                    path: "blob store".into(),
                    source: std::io::Error::other(e),
                })??,
        )
    }

    /// The blob, from the local store or else from any provider in the network (verified).
    pub async fn get(&self, hash: BlobHash) -> Result<Vec<u8>, NodeError> {
        match self.get_local(hash).await? {
            Some(bytes) => Ok(bytes),
            None => self.fetch(hash).await,
        }
    }

    /// Fetches a blob from the providers the DHT names, trying each until one sends bytes that
    /// match the hash; stores it pinned and public (someone published it) and announces it.
    pub async fn fetch(&self, hash: BlobHash) -> Result<Vec<u8>, NodeError> {
        self.fetch_published(hash, PUBLIC).await
    }

    /// [`Blobs::fetch`] for a provider's working copy of `requester`'s job blob: kept
    /// cached (public, since it was published) and not announced, since it may be evicted.
    pub(crate) async fn fetch_cached(
        &self,
        hash: BlobHash,
        requester: NodeId,
    ) -> Result<Vec<u8>, NodeError> {
        let keep = Keep::Cached {
            owner: requester,
            public: true,
        };
        self.fetch_published(hash, keep).await
    }

    async fn fetch_published(&self, hash: BlobHash, keep: Keep) -> Result<Vec<u8>, NodeError> {
        let providers = self.ctx.net.get_providers(self.key(&hash)).await?;
        if providers.is_empty() {
            let reason = "no provider in the DHT".to_owned();
            return Err(NodeError::BlobUnavailable { hash, reason });
        }
        let bytes = self.fetch_as(hash, providers, keep).await?;
        if keep.is_pinned() {
            // Found through the DHT: this node becomes one more holder others can find.
            self.ctx.provide_in_background(self.key(&hash));
        }
        Ok(bytes)
    }

    /// Fetches a blob from the first of `peers` that sends bytes matching the hash, and
    /// stores it durably and privately without announcing it (see [`Blobs::save`]). Mismatching bytes
    /// are refused and counted, and the next peer is tried.
    pub async fn fetch_from(
        &self,
        hash: BlobHash,
        peers: Vec<PeerId>,
    ) -> Result<Vec<u8>, NodeError> {
        self.fetch_as(hash, peers, Keep::PINNED).await
    }

    /// [`Blobs::fetch_from`], keeping the bytes as `keep` says; neither is announced in the
    /// DHT.
    pub(crate) async fn fetch_as(
        &self,
        hash: BlobHash,
        peers: Vec<PeerId>,
        keep: Keep,
    ) -> Result<Vec<u8>, NodeError> {
        let bytes = self.download(hash, peers).await?;
        self.write(bytes.clone(), keep).await?;
        Ok(bytes)
    }

    /// The bytes of `hash` from the first of `peers` that sends bytes matching it, not stored
    /// here (a sealed copy its fetcher opens and stores in the clear). Mismatching bytes are
    /// refused and counted, and the next peer is tried.
    pub(crate) async fn download(
        &self,
        hash: BlobHash,
        peers: Vec<PeerId>,
    ) -> Result<Vec<u8>, NodeError> {
        let mut tried = Vec::new();
        let me = self.ctx.peer_id();
        for peer in peers.into_iter().filter(|p| *p != me) {
            match self.ctx.net.request_blob(peer, hash).await {
                Ok(BlobResponse::Found(bytes)) if BlobHash::of(&bytes) == hash => {
                    self.ctx
                        .metrics
                        .blobs_fetched
                        .fetch_add(1, Ordering::Relaxed);
                    return Ok(bytes);
                }
                Ok(BlobResponse::Found(_)) => {
                    warn!(target: "cairn::blobs", %peer, %hash, "peer sent bytes that do not match the hash");
                    self.ctx.metrics.reject("blob", "hash_mismatch");
                    tried.push(format!("{peer}: corrupted"));
                }
                Ok(BlobResponse::NotFound) => tried.push(format!("{peer}: not found")),
                Ok(BlobResponse::Refused(why)) => tried.push(format!("{peer}: refused ({why})")),
                Ok(BlobResponse::Stream(_)) => tried.push(format!("{peer}: unexpected answer")),
                Err(e) => {
                    self.ctx.metrics.reject("blob", "transfer_failed");
                    tried.push(format!("{peer}: {e}"));
                }
            }
        }
        Err(NodeError::BlobUnavailable {
            hash,
            reason: format!("tried {}", tried.join("; ")),
        })
    }

    /// Answers a peer's request for a blob, off the event loop (see [`Blobs::respond`]).
    pub(crate) fn serve(
        &self,
        peer: PeerId,
        hash: BlobHash,
        channel: ResponseChannel<BlobResponse>,
    ) {
        let this = self.clone();
        self.ctx.spawn(async move {
            let response = this.respond(peer, hash).await;
            let _ = this.ctx.net.respond_blob(channel, response).await;
        });
    }

    /// The answer this node gives `peer` asking for `hash`. A private blob (see [`Keep`]) goes
    /// only to a peer granted it by a job's award ([`Blobs::grant_job`], [`Blobs::grant`]);
    /// anyone else gets [`net::BlobRefusal::NotAParty`]. A blob that may be served is
    /// streamed from its file a chunk at a time ([`net::CHUNK_BYTES`]), and the answer holds a
    /// place under the serving limits (`blob_serve_per_peer`, `blob_serve_total`) until its
    /// last byte is written; past either limit the answer is [`net::BlobRefusal::Busy`].
    /// Refusals are counted in `cairn_rejections_total{what="blob_request"}`. Never waits.
    pub async fn respond(&self, peer: PeerId, hash: BlobHash) -> BlobResponse {
        let Some(keep) = self.store.keep_of(&hash) else {
            debug!(target: "cairn::blobs", %peer, %hash, "blob request: not held");
            return BlobResponse::NotFound;
        };
        if !keep.is_public() && !self.grants.allows(&hash, &peer, now()) {
            self.ctx.metrics.reject("blob_request", "not_a_party");
            debug!(target: "cairn::blobs", %peer, %hash, "blob request refused: not a party");
            return BlobResponse::Refused(net::BlobRefusal::NotAParty);
        }
        let permit = match self.limits.try_admit(peer) {
            Ok(permit) => permit,
            Err(limit) => {
                self.ctx.metrics.reject("blob_request", limit.label());
                debug!(target: "cairn::blobs", %peer, %hash, ?limit, "blob request refused: busy");
                return BlobResponse::Refused(limit.into());
            }
        };
        let Ok(Some(len)) = self.store.size_of(&hash) else {
            return BlobResponse::NotFound;
        };
        let path = self.store.file_of(&hash);
        match tokio::fs::File::open(&path).await {
            Ok(file) => {
                debug!(target: "cairn::blobs", %peer, %hash, len, "blob request served");
                self.store.touch(&hash);
                self.ctx
                    .metrics
                    .blobs_served
                    .fetch_add(1, Ordering::Relaxed);
                BlobResponse::Stream(BlobStream::new(file, len, Box::new(permit)))
            }
            Err(e) => {
                warn!(target: "cairn::blobs", %hash, error = %e, "indexed blob has no file");
                BlobResponse::NotFound
            }
        }
    }

    /// Lets the provider `provider`, awarded a replica of `spec`, fetch the job's module and
    /// its input from this node (its requester) until an hour after the job's deadline: the
    /// input as `sealed_input`, the copy sealed to that provider, or in the clear without one.
    /// Called before the award is sent, and again for each awarded provider when the job
    /// resumes after a restart (see [`Blobs::grant`]).
    pub(crate) async fn grant_job(
        &self,
        spec: &JobSpec,
        provider: NodeId,
        sealed_input: Option<BlobHash>,
    ) {
        let input = sealed_input.unwrap_or(spec.input);
        self.grant_all(&[spec.module, input], provider, spec.deadline)
            .await;
    }

    /// Lets `to`, a party of a job with this `deadline`, fetch `hash` from this node until an
    /// hour after the deadline (a provider grants its output to the job's requester). Written
    /// at once, durable with the node's next flush (see [`Blobs::grant_job`]); a grant that
    /// cannot be stored is logged, and the party refused.
    pub(crate) async fn grant(&self, hash: BlobHash, to: NodeId, deadline: Timestamp) {
        self.grant_all(&[hash], to, deadline).await;
    }

    /// [`Blobs::grant`] for several blobs. No flush of its own: a requester's grants follow
    /// from its job records, durable before any award goes out, and are made again when it
    /// resumes its jobs after a restart; a provider's grant of its output is made durable by
    /// the flush of its kept report, which follows.
    async fn grant_all(&self, hashes: &[BlobHash], to: NodeId, deadline: Timestamp) {
        let grants = self.grants.clone();
        let until = deadline.plus_ms(GRANT_GRACE_MS);
        let hashes = hashes.to_vec();
        let recorded = tokio::task::spawn_blocking(move || {
            let now = now();
            hashes
                .iter()
                .try_for_each(|hash| grants.grant(*hash, to, until, now))
        })
        .await;
        if !matches!(recorded, Ok(Ok(()))) {
            warn!(target: "cairn::blobs", %to, "cannot store a grant: the job's party will be refused");
        }
    }

    /// Announces every held blob again (after the node was alone: what it announced then
    /// reached nobody).
    pub(crate) fn reprovide(&self) {
        if let Ok(hashes) = self.store.list() {
            for hash in hashes {
                self.ctx.provide_in_background(self.key(&hash));
            }
        }
    }
}
