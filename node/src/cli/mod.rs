//! Argument parsing and dispatch: one module per subcommand, each with an `execute()`.
//!
//! Exit statuses: 0 success, 1 the job (or operation) failed, 2 the command could not run
//! (bad arguments, unreadable files).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod run;

/// Cairn: a peer-to-peer compute network node.
#[derive(Debug, Parser)]
#[command(name = "cairn", version, about, propagate_version = true)]
pub struct Cli {
    /// Options shared by every subcommand.
    #[command(flatten)]
    global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    command: Command,
}

/// Options shared by every subcommand.
#[derive(Debug, clap::Args)]
pub struct GlobalArgs {
    /// The node's data folder (identity, config, store). Default: `$HOME/.cairn`.
    #[arg(long, global = true, env = "CAIRN_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

impl GlobalArgs {
    /// The data folder: `--data-dir`, `CAIRN_DATA_DIR`, or `$HOME/.cairn` (`./.cairn` when
    /// there is no home folder).
    #[allow(dead_code)] // used by the subcommands that keep state (`node`, `job`, ...)
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(|| {
            let home = std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_default();
            home.join(".cairn")
        })
    }
}

/// The subcommands.
#[derive(Debug, Subcommand)]
enum Command {
    /// Run a WebAssembly module in the local sandbox, with no network.
    Run(run::RunArgs),
}

impl Command {
    fn execute(self, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
        match self {
            Command::Run(args) => args.execute(global),
        }
    }
}

/// Parses the command line, runs the subcommand and turns its result into an exit status.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.execute(&cli.global) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}
