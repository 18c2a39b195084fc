//! `cairn job submit|status|list|result|explain`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use cairn_node::api::jobs::{JobState, JobStatus, SubmitJob};
use cairn_node::client::Client;
use cairn_protocol::{JobRequest, Limits};

use super::Cli;

/// Arguments of `cairn job`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    command: JobCommand,
}

#[derive(clap::Subcommand, Debug)]
enum JobCommand {
    /// Submit a WebAssembly job to the network through the local node.
    Submit(Submit),
    /// Show a job's state.
    Status {
        /// Job id.
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the jobs this node submitted.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write a job's verified output to a file.
    Result {
        /// Job id.
        id: String,
        /// Where to write it.
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show the signed receipt of an accepted job.
    Receipt {
        /// Job id.
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Cancel a job that is still in its auction or running.
    Cancel {
        /// Job id.
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show a job's history: who was asked, who bid or declined, who won, who agreed.
    Explain {
        /// Job id.
        id: String,
        /// Print JSON (the job's status with its timed log).
        #[arg(long)]
        json: bool,
    },
}

/// Arguments of `cairn job submit`.
#[derive(clap::Args, Debug)]
struct Submit {
    /// The module (a WASI command exporting `_start`).
    #[arg(value_name = "MODULE.wasm")]
    module: PathBuf,
    /// The job's input (its stdin). Default: empty.
    #[arg(long, short, value_name = "FILE")]
    input: Option<PathBuf>,
    /// Argument passed to the module (repeatable).
    #[arg(long = "arg", value_name = "A", allow_hyphen_values = true)]
    args: Vec<String>,
    /// Providers that run the job in the first round.
    #[arg(long, default_value_t = JobRequest::DEFAULT_REPLICAS)]
    replicas: u8,
    /// Agreeing reports needed to accept an output.
    #[arg(long, default_value_t = JobRequest::DEFAULT_QUORUM)]
    quorum: u8,
    /// Fuel limit.
    #[arg(long, value_name = "N", default_value_t = Limits::DEFAULT.fuel)]
    fuel: u64,
    /// Memory limit in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = Limits::DEFAULT.memory_bytes)]
    memory: u64,
    /// Wall-clock limit of one run, in seconds (a safety net; fuel is the deterministic
    /// limit), as `cairn run --timeout`.
    #[arg(long, value_name = "SECS", default_value_t = Limits::DEFAULT.wall_time_ms as f64 / 1000.0)]
    timeout: f64,
    /// Output limit in bytes; a run that writes more fails with `output_too_large`.
    #[arg(long, value_name = "BYTES", default_value_t = Limits::DEFAULT.max_output_bytes)]
    max_output: u64,
    /// Only GPU providers.
    #[arg(long)]
    gpu: bool,
    /// Only providers with a GPU of at least this much memory (bytes, or like 24GB).
    #[arg(long, value_name = "BYTES", value_parser = parse_size)]
    min_vram: Option<u64>,
    /// Highest price per replica.
    #[arg(long, value_name = "N", default_value_t = JobRequest::DEFAULT_MAX_PRICE)]
    max_price: u64,
    /// Seconds until the job fails if not accepted.
    #[arg(long, value_name = "SECS", default_value_t = JobRequest::DEFAULT_DEADLINE_MS / 1000)]
    deadline: u64,
    /// Wait for the verdict, showing progress.
    #[arg(long)]
    wait: bool,
    /// With --wait: write the verified output here.
    #[arg(short, long, value_name = "OUT")]
    output: Option<PathBuf>,
    /// Print JSON: the job id; with --wait, one object a line for each phase and event,
    /// then `{"event": "finished", "status": ...}`.
    #[arg(long)]
    json: bool,
}

/// `--timeout` in whole milliseconds, at least one.
fn timeout_ms(secs: f64) -> Result<u64> {
    let limit = Duration::try_from_secs_f64(secs)
        .context("--timeout must be a non-negative number of seconds")?;
    Ok(u64::try_from(limit.as_millis()).unwrap_or(u64::MAX).max(1))
}

fn parse_size(text: &str) -> Result<u64, String> {
    cairn_node::gpu::parse_bytes(text).ok_or_else(|| format!("{text:?} is not a size like 24GB"))
}

/// Stores a job's blob on the node, not announced in the DHT: its providers fetch it from the
/// requester point to point, as on every other job path.
fn put(client: &Client, bytes: &[u8]) -> Result<String> {
    let answer: serde_json::Value = client.post_bytes("/v1/blobs?announce=false", bytes)?;
    answer["hash"]
        .as_str()
        .map(str::to_owned)
        .context("the node did not return a hash")
}

fn status(client: &Client, id: &str) -> Result<JobStatus> {
    Ok(client.get_json(&format!("/v1/jobs/{id}"))?)
}

/// Exit status of a finished job: 0 accepted with output, 1 otherwise.
fn exit_of(status: &JobStatus) -> ExitCode {
    if status.state == JobState::Accepted && status.output.is_some() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

impl Args {
    pub fn execute(&self, cli: &Cli) -> Result<ExitCode> {
        let client = cli.client()?;
        match &self.command {
            JobCommand::Submit(args) => args.execute(&client),
            JobCommand::Status { id, json } => {
                let s = status(&client, id)?;
                if *json {
                    super::print_json(&s)?;
                } else {
                    print_status(&s);
                }
                Ok(ExitCode::SUCCESS)
            }
            JobCommand::List { json } => {
                let jobs: Vec<JobStatus> = client.get_json("/v1/jobs")?;
                if *json {
                    super::print_json(&jobs)?;
                } else if jobs.is_empty() {
                    println!("no jobs submitted through this node");
                } else {
                    jobs.iter().for_each(|j| println!("{}  {}", j.id, j.state));
                }
                Ok(ExitCode::SUCCESS)
            }
            JobCommand::Result { id, output, json } => {
                let bytes = client.get_bytes(&format!("/v1/jobs/{id}/output"))?;
                std::fs::write(output, &bytes)
                    .with_context(|| format!("cannot write {}", output.display()))?;
                if *json {
                    super::print_json(&serde_json::json!({
                        "job": id,
                        "file": output,
                        "bytes": bytes.len(),
                        "digest": cairn_protocol::BlobHash::of(&bytes).to_string(),
                    }))?;
                } else {
                    eprintln!("wrote {} bytes to {}", bytes.len(), output.display());
                }
                Ok(ExitCode::SUCCESS)
            }
            JobCommand::Receipt { id, json } => {
                let r: cairn_node::api::jobs::ReceiptView =
                    client.get_json(&format!("/v1/jobs/{id}/receipt"))?;
                if *json {
                    super::print_json(&r)?;
                } else {
                    println!("job:        {}", r.job);
                    println!("signed by:  {}", r.requester);
                    println!("module:     {}", r.module);
                    println!("input:      {}", r.input);
                    println!("output:     {} ({} bytes)", r.output, r.output_size);
                    println!("fuel used:  {}", r.fuel_used);
                    println!("agreed:     {}", r.providers.join(", "));
                    if let Some(price) = r.price {
                        println!(
                            "price:      {price} credits at most (awards, for the fuel limit)"
                        );
                    }
                    match &r.payment {
                        Some(p) => println!(
                            "paid:       {} credits of {} owed, to {} providers",
                            p.amount, p.owed, p.providers
                        ),
                        None => println!(
                            "paid:       nothing recorded (a network without credits, or the verdict is not applied yet)"
                        ),
                    }
                }
                Ok(ExitCode::SUCCESS)
            }
            JobCommand::Cancel { id, json } => {
                let _: serde_json::Value =
                    client.post_json(&format!("/v1/jobs/{id}/cancel"), &serde_json::json!({}))?;
                if *json {
                    super::print_json(&serde_json::json!({"job": id, "cancelled": true}))?;
                } else {
                    println!("cancelled {id}");
                }
                Ok(ExitCode::SUCCESS)
            }
            JobCommand::Explain { id, json } => {
                let s = status(&client, id)?;
                if *json {
                    super::print_json(&s)?;
                    return Ok(ExitCode::SUCCESS);
                }
                let start = s.log.first().map_or(0, |e| e.0);
                for (at, what) in &s.log {
                    println!("+{:>6} ms  {what}", at.saturating_sub(start));
                }
                print_status(&s);
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}

fn print_status(s: &JobStatus) {
    println!("job:       {}", s.id);
    println!("state:     {}", s.state);
    if let Some(o) = &s.outcome {
        println!("outcome:   {o}");
    }
    if let Some(r) = &s.reason {
        println!("reason:    {r}");
    }
    if let Some(e) = &s.output_error {
        println!("output:    not fetched: {e}");
    }
    println!("providers: {}", s.providers.join(", "));
}

impl Submit {
    fn execute(&self, client: &Client) -> Result<ExitCode> {
        let module = std::fs::read(&self.module)
            .with_context(|| format!("cannot read {}", self.module.display()))?;
        let input = match &self.input {
            Some(path) => {
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?
            }
            None => Vec::new(),
        };
        let request = SubmitJob {
            module: put(client, &module)?,
            input: put(client, &input)?,
            args: self.args.clone(),
            replicas: self.replicas,
            quorum: self.quorum,
            max_replicas: None,
            fuel: self.fuel,
            memory: self.memory,
            wall_time_ms: timeout_ms(self.timeout)?,
            max_output: self.max_output,
            gpu: self.gpu,
            min_vram: self.min_vram,
            max_price: self.max_price,
            deadline_secs: self.deadline,
        };
        let answer: serde_json::Value = client.post_json("/v1/jobs", &request)?;
        let id = answer["job_id"]
            .as_str()
            .context("the node did not return a job id")?
            .to_owned();
        if !self.wait {
            if self.json {
                super::print_json(&answer)?;
            } else {
                println!("{id}");
            }
            return Ok(ExitCode::SUCCESS);
        }
        let final_status = wait(client, &id, self.deadline, self.json)?;
        if let (Some(path), Some(_)) = (&self.output, &final_status.output) {
            let bytes = client.get_bytes(&format!("/v1/jobs/{id}/output"))?;
            std::fs::write(path, &bytes)
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!(
                "wrote {} bytes of verified output to {}",
                bytes.len(),
                path.display()
            );
        }
        if self.json {
            // The last of the streamed events: one line, like the others.
            let done = serde_json::json!({"event": "finished", "status": final_status});
            println!("{done}");
        } else {
            print_status(&final_status);
        }
        Ok(exit_of(&final_status))
    }
}

/// Polls the job until it finishes. On a terminal a spinner line shows the phase, its time,
/// the providers and the job's latest event; otherwise each phase and each event of the job's
/// log (calls, bids and declines, awards, reports, the decision) is printed as a line when it
/// happens. With `json`, the same go to stdout as one JSON object a line
/// (`{"event": "phase", ...}`, `{"event": "log", ...}`), and the caller ends the stream with
/// `{"event": "finished", "status": ...}`.
fn wait(client: &Client, id: &str, deadline_secs: u64, json: bool) -> Result<JobStatus> {
    use std::io::{IsTerminal, Write};
    const SPINNER: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
    let tty = std::io::stderr().is_terminal();
    let start = Instant::now();
    let limit = Duration::from_secs(deadline_secs + 30);
    let (mut shown, mut phase_start, mut frame) = (String::new(), Instant::now(), 0usize);
    // The last log entry shown: the node keeps the latest entries only, so position alone
    // would miss events once the log is full.
    let mut last: Option<(u64, String)> = None;
    let mut origin: Option<u64> = None;
    loop {
        let s = status(client, id)?;
        let phase = match s.state {
            JobState::Accepted if !s.finished => "verifying".to_owned(),
            other => other.to_string(),
        };
        if phase != shown && json {
            let at = start.elapsed().as_millis();
            println!(
                "{}",
                serde_json::json!({"event": "phase", "phase": phase, "elapsed_ms": at})
            );
        }
        if phase != shown {
            if tty && !shown.is_empty() {
                eprintln!(
                    "\r\x1b[2K✓ {shown} ({:.1}s)",
                    phase_start.elapsed().as_secs_f64()
                );
            } else if !tty {
                eprintln!("[{:>6.1}s] {phase}", start.elapsed().as_secs_f64());
            }
            shown = phase.to_owned();
            phase_start = Instant::now();
        }
        if origin.is_none() {
            origin = s.log.first().map(|e| e.0);
        }
        let first = origin.unwrap_or(0);
        let new_from = last
            .as_ref()
            .and_then(|l| s.log.iter().rposition(|e| e == l))
            .map_or(0, |i| i + 1);
        for (at, what) in &s.log[new_from..] {
            let at_ms = at.saturating_sub(first);
            if json {
                println!(
                    "{}",
                    serde_json::json!({"event": "log", "at_ms": at_ms, "what": what})
                );
            } else if !tty {
                eprintln!("[{:>6.1}s]   {what}", at_ms as f64 / 1000.0);
            }
        }
        if let Some(entry) = s.log.last() {
            last = Some(entry.clone());
        }
        if s.finished {
            if tty {
                eprint!("\r\x1b[2K");
            }
            return Ok(s);
        }
        if tty {
            let latest = s.log.last().map_or("", |(_, what)| what.as_str());
            let latest: String = latest.chars().take(60).collect();
            eprint!(
                "\r\x1b[2K{} {phase} {:.1}s, {} provider(s): {latest}",
                SPINNER[frame % SPINNER.len()],
                phase_start.elapsed().as_secs_f64(),
                s.providers.len()
            );
            let _ = std::io::stderr().flush();
            frame += 1;
        }
        anyhow::ensure!(
            start.elapsed() < limit,
            "the node did not finish job {id} in time"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
