//! The network spec's `[checkpoints]` and `[anchor]` tables, and the verifier's rules built
//! from them.

use cairn_protocol::NodeId;
use cairn_protocol::checkpoint::{MAX_COMMITTEE, Threshold};
use serde::{Deserialize, Serialize};

use crate::error::{ConfigError, invalid};

/// The proof-of-work bits of Bitcoin's regtest (the easiest target): the default
/// `max_target_bits`, and what the simulated chain mines at.
pub const REGTEST_BITS: u32 = 0x207f_ffff;

impl AnchorSpec {
    /// Checks that the chosen backend has what it needs.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match self.backend {
            BackendKind::Bitcoind if self.rpc_url.is_empty() => Err(invalid(
                "anchor.rpc_url",
                "the bitcoind backend needs a JSON-RPC URL",
            )),
            BackendKind::Esplora if self.esplora_urls.is_empty() => Err(invalid(
                "anchor.esplora_urls",
                "the esplora backend needs at least one endpoint",
            )),
            _ => Ok(()),
        }
    }
}

/// Checkpoint rules of a network (`[checkpoints]` in the spec).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CheckpointSpec {
    /// Length of an epoch, in milliseconds. Default: `3600000` (one hour).
    pub epoch_ms: u64,
    /// How long a proposer has before the next member tries, in milliseconds. Default: `60000`.
    pub proposer_timeout_ms: u64,
    /// The committee of epoch 0, as hex node ids. Default: none, which turns checkpoints off.
    pub committee: Vec<String>,
    /// Size of later committees (the top-reputation nodes). Default: `7`.
    pub committee_size: u32,
    /// Share of the committee that must sign: numerator. Default: `2`.
    pub threshold_numerator: u32,
    /// Share of the committee that must sign: denominator. Default: `3`.
    pub threshold_denominator: u32,
}

impl Default for CheckpointSpec {
    fn default() -> Self {
        Self {
            epoch_ms: 3_600_000,
            proposer_timeout_ms: 60_000,
            committee: Vec::new(),
            committee_size: 7,
            threshold_numerator: 2,
            threshold_denominator: 3,
        }
    }
}

/// Which anchoring backend a network uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// Not anchored (the default).
    #[default]
    None,
    /// Bitcoin Core or Elements JSON-RPC.
    Bitcoind,
    /// A local key and Esplora REST endpoints.
    Esplora,
    /// The in-process simulated chain: tests and simulations only.
    Simulated,
}

/// Anchoring settings of a network (`[anchor]` in the spec).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnchorSpec {
    /// Backend. Default: `none`.
    pub backend: BackendKind,
    /// Chain name recorded in proofs (`bitcoin-regtest`, `bitcoin-signet`, `liquid`, ...; always
    /// `simulated` for the simulated backend). Default: `none`.
    pub chain: String,
    /// Easiest header target accepted, in compact form. Default: `0x207fffff` (regtest; use
    /// `0x1d00ffff` or a recent mainnet target for Bitcoin).
    pub max_target_bits: u32,
    /// Confirmations before a checkpoint counts as anchored. Default: `1`.
    pub confirmations: u32,
    /// JSON-RPC URL of the `bitcoind` backend. For `simulated`: empty starts a chain inside the
    /// node; a URL uses a shared simulated chain. Default: empty.
    pub rpc_url: String,
    /// JSON-RPC user. Default: empty.
    pub rpc_user: String,
    /// JSON-RPC password. Default: empty.
    pub rpc_password: String,
    /// Esplora base URLs (such as `https://blockstream.info/api`) for the `esplora` backend;
    /// every one gets each transaction and must give the same proofs. The signing key is
    /// `anchor.key` in the data dir. Default: none.
    pub esplora_urls: Vec<String>,
}

impl Default for AnchorSpec {
    fn default() -> Self {
        Self {
            backend: BackendKind::None,
            chain: "none".into(),
            max_target_bits: REGTEST_BITS,
            confirmations: 1,
            rpc_url: String::new(),
            rpc_user: String::new(),
            rpc_password: String::new(),
            esplora_urls: Vec::new(),
        }
    }
}

impl CheckpointSpec {
    /// Rules with `committee` as the first committee (also the size of later ones) and epochs
    /// of `epoch_ms`, the proposer timeout equal to the epoch (tests and simulations).
    pub fn with_committee(committee: &[NodeId], epoch_ms: u64) -> Self {
        Self {
            epoch_ms,
            proposer_timeout_ms: epoch_ms,
            committee: committee.iter().map(ToString::to_string).collect(),
            committee_size: u32::try_from(committee.len()).unwrap_or(u32::MAX),
            ..Self::default()
        }
    }

    /// The first committee, parsed and sorted.
    pub fn first_committee(&self) -> Result<Vec<NodeId>, ConfigError> {
        if self.committee.len() > MAX_COMMITTEE {
            return Err(invalid(
                "checkpoints.committee",
                format!("at most {MAX_COMMITTEE} members"),
            ));
        }
        let mut ids = self
            .committee
            .iter()
            .map(|s| {
                s.parse::<NodeId>()
                    .map_err(|e| invalid("checkpoints.committee", format!("{s:?}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        ids.sort();
        ids.dedup();
        Ok(ids)
    }

    /// The signing threshold.
    pub fn threshold(&self) -> Threshold {
        Threshold {
            numerator: self.threshold_numerator,
            denominator: self.threshold_denominator,
        }
    }

    /// Checks ranges.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.threshold().is_valid() {
            return Err(invalid(
                "checkpoints.threshold_numerator",
                "the threshold must be in (0, 1]",
            ));
        }
        if self.epoch_ms == 0 || self.proposer_timeout_ms == 0 {
            return Err(invalid(
                "checkpoints.epoch_ms",
                "epoch and proposer timeout must be above 0",
            ));
        }
        if self.committee_size == 0 || self.committee_size as usize > MAX_COMMITTEE {
            return Err(invalid(
                "checkpoints.committee_size",
                format!("1 to {MAX_COMMITTEE}"),
            ));
        }
        self.first_committee().map(|_| ())
    }
}

/// The chain name proofs carry: `simulated` for the simulated backend, whatever the spec says.
pub fn chain_name(anchor: &AnchorSpec) -> String {
    match anchor.backend {
        BackendKind::Simulated => "simulated".into(),
        _ => anchor.chain.clone(),
    }
}
