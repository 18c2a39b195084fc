//! `cairn wallet`.

use std::process::ExitCode;

use anyhow::Result;
use cairn_node::api::wallet::{BalanceView, WalletView};

use super::Cli;

/// Arguments of `cairn wallet`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Show another identity's balance in this node's book instead (peer id or node id).
    peer: Option<String>,
    /// Print JSON: `enabled`, `balance`, `escrowed`, `available`, `supply` and `payments`
    /// (each with `job`, `direction` paid|received, `amount`, `owed`, `bonus`).
    #[arg(long)]
    json: bool,
}

impl Args {
    pub fn execute(&self, cli: &Cli) -> Result<ExitCode> {
        let client = cli.client()?;
        if let Some(peer) = &self.peer {
            let b: BalanceView = client.get_json(&format!("/v1/balances/{peer}"))?;
            if self.json {
                super::print_json(&b)?;
            } else {
                println!("{}  {} credits", b.node_id, b.balance);
            }
            return Ok(ExitCode::SUCCESS);
        }
        let w: WalletView = client.get_json("/v1/wallet")?;
        if self.json {
            super::print_json(&w)?;
            return Ok(ExitCode::SUCCESS);
        }
        if !w.enabled {
            println!(
                "network {} does not use credits (its spec has no [credits] section): jobs are free",
                w.network
            );
            return Ok(ExitCode::SUCCESS);
        }
        println!("node:       {}", w.node_id);
        println!("balance:    {} credits", w.balance);
        println!("escrowed:   {} (held for running jobs)", w.escrowed);
        println!("available:  {}", w.available);
        if w.payments.is_empty() {
            println!("payments:   none yet");
            if w.balance == 0 {
                println!("{}", w.how_to_get_credits);
            }
        } else {
            println!("payments:");
        }
        for p in &w.payments {
            let sign = if p.direction == "paid" { '-' } else { '+' };
            let bonus = if p.bonus > 0 {
                format!(" (bonus {})", p.bonus)
            } else {
                String::new()
            };
            println!(
                "  {sign}{:<10} {}  job {}{bonus}",
                p.amount, p.direction, p.job
            );
        }
        Ok(ExitCode::SUCCESS)
    }
}
