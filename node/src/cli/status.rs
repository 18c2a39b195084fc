//! `cairn status`.

use std::process::ExitCode;

use anyhow::Result;
use cairn_node::api::StatusView;

use super::Cli;

/// Arguments of `cairn status`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

impl Args {
    pub fn execute(&self, cli: &Cli) -> Result<ExitCode> {
        let status: StatusView = cli.client()?.get_json("/v1/status")?;
        if self.json {
            super::print_json(&status)?;
            return Ok(ExitCode::SUCCESS);
        }
        println!("peer id:  {}", status.peer_id);
        println!("network:  {}", status.network);
        for addr in &status.listen_addrs {
            println!("listen:   {addr}");
        }
        println!("peers:    {}", status.peers);
        println!("adverts:  {}", status.adverts);
        println!("blobs:    {} ({} bytes)", status.blobs, status.blob_bytes);
        println!("version:  {}", status.version);
        Ok(ExitCode::SUCCESS)
    }
}
