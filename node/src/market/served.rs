//! What a provider keeps of the awards it took, so that a crash on either side loses no work:
//! each award is written (and flushed) before the provider accepts it, and its signed report
//! once the run ends, in the `served` tree, until the job's deadline.
//!
//! - A provider that restarts re-runs every award it holds no report for, and delivers every
//!   report it holds (its output blob must still be here, else it runs again).
//! - A run whose blobs cannot be fetched (the requester holds them and is down) is tried
//!   again with back-off until the award's report deadline.
//! - A report is pushed to the requester, and pushed again with back-off while the requester
//!   cannot be reached (it may be down, or back on another address: the swarm dials it by peer
//!   id, from its newest signed advert, identify and the DHT), until the job's deadline.
//! - A restarted requester fetches the reports it missed (`MarketRequest::FetchReport`); only
//!   the job's requester gets an answer.

use std::sync::atomic::Ordering;
use std::time::Duration;

use bincode::{Decode, Encode};
use cairn_protocol::{Award, Envelope, JobId, JobSpec, Outcome, ResultReport};
use libp2p::PeerId;
use tracing::{Instrument, debug, warn};

use super::{Market, peer_of};
use crate::context::now;
use crate::error::NodeError;
use crate::net::{MarketRequest, MarketResponse};
use crate::store::{self, Tree};

/// Most awards kept at once (running, or holding a report until the job's deadline): past it
/// the provider refuses awards, so requesters that vanish cannot fill its store.
pub(super) const MAX_SERVED: usize = 4096;
/// First wait before pushing a report again.
const RETRY_FIRST: Duration = Duration::from_millis(500);
/// Longest wait between two pushes of one report.
const RETRY_MOST: Duration = Duration::from_secs(5);

/// One award taken, as stored.
#[derive(Clone, Debug, Encode, Decode)]
pub(super) struct Served {
    /// The award (its signature was checked when it came).
    pub award: Award,
    /// The job's spec, from the call for bids.
    pub spec: JobSpec,
    /// This node's signed report, once the run ended.
    pub report: Option<Envelope>,
}

/// How a push of a report ended.
enum Pushed {
    /// The requester took it, or will never take it (the job is over or unknown there).
    Done,
    /// The requester could not be reached; try again later.
    Again,
}

impl Market {
    /// Writes `served` and waits until it is durable.
    pub(super) async fn keep_served(&self, served: &Served) -> Result<(), NodeError> {
        let bytes = store::encode_value(served)?;
        self.ctx
            .kv
            .put(Tree::Served, served.award.job.as_bytes(), &bytes)?;
        self.ctx.durable.flush().await?;
        Ok(())
    }

    fn load_served(&self, job: &JobId) -> Option<Served> {
        let bytes = self.ctx.kv.get(Tree::Served, job.as_bytes()).ok()??;
        store::decode_value(&bytes).ok()
    }

    fn forget_served(&self, job: &JobId) {
        if matches!(self.ctx.kv.remove(Tree::Served, job.as_bytes()), Ok(true)) {
            self.state.served.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Answers a requester that asks for the report of `job`: only the job's requester, and
    /// only once the report is signed.
    pub(super) fn on_fetch_report(&self, peer: PeerId, job: JobId) -> MarketResponse {
        let Some(served) = self.load_served(&job) else {
            self.ctx.metrics.reject("fetch_report", "unknown_job");
            return MarketResponse::Refused("no award of this job is held here".into());
        };
        if peer_of(&served.award.requester) != Some(peer) {
            self.ctx.metrics.reject("fetch_report", "not_requester");
            return MarketResponse::Refused("only the job's requester may fetch its report".into());
        }
        match served.report {
            Some(report) => MarketResponse::Report(report),
            None => MarketResponse::Refused("still running".into()),
        }
    }

    /// Runs the award (unless `served` already holds its report), keeps the signed report,
    /// gives the run's slot back, and delivers the report; the record goes at the job's
    /// deadline. The slot (`running`) must be held by the caller.
    pub(super) fn spawn_served(&self, served: Served) {
        let node = self.clone();
        let span = tracing::info_span!("run", job = %served.award.job);
        self.ctx.spawn(
            async move {
                let mut served = served;
                if served.report.is_none() {
                    served.report = node.run_until_kept(&served).await;
                }
                node.state.running.fetch_sub(1, Ordering::Relaxed);
                if let Some(report) = served.report.clone() {
                    node.deliver(&served, report).await;
                }
                let left = served.spec.deadline.0.saturating_sub(now().0);
                tokio::time::sleep(Duration::from_millis(left)).await;
                node.forget_served(&served.award.job);
            }
            .instrument(span),
        );
    }

    /// Runs the job until its report is kept, trying again with back-off while the run cannot
    /// start (its blobs cannot be fetched: the requester, often their only holder, may be down
    /// or moving) until the award's report deadline.
    async fn run_until_kept(&self, served: &Served) -> Option<Envelope> {
        let mut wait = RETRY_FIRST;
        loop {
            if let Some(report) = self.run_and_keep(served).await {
                return Some(report);
            }
            if now().plus_ms(u64::try_from(wait.as_millis()).unwrap_or(u64::MAX))
                >= served.award.report_by
            {
                return None;
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(RETRY_MOST);
        }
    }

    /// Takes a permit, runs the job and keeps its signed report durably; `None` when it
    /// cannot run here (the requester then times this replica out). The permit comes before
    /// the job's blobs are fetched and is held until they are dropped after the run, so an
    /// award waiting for one holds nothing in memory (review H2, M11).
    async fn run_and_keep(&self, served: &Served) -> Option<Envelope> {
        let permit = self.state.permits.acquire().await.ok()?;
        let report = self.run_and_sign(&served.award, &served.spec).await?;
        drop(permit);
        let kept = Served {
            report: Some(report.clone()),
            ..served.clone()
        };
        if let Err(e) = self.keep_served(&kept).await {
            warn!(target: "cairn::provider", job = %served.award.job, error = %e, "cannot keep the report");
        }
        Some(report)
    }

    /// Pushes the report to the requester until it takes it or the job's deadline passes.
    async fn deliver(&self, served: &Served, report: Envelope) {
        let Some(requester) = peer_of(&served.award.requester) else {
            return;
        };
        let mut wait = RETRY_FIRST;
        while now() < served.spec.deadline {
            match self.push(requester, &report, &served.award.job).await {
                Pushed::Done => return,
                Pushed::Again => {}
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(RETRY_MOST);
        }
        debug!(target: "cairn::provider", job = %served.award.job, "the requester never took the report before the job's deadline");
    }

    async fn push(&self, requester: PeerId, report: &Envelope, job: &JobId) -> Pushed {
        let request = MarketRequest::Report(report.clone());
        match self.ctx.net.market(requester, request).await {
            Ok(MarketResponse::Accepted) => Pushed::Done,
            Ok(other) => {
                debug!(target: "cairn::provider", %job, answer = ?other, "the requester did not take the report");
                Pushed::Done
            }
            Err(e) => {
                debug!(target: "cairn::provider", %job, error = %e, "cannot deliver the report yet");
                Pushed::Again
            }
        }
    }

    /// Awards this node holds as a provider (running, or keeping a report until the job's
    /// deadline), and how many of them hold their signed report. For `cairn status`.
    pub fn served(&self) -> (usize, usize) {
        let Ok(keys) = self.ctx.kv.keys(Tree::Served, b"") else {
            return (0, 0);
        };
        let reported = keys
            .iter()
            .filter_map(|key| self.ctx.kv.get(Tree::Served, key).ok().flatten())
            .filter_map(|bytes| store::decode_value::<Served>(&bytes).ok())
            .filter(|served| served.report.is_some())
            .count();
        (keys.len(), reported)
    }

    /// After a restart: re-runs every award held without a report (or whose output blob is
    /// gone), delivers every report held, and drops the records of jobs past their deadline.
    pub(crate) fn resume_served(&self) {
        let Ok(keys) = self.ctx.kv.keys(Tree::Served, b"") else {
            return;
        };
        let now = now();
        for key in keys {
            let Ok(Some(bytes)) = self.ctx.kv.get(Tree::Served, &key) else {
                continue;
            };
            let served = match store::decode_value::<Served>(&bytes) {
                Ok(served) if served.spec.deadline > now => served,
                Ok(_) | Err(_) => {
                    let _ = self.ctx.kv.remove(Tree::Served, &key);
                    continue;
                }
            };
            self.state.served.fetch_add(1, Ordering::Relaxed);
            let served = Served {
                report: served.report.clone().filter(|r| self.report_usable(r)),
                ..served
            };
            debug!(target: "cairn::provider", job = %served.award.job, reported = served.report.is_some(), "resuming an award");
            // Taken even past the cap: this node accepted the award before it stopped.
            self.state.running.fetch_add(1, Ordering::Relaxed);
            self.spawn_served(served);
        }
    }

    /// Whether a stored report can be delivered as it is: it opens, and the output it names
    /// is still in the blob store (the requester fetches it from here).
    fn report_usable(&self, report: &Envelope) -> bool {
        let Ok(report) = report.clone().verify::<ResultReport>(self.ctx.network()) else {
            return false;
        };
        match report.message().outcome {
            Outcome::Output { digest, .. } => self.blobs.local().contains(&digest).unwrap_or(false),
            Outcome::Failed(_) => true,
        }
    }
}
