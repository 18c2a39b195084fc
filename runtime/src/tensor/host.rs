//! The `cairn_tensor` import module: a job's tensors behind handles, with fuel charged before
//! the work and memory bounded by the job's limit. Everything the guest passes is checked
//! before the host allocates or computes; a failed check ends the job with a typed error.

use std::collections::HashMap;
use std::sync::Arc;

use wasmtime::{Caller, Linker};

use super::{Backend, DType, Op, Plan, Tensor, TensorError, byte_size};
use crate::config::HostFuel;

/// The import module name.
pub(crate) const MODULE: &str = "cairn_tensor";
/// Most tensors a job may hold at once.
pub const MAX_LIVE_TENSORS: usize = 4096;

/// What a job's tensor work amounted to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TensorUsage {
    /// Operations run (uploads and reads not counted).
    pub ops: u64,
    /// Largest total size of the tensors held at once, in bytes.
    pub peak_bytes: u64,
}

/// Accumulated backend time of a job (not deterministic, kept apart from [`TensorUsage`]).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Busy(pub(crate) std::time::Duration);

/// One job's tensors.
pub(crate) struct TensorTable {
    live: HashMap<u32, Tensor>,
    /// The next handle to give out; handles are never reused, so a freed one stays freed.
    next: u32,
    bytes: u64,
    limit: u64,
    backend: Arc<dyn Backend>,
    fuel: HostFuel,
    usage: TensorUsage,
    busy: Busy,
}

impl TensorTable {
    /// An empty table whose tensors may total `limit` bytes.
    pub(crate) fn new(backend: Arc<dyn Backend>, limit: u64, fuel: HostFuel) -> Self {
        Self {
            live: HashMap::new(),
            next: 1,
            bytes: 0,
            limit,
            backend,
            fuel,
            usage: TensorUsage::default(),
            busy: Busy::default(),
        }
    }

    /// What the job's tensor work amounted to so far.
    pub(crate) fn usage(&self) -> TensorUsage {
        self.usage
    }

    /// Time the backend spent on this job's operations so far.
    pub(crate) fn busy(&self) -> std::time::Duration {
        self.busy.0
    }

    fn get(&self, handle: i32) -> Result<&Tensor, TensorError> {
        let handle = handle as u32;
        self.live
            .get(&handle)
            .ok_or(if handle == 0 || handle >= self.next {
                TensorError::BadHandle { handle }
            } else {
                TensorError::UseAfterFree { handle }
            })
    }

    /// Checks that `bytes` more fit the limit and another tensor the count.
    fn check_room(&self, bytes: u64) -> Result<(), TensorError> {
        if self.live.len() >= MAX_LIVE_TENSORS {
            return Err(TensorError::TooManyTensors {
                limit: MAX_LIVE_TENSORS,
            });
        }
        if self.bytes.saturating_add(bytes) > self.limit {
            return Err(TensorError::OutOfMemory {
                requested: bytes,
                limit: self.limit,
            });
        }
        Ok(())
    }

    fn insert(&mut self, tensor: Tensor) -> Result<i32, TensorError> {
        self.check_room(tensor.byte_len())?;
        let handle = self.next;
        // Handles are positive i32s; 2^31 allocations cannot fit in any fuel budget.
        if handle > i32::MAX as u32 {
            return Err(TensorError::TooManyTensors {
                limit: i32::MAX as usize,
            });
        }
        self.next += 1;
        self.bytes += tensor.byte_len();
        self.usage.peak_bytes = self.usage.peak_bytes.max(self.bytes);
        self.live.insert(handle, tensor);
        Ok(handle as i32)
    }

    fn free(&mut self, handle: i32) -> Result<(), TensorError> {
        self.get(handle)?;
        if let Some(t) = self.live.remove(&(handle as u32)) {
            self.bytes -= t.byte_len();
        }
        Ok(())
    }

    fn op_cost(&self, plan: &Plan) -> u64 {
        plan.element_work
            .saturating_mul(self.fuel.tensor_per_element)
            .saturating_add(plan.macs.saturating_mul(self.fuel.tensor_per_mac))
    }
}

/// What the `cairn_tensor` imports need of a store's data: the job's tensors. (A trait, so
/// that this module does not depend on the sandbox's own host state.)
pub(crate) trait HasTensors: 'static {
    /// The job's tensors.
    fn tensors(&mut self) -> &mut TensorTable;
    /// The job's tensors, read only.
    fn tensors_ref(&self) -> &TensorTable;
}

/// Adds the `cairn_tensor` functions to `linker`.
pub(crate) fn add_to_linker<T: HasTensors>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    linker.func_wrap(MODULE, "upload", upload::<T>)?;
    linker.func_wrap(MODULE, "read", read::<T>)?;
    linker.func_wrap(MODULE, "free", |mut c: Caller<'_, T>, h: i32| {
        c.data_mut().tensors().free(h).map_err(wasmtime::Error::new)
    })?;
    linker.func_wrap(MODULE, "rows", |c: Caller<'_, T>, h: i32| {
        meta(&c, h, |t| t.rows() as i32)
    })?;
    linker.func_wrap(MODULE, "cols", |c: Caller<'_, T>, h: i32| {
        meta(&c, h, |t| t.cols() as i32)
    })?;
    linker.func_wrap(MODULE, "dtype", |c: Caller<'_, T>, h: i32| {
        meta(&c, h, |t| t.dtype() as i32)
    })?;
    add_ops(linker)
}

/// The operations.
fn add_ops<T: HasTensors>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    linker.func_wrap(MODULE, "matmul", |c: Caller<'_, T>, a: i32, b: i32| {
        run(c, Op::MatMul, &[a, b])
    })?;
    linker.func_wrap(MODULE, "add", |c: Caller<'_, T>, a: i32, b: i32| {
        run(c, Op::Add, &[a, b])
    })?;
    linker.func_wrap(MODULE, "mul", |c: Caller<'_, T>, a: i32, b: i32| {
        run(c, Op::Mul, &[a, b])
    })?;
    linker.func_wrap(
        MODULE,
        "requantize",
        |c: Caller<'_, T>, a: i32, code: i32, scale: f32| {
            let dtype = DType::from_code(code)
                .ok_or(TensorError::BadDType { code })
                .map_err(wasmtime::Error::new)?;
            run(c, Op::Requantize { dtype, scale }, &[a])
        },
    )?;
    linker.func_wrap(MODULE, "relu", |c: Caller<'_, T>, a: i32| {
        run(c, Op::Relu, &[a])
    })?;
    linker.func_wrap(MODULE, "gelu", |c: Caller<'_, T>, a: i32| {
        run(c, Op::Gelu, &[a])
    })?;
    linker.func_wrap(MODULE, "softmax", |c: Caller<'_, T>, a: i32| {
        run(c, Op::Softmax, &[a])
    })?;
    linker.func_wrap(MODULE, "argmax", |c: Caller<'_, T>, a: i32| {
        run(c, Op::Argmax, &[a])
    })?;
    linker.func_wrap(MODULE, "transpose", |c: Caller<'_, T>, a: i32| {
        run(c, Op::Transpose, &[a])
    })?;
    linker.func_wrap(
        MODULE,
        "layer_norm",
        |c: Caller<'_, T>, x: i32, g: i32, b: i32, eps: f32| {
            run(c, Op::LayerNorm { eps }, &[x, g, b])
        },
    )?;
    linker.func_wrap(
        MODULE,
        "rms_norm",
        |c: Caller<'_, T>, x: i32, g: i32, eps: f32| run(c, Op::RmsNorm { eps }, &[x, g]),
    )?;
    Ok(())
}

fn meta<T: HasTensors>(
    c: &Caller<'_, T>,
    h: i32,
    f: impl Fn(&Tensor) -> i32,
) -> wasmtime::Result<i32> {
    c.data()
        .tensors_ref()
        .get(h)
        .map(f)
        .map_err(wasmtime::Error::new)
}

/// Runs `op` on the tensors `handles`: check, charge fuel, check memory, compute, store.
fn run<T: HasTensors>(mut caller: Caller<'_, T>, op: Op, handles: &[i32]) -> wasmtime::Result<i32> {
    let (plan, cost) = {
        let table = caller.data().tensors_ref();
        let inputs = inputs(table, handles)?;
        let plan = op.check(&inputs).map_err(wasmtime::Error::new)?;
        (plan, table.op_cost(&plan))
    };
    caller
        .data()
        .tensors_ref()
        .check_room(plan.out_bytes())
        .map_err(wasmtime::Error::new)?;
    charge(&mut caller, cost)?;
    let table = caller.data_mut().tensors();
    let started = std::time::Instant::now();
    let out = {
        let inputs = inputs(table, handles)?;
        table
            .backend
            .execute(op, &plan, &inputs)
            .map_err(wasmtime::Error::new)?
    };
    table.busy.0 += started.elapsed();
    table.usage.ops += 1;
    table.insert(out).map_err(wasmtime::Error::new)
}

fn inputs<'t>(table: &'t TensorTable, handles: &[i32]) -> wasmtime::Result<Vec<&'t Tensor>> {
    handles
        .iter()
        .map(|&h| table.get(h).map_err(wasmtime::Error::new))
        .collect()
}

/// `upload(dtype, rows, cols, ptr, len) -> handle`: copies a tensor out of guest memory.
fn upload<T: HasTensors>(
    mut caller: Caller<'_, T>,
    code: i32,
    rows: i32,
    cols: i32,
    ptr: i32,
    len: i32,
) -> wasmtime::Result<i32> {
    let dtype = DType::from_code(code)
        .ok_or(TensorError::BadDType { code })
        .map_err(wasmtime::Error::new)?;
    let (r, c) = dims(rows, cols)?;
    let expected = byte_size(dtype, r, c).map_err(wasmtime::Error::new)?;
    let got = len as u32 as u64;
    if got != expected {
        return Err(wasmtime::Error::new(TensorError::BadLength {
            expected,
            got,
        }));
    }
    let table = caller.data().tensors_ref();
    table.check_room(expected).map_err(wasmtime::Error::new)?;
    let cost = expected.saturating_mul(table.fuel.per_byte);
    charge(&mut caller, cost)?;
    let memory = memory(&mut caller)?;
    let (mem, state) = memory.data_and_store_mut(&mut caller);
    let bytes = guest_range(mem, ptr, len)?;
    let tensor = Tensor::from_le_bytes(dtype, r, c, bytes).map_err(wasmtime::Error::new)?;
    state.tensors().insert(tensor).map_err(wasmtime::Error::new)
}

/// `read(handle, ptr, len)`: copies a tensor's bytes into guest memory.
fn read<T: HasTensors>(
    mut caller: Caller<'_, T>,
    h: i32,
    ptr: i32,
    len: i32,
) -> wasmtime::Result<()> {
    let table = caller.data().tensors_ref();
    let expected = table.get(h).map_err(wasmtime::Error::new)?.byte_len();
    let got = len as u32 as u64;
    if got != expected {
        return Err(wasmtime::Error::new(TensorError::BadLength {
            expected,
            got,
        }));
    }
    let cost = expected.saturating_mul(table.fuel.per_byte);
    charge(&mut caller, cost)?;
    let memory = memory(&mut caller)?;
    let (mem, state) = memory.data_and_store_mut(&mut caller);
    let dest = guest_range_mut(mem, ptr, len)?;
    let tensor = state.tensors().get(h).map_err(wasmtime::Error::new)?;
    dest.copy_from_slice(&tensor.to_le_bytes());
    Ok(())
}

/// A guest's `rows` and `cols`, or `bad_shape` when either is not positive.
fn dims(rows: i32, cols: i32) -> wasmtime::Result<(usize, usize)> {
    match (usize::try_from(rows), usize::try_from(cols)) {
        (Ok(r), Ok(c)) => Ok((r, c)),
        _ => Err(wasmtime::Error::new(TensorError::BadShape {
            rows: rows.into(),
            cols: cols.into(),
        })),
    }
}

fn memory<T: HasTensors>(caller: &mut Caller<'_, T>) -> wasmtime::Result<wasmtime::Memory> {
    caller
        .get_export("memory")
        .and_then(|e| e.into_memory())
        .ok_or(wasmtime::Error::new(TensorError::NoMemory))
}

fn out_of_bounds(ptr: i32, len: i32) -> wasmtime::Error {
    wasmtime::Error::new(TensorError::OutOfBounds {
        ptr: ptr as u32,
        len: len as u32,
    })
}

fn guest_range(mem: &[u8], ptr: i32, len: i32) -> wasmtime::Result<&[u8]> {
    let (start, n) = (ptr as u32 as usize, len as u32 as usize);
    start
        .checked_add(n)
        .and_then(|end| mem.get(start..end))
        .ok_or_else(|| out_of_bounds(ptr, len))
}

fn guest_range_mut(mem: &mut [u8], ptr: i32, len: i32) -> wasmtime::Result<&mut [u8]> {
    let (start, n) = (ptr as u32 as usize, len as u32 as usize);
    start
        .checked_add(n)
        .and_then(|end| mem.get_mut(start..end))
        .ok_or_else(|| out_of_bounds(ptr, len))
}

/// Takes `cost` fuel before the work, or ends the job with `out_of_fuel` when less is left.
/// Without fuel metering there is nothing to charge.
fn charge<T: HasTensors>(caller: &mut Caller<'_, T>, cost: u64) -> wasmtime::Result<()> {
    let Ok(left) = caller.get_fuel() else {
        return Ok(());
    };
    if cost > left {
        caller.set_fuel(0)?;
        return Err(wasmtime::Error::new(TensorError::OutOfFuel));
    }
    caller.set_fuel(left - cost)
}
