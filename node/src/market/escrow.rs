//! The requester's escrow: what its running jobs hold of its balance, so that concurrent jobs
//! never promise providers more than it has (the rules are `cairn_protocol::credits::Escrow`'s).
//! A job is refused at submit when its first auction could cost more than the available
//! balance; each award reserves its price, and a job releases what it holds when it ends. The
//! job records are durable, so a restarted node rebuilds its escrow from them.

use cairn_protocol::requester::RequesterJob;
use cairn_protocol::{JobId, JobSpec, NodeId};
use tracing::warn;

use super::Market;
use crate::error::NodeError;

impl Market {
    /// Whether this node can pay for `spec`: its available balance covers the spec's replicas
    /// at its maximum price. Always on a network without credits.
    pub(super) fn check_can_pay(&self, spec: &JobSpec) -> Result<(), NodeError> {
        let Some(balance) = self.verdicts.balance(&self.ctx.node_id()) else {
            return Ok(());
        };
        let escrowed = self.escrowed();
        let available = balance.saturating_sub(escrowed);
        let needed = spec
            .max_price
            .saturating_mul(u64::from(spec.replicas.max(1)));
        if needed <= available {
            return Ok(());
        }
        Err(NodeError::CannotPay {
            balance,
            escrowed,
            available,
            needed,
            replicas: spec.replicas.max(1),
            max_price: spec.max_price,
            how: self.how_to_get_credits(),
        })
    }

    /// What a user can do to get credits on this network, in words.
    pub fn how_to_get_credits(&self) -> String {
        let spec = &self.ctx.options().spec;
        let me = self.ctx.node_id();
        let faucet = spec.credits.as_ref().and_then(|c| c.faucet.as_ref());
        let source = match faucet {
            Some(f) => format!(
                "ask the operator of this network's faucet ({}) for a grant to {me}",
                f.id
            ),
            None => format!(
                "this network ({}) has no faucet: credits come from its genesis allocation \
                 (the [credits] section of its spec) or from running other requesters' jobs",
                spec.name
            ),
        };
        format!(
            "Lower the maximum price (--max-price) or the replicas, wait for running jobs to \
             finish, or get credits: {source}. `cairn wallet` shows the balance."
        )
    }

    /// Reserves an award's price before it is sent; the reason in words when the available
    /// balance does not cover it.
    pub(super) fn reserve_award(
        &self,
        job: JobId,
        provider: NodeId,
        price: u64,
    ) -> Result<(), String> {
        let Some(balance) = self.verdicts.balance(&self.ctx.node_id()) else {
            return Ok(());
        };
        let mut escrow = self
            .state
            .escrow
            .lock()
            .map_err(|_| "escrow lock poisoned")?;
        match escrow.reserve(job, provider, price, balance) {
            Ok(()) => Ok(()),
            // Sent again (a retry): already held.
            Err(cairn_protocol::credits::EscrowError::AlreadyReserved { .. }) => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Releases one award's reservation: its provider refused it.
    pub(super) fn release_award(&self, job: &JobId, provider: &NodeId) {
        if let Ok(mut escrow) = self.state.escrow.lock() {
            escrow.release_award(job, provider);
        }
    }

    /// Releases what `job` holds: it ended (its verdict is applied here, or it failed).
    pub(super) fn release_job(&self, job: &JobId) {
        if let Ok(mut escrow) = self.state.escrow.lock() {
            escrow.release(job);
        }
    }

    /// Holds again what an unfinished job read back from the store holds: one reservation per
    /// award it made.
    pub(super) fn restore_escrow(&self, job: &RequesterJob) {
        for (provider, price) in job.award_prices() {
            if let Err(reason) = self.reserve_award(job.id(), provider, price) {
                warn!(target: "cairn::requester", job = %job.id(), %provider, %reason, "award no longer covered by the balance");
            }
        }
    }

    /// Held in escrow for this node's running jobs.
    pub fn escrowed(&self) -> u64 {
        self.state.escrow.lock().map_or(0, |e| e.reserved())
    }

    /// Held in escrow for `job`.
    pub fn escrowed_for(&self, job: &JobId) -> u64 {
        self.state.escrow.lock().map_or(0, |e| e.held(job))
    }
}
