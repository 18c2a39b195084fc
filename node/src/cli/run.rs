//! `cairn run`: runs a module in the local sandbox, exactly as a provider would run a job,
//! with no network.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use cairn_protocol::{BlobHash, JobId};
use cairn_runtime::{
    BackendChoice, BackendKind, DEFAULT_FUEL, DEFAULT_MAX_OUTPUT_BYTES, DEFAULT_MEMORY_BYTES,
    DEFAULT_TIMEOUT, Energy, Job, JobLimits, RunError, RunOutput, Sandbox, SandboxConfig,
};

/// Run a WASI preview 1 command module in the deterministic sandbox.
///
/// The module reads the input from stdin and writes the output to stdout; it sees a fixed
/// clock, a random source seeded by the job id, no filesystem and no network.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The module to run (`.wasm`, a WASI command exporting `_start`).
    #[arg(value_name = "MODULE.wasm")]
    module: PathBuf,
    /// File whose bytes are the job's input (`-` for this process's stdin). Default: empty.
    #[arg(long, short, value_name = "FILE")]
    input: Option<PathBuf>,
    /// Argument passed to the module (repeat for several; `argv[0]` is always `job`).
    #[arg(long = "arg", value_name = "A", allow_hyphen_values = true)]
    args: Vec<String>,
    /// Fuel limit (guest instructions plus host calls).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_FUEL)]
    fuel: u64,
    /// Linear-memory limit in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MEMORY_BYTES)]
    memory: u64,
    /// Wall-clock limit in seconds (a safety net; fuel is the deterministic limit).
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_TIMEOUT.as_secs_f64())]
    timeout: f64,
    /// Output limit in bytes; writing more fails the job with `output_too_large`.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_OUTPUT_BYTES)]
    max_output: u64,
    /// Write the output to this file instead of stdout.
    #[arg(long, short, value_name = "OUT")]
    output: Option<PathBuf>,
    /// Print one JSON object (status, digest, fuel used, output size, exit code, or the error
    /// kind and message) instead of the output; the output goes only to `-o`, if given.
    #[arg(long)]
    json: bool,
    /// Job id seeding the random source (64 hex digits). Default: derived from the hashes of
    /// the module and the input, so repeated runs agree.
    #[arg(long, value_name = "HEX")]
    job_id: Option<JobId>,
    /// Backend of the tensor API: `cpu` (the reference), `cuda`, or `auto` (CUDA when a device
    /// can be used, otherwise the CPU). Every backend must give the same output bits.
    #[arg(long, value_name = "cpu|cuda|auto", default_value = "cpu")]
    backend: BackendChoice,
}

impl RunArgs {
    /// Runs the module and reports the outcome.
    pub fn execute(&self) -> anyhow::Result<ExitCode> {
        let wasm = std::fs::read(&self.module)
            .with_context(|| format!("could not read module {}", self.module.display()))?;
        let input = read_input(self.input.as_deref())?;
        let job = self.job(&wasm, input)?;
        // One job: no pool of instance slots to reserve.
        let config = SandboxConfig::default()
            .with_max_concurrent_jobs(1)
            .with_pooling(false)
            .with_backend(self.backend);
        let sandbox = Sandbox::new(config).context("could not start the sandbox")?;
        let (result, stderr) = match sandbox.prepare(&wasm) {
            Ok(module) => {
                let report = sandbox.run_report_blocking(&module, &job);
                (report.result, report.stderr)
            }
            Err(error) => (Err(error), Vec::new()),
        };
        self.report(result, &stderr)
    }

    fn job(&self, wasm: &[u8], input: Vec<u8>) -> anyhow::Result<Job> {
        let timeout = Duration::try_from_secs_f64(self.timeout)
            .context("--timeout must be a non-negative number of seconds")?;
        let limits = JobLimits::default()
            .with_fuel(self.fuel)
            .with_memory_bytes(self.memory)
            .with_timeout(timeout)
            .with_max_output_bytes(self.max_output);
        let job_id = self.job_id.unwrap_or_else(|| default_job_id(wasm, &input));
        Ok(Job::new(job_id, input)
            .with_args(self.args.clone())
            .with_limits(limits))
    }

    fn report(
        &self,
        result: Result<RunOutput, RunError>,
        stderr: &[u8],
    ) -> anyhow::Result<ExitCode> {
        if let Ok(out) = &result {
            self.write_output(out)?;
        }
        let line = match (&result, self.json) {
            (_, true) => json(&result),
            (Ok(out), false) => format!(
                "ok: digest {} fuel_used {} output_bytes {} exit_code {} backend {}",
                out.digest,
                out.fuel_used,
                out.output.len(),
                out.exit_code,
                out.device.backend.kind.name()
            ),
            (Err(e), false) => format!("error: {}: {e}", e.kind()),
        };
        if self.json {
            println!("{line}");
        } else {
            // The guest's own stderr first (diagnostics), then the summary.
            std::io::stderr().write_all(stderr)?;
            eprintln!("{line}");
        }
        Ok(if result.is_ok() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    }

    /// Writes the output to `-o`, or to stdout unless `--json`.
    fn write_output(&self, out: &RunOutput) -> anyhow::Result<()> {
        match (&self.output, self.json) {
            (Some(path), _) => std::fs::write(path, &out.output)
                .with_context(|| format!("could not write output to {}", path.display())),
            (None, false) => Ok(std::io::stdout().write_all(&out.output)?),
            (None, true) => Ok(()),
        }
    }
}

/// The job id used when none is given: the hash of the module's and the input's hashes.
fn default_job_id(wasm: &[u8], input: &[u8]) -> JobId {
    let mut bytes = BlobHash::of(wasm).0.to_vec();
    bytes.extend_from_slice(BlobHash::of(input).as_bytes());
    JobId::of(&bytes)
}

fn read_input(path: Option<&Path>) -> anyhow::Result<Vec<u8>> {
    match path {
        None => Ok(Vec::new()),
        Some(p) if p.as_os_str() == "-" => {
            let mut buf = Vec::new();
            std::io::stdin()
                .read_to_end(&mut buf)
                .context("could not read stdin")?;
            Ok(buf)
        }
        Some(p) => {
            std::fs::read(p).with_context(|| format!("could not read input {}", p.display()))
        }
    }
}

/// The documented `--json` object, fields in the documented order.
#[derive(serde::Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
enum JsonReport<'a> {
    Ok {
        digest: String,
        fuel_used: u64,
        output_bytes: usize,
        exit_code: i32,
        backend: &'static str,
        device: Option<String>,
        tensor_ops: u64,
        gpu_seconds: Option<f64>,
        gpu_energy_joules: Option<f64>,
        gpu_energy_unavailable: Option<String>,
    },
    Error {
        error: JsonError<'a>,
    },
}

#[derive(serde::Serialize)]
struct JsonError<'a> {
    kind: &'a str,
    message: String,
}

/// The documented JSON object for a run.
fn json(result: &Result<RunOutput, RunError>) -> String {
    let report = match result {
        Ok(out) => {
            let device = &out.device;
            let on_gpu = device.backend.kind != BackendKind::Cpu;
            let (joules, unavailable) = match &device.energy {
                Energy::Measured { millijoules } => (Some(*millijoules as f64 / 1000.0), None),
                Energy::Unavailable { reason } => (None, Some(reason.clone())),
            };
            JsonReport::Ok {
                digest: out.digest.to_string(),
                fuel_used: out.fuel_used,
                output_bytes: out.output.len(),
                exit_code: out.exit_code,
                backend: device.backend.kind.name(),
                device: device.backend.device.clone(),
                tensor_ops: out.tensor.ops,
                gpu_seconds: on_gpu.then_some(device.busy.as_secs_f64()),
                gpu_energy_joules: joules,
                gpu_energy_unavailable: unavailable,
            }
        }
        Err(e) => JsonReport::Error {
            error: JsonError {
                kind: e.kind(),
                message: e.to_string(),
            },
        },
    };
    // Serialising plain strings and numbers cannot fail.
    serde_json::to_string(&report).unwrap_or_default()
}
