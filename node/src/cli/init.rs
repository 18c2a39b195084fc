//! `cairn init`.

use std::process::ExitCode;

use anyhow::{Context, Result};
use cairn_node::config::NodeConfig;
use cairn_node::store::SledStore;

use super::Cli;

/// Arguments of `cairn init`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

impl Args {
    pub fn execute(&self, cli: &Cli) -> Result<ExitCode> {
        let dir = cli.data_dir();
        let outcome = init(&dir)?;
        if self.json {
            super::print_json(&outcome)?;
        } else {
            println!("data dir:  {}", dir.display());
            println!("peer id:   {}", outcome.peer_id);
            println!(
                "config:    {} ({})",
                outcome.config,
                if outcome.created_config {
                    "created"
                } else {
                    "kept"
                }
            );
            println!("next:      cairn node --data-dir {}", dir.display());
        }
        Ok(ExitCode::SUCCESS)
    }
}

#[derive(serde::Serialize)]
pub struct InitOutcome {
    pub peer_id: String,
    pub config: String,
    pub created_config: bool,
}

/// Creates the data dir, identity and config where missing; never overwrites either.
pub fn init(dir: &std::path::Path) -> Result<InitOutcome> {
    cairn_node::files::create_private_dir(dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let store = SledStore::open(&dir.join("db"), 8 << 20)?;
    let keypair = cairn_node::identity::load_or_create(dir, &store, None)?;
    let peer_id = libp2p::identity::Keypair::from(keypair)
        .public()
        .to_peer_id();
    let config = dir.join("config.toml");
    let created_config = !config.exists();
    if created_config {
        std::fs::write(&config, NodeConfig::default().commented_toml())
            .with_context(|| format!("cannot write {}", config.display()))?;
    }
    Ok(InitOutcome {
        peer_id: peer_id.to_string(),
        config: config.display().to_string(),
        created_config,
    })
}
