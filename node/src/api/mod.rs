//! The control API: HTTP + JSON on a loopback address, for the `cairn` CLI and tools.
//!
//! Every route under `/v1/` needs `Authorization: Bearer TOKEN`, where the token is the
//! content of `api.token` in the data dir (created on first start, mode 0600). `/metrics`
//! (Prometheus text) answers without it. The bound address is written to `api.addr`, so the
//! CLI finds a node started with port 0.

use std::net::SocketAddr;
use std::path::Path;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use cairn_protocol::{BlobHash, CapabilityAdvert, GpuRequirement, Requirements};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::task::JoinHandle;

use crate::error::NodeError;
use crate::files::write_private;

pub mod checkpoints;
pub mod jobs;
mod state;
pub mod wallet;

pub(crate) use state::Services;
use state::{ApiState, error, node_error};

/// File in the data dir holding the API token.
pub const TOKEN_FILE: &str = "api.token";
/// File in the data dir holding the API's bound address.
pub const ADDR_FILE: &str = "api.addr";

/// Binds the API and serves it in a task; returns the bound address.
pub(crate) async fn serve(node: Services) -> Result<(SocketAddr, JoinHandle<()>), NodeError> {
    let data_dir = node.ctx.options().data_dir.clone();
    let token = load_or_create_token(&data_dir)?;
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| NodeError::Io { path, source }
    };
    let addr = node.ctx.options().config.api;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(io(Path::new(&addr.to_string())))?;
    let bound = listener
        .local_addr()
        .map_err(io(Path::new(&addr.to_string())))?;
    let addr_file = data_dir.join(ADDR_FILE);
    std::fs::write(&addr_file, bound.to_string()).map_err(io(&addr_file))?;

    let max_body = usize::try_from(node.ctx.options().config.max_blob_bytes).unwrap_or(usize::MAX);
    let state = ApiState { node, token };
    let v1 = Router::new()
        .route("/v1/status", get(status))
        .route("/v1/peers", get(peers))
        .route("/v1/adverts", get(adverts))
        .route("/v1/lookup/{class}", get(lookup))
        .route("/v1/blobs", post(put_blob))
        .route("/v1/blobs/{hash}", get(get_blob))
        .route("/v1/reputation", get(reputation))
        .route("/v1/checkpoints", get(checkpoints::list))
        .route("/v1/checkpoints/{epoch}", get(checkpoints::show))
        .route("/v1/proofs/{node_id}", get(checkpoints::prove))
        .route("/v1/wallet", get(wallet::wallet))
        .route("/v1/balances/{node_id}", get(wallet::balance))
        .route("/v1/faucet/grants", post(wallet::grant))
        .route("/v1/jobs", post(jobs::submit).get(jobs::list))
        .route("/v1/jobs/{id}", get(jobs::status))
        .route("/v1/jobs/{id}/receipt", get(jobs::receipt))
        .route("/v1/jobs/{id}/cancel", post(jobs::cancel))
        .route("/v1/jobs/{id}/output", get(jobs::output))
        .layer(DefaultBodyLimit::max(max_body))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    let app = Router::new()
        .route("/metrics", get(metrics))
        .merge(v1)
        .with_state(state);
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(target: "cairn::api", error = %e, "API server stopped");
        }
    });
    Ok((bound, task))
}

fn load_or_create_token(dir: &Path) -> Result<String, NodeError> {
    let path = dir.join(TOKEN_FILE);
    let io = |source| NodeError::Io {
        path: path.clone(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(token) if token.trim().len() >= 32 => return Ok(token.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    let token = hex::encode(rand::random::<[u8; 32]>());
    write_private(&path, token.as_bytes()).map_err(io)?;
    Ok(token)
}

async fn require_token(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match presented {
        Some(token) if constant_time_eq(token.as_bytes(), state.token.as_bytes()) => {
            next.run(request).await
        }
        _ => error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or wrong bearer token; it is in api.token in the node's data dir",
        ),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `GET /v1/status`.
#[derive(Serialize, Deserialize, Debug)]
pub struct StatusView {
    /// libp2p peer id.
    pub peer_id: String,
    /// Protocol node id (ed25519 key, hex).
    pub node_id: String,
    /// Network name.
    pub network: String,
    /// Listen addresses, each ending in `/p2p/PEER_ID`.
    pub listen_addrs: Vec<String>,
    /// Connected peers.
    pub peers: usize,
    /// Adverts held (own included).
    pub adverts: usize,
    /// Blobs held.
    pub blobs: usize,
    /// Bytes of blobs held.
    pub blob_bytes: u64,
    /// How GPUs were found.
    pub gpu_source: crate::gpu::GpuSource,
    /// Cairn version.
    pub version: String,
    /// Reachability: AutoNAT status, relay reservations, hole punching.
    #[serde(default)]
    pub nat: crate::net::NatInfo,
    /// Awards this node holds as a provider: running, or keeping their report until the
    /// job's deadline.
    #[serde(default)]
    pub served: usize,
    /// Of those, the ones whose signed report is kept (the run is over).
    #[serde(default)]
    pub reports_kept: usize,
}

async fn status(State(s): State<ApiState>) -> Response {
    let node = &s.node;
    let (listen, peers) = match (
        node.ctx.net().listen_addrs().await,
        node.ctx.net().peers().await,
    ) {
        (Ok(l), Ok(p)) => (l, p),
        (Err(e), _) | (_, Err(e)) => return error(StatusCode::SERVICE_UNAVAILABLE, "stopping", e),
    };
    let nat = match node.ctx.net().nat().await {
        Ok(nat) => nat,
        Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, "stopping", e),
    };
    let peer_id = node.ctx.peer_id();
    let (served, reports_kept) = node.market.served();
    Json(StatusView {
        peer_id: peer_id.to_string(),
        node_id: node.ctx.node_id().to_string(),
        network: node.ctx.options().spec.name.clone(),
        // Relayed listen addresses (`.../p2p-circuit/p2p/SELF`) already end in the peer id.
        listen_addrs: listen
            .iter()
            .map(|a| match a.iter().last() {
                Some(libp2p::multiaddr::Protocol::P2p(p)) if p == peer_id => a.to_string(),
                _ => format!("{a}/p2p/{peer_id}"),
            })
            .collect(),
        peers: peers.len(),
        adverts: node.adverts.count(),
        blobs: node.blobs.local().list().map_or(0, |l| l.len()),
        blob_bytes: node.blobs.local().used_bytes(),
        gpu_source: node.ctx.options().hardware.source.clone(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        nat,
        served,
        reports_kept,
    })
    .into_response()
}

async fn peers(State(s): State<ApiState>) -> Response {
    match s.node.ctx.net().peers().await {
        Ok(peers) => Json(peers).into_response(),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, "stopping", e),
    }
}

/// Query of `GET /v1/adverts`.
#[derive(Deserialize, Debug, Default)]
pub struct AdvertQuery {
    /// Only nodes with a GPU.
    #[serde(default)]
    pub gpu: bool,
    /// Only nodes with a GPU of at least this much memory, in bytes.
    pub min_vram: Option<u64>,
}

/// An advert as the API shows it.
#[derive(Serialize, Deserialize, Debug)]
pub struct AdvertView {
    /// libp2p peer id.
    pub peer_id: String,
    /// Node id (hex).
    pub node_id: String,
    /// Sequence number.
    pub sequence: u64,
    /// Expiry (ms since the Unix epoch).
    pub expires_at: u64,
    /// GPUs.
    pub gpus: Vec<GpuView>,
    /// Whether the GPU list was simulated.
    pub simulated_gpus: bool,
    /// CPU cores.
    pub cpu_cores: u32,
    /// Memory, bytes.
    pub memory_bytes: u64,
    /// Sandbox identity.
    pub runtime: String,
    /// Capability classes.
    pub classes: Vec<String>,
}

/// A GPU as the API shows it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct GpuView {
    /// Model name.
    pub model: String,
    /// Memory per device, bytes.
    pub vram_bytes: u64,
    /// Compute capability, `major.minor`.
    pub compute_capability: String,
    /// Devices of this model.
    pub count: u32,
    /// Driver version.
    pub driver: String,
    /// CUDA version.
    pub cuda: String,
}

impl From<&cairn_protocol::GpuInfo> for GpuView {
    fn from(g: &cairn_protocol::GpuInfo) -> Self {
        Self {
            model: g.model.clone(),
            vram_bytes: g.vram_bytes,
            compute_capability: g.compute_capability.to_string(),
            count: g.count,
            driver: g.driver.clone(),
            cuda: g.cuda.clone(),
        }
    }
}

impl From<&CapabilityAdvert> for AdvertView {
    fn from(a: &CapabilityAdvert) -> Self {
        Self {
            peer_id: a
                .peer
                .peer_id()
                .map_or_else(|_| "invalid".into(), |p| p.to_string()),
            node_id: a.peer.to_string(),
            sequence: a.sequence,
            expires_at: a.expires_at.0,
            gpus: a.gpus.iter().map(GpuView::from).collect(),
            simulated_gpus: a.simulated_gpus,
            cpu_cores: a.cpu_cores,
            memory_bytes: a.memory_bytes,
            runtime: a.runtime.clone(),
            classes: a.classes(),
        }
    }
}

async fn adverts(State(s): State<ApiState>, Query(q): Query<AdvertQuery>) -> Response {
    let gpu = (q.gpu || q.min_vram.is_some()).then(|| GpuRequirement {
        min_vram_bytes: q.min_vram.unwrap_or(0),
        min_compute_capability: None,
    });
    let requirements = Requirements {
        gpu,
        ..Requirements::default()
    };
    let views: Vec<AdvertView> = s
        .node
        .adverts
        .matching(&requirements)
        .iter()
        .map(AdvertView::from)
        .collect();
    Json(views).into_response()
}

async fn lookup(State(s): State<ApiState>, UrlPath(class): UrlPath<String>) -> Response {
    match s.node.adverts.lookup_class(&class).await {
        Ok(peers) => {
            let mut peers: Vec<String> = peers.iter().map(ToString::to_string).collect();
            peers.sort();
            Json(peers).into_response()
        }
        Err(e) => node_error(e),
    }
}

/// Query of `POST /v1/blobs`.
#[derive(Deserialize, Debug)]
pub struct PutQuery {
    /// Announce the blob in the DHT and wait (up to 10 s) until it is, so any node can find
    /// it (default); `false` stores it only, for a job's module and input, which its
    /// providers fetch from this node.
    #[serde(default = "yes")]
    pub announce: bool,
}

fn yes() -> bool {
    true
}

async fn put_blob(State(s): State<ApiState>, Query(q): Query<PutQuery>, body: Bytes) -> Response {
    let size = body.len();
    let stored = if q.announce {
        s.node.blobs.put(body.to_vec()).await
    } else {
        s.node.blobs.save(body.to_vec()).await
    };
    match stored {
        Ok(hash) => Json(json!({ "hash": hash.to_string(), "size": size })).into_response(),
        Err(e) => node_error(e),
    }
}

async fn get_blob(State(s): State<ApiState>, UrlPath(hash): UrlPath<String>) -> Response {
    let hash: BlobHash = match hash.parse() {
        Ok(h) => h,
        Err(e) => return error(StatusCode::BAD_REQUEST, "bad_hash", e),
    };
    match s.node.blobs.get(hash).await {
        Ok(bytes) => ([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response(),
        Err(e) => node_error(e),
    }
}

async fn metrics(State(s): State<ApiState>) -> Response {
    let node = &s.node;
    let peers = node.ctx.net().peers().await.map_or(0, |p| p.len()) as u64;
    let blobs = node.blobs.local().list().map_or(0, |l| l.len()) as u64;
    let nat = node.ctx.net().nat().await.unwrap_or_default();
    let connections = node.ctx.net().connection_stats().await.unwrap_or_default();
    let gauges = [
        ("cairn_peers", "Connected peers.", peers),
        (
            "cairn_dht_routing_peers",
            "Peers in the DHT routing table.",
            connections.routing_table,
        ),
        (
            "cairn_adverts",
            "Adverts held, this node's own included.",
            node.adverts.count() as u64,
        ),
        ("cairn_blobs", "Blobs held.", blobs),
        (
            "cairn_blob_bytes",
            "Bytes of blobs held.",
            node.blobs.local().used_bytes(),
        ),
        (
            "cairn_checkpoints_finalised",
            "Checkpoints finalised in this node's chain.",
            node.checkpoints.counts().finalised,
        ),
        (
            "cairn_checkpoints_anchored",
            "Checkpoints this node holds an anchor proof for.",
            node.checkpoints.counts().anchored,
        ),
        (
            "cairn_nat_public",
            "1 when AutoNAT found this node publicly reachable, else 0.",
            u64::from(nat.status == "public"),
        ),
        (
            "cairn_relay_reservations",
            "Relays holding a reservation for this node.",
            nat.reservations.len() as u64,
        ),
        (
            "cairn_relay_serving",
            "1 while this node serves as a relay, else 0.",
            u64::from(nat.relay_serving),
        ),
        (
            "cairn_relayed_peers",
            "Peers holding a reservation on this node as their relay.",
            nat.relayed_peers as u64,
        ),
    ];
    let counters = [
        (
            "cairn_connections_outbound_total",
            "Connections this node dialed.",
            connections.outbound,
        ),
        (
            "cairn_connections_inbound_total",
            "Connections peers dialed to this node.",
            connections.inbound,
        ),
        (
            "cairn_connections_trimmed_total",
            "Connections closed because the node held more than its peer target.",
            connections.trimmed,
        ),
        (
            "cairn_connections_denied_per_ip_total",
            "Inbound connections denied because their IP address held its share.",
            connections.denied_per_ip,
        ),
        (
            "cairn_requests_refused_total",
            "Peers' requests refused because the peer had too many waiting or the node was busy.",
            connections.requests_refused,
        ),
        (
            "cairn_blobs_evicted_total",
            "Cached blobs evicted to make room.",
            node.blobs.local().evicted(),
        ),
    ];
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        node.ctx.metrics().render(&gauges, &counters),
    )
        .into_response()
}

/// One line of `GET /v1/reputation`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ReputationView {
    /// libp2p peer id.
    pub peer: String,
    /// Node id (hex).
    pub node_id: String,
    /// Score.
    pub score: i64,
    /// Reports that agreed with accepted outcomes.
    pub agreed: u64,
    /// Reports that contradicted them.
    pub dissented: u64,
    /// Deadlines missed.
    pub timed_out: u64,
    /// Still on probation.
    pub probation: bool,
}

async fn reputation(State(s): State<ApiState>) -> Response {
    let table = s.node.verdicts.table();
    let views: Vec<ReputationView> = table
        .iter()
        .map(|(id, st)| ReputationView {
            peer: id
                .peer_id()
                .map_or_else(|_| "invalid".into(), |p| p.to_string()),
            node_id: id.to_string(),
            score: st.score,
            agreed: st.agreed,
            dissented: st.dissented,
            timed_out: st.timed_out,
            probation: table.on_probation(id),
        })
        .collect();
    Json(views).into_response()
}
