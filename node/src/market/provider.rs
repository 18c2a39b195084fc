//! The provider side of the market: decide whether to bid on a call, take an award, fetch the
//! job's blobs, run it in the sandbox and report the signed result to the requester. An award
//! is kept durably before it is accepted, and its report until the job's deadline
//! (`served.rs`).

use std::sync::atomic::Ordering;

use cairn_protocol::provider::{self, Offer};
use cairn_protocol::seal::Purpose;
use cairn_protocol::{
    Award, BlobHash, CallForBids, Envelope, JobSpec, NodeId, Outcome, ResultReport,
};
use cairn_runtime::{Job, RunError};
use libp2p::PeerId;
use libp2p::request_response::ResponseChannel;
use tracing::warn;

use super::served::{MAX_SERVED, Served};
use super::{BID_LIFETIME_MS, FaultInjection, Market, failure_kind, job_limits, peer_of};
use crate::context::now;
use crate::error::NodeError;
use crate::net::{MarketRequest, MarketResponse};
use crate::store::Keep;

impl Market {
    /// Answers a peer's market request in a task of its own.
    pub(crate) fn serve(
        &self,
        peer: PeerId,
        request: MarketRequest,
        channel: ResponseChannel<MarketResponse>,
    ) {
        let this = self.clone();
        self.ctx.spawn(async move {
            let response = this.on_request(peer, request).await;
            let _ = this.ctx.net.respond_market(channel, response).await;
        });
    }

    async fn on_request(&self, peer: PeerId, request: MarketRequest) -> MarketResponse {
        match request {
            MarketRequest::CallForBids(envelope) => self.on_call_for_bids(peer, envelope),
            MarketRequest::Award(envelope) => self.on_award(peer, envelope).await,
            MarketRequest::Report(envelope) => self.on_report(peer, envelope).await,
            MarketRequest::FetchReport(job) => self.on_fetch_report(peer, job),
        }
    }

    fn on_call_for_bids(&self, peer: PeerId, envelope: Envelope) -> MarketResponse {
        let call = match envelope.verify::<CallForBids>(self.ctx.network()) {
            Ok(call) => call.into_parts().1,
            Err(e) => {
                self.ctx.metrics.reject("call_for_bids", e.reason());
                return MarketResponse::Declined(format!("invalid call for bids: {e}"));
            }
        };
        // A requester makes its own calls: one sent by another peer is a replay, or a flood
        // in the name of identities that cannot be reached (and so never pay or take reports).
        if peer_of(&call.spec.requester) != Some(peer) {
            self.ctx
                .metrics
                .reject("call_for_bids", "not_from_requester");
            return MarketResponse::Declined(
                "a call for bids must come from its requester's own connection".into(),
            );
        }
        if let Err(stale) = provider::check_call_time(call.issued_at, now()) {
            self.ctx.metrics.reject("call_for_bids", "stale");
            return MarketResponse::Declined(stale.to_string());
        }
        match self.bid_for(&call.spec) {
            Ok(bid) => MarketResponse::Bid(bid),
            Err(reason) => MarketResponse::Declined(reason),
        }
    }

    /// Decides whether and at what price to bid (`cairn_protocol::provider::decide`), and
    /// remembers the spec for the award.
    fn bid_for(&self, spec: &JobSpec) -> Result<Envelope, String> {
        let job = spec.id().map_err(|e| e.to_string())?;
        let capabilities = self.adverts.capabilities();
        let offer = Offer {
            capabilities: &capabilities,
            held: u32::try_from(self.state.running.load(Ordering::Relaxed)).unwrap_or(u32::MAX),
            backlog_per_slot: self.ctx.options().config.backlog_per_slot,
            bid_lifetime_ms: BID_LIFETIME_MS,
            most: self.ctx.options().config.limits.as_limits(),
            requester_balance: self.verdicts.balance(&spec.requester),
        };
        let now = now();
        let bid = provider::decide(job, spec, &offer, now).map_err(|e| e.to_string())?;
        if let Ok(mut calls) = self.state.calls.lock() {
            calls
                .remember(job, spec, bid.expires_at, now)
                .map_err(|full| {
                    self.ctx.metrics.reject("call_for_bids", "calls_full");
                    full.to_string()
                })?;
        }
        self.ctx
            .sign(bid)
            .map(|b| b.envelope().clone())
            .map_err(|e| e.to_string())
    }

    async fn on_award(&self, peer: PeerId, envelope: Envelope) -> MarketResponse {
        let award = match envelope.verify::<Award>(self.ctx.network()) {
            Ok(award) => award.into_parts().1,
            Err(e) => {
                self.ctx.metrics.reject("award", e.reason());
                return MarketResponse::Refused(format!("invalid award: {e}"));
            }
        };
        if peer_of(&award.requester) != Some(peer) {
            self.ctx.metrics.reject("award", "not_from_requester");
            return MarketResponse::Refused(
                "an award must come from its requester's own connection".into(),
            );
        }
        if award.provider != self.ctx.node_id() {
            return MarketResponse::Refused("award names another provider".into());
        }
        let now = now();
        if award.report_by <= now {
            self.ctx.metrics.reject("award", "report_deadline_passed");
            return MarketResponse::Refused("the award's report deadline has passed".into());
        }
        // Taken out of the remembered calls: a second award of the same job finds none.
        let call = self
            .state
            .calls
            .lock()
            .ok()
            .and_then(|mut calls| calls.take(&award.job, &award.requester));
        let Some((spec, bid_expires_at)) = call else {
            self.ctx.metrics.reject("award", "no_call");
            return MarketResponse::Refused(
                "no open call for bids of this job from this requester (never called, or \
                 already awarded)"
                    .into(),
            );
        };
        if bid_expires_at < now {
            self.ctx.metrics.reject("award", "bid_expired");
            return MarketResponse::Refused("this node's bid has expired".into());
        }
        // Its report states the award's price, and that is what it is paid: an award below
        // its bid is not taken.
        let bid = provider::price_for(&spec, &self.adverts.capabilities().price);
        if award.price < bid {
            self.ctx.metrics.reject("award", "below_bid");
            return MarketResponse::Refused(format!(
                "the award's price {} is below this node's bid {bid}",
                award.price
            ));
        }
        // The slot is taken atomically: awards racing for the last one cannot both win it. A
        // refused award costs this provider nothing: the requester replaces the replica.
        let capacity = self.ctx.options().config.capacity.max(1) as usize;
        let backlog = self.ctx.options().config.backlog_per_slot as usize;
        let most = capacity.saturating_mul(backlog.saturating_add(1));
        let taken = self
            .state
            .running
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                (held < most).then_some(held + 1)
            });
        if taken.is_err() {
            self.ctx.metrics.reject("award", "busy");
            return MarketResponse::Refused(format!("busy: {most} jobs held, the most it takes"));
        }
        if self.state.served.fetch_add(1, Ordering::AcqRel) >= MAX_SERVED {
            self.state.served.fetch_sub(1, Ordering::AcqRel);
            self.state.running.fetch_sub(1, Ordering::AcqRel);
            self.ctx.metrics.reject("award", "too_many_kept");
            return MarketResponse::Refused(format!(
                "busy: {MAX_SERVED} reports kept for their requesters"
            ));
        }
        // Durable before it is accepted: a provider killed from here on runs it again when it
        // restarts, instead of being blamed for a timeout.
        let served = Served {
            award,
            spec,
            report: None,
        };
        if let Err(e) = self.keep_served(&served).await {
            self.state.served.fetch_sub(1, Ordering::AcqRel);
            self.state.running.fetch_sub(1, Ordering::AcqRel);
            warn!(target: "cairn::provider", job = %served.award.job, error = %e, "cannot keep an award");
            return MarketResponse::Refused(format!("cannot keep the award: {e}"));
        }
        self.spawn_served(served);
        MarketResponse::Accepted
    }

    /// Runs the awarded job and signs its report; `None` when it cannot run here (the
    /// requester then times this replica out and replaces it).
    pub(super) async fn run_and_sign(&self, award: &Award, spec: &JobSpec) -> Option<Envelope> {
        let (outcome, fuel_used, sealed_output) = match self.run_job(award, spec).await {
            Ok(result) => result,
            Err(e) => {
                warn!(target: "cairn::provider", job = %award.job, error = %e, "cannot run job");
                return None;
            }
        };
        let report = ResultReport {
            job: award.job,
            provider: self.ctx.node_id(),
            outcome,
            fuel_used,
            price: award.price,
            runtime: self.ctx.options().runtime.clone(),
            sealed_output,
        };
        match self.ctx.sign(report) {
            Ok(report) => Some(report.envelope().clone()),
            Err(e) => {
                warn!(target: "cairn::provider", job = %award.job, error = %e, "cannot sign report");
                None
            }
        }
    }

    /// Fetches the blobs, runs the job in the sandbox, and keeps the output sealed to the
    /// requester; returns the outcome, the fuel used and the sealed output's blob. The
    /// caller holds a run permit (`served.rs`), so awards waiting for one hold neither their
    /// blobs in memory nor a compilation (review H2, M11).
    async fn run_job(
        &self,
        award: &Award,
        spec: &JobSpec,
    ) -> Result<(Outcome, u64, Option<BlobHash>), NodeError> {
        let job_id = award.job;
        let module = self.job_blob(spec.module, &spec.requester).await?;
        let input = match award.sealed_input {
            // Sealed to this node alone: opened here, and checked against the spec's hash.
            Some(sealed) => {
                let sealed = self.job_blob(sealed, &spec.requester).await?;
                self.ctx
                    .open_sealed(job_id, Purpose::Input, sealed, spec.input)
                    .await?
            }
            None => self.job_blob(spec.input, &spec.requester).await?,
        };
        let sandbox = self.state.sandbox.clone();
        let prepared = tokio::task::spawn_blocking(move || sandbox.prepare(&module))
            .await
            .map_err(|e| NodeError::Sandbox(e.to_string()))?;
        let prepared = match prepared {
            Ok(p) => p,
            Err(e) => return Ok((Outcome::Failed(failure_kind(&e)), 0, None)),
        };
        let job = Job::new(job_id, input)
            .with_args(spec.args.clone())
            .with_limits(job_limits(spec));
        match self.state.sandbox.run(prepared, job).await {
            Ok(out) => {
                let me = self.ctx.node_id();
                let fault = match self.ctx.options().faults {
                    FaultInjection::ColludingOnceEstablished
                        if self
                            .verdicts
                            .with_table(|t| t.on_probation(&me))
                            .unwrap_or(true) =>
                    {
                        FaultInjection::None
                    }
                    fault => fault,
                };
                let output = fault.corrupt(out.output, &job_id, &me);
                let size = output.len() as u64;
                let digest = BlobHash::of(&output);
                // Only the requester can open the output; this node keeps no plain copy.
                let sealed = self
                    .ctx
                    .seal_to(spec.requester, job_id, Purpose::Output, output)
                    .await?;
                let sealed = self.blobs.keep(sealed, spec.requester).await?;
                self.blobs
                    .grant(sealed, spec.requester, spec.deadline)
                    .await;
                let outcome = Outcome::Output { digest, size };
                Ok((outcome, out.fuel_used, Some(sealed)))
            }
            Err(e) => {
                let fuel = if matches!(e, RunError::OutOfFuel { .. }) {
                    spec.limits.fuel
                } else {
                    0
                };
                Ok((Outcome::Failed(failure_kind(&e)), fuel, None))
            }
        }
    }

    /// A job's blob: held here, else from the requester (which must hold it), else from any
    /// provider the DHT names. Always checked against its hash.
    async fn job_blob(&self, hash: BlobHash, requester: &NodeId) -> Result<Vec<u8>, NodeError> {
        if let Some(bytes) = self.blobs.get_local(hash).await? {
            return Ok(bytes);
        }
        let direct = peer_of(requester).into_iter().collect();
        match self
            .blobs
            .fetch_as(hash, direct, Keep::cached(*requester))
            .await
        {
            Ok(bytes) => Ok(bytes),
            Err(_) => self.blobs.fetch_cached(hash, *requester).await,
        }
    }
}
