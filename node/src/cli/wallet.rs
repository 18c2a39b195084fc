//! `cairn wallet`.

use std::process::ExitCode;

use anyhow::Result;
use cairn_node::api::wallet::{BalanceView, GrantRequest, GrantView, WalletView};

use super::Cli;

/// Arguments of `cairn wallet`.
#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    command: Option<WalletCommand>,
    /// Show another identity's balance in this node's book instead (peer id or node id).
    peer: Option<String>,
    /// Print JSON: `enabled`, `balance`, `escrowed`, `available`, `supply` and `payments`
    /// (each with `job`, `direction` paid|received, `amount`, `owed`, `bonus`).
    #[arg(long)]
    json: bool,
}

#[derive(clap::Subcommand, Debug)]
enum WalletCommand {
    /// As this network's faucet (the identity its spec names), grant credits to an identity:
    /// never above the faucet's per-identity cap, never beyond its pool.
    Grant {
        /// Who receives them (peer id or node id).
        recipient: String,
        /// Credits to grant.
        amount: u64,
        /// Print JSON: `recipient`, `asked`, `credited`, `balance`.
        #[arg(long)]
        json: bool,
    },
}

impl Args {
    pub fn execute(&self, cli: &Cli) -> Result<ExitCode> {
        let client = cli.client()?;
        if let Some(WalletCommand::Grant {
            recipient,
            amount,
            json,
        }) = &self.command
        {
            let body = GrantRequest {
                recipient: recipient.clone(),
                amount: *amount,
            };
            let g: GrantView = client.post_json("/v1/faucet/grants", &body)?;
            if *json {
                super::print_json(&g)?;
            } else {
                println!(
                    "granted {} of {} credits to {}; its balance is now {}",
                    g.credited, g.asked, g.recipient, g.balance
                );
            }
            return Ok(ExitCode::SUCCESS);
        }
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
            let what = if p.direction == "granted" {
                "grant"
            } else {
                "job"
            };
            let bonus = if p.bonus > 0 {
                format!(" (bonus {})", p.bonus)
            } else {
                String::new()
            };
            println!(
                "  {sign}{:<10} {}  {what} {}{bonus}",
                p.amount, p.direction, p.job
            );
        }
        Ok(ExitCode::SUCCESS)
    }
}
