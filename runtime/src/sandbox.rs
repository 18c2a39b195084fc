//! The [`Sandbox`]: compiles (and caches) modules, then runs jobs, one `Store` per job.

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;
use cairn_protocol::{BlobHash, JobId};
use wasmtime::{Engine, InstancePre, Linker, Module, Store};

use crate::cache::{DiskCache, MemoryCache};
use crate::compile::{self, ModuleShape};
use crate::config::{JobLimits, SandboxConfig};
use crate::engine::{self, EpochTicker, RuntimeIdentity};
use crate::error::{RunError, SandboxError};
use crate::host::{self, HostState};
use crate::outcome;
use crate::permits::Permits;
use crate::tensor::host::HasTensors;
use crate::tensor::{self, Backend, BackendInfo, DeviceReport, Energy, TensorUsage};

/// A compiled, linked module ready to run: cheap to clone and to instantiate.
#[derive(Clone)]
pub struct PreparedModule {
    hash: BlobHash,
    pre: Arc<InstancePre<HostState>>,
}

impl PreparedModule {
    /// The module's blake3 hash (its blob address).
    pub fn hash(&self) -> BlobHash {
        self.hash
    }
}

impl std::fmt::Debug for PreparedModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedModule")
            .field("hash", &self.hash)
            .finish_non_exhaustive()
    }
}

/// One job: its id (which seeds its random source), input, arguments, environment and
/// limits.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Job {
    /// The job's id; the seeded random source is derived from it.
    pub job_id: JobId,
    /// The job's input, read by the guest from stdin.
    pub input: Bytes,
    /// Arguments after `argv[0]` (which is always `job`).
    pub args: Vec<String>,
    /// Environment variables; none unless given.
    pub env: Vec<(String, String)>,
    /// The job's limits.
    pub limits: JobLimits,
}

impl Job {
    /// A job with no arguments, no environment and [`JobLimits::default`].
    pub fn new(job_id: JobId, input: impl Into<Bytes>) -> Self {
        let (args, env, limits) = (Vec::new(), Vec::new(), JobLimits::default());
        Self {
            job_id,
            input: input.into(),
            args,
            env,
            limits,
        }
    }

    /// Sets the arguments (after `argv[0]`).
    pub fn with_args(mut self, args: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.args = args.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the environment.
    pub fn with_env(mut self, env: impl IntoIterator<Item = (String, String)>) -> Self {
        self.env = env.into_iter().collect();
        self
    }

    /// Sets the limits.
    pub fn with_limits(mut self, limits: JobLimits) -> Self {
        self.limits = limits;
        self
    }
}

/// A successful run.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RunOutput {
    /// Everything the job wrote to stdout.
    pub output: Vec<u8>,
    /// blake3 of `output`: what replicas compare.
    pub digest: BlobHash,
    /// Fuel used, guest instructions plus host calls; the same on every replica.
    pub fuel_used: u64,
    /// The exit status: 0 (returning from `_start` or `proc_exit(0)`).
    pub exit_code: i32,
    /// What the job wrote to stderr, up to its limit (diagnostics only, not compared).
    pub stderr: Vec<u8>,
    /// The job's tensor work (deterministic: the same on every replica).
    pub tensor: TensorUsage,
    /// The backend and device that ran the tensor work, its busy time and energy (replicas
    /// may differ here; their outputs may not).
    pub device: DeviceReport,
}

/// Everything known about a run, whether it succeeded or not.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RunReport {
    /// The output, or why there is none.
    pub result: Result<RunOutput, RunError>,
    /// Fuel used until the job ended, successfully or not. The same on every replica unless
    /// the outcome is not attributable (`timeout`, `stack_overflow`).
    pub fuel_used: u64,
    /// What the job wrote to stderr, up to its limit (diagnostics only, not compared).
    pub stderr: Vec<u8>,
    /// The job's tensor work until it ended.
    pub tensor: TensorUsage,
    /// The backend and device that ran the tensor work, its busy time and energy.
    pub device: DeviceReport,
}

/// The deterministic sandbox: a wasmtime engine, a compiled-module cache and a bound on jobs
/// running at once. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct Sandbox {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    linker: Linker<HostState>,
    provided: HashSet<(String, String)>,
    memory: MemoryCache<PreparedModule>,
    disk: Option<DiskCache>,
    permits: Arc<Permits>,
    config: SandboxConfig,
    identity: RuntimeIdentity,
    backend: Arc<dyn Backend>,
    _ticker: EpochTicker,
}

impl Sandbox {
    /// Creates a sandbox: builds the engine, the WASI linker, the caches and the ticker.
    pub fn new(config: SandboxConfig) -> Result<Self, SandboxError> {
        let (engine, identity) = engine::build(&config)?;
        let backend =
            tensor::select(config.backend).map_err(|reason| SandboxError::Backend { reason })?;
        let mut linker = Linker::new(&engine);
        host::add_to_linker(&mut linker).map_err(|e| SandboxError::Engine {
            message: format!("{e:#}"),
        })?;
        let provided = provided_imports(&engine, &linker, &backend);
        let disk = match &config.cache_dir {
            Some(dir) => Some(DiskCache::open(dir, identity.fingerprint)?),
            None => None,
        };
        let inner = Inner {
            _ticker: EpochTicker::start(engine.clone(), config.epoch_tick)?,
            engine,
            linker,
            provided,
            memory: MemoryCache::new(config.max_cached_modules),
            disk,
            permits: Arc::new(Permits::new(config.max_concurrent_jobs)),
            identity,
            backend,
            config,
        };
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// The runtime's identity (wasmtime version and configuration fingerprint).
    pub fn identity(&self) -> &RuntimeIdentity {
        &self.inner.identity
    }

    /// The tensor backend jobs run on: kind and device.
    pub fn backend_info(&self) -> &BackendInfo {
        self.inner.backend.info()
    }

    /// The configuration this sandbox was built with.
    pub fn config(&self) -> &SandboxConfig {
        &self.inner.config
    }

    /// Job slots free now: `max_concurrent_jobs` less the jobs running and the compiles not
    /// yet ended (a compile that timed out keeps its slot until its thread ends).
    pub fn free_slots(&self) -> usize {
        self.inner.permits.free()
    }

    /// The prepared module with this hash, if it is in the memory cache.
    pub fn cached(&self, hash: &BlobHash) -> Option<PreparedModule> {
        self.inner.memory.get(hash)
    }

    /// Empties the in-memory cache (the on-disk artifacts stay).
    pub fn clear_memory_cache(&self) {
        self.inner.memory.clear();
    }

    /// Validates, compiles (or loads from the cache) and links `wasm`.
    ///
    /// A module past the configured [`CompileLimits`](crate::CompileLimits) is refused with
    /// `module_too_complex` before it is compiled; a compile that runs past their `timeout`
    /// ends with `compile_timeout`. A compile takes one of the `max_concurrent_jobs` slots
    /// (so this call may wait for one) and keeps it until it really ends, even after a
    /// timeout.
    pub fn prepare(&self, wasm: &[u8]) -> Result<PreparedModule, RunError> {
        let limit = self.inner.config.max_module_bytes;
        if wasm.len() > limit {
            let message = format!(
                "module is {} bytes, more than the limit of {limit}",
                wasm.len()
            );
            return Err(RunError::InvalidModule { message });
        }
        let hash = BlobHash::of(wasm);
        if let Some(hit) = self.inner.memory.get(&hash) {
            return Ok(hit);
        }
        let module = self.compile(&hash, wasm)?;
        let prepared = self.link(hash, &module)?;
        self.inner.memory.insert(hash, prepared.clone());
        Ok(prepared)
    }

    /// Loads the module from the disk cache, or compiles it and stores the artifact.
    fn compile(&self, hash: &BlobHash, wasm: &[u8]) -> Result<Module, RunError> {
        let disk = self.inner.disk.as_ref();
        if let Some(module) = disk.and_then(|d| d.load(&self.inner.engine, hash)) {
            return Ok(module);
        }
        let limits = &self.inner.config.compile;
        ModuleShape::check(wasm, limits)?;
        let module = compile::compile(&self.inner.engine, &self.inner.permits, wasm, limits.timeout)
            .inspect_err(|error| {
                tracing::debug!(target: "cairn::runtime", module = %hash, kind = error.kind(), %error, "module not compiled");
            })?;
        if let Some(disk) = disk {
            disk.store(hash, &module);
        }
        Ok(module)
    }

    /// Checks the entry point and imports, then pre-instantiates.
    fn link(&self, hash: BlobHash, module: &Module) -> Result<PreparedModule, RunError> {
        let start = module.get_export("_start").and_then(|e| e.func().cloned());
        if !start.is_some_and(|f| f.params().len() == 0 && f.results().len() == 0) {
            return Err(RunError::NoEntryPoint);
        }
        for import in module.imports() {
            let key = (import.module().to_owned(), import.name().to_owned());
            if !self.inner.provided.contains(&key) {
                return Err(RunError::MissingImport {
                    module: key.0,
                    name: key.1,
                });
            }
        }
        let pre =
            self.inner
                .linker
                .instantiate_pre(module)
                .map_err(|e| RunError::InvalidModule {
                    message: format!("{e:#}"),
                })?;
        Ok(PreparedModule {
            hash,
            pre: Arc::new(pre),
        })
    }

    /// Prepares `wasm` and runs `job` on it, on the current thread.
    pub fn run_wasm_blocking(&self, wasm: &[u8], job: &Job) -> Result<RunOutput, RunError> {
        let module = self.prepare(wasm)?;
        self.run_blocking(&module, job)
    }

    /// Runs `job` on the current thread, waiting first for a free slot when
    /// `max_concurrent_jobs` are already running. Do not call it on an async worker thread:
    /// use [`Sandbox::run`] there.
    pub fn run_blocking(&self, module: &PreparedModule, job: &Job) -> Result<RunOutput, RunError> {
        self.run_report_blocking(module, job).result
    }

    /// Like [`Sandbox::run_blocking`], but also reports the fuel used and the captured
    /// stderr when the job fails.
    pub fn run_report_blocking(&self, module: &PreparedModule, job: &Job) -> RunReport {
        let _permit = self.inner.permits.acquire();
        let span = tracing::debug_span!(
            target: "cairn::runtime", "job", job_id = %job.job_id, module = %module.hash
        );
        let _entered = span.enter();
        let (state, captured) = HostState::new(
            &job.job_id,
            job.input.clone(),
            &job.args,
            &job.env,
            &job.limits,
            self.inner.config.host_fuel,
            self.inner.backend.clone(),
        );
        let mut store = Store::new(&self.inner.engine, state);
        let energy_before = self.inner.backend.energy_counter_mj();
        let (result, fuel_used) = self.execute(&mut store, module, &job.limits);
        let tensor = store.data().tensors_ref().usage();
        let device = DeviceReport {
            backend: self.backend_info().clone(),
            busy: store.data().tensors_ref().busy(),
            energy: Energy::between(energy_before, self.inner.backend.energy_counter_mj()),
        };
        let stderr = captured.stderr.take();
        let result = result.map(|exit_code| {
            let output = captured.stdout.take();
            let digest = BlobHash::of(&output);
            RunOutput {
                output,
                digest,
                fuel_used,
                exit_code,
                stderr: stderr.clone(),
                tensor,
                device: device.clone(),
            }
        });
        if let Err(error) = &result {
            tracing::debug!(target: "cairn::runtime", kind = error.kind(), %error, "job failed");
        }
        RunReport {
            result,
            fuel_used,
            stderr,
            tensor,
            device,
        }
    }

    /// Sets the store's limits, runs `_start`, and returns the exit code (or error) and the
    /// fuel used.
    fn execute(
        &self,
        store: &mut Store<HostState>,
        module: &PreparedModule,
        limits: &JobLimits,
    ) -> (Result<i32, RunError>, u64) {
        store.limiter(|s| s.limiter());
        let metered = self.inner.config.fuel_metering;
        if metered {
            store.call_hook(host::charge_host_call);
            if let Err(e) = store.set_fuel(limits.fuel) {
                return (Err(outcome::internal(e)), 0);
            }
        }
        store.set_epoch_deadline(self.deadline_ticks(limits));
        store.epoch_deadline_trap();
        let result = module.pre.instantiate(&mut *store).and_then(|instance| {
            let start = instance.get_typed_func::<(), ()>(&mut *store, "_start")?;
            start.call(&mut *store, ())
        });
        let fuel_left = if metered {
            store.get_fuel().unwrap_or(0)
        } else {
            limits.fuel
        };
        let result = match result {
            Ok(()) => Ok(0),
            Err(e) => outcome::classify(e, limits),
        };
        (result, limits.fuel.saturating_sub(fuel_left))
    }

    /// Runs `job` on a blocking thread (`tokio::task::spawn_blocking`), so that async callers
    /// never block a worker; at most `max_concurrent_jobs` run at once.
    /// The returned future owns what it needs (`'static`), so it can be spawned. Must be
    /// polled inside a tokio runtime.
    pub fn run(
        &self,
        module: PreparedModule,
        job: Job,
    ) -> impl Future<Output = Result<RunOutput, RunError>> + Send + 'static {
        let sandbox = self.clone();
        async move {
            tokio::task::spawn_blocking(move || sandbox.run_blocking(&module, &job))
                .await
                .unwrap_or_else(|e| Err(outcome::internal(e)))
        }
    }

    /// Epoch ticks in the job's timeout, rounded up, plus one for the partly elapsed tick.
    fn deadline_ticks(&self, limits: &JobLimits) -> u64 {
        let tick = self.inner.config.epoch_tick.as_nanos().max(1);
        let ticks = limits.timeout.as_nanos().div_ceil(tick);
        u64::try_from(ticks).unwrap_or(u64::MAX).saturating_add(1)
    }
}

/// The `(module, name)` pairs the linker defines.
fn provided_imports(
    engine: &Engine,
    linker: &Linker<HostState>,
    backend: &Arc<dyn Backend>,
) -> HashSet<(String, String)> {
    let (state, _) = HostState::new(
        &JobId([0; 32]),
        Bytes::new(),
        &[],
        &[],
        &JobLimits::default(),
        Default::default(),
        backend.clone(),
    );
    let mut store = Store::new(engine, state);
    linker
        .iter(&mut store)
        .map(|(m, n, _)| (m.to_owned(), n.to_owned()))
        .collect()
}
