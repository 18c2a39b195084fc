//! Test wrappers over `cairn_node::testing` that panic with a clear message.

use std::time::Duration;

pub use cairn_node::gpu::Hardware;
use cairn_node::{RunningNode, testing};

pub struct Cluster {
    pub nodes: Vec<RunningNode>,
    _dir: tempfile::TempDir,
}

pub fn cpu_only() -> Hardware {
    testing::cpu_only()
}

pub fn h100() -> Hardware {
    testing::simulated("H100:80GB:9.0").unwrap()
}

impl Cluster {
    pub fn from_nodes(nodes: Vec<RunningNode>, dir: tempfile::TempDir) -> Self {
        Self { nodes, _dir: dir }
    }
}

pub async fn cluster(name: &str, hardware: Vec<Hardware>) -> Cluster {
    let dir = tempfile::tempdir().unwrap();
    let nodes = testing::cluster(dir.path(), name, hardware).await.unwrap();
    Cluster { nodes, _dir: dir }
}

/// Polls `check` until it yields a value, or panics after `limit` naming `what`.
pub async fn wait_for<T, F, Fut>(what: &str, limit: Duration, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    match testing::wait_for(limit, check).await {
        Some(v) => v,
        None => panic!("timed out after {limit:?} waiting for {what}"),
    }
}

/// Waits (up to `limit`) until `requester`'s job `id` is finished, and returns its view.
pub async fn finish(
    requester: &cairn_node::Node,
    id: &cairn_protocol::JobId,
    limit: Duration,
) -> cairn_node::market::JobView {
    wait_for("the job to finish", limit, || async {
        requester
            .market()
            .job_finished(id)
            .unwrap_or(false)
            .then_some(())
    })
    .await;
    requester.market().job(id).unwrap()
}
