//! Subcommands of `cairn`.

mod adverts;
mod blob;
mod checkpoint;
mod completions;
mod gpu;
mod init;
mod job;
mod lookup;
mod node;
mod peers;
mod rep;
mod run;
mod status;
mod wallet;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use cairn_node::client::Client;
use clap::{Parser, Subcommand};

/// Cairn: a peer-to-peer compute network node.
#[derive(Parser, Debug)]
#[command(
    name = "cairn",
    version,
    about,
    propagate_version = true,
    after_help = "Exit status: 0 success; 1 the job or operation failed (a failed job, a proof \
                  that does not verify); 2 the command could not run (bad arguments, unreadable \
                  files, no node to talk to). Under --json an error is one JSON object on \
                  stderr: {\"error\": {\"kind\", \"message\"}}.\n\
                  Environment: CAIRN_DATA_DIR, CAIRN_API, CAIRN_API_TOKEN, CAIRN_NETWORK \
                  (cairn node), CAIRN_LOG (cairn node's log filter)."
)]
pub struct Cli {
    /// Data directory (identity, config, database, API token).
    /// Default: $CAIRN_DATA_DIR, else $XDG_DATA_HOME/cairn, else ~/.local/share/cairn.
    #[arg(long, global = true, env = "CAIRN_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Control API address: where `cairn node` serves it, or where other commands reach it.
    /// Default: from the data dir (api.addr), else the config's `api` (127.0.0.1:4740).
    #[arg(long, global = true, env = "CAIRN_API", value_name = "ADDR")]
    pub api: Option<String>,
    /// API token. Default: api.token in the data dir.
    #[arg(
        long,
        global = true,
        env = "CAIRN_API_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
    #[command(subcommand)]
    command: Command,
}

// Exit statuses: 0 success, 1 the job (or operation) failed, 2 the command could not run
// (bad arguments, unreadable files, no node to talk to).

#[derive(Subcommand, Debug)]
enum Command {
    /// Create an identity and a commented config in the data dir.
    Init(init::Args),
    /// Run a node: join the network, advertise this machine, serve blobs and the API.
    Node(node::Args),
    /// Show what this machine would advertise (GPUs, CPU, memory).
    Gpu(gpu::Args),
    /// Show the running node's status.
    Status(status::Args),
    /// List connected peers.
    Peers(peers::Args),
    /// List capability adverts the node holds.
    Adverts(adverts::Args),
    /// Find providers of a capability class in the DHT (cpu, gpu, gpu:sm90, gpu:vram>=80GB).
    Lookup(lookup::Args),
    /// Store and fetch content-addressed blobs.
    Blob(blob::Args),
    /// Submit jobs to the network and follow them.
    Job(job::Args),
    /// Show the reputation table this node computed from the verdicts it checked.
    Rep(rep::Args),
    /// Run a WebAssembly module in the local sandbox, with no network.
    Run(run::RunArgs),
    /// Reputation checkpoints: list, show, prove a peer's score, verify a proof offline.
    Checkpoint(checkpoint::Args),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(completions::CompletionArgs),
    /// Print the man page (roff).
    Man(completions::ManArgs),
    /// Show this node's credits: balance, escrow for running jobs, and payments by job.
    Wallet(wallet::Args),
}

impl Cli {
    /// Runs the chosen subcommand.
    pub fn execute(self) -> Result<ExitCode> {
        match &self.command {
            Command::Init(args) => args.execute(&self),
            Command::Node(args) => args.execute(&self),
            Command::Gpu(args) => args.execute(),
            Command::Status(args) => args.execute(&self),
            Command::Peers(args) => args.execute(&self),
            Command::Adverts(args) => args.execute(&self),
            Command::Lookup(args) => args.execute(&self),
            Command::Blob(args) => args.execute(&self),
            Command::Job(args) => args.execute(&self),
            Command::Rep(args) => args.execute(&self),
            Command::Run(args) => args.execute(),
            Command::Checkpoint(args) => args.execute(&self),
            Command::Completions(args) => args.execute(),
            Command::Man(args) => args.execute(),
            Command::Wallet(args) => args.execute(&self),
        }
    }

    /// The data dir in effect.
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir
            .clone()
            .unwrap_or_else(cairn_node::config::default_data_dir)
    }

    /// A client of the running node.
    pub fn client(&self) -> Result<Client> {
        let dir = self.data_dir();
        let from_dir = Client::from_data_dir(&dir);
        Ok(match (&self.api, &self.token) {
            (Some(api), Some(token)) => Client::new(api, token),
            (Some(api), None) => {
                let token = std::fs::read_to_string(dir.join(cairn_node::api::TOKEN_FILE))
                    .map_err(|_| anyhow::anyhow!("no API token: pass --token or --data-dir"))?;
                Client::new(api, &token)
            }
            _ => from_dir?,
        })
    }
}

/// Prints `value` as pretty JSON.
fn print_json(value: &impl serde::Serialize) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}
