//! `cairn blob put|get`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};

use super::Cli;

/// Arguments of `cairn blob`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    command: BlobCommand,
}

#[derive(clap::Subcommand, Debug)]
enum BlobCommand {
    /// Store a file as a blob and announce it; prints its blake3 hash.
    Put {
        /// The file.
        file: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Fetch a blob by hash (from this node or any provider) and write it to a file.
    Get {
        /// The blob's blake3 hash (64 hex digits).
        hash: String,
        /// Where to write it.
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

impl Args {
    pub fn execute(&self, cli: &Cli) -> Result<ExitCode> {
        let client = cli.client()?;
        match &self.command {
            BlobCommand::Put { file, json } => {
                let bytes = std::fs::read(file)
                    .with_context(|| format!("cannot read {}", file.display()))?;
                let answer: serde_json::Value = client.post_bytes("/v1/blobs", &bytes)?;
                if *json {
                    super::print_json(&answer)?;
                } else {
                    println!("{}", answer["hash"].as_str().unwrap_or("?"));
                }
            }
            BlobCommand::Get { hash, output, json } => {
                let expected: cairn_protocol::BlobHash = hash.parse().context("not a blob hash")?;
                let bytes = client.get_bytes(&format!("/v1/blobs/{expected}"))?;
                // The node verified it; check again, since the bytes crossed a socket.
                anyhow::ensure!(
                    cairn_protocol::BlobHash::of(&bytes) == expected,
                    "received bytes do not match {expected}"
                );
                std::fs::write(output, &bytes)
                    .with_context(|| format!("cannot write {}", output.display()))?;
                if *json {
                    super::print_json(&serde_json::json!({
                        "hash": expected.to_string(),
                        "file": output,
                        "bytes": bytes.len(),
                    }))?;
                } else {
                    eprintln!("wrote {} bytes to {}", bytes.len(), output.display());
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
