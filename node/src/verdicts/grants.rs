//! Faucet grants, checked and applied by the verdict service like verdicts: they move credits
//! from evidence every node can check. A grant travels on the gossip topic, signed by the
//! faucet the network spec names; every node verifies it, applies it to its live book and
//! hands it to the checkpoint ledger, and keeps it for the next start. What a grant credits is
//! the book's rule (`cairn_protocol::credits::CreditBook::grant`): never above the faucet's
//! per-identity cap, never beyond its pool.

use cairn_protocol::credits::{FaucetGrant, GrantRefusal, Granted};
use cairn_protocol::{Envelope, GrantId, NodeId};
use tracing::{debug, warn};

use super::{Verdicts, verdict_key};
use crate::context::now;
use crate::store::Tree;

/// Why this node cannot issue a grant.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GrantIssueError {
    /// This node is not the faucet the network spec names (or the network has none).
    #[error("this node is not this network's faucet ({faucet}); only it can grant credits")]
    NotTheFaucet {
        /// The spec's faucet, or `none`.
        faucet: String,
    },
    /// The grant could not be signed or encoded.
    #[error("cannot sign the grant: {0}")]
    Sign(String),
    /// The grant did not check out here (see the reason).
    #[error("the grant was refused: {0}")]
    Refused(&'static str),
}

impl Verdicts {
    /// Checks a grant heard now (fresh, signed by the spec's faucet) and applies it; stores it
    /// so that a restart replays it. Returns whether it was new here.
    pub(super) fn apply_grant_bytes(&self, data: &[u8]) -> Result<bool, &'static str> {
        let grant =
            Envelope::open::<FaucetGrant>(data, self.ctx.network()).map_err(|e| e.reason())?;
        grant
            .message()
            .check_fresh(now())
            .map_err(|_| "outside_window")?;
        let new = self.apply_checked_grant(data, grant.message(), false)?;
        if new {
            let key = verdict_key(grant.message().issued_at, &GrantId::of(data).0);
            if let Err(e) = self.ctx.kv.put(Tree::Verdicts, &key, data) {
                warn!(target: "cairn::verdicts", error = %e, "cannot store faucet grant");
            }
        }
        Ok(new)
    }

    /// Applies a grant whose envelope was verified, and hands it to the checkpoint ledger (as
    /// `restored` when replayed at start).
    pub(super) fn apply_checked_grant(
        &self,
        data: &[u8],
        grant: &FaucetGrant,
        restored: bool,
    ) -> Result<bool, &'static str> {
        let faucet = self.faucet().ok_or("no_faucet")?;
        if grant.faucet != faucet {
            return Err("not_the_faucet");
        }
        let id = GrantId::of(data);
        let granted = {
            let mut credits = self.state.credits.lock().map_err(|_| "internal")?;
            credits.grant(id, grant)
        };
        match granted {
            // A grant that finds its recipient at the cap or the pool empty is still the
            // faucet's valid word: every node records it, in the same order within a checkpoint.
            Granted::Credited { .. }
            | Granted::Refused(GrantRefusal::AtCap | GrantRefusal::FaucetEmpty) => {
                debug!(target: "cairn::verdicts", ?granted, recipient = %grant.recipient, "faucet grant");
                self.checkpoints.note_grant(id, grant.clone(), restored);
                Ok(true)
            }
            Granted::Duplicate => Ok(false),
            Granted::Refused(GrantRefusal::BadRecipient) => Err("bad_recipient"),
            Granted::Refused(GrantRefusal::NoFaucet | GrantRefusal::NotTheFaucet) => {
                Err("not_the_faucet")
            }
            Granted::Full => Err("credit_book_full"),
        }
    }

    /// The faucet the network spec names, if any.
    fn faucet(&self) -> Option<NodeId> {
        self.with_credits(|c| c.book().params().faucet.map(|f| f.id))
            .flatten()
            .filter(|_| self.balance(&self.ctx.node_id()).is_some())
    }

    /// Grants `amount` credits to `recipient` as this network's faucet: signs the grant,
    /// applies it here and gossips it. Returns what it credited (at most `amount`: never
    /// above the spec's per-identity cap, never beyond the faucet's pool).
    pub async fn grant(&self, recipient: NodeId, amount: u64) -> Result<u64, GrantIssueError> {
        let me = self.ctx.node_id();
        if self.faucet() != Some(me) {
            let faucet = self.faucet().map_or("none".into(), |f| f.to_string());
            return Err(GrantIssueError::NotTheFaucet { faucet });
        }
        let grant = FaucetGrant {
            faucet: me,
            recipient,
            amount,
            issued_at: now(),
            nonce: rand::random(),
        };
        let signed = self
            .ctx
            .sign(grant)
            .map_err(|e| GrantIssueError::Sign(e.to_string()))?;
        let bytes =
            (signed.envelope().to_bytes()).map_err(|e| GrantIssueError::Sign(e.to_string()))?;
        let before = self.balance(&recipient).unwrap_or(0);
        self.apply_grant_bytes(&bytes)
            .map_err(GrantIssueError::Refused)?;
        let credited = self.balance(&recipient).unwrap_or(0).saturating_sub(before);
        if let Err(e) = self.ctx.net.publish(bytes).await {
            debug!(target: "cairn::verdicts", error = %e, "faucet grant not published");
        }
        Ok(credited)
    }
}
