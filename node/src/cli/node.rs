//! `cairn node`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use cairn_node::config::{NetworkSpec, NodeConfig};
use cairn_node::net::RelayServerMode;
use cairn_node::{Node, NodeOptions, gpu};

use super::Cli;

/// Arguments of `cairn node`. Flags override `config.toml` in the data dir.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Multiaddr to listen on (repeatable). Default: config `listen` (TCP and QUIC on 4741).
    #[arg(long, value_name = "MULTIADDR")]
    listen: Vec<String>,
    /// Peer to join through, with /p2p/PEER_ID (repeatable), added to the network spec's.
    #[arg(long, value_name = "MULTIADDR")]
    bootstrap: Vec<String>,
    /// The network to join: a spec file (name, bootstrap peers, parameters) or the name of a
    /// network shipped with Cairn (`testnet`). Default: config `network`, else the built-in
    /// `local`.
    #[arg(long, value_name = "NAME|FILE", env = "CAIRN_NETWORK")]
    network: Option<PathBuf>,
    /// Advertise these GPUs instead of detecting them, for simulations:
    /// MODEL:VRAM:CC[,...], e.g. H100:80GB:9.0. Marked as simulated in the advert.
    #[arg(long, value_name = "SPEC")]
    simulate_gpu: Option<String>,
    /// FAULT INJECTION, for tests and simulations only: report wrong outputs (`wrong-output`:
    /// each cheater its own; `colluding`: all cheaters the same). The network will catch and
    /// penalise this node. Default: none.
    #[arg(long, value_enum, value_name = "FAULT", default_value_t = Fault::None)]
    fault_inject: Fault,
    /// FAULT INJECTION: with `--fault-inject wrong-output`, the share of jobs (0 to 1) that get a
    /// wrong output; the rest are answered honestly. Default: 1 (every job).
    #[arg(long, value_name = "P", default_value_t = 1.0, value_parser = probability)]
    fault_probability: f64,
    /// Relay connections for peers behind NAT: `auto` (while this node is confirmed publicly
    /// reachable), `on` or `off`. Default: config `relay_server` (`auto`).
    #[arg(long, value_enum, value_name = "MODE")]
    relay_server: Option<RelayServer>,
    /// Address at which this node is publicly reachable (repeatable), announced without
    /// waiting for AutoNAT; added to config `external_addrs`.
    #[arg(long, value_name = "MULTIADDR")]
    external_addr: Vec<String>,
    /// Log filter (tracing syntax). Default: $RUST_LOG, else `info`.
    #[arg(long, env = "CAIRN_LOG", value_name = "FILTER")]
    log: Option<String>,
}

impl Args {
    pub fn execute(&self, cli: &Cli) -> Result<ExitCode> {
        let filter = self
            .log
            .clone()
            .or_else(|| std::env::var("RUST_LOG").ok())
            .unwrap_or_else(|| "info".into());
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();

        let data_dir = cli.data_dir();
        if !data_dir.join("config.toml").exists() {
            let outcome = super::init::init(&data_dir)?;
            eprintln!(
                "initialised {} (peer id {})",
                data_dir.display(),
                outcome.peer_id
            );
        }
        let mut config = NodeConfig::load(&data_dir.join("config.toml"))?;
        if !self.listen.is_empty() {
            config.listen = self.listen.clone();
        }
        config.bootstrap.extend(self.bootstrap.iter().cloned());
        config
            .external_addrs
            .extend(self.external_addr.iter().cloned());
        if let Some(mode) = self.relay_server {
            config.relay_server = mode.into();
        }
        if let Some(api) = &cli.api {
            config.api = api
                .parse()
                .with_context(|| format!("--api {api:?} is not an address like 127.0.0.1:4740"))?;
        }
        if let Some(network) = &self.network {
            config.network = Some(network.clone());
        }
        config.validate()?;
        let spec = match &config.network {
            Some(path) => NetworkSpec::resolve(path)?,
            None => NetworkSpec::default(),
        };
        if spec.bootstrap.is_empty() && config.bootstrap.is_empty() && spec.name != "local" {
            eprintln!(
                "network {}: no public bootstrap node is listed yet, and none was given. Join \
                 through a node you know with --bootstrap /ip4/HOST/tcp/4741/p2p/PEER_ID (its \
                 `cairn status` prints it), or run this node as one for others: see \
                 docs/joining.md, \"Running a bootstrap node\".",
                spec.name
            );
        }
        let simulated = self
            .simulate_gpu
            .as_deref()
            .map(gpu::parse_simulated)
            .transpose()?;
        let options = NodeOptions {
            data_dir,
            config,
            spec,
            hardware: gpu::detect(simulated),
            runtime: runtime_identity()?,
            net: None,
            faults: self.fault_inject.with_probability(self.fault_probability),
            sandbox: None,
            identity_seed: None,
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        runtime.block_on(run(options))
    }
}

/// Choices of `--relay-server`.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum RelayServer {
    Auto,
    On,
    Off,
}

impl From<RelayServer> for RelayServerMode {
    fn from(mode: RelayServer) -> Self {
        match mode {
            RelayServer::Auto => Self::Auto,
            RelayServer::On => Self::On,
            RelayServer::Off => Self::Off,
        }
    }
}

/// Fault injection choices of `--fault-inject`.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum Fault {
    None,
    WrongOutput,
    Colluding,
}

impl Fault {
    fn with_probability(self, p: f64) -> cairn_node::market::FaultInjection {
        use cairn_node::market::FaultInjection;
        match self {
            Fault::None => FaultInjection::None,
            Fault::WrongOutput if p < 1.0 => FaultInjection::WrongOutputSometimes {
                // `probability` keeps p in [0, 1], so this is at most 1000.
                per_mille: (p * 1000.0).round() as u16,
            },
            Fault::WrongOutput => FaultInjection::WrongOutput,
            Fault::Colluding => FaultInjection::ColludingWrongOutput,
        }
    }
}

/// Parses a probability in `[0, 1]`.
fn probability(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(p) if (0.0..=1.0).contains(&p) => Ok(p),
        _ => Err(format!("{text:?} is not a probability between 0 and 1")),
    }
}

/// The sandbox identity this node advertises: the wasmtime version and the fingerprint of
/// every setting that changes results or fuel counts, as the sandbox computes it.
fn runtime_identity() -> Result<String> {
    let sandbox = cairn_runtime::Sandbox::new(cairn_runtime::SandboxConfig::default())?;
    let identity = sandbox.identity();
    Ok(format!(
        "wasmtime-{}/{}",
        identity.wasmtime_version,
        identity.fingerprint_hex()
    ))
}

async fn run(options: NodeOptions) -> Result<ExitCode> {
    let running = Node::start(options).await?;
    let node = running.node();
    eprintln!("peer id: {}", node.peer_id());
    eprintln!("api:     http://{}", running.api_addr());
    // Listen addresses appear once the transports have bound; wait for them briefly.
    for _ in 0..50 {
        let addrs = node.net().listen_addrs().await.unwrap_or_default();
        if !addrs.is_empty() {
            for addr in addrs {
                eprintln!("listen:  {addr}/p2p/{}", node.peer_id());
            }
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot listen for SIGTERM")?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result.context("cannot wait for Ctrl-C")?,
        _ = terminate.recv() => {}
    }
    eprintln!("stopping");
    running.shutdown().await;
    Ok(ExitCode::SUCCESS)
}
