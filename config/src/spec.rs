//! Network specs (`NETWORK.toml`): what defines a network, and the rules an offline verifier
//! applies for it.

use std::path::Path;

use cairn_protocol::checkpoint::Genesis;
use cairn_protocol::credits::{CreditParams, EnergyRewards, Faucet, OffPeak};
use cairn_protocol::proof::{AnchorRule, NetworkRules};
use cairn_protocol::spv::PowRule;
use cairn_protocol::{NetworkId, NodeId};
use serde::{Deserialize, Serialize};

use crate::anchor::{BackendKind, chain_name};
use crate::error::{ConfigError, invalid};
use crate::read_toml;

/// Longest AutoNAT probe delay accepted in a network spec, in seconds (one hour).
const MAX_AUTONAT_PROBE_SECS: u64 = 3600;

/// What defines a network: its name (which every protocol id and topic carries, so networks
/// never mix), where to join it, and its protocol parameters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkSpec {
    /// Network name: lowercase letters, digits and `-`. Default: `local`.
    pub name: String,
    /// Multiaddrs (with `/p2p/PEER_ID`) of nodes to join through. Default: none.
    pub bootstrap: Vec<String>,
    /// Discover peers on the local link with mDNS (multicast). Default: `false`.
    pub mdns: bool,
    /// Lifetime of capability adverts, in seconds. Default: `600`.
    pub advert_ttl_secs: u64,
    /// Interval between advert refreshes, in seconds. Default: `120`.
    pub advert_refresh_secs: u64,
    /// Checkpoint rules (`[checkpoints]`). Default: no first committee, so no checkpoints.
    pub checkpoints: crate::anchor::CheckpointSpec,
    /// Anchoring (`[anchor]`). Default: backend `none`.
    pub anchor: crate::anchor::AnchorSpec,
    /// Let AutoNAT count private (RFC 1918 and similar) addresses as reachable: peers dial
    /// back such addresses when asked. For lab and LAN networks only; a public network leaves
    /// it off so that nodes cannot be used to probe private networks. Default: `false`.
    pub autonat_private_addrs: bool,
    /// Seconds before a node's first AutoNAT probe, and between probes while its
    /// reachability is unknown. Default: `15`.
    pub autonat_probe_secs: u64,
    /// The network's trust roots, as hex node ids: the genesis set whose verdicts count in
    /// full, and from whom all other standing derives (see docs/trust.md). Default: none,
    /// which takes the first checkpoint committee; with neither, every requester counts (a
    /// closed cluster, never a public network).
    pub trust_roots: Vec<String>,
    /// Credits (`[credits]`): the genesis allocation, an optional faucet and the reward pool
    /// (see docs/credits.md). Part of the network id, so nodes with other credit rules are on
    /// another network. Default: none, a network without credits where jobs are free.
    pub credits: Option<CreditsSpec>,
}

/// The `[credits]` section of a network spec: every credit there will ever be.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CreditsSpec {
    /// `[[credits.genesis]]` entries: who holds what at genesis. Default: none.
    pub genesis: Vec<GenesisEntry>,
    /// `[credits.faucet]`: an identity whose signed grants give credits, for test networks.
    /// Default: none.
    pub faucet: Option<FaucetSpec>,
    /// Credits set aside for energy rewards. Default: `0`.
    pub reward_pool: u64,
    /// Bonus for declared renewable energy, in basis points (at most 10000). Default: `0`.
    pub renewable_bps: u32,
    /// Bonus for work whose verdict falls in the off-peak window, in basis points. Default: `0`.
    pub off_peak_bps: u32,
    /// The off-peak window as `[start_hour, end_hour]` in UTC (wraps past midnight). Default:
    /// none.
    pub off_peak_hours: Option<[u8; 2]>,
}

/// One identity's genesis allocation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisEntry {
    /// The identity, as a hex node id (`cairn status` shows a node's).
    pub id: String,
    /// Credits it holds at genesis.
    pub amount: u64,
}

/// A faucet in a network spec.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaucetSpec {
    /// The faucet's identity, as a hex node id.
    pub id: String,
    /// A grant never lifts a balance above this.
    pub per_identity: u64,
    /// Credits the faucet can ever grant.
    pub total: u64,
}

impl CreditsSpec {
    /// The credit rules this section states, checked ([`CreditParams::validate`]).
    pub fn params(&self) -> Result<CreditParams, ConfigError> {
        let id = |field: &'static str, s: &str| {
            s.parse::<NodeId>()
                .map_err(|e| invalid(field, format!("{s:?}: {e}")))
        };
        let genesis = self
            .genesis
            .iter()
            .map(|g| Ok((id("credits.genesis", &g.id)?, g.amount)))
            .collect::<Result<Vec<_>, ConfigError>>()?;
        let faucet = match &self.faucet {
            Some(f) => Some(Faucet {
                id: id("credits.faucet", &f.id)?,
                per_identity: f.per_identity,
                total: f.total,
            }),
            None => None,
        };
        let params = CreditParams {
            genesis,
            faucet,
            reward_pool: self.reward_pool,
            rewards: EnergyRewards {
                renewable_bps: self.renewable_bps,
                off_peak_bps: self.off_peak_bps,
                off_peak: self.off_peak_hours.map(|[start_hour, end_hour]| OffPeak {
                    start_hour,
                    end_hour,
                }),
            },
        };
        params
            .validate()
            .map_err(|e| invalid("credits", e.to_string()))?;
        Ok(params)
    }
}

impl Default for NetworkSpec {
    fn default() -> Self {
        Self {
            name: "local".into(),
            bootstrap: Vec::new(),
            mdns: false,
            advert_ttl_secs: 600,
            advert_refresh_secs: 120,
            checkpoints: crate::anchor::CheckpointSpec::default(),
            anchor: crate::anchor::AnchorSpec::default(),
            autonat_private_addrs: false,
            autonat_probe_secs: 15,
            trust_roots: Vec::new(),
            credits: None,
        }
    }
}

impl NetworkSpec {
    /// Loads and validates a spec file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let spec: Self = read_toml(path)?;
        spec.validate()?;
        Ok(spec)
    }

    /// Checks names and intervals.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let ok = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
        if self.name.is_empty() || self.name.len() > 32 || !self.name.chars().all(ok) {
            return Err(ConfigError::Invalid {
                field: "name",
                reason: format!("{:?}: use 1-32 lowercase letters, digits or '-'", self.name),
            });
        }
        if self.advert_refresh_secs == 0 || self.advert_refresh_secs >= self.advert_ttl_secs {
            return Err(ConfigError::Invalid {
                field: "advert_refresh_secs",
                reason: "must be above 0 and below advert_ttl_secs".into(),
            });
        }
        if self.autonat_probe_secs == 0 || self.autonat_probe_secs > MAX_AUTONAT_PROBE_SECS {
            return Err(ConfigError::Invalid {
                field: "autonat_probe_secs",
                reason: format!("must be between 1 and {MAX_AUTONAT_PROBE_SECS}"),
            });
        }
        self.checkpoints.validate()?;
        self.credit_params()?;
        self.anchor.validate()
    }

    /// The network's credit rules; `None` when it does not use credits.
    pub fn credit_params(&self) -> Result<Option<CreditParams>, ConfigError> {
        self.credits.as_ref().map(CreditsSpec::params).transpose()
    }
}

impl NetworkSpec {
    /// The network's genesis: its name and first committee rules.
    pub fn genesis(&self) -> Result<Genesis, ConfigError> {
        let c = &self.checkpoints;
        Ok(Genesis {
            network: self.name.clone(),
            committee: c.first_committee()?,
            committee_size: c.committee_size,
            threshold: c.threshold(),
            credits: self.credit_params()?,
        })
    }

    /// The id every signature on this network covers: the hash of its genesis.
    pub fn network_id(&self) -> Result<NetworkId, ConfigError> {
        self.genesis()?
            .network_id()
            .map_err(|e| invalid("name", e.to_string()))
    }

    /// The trust roots (see `cairn_protocol::reputation`): `trust_roots` when set, else the
    /// first checkpoint committee; none (a closed cluster) when both are empty.
    pub fn roots(&self) -> Result<Vec<NodeId>, ConfigError> {
        if self.trust_roots.is_empty() {
            return self.checkpoints.first_committee();
        }
        self.trust_roots
            .iter()
            .map(|s| {
                s.parse::<NodeId>()
                    .map_err(|e| invalid("trust_roots", format!("{s:?}: {e}")))
            })
            .collect()
    }
}

/// The rules an offline verifier applies for `spec`.
pub fn network_rules(spec: &NetworkSpec) -> Result<NetworkRules, ConfigError> {
    let c = &spec.checkpoints;
    c.validate()?;
    let genesis = spec.genesis()?;
    let a = &spec.anchor;
    let anchor = (a.backend != BackendKind::None).then(|| AnchorRule {
        chain: chain_name(a),
        pow: PowRule {
            max_target_bits: a.max_target_bits,
            min_confirmations: a.confirmations,
        },
    });
    Ok(NetworkRules { genesis, anchor })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0101010101010101010101010101010101010101010101010101010101010101";

    fn with_credits(amount: u64) -> NetworkSpec {
        let text = format!(
            "name = \"credits\"\n[credits]\ngenesis = [{{ id = \"{ID}\", amount = {amount} }}]\n\
             [credits.faucet]\nid = \"{ID}\"\nper_identity = 10\ntotal = 100\n"
        );
        let spec: NetworkSpec = toml::from_str(&text).unwrap();
        spec.validate().unwrap();
        spec
    }

    #[test]
    fn credit_rules_are_part_of_the_network_id() {
        let plain: NetworkSpec = toml::from_str("name = \"credits\"").unwrap();
        let (a, b) = (with_credits(1_000), with_credits(2_000));
        let ids = [&plain, &a, &b].map(|s| s.network_id().unwrap());
        assert!(ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2]);
        let params = a.credit_params().unwrap().unwrap();
        assert_eq!(params.supply().unwrap(), 1_100);
        // A network without credits keeps the id it had before credits existed.
        let g = plain.genesis().unwrap();
        let before = (&g.network, &g.committee, g.committee_size, g.threshold);
        let encoded = cairn_protocol::codec::encode(&before).unwrap();
        assert_eq!(ids[0], NetworkId::of(&encoded));
    }

    #[test]
    fn a_spec_that_would_mint_credits_is_refused_naming_the_section() {
        let text = format!(
            "name = \"dup\"\n[credits]\ngenesis = [{{ id = \"{ID}\", amount = 1 }}, \
             {{ id = \"{ID}\", amount = 2 }}]\n"
        );
        let spec: NetworkSpec = toml::from_str(&text).unwrap();
        let err = spec.validate().unwrap_err().to_string();
        assert!(err.contains("credits") && err.contains("twice"), "{err}");
    }
}
