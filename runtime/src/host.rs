//! What a job sees of the host: WASI preview 1 with in-memory stdio, a fixed clock, a seeded
//! random source, no filesystem and no network; plus the per-job limits and the fuel charged
//! for host calls.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use cairn_protocol::JobId;
use wasmtime::{Caller, Linker, ResourceLimiter, StoreContextMut};
use wasmtime_wasi::cli::{IsTerminal, StdinStream, StdoutStream};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::pipe::MemoryInputPipe;
use wasmtime_wasi::p2::{InputStream, OutputStream, Pollable, StreamError};
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtxBuilder};

use crate::config::{HostFuel, JobLimits};
use crate::tensor::Backend;
use crate::tensor::host::{HasTensors, TensorTable};

/// Key-derivation context of a job's random stream.
const RANDOM_CONTEXT: &str = "cairn 2026 runtime random v1";
/// The fixed wall-clock time every job sees: 2026-01-01T00:00:00Z.
pub const FIXED_WALL_CLOCK: Duration = Duration::from_secs(1_767_225_600);
/// The fixed monotonic time every job sees, in nanoseconds.
pub const FIXED_MONOTONIC_NS: u64 = 0;
/// Import module of WASI preview 1.
pub(crate) const WASI_MODULE: &str = "wasi_snapshot_preview1";
/// WASI errno `nosys`: function not supported.
const ERRNO_NOSYS: i32 = 52;
/// WASI errno `fault`: bad address.
const ERRNO_FAULT: i32 = 21;

/// The job's output was larger than its limit: ends the job with `output_too_large`.
#[derive(Debug, thiserror::Error)]
#[error("output exceeds its limit of {limit} bytes")]
pub(crate) struct OutputOverflow {
    pub(crate) limit: u64,
}

/// A host call cost more fuel than was left: ends the job with `out_of_fuel`.
#[derive(Debug, thiserror::Error)]
#[error("out of fuel in a host call")]
pub(crate) struct HostOutOfFuel;

/// The job asked for more memory or table space than its limit: ends it with
/// `out_of_memory`.
#[derive(Debug, thiserror::Error)]
#[error("{what} limit exceeded: asked for {desired}, limit {limit}")]
pub(crate) struct LimitExceeded {
    what: &'static str,
    desired: u64,
    limit: u64,
}

/// Bytes moved by stdio since the last host-call charge.
#[derive(Debug, Default)]
pub(crate) struct IoMeter(AtomicU64);

impl IoMeter {
    fn add(&self, bytes: usize) {
        self.0.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    fn take(&self) -> u64 {
        self.0.swap(0, Ordering::Relaxed)
    }
}

/// Per-`Store` state of one job.
pub(crate) struct HostState {
    wasi: WasiP1Ctx,
    limiter: JobLimiter,
    meter: Arc<IoMeter>,
    random: blake3::OutputReader,
    host_fuel: HostFuel,
    tensors: TensorTable,
}

/// Everything the job produced, collected after it ends.
pub(crate) struct Captured {
    pub(crate) stdout: OutputSink,
    pub(crate) stderr: OutputSink,
}

impl HostState {
    /// The state for one job, and handles to its output buffers.
    pub(crate) fn new(
        job_id: &JobId,
        input: Bytes,
        args: &[String],
        env: &[(String, String)],
        limits: &JobLimits,
        host_fuel: HostFuel,
        backend: Arc<dyn Backend>,
    ) -> (Self, Captured) {
        let meter = Arc::new(IoMeter::default());
        let stdout = OutputSink::new(limits.max_output_bytes, true, meter.clone());
        let stderr = OutputSink::new(limits.max_stderr_bytes, false, meter.clone());
        let mut builder = WasiCtxBuilder::new();
        builder
            .stdin(InputSource {
                pipe: MemoryInputPipe::new(input),
                meter: meter.clone(),
            })
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .arg("job")
            .args(args)
            .envs(env)
            .wall_clock(FixedClock)
            .monotonic_clock(FixedClock)
            .secure_random(seeded_random(job_id, "secure"))
            .insecure_random(seeded_random(job_id, "insecure"))
            .insecure_random_seed(u128::from_le_bytes(seed_bytes(job_id, "insecure seed")))
            .allow_blocking_current_thread(true);
        let state = Self {
            wasi: builder.build_p1(),
            limiter: JobLimiter::new(limits),
            meter,
            random: random_stream(job_id, "random_get"),
            host_fuel,
            tensors: TensorTable::new(backend, limits.memory_bytes, host_fuel),
        };
        (state, Captured { stdout, stderr })
    }

    /// The resource limiter of this job.
    pub(crate) fn limiter(&mut self) -> &mut dyn ResourceLimiter {
        &mut self.limiter
    }
}

impl HasTensors for HostState {
    fn tensors(&mut self) -> &mut TensorTable {
        &mut self.tensors
    }

    fn tensors_ref(&self) -> &TensorTable {
        &self.tensors
    }
}

/// Adds WASI preview 1 and the `cairn_tensor` module to `linker`, replacing the functions that would reach the host's
/// time or entropy, or block: `random_get` reads the job's seeded stream and `poll_oneoff`
/// (sleeping) is not supported.
pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    wasmtime_wasi::p1::add_to_linker_sync(linker, |s: &mut HostState| &mut s.wasi)?;
    linker.allow_shadowing(true);
    linker.func_wrap(WASI_MODULE, "random_get", random_get)?;
    linker.func_wrap(
        WASI_MODULE,
        "poll_oneoff",
        |_: i32, _: i32, _: i32, _: i32| ERRNO_NOSYS,
    )?;
    linker.allow_shadowing(false);
    crate::tensor::host::add_to_linker(linker)
}

/// `random_get(buf, len)`: fills guest memory from the job's seeded stream.
fn random_get(mut caller: Caller<'_, HostState>, buf: i32, len: i32) -> wasmtime::Result<i32> {
    let Some(memory) = caller.get_export("memory").and_then(|e| e.into_memory()) else {
        return Ok(ERRNO_FAULT);
    };
    let (start, len) = (buf as u32 as usize, len as u32 as usize);
    // Refuse before doing the work when the bytes alone cost more than the fuel left.
    let cost = (len as u64).saturating_mul(caller.data().host_fuel.per_byte);
    if caller.get_fuel().is_ok_and(|left| cost > left) {
        caller.set_fuel(0)?;
        return Err(wasmtime::Error::new(HostOutOfFuel));
    }
    let (mem, state) = memory.data_and_store_mut(&mut caller);
    let Some(dest) = start
        .checked_add(len)
        .and_then(|end| mem.get_mut(start..end))
    else {
        return Ok(ERRNO_FAULT);
    };
    state.random.fill(dest);
    state.meter.add(len);
    Ok(0)
}

/// The call hook: charges fuel for each host call and the bytes it moved, so that fuel
/// bounds host work too (a guest looping on a failing `fd_write` still runs out).
pub(crate) fn charge_host_call(
    mut ctx: StoreContextMut<'_, HostState>,
    hook: wasmtime::CallHook,
) -> wasmtime::Result<()> {
    if !matches!(hook, wasmtime::CallHook::ReturningFromHost) {
        return Ok(());
    }
    let fuel = ctx.data().host_fuel;
    let bytes = ctx.data().meter.take();
    let cost = fuel
        .per_call
        .saturating_add(bytes.saturating_mul(fuel.per_byte));
    let left = ctx.get_fuel()?;
    if cost > left {
        ctx.set_fuel(0)?;
        return Err(wasmtime::Error::new(HostOutOfFuel));
    }
    ctx.set_fuel(left - cost)
}

/// A blake3 stream keyed by the job id and a purpose: the same bytes on every host.
fn random_stream(job_id: &JobId, purpose: &str) -> blake3::OutputReader {
    let key = blake3::derive_key(RANDOM_CONTEXT, job_id.as_bytes());
    let mut hasher = blake3::Hasher::new_keyed(&key);
    hasher.update(purpose.as_bytes());
    hasher.finalize_xof()
}

/// Sixteen bytes of the job's `purpose` stream.
fn seed_bytes(job_id: &JobId, purpose: &str) -> [u8; 16] {
    let mut out = [0u8; 16];
    random_stream(job_id, purpose).fill(&mut out);
    out
}

/// A seeded random source for WASI interfaces other than `random_get` (unused by preview 1,
/// set so that nothing can reach the host's entropy): 64 bytes of the job's stream, repeated.
fn seeded_random(job_id: &JobId, purpose: &str) -> wasmtime_wasi::Deterministic {
    let mut bytes = vec![0u8; 64];
    random_stream(job_id, purpose).fill(&mut bytes);
    wasmtime_wasi::Deterministic::new(bytes)
}

/// The fixed clock: wall time [`FIXED_WALL_CLOCK`], monotonic time [`FIXED_MONOTONIC_NS`].
struct FixedClock;

impl HostWallClock for FixedClock {
    fn resolution(&self) -> Duration {
        Duration::from_nanos(1)
    }

    fn now(&self) -> Duration {
        FIXED_WALL_CLOCK
    }
}

impl HostMonotonicClock for FixedClock {
    fn resolution(&self) -> u64 {
        1
    }

    fn now(&self) -> u64 {
        FIXED_MONOTONIC_NS
    }
}

/// Memory and table limits of one job. Growth past a limit is an error that ends the job
/// (not a `-1` from `memory.grow`), so that every replica stops at the same point.
struct JobLimiter {
    memory_bytes: u64,
    table_elements: u64,
}

impl JobLimiter {
    fn new(limits: &JobLimits) -> Self {
        Self {
            memory_bytes: limits.memory_bytes,
            table_elements: limits.max_table_elements,
        }
    }
}

impl ResourceLimiter for JobLimiter {
    fn memory_growing(
        &mut self,
        _: usize,
        desired: usize,
        _: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired as u64 > self.memory_bytes {
            let (desired, limit) = (desired as u64, self.memory_bytes);
            return Err(wasmtime::Error::new(LimitExceeded {
                what: "memory",
                desired,
                limit,
            }));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _: usize,
        desired: usize,
        _: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired as u64 > self.table_elements {
            let (desired, limit) = (desired as u64, self.table_elements);
            return Err(wasmtime::Error::new(LimitExceeded {
                what: "table",
                desired,
                limit,
            }));
        }
        Ok(true)
    }

    fn instances(&self) -> usize {
        1
    }

    fn tables(&self) -> usize {
        1
    }

    fn memories(&self) -> usize {
        1
    }
}

/// The job's stdin: the input bytes, metered.
struct InputSource {
    pipe: MemoryInputPipe,
    meter: Arc<IoMeter>,
}

impl IsTerminal for InputSource {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdinStream for InputSource {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncRead + Send + Sync> {
        Box::new(self.pipe.clone())
    }

    fn p2_stream(&self) -> Box<dyn InputStream> {
        Box::new(MeteredInput {
            pipe: self.pipe.clone(),
            meter: self.meter.clone(),
        })
    }
}

struct MeteredInput {
    pipe: MemoryInputPipe,
    meter: Arc<IoMeter>,
}

#[wasmtime_wasi::async_trait]
impl InputStream for MeteredInput {
    fn read(&mut self, size: usize) -> Result<Bytes, StreamError> {
        let bytes = self.pipe.read(size)?;
        self.meter.add(bytes.len());
        Ok(bytes)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for MeteredInput {
    async fn ready(&mut self) {}
}

/// A bounded, metered in-memory output. When `fatal`, a write past the limit ends the job
/// with `output_too_large`; otherwise the excess is dropped.
#[derive(Clone)]
pub(crate) struct OutputSink {
    buf: Arc<Mutex<Vec<u8>>>,
    limit: u64,
    fatal: bool,
    meter: Arc<IoMeter>,
}

impl OutputSink {
    fn new(limit: u64, fatal: bool, meter: Arc<IoMeter>) -> Self {
        Self {
            buf: Arc::default(),
            limit,
            fatal,
            meter,
        }
    }

    /// Takes the bytes written so far.
    pub(crate) fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.buf.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Appends `bytes`, or fails with [`OutputOverflow`] when fatal and over the limit.
    fn append(&self, bytes: &[u8]) -> Result<(), OutputOverflow> {
        self.meter.add(bytes.len());
        let mut buf = self.buf.lock().unwrap_or_else(PoisonError::into_inner);
        let room = usize::try_from(self.limit)
            .unwrap_or(usize::MAX)
            .saturating_sub(buf.len());
        if bytes.len() > room {
            if self.fatal {
                return Err(OutputOverflow { limit: self.limit });
            }
            buf.extend_from_slice(&bytes[..room]);
        } else {
            buf.extend_from_slice(bytes);
        }
        Ok(())
    }
}

/// Largest write permit granted at once.
const WRITE_PERMIT: usize = 64 * 1024;

#[wasmtime_wasi::async_trait]
impl OutputStream for OutputSink {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.append(&bytes)
            .map_err(|e| StreamError::Trap(wasmtime::Error::new(e)))
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        // Always grant a permit: a write past the limit must reach `write` and end the job,
        // not become a `Closed` error the guest could retry forever.
        Ok(WRITE_PERMIT)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for OutputSink {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for OutputSink {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(
            self.append(buf)
                .map(|()| buf.len())
                .map_err(io::Error::other),
        )
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl IsTerminal for OutputSink {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for OutputSink {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }

    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
}
