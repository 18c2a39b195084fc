//! The `cairn-testnet` binary: local simulations (`sim`) and clusters (`up`, `down`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use cairn_testnet::jobs::JobMix;
use cairn_testnet::{SimConfig, cluster, html};
use clap::{Parser, Subcommand};

/// Local Cairn networks: many real nodes in one process, or a cluster of `cairn node`
/// processes on loopback.
#[derive(Parser, Debug)]
#[command(name = "cairn-testnet", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Start N real nodes in this process, submit jobs, and report what happened.
    Sim(Box<Sim>),
    /// Start N `cairn node` processes on loopback and return (they keep running).
    Up(Up),
    /// Stop the cluster that `up` started in a directory.
    Down(Down),
    /// Start one node of a cluster again (after it was killed), on its data dir as it was.
    Restart(Restart),
}

/// Exit status: 0 when every job ended and none was wrongly accepted, 1 otherwise, 2 on a
/// setup error.
#[derive(clap::Args, Debug)]
struct Sim {
    /// Nodes to start, each a full node (swarm, store, API) on 127.0.0.1.
    #[arg(long, default_value_t = 20)]
    nodes: usize,
    /// Jobs to submit (from one requester per 10 nodes, round robin).
    #[arg(long, default_value_t = 200)]
    jobs: usize,
    /// Providers that run each job; an output is accepted when a strict majority agree.
    #[arg(long, default_value_t = 3)]
    replicas: u8,
    /// Fraction (0 to 1) of the non-requester nodes that report wrong outputs.
    #[arg(long, default_value_t = 0.0, value_name = "FRACTION")]
    cheaters: f64,
    /// Cheaters collude: established members (every node is then a trust root) that all
    /// report the same wrong output instead of each their own.
    #[arg(long)]
    colluding: bool,
    /// Fraction (0 to 1) of the non-requester nodes that crash once during the run, at a
    /// seeded point between 10% and 60% of the submissions, and restart 2 s later on the same
    /// data dir.
    #[arg(long, default_value_t = 0.0, value_name = "R")]
    crash_rate: f64,
    /// Jobs to run: trivial (echo, wordcount), compute (hashloop, matmul), gpu (compute jobs
    /// that require a 16 GB, CC 8.0 GPU), or mixed.
    #[arg(long, value_enum, default_value_t = JobMix::Trivial)]
    job_mix: JobMix,
    /// Jobs in flight at once.
    #[arg(long, default_value_t = 32, value_name = "C")]
    concurrency: usize,
    /// Seed for node keys, machine profiles, cheaters, crashes and job inputs.
    #[arg(long, default_value_t = 1, value_name = "S")]
    seed: u64,
    /// Run an attacker next to the honest nodes, through one more node of its own: attacks on
    /// trust (`mint`, `slash`, `replay`, `capture`, `flood-adverts`) or on resources (the
    /// `flood-*` kinds: calls, awards, blobs, sync requests, connections). The report gains an
    /// `attack` object with what got through, and for floods the requests sent and refused.
    #[arg(long, value_enum, value_name = "KIND")]
    attack: Option<cairn_testnet::attack::AttackKind>,
    /// Identities the attacker holds (default: three times `--nodes`).
    #[arg(long, value_name = "K", requires = "attack")]
    sybils: Option<usize>,
    /// Print the report as one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Also write a self-contained HTML report (latency histograms, reputation over time).
    #[arg(long, value_name = "REPORT.html")]
    html: Option<PathBuf>,
    /// Keep every node's data dir as DIR/node0, DIR/node1, ..., and the network spec as
    /// DIR/network.toml: `cairn --data-dir DIR/node0 node` restarts a node on the simulation's
    /// network, and its proofs verify with `cairn checkpoint verify --network DIR/network.toml`.
    #[arg(long, value_name = "DIR")]
    keep: Option<PathBuf>,
    /// Give up (exit status 1) if the jobs have not all ended after this many seconds.
    #[arg(long, default_value_t = 600, value_name = "SECS")]
    timeout: u64,
    /// Reputation checkpoint epoch in ms, anchored on an in-process SIMULATED chain (real
    /// regtest blocks, no real coins); 0 turns checkpoints off. Default: 1000, or 25 ms per
    /// node above 40 nodes (every epoch's proposal, votes and receipt reach every node).
    #[arg(long, value_name = "MS")]
    epoch_ms: Option<u64>,
    /// Simulated link latency: each node waits this long before every market and blob request
    /// it sends (gossip and the DHT are not delayed).
    #[arg(long, default_value_t = 0, value_name = "M")]
    latency_ms: u64,
    /// Jobs in a thousand that secretly get one extra replica (requesters' verification).
    #[arg(long, default_value_t = 50, value_name = "N", value_parser = clap::value_parser!(u16).range(0..=1000))]
    hidden_replica_per_mille: u16,
    /// Jobs in a thousand whose agreed output is audited by an established provider.
    #[arg(long, default_value_t = 50, value_name = "N", value_parser = clap::value_parser!(u16).range(0..=1000))]
    audit_per_mille: u16,
    /// Adaptive audits: an outcome whose least-proven agreeing provider has score S is
    /// audited with probability at least SCALE / (SCALE + S); 0 turns them off.
    #[arg(long, default_value_t = 3, value_name = "SCALE")]
    audit_scale: u32,
    /// No progress lines on stderr.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(clap::Args, Debug)]
struct Up {
    /// Nodes to start.
    #[arg(long, default_value_t = 5)]
    nodes: usize,
    /// Cluster directory: network.toml, pids, and one data dir per node (node0, node1, ...).
    #[arg(long, default_value = "cairn-cluster", value_name = "DIR")]
    dir: PathBuf,
    /// The `cairn` binary. Default: $CAIRN_BIN, else the one next to this executable.
    #[arg(long, value_name = "PATH")]
    cairn: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
struct Down {
    /// The cluster directory given to `up`.
    #[arg(long, default_value = "cairn-cluster", value_name = "DIR")]
    dir: PathBuf,
}

#[derive(clap::Args, Debug)]
struct Restart {
    /// The cluster directory given to `up`.
    #[arg(long, default_value = "cairn-cluster", value_name = "DIR")]
    dir: PathBuf,
    /// The node's number (its data dir is DIR/nodeN).
    #[arg(long, value_name = "N")]
    node: usize,
    /// Where it listens, e.g. /ip4/127.0.0.1/tcp/4011. Default: any free loopback port (most
    /// likely not the one it had).
    #[arg(long, value_name = "MULTIADDR")]
    listen: Option<String>,
    /// The `cairn` binary. Default: $CAIRN_BIN, else the one next to this executable.
    #[arg(long, value_name = "PATH")]
    cairn: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Sim(sim) => sim.execute(),
        Cmd::Up(up) => up.execute(),
        Cmd::Down(down) => down.execute(),
        Cmd::Restart(restart) => restart.execute(),
    };
    result.unwrap_or_else(|e| {
        eprintln!("cairn-testnet: error: {e:#}");
        ExitCode::from(2)
    })
}

impl Sim {
    fn config(&self) -> SimConfig {
        SimConfig {
            nodes: self.nodes,
            jobs: self.jobs,
            replicas: self.replicas,
            cheaters: self.cheaters,
            colluding: self.colluding,
            crash_rate: self.crash_rate,
            job_mix: self.job_mix,
            concurrency: self.concurrency,
            seed: self.seed,
            keep: self.keep.clone(),
            progress: !self.quiet,
            timeout: Duration::from_secs(self.timeout),
            checkpoint_epoch: {
                let nodes = u64::try_from(self.nodes).unwrap_or(u64::MAX);
                let epoch_ms = self
                    .epoch_ms
                    .unwrap_or_else(|| nodes.saturating_mul(25).max(1000));
                (epoch_ms > 0).then(|| Duration::from_millis(epoch_ms))
            },
            verification: cairn_node::config::VerificationConfig {
                hidden_replica_per_mille: self.hidden_replica_per_mille,
                audit_per_mille: self.audit_per_mille,
                audit_scale: self.audit_scale,
                ..Default::default()
            },
            latency: Duration::from_millis(self.latency_ms),
            attack: self.attack,
            sybils: self.sybils.unwrap_or(3 * self.nodes),
        }
    }

    fn execute(&self) -> Result<ExitCode> {
        let config = self.config();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        let outcome = runtime.block_on(cairn_testnet::run(&config))?;
        // Node tasks still winding down must not keep the process alive.
        runtime.shutdown_timeout(Duration::from_secs(5));
        let report = &outcome.report;
        if self.json {
            println!("{}", serde_json::to_string(report)?);
        } else {
            print!("{}", report.human());
        }
        if let Some(path) = &self.html {
            std::fs::write(path, html::page(&outcome))
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!("wrote {}", path.display());
        }
        if !report.finished {
            eprintln!(
                "cairn-testnet: the run did not finish: {} of {} jobs still running after {} s",
                report.unfinished, report.jobs, self.timeout
            );
        }
        if report.wrongly_accepted > 0 {
            eprintln!(
                "cairn-testnet: {} jobs were accepted with a wrong output",
                report.wrongly_accepted
            );
        }
        Ok(if report.success() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        })
    }
}

impl Up {
    fn execute(&self) -> Result<ExitCode> {
        let cairn = cluster::find_cairn(self.cairn.as_deref())?;
        let nodes = cluster::up(&cairn, &self.dir, self.nodes)?;
        let dir = self.dir.display();
        println!(
            "started {} cairn nodes in {dir} (network spec {dir}/network.toml):",
            nodes.len()
        );
        for n in &nodes {
            println!(
                "  node{}: pid {}, {} adverts held, {}",
                n.index, n.pid, n.adverts, n.address
            );
        }
        let bin = cairn.display();
        println!("point the CLI at a node with --data-dir, e.g.:");
        println!("  {bin} --data-dir {dir}/node0 status");
        println!("  {bin} --data-dir {dir}/node1 peers");
        println!(
            "  {bin} --data-dir {dir}/node0 job submit JOB.wasm --input IN --replicas 3 --wait -o out.bin"
        );
        println!("join from another node: {bin} node --network {dir}/network.toml");
        println!("stop: cairn-testnet down --dir {dir}");
        Ok(ExitCode::SUCCESS)
    }
}

impl Restart {
    fn execute(&self) -> Result<ExitCode> {
        let cairn = cluster::find_cairn(self.cairn.as_deref())?;
        let n = cluster::restart(&cairn, &self.dir, self.node, self.listen.as_deref())?;
        println!("restarted node{}: pid {}, {}", n.index, n.pid, n.address);
        Ok(ExitCode::SUCCESS)
    }
}

impl Down {
    fn execute(&self) -> Result<ExitCode> {
        let stopped = cluster::down(&self.dir)?;
        if stopped.is_empty() {
            println!("no node of {} was still running", self.dir.display());
        }
        for s in &stopped {
            let how = if s.killed { "SIGKILL" } else { "SIGTERM" };
            println!("stopped node{} (pid {}) with {how}", s.index, s.pid);
        }
        Ok(ExitCode::SUCCESS)
    }
}
