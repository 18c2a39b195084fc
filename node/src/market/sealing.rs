//! A job's private data, sealed end to end (`cairn_protocol::seal`): the requester seals the
//! input to each provider it awards, each provider seals its output to the requester, and
//! each side opens only what was sealed to it and checks it against the hash the spec or the
//! report commits to. Other peers, and any store the bytes rest in on the way (the provider's
//! cache included, after the run), hold only sealed bytes. The requester side lives here;
//! the provider's is in `provider.rs`.

use std::sync::{Arc, Mutex};

use cairn_protocol::seal::Purpose;
use cairn_protocol::{BlobHash, JobId, JobSpec, NodeId, Outcome};
use tracing::debug;

use super::{JobView, Market, peer_of};
use crate::error::NodeError;

impl Market {
    /// Seals the job's input to `provider`, keeps the sealed copy and lets `provider` fetch
    /// it and the module from this node; returns the sealed copy's hash, for the award. The
    /// same input sealed to the same provider again is the same blob, so a restarted
    /// requester calls this again for each award it had made instead of keeping track of the
    /// copies (kept like a provider's cached copies: evictable, re-created when needed).
    pub(super) async fn seal_input_for(
        &self,
        job: JobId,
        spec: &JobSpec,
        provider: NodeId,
    ) -> Result<BlobHash, NodeError> {
        let input = self
            .blobs
            .get_local(spec.input)
            .await?
            .ok_or(NodeError::MissingBlob(spec.input))?;
        let sealed = self
            .ctx
            .seal_to(provider, job, Purpose::Input, input)
            .await?;
        let sealed = self.blobs.keep(sealed, self.ctx.node_id()).await?;
        self.blobs.grant_job(spec, provider, Some(sealed)).await;
        Ok(sealed)
    }

    /// Fetches the accepted output from the first of `from` (agreeing providers, each with
    /// the blob its report names as its copy sealed to this node) that delivers it, opens it,
    /// checks it against the outcome's digest and stores it; records the result in `view`.
    pub(super) async fn fetch_output(
        &self,
        job: JobId,
        outcome: Outcome,
        from: Vec<(NodeId, Option<BlobHash>)>,
        view: Arc<Mutex<JobView>>,
    ) {
        let Outcome::Output { digest, .. } = outcome else {
            return;
        };
        let fetched = if self.blobs.local().contains(&digest).unwrap_or(false) {
            Ok(())
        } else {
            self.fetch_opened(job, digest, from).await
        };
        if let Ok(mut v) = view.lock() {
            match fetched {
                Ok(()) => {
                    v.output = Some(digest);
                    v.output_error = None;
                }
                Err(e) => {
                    v.output_error = Some(format!("no agreeing provider delivered the output: {e}"))
                }
            }
        }
    }

    async fn fetch_opened(
        &self,
        job: JobId,
        digest: BlobHash,
        from: Vec<(NodeId, Option<BlobHash>)>,
    ) -> Result<(), NodeError> {
        let mut last = NodeError::BlobUnavailable {
            hash: digest,
            reason: "no agreeing provider".into(),
        };
        for (provider, sealed) in from {
            let Some(peer) = peer_of(&provider) else {
                continue;
            };
            let Some(sealed) = sealed else {
                // A report without a sealed copy: the output in the clear, by its digest.
                match self.blobs.fetch_from(digest, vec![peer]).await {
                    Ok(_) => return Ok(()),
                    Err(e) => last = e,
                }
                continue;
            };
            let opened = match self.blobs.download(sealed, vec![peer]).await {
                Ok(bytes) => {
                    self.ctx
                        .open_sealed(job, Purpose::Output, bytes, digest)
                        .await
                }
                Err(e) => Err(e),
            };
            match opened {
                Ok(output) => {
                    self.blobs.save(output).await?;
                    return Ok(());
                }
                Err(e) => {
                    debug!(target: "cairn::requester", %job, %provider, error = %e, "sealed output not delivered");
                    last = e;
                }
            }
        }
        Err(last)
    }
}
