//! The verdict service: checks every verdict heard on gossip (fresh, proven by its evidence,
//! from a requester with standing), applies it to the node's live reputation table, keeps it
//! for the next start, and hands what counted to the checkpoint ledger.
//!
//! The rules are `cairn_protocol::reputation`'s and `cairn_protocol::messages::verdict`'s;
//! this module carries them out on the gossip topic and the disk.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use cairn_protocol::adverts::Tier;
use cairn_protocol::credits::{CreditParams, FaucetGrant, Settlement};
use cairn_protocol::envelope::MessageKind;
use cairn_protocol::messages::Evidence;
use cairn_protocol::reputation::{Applied, ReputationTable};
use cairn_protocol::{Envelope, NodeId, Timestamp, Verdict, VerdictId, Verified};
use libp2p::PeerId;
use libp2p::gossipsub::MessageId;
use tracing::{debug, warn};

use crate::checkpoints::Checkpoints;
use crate::context::{Context, now};
use crate::credits::{LiveCredits, PaymentView};
use crate::error::NodeError;
use crate::store::Tree;

/// Requesters whose verdict effects a node tallies at most.
const MAX_EFFECT_REQUESTERS: usize = 65_536;

/// Applied verdict ids the live table holds at most; past it, it forgets them (its
/// one-verdict-per-job memory stays) and prunes jobs past their last verdict time.
const MAX_APPLIED_IDS: usize = 65_536;

/// Rejection reason of a valid verdict whose requester has no standing here.
const NO_STANDING: &str = "requester_without_standing";
/// Rejection reason of a verdict that finds the reputation table's job memory full.
const TABLE_FULL: &str = "reputation_table_full";

mod grants;

pub use grants::GrantIssueError;

/// Whether gossip or stored bytes are a faucet grant's envelope (else a verdict's).
fn is_grant(data: &[u8]) -> bool {
    Envelope::from_bytes(data).is_ok_and(|e| e.kind == MessageKind::FaucetGrant)
}

/// What one requester's verdicts did to a node's reputation table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VerdictEffects {
    /// Verdicts that passed every check.
    pub checked: u64,
    /// Verdicts that moved a score (counted or equivocation).
    pub applied: u64,
    /// Points credited to providers.
    pub credited: i64,
    /// Points debited from providers (and from the requester itself for equivocating).
    pub debited: i64,
}

/// The verdict service (see the module docs). Cheap to clone.
#[derive(Clone)]
pub struct Verdicts {
    ctx: Arc<Context>,
    checkpoints: Checkpoints,
    state: Arc<State>,
}

struct State {
    table: Mutex<ReputationTable>,
    /// Balances as verdicts moved them here, and this node's payments.
    credits: Mutex<LiveCredits>,
    /// What verdicts did to this node's table, by requester (at most
    /// [`MAX_EFFECT_REQUESTERS`]): for operators and the simulation's attack report.
    effects: Mutex<HashMap<NodeId, VerdictEffects>>,
}

/// The key of a stored verdict: issue time (big-endian, so keys sort by time), then its id.
/// Faucet grants share the tree, keyed the same way by their issue time and id.
fn verdict_key(issued_at: Timestamp, id: &[u8; 32]) -> Vec<u8> {
    let mut key = issued_at.0.to_be_bytes().to_vec();
    key.extend_from_slice(id);
    key
}

impl Verdicts {
    pub(crate) fn new(
        ctx: Arc<Context>,
        checkpoints: Checkpoints,
        roots: Vec<NodeId>,
        credits: Option<CreditParams>,
    ) -> Result<Self, NodeError> {
        let credits = LiveCredits::new(ctx.node_id(), credits).map_err(|e| {
            NodeError::Config(crate::config::ConfigError::Invalid {
                field: "credits",
                reason: e.to_string(),
            })
        })?;
        Ok(Self {
            ctx,
            checkpoints,
            state: Arc::new(State {
                table: Mutex::new(ReputationTable::default().with_roots(roots)),
                credits: Mutex::new(credits),
                effects: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// Runs `f` on the live credit book, held for that call only; `None` if its lock is
    /// poisoned.
    pub(crate) fn with_credits<T>(&self, f: impl FnOnce(&LiveCredits) -> T) -> Option<T> {
        self.state.credits.lock().ok().map(|c| f(&c))
    }

    /// Runs `f` on this node's live credit book (tests and the simulation's report); `None` if
    /// its lock is poisoned.
    pub fn with_book<T>(
        &self,
        f: impl FnOnce(&cairn_protocol::credits::CreditBook) -> T,
    ) -> Option<T> {
        self.with_credits(|c| f(c.book()))
    }

    /// `peer`'s balance in this node's live book; `None` on a network without credits.
    pub fn balance(&self, peer: &NodeId) -> Option<u64> {
        self.with_credits(|c| c.balance(peer)).flatten()
    }

    /// Every non-zero balance in this node's live book (pool accounts included); empty on a
    /// network without credits.
    pub fn balances(&self) -> Vec<(NodeId, u64)> {
        self.with_credits(|c| {
            if !c.enabled() {
                return Vec::new();
            }
            c.book().iter().map(|(p, b)| (*p, *b)).collect()
        })
        .unwrap_or_default()
    }

    /// The payments that concern this node, oldest first (at most
    /// [`crate::credits::MAX_PAYMENTS`]).
    pub fn payments(&self) -> Vec<PaymentView> {
        self.with_credits(|c| c.payments().cloned().collect())
            .unwrap_or_default()
    }

    /// The payment of `job`, when this node paid or was paid for it.
    pub fn payment_of(&self, job: &cairn_protocol::JobId) -> Option<PaymentView> {
        self.with_credits(|c| c.payment_of(job)).flatten()
    }

    /// Runs `f` on the live table, held for that call only (cloning it would cost
    /// O(verdicts applied)); `None` if its lock is poisoned.
    pub(crate) fn with_table<T>(&self, f: impl FnOnce(&ReputationTable) -> T) -> Option<T> {
        self.state.table.lock().ok().map(|t| f(&t))
    }

    /// The advert-book tier of `peer` in this node's live table.
    pub(crate) fn tier_of(&self, peer: &NodeId) -> Tier {
        self.state
            .table
            .lock()
            .map(|t| Tier::of(&t, peer))
            .unwrap_or(Tier::Probation)
    }

    /// What each requester's verdicts did to this node's table.
    pub fn effects(&self) -> HashMap<NodeId, VerdictEffects> {
        self.state
            .effects
            .lock()
            .map(|e| e.clone())
            .unwrap_or_default()
    }

    /// The reputation table this node has computed from the verdicts it checked.
    pub fn table(&self) -> ReputationTable {
        self.state
            .table
            .lock()
            .map(|t| t.clone())
            .unwrap_or_default()
    }

    /// Checks a gossiped verdict, applies it, and tells gossipsub what became of it.
    pub(crate) async fn on_gossip(&self, source: PeerId, id: MessageId, data: Vec<u8>) {
        if is_grant(&data) {
            let checked = self.apply_grant_bytes(&data);
            self.ctx
                .settle_gossip("faucet_grant", source, id, checked)
                .await;
            return;
        }
        match self.apply_verdict_bytes(&data) {
            // Valid, but of no weight on this node: not forwarded, and not the fault of the
            // peer that forwarded it (its own table may weigh the requester otherwise).
            Err(reason @ (NO_STANDING | TABLE_FULL)) => {
                self.ctx.metrics.reject("verdict", reason);
                let ignore = libp2p::gossipsub::MessageAcceptance::Ignore;
                let _ = self.ctx.net.report_validation(id, source, ignore).await;
            }
            checked => {
                self.ctx.settle_gossip("verdict", source, id, checked).await;
            }
        }
    }

    /// Checks a verdict heard now (fresh, proven, from a requester with standing) and applies
    /// it; stores it so that a restart replays it. Returns whether it moved a score.
    fn apply_verdict_bytes(&self, data: &[u8]) -> Result<bool, &'static str> {
        let verdict =
            Envelope::open::<Verdict>(data, self.ctx.network()).map_err(|e| e.reason())?;
        verdict
            .message()
            .check_fresh(now())
            .map_err(|e| e.reason())?;
        let applied = self.apply_checked_verdict(data, &verdict, false)?;
        if applied {
            let key = verdict_key(verdict.message().issued_at, VerdictId::of(data).as_bytes());
            if let Err(e) = self.ctx.kv.put(Tree::Verdicts, &key, data) {
                warn!(target: "cairn::verdicts", error = %e, "cannot store verdict");
            }
        }
        Ok(applied)
    }

    /// Applies a verdict whose envelope was verified: checks its evidence, weighs it by its
    /// requester's standing in the live table, and hands what counted to the checkpoint
    /// ledger (as `restored` when replayed from the store at start: the ledger then skips
    /// what its restored table already covers).
    fn apply_checked_verdict(
        &self,
        data: &[u8],
        verdict: &Verified<Verdict>,
        restored: bool,
    ) -> Result<bool, &'static str> {
        let evidence = verdict
            .message()
            .evidence(self.ctx.network())
            .map_err(|e| e.reason())?;
        let id = VerdictId::of(data);
        let applied = {
            let mut table = self.state.table.lock().map_err(|_| "internal")?;
            if table.applied_ids_len() >= MAX_APPLIED_IDS {
                table.forget_applied();
                table.prune_jobs(now());
            }
            table.apply(id, &evidence)
        };
        self.tally_effect(&evidence.requester, applied);
        match applied {
            Applied::Counted { .. } | Applied::Equivocation { .. } => {
                let issued_at = verdict.message().issued_at;
                self.settle(id, verdict.message(), &evidence, restored);
                self.checkpoints
                    .note_checked_verdict(id, issued_at, evidence, restored);
                Ok(applied.changed())
            }
            Applied::Duplicate => Ok(false),
            Applied::NoStanding => Err(NO_STANDING),
            Applied::Full => Err(TABLE_FULL),
        }
    }

    /// What a counted verdict owes moves credits in the live book, and goes to the checkpoint
    /// ledger beside its evidence.
    fn settle(&self, id: VerdictId, verdict: &Verdict, evidence: &Evidence, restored: bool) {
        let settlement = match Settlement::from_checked(verdict, evidence) {
            Ok(settlement) => settlement,
            Err(e) => {
                warn!(target: "cairn::verdicts", error = %e, "verdict owes nothing");
                return;
            }
        };
        if let Ok(mut credits) = self.state.credits.lock() {
            credits.settle(&settlement);
        }
        self.checkpoints
            .note_checked_settlement(id, settlement, restored);
    }

    fn tally_effect(&self, requester: &NodeId, applied: Applied) {
        let Ok(mut effects) = self.state.effects.lock() else {
            return;
        };
        if effects.len() >= MAX_EFFECT_REQUESTERS && !effects.contains_key(requester) {
            return;
        }
        let e = effects.entry(*requester).or_default();
        e.checked += 1;
        e.applied += u64::from(applied.changed());
        match applied {
            Applied::Counted { credited, debited } => {
                e.credited += credited;
                e.debited += debited;
            }
            Applied::Equivocation { debited } => e.debited += debited,
            _ => {}
        }
    }

    /// Replays the verdicts stored by earlier runs into the live table and the checkpoint
    /// ledger (their freshness was checked when they first arrived), oldest first, so that a
    /// restarted node knows who is on probation and, on the committee, votes again. When this
    /// node holds the leaves of its last finalised checkpoint, the live table starts from them
    /// and only later verdicts are replayed; those the checkpoint covers leave the store.
    pub(crate) fn replay(&self) {
        let Ok(keys) = self.ctx.kv.keys(Tree::Verdicts, b"") else {
            return;
        };
        let covered = self.checkpoints.last_covered();
        if let Some((_, leaves)) = &covered
            && let Ok(mut table) = self.state.table.lock()
        {
            let roots: Vec<NodeId> = table.roots().copied().collect();
            *table = ReputationTable::from_leaves(*table.params(), leaves).with_roots(roots);
        }
        if let Some((_, leaves)) = &covered
            && let Ok(mut credits) = self.state.credits.lock()
            && let Err(e) = credits.adopt_leaves(leaves)
        {
            warn!(target: "cairn::verdicts", error = %e, "the last checkpoint's balances do not hold the supply; replaying from genesis");
        }
        let cutoff = covered.map(|(cutoff, _)| cutoff);
        let mut replayed = 0usize;
        for key in keys {
            let issued = key
                .get(..8)
                .and_then(|b| b.try_into().ok())
                .map_or(0, u64::from_be_bytes);
            if cutoff.is_some_and(|c| Timestamp(issued) <= c) {
                let _ = self.ctx.kv.remove(Tree::Verdicts, &key);
                continue;
            }
            let Ok(Some(bytes)) = self.ctx.kv.get(Tree::Verdicts, &key) else {
                continue;
            };
            if is_grant(&bytes) {
                match Envelope::open::<FaucetGrant>(&bytes, self.ctx.network()) {
                    Ok(g) => {
                        let applied = self.apply_checked_grant(&bytes, g.message(), true);
                        replayed += usize::from(applied.is_ok());
                    }
                    Err(_) => {
                        let _ = self.ctx.kv.remove(Tree::Verdicts, &key);
                    }
                }
                continue;
            }
            match Envelope::open::<Verdict>(&bytes, self.ctx.network()) {
                Ok(v) => {
                    replayed += usize::from(self.apply_checked_verdict(&bytes, &v, true).is_ok())
                }
                Err(_) => {
                    let _ = self.ctx.kv.remove(Tree::Verdicts, &key);
                }
            }
        }
        debug!(target: "cairn::verdicts", replayed, "verdicts replayed from the store");
    }

    /// Signs one of this node's verdicts as a requester, applies it here and gossips it;
    /// whether gossip took it (not when no peer subscribes yet). The same verdict again is
    /// the same message (signatures are deterministic) and counts once everywhere.
    pub(crate) async fn publish(&self, verdict: Verdict) -> bool {
        let Ok(signed) = self.ctx.sign(verdict) else {
            return false;
        };
        let Ok(bytes) = signed.envelope().to_bytes() else {
            return false;
        };
        if let Err(reason) = self.apply_verdict_bytes(&bytes) {
            warn!(target: "cairn::verdicts", reason, "own verdict does not check out");
        }
        match self.ctx.net.publish(bytes).await {
            Ok(()) => true,
            Err(e) => {
                debug!(target: "cairn::verdicts", error = %e, "verdict not published");
                false
            }
        }
    }
}
