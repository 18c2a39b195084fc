//! The requester's side of one job, as a state machine:
//! `Auction → Running → (escalation: Auction again) → Accepted | Failed`.
//!
//! The node feeds it [`Event`]s (candidates found, bids, declines, reports, clock ticks) with the
//! time and the reputation table, and carries out the [`Action`]s it returns (send calls for
//! bids, sign and send awards, fetch the output, publish the verdict). It never does I/O or reads
//! a clock, and it encodes with the codec, so the node persists it after every step and a
//! restarted node resumes where it was.
//!
//! An outcome is accepted (and its output fetched) as soon as the outstanding reports can no
//! longer overturn it, but the verdict waits until every replica has reported or missed its
//! deadline, so that a slow dissenter is still caught and named in the evidence.
//!
//! A requester that restarts resumes its stored jobs with [`RequesterJob::resume`]: every
//! replica it still awaits is excused for [`RequesterConfig::resume_grace_ms`] and asked for
//! the report it may have missed ([`Action::PullReports`]), so its downtime never turns into a
//! provider's timeout.
//!
//! A job that cannot get enough bids stays queued and is re-auctioned with exponential back-off
//! until its deadline; [`RequesterJob::log`] says why, for `cairn job explain`.
//!
//! Three rules make collusion costly (see `docs/protocol.md`, "Resisting collusion"):
//! - **Hidden replicas**: with [`RequesterConfig::hidden_replica_probability`] the first round
//!   awards one replica more than the spec asks for. Awards do not say how many replicas a job
//!   has, so a provider cannot tell whether its report will be compared with one more.
//! - **Probation**: providers on probation (few agreeing reports, see
//!   [`ReputationTable::on_probation`]) never make up a quorum on their own. When only they
//!   agree, the job gets one more replica from an established provider (or trust root) before
//!   it is accepted. In a network with trust roots ([`ReputationTable::has_roots`]) there is
//!   no exception: when no established provider can run the job, or none bids before the
//!   deadline, the job fails with [`FailReason::NoEstablishedProvider`]. A closed cluster
//!   without roots, in which the requester knows no established provider at all or none that
//!   can run the job, accepts probationers' quorums (it has no one else).
//! - **Audits**: with [`RequesterConfig::audit_probability`], or more often while an agreeing
//!   provider's record is short ([`RequesterConfig::audit_scale`]), an outcome that reached its quorum
//!   is checked by one more replica from an established provider before it is accepted. A
//!   dissenting auditor breaks the majority, so the job escalates as for any disagreement, and
//!   the providers caught on the wrong side lose much more than they ever earned.
//!
//! Every random choice (who is asked, hidden replicas, audits) comes from the requester's
//! secret per-step seed, so bidders cannot predict it.

use std::collections::BTreeSet;

use bincode::{Decode, Encode};

use crate::auction::{Auction, SelectionParams, check_bid};
use crate::envelope::Verified;
use crate::messages::{Award, Bid, JobSpec, Outcome, ResultReport, VERDICT_MAX_AGE_MS, Verdict};
use crate::quorum::{Decision, FailReason, QuorumTally};
use crate::reputation::ReputationTable;
use crate::{BlobHash, JobId, NodeId, Timestamp};

/// Most entries kept in a job's log.
const MAX_LOG: usize = 256;
/// Longest log entry, in characters: entries quote peers (a declined bid's or a refused
/// award's reason), and the log is stored and shown.
pub const MAX_LOG_ENTRY_CHARS: usize = 300;
/// Most bids held at once.
const MAX_BIDS: usize = 256;
/// Most candidates remembered as asked.
const MAX_ASKED: usize = 1024;
/// How long a candidate lookup may take before the job asks again, in ms.
const LOOKUP_RETRY_MS: u64 = 3_000;
/// Domain of the requester's random draws.
const DRAW_CONTEXT: &str = "cairn 2026 requester draw v1";

/// The requester's timing and fan-out rules.
#[derive(Clone, Copy, PartialEq, Debug)]
pub struct RequesterConfig {
    /// How long an auction round stays open, in ms (capped by the job's bid deadline on the
    /// first round). Default: 500 ms.
    pub bid_window_ms: u64,
    /// Most candidates asked per round. Default: 16.
    pub max_candidates: usize,
    /// A round closes early once this many bids per replica needed have arrived. Default: 3.
    pub bids_per_replica: usize,
    /// Extra time a provider gets beyond the job's wall-time limit to report, in ms.
    /// Default: 5 000 ms.
    pub report_slack_ms: u64,
    /// First re-auction delay when a round fails to fill, in ms; doubles each time.
    /// Default: 250 ms.
    pub retry_initial_ms: u64,
    /// Longest re-auction delay, in ms. Default: 10 000 ms.
    pub retry_max_ms: u64,
    /// Selection rule.
    pub selection: SelectionParams,
    /// Probability that the first round secretly awards one replica more than the spec asks
    /// for. Default: `0.05`.
    pub hidden_replica_probability: f64,
    /// Probability that an outcome which reached its quorum is audited by one more replica
    /// from an established provider before it is accepted. Default: `0.05`.
    pub audit_probability: f64,
    /// Whether a quorum made only of providers on probation needs an established provider
    /// to agree too (when the requester knows any; always in a network with trust roots).
    /// Default: `true`.
    pub require_established: bool,
    /// Scale of the adaptive audit: an outcome whose least-proven agreeing provider has score
    /// `s` is audited with probability at least `audit_scale / (audit_scale + s)` (always
    /// for `s ≤ 0`), as BOINC replicates a host's jobs with probability 1/CV for CV
    /// consecutive valid results: an unproven provider is checked often, a long clean record
    /// rarely. `0` turns it off, leaving `audit_probability` alone. Default: `3`.
    pub audit_scale: u32,
    /// How long a restarted requester waits for the reports it asks its providers for before
    /// a replica whose deadline passed while it was down times out, in ms
    /// ([`RequesterJob::resume`]). Default: 10 000 ms.
    pub resume_grace_ms: u64,
    /// A restarted requester publishes again the verdicts it made this long before the restart
    /// or less, in ms: it may have stopped before they went out, and the same verdict twice
    /// counts once. Default: [`VERDICT_MAX_AGE_MS`] (10 minutes; an older verdict is refused
    /// as stale anyway).
    pub republish_verdict_ms: u64,
}

impl Default for RequesterConfig {
    fn default() -> Self {
        Self {
            bid_window_ms: 500,
            max_candidates: 16,
            bids_per_replica: 3,
            report_slack_ms: 5_000,
            retry_initial_ms: 250,
            retry_max_ms: 10_000,
            selection: SelectionParams::default(),
            hidden_replica_probability: 0.05,
            audit_probability: 0.05,
            require_established: true,
            audit_scale: 3,
            resume_grace_ms: 10_000,
            republish_verdict_ms: VERDICT_MAX_AGE_MS,
        }
    }
}

/// Where a job is.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
pub enum Phase {
    /// Looking for candidates or collecting bids for `needed` replicas.
    Auction {
        /// Replicas this round must fill.
        needed: u8,
        /// When the round closes (or, before candidates are known, when it starts).
        closes_at: Timestamp,
        /// Whether candidates have been asked.
        called: bool,
    },
    /// Waiting for reports.
    Running,
    /// An outcome was accepted.
    Accepted(Outcome),
    /// The job failed.
    Failed(FailReason),
}

/// What happened to a job, as the node reports it.
#[derive(Clone, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum Event {
    /// Candidates for the current round (from adverts and the DHT), already filtered by the
    /// job's requirements.
    Candidates(Vec<NodeId>),
    /// A verified bid.
    Bid(Bid),
    /// A candidate declined, with its reason.
    Declined {
        /// Who.
        peer: NodeId,
        /// Why.
        reason: String,
    },
    /// A verified report (boxed: it is the largest event by far).
    Report(Box<Verified<ResultReport>>),
    /// An awarded provider refused its award (busy, restarted, its bid expired): its replica
    /// is withdrawn without blame and, where the job still needs it, replaced.
    AwardRefused {
        /// Who.
        provider: NodeId,
        /// Why, as it said.
        reason: String,
    },
    /// Time passed.
    Tick,
    /// The requester's owner cancelled the job (ignored once it is decided).
    Cancel,
}

/// What the node should do. Exhaustive on purpose: a new action must be carried out by
/// every driver, so adding one fails to compile until it is.
#[derive(Clone, PartialEq, Debug)]
pub enum Action {
    /// Look up candidates and answer with [`Event::Candidates`].
    FindCandidates,
    /// Send a call for bids to these candidates.
    CallForBids(Vec<NodeId>),
    /// Sign and send this award.
    Award(Award),
    /// Fetch the accepted output from one of these providers and check its digest.
    FetchOutput {
        /// The accepted outcome.
        outcome: Outcome,
        /// Providers that reported it.
        from: Vec<NodeId>,
    },
    /// Sign and publish this verdict (boxed: it carries the spec and the evidence).
    PublishVerdict(Box<Verdict>),
    /// Ask these awarded providers for their signed reports (`MarketRequest::FetchReport`)
    /// and hand each one got to the job as [`Event::Report`], checked as a pushed one: the
    /// requester restarted and may have missed them.
    PullReports(Vec<NodeId>),
}

/// One line of a job's history.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
pub struct LogEntry {
    /// When.
    pub at: Timestamp,
    /// What happened, in words.
    pub what: String,
}

/// The requester's state of one job.
#[derive(Clone, Debug, Encode, Decode)]
pub struct RequesterJob {
    id: JobId,
    spec: JobSpec,
    phase: Phase,
    round: u32,
    retry_ms: u64,
    /// Bids of every round so far (a late bid still counts in the next round).
    bids: Vec<Bid>,
    /// Candidates asked in any round (bids from others are unsolicited).
    asked: BTreeSet<NodeId>,
    /// Candidates of the current round that have not answered yet.
    waiting: BTreeSet<NodeId>,
    tally: QuorumTally,
    log: Vec<LogEntry>,
    verdict_sent: bool,
    /// Replicas added secretly in the first round.
    hidden: u8,
    /// Whether the audit lottery has been drawn for this job.
    audit_drawn: bool,
    /// Whether the current round may only award established providers.
    established_only: bool,
    /// Whether an extra replica (probation check or audit) was asked for and acceptance waits
    /// for every outstanding report.
    checking: bool,
    /// Whether the probation rule was waived because no established provider can run the job
    /// (only without trust roots).
    probation_waived: bool,
    /// Whether the established-only auction under way is for the probation rule (else for an
    /// audit).
    probation_check: bool,
    /// The verdict, once made: kept so that a requester that stops before it is published
    /// publishes the same one after a restart ([`RequesterJob::resume`]).
    verdict: Option<Verdict>,
}

/// What the probation and audit rules say of an outcome that reached its quorum.
enum Check {
    /// Accept it.
    Stands,
    /// Wait: an established provider holding a replica has not reported yet.
    Wait,
    /// Ask one more replica of an established provider, for this reason.
    Ask(&'static str),
}

/// A number in `[0, 1)` drawn from the requester's secret seed, separated by `label`.
fn draw(seed: &[u8; 32], job: &JobId, label: &str) -> f64 {
    let mut hasher = blake3::Hasher::new_derive_key(DRAW_CONTEXT);
    hasher.update(seed);
    hasher.update(job.as_bytes());
    hasher.update(label.as_bytes());
    let bytes = hasher.finalize();
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes.as_bytes()[..8]);
    // 53 random bits make every f64 in [0, 1) equally likely.
    (u64::from_le_bytes(word) >> 11) as f64 / (1u64 << 53) as f64
}

/// The chance that an outcome `agreeing` providers reported is audited: the configured base
/// rate, or more when one of them is unproven (see [`RequesterConfig::audit_scale`]).
fn audit_probability(agreeing: &[NodeId], cx: &Context<'_>) -> f64 {
    let base = cx.config.audit_probability;
    let scale = f64::from(cx.config.audit_scale);
    if scale == 0.0 {
        return base;
    }
    let least = agreeing
        .iter()
        .map(|p| cx.reputation.standing(p).score)
        .min()
        .unwrap_or(0);
    let adaptive = if least <= 0 {
        1.0
    } else {
        scale / (scale + least as f64)
    };
    base.max(adaptive)
}

/// The lowest score among the `needed` best-scored bidders with a valid bid for `job` outside
/// `exclude` (ties with it stay in the draw), or `i64::MIN` when there are no more than
/// `needed` of them.
fn most_proven_floor(
    (job, spec): (JobId, &JobSpec),
    bids: &[Bid],
    exclude: &BTreeSet<NodeId>,
    needed: usize,
    cx: &Context<'_>,
) -> i64 {
    let reputation = cx.reputation;
    let mut scores: Vec<i64> = bids
        .iter()
        .filter(|b| check_bid(job, spec, b, exclude, cx.now).is_ok())
        .map(|b| b.bidder)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .map(|p| reputation.standing(&p).score)
        .collect();
    scores.sort_unstable_by(|a, b| b.cmp(a));
    match needed.checked_sub(1).and_then(|i| scores.get(i)) {
        Some(floor) if scores.len() > needed => *floor,
        _ => i64::MIN,
    }
}

/// Whether the requester knows any provider that has left probation (trust roots always
/// have).
fn knows_established(reputation: &ReputationTable) -> bool {
    reputation.has_roots()
        || reputation
            .iter()
            .any(|(peer, _)| !reputation.on_probation(peer))
}

/// Inputs every step needs.
#[derive(Clone, Copy, Debug)]
pub struct Context<'a> {
    /// The current time.
    pub now: Timestamp,
    /// Reputation used to weigh bids.
    pub reputation: &'a ReputationTable,
    /// The requester's secret randomness for this step's draw.
    pub seed: &'a [u8; 32],
    /// Rules.
    pub config: &'a RequesterConfig,
}

impl RequesterJob {
    /// A new job; the first action is to find candidates.
    pub fn new(id: JobId, spec: JobSpec, now: Timestamp) -> (Self, Vec<Action>) {
        let needed = spec.replicas.max(1);
        let mut job = Self {
            tally: QuorumTally::new(id, &spec),
            id,
            spec,
            phase: Phase::Auction {
                needed,
                closes_at: now,
                called: false,
            },
            round: 1,
            retry_ms: 0,
            bids: Vec::new(),
            asked: BTreeSet::new(),
            waiting: BTreeSet::new(),
            log: Vec::new(),
            verdict_sent: false,
            hidden: 0,
            audit_drawn: false,
            established_only: false,
            checking: false,
            probation_waived: false,
            probation_check: false,
            verdict: None,
        };
        job.note(now, format!("submitted; auction for {needed} replicas"));
        (job, vec![Action::FindCandidates])
    }

    /// The job's id.
    pub fn id(&self) -> JobId {
        self.id
    }

    /// The job's spec.
    pub fn spec(&self) -> &JobSpec {
        &self.spec
    }

    /// The blob in which `provider` holds the job's output sealed to this requester, as its
    /// report said (see [`crate::seal`]).
    pub fn sealed_output(&self, provider: &NodeId) -> Option<BlobHash> {
        self.tally.sealed_output(provider)
    }

    /// Where it is.
    pub fn phase(&self) -> &Phase {
        &self.phase
    }

    /// Whether it is accepted or failed (the user's answer is known).
    pub fn is_decided(&self) -> bool {
        matches!(self.phase, Phase::Accepted(_) | Phase::Failed(_))
    }

    /// Whether nothing more will happen: decided, and the verdict is out (or none is due).
    pub fn is_finished(&self) -> bool {
        self.is_decided() && (self.verdict_sent || matches!(self.phase, Phase::Failed(_)))
    }

    /// When the job next needs the clock if no other event comes first: the end of its
    /// auction round, just after the earliest report deadline of a replica still awaited (a
    /// report is late only after it), or the job's deadline. `None` once finished. A driver
    /// that sends [`Event::Tick`] at this time, and handles every other event when it comes,
    /// misses nothing a tick every few milliseconds would catch.
    pub fn next_wake(&self) -> Option<Timestamp> {
        if self.is_finished() {
            return None;
        }
        let round = match self.phase {
            Phase::Auction { closes_at, .. } => Some(closes_at),
            _ => None,
        };
        let report = self.tally.next_report_by().map(|t| t.plus_ms(1));
        [Some(self.spec.deadline), round, report]
            .into_iter()
            .flatten()
            .min()
    }

    /// Its history, oldest first (at most 256 entries of [`MAX_LOG_ENTRY_CHARS`] each).
    pub fn log(&self) -> &[LogEntry] {
        &self.log
    }

    /// Each provider holding a replica, with its award price: what the requester's escrow
    /// holds for the job while it runs.
    pub fn award_prices(&self) -> Vec<(NodeId, u64)> {
        self.tally
            .award_prices()
            .map(|(provider, price)| (*provider, price))
            .collect()
    }

    /// Providers holding a replica.
    pub fn providers(&self) -> Vec<NodeId> {
        self.tally.awarded().copied().collect()
    }

    /// Resumes the job after the requester restarted: an accepted outcome's output is fetched
    /// again (the driver skips it when it holds it), and a verdict made within
    /// [`RequesterConfig::republish_verdict_ms`] is published again (the requester may have
    /// stopped before it went out; the same verdict twice counts once); then, unless the job is
    /// finished, every
    /// replica still awaited is excused for [`RequesterConfig::resume_grace_ms`] (the
    /// requester's downtime is not theirs) and every provider whose report it does not hold is
    /// asked for it.
    pub fn resume(&mut self, now: Timestamp, config: &RequesterConfig) -> Vec<Action> {
        let mut actions = Vec::new();
        if let Phase::Accepted(outcome) = self.phase {
            let from = self.tally.reported(&outcome);
            actions.push(Action::FetchOutput { outcome, from });
        }
        if let Some(verdict) = &self.verdict
            && now.0
                <= verdict
                    .issued_at
                    .0
                    .saturating_add(config.republish_verdict_ms)
        {
            actions.push(Action::PublishVerdict(Box::new(verdict.clone())));
        }
        if self.is_finished() {
            return actions;
        }
        self.tally.excuse_until(now.plus_ms(config.resume_grace_ms));
        let missing = self.tally.unreported();
        self.note(
            now,
            format!(
                "resumed after a restart; asking {} providers for their reports",
                missing.len()
            ),
        );
        if !missing.is_empty() {
            actions.push(Action::PullReports(missing));
        }
        actions
    }

    fn note(&mut self, at: Timestamp, mut what: String) {
        if self.log.len() == MAX_LOG {
            self.log.remove(1); // keep the first entry (submission)
        }
        if let Some((cut, _)) = what.char_indices().nth(MAX_LOG_ENTRY_CHARS) {
            what.truncate(cut);
        }
        self.log.push(LogEntry { at, what });
    }

    /// Advances the job by one event.
    pub fn handle(&mut self, event: Event, cx: &Context<'_>) -> Vec<Action> {
        if self.is_finished() {
            return Vec::new();
        }
        if let Phase::Accepted(outcome) = self.phase {
            return self.collect_late_reports(outcome, event, cx);
        }
        if event == Event::Cancel {
            return self.fail(FailReason::Cancelled, cx.now);
        }
        if cx.now >= self.spec.deadline && !matches!(self.phase, Phase::Running) {
            let reason = if self.awaits_probation_check(cx) {
                FailReason::NoEstablishedProvider
            } else {
                FailReason::DeadlinePassed
            };
            return self.fail(reason, cx.now);
        }
        match event {
            Event::Candidates(candidates) => self.on_candidates(candidates, cx),
            Event::Bid(bid) => self.on_bid(bid, cx),
            Event::Declined { peer, reason } => {
                self.note(cx.now, format!("{peer:?} declined: {reason}"));
                self.waiting.remove(&peer);
                self.maybe_close(cx)
            }
            Event::Report(report) => self.on_report(*report, cx),
            Event::AwardRefused { provider, reason } => self.on_award_refused(provider, reason, cx),
            Event::Tick => match self.phase {
                Phase::Auction {
                    needed,
                    called: false,
                    closes_at,
                } if cx.now >= closes_at => {
                    // Ask again only if this lookup never answers.
                    self.phase = Phase::Auction {
                        needed,
                        called: false,
                        closes_at: cx.now.plus_ms(LOOKUP_RETRY_MS),
                    };
                    vec![Action::FindCandidates]
                }
                Phase::Auction {
                    called: true,
                    closes_at,
                    ..
                } if cx.now >= closes_at => self.close_round(cx),
                Phase::Running => self.decide(cx),
                _ => Vec::new(),
            },
            Event::Cancel => Vec::new(),
        }
    }

    fn on_candidates(&mut self, candidates: Vec<NodeId>, cx: &Context<'_>) -> Vec<Action> {
        let Phase::Auction {
            mut needed,
            called: false,
            ..
        } = self.phase
        else {
            return Vec::new();
        };
        if self.established_only && candidates.iter().all(|c| cx.reputation.on_probation(c)) {
            // Nobody able to run this job (candidates are filtered by its requirements) has
            // left probation.
            if self.awaits_probation_check(cx) {
                return self
                    .no_established_provider(cx.now, "no established provider can run this job");
            }
            self.established_only = false;
            if self.probation_check && self.checking {
                // As in a young network, the probationers' quorum has to do.
                self.note(
                    cx.now,
                    "no established provider can run this job; the quorum of providers on probation stands"
                        .into(),
                );
                self.probation_waived = true;
                self.checking = false;
                self.phase = Phase::Running;
                return self.decide(cx);
            }
            let what = if self.checking {
                "any provider audits it"
            } else {
                "any provider may settle the disagreement"
            };
            self.note(
                cx.now,
                format!("no established provider can run this job; {what}"),
            );
        }
        let awarded: BTreeSet<NodeId> = self.tally.awarded().copied().collect();
        let held: BTreeSet<NodeId> = self.bids.iter().map(|b| b.bidder).collect();
        let open: BTreeSet<NodeId> = candidates
            .into_iter()
            .filter(|c| *c != self.spec.requester && !awarded.contains(c))
            .collect();
        let mut eligible: BTreeSet<NodeId> = open
            .iter()
            .filter(|c| !self.established_only || !cx.reputation.on_probation(c))
            .copied()
            .collect();
        if self.established_only && !self.checking && eligible.len() < usize::from(needed) {
            // A dispute that too few established providers can settle: anyone may.
            self.note(
                cx.now,
                "too few established providers can settle the disagreement; any provider may"
                    .into(),
            );
            self.established_only = false;
            eligible = open;
        }
        if eligible.len() < usize::from(needed) && self.awaits_probation_check(cx) {
            return self
                .no_established_provider(cx.now, "no other established provider can run this job");
        }
        if eligible.len() < usize::from(needed) && self.checking {
            // A check (probation or audit) that no other provider able to run the job can
            // make: the quorum stands as it is, rather than the job waiting for nobody.
            self.note(
                cx.now,
                "no other provider can run this job; the extra check is skipped".into(),
            );
            self.probation_waived |= self.probation_check;
            self.checking = false;
            self.established_only = false;
            self.phase = Phase::Running;
            return self.decide(cx);
        }
        if eligible.len() < usize::from(needed) {
            let found = eligible.len();
            let kind = if self.established_only {
                "established "
            } else {
                ""
            };
            return self.retry_later(
                cx,
                format!("only {found} eligible {kind}candidates for {needed} replicas"),
            );
        }
        if self.round == 1 && awarded.is_empty() && eligible.len() > usize::from(needed) {
            let room = self.spec.max_replicas.saturating_sub(needed);
            let p = cx.config.hidden_replica_probability;
            if room > 0 && draw(cx.seed, &self.id, "hidden replica") < p {
                self.hidden = 1;
                needed += 1;
                self.note(cx.now, "one hidden extra replica".into());
            }
        }
        let wanted = (usize::from(needed) * cx.config.bids_per_replica)
            .clamp(usize::from(needed), cx.config.max_candidates.max(1));
        // Bidders whose bid is still held are not asked again; their bids count.
        let unasked: BTreeSet<NodeId> = eligible.difference(&held).copied().collect();
        let fresh = self.pick(unasked, wanted, cx);
        let window = cx.now.plus_ms(cx.config.bid_window_ms);
        let closes_at = if self.round == 1 {
            window.min(self.spec.bid_deadline.max(cx.now))
        } else {
            window
        };
        self.phase = Phase::Auction {
            needed,
            closes_at,
            called: true,
        };
        if self.asked.len() + fresh.len() <= MAX_ASKED {
            self.asked.extend(fresh.iter().copied());
        }
        self.waiting = fresh.iter().copied().collect();
        self.note(
            cx.now,
            format!(
                "round {}: called {} candidates for bids",
                self.round,
                fresh.len()
            ),
        );
        if fresh.is_empty() {
            return self.close_round(cx); // every eligible candidate's bid is already held
        }
        vec![Action::CallForBids(fresh)]
    }

    /// Up to `wanted` of `eligible`, chosen by the secret seed so that bidders cannot predict
    /// who else is asked; sorted.
    fn pick(&self, eligible: BTreeSet<NodeId>, wanted: usize, cx: &Context<'_>) -> Vec<NodeId> {
        if eligible.len() <= wanted {
            return eligible.into_iter().collect();
        }
        let label = format!("candidates round {}", self.round);
        let mut keyed: Vec<(u64, NodeId)> = eligible
            .into_iter()
            .map(|peer| {
                let mut hasher = blake3::Hasher::new_derive_key(DRAW_CONTEXT);
                hasher.update(cx.seed);
                hasher.update(label.as_bytes());
                hasher.update(peer.as_bytes());
                let mut word = [0u8; 8];
                word.copy_from_slice(&hasher.finalize().as_bytes()[..8]);
                (u64::from_le_bytes(word), peer)
            })
            .collect();
        keyed.sort_unstable();
        let mut picked: Vec<NodeId> = keyed.into_iter().take(wanted).map(|(_, p)| p).collect();
        picked.sort();
        picked
    }

    fn on_bid(&mut self, bid: Bid, cx: &Context<'_>) -> Vec<Action> {
        if !matches!(self.phase, Phase::Auction { .. }) {
            return Vec::new();
        }
        if !self.asked.contains(&bid.bidder) {
            self.note(
                cx.now,
                format!("ignored an unsolicited bid from {:?}", bid.bidder),
            );
            return Vec::new();
        }
        self.waiting.remove(&bid.bidder);
        // A bidder's newest bid replaces its older one (a late answer to an earlier round).
        self.bids.retain(|b| b.bidder != bid.bidder);
        if self.bids.len() < MAX_BIDS {
            self.bids.push(bid);
        }
        self.maybe_close(cx)
    }

    /// Closes the round early once enough bids are in, or every candidate asked in this
    /// round has answered.
    fn maybe_close(&mut self, cx: &Context<'_>) -> Vec<Action> {
        let Phase::Auction {
            needed,
            called: true,
            ..
        } = self.phase
        else {
            return Vec::new();
        };
        let awarded: BTreeSet<&NodeId> = self.tally.awarded().collect();
        let usable = self.bids.iter().filter(|b| !awarded.contains(&b.bidder));
        let enough = usable.count() >= usize::from(needed) * cx.config.bids_per_replica;
        if enough || self.waiting.is_empty() {
            return self.close_round(cx);
        }
        Vec::new()
    }

    fn close_round(&mut self, cx: &Context<'_>) -> Vec<Action> {
        let Phase::Auction { needed, .. } = self.phase else {
            return Vec::new();
        };
        let auction = Auction {
            job: self.id,
            spec: &self.spec,
            reputation: cx.reputation,
            params: cx.config.selection,
        };
        let mut exclude: BTreeSet<NodeId> = self.tally.awarded().copied().collect();
        if self.established_only {
            let probationers = self.bids.iter().map(|b| b.bidder);
            exclude.extend(probationers.filter(|p| cx.reputation.on_probation(p)));
            // A check or a dispute goes to the most proven bidders: a colluder that has not
            // out-earned the honest providers cannot audit its partners.
            let job = (self.id, &self.spec);
            let floor = most_proven_floor(job, &self.bids, &exclude, usize::from(needed), cx);
            let below = self.bids.iter().map(|b| b.bidder);
            exclude.extend(below.filter(|p| cx.reputation.standing(p).score < floor));
        }
        let selection = auction.select(&self.bids, usize::from(needed), &exclude, cx.seed, cx.now);
        for (peer, why) in &selection.rejected {
            if !exclude.contains(peer) {
                self.note(cx.now, format!("bid from {peer:?} rejected: {why}"));
            }
        }
        if selection.winners.is_empty() {
            return self.retry_later(cx, format!("0 acceptable bids for {needed} replicas"));
        }
        let report_by = cx.now.plus_ms(
            self.spec
                .limits
                .wall_time_ms
                .saturating_add(cx.config.report_slack_ms),
        );
        let mut actions = Vec::new();
        for winner in selection.winners {
            if self
                .tally
                .award(winner.bidder, winner.price, report_by)
                .is_ok()
            {
                let device = self
                    .bids
                    .iter()
                    .find(|b| b.bidder == winner.bidder)
                    .map_or_else(String::new, |b| format!(" on {}", b.device));
                self.note(
                    cx.now,
                    format!(
                        "awarded {:?} at price {}{device}",
                        winner.bidder, winner.price
                    ),
                );
                actions.push(Action::Award(Award {
                    job: self.id,
                    requester: self.spec.requester,
                    provider: winner.bidder,
                    price: winner.price,
                    report_by,
                    // The node seals the input to the provider before it signs the award.
                    sealed_input: None,
                }));
            }
        }
        self.retry_ms = 0;
        let got = u8::try_from(actions.len()).unwrap_or(u8::MAX);
        if got < needed {
            // Progress: the rest is auctioned at once, from the bids still held and new ones.
            let rest = needed - got;
            self.note(
                cx.now,
                format!("{got} of {needed} replicas awarded; auction continues for {rest}"),
            );
            self.round += 1;
            self.phase = Phase::Auction {
                needed: rest,
                closes_at: cx.now,
                called: false,
            };
            return actions;
        }
        self.phase = Phase::Running;
        self.established_only = false;
        actions
    }

    fn retry_later(&mut self, cx: &Context<'_>, why: String) -> Vec<Action> {
        let Phase::Auction { needed, .. } = self.phase else {
            return Vec::new();
        };
        self.retry_ms = if self.retry_ms == 0 {
            cx.config.retry_initial_ms
        } else {
            (self.retry_ms * 2).min(cx.config.retry_max_ms)
        };
        let at = cx.now.plus_ms(self.retry_ms);
        self.round += 1;
        self.phase = Phase::Auction {
            needed,
            closes_at: at,
            called: false,
        };
        self.note(
            cx.now,
            format!("queued: {why}; next auction in {} ms", self.retry_ms),
        );
        Vec::new()
    }

    fn on_report(&mut self, report: Verified<ResultReport>, cx: &Context<'_>) -> Vec<Action> {
        let provider = report.message().provider;
        match self.tally.add_report(report, cx.now) {
            Ok(()) => self.note(cx.now, format!("report from {provider:?}")),
            Err(why) => {
                self.note(cx.now, format!("report from {provider:?} ignored: {why}"));
                return Vec::new();
            }
        }
        if matches!(self.phase, Phase::Running) {
            self.decide(cx)
        } else {
            Vec::new()
        }
    }

    fn decide(&mut self, cx: &Context<'_>) -> Vec<Action> {
        let decision = self.tally.decide(cx.now);
        if self.checking && matches!(decision, Decision::Accept { .. }) {
            // The extra replica must be heard (or time out) before the quorum stands.
            if self.tally.outstanding_at(cx.now) > 0 {
                return Vec::new();
            }
            self.checking = false;
        }
        match &decision {
            Decision::Pending => Vec::new(),
            Decision::Accept {
                outcome,
                agreeing,
                dissenting,
            } => {
                match self.needs_established_check(agreeing, !dissenting.is_empty(), cx) {
                    Check::Stands => {}
                    Check::Wait => return Vec::new(),
                    Check::Ask(why) => return self.ask_established(why, cx),
                }
                let outcome = *outcome;
                self.note(
                    cx.now,
                    format!(
                        "accepted: {} agree, {} dissent",
                        agreeing.len(),
                        dissenting.len()
                    ),
                );
                self.phase = Phase::Accepted(outcome);
                let mut actions = vec![Action::FetchOutput {
                    outcome,
                    from: agreeing.clone(),
                }];
                actions.extend(self.try_verdict(outcome, cx.now));
                actions
            }
            Decision::Escalate { additional } => {
                let additional = *additional;
                self.note(
                    cx.now,
                    format!("no agreement yet; escalating with {additional} more replicas"),
                );
                // Someone lied or failed: the replicas that settle it come from established
                // providers, as a check's do.
                self.established_only = knows_established(cx.reputation);
                self.round += 1;
                self.phase = Phase::Auction {
                    needed: additional,
                    closes_at: cx.now.plus_ms(LOOKUP_RETRY_MS),
                    called: false,
                };
                vec![Action::FindCandidates]
            }
            Decision::Fail(reason) => {
                let reason = *reason;
                let verdict = self.tally.verdict(&decision, &self.spec, cx.now);
                self.verdict.clone_from(&verdict);
                let mut actions: Vec<Action> = verdict
                    .map(|v| Action::PublishVerdict(Box::new(v)))
                    .into_iter()
                    .collect();
                actions.extend(self.fail(reason, cx.now));
                actions
            }
        }
    }

    /// Whether an outcome that reached its quorum stands, must wait for an established
    /// provider that still holds a replica, or needs one more replica from an established
    /// provider: because only providers on probation agree, because someone `disputed` it (a
    /// liar is at work, and it may be on the winning side), or because the audit lottery
    /// picked it.
    fn needs_established_check(
        &mut self,
        agreeing: &[NodeId],
        disputed: bool,
        cx: &Context<'_>,
    ) -> Check {
        let rep = cx.reputation;
        if cx.config.require_established
            && !self.probation_waived
            && agreeing.iter().all(|p| rep.on_probation(p))
            && knows_established(rep)
        {
            if self.tally.awaiting().any(|p| !rep.on_probation(p)) {
                return Check::Wait;
            }
            return Check::Ask("only providers on probation agree");
        }
        // Established providers agreeing beyond the quorum, unopposed (a hidden replica's),
        // are the independent check an audit would buy.
        let established = agreeing.iter().filter(|p| !rep.on_probation(p)).count();
        let checked = !disputed && established > usize::from(self.spec.quorum);
        if !self.audit_drawn && !checked {
            self.audit_drawn = true;
            let p = if disputed {
                1.0
            } else {
                audit_probability(agreeing, cx)
            };
            if draw(cx.seed, &self.id, "audit") < p {
                return Check::Ask("audit");
            }
        }
        Check::Stands
    }

    /// Awards one more replica to an established provider (any provider in a network where
    /// the requester knows none), or fails when the job has no replica left to give.
    fn ask_established(&mut self, why: &str, cx: &Context<'_>) -> Vec<Action> {
        if self.tally.awarded().count() >= usize::from(self.spec.max_replicas) {
            if why == "audit" {
                // No room for an audit: the quorum stands as it is.
                self.note(
                    cx.now,
                    "audit skipped: no replica left under the cap".into(),
                );
                return self.decide(cx);
            }
            self.note(
                cx.now,
                format!("{why}, and no replica is left under the cap"),
            );
            return self.fail(FailReason::NoQuorum, cx.now);
        }
        self.note(
            cx.now,
            format!("{why}: one more replica from an established provider"),
        );
        self.established_only = knows_established(cx.reputation);
        self.probation_check = why != "audit";
        self.checking = true;
        self.round += 1;
        self.phase = Phase::Auction {
            needed: 1,
            closes_at: cx.now.plus_ms(LOOKUP_RETRY_MS),
            called: false,
        };
        vec![Action::FindCandidates]
    }

    /// A refused award: the replica is withdrawn without blame; the auction under way asks
    /// for one more, a lost check is asked for again, and otherwise the tally decides whether
    /// the job still needs a replacement (it escalates once every other replica is heard).
    fn on_award_refused(
        &mut self,
        provider: NodeId,
        reason: String,
        cx: &Context<'_>,
    ) -> Vec<Action> {
        if !self.tally.withdraw(&provider) {
            return Vec::new();
        }
        self.note(cx.now, format!("{provider:?} refused its award: {reason}"));
        match &mut self.phase {
            Phase::Auction { needed, .. } => {
                *needed = needed.saturating_add(1);
                Vec::new()
            }
            Phase::Running if self.checking => {
                let why = if self.probation_check {
                    "the probation check's award was refused"
                } else {
                    "audit"
                };
                self.ask_established(why, cx)
            }
            Phase::Running => self.decide(cx),
            Phase::Accepted(_) | Phase::Failed(_) => Vec::new(),
        }
    }

    /// After acceptance: count the remaining reports as evidence, then publish the verdict.
    fn collect_late_reports(
        &mut self,
        outcome: Outcome,
        event: Event,
        cx: &Context<'_>,
    ) -> Vec<Action> {
        match event {
            Event::Report(report) => {
                let provider = report.message().provider;
                match self.tally.add_report(*report, cx.now) {
                    Ok(()) => self.note(cx.now, format!("late report from {provider:?}")),
                    Err(why) => {
                        self.note(cx.now, format!("report from {provider:?} ignored: {why}"))
                    }
                }
            }
            Event::AwardRefused { provider, reason } if self.tally.withdraw(&provider) => {
                self.note(cx.now, format!("{provider:?} refused its award: {reason}"));
            }
            _ => {}
        }
        self.try_verdict(outcome, cx.now).into_iter().collect()
    }

    /// The verdict, once no replica is still awaited.
    fn try_verdict(&mut self, outcome: Outcome, now: Timestamp) -> Option<Action> {
        if self.verdict_sent || self.tally.outstanding_at(now) > 0 {
            return None;
        }
        let decision = Decision::Accept {
            outcome,
            agreeing: Vec::new(),
            dissenting: Vec::new(),
        };
        let verdict = self.tally.verdict(&decision, &self.spec, now)?;
        self.verdict_sent = true;
        self.verdict = Some(verdict.clone());
        let (agree, dissent) = (verdict.agreeing.len(), verdict.dissenting.len());
        let timed_out = verdict.timed_out.len();
        self.note(
            now,
            format!("verdict: {agree} agree, {dissent} dissent, {timed_out} timed out"),
        );
        Some(Action::PublishVerdict(Box::new(verdict)))
    }

    /// Whether the job waits for an established provider to check a quorum of providers on
    /// probation, in a network with trust roots, where that check is never waived.
    fn awaits_probation_check(&self, cx: &Context<'_>) -> bool {
        cx.reputation.has_roots()
            && self.probation_check
            && self.checking
            && matches!(self.phase, Phase::Auction { .. })
    }

    /// Fails a job whose quorum of providers on probation no established provider can check.
    fn no_established_provider(&mut self, now: Timestamp, why: &str) -> Vec<Action> {
        self.note(
            now,
            format!("{why}; a quorum of providers on probation never stands on its own"),
        );
        self.fail(FailReason::NoEstablishedProvider, now)
    }

    fn fail(&mut self, reason: FailReason, now: Timestamp) -> Vec<Action> {
        self.note(now, format!("failed: {reason:?}"));
        self.phase = Phase::Failed(reason);
        Vec::new()
    }
}
