//! `cairn rep`.

use std::process::ExitCode;

use anyhow::Result;
use cairn_node::api::ReputationView;

use super::Cli;

/// Arguments of `cairn rep`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Only this peer (peer id or node id).
    peer: Option<String>,
    /// Print JSON: a list of objects with `peer`, `score`, `agreed`, `dissented`, `timed_out`.
    #[arg(long)]
    json: bool,
}

impl Args {
    pub fn execute(&self, cli: &Cli) -> Result<ExitCode> {
        let mut table: Vec<ReputationView> = cli.client()?.get_json("/v1/reputation")?;
        if let Some(peer) = &self.peer {
            table.retain(|r| r.peer == *peer || r.node_id == *peer);
            anyhow::ensure!(
                !table.is_empty(),
                "no verdict this node has seen mentions {peer}"
            );
        }
        table.sort_by(|a, b| b.score.cmp(&a.score).then(a.peer.cmp(&b.peer)));
        if self.json {
            super::print_json(&table)?;
            return Ok(ExitCode::SUCCESS);
        }
        if table.is_empty() {
            println!("no verdicts seen yet");
        }
        for r in &table {
            let probation = if r.probation { "  (probation)" } else { "" };
            println!(
                "{}  score {:>5}  agreed {}  dissented {}  timed out {}{probation}",
                r.peer, r.score, r.agreed, r.dissented, r.timed_out
            );
        }
        Ok(ExitCode::SUCCESS)
    }
}
