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
        print_nat(&status.nat);
        Ok(ExitCode::SUCCESS)
    }
}

fn print_nat(nat: &cairn_node::net::NatInfo) {
    match &nat.public_addr {
        Some(addr) => println!("nat:      {} ({addr})", nat.status),
        None => println!("nat:      {}", nat.status),
    }
    for relay in &nat.reservations {
        println!("relay:    reserved on {relay}");
    }
    if nat.relay_serving {
        println!("relaying: for {} peer(s)", nat.relayed_peers);
    }
    println!(
        "punching: {} direct upgrade(s), {} failed",
        nat.hole_punches_succeeded, nat.hole_punches_failed
    );
}
