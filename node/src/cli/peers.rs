//! `cairn peers`.

use std::process::ExitCode;

use anyhow::Result;

use super::Cli;

/// Arguments of `cairn peers`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Print JSON: a list of objects with `peer_id`, `addresses`, `agent` and
    /// `relayed`.
    #[arg(long)]
    json: bool,
}

impl Args {
    pub fn execute(&self, cli: &Cli) -> Result<ExitCode> {
        let peers: serde_json::Value = cli.client()?.get_json("/v1/peers")?;
        if self.json {
            super::print_json(&peers)?;
            return Ok(ExitCode::SUCCESS);
        }
        let list = peers.as_array().cloned().unwrap_or_default();
        if list.is_empty() {
            println!("no peers connected");
        }
        for peer in list {
            let agent = peer["agent"].as_str().unwrap_or("-");
            let via = if peer["relayed"] == true {
                "  (relayed)"
            } else {
                ""
            };
            println!("{}  {agent}{via}", peer["peer_id"].as_str().unwrap_or("?"));
        }
        Ok(ExitCode::SUCCESS)
    }
}
