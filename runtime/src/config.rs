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
    /// Bounds on what a module may make the compiler do. Default [`CompileLimits::default`].
    pub compile: CompileLimits,
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
            compile: CompileLimits::default(),
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

    /// Sets the bounds on compilation. Default [`CompileLimits::default`].
    pub fn with_compile_limits(mut self, compile: CompileLimits) -> Self {
        self.compile = compile;
        self
    }
}

/// Bounds on compiling a module, which neither fuel nor the job's wall-clock limit cover.
///
/// Cranelift cannot be interrupted, so the bound has two parts. A structural check before
/// compiling refuses modules whose shape makes compilation long (the figures behind the
/// defaults are in `docs/benchmarks.md`, "Compile bounds"): it is cheap, and the same on every
/// host with the same limits. Then the compile runs on its own thread under a wall-clock
/// `timeout`: past it the job fails with `compile_timeout` (host-dependent, never held against
/// the provider), while the thread, which cannot be stopped, keeps one of the sandbox's job
/// slots until it really ends, so abandoned compiles never pile up beyond
/// `max_concurrent_jobs`.
///
/// These are this host's policy, not the job's: a refused module is a `module_too_complex`
/// failure that is not attributable either.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CompileLimits {
    /// Functions defined in the module (imports not counted). Default 50 000.
    pub max_functions: u64,
    /// Largest function body, in bytes. Default 1 MiB.
    pub max_function_bytes: u64,
    /// The code section (every function body), in bytes. Default 16 MiB.
    pub max_code_bytes: u64,
    /// Locals declared in one function (parameters not counted). Default 10 000.
    pub max_locals: u64,
    /// Targets of one `br_table`. Default 10 000.
    pub max_br_table_targets: u64,
    /// Blocks (`block`, `loop`, `if`, `try_table`) in the module. Default 50 000.
    pub max_blocks: u64,
    /// The work of one function: its blocks times (its blocks plus its locals), which
    /// Cranelift's time grows with faster than linearly. Default 2 000 000 (1 414 blocks
    /// and no locals, or 1 000 blocks and 1 000 locals).
    pub max_function_work: u64,
    /// The work of every function, summed. Default 10 000 000.
    pub max_work: u64,
    /// Wall-clock limit on one compile. Default 60 s.
    pub timeout: Duration,
}

impl Default for CompileLimits {
    fn default() -> Self {
        Self {
            max_functions: 50_000,
            max_function_bytes: 1 << 20,
            max_code_bytes: 16 << 20,
            max_locals: 10_000,
            max_br_table_targets: 10_000,
            max_blocks: 50_000,
            max_function_work: 2_000_000,
            max_work: 10_000_000,
            timeout: Duration::from_secs(60),
        }
    }
}

impl CompileLimits {
    /// Sets the most functions defined in a module. Default 50 000.
    pub fn with_max_functions(mut self, functions: u64) -> Self {
        self.max_functions = functions;
        self
    }

    /// Sets the largest function body, in bytes. Default 1 MiB.
    pub fn with_max_function_bytes(mut self, bytes: u64) -> Self {
        self.max_function_bytes = bytes;
        self
    }

    /// Sets the largest code section, in bytes. Default 16 MiB.
    pub fn with_max_code_bytes(mut self, bytes: u64) -> Self {
        self.max_code_bytes = bytes;
        self
    }

    /// Sets the most locals declared in one function. Default 10 000.
    pub fn with_max_locals(mut self, locals: u64) -> Self {
        self.max_locals = locals;
        self
    }

    /// Sets the most targets of one `br_table`. Default 10 000.
    pub fn with_max_br_table_targets(mut self, targets: u64) -> Self {
        self.max_br_table_targets = targets;
        self
    }

    /// Sets the most blocks in the module. Default 50 000.
    pub fn with_max_blocks(mut self, blocks: u64) -> Self {
        self.max_blocks = blocks;
        self
    }

    /// Sets the most work of one function (blocks times blocks plus locals).
    /// Default 2 000 000.
    pub fn with_max_function_work(mut self, work: u64) -> Self {
        self.max_function_work = work;
        self
    }

    /// Sets the most work of the module (summed over its functions). Default 10 000 000.
    pub fn with_max_work(mut self, work: u64) -> Self {
        self.max_work = work;
        self
    }

    /// Sets the wall-clock limit on one compile. Default 60 s.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}
