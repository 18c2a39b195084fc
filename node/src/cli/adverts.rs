//! `cairn adverts`.

use std::process::ExitCode;

use anyhow::Result;
use cairn_node::api::AdvertView;

use super::Cli;

/// Arguments of `cairn adverts`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Only nodes with a GPU.
    #[arg(long)]
    gpu: bool,
    /// Only nodes with a GPU of at least this much memory (bytes, or like 24GB / 80GiB).
    #[arg(long, value_name = "BYTES", value_parser = parse_size)]
    min_vram: Option<u64>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

fn parse_size(text: &str) -> Result<u64, String> {
    cairn_node::gpu::parse_bytes(text).ok_or_else(|| format!("{text:?} is not a size like 24GB"))
}

impl Args {
    pub fn execute(&self, cli: &Cli) -> Result<ExitCode> {
        let mut path = format!("/v1/adverts?gpu={}", self.gpu);
        if let Some(v) = self.min_vram {
            path.push_str(&format!("&min_vram={v}"));
        }
        let adverts: Vec<AdvertView> = cli.client()?.get_json(&path)?;
        if self.json {
            super::print_json(&adverts)?;
            return Ok(ExitCode::SUCCESS);
        }
        if adverts.is_empty() {
            println!("no matching adverts");
        }
        for a in adverts {
            let gpus: Vec<String> = a
                .gpus
                .iter()
                .map(|g| {
                    format!(
                        "{}x {} {:.0}GB sm{}",
                        g.count,
                        g.model,
                        g.vram_bytes as f64 / 1e9,
                        g.compute_capability
                    )
                })
                .collect();
            let gpus = if gpus.is_empty() {
                "cpu only".to_owned()
            } else {
                gpus.join(", ")
            };
            let sim = if a.simulated_gpus { " (simulated)" } else { "" };
            println!("{}  {} cores  {gpus}{sim}", a.peer_id, a.cpu_cores);
        }
        Ok(ExitCode::SUCCESS)
    }
}
