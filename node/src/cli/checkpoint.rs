//! `cairn checkpoint`: reputation checkpoints and offline proofs.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use cairn_node::api::checkpoints::{CheckpointList, CheckpointView};
use cairn_node::config::NetworkSpec;
use cairn_node::config::network_rules;
use cairn_protocol::proof::{self, MAX_PROOF_BYTES, ReputationProof};
use serde_json::json;

use super::Cli;

/// Arguments of `cairn checkpoint`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// List the checkpoints the node finalised, with their anchors.
    List(ListArgs),
    /// Show one checkpoint: roots, proposer, signers, next committee, anchor.
    Show(ShowArgs),
    /// Write a proof of a peer's reputation at an epoch to a file, for `verify`.
    Prove(ProveArgs),
    /// Verify a reputation proof file offline: committee signatures and threshold, the chain
    /// of checkpoints back to the network spec, the peer's Merkle path, and, when the network
    /// anchors, the OP_RETURN payload, the transaction's inclusion, the header chain's proof of
    /// work and the confirmations. Exits 1 naming the failed check.
    Verify(VerifyArgs),
}

#[derive(clap::Args, Debug)]
struct ListArgs {
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args, Debug)]
struct ShowArgs {
    /// The epoch.
    epoch: u64,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args, Debug)]
struct ProveArgs {
    /// The peer: its node id (hex).
    peer: String,
    /// Epoch of the score to prove. Default: the latest this node can prove.
    #[arg(long)]
    epoch: Option<u64>,
    /// Output file.
    #[arg(short, long, value_name = "FILE")]
    output: PathBuf,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args, Debug)]
struct VerifyArgs {
    /// The proof file (from `cairn checkpoint prove`).
    file: PathBuf,
    /// The network to verify against: a spec file or a shipped network's name (`testnet`).
    /// Default: the built-in `local` network.
    #[arg(long, value_name = "NAME|FILE")]
    network: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

impl Args {
    pub fn execute(&self, cli: &Cli) -> Result<ExitCode> {
        match &self.command {
            Command::List(args) => args.execute(cli),
            Command::Show(args) => args.execute(cli),
            Command::Prove(args) => args.execute(cli),
            Command::Verify(args) => args.execute(),
        }
    }
}

impl ListArgs {
    fn execute(&self, cli: &Cli) -> Result<ExitCode> {
        let list: CheckpointList = cli.client()?.get_json("/v1/checkpoints")?;
        if self.json {
            super::print_json(&list)?;
            return Ok(ExitCode::SUCCESS);
        }
        let label = match list.backend.as_str() {
            "none" => "not anchored (backend none)".to_owned(),
            "simulated" => "SIMULATED chain (tests only, secures nothing)".to_owned(),
            _ => format!(
                "{} via {}{}",
                list.chain,
                list.backend,
                trust_note(&list.chain)
            ),
        };
        println!(
            "{} finalised, {} anchored; anchoring: {label}",
            list.finalised, list.anchored
        );
        for c in &list.checkpoints {
            let anchor = c.anchor.as_ref().map_or_else(
                || "not anchored".to_owned(),
                |a| format!("anchored on {} ({} conf)", a.chain, a.depth),
            );
            println!(
                "epoch {:>5}  {}  {} leaves  {} signers  {anchor}",
                c.epoch,
                c.hash,
                c.leaf_count,
                c.signers.len()
            );
        }
        Ok(ExitCode::SUCCESS)
    }
}

impl ShowArgs {
    fn execute(&self, cli: &Cli) -> Result<ExitCode> {
        let c: CheckpointView = cli
            .client()?
            .get_json(&format!("/v1/checkpoints/{}", self.epoch))?;
        if self.json {
            super::print_json(&c)?;
            return Ok(ExitCode::SUCCESS);
        }
        println!("epoch          {}", c.epoch);
        println!("hash           {}", c.hash);
        println!("previous       {}", c.previous);
        println!(
            "leaves         {} (root {})",
            c.leaf_count, c.reputation_root
        );
        println!("verdicts root  {}", c.verdict_root);
        println!("proposer       {}", c.proposer);
        println!("signers        {}", c.signers.join(", "));
        println!("next committee {}", c.next_committee.join(", "));
        match &c.anchor {
            Some(a) => println!("anchor         on {} ({} confirmations)", a.chain, a.depth),
            None => println!("anchor         none yet"),
        }
        Ok(ExitCode::SUCCESS)
    }
}

impl ProveArgs {
    fn execute(&self, cli: &Cli) -> Result<ExitCode> {
        let query = self
            .epoch
            .map_or_else(String::new, |e| format!("?epoch={e}"));
        let bytes = cli
            .client()?
            .get_bytes(&format!("/v1/proofs/{}{query}", self.peer))?;
        std::fs::write(&self.output, &bytes)
            .with_context(|| format!("cannot write {}", self.output.display()))?;
        if self.json {
            let proof = ReputationProof::from_bytes(&bytes)?;
            super::print_json(&json!({
                "file": self.output,
                "bytes": bytes.len(),
                "peer": proof.leaf.peer.to_string(),
                "score": proof.leaf.score,
                "evidence_count": proof.leaf.evidence_count,
                "epoch": proof.epoch,
            }))?;
            return Ok(ExitCode::SUCCESS);
        }
        println!("wrote {} ({} bytes)", self.output.display(), bytes.len());
        if let Ok(proof) = ReputationProof::from_bytes(&bytes) {
            let leaf = &proof.leaf;
            println!(
                "peer {}: score {} ({} verdicts), balance {} credits at epoch {}",
                leaf.peer, leaf.score, leaf.evidence_count, leaf.balance, proof.epoch
            );
        }
        Ok(ExitCode::SUCCESS)
    }
}

impl VerifyArgs {
    fn execute(&self) -> Result<ExitCode> {
        let spec = match &self.network {
            Some(path) => NetworkSpec::resolve(path)?,
            None => NetworkSpec::default(),
        };
        let rules = network_rules(&spec)?;
        let len = std::fs::metadata(&self.file)
            .with_context(|| format!("cannot read {}", self.file.display()))?
            .len();
        anyhow::ensure!(
            len <= MAX_PROOF_BYTES as u64,
            "{} is {len} bytes, above the {MAX_PROOF_BYTES}-byte limit for proof files",
            self.file.display()
        );
        let bytes = std::fs::read(&self.file)
            .with_context(|| format!("cannot read {}", self.file.display()))?;
        let result = ReputationProof::from_bytes(&bytes).and_then(|p| proof::verify(&p, &rules));
        match result {
            Ok(v) => {
                self.print_ok(&v)?;
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                if self.json {
                    super::print_json(
                        &json!({"valid": false, "check": e.check(), "error": e.to_string()}),
                    )?;
                } else {
                    eprintln!("INVALID ({} check failed): {e}", e.check());
                }
                Ok(ExitCode::from(1))
            }
        }
    }

    fn print_ok(&self, v: &proof::Verification) -> Result<()> {
        let (chain, depth, txid) = match &v.anchor {
            Some(a) => (a.chain.clone(), Some(a.depth), Some(a.txid.clone())),
            None => ("not anchored".to_owned(), None, None),
        };
        if self.json {
            return super::print_json(&json!({
                "valid": true,
                "network": v.network,
                "peer": v.leaf.peer.to_string(),
                "score": v.leaf.score,
                "evidence_count": v.leaf.evidence_count,
                "balance": v.leaf.balance,
                "epoch": v.epoch,
                "anchored_epoch": v.tip_epoch,
                "chain": chain,
                "depth": depth,
                "txid": txid,
            }));
        }
        println!("valid proof for network {}", v.network);
        println!("peer    {}", v.leaf.peer);
        println!(
            "score   {} ({} verdicts)",
            v.leaf.score, v.leaf.evidence_count
        );
        println!("balance {} credits", v.leaf.balance);
        println!(
            "epoch   {} (chain checked up to epoch {})",
            v.epoch, v.tip_epoch
        );
        match (&v.anchor, depth) {
            (Some(a), Some(depth)) => {
                let label = trust_note(&a.chain);
                println!("chain   {}{label}", a.chain);
                println!("depth   {depth} confirmations (tx {})", a.txid);
            }
            _ => println!("chain   not anchored: the network spec anchors nowhere"),
        }
        Ok(())
    }
}

/// What an anchor on `chain` is worth, for display.
fn trust_note(chain: &str) -> &'static str {
    if chain == "simulated" {
        "  (SIMULATED chain: tests only, secures nothing)"
    } else if chain.starts_with("liquid") || chain.starts_with("elements") {
        "  (federation-signed, not proof-of-work secured)"
    } else if chain.ends_with("regtest") {
        "  (regtest: anyone can mine it, secures nothing)"
    } else {
        ""
    }
}
