//! Starting real nodes in one process for tests and benchmarks: real swarms on loopback
//! (port 0), real sled stores under a directory the caller owns, a network name of the
//! caller's choosing so concurrent clusters never mix, and a fast gossip heartbeat.

use std::future::Future;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::config::{NetworkSpec, NodeConfig};
use crate::gpu::{GpuSource, Hardware};
use crate::market::FaultInjection;
use crate::net::NetConfig;
use crate::{Node, NodeError, NodeOptions, RunningNode};

/// A CPU-only machine with 2 cores and 8 GiB.
pub fn cpu_only() -> Hardware {
    Hardware {
        gpus: vec![],
        source: GpuSource::None("test node".into()),
        cpu_cores: 2,
        memory_bytes: 8 << 30,
    }
}

/// A machine with the given simulated GPUs (`MODEL:VRAM:CC[,...]`).
pub fn simulated(spec: &str) -> Result<Hardware, crate::gpu::GpuSpecError> {
    Ok(Hardware {
        gpus: crate::gpu::parse_simulated(spec)?,
        source: GpuSource::Simulated,
        ..cpu_only()
    })
}

/// A network spec named `name` with slow refreshes (tests drive publishing themselves).
pub fn spec(name: &str) -> NetworkSpec {
    NetworkSpec {
        name: name.into(),
        advert_refresh_secs: 60,
        advert_ttl_secs: 600,
        ..NetworkSpec::default()
    }
}

/// Starts one node with its data in `dir`, listening on loopback, API on a free port.
pub async fn start(
    dir: &Path,
    spec: &NetworkSpec,
    hardware: Hardware,
    bootstrap: Vec<String>,
) -> Result<RunningNode, NodeError> {
    start_with_faults(dir, spec, hardware, bootstrap, FaultInjection::None).await
}

/// [`start`], with fault injection.
pub async fn start_with_faults(
    dir: &Path,
    spec: &NetworkSpec,
    hardware: Hardware,
    bootstrap: Vec<String>,
    faults: FaultInjection,
) -> Result<RunningNode, NodeError> {
    Node::start(options(dir, spec, hardware, bootstrap, faults)).await
}

/// The options [`start_with_faults`] uses: loopback on port 0, API on a free port, a 4 MiB
/// store cache, a 100 ms gossip heartbeat, its own sandbox and a random identity. Callers may
/// change fields (a shared sandbox, a seeded identity) before [`Node::start`].
pub fn options(
    dir: &Path,
    spec: &NetworkSpec,
    hardware: Hardware,
    bootstrap: Vec<String>,
    faults: FaultInjection,
) -> NodeOptions {
    let config = NodeConfig {
        listen: vec!["/ip4/127.0.0.1/tcp/0".into()],
        bootstrap,
        api: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        cache_bytes: 4 << 20,
        // Tests count replicas; simulations turn hidden replicas and audits back on.
        verification: crate::config::VerificationConfig::exact(),
        ..NodeConfig::default()
    };
    let net = NetConfig {
        heartbeat: Duration::from_millis(100),
        ..NetConfig::new(&spec.name)
    };
    NodeOptions {
        data_dir: dir.to_owned(),
        config,
        spec: spec.clone(),
        hardware,
        runtime: "test-runtime".into(),
        net: Some(net),
        faults,
        sandbox: None,
        identity_seed: None,
    }
}

/// The first listen address of `node`, ending in `/p2p/PEER_ID`; waits up to 5 s for one.
pub async fn address(node: &Node) -> Option<String> {
    let addrs = wait_for(Duration::from_secs(5), || async {
        let addrs = node.net().listen_addrs().await.ok()?;
        (!addrs.is_empty()).then_some(addrs)
    })
    .await?;
    Some(format!("{}/p2p/{}", addrs.first()?, node.peer_id()))
}

/// Starts one node per entry of `hardware` under `dir`, each bootstrapping from the first.
pub async fn cluster(
    dir: &Path,
    name: &str,
    hardware: Vec<Hardware>,
) -> Result<Vec<RunningNode>, NodeError> {
    let setups = hardware
        .into_iter()
        .map(|hw| (hw, FaultInjection::None))
        .collect();
    cluster_with_faults(dir, name, setups).await
}

/// [`cluster`], with fault injection per node.
pub async fn cluster_with_faults(
    dir: &Path,
    name: &str,
    setups: Vec<(Hardware, FaultInjection)>,
) -> Result<Vec<RunningNode>, NodeError> {
    let spec = spec(name);
    let mut nodes: Vec<RunningNode> = Vec::new();
    let mut bootstrap = Vec::new();
    for (i, (hw, faults)) in setups.into_iter().enumerate() {
        let dir = dir.join(format!("node{i}"));
        let node = start_with_faults(&dir, &spec, hw, bootstrap.clone(), faults).await?;
        if i == 0 {
            bootstrap = address(node.node()).await.into_iter().collect();
        }
        nodes.push(node);
    }
    Ok(nodes)
}

/// A network spec named `name` whose `[credits]` give the identity of each seed in `seeds` the
/// amount beside it at genesis.
pub fn spec_with_credits(name: &str, seeds: &[([u8; 32], u64)]) -> Result<NetworkSpec, NodeError> {
    let genesis = seeds
        .iter()
        .map(|(seed, amount)| {
            Ok(crate::config::GenesisEntry {
                id: crate::identity::node_id_from_seed(*seed)?.to_string(),
                amount: *amount,
            })
        })
        .collect::<Result<Vec<_>, NodeError>>()?;
    Ok(NetworkSpec {
        credits: Some(crate::config::CreditsSpec {
            genesis,
            ..Default::default()
        }),
        ..spec(name)
    })
}

/// A cluster on a network with credits: node `i` has identity seed `[i + 1; 32]` and holds
/// `balances[i]` credits at genesis, and every node asks `per_mega_fuel` per million fuel.
pub async fn credit_cluster(
    dir: &Path,
    name: &str,
    balances: &[u64],
    per_mega_fuel: u64,
) -> Result<Vec<RunningNode>, NodeError> {
    let seeds: Vec<([u8; 32], u64)> = (balances.iter().enumerate())
        .map(|(i, b)| ([u8::try_from(i + 1).unwrap_or(u8::MAX); 32], *b))
        .collect();
    let spec = spec_with_credits(name, &seeds)?;
    let seeds: Vec<[u8; 32]> = seeds.iter().map(|(seed, _)| *seed).collect();
    start_seeded(dir, &spec, &seeds, per_mega_fuel).await
}

/// Starts one node per seed on `spec` (node `i` with identity seed `seeds[i]`, bootstrapping
/// from the first), each asking `per_mega_fuel` per million fuel.
pub async fn start_seeded(
    dir: &Path,
    spec: &NetworkSpec,
    seeds: &[[u8; 32]],
    per_mega_fuel: u64,
) -> Result<Vec<RunningNode>, NodeError> {
    let mut nodes: Vec<RunningNode> = Vec::new();
    let mut bootstrap = Vec::new();
    for (i, seed) in seeds.iter().enumerate() {
        let dir = dir.join(format!("node{i}"));
        let mut options = options(
            &dir,
            spec,
            cpu_only(),
            bootstrap.clone(),
            FaultInjection::None,
        );
        options.identity_seed = Some(*seed);
        options.config.price.per_mega_fuel = per_mega_fuel;
        let node = Node::start(options).await?;
        if i == 0 {
            bootstrap = address(node.node()).await.into_iter().collect();
        }
        nodes.push(node);
    }
    Ok(nodes)
}

/// Polls `check` every 5 ms until it yields a value, or gives up after `limit`.
pub async fn wait_for<T, F, Fut>(limit: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(value) = check().await {
            return Some(value);
        }
        if start.elapsed() >= limit {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
