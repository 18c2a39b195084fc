//! The deterministic wasmtime engine, its identity, and the wall-clock ticker.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::config::SandboxConfig;
use crate::error::SandboxError;

/// The wasmtime version this crate is built against (checked against `Cargo.lock` by a test).
pub const WASMTIME_VERSION: &str = "48.0.8";
/// Key-derivation context of the runtime fingerprint.
const IDENTITY_CONTEXT: &str = "cairn 2026 runtime identity v1";

/// What a job's outcome depends on besides the module, input and limits: the wasmtime
/// version and every setting that changes results or fuel counts. Adverts and job
/// requirements pin it, so that replicas that must agree run the same runtime.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct RuntimeIdentity {
    /// The wasmtime version.
    pub wasmtime_version: &'static str,
    /// The version of this crate.
    pub runtime_version: &'static str,
    /// The settings that affect results, as `key=value;` text.
    pub settings: String,
    /// blake3 (domain-separated) of all of the above.
    pub fingerprint: [u8; 32],
}

impl RuntimeIdentity {
    fn new(config: &SandboxConfig) -> Self {
        let settings = format!(
            "nan_canonicalization=1;relaxed_simd_deterministic=1;threads=0;shared_memory=0;\
             memory64=0;multi_memory=0;gc=0;fuel={};\
             host_fuel_per_call={};host_fuel_per_byte={};max_wasm_stack={};\
             tensor=cairn_tensor.v1;tensor_fuel_per_element={};tensor_fuel_per_mac={};\
             tensor_max_live={};wasi=preview1;clock=fixed;random=blake3(job_id);argv0=job;target={}",
            u8::from(config.fuel_metering),
            config.host_fuel.per_call,
            config.host_fuel.per_byte,
            config.max_wasm_stack,
            config.host_fuel.tensor_per_element,
            config.host_fuel.tensor_per_mac,
            crate::tensor::MAX_LIVE_TENSORS,
            std::env::consts::ARCH,
        );
        let text = format!(
            "wasmtime={WASMTIME_VERSION};cairn-runtime={};{settings}",
            env!("CARGO_PKG_VERSION")
        );
        Self {
            wasmtime_version: WASMTIME_VERSION,
            runtime_version: env!("CARGO_PKG_VERSION"),
            settings,
            fingerprint: blake3::derive_key(IDENTITY_CONTEXT, text.as_bytes()),
        }
    }

    /// The fingerprint as 64 hex digits.
    pub fn fingerprint_hex(&self) -> String {
        hex::encode(self.fingerprint)
    }
}

/// Builds the engine with the deterministic configuration, and its identity.
pub(crate) fn build(config: &SandboxConfig) -> Result<(Engine, RuntimeIdentity), SandboxError> {
    let mut c = Config::new();
    c.cranelift_nan_canonicalization(true)
        .relaxed_simd_deterministic(true)
        .shared_memory(false)
        .wasm_memory64(false)
        .wasm_multi_memory(false)
        .consume_fuel(config.fuel_metering)
        .epoch_interruption(true)
        .max_wasm_stack(config.max_wasm_stack)
        .parallel_compilation(true);
    if config.pooling {
        c.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling(config)));
    }
    let engine = Engine::new(&c).map_err(|e| SandboxError::Engine {
        message: format!("{e:#}"),
    })?;
    Ok((engine, RuntimeIdentity::new(config)))
}

/// Pool slots for the jobs that may run at once, each able to hold a full 4 GiB memory.
fn pooling(config: &SandboxConfig) -> PoolingAllocationConfig {
    let slots = u32::try_from(config.max_concurrent_jobs.max(1)).unwrap_or(u32::MAX);
    let mut p = PoolingAllocationConfig::new();
    p.total_core_instances(slots)
        .total_memories(slots)
        .total_tables(slots)
        .total_component_instances(0)
        .max_memories_per_module(1)
        .max_tables_per_module(1)
        .max_memory_size(4 << 30)
        .table_elements(crate::config::DEFAULT_MAX_TABLE_ELEMENTS as usize)
        .max_unused_warm_slots(slots);
    p
}

/// Increments the engine's epoch every tick until dropped; a job's timeout is a number of
/// ticks.
pub(crate) struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    /// Starts the ticker thread.
    pub(crate) fn start(engine: Engine, tick: std::time::Duration) -> Result<Self, SandboxError> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("cairn-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(tick);
                    engine.increment_epoch();
                }
            })
            .map_err(SandboxError::Thread)?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            // The thread only sleeps and ticks; a panic there has nothing to report.
            let _ = thread.join();
        }
    }
}
