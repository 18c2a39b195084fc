//! A node's settings (`config.toml` in the data dir).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use cairn_protocol::blob_wire::MAX_BLOB_TRANSFER_BYTES;
use multiaddr::Multiaddr;
use serde::{Deserialize, Serialize};

use crate::error::{ConfigError, MAX_CONFIG_BYTES};

/// Whether this node relays connections for peers behind NAT.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RelayServerMode {
    /// Serve once this node has a confirmed public address (from AutoNAT or from
    /// `external_addrs`); stop when it loses it. The default.
    #[default]
    Auto,
    /// Always serve, whatever AutoNAT says.
    On,
    /// Never serve.
    Off,
}

/// Environment variable that overrides the default data directory.
pub const DATA_DIR_ENV: &str = "CAIRN_DATA_DIR";

/// The data directory: `$CAIRN_DATA_DIR`, else `$XDG_DATA_HOME/cairn`, else
/// `~/.local/share/cairn`, else `./cairn-data`.
pub fn default_data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(DATA_DIR_ENV) {
        return PathBuf::from(dir);
    }
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME") {
        return PathBuf::from(xdg).join("cairn");
    }
    match std::env::var_os("HOME") {
        Some(home) => PathBuf::from(home).join(".local/share/cairn"),
        None => PathBuf::from("cairn-data"),
    }
}

/// Reads a TOML file with a size bound.
pub fn read_toml<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, ConfigError> {
    let read_err = |source| ConfigError::Read {
        path: path.to_owned(),
        source,
    };
    let len = std::fs::metadata(path).map_err(read_err)?.len();
    if len > MAX_CONFIG_BYTES {
        return Err(ConfigError::TooLarge {
            path: path.to_owned(),
            len,
        });
    }
    let text = std::fs::read_to_string(path).map_err(read_err)?;
    toml::from_str(&text).map_err(|source| ConfigError::Parse {
        path: path.to_owned(),
        source,
    })
}

/// Prices this node asks, in the network's smallest unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PriceConfig {
    /// Per million fuel units. Default: `1`.
    pub per_mega_fuel: u64,
    /// Per GPU-second. Default: `10`.
    pub per_gpu_second: u64,
    /// Minimum per job. Default: `1`.
    pub minimum: u64,
}

impl Default for PriceConfig {
    fn default() -> Self {
        Self {
            per_mega_fuel: 1,
            per_gpu_second: 10,
            minimum: 1,
        }
    }
}

/// The most a job may ask of this node as a provider: a call for bids above any of these is
/// declined with the reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Fuel. Default: 10^11 (ten times a request's default).
    pub max_fuel: u64,
    /// Linear memory, in bytes. Default: 1 GiB.
    pub max_memory_bytes: u64,
    /// Wall-clock time per run, in ms. Default: 300 000 (5 minutes).
    pub max_wall_time_ms: u64,
    /// Output, in bytes. Default: 64 MiB.
    pub max_output_bytes: u64,
    /// What a job's module may make the compiler do (`[limits.compile]`).
    pub compile: CompileConfig,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_fuel: 100_000_000_000,
            max_memory_bytes: 1 << 30,
            max_wall_time_ms: 300_000,
            max_output_bytes: 64 << 20,
            compile: CompileConfig::default(),
        }
    }
}

/// Bounds on compiling a job's module (`[limits.compile]`): a module past one of the
/// structural limits is refused before it is compiled, and a compile past `timeout_ms` fails;
/// neither is held against this node. The defaults are the sandbox's
/// (`cairn_runtime::CompileLimits`), chosen from the measurements in `docs/benchmarks.md`,
/// "Compile bounds".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CompileConfig {
    /// Functions defined in the module. Default: 50 000.
    pub max_functions: u64,
    /// Largest function body, in bytes. Default: 1 MiB.
    pub max_function_bytes: u64,
    /// The code section, in bytes. Default: 16 MiB.
    pub max_code_bytes: u64,
    /// Locals declared in one function. Default: 10 000.
    pub max_locals: u64,
    /// Targets of one `br_table`. Default: 10 000.
    pub max_br_table_targets: u64,
    /// Blocks (`block`, `loop`, `if`) in the module. Default: 50 000.
    pub max_blocks: u64,
    /// One function's blocks times (its blocks plus its locals): compile time grows faster
    /// than linearly with it. Default: 2 000 000.
    pub max_function_work: u64,
    /// That work summed over the module's functions. Default: 10 000 000.
    pub max_work: u64,
    /// Wall-clock limit on one compile, in ms; at least 1. Default: 60 000.
    pub timeout_ms: u64,
}

impl Default for CompileConfig {
    /// The sandbox's defaults (`cairn_runtime::CompileLimits::default()`; `cairn-node` checks
    /// in a test that the two agree).
    fn default() -> Self {
        Self {
            max_functions: 50_000,
            max_function_bytes: 1 << 20,
            max_code_bytes: 16 << 20,
            max_locals: 10_000,
            max_br_table_targets: 10_000,
            max_blocks: 50_000,
            max_function_work: 2_000_000,
            max_work: 10_000_000,
            timeout_ms: 60_000,
        }
    }
}

impl LimitsConfig {
    /// The maxima as the protocol's [`Limits`](cairn_protocol::Limits).
    pub fn as_limits(&self) -> cairn_protocol::Limits {
        cairn_protocol::Limits {
            fuel: self.max_fuel,
            memory_bytes: self.max_memory_bytes,
            wall_time_ms: self.max_wall_time_ms,
            max_output_bytes: self.max_output_bytes,
        }
    }
}

/// How this node, as a requester, guards its jobs against colluding providers (see
/// `docs/protocol.md`, "Resisting collusion").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VerificationConfig {
    /// Jobs in a thousand whose first round secretly gets one replica more than asked for.
    /// Default: `50`.
    pub hidden_replica_per_mille: u16,
    /// Jobs in a thousand whose agreed outcome is audited by one more replica from an
    /// established provider before it is accepted. Default: `50`.
    pub audit_per_mille: u16,
    /// Whether providers on probation may never make up a quorum on their own (when any
    /// established provider is known). Default: `true`.
    pub require_established: bool,
    /// Adaptive audits: an outcome whose least-proven agreeing provider has score `s` is
    /// audited with probability at least `audit_scale / (audit_scale + s)` (always for
    /// `s ≤ 0`); `0` turns them off. Default: `3`.
    pub audit_scale: u32,
}

impl Default for VerificationConfig {
    fn default() -> Self {
        Self {
            hidden_replica_per_mille: 50,
            audit_per_mille: 50,
            require_established: true,
            audit_scale: 3,
        }
    }
}

impl VerificationConfig {
    /// No hidden replicas and no audits: every job gets exactly the replicas it asks for.
    /// For tests that count replicas.
    pub fn exact() -> Self {
        Self {
            hidden_replica_per_mille: 0,
            audit_per_mille: 0,
            audit_scale: 0,
            ..Self::default()
        }
    }
}

/// The node's settings (`config.toml`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    /// Multiaddrs to listen on. Default: TCP and QUIC on port 4741 on all interfaces.
    pub listen: Vec<String>,
    /// Extra bootstrap multiaddrs, added to the network spec's. Default: none.
    pub bootstrap: Vec<String>,
    /// Path of the network spec file; `None` runs the built-in `local` network.
    pub network: Option<PathBuf>,
    /// Control API address; must be a loopback address. Default: `127.0.0.1:4740`.
    pub api: SocketAddr,
    /// Prices.
    pub price: PriceConfig,
    /// The most a job may ask of this node as a provider.
    pub limits: LimitsConfig,
    /// Jobs run at once. Default: number of CPU cores.
    pub capacity: u32,
    /// Awarded jobs a provider may hold waiting for a free slot, per slot, beyond those
    /// running. Short jobs wait a few ms; a job that waits past its report deadline costs a
    /// timeout, so lower this for long jobs. Default: `4`.
    pub backlog_per_slot: u32,
    /// Largest single blob accepted, in bytes. Default: 64 MiB.
    pub max_blob_bytes: u64,
    /// Total blob storage, in bytes. Default: 4 GiB.
    pub blob_store_bytes: u64,
    /// The share of `blob_store_bytes`, in percent, that the cached copies of one requester's
    /// jobs (a provider's modules, inputs and outputs) may take; past it, that requester's
    /// oldest cached blobs make room. Never less than `max_blob_bytes`. Default: `25`.
    pub blob_quota_percent: u8,
    /// Blob transfers served to one peer at once; more are refused as busy. Default: `4`.
    pub blob_serve_per_peer: u32,
    /// Blob transfers served at once in all; more are refused as busy. Each holds one chunk
    /// (64 KiB) of memory while it streams. Default: `64`.
    pub blob_serve_total: u32,
    /// Most simultaneous connections. Default: `256`.
    pub max_connections: u32,
    /// Most inbound connections from one IP address (127.0.0.1 and ::1 exempt), so that one
    /// host with many free identities cannot take every slot. Default: `8`.
    pub max_connections_per_ip: u32,
    /// Connections kept when idle: above one and a half times this many, the least recently
    /// used ones that no gossip mesh, relay or request needs are closed. `0` keeps every
    /// connection. Default: `32`.
    pub peer_target: usize,
    /// sled page cache, in bytes. Default: 64 MiB.
    pub cache_bytes: u64,
    /// Verification rules for the jobs this node submits.
    pub verification: VerificationConfig,
    /// Relay connections for peers behind NAT: `auto` (while this node has a confirmed public
    /// address), `on` or `off`. Default: `auto`.
    pub relay_server: RelayServerMode,
    /// When AutoNAT finds this node private and no `/p2p-circuit` listen address is set,
    /// listen through the first bootstrap peers (at most two) as relays. Default: `true`.
    pub auto_relay: bool,
    /// Addresses at which this node is publicly reachable, announced without waiting for
    /// AutoNAT (for example a bootstrap node's `/ip4/PUBLIC_IP/tcp/4741`). Default: none.
    pub external_addrs: Vec<String>,
}

impl Default for NodeConfig {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self {
            listen: vec![
                "/ip4/0.0.0.0/tcp/4741".into(),
                "/ip4/0.0.0.0/udp/4741/quic-v1".into(),
            ],
            bootstrap: Vec::new(),
            network: None,
            api: SocketAddr::from(([127, 0, 0, 1], 4740)),
            price: PriceConfig::default(),
            limits: LimitsConfig::default(),
            capacity: u32::try_from(cores).unwrap_or(1),
            backlog_per_slot: 4,
            max_blob_bytes: 64 << 20,
            blob_store_bytes: 4 << 30,
            blob_quota_percent: 25,
            blob_serve_per_peer: 4,
            blob_serve_total: 64,
            max_connections: 256,
            max_connections_per_ip: 8,
            peer_target: 32,
            cache_bytes: 64 << 20,
            verification: VerificationConfig::default(),
            relay_server: RelayServerMode::Auto,
            auto_relay: true,
            external_addrs: Vec::new(),
        }
    }
}

impl NodeConfig {
    /// Loads `config.toml`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let config: Self = read_toml(path)?;
        config.validate()?;
        Ok(config)
    }

    /// Checks ranges that would otherwise fail later and less clearly.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.api.ip().is_loopback() {
            return Err(ConfigError::Invalid {
                field: "api",
                reason: format!(
                    "{} is not a loopback address; the API serves this host only",
                    self.api
                ),
            });
        }
        if self.max_blob_bytes == 0 || self.max_blob_bytes > self.blob_store_bytes {
            return Err(ConfigError::Invalid {
                field: "max_blob_bytes",
                reason: "must be above 0 and at most blob_store_bytes".into(),
            });
        }
        if self.blob_quota_percent == 0 || self.blob_quota_percent > 100 {
            return Err(ConfigError::Invalid {
                field: "blob_quota_percent",
                reason: "must be between 1 and 100".into(),
            });
        }
        if self.blob_serve_per_peer == 0 || self.blob_serve_total < self.blob_serve_per_peer {
            return Err(ConfigError::Invalid {
                field: "blob_serve_per_peer",
                reason: "must be above 0 and at most blob_serve_total".into(),
            });
        }
        for addr in &self.external_addrs {
            if let Err(e) = addr.parse::<Multiaddr>() {
                return Err(ConfigError::Invalid {
                    field: "external_addrs",
                    reason: format!(
                        "{addr:?} is not a multiaddr like /ip4/203.0.113.7/tcp/4741: {e}"
                    ),
                });
            }
        }
        if self.limits.compile.timeout_ms == 0 {
            return Err(ConfigError::Invalid {
                field: "limits.compile.timeout_ms",
                reason: "must be at least 1; a compile of a small module takes about 100 ms".into(),
            });
        }
        let v = &self.verification;
        if v.hidden_replica_per_mille > 1000 || v.audit_per_mille > 1000 {
            return Err(ConfigError::Invalid {
                field: "verification",
                reason: "hidden_replica_per_mille and audit_per_mille are at most 1000".into(),
            });
        }
        if self.max_blob_bytes > MAX_BLOB_TRANSFER_BYTES {
            return Err(ConfigError::Invalid {
                field: "max_blob_bytes",
                reason: format!("at most {MAX_BLOB_TRANSFER_BYTES} bytes"),
            });
        }
        Ok(())
    }

    /// The bytes of cached blobs one requester's jobs may take: `blob_quota_percent` of
    /// `blob_store_bytes`, and never less than `max_blob_bytes`.
    pub fn requester_blob_quota(&self) -> u64 {
        let share = u128::from(self.blob_store_bytes) * u128::from(self.blob_quota_percent) / 100;
        u64::try_from(share)
            .unwrap_or(u64::MAX)
            .max(self.max_blob_bytes)
    }
}

#[cfg(test)]
mod tests {
    use cairn_protocol::NodeId;

    use super::*;
    use crate::anchor::BackendKind;
    use crate::{NetworkSpec, network_rules};

    #[test]
    fn old_specs_load_and_new_tables_parse() {
        let old: NetworkSpec = toml::from_str("name = \"old\"").unwrap();
        assert_eq!(old.anchor.backend, BackendKind::None);
        assert!(network_rules(&old).unwrap().anchor.is_none());
        let mut secret = [7u8; 32];
        let secret = libp2p_identity::ed25519::SecretKey::try_from_bytes(&mut secret).unwrap();
        let id = NodeId::from_keypair(&libp2p_identity::ed25519::Keypair::from(secret));
        let text = format!(
            "name = \"mynet\"\n[checkpoints]\ncommittee = [\"{id}\"]\nepoch_ms = 1000\n\
             [anchor]\nbackend = \"simulated\"\nchain = \"bitcoin\"\nmax_target_bits = 0x1e0377ae\n"
        );
        let spec: NetworkSpec = toml::from_str(&text).unwrap();
        spec.validate().unwrap();
        let rules = network_rules(&spec).unwrap();
        assert_eq!(rules.genesis.committee, vec![id]);
        let anchor = rules.anchor.unwrap();
        // The simulated backend is always labelled so, whatever the spec calls its chain.
        assert_eq!(anchor.chain, "simulated");
        assert_eq!(anchor.pow.max_target_bits, 0x1e03_77ae);
        let bad = NetworkSpec {
            checkpoints: crate::anchor::CheckpointSpec {
                threshold_numerator: 4,
                ..crate::anchor::CheckpointSpec::default()
            },
            ..NetworkSpec::default()
        };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn compile_limits_are_read_from_the_limits_table() {
        let text = "[limits.compile]\nmax_locals = 500\ntimeout_ms = 2500\n";
        let config: NodeConfig = toml::from_str(text).unwrap();
        config.validate().unwrap();
        let compile = config.limits.compile;
        assert_eq!((compile.max_locals, compile.timeout_ms), (500, 2500));
        assert_eq!(
            compile.max_functions,
            CompileConfig::default().max_functions
        );
        let zero: NodeConfig = toml::from_str("[limits.compile]\ntimeout_ms = 0\n").unwrap();
        assert!(
            zero.validate().is_err(),
            "a zero compile timeout would fail every job"
        );
    }

    #[test]
    fn commented_defaults_parse_back_to_the_defaults() {
        let config = NodeConfig::default();
        let parsed: NodeConfig = toml::from_str(&config.commented_toml()).unwrap();
        assert_eq!(parsed, config);
    }

    #[test]
    fn bad_values_are_named() {
        let spec = NetworkSpec {
            name: "Main Net".into(),
            ..NetworkSpec::default()
        };
        assert!(matches!(
            spec.validate(),
            Err(ConfigError::Invalid { field: "name", .. })
        ));
        let config = NodeConfig {
            api: "0.0.0.0:1".parse().unwrap(),
            ..NodeConfig::default()
        };
        assert!(matches!(
            config.validate(),
            Err(ConfigError::Invalid { field: "api", .. })
        ));
        assert!(
            toml::from_str::<NodeConfig>("listne = []").is_err(),
            "typos are refused"
        );
        let spec = NetworkSpec {
            autonat_probe_secs: 0,
            ..NetworkSpec::default()
        };
        assert!(matches!(
            spec.validate(),
            Err(ConfigError::Invalid {
                field: "autonat_probe_secs",
                ..
            })
        ));
        let config = NodeConfig {
            external_addrs: vec!["203.0.113.7:4741".into()],
            ..NodeConfig::default()
        };
        assert!(matches!(
            config.validate(),
            Err(ConfigError::Invalid {
                field: "external_addrs",
                ..
            })
        ));
    }
}
