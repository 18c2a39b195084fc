//! `cairn lookup`.

use std::process::ExitCode;

use anyhow::Result;

use super::Cli;

/// Arguments of `cairn lookup`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Capability class: cpu, gpu, gpu:sm90, gpu:vram>=80GB, ...
    class: String,
    /// Print JSON (a list of peer ids).
    #[arg(long)]
    json: bool,
}

impl Args {
    pub fn execute(&self, cli: &Cli) -> Result<ExitCode> {
        let class = self.class.replace('>', "%3E").replace('=', "%3D");
        let peers: Vec<String> = cli.client()?.get_json(&format!("/v1/lookup/{class}"))?;
        if self.json {
            super::print_json(&peers)?;
        } else if peers.is_empty() {
            println!("no providers of {}", self.class);
        } else {
            peers.iter().for_each(|p| println!("{p}"));
        }
        Ok(ExitCode::SUCCESS)
    }
}
