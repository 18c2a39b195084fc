//! The quorum decision: a small state machine over awards and signed reports.
//!
//! An outcome is accepted when the reports that agree on it, less every report that
//! contradicts it, still make a quorum (its *net* agreement), and before every replica has
//! reported only when the reports still outstanding could not take it below that even if they
//! all dissented. Jobs are deterministic, so any contradiction proves that one side lied: a
//! bare majority is not enough to overrule an honest dissenter (an audit or a hidden replica
//! that disagrees with two colluders escalates the job instead of being outvoted), and a
//! colluding pair cannot be accepted while a replica it cannot see is still out.
//! Host-dependent failures (timeouts, stack overflows) abstain: they count neither for nor
//! against. When every replica has reported or missed its deadline without a decision, the
//! tally asks for more replicas, up to the job's cap; past the cap, or past the job's deadline,
//! the job fails.
//!
//! A report's deadline (`report_by`) only says when the requester stops waiting for it; it
//! is not when the report stops counting. A report that arrives later but before the job's
//! deadline (a provider that kept it while the requester was down, or re-ran the job after
//! its own crash) is counted and clears its provider's timeout, so that no provider is blamed
//! for a requester's downtime. A requester that restarts also excuses every replica it still
//! awaits for a grace period ([`QuorumTally::excuse_until`]) while it asks them for what it
//! missed.

use std::collections::BTreeMap;

use bincode::{Decode, Encode};

use crate::envelope::{Envelope, Verified};
use crate::messages::{AwardTerms, JobSpec, Outcome, ResultReport, Verdict, VerdictDecision};
use crate::{BlobHash, JobId, NodeId, Timestamp};

/// Why a report was not counted.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportRejection {
    /// The report is for another job.
    #[error("report is for job {found}, not {expected}")]
    OtherJob {
        /// This tally's job.
        expected: JobId,
        /// The report's job.
        found: JobId,
    },
    /// The provider holds no replica of this job.
    #[error("{provider:?} was not awarded this job")]
    NotAwarded {
        /// The reporting provider.
        provider: NodeId,
    },
    /// The provider already reported.
    #[error("{provider:?} already reported")]
    Duplicate {
        /// The reporting provider.
        provider: NodeId,
    },
    /// The report arrived after the job's deadline; it counts as a timeout.
    #[error("{provider:?} reported at {now}, after the job's deadline {deadline}")]
    Late {
        /// The reporting provider.
        provider: NodeId,
        /// The job's deadline.
        deadline: Timestamp,
        /// Arrival time.
        now: Timestamp,
    },
    /// The report states another price than the provider's award: no verdict could carry it
    /// (see `Verdict::evidence`), so the replica stays awaited.
    #[error("{provider:?} reports an award price of {report}, its award was at {award}")]
    WrongPrice {
        /// The reporting provider.
        provider: NodeId,
        /// The award's price.
        award: u64,
        /// The price in the report.
        report: u64,
    },
}

/// Why an award could not be added.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AwardError {
    /// A provider never holds two replicas of one job.
    #[error("{provider:?} already holds a replica")]
    AlreadyAwarded {
        /// The provider.
        provider: NodeId,
    },
    /// The job already has its maximum number of replicas.
    #[error("the job already has its maximum of {max} replicas")]
    CapReached {
        /// The cap.
        max: u8,
    },
}

/// Why a job failed.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Encode, Decode)]
pub enum FailReason {
    /// No outcome reached a quorum and the replica cap is reached.
    NoQuorum,
    /// The job's deadline passed first.
    DeadlinePassed,
    /// The requester cancelled it.
    Cancelled,
    /// Only providers on probation agreed, and no established provider (or trust root) could
    /// be found to check their outcome before the deadline. Only in a network with trust
    /// roots; a closed cluster without them accepts such a quorum.
    NoEstablishedProvider,
}

impl std::fmt::Display for FailReason {
    /// In words, for users.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FailReason::NoQuorum => "no outcome reached its quorum within the replica cap",
            FailReason::DeadlinePassed => "the deadline passed before an outcome was accepted",
            FailReason::Cancelled => "cancelled by its requester",
            FailReason::NoEstablishedProvider => {
                "no established provider could be found to check the outcome"
            }
        })
    }
}

/// What the requester should do next.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
pub enum Decision {
    /// Wait for more reports.
    Pending,
    /// Accept this outcome.
    Accept {
        /// The agreed outcome.
        outcome: Outcome,
        /// Providers that reported it.
        agreeing: Vec<NodeId>,
        /// Providers that reported another deterministic outcome.
        dissenting: Vec<NodeId>,
    },
    /// Award this many more replicas.
    Escalate {
        /// Replicas to add.
        additional: u8,
    },
    /// Give up.
    Fail(FailReason),
}

/// One award: its terms and what became of it.
#[derive(Clone, Debug, Encode, Decode)]
struct Replica {
    price: u64,
    report_by: Timestamp,
    state: Slot,
}

#[derive(Clone, Debug, Encode, Decode)]
enum Slot {
    Awaiting,
    Reported {
        outcome: Outcome,
        /// Where the provider holds its output sealed to the requester (its report's
        /// `sealed_output`).
        sealed_output: Option<BlobHash>,
        envelope: Box<Envelope>,
    },
    TimedOut,
    /// The provider refused its award: never blamed, never counted, never awarded again for
    /// this job, and still counted against the replica cap (so a provider that bids and
    /// refuses cannot keep a job re-auctioning). Left out of the verdict's awards.
    Refused,
}

/// Awards and reports of one job; encodable, so a requester can persist it.
#[derive(Clone, Debug, Encode, Decode)]
pub struct QuorumTally {
    job: JobId,
    quorum: u8,
    max_replicas: u8,
    deadline: Timestamp,
    slots: BTreeMap<NodeId, Replica>,
    /// No replica still awaited times out before this (see [`QuorumTally::excuse_until`]).
    excused_until: Timestamp,
}

impl QuorumTally {
    /// A tally for `spec`, whose id is `job`.
    pub fn new(job: JobId, spec: &JobSpec) -> Self {
        Self {
            job,
            quorum: spec.quorum.max(1),
            max_replicas: spec.max_replicas.max(spec.replicas),
            deadline: spec.deadline,
            slots: BTreeMap::new(),
            excused_until: Timestamp(0),
        }
    }

    /// Records an award to `provider` at `price`, whose report is due by `report_by`.
    pub fn award(
        &mut self,
        provider: NodeId,
        price: u64,
        report_by: Timestamp,
    ) -> Result<(), AwardError> {
        if self.slots.contains_key(&provider) {
            return Err(AwardError::AlreadyAwarded { provider });
        }
        if self.slots.len() >= usize::from(self.max_replicas) {
            return Err(AwardError::CapReached {
                max: self.max_replicas,
            });
        }
        let replica = Replica {
            price,
            report_by,
            state: Slot::Awaiting,
        };
        self.slots.insert(provider, replica);
        Ok(())
    }

    /// Counts a verified report, or says why not.
    pub fn add_report(
        &mut self,
        report: Verified<ResultReport>,
        now: Timestamp,
    ) -> Result<(), ReportRejection> {
        let provider = report.message().provider;
        if report.message().job != self.job {
            return Err(ReportRejection::OtherJob {
                expected: self.job,
                found: report.message().job,
            });
        }
        let deadline = self.deadline;
        let replica = self
            .slots
            .get_mut(&provider)
            .ok_or(ReportRejection::NotAwarded { provider })?;
        if report.message().price != replica.price {
            return Err(ReportRejection::WrongPrice {
                provider,
                award: replica.price,
                report: report.message().price,
            });
        }
        let slot = &mut replica.state;
        // A replica that timed out is counted after all when its report comes before the
        // job's deadline: the delay may be the requester's (see the module docs).
        if !matches!(slot, Slot::Awaiting | Slot::TimedOut) {
            return Err(ReportRejection::Duplicate { provider });
        }
        if now > deadline {
            *slot = Slot::TimedOut;
            return Err(ReportRejection::Late {
                provider,
                deadline,
                now,
            });
        }
        let (envelope, message) = report.into_parts();
        *slot = Slot::Reported {
            outcome: message.outcome,
            sealed_output: message.sealed_output,
            envelope: Box::new(envelope),
        };
        Ok(())
    }

    /// Marks providers past their deadline as timed out, then decides.
    pub fn decide(&mut self, now: Timestamp) -> Decision {
        self.expire(now);
        let groups = self.groups();
        let counted: usize = groups.values().map(Vec::len).sum();
        let outstanding = self.outstanding();
        let best = groups.iter().max_by_key(|(_, peers)| peers.len());
        let best_count = best.map_or(0, |(_, peers)| peers.len());
        let quorum = usize::from(self.quorum.max(1));
        let others = counted - best_count;
        if let Some((outcome, agreeing)) = best
            && best_count >= quorum + others + outstanding
        {
            let dissenting = groups
                .iter()
                .filter(|(o, _)| *o != outcome)
                .flat_map(|(_, p)| p.clone());
            return Decision::Accept {
                outcome: *outcome,
                agreeing: agreeing.clone(),
                dissenting: dissenting.collect(),
            };
        }
        if now >= self.deadline {
            return Decision::Fail(FailReason::DeadlinePassed);
        }
        if outstanding > 0 {
            return Decision::Pending;
        }
        // Enough new replicas that, if they all agree with the leading outcome, its net
        // agreement reaches the quorum.
        let needed = (quorum + others).saturating_sub(best_count).max(1);
        let room = usize::from(self.max_replicas).saturating_sub(self.slots.len());
        if needed > room {
            return Decision::Fail(FailReason::NoQuorum);
        }
        Decision::Escalate {
            additional: u8::try_from(needed).unwrap_or(u8::MAX),
        }
    }

    /// Withdraws the replica of `provider` when its award was refused before any report: no
    /// timeout, no blame, not outstanding, and left out of the verdict; it still counts
    /// against the cap, and the provider is not awarded this job again. `false` when the
    /// provider holds no replica still awaited.
    pub fn withdraw(&mut self, provider: &NodeId) -> bool {
        match self.slots.get_mut(provider) {
            Some(replica) if matches!(replica.state, Slot::Awaiting) => {
                replica.state = Slot::Refused;
                true
            }
            _ => false,
        }
    }

    /// The earliest report deadline of a replica still awaited, if any (excuses included).
    pub fn next_report_by(&self) -> Option<Timestamp> {
        self.slots
            .values()
            .filter(|r| matches!(r.state, Slot::Awaiting))
            .map(|r| r.report_by.max(self.excused_until))
            .min()
    }

    /// Excuses every replica still awaited until `until`: none times out before it, even past
    /// its `report_by`. A requester that restarts calls it, so that the time it was down does
    /// not count against providers while it asks them for the reports it missed. Replicas
    /// already timed out stay so (their report still counts if it comes before the job's
    /// deadline).
    pub fn excuse_until(&mut self, until: Timestamp) {
        self.excused_until = self.excused_until.max(until);
    }

    /// Marks providers past their deadline as timed out and counts those still awaited.
    pub fn outstanding_at(&mut self, now: Timestamp) -> usize {
        self.expire(now);
        self.outstanding()
    }

    fn expire(&mut self, now: Timestamp) {
        for replica in self.slots.values_mut() {
            if matches!(replica.state, Slot::Awaiting)
                && now > replica.report_by.max(self.excused_until)
            {
                replica.state = Slot::TimedOut;
            }
        }
    }

    /// Counted reports grouped by outcome (host-dependent failures abstain).
    fn groups(&self) -> BTreeMap<Outcome, Vec<NodeId>> {
        let mut groups: BTreeMap<Outcome, Vec<NodeId>> = BTreeMap::new();
        for (peer, replica) in &self.slots {
            if let Slot::Reported { outcome, .. } = &replica.state
                && outcome.is_deterministic()
            {
                groups.entry(*outcome).or_default().push(*peer);
            }
        }
        groups
    }

    fn outstanding(&self) -> usize {
        self.slots
            .values()
            .filter(|r| matches!(r.state, Slot::Awaiting))
            .count()
    }

    /// Each provider holding a replica, with its award price.
    pub fn award_prices(&self) -> impl Iterator<Item = (&NodeId, u64)> {
        self.slots.iter().map(|(provider, r)| (provider, r.price))
    }

    /// Providers currently holding a replica (awaiting, reported or timed out).
    pub fn awarded(&self) -> impl Iterator<Item = &NodeId> {
        self.slots.keys()
    }

    /// Providers whose report is still awaited (as of the last [`QuorumTally::decide`] or
    /// [`QuorumTally::outstanding_at`]).
    pub fn awaiting(&self) -> impl Iterator<Item = &NodeId> {
        let awaiting = self
            .slots
            .iter()
            .filter(|(_, r)| matches!(r.state, Slot::Awaiting));
        awaiting.map(|(p, _)| p)
    }

    /// Providers holding a replica whose report this tally does not hold (awaited or timed
    /// out; not those that refused their award).
    pub fn unreported(&self) -> Vec<NodeId> {
        let unreported = self
            .slots
            .iter()
            .filter(|(_, r)| matches!(r.state, Slot::Awaiting | Slot::TimedOut));
        unreported.map(|(p, _)| *p).collect()
    }

    /// The blob in which `provider` holds its output sealed to the requester, as its report
    /// said; `None` without a report, or for a report of no sealed output.
    pub fn sealed_output(&self, provider: &NodeId) -> Option<BlobHash> {
        match &self.slots.get(provider)?.state {
            Slot::Reported { sealed_output, .. } => *sealed_output,
            _ => None,
        }
    }

    /// Providers that reported `outcome`.
    pub fn reported(&self, outcome: &Outcome) -> Vec<NodeId> {
        let reported = self
            .slots
            .iter()
            .filter(|(_, r)| matches!(&r.state, Slot::Reported { outcome: o, .. } if o == outcome));
        reported.map(|(p, _)| *p).collect()
    }

    /// Providers that missed their deadline.
    pub fn timed_out(&self) -> Vec<NodeId> {
        let timed_out = self
            .slots
            .iter()
            .filter(|(_, r)| matches!(r.state, Slot::TimedOut));
        timed_out.map(|(p, _)| *p).collect()
    }

    /// The verdict for `decision` (an `Accept` or a `Fail`) on the job of `spec`, carrying the
    /// spec, the awards and the signed reports as evidence; `None` for `Pending` and
    /// `Escalate`.
    pub fn verdict(&self, decision: &Decision, spec: &JobSpec, now: Timestamp) -> Option<Verdict> {
        let accepted = match decision {
            Decision::Accept { outcome, .. } => Some(*outcome),
            Decision::Fail(_) => None,
            Decision::Pending | Decision::Escalate { .. } => return None,
        };
        let (mut agreeing, mut dissenting) = (Vec::new(), Vec::new());
        let mut awards = Vec::with_capacity(self.slots.len());
        for (provider, replica) in &self.slots {
            if matches!(replica.state, Slot::Refused) {
                continue;
            }
            awards.push(AwardTerms {
                provider: *provider,
                price: replica.price,
                report_by: replica.report_by,
            });
            if let Slot::Reported {
                outcome, envelope, ..
            } = &replica.state
            {
                if Some(*outcome) == accepted {
                    agreeing.push(envelope.as_ref().clone());
                } else if accepted.is_some() && outcome.is_deterministic() {
                    dissenting.push(envelope.as_ref().clone());
                }
            }
        }
        Some(Verdict {
            job: self.job,
            requester: spec.requester,
            spec: spec.clone(),
            decision: accepted.map_or(VerdictDecision::NoQuorum, VerdictDecision::Accepted),
            awards,
            agreeing,
            dissenting,
            timed_out: self.timed_out(),
            issued_at: now,
        })
    }
}
