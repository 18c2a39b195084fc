//! What a verdict owes: taken from the verdict's checked evidence alone, so every node that
//! checked the same verdict owes the same amounts.

use bincode::{Decode, Encode};

use crate::envelope::MessageKind;
use crate::messages::{Evidence, ResultReport, Verdict, VerdictError};
use crate::{JobId, NetworkId, NodeId, Timestamp, codec};

/// What a provider is owed for one replica: its award `price` (for a run to the spec's fuel
/// limit) scaled by the fuel used, `floor(price × min(fuel_used, fuel_limit) / fuel_limit)`.
/// A job with a fuel limit of 0 costs the full price (nothing to scale by). Never more than
/// `price`: a requester is charged for the fuel used, never for the limit it set.
pub fn charge(price: u64, fuel_used: u64, fuel_limit: u64) -> u64 {
    if fuel_limit == 0 {
        return price;
    }
    let used = u128::from(fuel_used.min(fuel_limit));
    let owed = u128::from(price) * used / u128::from(fuel_limit);
    // `used <= fuel_limit`, so `owed <= price` fits.
    u64::try_from(owed).unwrap_or(price)
}

/// One agreeing provider of a settlement.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Encode, Decode)]
pub struct Payee {
    /// The provider.
    pub provider: NodeId,
    /// Its award price (for one replica run to the fuel limit), as its signed report states it.
    pub price: u64,
    /// Whether it declared renewable energy in signed evidence every node holds. No verdict
    /// carries such a claim yet, so [`Settlement::from_verdict`] sets `false`.
    pub renewable: bool,
}

/// What a checked verdict owes, and to whom.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
pub struct Settlement {
    /// The job.
    pub job: JobId,
    /// The requester, who pays.
    pub requester: NodeId,
    /// When the verdict was issued (decides the off-peak bonus).
    pub issued_at: Timestamp,
    /// The job's last valid verdict time: until then a book remembers the job was settled.
    pub expires_at: Timestamp,
    /// The spec's fuel limit.
    pub fuel_limit: u64,
    /// The fuel paid for: the lower median of the agreeing reports' fuel, at most the limit.
    /// Honest replicas report the same fuel (the sandbox is deterministic), so one provider
    /// that overstates its fuel cannot raise what the others are paid, nor what it is.
    pub fuel_used: u64,
    /// The agreeing providers, sorted by id: the only ones paid.
    pub payees: Vec<Payee>,
}

/// Why a verdict yields no settlement.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SettlementError {
    /// The verdict's evidence does not hold up.
    #[error("the verdict's evidence does not hold up: {0}")]
    Verdict(#[from] VerdictError),
    /// The evidence given is not the one this verdict yields.
    #[error("the evidence is not this verdict's: check the verdict with Verdict::evidence")]
    EvidenceMismatch,
}

impl Settlement {
    /// Checks `verdict` for `network` ([`Verdict::evidence`]) and says what it owes.
    pub fn from_verdict(
        verdict: &Verdict,
        network: &NetworkId,
    ) -> Result<(Evidence, Settlement), SettlementError> {
        let evidence = verdict.evidence(network)?;
        let settlement = Self::from_checked(verdict, &evidence)?;
        Ok((evidence, settlement))
    }

    /// What `verdict` owes, given the `evidence` that [`Verdict::evidence`] returned for it (so
    /// its reports' signatures are not checked twice).
    pub fn from_checked(
        verdict: &Verdict,
        evidence: &Evidence,
    ) -> Result<Settlement, SettlementError> {
        if evidence.job != verdict.job || evidence.agreeing.len() != verdict.agreeing.len() {
            return Err(SettlementError::EvidenceMismatch);
        }
        let max = MessageKind::ResultReport.max_payload_bytes();
        let mut fuel = Vec::with_capacity(verdict.agreeing.len());
        let mut payees = Vec::with_capacity(verdict.agreeing.len());
        for (envelope, provider) in verdict.agreeing.iter().zip(&evidence.agreeing) {
            let report: ResultReport = codec::decode(&envelope.payload, max)
                .map_err(|_| SettlementError::EvidenceMismatch)?;
            let award = verdict.awards.iter().find(|a| a.provider == *provider);
            let (Some(award), true) = (award, report.provider == *provider) else {
                return Err(SettlementError::EvidenceMismatch);
            };
            // `Verdict::evidence` refused award terms that disagree with the report; the
            // price paid is the one the provider signed.
            if award.price != report.price {
                return Err(SettlementError::EvidenceMismatch);
            }
            fuel.push(report.fuel_used);
            payees.push(Payee {
                provider: *provider,
                price: report.price,
                renewable: false,
            });
        }
        fuel.sort_unstable();
        let fuel_limit = verdict.spec.limits.fuel;
        let median = fuel.get(fuel.len().saturating_sub(1) / 2).copied();
        payees.sort_by_key(|p| p.provider);
        Ok(Settlement {
            job: verdict.job,
            requester: verdict.requester,
            issued_at: evidence.issued_at,
            expires_at: evidence.expires_at,
            fuel_limit,
            fuel_used: median.unwrap_or(0).min(fuel_limit),
            payees,
        })
    }

    /// What `payee` is owed, by [`charge`].
    pub fn owed(&self, payee: &Payee) -> u64 {
        charge(payee.price, self.fuel_used, self.fuel_limit)
    }

    /// What the verdict owes in all, before any shortfall.
    pub fn total_owed(&self) -> u128 {
        self.payees.iter().map(|p| u128::from(self.owed(p))).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_provider_is_charged_for_the_fuel_used_never_the_limit() {
        assert_eq!(charge(1_000, 250, 1_000), 250);
        assert_eq!(charge(1_000, 5_000, 1_000), 1_000, "capped at the limit");
        assert_eq!(charge(7, 1, 3), 2, "rounded down");
        assert_eq!(charge(9, 0, 0), 9, "no limit to scale by");
        assert_eq!(charge(u64::MAX, u64::MAX - 1, u64::MAX), u64::MAX - 1);
    }
}
