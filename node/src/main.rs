//! The `cairn` command-line interface: thin wrappers over `cairn-node`, one module per
//! subcommand, each with an `execute()`.

mod cli;

use std::process::ExitCode;

use cairn_node::client::ClientError;
use cairn_node::config::ConfigError;
use clap::Parser;

fn main() -> ExitCode {
    // Under `--json` an error is JSON too, on stderr: `{"error": {"kind", "message"}}`.
    let json = std::env::args().any(|a| a == "--json");
    let args = match cli::Cli::try_parse() {
        Ok(args) => args,
        Err(e) if json && e.use_stderr() => return fail("usage", &e.to_string(), true),
        Err(e) => e.exit(),
    };
    match args.execute() {
        Ok(code) => code,
        Err(e) => fail(kind_of(&e), &format!("{e:#}"), json),
    }
}

/// Prints an error, as JSON under `--json`, and exits 2 (the command could not run).
fn fail(kind: &str, message: &str, json: bool) -> ExitCode {
    if json {
        let error = serde_json::json!({"error": {"kind": kind, "message": message.trim_end()}});
        eprintln!("{error}");
    } else {
        eprintln!("error: {}", message.trim_end());
    }
    ExitCode::from(2)
}

/// A stable word for what went wrong, for scripts: `no_node` (nothing answers in the data
/// dir), `unreachable`, the node's own error kind (`not_found`, `bad_request`, ...),
/// `bad_answer`, `config`, `io`, or `failed` for anything else.
fn kind_of(e: &anyhow::Error) -> &str {
    for cause in e.chain() {
        if let Some(c) = cause.downcast_ref::<ClientError>() {
            return match c {
                ClientError::NoNode { .. } => "no_node",
                ClientError::Unreachable { .. } => "unreachable",
                ClientError::Api { kind, .. } => kind,
                _ => "bad_answer",
            };
        }
        if cause.downcast_ref::<ConfigError>().is_some() {
            return "config";
        }
        if cause.downcast_ref::<std::io::Error>().is_some() {
            return "io";
        }
    }
    "failed"
}
