//! Configuration as data: the sandbox's settings ([`SandboxConfig`]) and each job's limits
//! ([`JobLimits`]), every default written down.

use std::path::PathBuf;
use std::time::Duration;

use crate::tensor::BackendChoice;

/// Default fuel per job: 10 billion units, a few seconds of guest CPU.
pub const DEFAULT_FUEL: u64 = cairn_protocol::Limits::DEFAULT.fuel;
/// Default linear-memory limit per job: 256 MiB.
pub const DEFAULT_MEMORY_BYTES: u64 = cairn_protocol::Limits::DEFAULT.memory_bytes;
/// Default wall-clock limit per job: 30 seconds.
pub const DEFAULT_TIMEOUT: Duration =
    Duration::from_millis(cairn_protocol::Limits::DEFAULT.wall_time_ms);
/// Default output (stdout) limit per job: 16 MiB.
pub const DEFAULT_MAX_OUTPUT_BYTES: u64 = cairn_protocol::Limits::DEFAULT.max_output_bytes;
/// Default captured stderr per job: 64 KiB (more is dropped, not fatal).
pub const DEFAULT_MAX_STDERR_BYTES: u64 = 64 * 1024;
/// Default table-element limit per job: 100 000 (Rust guests use a few hundred).
pub const DEFAULT_MAX_TABLE_ELEMENTS: u64 = 100_000;

/// Limits of one job. They are part of the job's specification: two replicas given the same
/// limits reach the same outcome, except for the wall-clock `timeout`, a host-dependent
/// safety net (see [`RunError::is_attributable`](crate::RunError::is_attributable)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct JobLimits {
    /// Fuel the job may burn, guest instructions plus host calls. Default [`DEFAULT_FUEL`].
    pub fuel: u64,
    /// Largest linear memory, in bytes. Default [`DEFAULT_MEMORY_BYTES`].
    pub memory_bytes: u64,
    /// Wall-clock limit. Default [`DEFAULT_TIMEOUT`].
    pub timeout: Duration,
    /// Largest output; writing more ends the job with `output_too_large`.
    /// Default [`DEFAULT_MAX_OUTPUT_BYTES`].
    pub max_output_bytes: u64,
    /// Largest captured stderr; the rest is dropped. Default [`DEFAULT_MAX_STDERR_BYTES`].
    pub max_stderr_bytes: u64,
    /// Largest table, in elements. Default [`DEFAULT_MAX_TABLE_ELEMENTS`].
    pub max_table_elements: u64,
}

impl Default for JobLimits {
    fn default() -> Self {
        Self {
            fuel: DEFAULT_FUEL,
            memory_bytes: DEFAULT_MEMORY_BYTES,
            timeout: DEFAULT_TIMEOUT,
            max_output_bytes: DEFAULT_MAX_OUTPUT_BYTES,
            max_stderr_bytes: DEFAULT_MAX_STDERR_BYTES,
            max_table_elements: DEFAULT_MAX_TABLE_ELEMENTS,
        }
    }
}

impl JobLimits {
    /// Sets the fuel. Default [`DEFAULT_FUEL`].
    pub fn with_fuel(mut self, fuel: u64) -> Self {
        self.fuel = fuel;
        self
    }

    /// Sets the memory limit in bytes. Default [`DEFAULT_MEMORY_BYTES`].
    pub fn with_memory_bytes(mut self, bytes: u64) -> Self {
        self.memory_bytes = bytes;
        self
    }

    /// Sets the wall-clock limit. Default [`DEFAULT_TIMEOUT`].
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the output limit in bytes. Default [`DEFAULT_MAX_OUTPUT_BYTES`].
    pub fn with_max_output_bytes(mut self, bytes: u64) -> Self {
        self.max_output_bytes = bytes;
        self
    }

    /// Sets the captured-stderr limit in bytes. Default [`DEFAULT_MAX_STDERR_BYTES`].
    pub fn with_max_stderr_bytes(mut self, bytes: u64) -> Self {
        self.max_stderr_bytes = bytes;
        self
    }

    /// Sets the table-element limit. Default [`DEFAULT_MAX_TABLE_ELEMENTS`].
    pub fn with_max_table_elements(mut self, elements: u64) -> Self {
        self.max_table_elements = elements;
        self
    }
}

/// Fuel charged for host calls, so that fuel bounds CPU time spent in the host as well as in
/// the guest. Part of the runtime identity: changing it changes `fuel_used`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct HostFuel {
    /// Charged for every call into the host. Default 1 000.
    pub per_call: u64,
    /// Charged for every byte a host call moves (stdin, stdout, stderr, random, tensor
    /// upload and read). Default 1.
    pub per_byte: u64,
    /// Charged per element of a tensor operation's input, times the operation's weight (1;
    /// 4 for the norms; 16 for `gelu` and `softmax`; output elements for `matmul`). Default 1.
    pub tensor_per_element: u64,
    /// Charged per multiply-accumulate of a tensor `matmul` (`m·k·n` of them). Default 1.
    pub tensor_per_mac: u64,
}

impl Default for HostFuel {
    fn default() -> Self {
        Self {
            per_call: 1_000,
            per_byte: 1,
            tensor_per_element: 1,
            tensor_per_mac: 1,
        }
    }
}

/// Settings of a [`Sandbox`](crate::Sandbox): the engine, the module cache and concurrency.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SandboxConfig {
    /// Jobs running at once; more wait for a slot. Default 4.
    pub max_concurrent_jobs: usize,
    /// Compiled modules kept in memory (oldest evicted first). Default 64.
    pub max_cached_modules: usize,
    /// Largest module accepted, in bytes. Default 64 MiB.
    pub max_module_bytes: usize,
    /// Folder for compiled artifacts this host made itself; `None` keeps the cache in memory
    /// only. Default `None`.
    pub cache_dir: Option<PathBuf>,
    /// How often the wall-clock ticker fires; timeouts are rounded up to it. Default 10 ms.
    pub epoch_tick: Duration,
    /// Largest wasm stack in bytes. Not exact across hosts, so a stack overflow is never held
    /// against a provider. Default 512 KiB.
    pub max_wasm_stack: usize,
    /// Whether to use wasmtime's pooling allocator (pre-reserved instance slots, fast
    /// instantiation). Default `true`.
    pub pooling: bool,
    /// Fuel charged for host calls. Default [`HostFuel::default`].
    pub host_fuel: HostFuel,
    /// Whether fuel is metered. Default `true`. Turning it off removes the deterministic CPU
    /// limit (only the wall-clock timeout remains) and reports `fuel_used` 0: for measuring
    /// the cost of metering, never for serving jobs.
    pub fuel_metering: bool,
    /// The backend of the tensor host API. Default [`BackendChoice::Cpu`], the reference: the
    /// CUDA backend has not yet been checked bit for bit on a GPU, and a provider whose GPU
    /// disagreed with the CPU replicas would lose reputation. Make [`BackendChoice::Auto`] the
    /// default once it has.
    pub backend: BackendChoice,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            max_concurrent_jobs: 4,
            max_cached_modules: 64,
            max_module_bytes: 64 * 1024 * 1024,
            cache_dir: None,
            epoch_tick: Duration::from_millis(10),
            max_wasm_stack: 512 * 1024,
            pooling: true,
            host_fuel: HostFuel::default(),
            fuel_metering: true,
            backend: BackendChoice::Cpu,
        }
    }
}

impl SandboxConfig {
    /// Sets how many jobs run at once. Default 4; at least 1 is used.
    pub fn with_max_concurrent_jobs(mut self, jobs: usize) -> Self {
        self.max_concurrent_jobs = jobs;
        self
    }

    /// Sets how many compiled modules stay in memory. Default 64.
    pub fn with_max_cached_modules(mut self, modules: usize) -> Self {
        self.max_cached_modules = modules;
        self
    }

    /// Sets the largest module accepted, in bytes. Default 64 MiB.
    pub fn with_max_module_bytes(mut self, bytes: usize) -> Self {
        self.max_module_bytes = bytes;
        self
    }

    /// Keeps compiled artifacts in `dir` across restarts. Default: memory only.
    pub fn with_cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cache_dir = Some(dir.into());
        self
    }

    /// Sets the wall-clock ticker period. Default 10 ms.
    pub fn with_epoch_tick(mut self, tick: Duration) -> Self {
        self.epoch_tick = tick;
        self
    }

    /// Sets the largest wasm stack in bytes. Default 512 KiB.
    pub fn with_max_wasm_stack(mut self, bytes: usize) -> Self {
        self.max_wasm_stack = bytes;
        self
    }

    /// Turns the pooling allocator on or off. Default on.
    pub fn with_pooling(mut self, pooling: bool) -> Self {
        self.pooling = pooling;
        self
    }

    /// Turns fuel metering on or off (off only for measurements). Default on.
    pub fn with_fuel_metering(mut self, on: bool) -> Self {
        self.fuel_metering = on;
        self
    }

    /// Sets the tensor backend. Default [`BackendChoice::Cpu`].
    pub fn with_backend(mut self, backend: BackendChoice) -> Self {
        self.backend = backend;
        self
    }

    /// Sets the fuel charged for host calls. Default [`HostFuel::default`].
    pub fn with_host_fuel(mut self, host_fuel: HostFuel) -> Self {
        self.host_fuel = host_fuel;
        self
    }
}
