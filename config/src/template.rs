//! The commented `config.toml` that `cairn init` writes: every setting with its default and
//! what it does.

use crate::{NodeConfig, RelayServerMode};

impl NodeConfig {
    /// The commented `config.toml` that `cairn init` writes.
    pub fn commented_toml(&self) -> String {
        let d = self;
        format!(
            r#"# Cairn node configuration. Command-line flags override these settings.

# Multiaddrs to listen on (TCP and QUIC).
listen = {listen:?}
# Extra peers to join through, added to the network spec's bootstrap list.
bootstrap = []
# Network spec file (name, bootstrap peers, parameters). Unset: the built-in "local" network.
# network = "testnet.toml"
# Control API for the `cairn` CLI; loopback only. The token is in api.token beside this file.
api = "{api}"
# Jobs run at once.
capacity = {capacity}
# Awarded jobs held waiting for a free slot, per slot (a job that waits past its deadline
# costs a timeout: lower this if you run long jobs).
backlog_per_slot = {backlog}
# Largest blob (module, input, output) accepted, and total blob storage, in bytes.
max_blob_bytes = {max_blob}
blob_store_bytes = {store}
# Cached copies of other requesters' job blobs are evicted, oldest first, when the store nears
# its size or one requester passes this share of it (in percent); your own blobs never are.
blob_quota_percent = {quota}
# Blob transfers served at once to one peer and in all; more are refused as busy (each
# streams from disk holding 64 KiB).
blob_serve_per_peer = {serve_peer}
blob_serve_total = {serve_total}
# Most simultaneous connections, and how many are kept when idle (above 1.5 times that, the
# least recently used ones nothing needs are closed; 0 keeps them all).
max_connections = {conns}
peer_target = {peer_target}
# Most inbound connections from one IP address (127.0.0.1 and ::1 are exempt).
max_connections_per_ip = {conns_per_ip}
# Database page cache, in bytes.
cache_bytes = {cache}
# Relay connections for peers behind NAT: "auto" (while AutoNAT or external_addrs says this
# node is publicly reachable), "on" or "off".
relay_server = "{relay}"
# Behind NAT (AutoNAT says private) without a /p2p-circuit listen address: listen through the
# first bootstrap peers (at most two) as relays.
auto_relay = {auto_relay}
# Addresses at which this node is publicly reachable, e.g. ["/ip4/203.0.113.7/tcp/4741"].
external_addrs = {external:?}

[price]
# Prices in the network's smallest unit.
per_mega_fuel = {pmf}
per_gpu_second = {pgs}
minimum = {min}

[limits]
# The most a job may ask of this node as a provider; calls for bids above are declined with
# the reason. Memory and wall time are per run; capacity runs may be in flight at once.
max_fuel = {max_fuel}
max_memory_bytes = {max_memory}
max_wall_time_ms = {max_wall}
max_output_bytes = {max_output}

[limits.compile]
# What a job's module may make the compiler do. A module past one of these is refused before
# it is compiled, and a compile past timeout_ms fails (it keeps its slot until it really
# ends); neither counts against this node. Functions; largest function and code section, in
# bytes; locals in one function; targets of one br_table; blocks in the module; and the work
# of one function and of all, blocks x (blocks + locals), which compile time grows with.
max_functions = {c_functions}
max_function_bytes = {c_function_bytes}
max_code_bytes = {c_code_bytes}
max_locals = {c_locals}
max_br_table_targets = {c_br_table}
max_blocks = {c_blocks}
max_function_work = {c_function_work}
max_work = {c_work}
timeout_ms = {c_timeout}

[verification]
# For the jobs this node submits: jobs in a thousand that secretly get one extra replica,
# and jobs in a thousand whose agreed output is audited by an established provider.
hidden_replica_per_mille = {hidden}
audit_per_mille = {audit}
# Providers on probation (new identities) never make up a quorum on their own.
require_established = {established}
# Outcomes of providers with a short record are audited more often: with probability
# audit_scale / (audit_scale + score) for the least-proven agreeing provider; 0 turns it off.
audit_scale = {audit_scale}
"#,
            listen = d.listen,
            api = d.api,
            capacity = d.capacity,
            backlog = d.backlog_per_slot,
            max_blob = d.max_blob_bytes,
            store = d.blob_store_bytes,
            quota = d.blob_quota_percent,
            serve_peer = d.blob_serve_per_peer,
            serve_total = d.blob_serve_total,
            conns = d.max_connections,
            conns_per_ip = d.max_connections_per_ip,
            peer_target = d.peer_target,
            cache = d.cache_bytes,
            relay = match d.relay_server {
                RelayServerMode::Auto => "auto",
                RelayServerMode::On => "on",
                RelayServerMode::Off => "off",
            },
            auto_relay = d.auto_relay,
            external = d.external_addrs,
            pmf = d.price.per_mega_fuel,
            pgs = d.price.per_gpu_second,
            min = d.price.minimum,
            max_fuel = d.limits.max_fuel,
            max_memory = d.limits.max_memory_bytes,
            max_wall = d.limits.max_wall_time_ms,
            max_output = d.limits.max_output_bytes,
            c_functions = d.limits.compile.max_functions,
            c_function_bytes = d.limits.compile.max_function_bytes,
            c_code_bytes = d.limits.compile.max_code_bytes,
            c_locals = d.limits.compile.max_locals,
            c_br_table = d.limits.compile.max_br_table_targets,
            c_blocks = d.limits.compile.max_blocks,
            c_function_work = d.limits.compile.max_function_work,
            c_work = d.limits.compile.max_work,
            c_timeout = d.limits.compile.timeout_ms,
            hidden = d.verification.hidden_replica_per_mille,
            audit = d.verification.audit_per_mille,
            established = d.verification.require_established,
            audit_scale = d.verification.audit_scale,
        )
    }
}
