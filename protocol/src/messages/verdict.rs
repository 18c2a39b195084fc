//! Verdicts: the requester's signed decision on a job, with the signed reports as evidence.

use std::collections::BTreeSet;

use bincode::{Decode, Encode};

use crate::envelope::{Envelope, EnvelopeError, MAX_EVIDENCE_REPORTS, Message, MessageKind};
use crate::messages::{Outcome, ResultReport};
use crate::{JobId, NodeId, Timestamp};

/// What the requester decided.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Encode, Decode)]
pub enum VerdictDecision {
    /// A strict majority of at least `quorum` reports agreed on this outcome.
    Accepted(Outcome),
    /// No outcome reached a quorum within the replica cap; nobody is credited or blamed for
    /// their report (missed deadlines still count).
    NoQuorum,
}

/// A requester's signed verdict on a job. Other nodes do not trust the requester's word: they
/// check the signed reports inside with [`Verdict::evidence`] before updating reputation.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
pub struct Verdict {
    /// The job.
    pub job: JobId,
    /// The requester; must be the envelope's signer.
    pub requester: NodeId,
    /// Agreeing reports needed, from the job spec.
    pub quorum: u8,
    /// The decision.
    pub decision: VerdictDecision,
    /// Signed reports of the accepted outcome.
    pub agreeing: Vec<Envelope>,
    /// Signed reports of other deterministic outcomes.
    pub dissenting: Vec<Envelope>,
    /// Providers that were awarded a replica and did not report by their deadline. This is the
    /// requester's word alone, which is why a timeout costs less than a dissent.
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

/// Who a checked verdict credits and blames.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Evidence {
    /// The job.
    pub job: JobId,
    /// Providers whose signed reports match the accepted outcome.
    pub agreeing: Vec<NodeId>,
    /// Providers whose signed reports contradict it.
    pub dissenting: Vec<NodeId>,
    /// Providers that missed their deadline.
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
    #[error("verdict carries {count} reports, more than the limit of {max}")]
    TooMuchEvidence {
        /// Reports carried.
        count: usize,
        /// The limit.
        max: usize,
    },
}

impl Verdict {
    /// Verifies every signed report and checks that they support the decision. Every node that
    /// checks the same verdict gets the same [`Evidence`].
    pub fn evidence(&self) -> Result<Evidence, VerdictError> {
        let count = self.agreeing.len() + self.dissenting.len() + self.timed_out.len();
        if count > MAX_EVIDENCE_REPORTS {
            return Err(VerdictError::TooMuchEvidence {
                count,
                max: MAX_EVIDENCE_REPORTS,
            });
        }
        let agreeing = self.checked_reports(&self.agreeing, 0)?;
        let dissenting = self.checked_reports(&self.dissenting, self.agreeing.len())?;

        let mut seen = BTreeSet::new();
        let providers = agreeing.iter().chain(&dissenting).map(|r| &r.provider);
        for provider in providers.chain(&self.timed_out) {
            if !seen.insert(*provider) {
                return Err(VerdictError::DuplicateProvider {
                    provider: *provider,
                });
            }
        }
        self.check_decision(&agreeing, &dissenting)?;
        Ok(Evidence {
            job: self.job,
            agreeing: agreeing.iter().map(|r| r.provider).collect(),
            dissenting: dissenting.iter().map(|r| r.provider).collect(),
            timed_out: self.timed_out.clone(),
        })
    }

    fn checked_reports(
        &self,
        envelopes: &[Envelope],
        first_index: usize,
    ) -> Result<Vec<ResultReport>, VerdictError> {
        let mut reports = Vec::with_capacity(envelopes.len());
        for (i, envelope) in envelopes.iter().enumerate() {
            let index = first_index + i;
            let report = envelope
                .clone()
                .verify::<ResultReport>()
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
            }
            VerdictDecision::Accepted(outcome) => {
                if agreeing.iter().any(|r| r.outcome != outcome) {
                    return unsupported("an agreeing report has another outcome");
                }
                if dissenting.iter().any(|r| r.outcome == outcome) {
                    return unsupported("a dissenting report has the accepted outcome");
                }
                if agreeing.len() < usize::from(self.quorum.max(1)) {
                    return unsupported("fewer agreeing reports than the quorum");
                }
                if agreeing.len() * 2 <= agreeing.len() + dissenting.len() {
                    return unsupported("agreeing reports are not a strict majority");
                }
            }
        }
        Ok(())
    }
}
