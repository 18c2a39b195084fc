//! Verdicts: the requester's signed decision on a job, with the proof that the job was real.
//!
//! A verdict carries the job's spec (whose hash is the job id), the terms of every award the
//! requester made (signed, like the whole verdict, by the requester) and the providers' own
//! signed reports. [`Verdict::evidence`] checks all of it, so a verdict can only credit or
//! blame providers that the spec's requester awarded: nobody can write a verdict for someone
//! else's job, list a provider that was never awarded, reuse a report from another job, or
//! blame a provider for a deadline that had not passed.
//!
//! What a checked verdict is worth, given who issued it, is the reputation table's business
//! ([`crate::reputation`]): anyone can run a real job among identities of their own, so the
//! evidence proves the work happened, not that it counts.

use std::collections::{BTreeMap, BTreeSet};

use bincode::{Decode, Encode};

use crate::envelope::{Envelope, EnvelopeError, MAX_EVIDENCE_REPORTS, Message, MessageKind};
use crate::messages::{JobSpec, Outcome, ResultReport};
use crate::{JobId, NetworkId, NodeId, Timestamp, codec};

/// How long after the job's deadline its verdict may still be issued, in milliseconds.
pub const VERDICT_GRACE_MS: u64 = 60_000;

/// How old a verdict may be when a node first checks it, in milliseconds. Older verdicts are
/// refused: a node cannot hold the history of every job forever, and a verdict older than
/// this had every chance to spread while it was fresh.
pub const VERDICT_MAX_AGE_MS: u64 = 10 * 60_000;

/// How far in the future a verdict's issue time may be (clock skew), in milliseconds.
pub const VERDICT_MAX_SKEW_MS: u64 = 30_000;

/// What the requester decided.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Encode, Decode)]
pub enum VerdictDecision {
    /// At least `quorum` more reports agreed on this outcome than contradicted it (see
    /// [`crate::quorum`]).
    Accepted(Outcome),
    /// No outcome reached a quorum within the replica cap; nobody is credited or blamed for
    /// their report (missed deadlines still count).
    NoQuorum,
}

/// The terms of one award: who holds a replica, at what price, reporting by when. The award
/// itself went to the provider signed by the requester; the verdict repeats its terms under
/// the same requester's signature.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Encode, Decode)]
pub struct AwardTerms {
    /// The provider awarded a replica.
    pub provider: NodeId,
    /// The agreed price.
    pub price: u64,
    /// Its report was due by this time.
    pub report_by: Timestamp,
}

/// A requester's signed verdict on a job. Other nodes do not trust the requester's word: they
/// check the spec, the awards and the signed reports inside with [`Verdict::evidence`] before
/// updating reputation.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
pub struct Verdict {
    /// The job; must be the hash of `spec`.
    pub job: JobId,
    /// The requester; must be the envelope's signer and the spec's requester.
    pub requester: NodeId,
    /// The job's spec, as the requester signed it in its calls for bids.
    pub spec: JobSpec,
    /// The decision.
    pub decision: VerdictDecision,
    /// Every award of the job, escalations included, one per provider.
    pub awards: Vec<AwardTerms>,
    /// Signed reports of the accepted outcome.
    pub agreeing: Vec<Envelope>,
    /// Signed reports of other deterministic outcomes.
    pub dissenting: Vec<Envelope>,
    /// Awarded providers that did not report by their deadline (each award's `report_by` must
    /// be before `issued_at`). Still the requester's word that no report came, which is why a
    /// timeout costs less than a dissent.
    pub timed_out: Vec<NodeId>,
    /// When the verdict was made.
    pub issued_at: Timestamp,
}

impl Message for Verdict {
    const KIND: MessageKind = MessageKind::Verdict;
    fn author(&self) -> &NodeId {
        &self.requester
    }
}

/// Who a checked verdict credits and blames, and who vouches for it.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
pub struct Evidence {
    /// The job.
    pub job: JobId,
    /// The requester that issued the verdict (and awarded the job).
    pub requester: NodeId,
    /// When the verdict was issued.
    pub issued_at: Timestamp,
    /// No valid verdict for this job can be issued after this time (the job's deadline plus
    /// [`VERDICT_GRACE_MS`]); until then a node remembers which verdict it took for the job.
    pub expires_at: Timestamp,
    /// Providers whose signed reports match the accepted outcome.
    pub agreeing: Vec<NodeId>,
    /// Providers whose signed reports contradict it.
    pub dissenting: Vec<NodeId>,
    /// Awarded providers that missed their deadline.
    pub timed_out: Vec<NodeId>,
}

/// Why a verdict's evidence does not hold up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerdictError {
    /// A report in the evidence failed verification.
    #[error("evidence report {index} is invalid: {source}")]
    BadReport {
        /// Position in `agreeing` followed by `dissenting`.
        index: usize,
        /// Why it failed.
        source: EnvelopeError,
    },
    /// A report in the evidence is about another job.
    #[error("evidence report {index} is for job {found}, not {expected}")]
    OtherJob {
        /// Position in `agreeing` followed by `dissenting`.
        index: usize,
        /// Job of the verdict.
        expected: JobId,
        /// Job of the report.
        found: JobId,
    },
    /// The spec does not hash to the verdict's job id.
    #[error("the spec hashes to job {found}, not to the verdict's job {expected}")]
    SpecMismatch {
        /// Job of the verdict.
        expected: JobId,
        /// Hash of the spec carried.
        found: JobId,
    },
    /// The verdict's signer is not the spec's requester.
    #[error("verdict signed by {signer}, but the job's requester is {requester}")]
    NotRequester {
        /// The verdict's requester.
        signer: NodeId,
        /// The spec's requester.
        requester: NodeId,
    },
    /// A provider is credited or blamed without holding an award of the job.
    #[error("provider {provider} is in the evidence but was not awarded the job")]
    NotAwarded {
        /// The provider.
        provider: NodeId,
    },
    /// A provider is blamed for a deadline that had not passed when the verdict was issued.
    #[error("provider {provider} is blamed for a deadline ({report_by}) that had not passed")]
    DeadlineNotPassed {
        /// The provider.
        provider: NodeId,
        /// Its deadline.
        report_by: Timestamp,
    },
    /// An award's price in the verdict is not the one its provider's signed report states:
    /// the requester understated (or overstated) what it owes.
    #[error(
        "the verdict awards {provider} at {award}, but its signed report says the award was {report}"
    )]
    PriceMismatch {
        /// The provider.
        provider: NodeId,
        /// The price in the verdict's award terms.
        award: u64,
        /// The price in the provider's signed report.
        report: u64,
    },
    /// More awards than the spec allows replicas, or an award to the requester itself.
    #[error("the awards are not allowed by the spec: {reason}")]
    BadAwards {
        /// What is wrong.
        reason: &'static str,
    },
    /// The verdict was issued too long after the job's deadline.
    #[error("verdict issued at {issued_at}, after the job's deadline {deadline} and its grace")]
    AfterDeadline {
        /// The verdict's issue time.
        issued_at: Timestamp,
        /// The job's deadline.
        deadline: Timestamp,
    },
    /// A provider appears more than once.
    #[error("provider {provider} appears more than once in the evidence")]
    DuplicateProvider {
        /// The provider.
        provider: NodeId,
    },
    /// The reports do not support the decision.
    #[error("evidence does not support the decision: {reason}")]
    Unsupported {
        /// What is wrong.
        reason: &'static str,
    },
    /// The verdict carries more evidence than any honest verdict needs.
    #[error("verdict carries {count} entries, more than the limit of {max}")]
    TooMuchEvidence {
        /// Entries carried.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// The verdict's issue time is too far from the checker's clock.
    #[error("verdict issued at {issued_at}, outside the window around now ({now})")]
    OutsideWindow {
        /// The verdict's issue time.
        issued_at: Timestamp,
        /// The checker's time.
        now: Timestamp,
    },
    /// The spec could not be encoded to compute its id.
    #[error("the spec cannot be encoded: {0}")]
    Spec(#[from] codec::CodecError),
}

impl VerdictError {
    /// A stable, short label of the cause, for counting rejections by reason.
    pub fn reason(&self) -> &'static str {
        match self {
            VerdictError::BadReport { .. } => "bad_report",
            VerdictError::PriceMismatch { .. } => "price_mismatch",
            VerdictError::OtherJob { .. } => "report_other_job",
            VerdictError::SpecMismatch { .. } => "spec_mismatch",
            VerdictError::NotRequester { .. } => "not_requester",
            VerdictError::NotAwarded { .. } => "not_awarded",
            VerdictError::DeadlineNotPassed { .. } => "deadline_not_passed",
            VerdictError::BadAwards { .. } => "bad_awards",
            VerdictError::AfterDeadline { .. } => "after_deadline",
            VerdictError::DuplicateProvider { .. } => "duplicate_provider",
            VerdictError::Unsupported { .. } => "unsupported_decision",
            VerdictError::TooMuchEvidence { .. } => "too_much_evidence",
            VerdictError::OutsideWindow { .. } => "outside_window",
            VerdictError::Spec(_) => "bad_spec",
        }
    }
}

impl Verdict {
    /// Checks that the verdict proves its job, and yields who it credits and blames. Every
    /// node that checks the same verdict gets the same [`Evidence`]. Checks, in order: sizes;
    /// that the spec hashes to the job id and names the signer as requester; that the awards
    /// are distinct, within the spec's replica cap and not to the requester; that every report
    /// is validly signed for `network`, about this job, by an awarded provider, once, at the price its award terms state; that
    /// every timed-out provider was awarded and its deadline had passed; that the verdict was
    /// issued by the job's deadline plus [`VERDICT_GRACE_MS`]; and that the reports support
    /// the decision under the spec's quorum.
    pub fn evidence(&self, network: &NetworkId) -> Result<Evidence, VerdictError> {
        let count = self.agreeing.len() + self.dissenting.len() + self.timed_out.len();
        let most = count.max(self.awards.len());
        if most > MAX_EVIDENCE_REPORTS {
            return Err(VerdictError::TooMuchEvidence {
                count: most,
                max: MAX_EVIDENCE_REPORTS,
            });
        }
        self.check_spec()?;
        let awards = self.checked_awards()?;
        let agreeing = self.checked_reports(&self.agreeing, 0, network)?;
        let dissenting = self.checked_reports(&self.dissenting, self.agreeing.len(), network)?;

        let mut seen = BTreeSet::new();
        let providers = agreeing.iter().chain(&dissenting).map(|r| &r.provider);
        for provider in providers.chain(&self.timed_out) {
            if !seen.insert(*provider) {
                return Err(VerdictError::DuplicateProvider {
                    provider: *provider,
                });
            }
            if !awards.contains_key(provider) {
                return Err(VerdictError::NotAwarded {
                    provider: *provider,
                });
            }
        }
        for report in agreeing.iter().chain(&dissenting) {
            let award = awards.get(&report.provider).map_or(0, |a| a.price);
            if award != report.price {
                return Err(VerdictError::PriceMismatch {
                    provider: report.provider,
                    award,
                    report: report.price,
                });
            }
        }
        for provider in &self.timed_out {
            let report_by = awards.get(provider).map_or(Timestamp(0), |a| a.report_by);
            if report_by >= self.issued_at {
                return Err(VerdictError::DeadlineNotPassed {
                    provider: *provider,
                    report_by,
                });
            }
        }
        self.check_decision(&agreeing, &dissenting)?;
        Ok(Evidence {
            job: self.job,
            requester: self.requester,
            issued_at: self.issued_at,
            expires_at: self.spec.deadline.plus_ms(VERDICT_GRACE_MS),
            agreeing: agreeing.iter().map(|r| r.provider).collect(),
            dissenting: dissenting.iter().map(|r| r.provider).collect(),
            timed_out: self.timed_out.clone(),
        })
    }

    /// Whether the verdict's issue time is within [`VERDICT_MAX_AGE_MS`] before and
    /// [`VERDICT_MAX_SKEW_MS`] after `now`: the check a node makes when a verdict first
    /// reaches it (not when it replays verdicts it already took, after a restart).
    pub fn check_fresh(&self, now: Timestamp) -> Result<(), VerdictError> {
        let too_old = now.since(self.issued_at) > VERDICT_MAX_AGE_MS;
        let too_new = self.issued_at.since(now) > VERDICT_MAX_SKEW_MS;
        if too_old || too_new {
            return Err(VerdictError::OutsideWindow {
                issued_at: self.issued_at,
                now,
            });
        }
        Ok(())
    }

    fn check_spec(&self) -> Result<(), VerdictError> {
        let found = self.spec.id()?;
        if found != self.job {
            return Err(VerdictError::SpecMismatch {
                expected: self.job,
                found,
            });
        }
        if self.spec.requester != self.requester {
            return Err(VerdictError::NotRequester {
                signer: self.requester,
                requester: self.spec.requester,
            });
        }
        let deadline = self.spec.deadline;
        if self.issued_at > deadline.plus_ms(VERDICT_GRACE_MS) {
            return Err(VerdictError::AfterDeadline {
                issued_at: self.issued_at,
                deadline,
            });
        }
        Ok(())
    }

    fn checked_awards(&self) -> Result<BTreeMap<NodeId, AwardTerms>, VerdictError> {
        let bad = |reason| Err(VerdictError::BadAwards { reason });
        let cap = self.spec.max_replicas.max(self.spec.replicas);
        if self.awards.len() > usize::from(cap) {
            return bad("more awards than the spec's replica cap");
        }
        let mut awards = BTreeMap::new();
        for award in &self.awards {
            if award.provider == self.requester {
                return bad("an award to the requester itself");
            }
            if award.price > self.spec.max_price {
                return bad("an award above the spec's maximum price");
            }
            if awards.insert(award.provider, *award).is_some() {
                return bad("two awards to one provider");
            }
        }
        Ok(awards)
    }

    fn checked_reports(
        &self,
        envelopes: &[Envelope],
        first_index: usize,
        network: &NetworkId,
    ) -> Result<Vec<ResultReport>, VerdictError> {
        let mut reports = Vec::with_capacity(envelopes.len());
        for (i, envelope) in envelopes.iter().enumerate() {
            let index = first_index + i;
            let report = envelope
                .clone()
                .verify::<ResultReport>(network)
                .map_err(|source| VerdictError::BadReport { index, source })?
                .into_parts()
                .1;
            if report.job != self.job {
                return Err(VerdictError::OtherJob {
                    index,
                    expected: self.job,
                    found: report.job,
                });
            }
            reports.push(report);
        }
        Ok(reports)
    }

    fn check_decision(
        &self,
        agreeing: &[ResultReport],
        dissenting: &[ResultReport],
    ) -> Result<(), VerdictError> {
        let unsupported = |reason| Err(VerdictError::Unsupported { reason });
        if dissenting.iter().any(|r| !r.outcome.is_deterministic()) {
            return unsupported("a host-dependent failure is listed as dissent");
        }
        match self.decision {
            VerdictDecision::NoQuorum => {
                if !agreeing.is_empty() {
                    return unsupported("no-quorum verdict lists agreeing reports");
                }
                if !dissenting.is_empty() {
                    return unsupported("no-quorum verdict lists dissenting reports");
                }
            }
            VerdictDecision::Accepted(outcome) => {
                if agreeing.iter().any(|r| r.outcome != outcome) {
                    return unsupported("an agreeing report has another outcome");
                }
                if dissenting.iter().any(|r| r.outcome == outcome) {
                    return unsupported("a dissenting report has the accepted outcome");
                }
                if agreeing.len() < usize::from(self.spec.quorum.max(1)) + dissenting.len() {
                    return unsupported(
                        "agreeing reports less dissenting ones are fewer than the spec's quorum",
                    );
                }
            }
        }
        Ok(())
    }
}
