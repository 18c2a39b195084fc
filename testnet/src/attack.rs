//! An attacker with K free identities next to the honest nodes of a simulation
//! (`sim --attack KIND --sybils K`).
//!
//! The attacker owns one real node of the testnet (its gateway: a full node that gossips like
//! any other, and is not a trust root) and K more ed25519 keys of its own. While the honest
//! jobs run it publishes forged messages through the gateway, and at the end the report counts
//! what any honest node applied. Kinds built so far:
//! - `mint`: valid-looking verdicts of Sybil requesters crediting Sybil providers (jobs whose
//!   spec, awards and reports are all the attacker's own, so every check but standing passes),
//!   and verdicts that claim an honest requester's name;
//! - `slash`: Sybil requesters' verdicts that blame honest providers (timeouts of awards the
//!   attacker made itself);
//! - `replay`: every verdict the gateway heard, re-encoded (a longer varint form), relabelled
//!   for another network, and as it was;
//! - `capture`: `mint`, plus checkpoint proposals from Sybil keys (for the current epoch, with
//!   the Sybils as the next committee, and for an epoch far ahead), every Sybil's vote for
//!   them, and anchor receipts for the last real checkpoint;
//! - `flood-adverts`: K more real nodes of the attacker's, claiming eight H100s at price 1 with
//!   adverts that live an hour, all reporting the same wrong output for every job they win;
//! - `flood-calls`, `flood-awards`, `flood-blobs`, `flood-sync`, `flood-connections`: resource
//!   attacks by the gateway (see [`crate::flood`]).

use std::collections::BTreeSet;
use std::time::Duration;

use cairn_node::Node;
use cairn_node::store::Tree;
use cairn_protocol::checkpoint::{self, CheckpointInput, MAX_COMMITTEE};
use cairn_protocol::merkle::ReputationLeaf;
use cairn_protocol::reputation::ReputationTable;
use cairn_protocol::{
    AnchorReceipt, AwardTerms, BlobHash, CheckpointVote, Envelope, JobSpec, NetworkId, NodeId,
    Outcome, Requirements, ResultReport, Timestamp, Verdict, VerdictDecision, VerdictId,
};
use libp2p_identity::ed25519;
use serde::Serialize;

/// The price of every award in the attacker's forged verdicts, and in its reports.
const ATTACK_PRICE: u64 = 1;

use crate::flood::{ATTACK_JOB_LIMITS, Counts, Flood, FloodKind, Victim};
use crate::rng::SimRng;

/// What the attacker does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum AttackKind {
    /// Forged verdicts crediting the Sybils.
    Mint,
    /// Forged verdicts blaming honest providers.
    Slash,
    /// Every verdict heard, re-encoded and replayed, also under another network.
    Replay,
    /// Attractive Sybil providers that return wrong outputs.
    FloodAdverts,
    /// Mint, then checkpoint proposals, votes and anchor receipts from Sybil keys.
    Capture,
    /// Calls for bids of new jobs, as fast as answered.
    FloodCalls,
    /// Each award sent many times over, and awards for jobs never called.
    FloodAwards,
    /// Requests for honest jobs' blobs and for blobs nobody holds.
    FloodBlobs,
    /// Advert, checkpoint and leaf sync requests.
    FloodSync,
    /// K identities on one host dialing every honest node.
    FloodConnections,
}

impl AttackKind {
    /// The request flood this kind sends through the gateway, if it is one.
    fn flood(self) -> Option<FloodKind> {
        match self {
            AttackKind::FloodCalls => Some(FloodKind::Calls),
            AttackKind::FloodAwards => Some(FloodKind::Awards),
            AttackKind::FloodBlobs => Some(FloodKind::Blobs),
            AttackKind::FloodSync => Some(FloodKind::Sync),
            _ => None,
        }
    }

    /// Whether this kind attacks resources (a flood of requests or connections) rather than
    /// trust.
    pub fn is_resource_flood(self) -> bool {
        self.flood().is_some() || self == AttackKind::FloodConnections
    }
}

/// The attack's figures, in the report's `attack` object.
#[derive(Clone, Debug, Default, Serialize)]
pub struct AttackReport {
    /// The kind.
    pub kind: Option<AttackKind>,
    /// Identities the attacker holds besides its gateway node.
    pub sybils: usize,
    /// Forged messages published.
    pub published: u64,
    /// Highest score any honest node gives any attacker identity.
    pub sybil_reputation_max: i64,
    /// Attacker identities on the committee of the last checkpoint node 0 holds.
    pub sybil_committee_seats: usize,
    /// Points honest nodes' tables lost through verdicts of attacker identities.
    pub honest_reputation_lost: i64,
    /// Forged verdicts (by id) that any honest node applied, summed over honest nodes.
    pub forged_applied: u64,
    /// Jobs accepted with a wrong output during the attack.
    pub wrongly_accepted: usize,
    /// Resource floods: requests (or dials) the attacker sent.
    pub requests_sent: u64,
    /// Resource floods: those the honest nodes refused (a busy or duplicate answer, a closed
    /// stream, a denied connection).
    pub requests_refused: u64,
}

/// The attacker: its keys, and what it published.
pub(crate) struct Attacker {
    kind: AttackKind,
    keys: Vec<ed25519::Keypair>,
    ids: Vec<NodeId>,
    /// The attacker's other real nodes (`flood-adverts`).
    nodes: Vec<NodeId>,
    network: NetworkId,
    rng: SimRng,
    forged: BTreeSet<VerdictId>,
    replayed: BTreeSet<Vec<u8>>,
    published: u64,
    round: u64,
    /// The request flood, for `flood-*` kinds sent through the gateway.
    flood: Option<Flood>,
    /// The connection flood's counts (`flood-connections`).
    connections: Counts,
}

/// How often the attacker publishes a batch.
pub(crate) const ATTACK_PERIOD: Duration = Duration::from_millis(100);

/// Forged verdicts per batch.
const BATCH: usize = 8;

impl Attacker {
    pub(crate) fn new(
        kind: AttackKind,
        sybils: usize,
        nodes: Vec<NodeId>,
        gateway_key: ed25519::Keypair,
        network: NetworkId,
        seed: u64,
    ) -> Self {
        let mut rng = SimRng::new(seed ^ 0x5b11);
        let keys: Vec<ed25519::Keypair> = (0..sybils.max(4))
            .map(|_| {
                let mut secret = rng.bytes32();
                match ed25519::SecretKey::try_from_bytes(&mut secret) {
                    Ok(key) => ed25519::Keypair::from(key),
                    Err(_) => ed25519::Keypair::generate(),
                }
            })
            .collect();
        let ids = keys.iter().map(NodeId::from_keypair).collect();
        let flood = kind
            .flood()
            .map(|f| Flood::new(f, gateway_key, network, seed));
        Self {
            kind,
            keys,
            ids,
            nodes,
            network,
            rng,
            forged: BTreeSet::new(),
            replayed: BTreeSet::new(),
            published: 0,
            round: 0,
            flood,
            connections: Counts::default(),
        }
    }

    /// The connection flood's counters, for its tasks to add to.
    pub(crate) fn connection_counts(&self) -> Counts {
        self.connections.clone()
    }

    /// Every identity the attacker holds, its gateway included.
    pub(crate) fn identities(&self, gateway: &Node) -> BTreeSet<NodeId> {
        let mut all: BTreeSet<NodeId> = self.ids.iter().chain(&self.nodes).copied().collect();
        all.insert(gateway.node_id());
        all
    }

    /// Publishes one batch through `gateway`, or sends one burst of a request flood;
    /// `honest` are the honest nodes.
    pub(crate) async fn strike(&mut self, gateway: &Node, honest: &[Victim], now: Timestamp) {
        self.round += 1;
        if let Some(flood) = &mut self.flood {
            flood.strike(gateway, honest, now).await;
            return;
        }
        let honest: Vec<NodeId> = honest.iter().map(|v| v.id).collect();
        let honest = &honest[..];
        // (bytes, whether they are forged: an exact replay of an honest verdict is not)
        let batch: Vec<(Vec<u8>, bool)> = match self.kind {
            AttackKind::Mint => (0..BATCH)
                .filter_map(|_| self.mint(now, honest))
                .map(|b| (b, true))
                .collect(),
            AttackKind::Slash => (0..BATCH)
                .filter_map(|_| self.slash(now, honest))
                .map(|b| (b, true))
                .collect(),
            AttackKind::Replay => self.replay(gateway),
            // The flood is the attacker's nodes themselves: they advertise and bid on their own;
            // the connection flood runs in tasks of its own; request floods returned above.
            AttackKind::FloodAdverts
            | AttackKind::FloodConnections
            | AttackKind::FloodCalls
            | AttackKind::FloodAwards
            | AttackKind::FloodBlobs
            | AttackKind::FloodSync => Vec::new(),
            AttackKind::Capture => self
                .capture(gateway, now, honest)
                .into_iter()
                .map(|b| (b, true))
                .collect(),
        };
        for (bytes, forged) in batch {
            if forged {
                self.forged.insert(VerdictId::of(&bytes));
            }
            if gateway.net().publish(bytes).await.is_ok() {
                self.published += 1;
            }
        }
    }

    /// The verdict of a job of the attacker's own: a random Sybil requester (returned, as
    /// the verdict's signer), `providers` more Sybils awarded and agreeing on `output`.
    fn own_job(
        &mut self,
        providers: usize,
        output: Outcome,
        now: Timestamp,
    ) -> Option<(Verdict, usize)> {
        let n = self.keys.len();
        let requester = self.rng.below(n);
        let awarded: Vec<usize> = (1..=providers).map(|i| (requester + i) % n).collect();
        let spec = self.spec(requester, now);
        let job = spec.id().ok()?;
        let agreeing = awarded
            .iter()
            .map(|&p| self.signed_report(p, job, output))
            .collect::<Option<Vec<_>>>()?;
        let verdict = Verdict {
            job,
            requester: self.ids[requester],
            spec,
            decision: VerdictDecision::Accepted(output),
            awards: awarded.iter().map(|&p| self.award(p, now)).collect(),
            agreeing,
            dissenting: Vec::new(),
            timed_out: Vec::new(),
            issued_at: now,
        };
        Some((verdict, requester))
    }

    /// A job of the attacker's own crediting three Sybils; every other round the verdict
    /// claims an honest requester's name instead (still signed by the Sybil: the envelope's
    /// author check refuses it).
    fn mint(&mut self, now: Timestamp, honest: &[NodeId]) -> Option<Vec<u8>> {
        let output = Outcome::Output {
            digest: BlobHash::of(&self.round.to_le_bytes()),
            size: 8,
        };
        let (mut verdict, signer) = self.own_job(3, output, now)?;
        if self.round.is_multiple_of(2)
            && let Some(victim) = honest.get(self.rng.below(honest.len().max(1)))
        {
            verdict.requester = *victim;
        }
        self.seal_bytes(&verdict, signer)
    }

    /// A job of the attacker's own that blames an honest provider for a missed deadline.
    fn slash(&mut self, now: Timestamp, honest: &[NodeId]) -> Option<Vec<u8>> {
        let victim = *honest.get(self.rng.below(honest.len().max(1)))?;
        let output = Outcome::Output {
            digest: BlobHash::of(b"sybil output"),
            size: 12,
        };
        let (mut verdict, signer) = self.own_job(2, output, now)?;
        verdict.awards.push(AwardTerms {
            provider: victim,
            price: ATTACK_PRICE,
            report_by: Timestamp(now.0.saturating_sub(1_000)),
        });
        verdict.timed_out.push(victim);
        self.seal_bytes(&verdict, signer)
    }

    /// Every verdict the gateway stored (it applied them: honest verdicts), re-encoded,
    /// relabelled for another network, and as it was; each heard verdict once.
    fn replay(&mut self, gateway: &Node) -> Vec<(Vec<u8>, bool)> {
        let Ok(keys) = gateway.kv().keys(Tree::Verdicts, b"") else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for key in keys {
            if out.len() >= 3 * BATCH {
                break;
            }
            let Ok(Some(bytes)) = gateway.kv().get(Tree::Verdicts, &key) else {
                continue;
            };
            if !self.replayed.insert(bytes.clone()) {
                continue;
            }
            if let Some(&first) = bytes.first().filter(|b| **b < 251) {
                let mut widened = vec![251, first, 0];
                widened.extend_from_slice(&bytes[1..]);
                out.push((widened, true));
            }
            if let Ok(mut envelope) = Envelope::from_bytes(&bytes) {
                envelope.network = NetworkId([0xee; 32]);
                if let Ok(relabelled) = envelope.to_bytes() {
                    out.push((relabelled, true));
                }
            }
            out.push((bytes, false));
        }
        out
    }

    /// Mint, then checkpoint messages from Sybil keys: a proposal for the gateway's current
    /// epoch naming the Sybils as the next committee, one for an epoch far ahead, votes of
    /// every Sybil for both, and an anchor receipt for the last real checkpoint.
    fn capture(&mut self, gateway: &Node, now: Timestamp, honest: &[NodeId]) -> Vec<Vec<u8>> {
        let mut out: Vec<Vec<u8>> = (0..BATCH / 2)
            .filter_map(|_| self.mint(now, honest))
            .collect();
        let chain = gateway.checkpoints().chain();
        let spec = &gateway.options().spec;
        let previous = match chain.last() {
            Some(last) => last.checkpoint.hash().ok(),
            None => spec.genesis().ok().and_then(|g| g.hash().ok()),
        };
        let Some(previous) = previous else {
            return out;
        };
        let epoch = chain.len() as u64;
        let leaves: Vec<ReputationLeaf> = {
            let mut sorted = self.ids.clone();
            sorted.sort();
            sorted
                .iter()
                .map(|peer| ReputationLeaf {
                    peer: *peer,
                    score: 1_000,
                    evidence_count: 1_000_000,
                    balance: 0,
                })
                .collect()
        };
        let proposer = self.rng.below(self.keys.len());
        for target in [epoch, epoch + 5] {
            let input = CheckpointInput {
                network: &spec.name,
                epoch: target,
                previous,
                committee: &self.ids,
                committee_size: self.ids.len().min(MAX_COMMITTEE),
                verdicts: &[],
                proposer: self.ids[proposer],
                now,
            };
            let Ok(c) = checkpoint::build(&input, &leaves) else {
                continue;
            };
            let Ok(hash) = c.hash() else {
                continue;
            };
            out.extend(self.seal_bytes(&c, proposer));
            for voter in 0..self.keys.len().min(16) {
                let vote = CheckpointVote {
                    checkpoint: hash,
                    epoch: target,
                    voter: self.ids[voter],
                };
                out.extend(self.seal_bytes(&vote, voter));
            }
        }
        if let Some(last) = chain.last()
            && let Ok(hash) = last.checkpoint.hash()
        {
            let receipt = AnchorReceipt {
                checkpoint: hash,
                epoch: last.checkpoint.epoch,
                chain: "simulated".into(),
                txid: self.rng.bytes32(),
                block_hash: self.rng.bytes32(),
                height: 1,
                anchored_by: self.ids[proposer],
            };
            out.extend(self.seal_bytes(&receipt, proposer));
        }
        out
    }

    fn seal_bytes<T: cairn_protocol::Message>(
        &self,
        message: &T,
        signer: usize,
    ) -> Option<Vec<u8>> {
        Envelope::seal(message, &self.keys[signer], &self.network)
            .ok()?
            .to_bytes()
            .ok()
    }

    fn spec(&mut self, requester: usize, now: Timestamp) -> JobSpec {
        JobSpec {
            requester: self.ids[requester],
            nonce: self.rng.next_u64(),
            module: BlobHash::of(b"sybil module"),
            input: BlobHash::of(b"sybil input"),
            args: Vec::new(),
            limits: ATTACK_JOB_LIMITS,
            requirements: Requirements::default(),
            replicas: 3,
            quorum: 2,
            max_replicas: 5,
            max_price: 1_000,
            bid_deadline: now,
            deadline: now.plus_ms(60_000),
        }
    }

    fn award(&self, provider: usize, now: Timestamp) -> AwardTerms {
        AwardTerms {
            provider: self.ids[provider],
            price: ATTACK_PRICE,
            report_by: now.plus_ms(30_000),
        }
    }

    fn signed_report(
        &self,
        provider: usize,
        job: cairn_protocol::JobId,
        outcome: Outcome,
    ) -> Option<Envelope> {
        let report = ResultReport {
            job,
            provider: self.ids[provider],
            outcome,
            fuel_used: 1,
            price: ATTACK_PRICE,
            runtime: "sybil".into(),
            sealed_output: None,
        };
        Envelope::seal(&report, &self.keys[provider], &self.network).ok()
    }

    /// The attack's figures, read off the honest nodes.
    pub(crate) fn report(
        &self,
        gateway: &Node,
        honest: &[&Node],
        wrongly_accepted: usize,
    ) -> AttackReport {
        let sybils = self.identities(gateway);
        let mut report = AttackReport {
            kind: Some(self.kind),
            sybils: match self.kind {
                AttackKind::FloodAdverts => self.nodes.len(),
                _ => self.keys.len(),
            },
            published: self.published,
            wrongly_accepted,
            sybil_reputation_max: ReputationTable::default().params().initial,
            ..AttackReport::default()
        };
        let (sent, refused) = match &self.flood {
            Some(flood) => flood.counts.read(),
            None => self.connections.read(),
        };
        report.requests_sent = sent;
        report.requests_refused = refused;
        for node in honest {
            let table = node.verdicts().table();
            for id in &sybils {
                report.sybil_reputation_max =
                    report.sybil_reputation_max.max(table.standing(id).score);
            }
            for (requester, effect) in node.verdicts().effects() {
                if sybils.contains(&requester) {
                    report.honest_reputation_lost += effect.debited;
                }
            }
            report.forged_applied += self.applied_by(node);
            report.forged_applied += self.in_chain(node, &sybils);
        }
        if let Some(first) = honest.first()
            && let Some(last) = first.checkpoints().chain().last()
        {
            report.sybil_committee_seats = last
                .checkpoint
                .next_committee
                .iter()
                .filter(|m| sybils.contains(m))
                .count();
        }
        report
    }

    /// Checkpoints of `node`'s chain proposed by, or carrying a vote of, an attacker identity.
    fn in_chain(&self, node: &Node, sybils: &BTreeSet<NodeId>) -> u64 {
        let network = *node.network();
        let signed_by_sybil = |e: &Envelope| {
            e.clone()
                .verify::<CheckpointVote>(&network)
                .is_ok_and(|v| sybils.contains(&v.signer()))
        };
        node.checkpoints()
            .chain()
            .iter()
            .filter(|c| {
                sybils.contains(&c.checkpoint.proposer) || c.votes.iter().any(signed_by_sybil)
            })
            .count() as u64
    }

    /// Forged verdicts `node` applied: those it stored (it stores what moved a score).
    fn applied_by(&self, node: &Node) -> u64 {
        let Ok(keys) = node.kv().keys(Tree::Verdicts, b"") else {
            return 0;
        };
        keys.iter()
            .filter_map(|k| k.get(8..40))
            .filter_map(|id| <[u8; 32]>::try_from(id).ok())
            .filter(|id| self.forged.contains(&VerdictId(*id)))
            .count() as u64
    }
}
