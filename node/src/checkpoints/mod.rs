//! The checkpoint service: every epoch the proposer (round robin over the committee, the next
//! member after each timeout) gossips a proposal built from its reputation ledger; every node
//! recomputes it from its own ledger and committee members sign only an equal one; at the
//! spec's threshold the checkpoint is final, chained and stored in the sled tree
//! `checkpoints`; its proposer anchors it through the spec's backend.
//!
//! A proposal made at time `t` covers the table of the previous checkpoint plus every verdict
//! issued by `t` minus a settle time (half an epoch, at most 10 s), applied in id order
//! (`ledger.rs`), so members agree while new verdicts keep arriving.
//!
//! The rules are `cairn_protocol::checkpoint`'s, and the epoch round that applies them is its
//! state machine [`EpochRound`]: proposals, votes, finality and when to catch up. This module
//! feeds it the clock and the gossip topic and carries out what it decides on the network and
//! the disk (`round.rs`); a node behind the chain catches up over the sync protocol
//! (`catch_up.rs`), and at start it reads its chain, anchors and covered table back
//! (`restore.rs`). Gossip is checked before it triggers anything: votes only from the current
//! committee for the current epoch, proposals only from plausible members and with a sane
//! time, anchor receipts only from the committee that signed the checkpoint and only kept when
//! the transaction commits to it (see docs/anchoring.md). A checkpoint anchored with the
//! spec's confirmations is final: no other branch replaces it.
//!
//! Not built: fetching verdicts a member misses (a member whose ledger differs does not sign,
//! and signs later if the missing verdict arrives before the checkpoint is final).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_protocol::checkpoint::Genesis;
use cairn_protocol::checkpoint::round::{EpochRound, RoundConfig};
use cairn_protocol::credits::{CreditEvent, FaucetGrant, Settlement};
use cairn_protocol::merkle::ReputationLeaf;
use cairn_protocol::messages::Evidence;
use cairn_protocol::proof::{AnchorProof, AnchorRule, SignedCheckpoint};
use cairn_protocol::{GrantId, NodeId, Timestamp, VerdictId};

use bitcoin::secp256k1::SecretKey;

use crate::anchor::{
    AnchorBackend, BackendKind, BitcoindBackend, EsploraBackend, NoAnchor, Simulated,
    SimulatedChain,
};
use crate::config::NetworkSpec;
use crate::context::{Context, now};
use crate::error::NodeError;
use crate::store::{self, KvStore, Tree};

mod anchoring;
mod catch_up;
mod restore;
mod round;
#[cfg(test)]
mod stored_tests;

use cairn_protocol::ledger::Ledger;

/// How often an anchorer asks a real chain whether its transaction is confirmed.
const ANCHOR_POLL: Duration = Duration::from_secs(30);
/// The same for the simulated chain, which mines on demand.
const ANCHOR_POLL_SIMULATED: Duration = Duration::from_millis(200);
/// How many times it asks before giving up on one anchor (25 hours on a real chain); a later
/// checkpoint's anchor then covers this one through the chain.
const ANCHOR_POLLS: u32 = 3_000;

/// Misbehaviour a test can switch on in one node's checkpoint service.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum CheckpointFault {
    /// Behave.
    #[default]
    None,
    /// Never propose and never vote.
    Silent,
    /// Vote for a checkpoint with a different reputation root than proposed.
    WrongRoot,
}

/// Checkpoints this node finalised and anchored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct CheckpointCounts {
    /// Finalised checkpoints in the local chain.
    pub finalised: u64,
    /// Of those, how many this node holds an anchor proof for.
    pub anchored: u64,
}

/// What a node does with one checkpoint gossip message: what it reports to gossipsub.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckpointGossip {
    /// Valid and useful: kept and forwarded.
    Accept,
    /// Not useful here (another epoch, an unknown checkpoint), or not the sender's fault:
    /// dropped, counted under this reason, not forwarded and not penalised.
    Ignore(&'static str),
    /// Invalid: dropped, counted under this reason, and the forwarder penalised.
    Reject(&'static str),
}

/// Why a proof could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProveError {
    /// No finalised checkpoint at the epoch asked for.
    #[error("no finalised checkpoint for epoch {epoch:?} on this node")]
    NoCheckpoint {
        /// The epoch asked for, `None` for the latest.
        epoch: Option<u64>,
    },
    /// This node did not keep the table of that epoch (its own table differed).
    #[error("this node does not hold the reputation table of epoch {epoch}")]
    NoTable {
        /// The epoch.
        epoch: u64,
    },
    /// The peer has no leaf in that checkpoint.
    #[error("peer {peer} has no record in the checkpoint of epoch {epoch}")]
    NoLeaf {
        /// The peer.
        peer: NodeId,
        /// The epoch.
        epoch: u64,
    },
    /// The network anchors but no anchor covers the epoch yet.
    #[error("no anchor covers epoch {epoch} yet; retry after the next checkpoint is anchored")]
    NotAnchoredYet {
        /// The epoch.
        epoch: u64,
    },
    /// The store failed.
    #[error(transparent)]
    Node(#[from] NodeError),
}

struct State {
    /// The chain, the checkpoint ledger and the open epoch.
    round: EpochRound,
    anchored: BTreeSet<u64>,
    fault: CheckpointFault,
    /// Epochs whose anchor receipt is being checked against the chain.
    fetching_receipts: BTreeSet<u64>,
}

/// The checkpoint service (see the module docs). Cheap to clone.
#[derive(Clone)]
pub struct Checkpoints {
    ctx: Arc<Context>,
    svc: Arc<Service>,
}

/// The service as [`CheckpointService::open`] reads it back, before the node exists;
/// [`Checkpoints::new`] starts it with the node's id.
pub(crate) struct CheckpointService {
    genesis: Option<Genesis>,
    round: RoundConfig,
    chain: Vec<SignedCheckpoint>,
    ledger: Ledger,
    anchored: BTreeSet<u64>,
    backend: Arc<dyn AnchorBackend>,
    anchor_rule: Option<AnchorRule>,
    chain_process: Option<SimulatedChain>,
}

/// The running service's state and backend.
struct Service {
    genesis: Option<Genesis>,
    state: Mutex<State>,
    backend: Arc<dyn AnchorBackend>,
    /// What an anchor must satisfy (the spec's chain and proof of work); `None` when the
    /// network does not anchor.
    anchor_rule: Option<AnchorRule>,
    /// The node's own simulated chain, when the spec asks for one without a URL.
    _chain: Option<SimulatedChain>,
}

fn key(prefix: u8, epoch: u64) -> Vec<u8> {
    let mut k = vec![prefix];
    k.extend_from_slice(&epoch.to_be_bytes());
    k
}

impl CheckpointService {
    /// Loads the stored chain and prepares the backend the spec names.
    pub(crate) async fn open(
        spec: &NetworkSpec,
        kv: &dyn KvStore,
        data_dir: &std::path::Path,
    ) -> Result<Self, NodeError> {
        let genesis = Some(spec.genesis()?).filter(|g| !g.committee.is_empty());
        let (backend, chain) = backend(spec, data_dir).await?;
        let anchor_rule = match genesis {
            Some(_) => crate::config::network_rules(spec)?.anchor,
            None => None,
        };
        let chain_state = restore::stored_chain(kv, genesis.as_ref())?;
        let anchored = restore::verified_anchors(kv, &chain_state, anchor_rule.as_ref())?;
        let roots = spec.roots().map_err(NodeError::Config)?;
        let credits = spec.credit_params()?;
        let ledger = restore::ledger(kv, &chain_state, spec.checkpoints.epoch_ms, roots, credits)?;
        let round = RoundConfig {
            genesis: spec.genesis()?,
            epoch_ms: spec.checkpoints.epoch_ms,
            proposer_timeout_ms: spec.checkpoints.proposer_timeout_ms,
        };
        Ok(Self {
            genesis,
            round,
            chain: chain_state,
            ledger,
            anchored,
            backend,
            anchor_rule,
            chain_process: chain,
        })
    }
}

/// File in the data dir holding the `esplora` backend's signing key (hex, owner-only).
pub const ANCHOR_KEY_FILE: &str = "anchor.key";

/// The `esplora` backend's key: read from the data dir, created on first use.
fn anchor_key(data_dir: &std::path::Path) -> Result<SecretKey, NodeError> {
    let path = data_dir.join(ANCHOR_KEY_FILE);
    let io = |source| NodeError::Io {
        path: path.clone(),
        source,
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let text = hex::encode(rand::random::<[u8; 32]>());
            crate::files::write_private(&path, text.as_bytes()).map_err(io)?;
            text
        }
        Err(e) => return Err(io(e)),
    };
    let bytes = hex::decode(text.trim()).map_err(|e| NodeError::Identity(e.to_string()))?;
    SecretKey::from_slice(&bytes).map_err(|e| NodeError::Identity(e.to_string()))
}

fn network_of(chain: &str) -> bitcoin::Network {
    match chain {
        "bitcoin" | "bitcoin-mainnet" => bitcoin::Network::Bitcoin,
        "bitcoin-testnet" => bitcoin::Network::Testnet,
        "bitcoin-signet" => bitcoin::Network::Signet,
        _ => bitcoin::Network::Regtest,
    }
}

async fn backend(
    spec: &NetworkSpec,
    data_dir: &std::path::Path,
) -> Result<(Arc<dyn AnchorBackend>, Option<SimulatedChain>), NodeError> {
    let a = &spec.anchor;
    let chain_name = crate::anchor::chain_name(a);
    Ok(match a.backend {
        BackendKind::None => (Arc::new(NoAnchor), None),
        BackendKind::Esplora => {
            let key = anchor_key(data_dir)?;
            let urls = a.esplora_urls.clone();
            let backend = EsploraBackend::new(urls, key, network_of(&chain_name), &chain_name);
            if let Ok(address) = backend.address() {
                tracing::info!(target: "cairn::checkpoints", %address, "esplora anchoring pays its fees from this address");
            }
            (Arc::new(backend), None)
        }
        BackendKind::Bitcoind => (
            Arc::new(BitcoindBackend::new(
                &a.rpc_url,
                &a.rpc_user,
                &a.rpc_password,
                &chain_name,
            )),
            None,
        ),
        BackendKind::Simulated if a.rpc_url.is_empty() => {
            let chain = SimulatedChain::start(rand::random())
                .await
                .map_err(|source| NodeError::Io {
                    path: "simulated chain".into(),
                    source,
                })?;
            let client =
                BitcoindBackend::new(&chain.url(), chain.user(), chain.password(), &chain_name);
            (Arc::new(Simulated(client)), Some(chain))
        }
        BackendKind::Simulated => (
            Arc::new(Simulated(BitcoindBackend::new(
                &a.rpc_url,
                &a.rpc_user,
                &a.rpc_password,
                &chain_name,
            ))),
            None,
        ),
    })
}

impl Checkpoints {
    pub(crate) fn new(ctx: Arc<Context>, opened: CheckpointService) -> Self {
        let round = EpochRound::new(
            opened.round,
            ctx.node_id(),
            opened.chain,
            opened.ledger,
            now(),
        );
        let state = State {
            round,
            anchored: opened.anchored,
            fault: CheckpointFault::None,
            fetching_receipts: BTreeSet::new(),
        };
        let svc = Service {
            genesis: opened.genesis,
            state: Mutex::new(state),
            backend: opened.backend,
            anchor_rule: opened.anchor_rule,
            _chain: opened.chain_process,
        };
        Self {
            ctx,
            svc: Arc::new(svc),
        }
    }

    fn service(&self) -> &Service {
        &self.svc
    }

    fn with_state<T>(&self, f: impl FnOnce(&mut State) -> T) -> Option<T> {
        self.service().state.lock().ok().map(|mut s| f(&mut s))
    }

    /// Hands an applied verdict to the checkpoint ledger (when the network checkpoints). A
    /// verdict `restored` from the store at start that the restored table already covers
    /// (issued by the last finalised cutoff) is skipped; a new one issued by then joins the
    /// covered table (see [`Ledger::note`]).
    pub(crate) fn note_checked_verdict(
        &self,
        id: VerdictId,
        issued_at: Timestamp,
        evidence: Evidence,
        restored: bool,
    ) {
        self.note_in_ledger(("verdict", "checkpoint_ledger_full"), |ledger| {
            if restored {
                ledger.restore(id, issued_at, evidence)
            } else {
                ledger.note(id, issued_at, evidence)
            }
        });
    }

    /// Hands what a counted verdict owes to the checkpoint ledger (when the network
    /// checkpoints), beside its evidence ([`Checkpoints::note_checked_verdict`]).
    pub(crate) fn note_checked_settlement(
        &self,
        id: VerdictId,
        settlement: Settlement,
        restored: bool,
    ) {
        self.note_in_ledger(("verdict", "credit_ledger_full"), |ledger| {
            if restored {
                ledger.restore_credit(CreditEvent::Settlement {
                    verdict: id,
                    settlement,
                })
            } else {
                ledger.note_settlement(id, settlement)
            }
        });
    }

    /// Hands a verified faucet grant to the checkpoint ledger (when the network checkpoints);
    /// `restored` as for verdicts.
    pub(crate) fn note_grant(&self, id: GrantId, grant: FaucetGrant, restored: bool) {
        self.note_in_ledger(("faucet_grant", "credit_ledger_full"), |ledger| {
            if restored {
                ledger.restore_credit(CreditEvent::Grant { id, grant })
            } else {
                ledger.note_grant(id, grant)
            }
        });
    }

    /// Runs `note` on the checkpoint ledger when the network checkpoints, and counts the
    /// rejection `full` (what, reason) when the ledger had no room (`note` returned `false`).
    fn note_in_ledger(
        &self,
        full: (&'static str, &'static str),
        note: impl FnOnce(&mut Ledger) -> bool,
    ) {
        if self.service().genesis.is_none() {
            return;
        }
        if self.with_state(|s| note(s.round.ledger_mut())) == Some(false) {
            self.ctx.metrics.reject(full.0, full.1);
        }
    }

    /// The cutoff of the last finalised checkpoint and its leaves, when this node holds them
    /// and they hash to its root (the same check as the ledger's restore).
    pub(crate) fn last_covered(&self) -> Option<(Timestamp, Vec<ReputationLeaf>)> {
        let last = self
            .with_state(|s| s.round.chain().last().map(|c| c.checkpoint.clone()))
            .flatten()?;
        let epoch_ms = self.ctx.options().spec.checkpoints.epoch_ms;
        match restore::covered_leaves(self.ctx.kv.as_ref(), &last, epoch_ms) {
            Ok((cutoff, Some(leaves))) => Some((cutoff, leaves)),
            _ => None,
        }
    }

    /// Makes this node misbehave in checkpoints (tests and simulations).
    pub fn set_fault(&self, fault: CheckpointFault) {
        self.with_state(|s| s.fault = fault);
    }

    /// How many checkpoints this node finalised and holds anchors for.
    pub fn counts(&self) -> CheckpointCounts {
        self.with_state(|s| CheckpointCounts {
            finalised: s.round.epoch(),
            anchored: s.anchored.len() as u64,
        })
        .unwrap_or_default()
    }

    /// The finalised chain, epoch 0 first.
    pub fn chain(&self) -> Vec<SignedCheckpoint> {
        self.with_state(|s| s.round.chain().to_vec())
            .unwrap_or_default()
    }

    /// The anchor proof of `epoch`, when this node holds one.
    pub fn anchor_proof(&self, epoch: u64) -> Option<AnchorProof> {
        self.stored(b'a', epoch)
    }

    /// What the `checkpoints` tree holds under `prefix` for `epoch`, if it reads back.
    fn stored<T: bincode::Decode<()> + bincode::Encode>(
        &self,
        prefix: u8,
        epoch: u64,
    ) -> Option<T> {
        let bytes = self
            .ctx
            .kv
            .get(Tree::Checkpoints, &key(prefix, epoch))
            .ok()??;
        store::decode_value(&bytes).ok()
    }

    /// The anchoring backend's name and chain.
    pub fn anchor_backend(&self) -> (&'static str, String) {
        (
            self.service().backend.kind(),
            self.service().backend.chain().to_owned(),
        )
    }

    /// Runs the epoch clock: spawned at start when the spec names a first committee.
    pub(crate) async fn run(self) {
        if self.service().genesis.is_none() {
            return;
        }
        let spec = &self.ctx.options().spec.checkpoints;
        let step = spec.epoch_ms.min(spec.proposer_timeout_ms) / 4;
        let mut ticker = tokio::time::interval(Duration::from_millis(step.clamp(20, 1_000)));
        loop {
            ticker.tick().await;
            self.checkpoint_tick(now()).await;
        }
    }

    /// The last checkpoint this node holds an anchor for, with the spec's confirmations: it
    /// and everything before it are final, whatever another branch's length (see
    /// docs/anchoring.md, "Finality").
    fn final_epoch(s: &State) -> Option<u64> {
        let len = s.round.epoch();
        s.anchored.iter().rev().find(|e| **e < len).copied()
    }
}
