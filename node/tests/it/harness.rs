//! Starts real nodes (real swarms on loopback, real sled stores in temp dirs) in one process.

use std::time::{Duration, Instant};

use cairn_node::config::{NetworkSpec, NodeConfig};
use cairn_node::gpu::{self, GpuSource, Hardware};
use cairn_node::net::NetConfig;
use cairn_node::{Node, NodeOptions, RunningNode};

pub struct Cluster {
    pub nodes: Vec<RunningNode>,
    _dir: tempfile::TempDir,
}

pub fn cpu_only() -> Hardware {
    Hardware {
        gpus: vec![],
        source: GpuSource::None("test".into()),
        cpu_cores: 2,
        memory_bytes: 8 << 30,
    }
}

pub fn h100() -> Hardware {
    Hardware {
        source: GpuSource::Simulated,
        ..gpu::detect(Some(gpu::parse_simulated("H100:80GB:9.0").unwrap()))
    }
}

/// A network name of its own per test, so concurrent tests never mix.
pub fn spec(name: &str) -> NetworkSpec {
    NetworkSpec {
        name: name.into(),
        advert_refresh_secs: 60,
        advert_ttl_secs: 600,
        ..NetworkSpec::default()
    }
}

pub async fn start(
    dir: &std::path::Path,
    spec: &NetworkSpec,
    hardware: Hardware,
    bootstrap: Vec<String>,
) -> RunningNode {
    let config = NodeConfig {
        listen: vec!["/ip4/127.0.0.1/tcp/0".into()],
        bootstrap,
        api: "127.0.0.1:0".parse().unwrap(),
        cache_bytes: 4 << 20,
        ..NodeConfig::default()
    };
    let net = NetConfig {
        heartbeat: Duration::from_millis(100),
        ..NetConfig::new(&spec.name)
    };
    let options = NodeOptions {
        data_dir: dir.to_owned(),
        config,
        spec: spec.clone(),
        hardware,
        runtime: "test-runtime".into(),
        net: Some(net),
    };
    Node::start(options).await.unwrap()
}

/// The first listen address of `node`, with its peer id.
pub async fn address(node: &Node) -> String {
    let addrs = wait_for("a listen address", Duration::from_secs(5), || async {
        let addrs = node.net().listen_addrs().await.unwrap();
        (!addrs.is_empty()).then_some(addrs)
    })
    .await;
    format!("{}/p2p/{}", addrs[0], node.peer_id())
}

/// Starts `hardware.len()` nodes, all bootstrapping from the first.
pub async fn cluster(name: &str, hardware: Vec<Hardware>) -> Cluster {
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(name);
    let mut nodes = Vec::new();
    let mut bootstrap = Vec::new();
    for (i, hw) in hardware.into_iter().enumerate() {
        let node = start(
            &dir.path().join(format!("node{i}")),
            &spec,
            hw,
            bootstrap.clone(),
        )
        .await;
        if i == 0 {
            bootstrap = vec![address(node.node()).await];
        }
        nodes.push(node);
    }
    Cluster { nodes, _dir: dir }
}

/// Polls `check` until it yields a value, or panics after `limit` naming `what`.
pub async fn wait_for<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
