//! The CUDA backend: the kernels of `runtime/kernels/tensor.cu`, shipped as PTX
//! (`tensor.ptx`, made by `gen_ptx.py`) and loaded through `cudarc` with the driver library
//! opened at run time, so this builds and runs on machines without CUDA (where
//! [`CudaBackend::new`] says why it cannot start). Energy comes from NVML's total energy
//! counter of the same device, when NVML is there.
//!
//! Tensors stay on the host between operations: each operation copies its inputs to the device
//! and its output back. Keeping them on the device is a later optimisation; the bits do not
//! depend on it.
//!
//! `unsafe` is needed for the driver calls that `cudarc` cannot check: loading the library
//! (`is_culib_present`) and launching kernels, whose argument lists must match the kernels'
//! signatures in `tensor.cu` (each launch below lists them in the same order).

use std::sync::Arc;

use cudarc::driver::{
    CudaContext, CudaFunction, CudaModule, CudaSlice, CudaStream, DeviceRepr, DriverError,
    LaunchConfig, PushKernelArg, ValidAsZeroBits,
};
use cudarc::nvrtc::Ptx;
use nvml_wrapper::Nvml;

use super::backend::{Backend, BackendInfo, BackendKind};
use super::op::{Op, Plan};
use super::{DType, Tensor, TensorData, TensorError};

/// The kernels, compiled from `runtime/kernels/tensor.cu` by `gen_ptx.py`.
const PTX: &str = include_str!("../../kernels/tensor.ptx");
/// Threads per block of the elementwise kernels.
const THREADS: u32 = 256;
/// Side of the matrix multiply's thread tile (`TILE` in `tensor.cu`).
const TILE: u32 = 16;

/// The CUDA backend on one device.
pub struct CudaBackend {
    stream: Arc<CudaStream>,
    module: Arc<CudaModule>,
    info: BackendInfo,
    nvml: Result<(Nvml, u32), String>,
}

impl std::fmt::Debug for CudaBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaBackend")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl CudaBackend {
    /// The backend on CUDA device `ordinal`, or why it cannot be used here (no driver
    /// library, no device, the PTX does not load).
    pub fn new(ordinal: usize) -> Result<Self, String> {
        // SAFETY: only tries to open the driver library; nothing is called through it yet.
        if !unsafe { cudarc::driver::sys::is_culib_present() } {
            return Err("no CUDA driver library (libcuda.so) on this machine".into());
        }
        let err = |what: &str, e: DriverError| format!("CUDA device {ordinal}: {what}: {e}");
        let ctx = CudaContext::new(ordinal).map_err(|e| err("cannot open", e))?;
        let name = ctx.name().map_err(|e| err("no name", e))?;
        let uuid = ctx.uuid().map_err(|e| err("no uuid", e))?;
        let module = ctx
            .load_module(Ptx::from_src(PTX))
            .map_err(|e| err("the kernels do not load", e))?;
        Ok(Self {
            stream: ctx.default_stream(),
            module,
            info: BackendInfo {
                kind: BackendKind::Cuda,
                device: Some(name),
            },
            nvml: nvml_device(&uuid.bytes),
        })
    }

    fn function(&self, name: &str) -> Result<CudaFunction, DriverError> {
        self.module.load_function(name)
    }

    fn up<T: DeviceRepr>(&self, host: &[T]) -> Result<CudaSlice<T>, DriverError> {
        self.stream.clone_htod(host)
    }

    fn zeros<T: DeviceRepr + ValidAsZeroBits>(
        &self,
        n: usize,
    ) -> Result<CudaSlice<T>, DriverError> {
        self.stream.alloc_zeros(n)
    }

    fn down<T: DeviceRepr>(&self, dev: &CudaSlice<T>) -> Result<Vec<T>, DriverError> {
        self.stream.clone_dtoh(dev)
    }

    fn run(&self, op: Op, plan: &Plan, inputs: &[&Tensor]) -> Result<TensorData, DriverError> {
        let a = inputs[0];
        match op {
            Op::MatMul => self.matmul(a, inputs[1]),
            Op::Add | Op::Mul => self.binary(op, a, inputs[1]),
            Op::Requantize { dtype, scale } => self.requantize(a, dtype, scale),
            Op::Relu => self.unary(a, "relu"),
            Op::Gelu => self.unary(a, "gelu"),
            Op::Softmax | Op::LayerNorm { .. } | Op::RmsNorm { .. } => self.rows(op, inputs),
            Op::Argmax => self.argmax(a, plan.rows),
            Op::Transpose => self.transpose(a),
        }
    }

    fn matmul(&self, a: &Tensor, b: &Tensor) -> Result<TensorData, DriverError> {
        let (m, k, n) = (a.rows() as i32, a.cols() as i32, b.cols() as i32);
        let cfg = LaunchConfig {
            // At most 65535 row tiles per launch; the kernel strides over the rest.
            grid_dim: (
                (n as u32).div_ceil(TILE),
                (m as u32).div_ceil(TILE).min(65_535),
                1,
            ),
            block_dim: (TILE, TILE, 1),
            shared_mem_bytes: 0,
        };
        let len = a.rows() * b.cols();
        match (a.data(), b.data()) {
            (TensorData::F32(x), TensorData::F32(y)) => {
                let (dx, dy, mut out) = (self.up(x)?, self.up(y)?, self.zeros::<f32>(len)?);
                let f = self.function("matmul_f32")?;
                let mut l = self.stream.launch_builder(&f);
                l.arg(&dx).arg(&dy).arg(&mut out).arg(&m).arg(&k).arg(&n);
                // SAFETY: matmul_f32(const float*, const float*, float*, int m, int k, int n).
                unsafe { l.launch(cfg) }?;
                Ok(TensorData::F32(self.down(&out)?))
            }
            (TensorData::I8(x), TensorData::I8(y)) => {
                let (dx, dy, mut out) = (self.up(x)?, self.up(y)?, self.zeros::<i32>(len)?);
                let f = self.function("matmul_i8")?;
                let mut l = self.stream.launch_builder(&f);
                l.arg(&dx).arg(&dy).arg(&mut out).arg(&m).arg(&k).arg(&n);
                // SAFETY: matmul_i8(const i8*, const i8*, int*, int m, int k, int n).
                unsafe { l.launch(cfg) }?;
                Ok(TensorData::I32(self.down(&out)?))
            }
            // `Op::check` admits only these two pairs.
            _ => Ok(TensorData::I32(Vec::new())),
        }
    }

    fn binary(&self, op: Op, a: &Tensor, b: &Tensor) -> Result<TensorData, DriverError> {
        let name = format!("{}_{}", op.name(), a.dtype().name());
        let f = self.function(&name)?;
        let len = (a.rows() * a.cols()) as i64;
        let (cols, bcast) = (a.cols() as i32, i32::from(b.rows() == 1));
        let cfg = elementwise(len);
        macro_rules! go {
            ($x:expr, $y:expr, $t:ty, $wrap:path) => {{
                let (dx, dy, mut out) = (self.up($x)?, self.up($y)?, self.zeros::<$t>($x.len())?);
                let mut l = self.stream.launch_builder(&f);
                l.arg(&dx)
                    .arg(&dy)
                    .arg(&mut out)
                    .arg(&len)
                    .arg(&cols)
                    .arg(&bcast);
                // SAFETY: NAME(const T*, const T*, T*, long long len, int cols, int bcast).
                unsafe { l.launch(cfg) }?;
                Ok($wrap(self.down(&out)?))
            }};
        }
        match (a.data(), b.data()) {
            (TensorData::I8(x), TensorData::I8(y)) => go!(x, y, i8, TensorData::I8),
            (TensorData::I32(x), TensorData::I32(y)) => go!(x, y, i32, TensorData::I32),
            (TensorData::F32(x), TensorData::F32(y)) => go!(x, y, f32, TensorData::F32),
            // `Op::check` admits only equal types.
            _ => Ok(TensorData::I32(Vec::new())),
        }
    }

    fn requantize(&self, a: &Tensor, dtype: DType, scale: f32) -> Result<TensorData, DriverError> {
        let f = self.function(&format!("requantize_{}", a.dtype().name()))?;
        let len = (a.rows() * a.cols()) as i64;
        let code = dtype as i32;
        let cfg = elementwise(len);
        macro_rules! go {
            ($dx:expr, $t:ty, $wrap:path) => {{
                let mut out = self.zeros::<$t>(len as usize)?;
                let mut l = self.stream.launch_builder(&f);
                l.arg(&$dx).arg(&mut out).arg(&len).arg(&scale).arg(&code);
                // SAFETY: requantize_T(const T*, void* out, long long len, float, int dtype),
                // `out` of the type `dtype` names.
                unsafe { l.launch(cfg) }?;
                Ok($wrap(self.down(&out)?))
            }};
        }
        macro_rules! from {
            ($x:expr) => {{
                let dx = self.up($x)?;
                match dtype {
                    DType::I8 => go!(dx, i8, TensorData::I8),
                    DType::I32 => go!(dx, i32, TensorData::I32),
                    DType::F32 => go!(dx, f32, TensorData::F32),
                }
            }};
        }
        match a.data() {
            TensorData::I8(x) => from!(x),
            TensorData::I32(x) => from!(x),
            TensorData::F32(x) => from!(x),
        }
    }

    fn unary(&self, a: &Tensor, name: &str) -> Result<TensorData, DriverError> {
        let f = self.function(&format!("{name}_{}", a.dtype().name()))?;
        let len = (a.rows() * a.cols()) as i64;
        let cfg = elementwise(len);
        macro_rules! go {
            ($x:expr, $t:ty, $wrap:path) => {{
                let (dx, mut out) = (self.up($x)?, self.zeros::<$t>($x.len())?);
                let mut l = self.stream.launch_builder(&f);
                l.arg(&dx).arg(&mut out).arg(&len);
                // SAFETY: NAME_T(const T*, T*, long long len).
                unsafe { l.launch(cfg) }?;
                Ok($wrap(self.down(&out)?))
            }};
        }
        match a.data() {
            TensorData::I8(x) => go!(x, i8, TensorData::I8),
            TensorData::I32(x) => go!(x, i32, TensorData::I32),
            TensorData::F32(x) => go!(x, f32, TensorData::F32),
        }
    }

    /// Softmax and the norms: one warp per row.
    fn rows(&self, op: Op, inputs: &[&Tensor]) -> Result<TensorData, DriverError> {
        let a = inputs[0];
        let (rows, cols) = (a.rows() as i32, a.cols() as i32);
        let cfg = LaunchConfig {
            grid_dim: (a.rows() as u32, 1, 1),
            block_dim: (32, 1, 1),
            shared_mem_bytes: 0,
        };
        let ups = inputs
            .iter()
            .map(|t| self.up(f32s(t)))
            .collect::<Result<Vec<_>, _>>()?;
        let mut out = self.zeros::<f32>(a.rows() * a.cols())?;
        let f = self.function(&format!("{}_f32", op.name()))?;
        let mut l = self.stream.launch_builder(&f);
        for d in &ups {
            l.arg(d);
        }
        l.arg(&mut out).arg(&rows).arg(&cols);
        let eps = match op {
            Op::LayerNorm { eps } | Op::RmsNorm { eps } => eps,
            _ => 0.0,
        };
        if !matches!(op, Op::Softmax) {
            l.arg(&eps);
        }
        // SAFETY: softmax_f32(const float*, float*, int, int); layer_norm_f32(x, gamma, beta,
        // out, rows, cols, float eps); rms_norm_f32(x, gamma, out, rows, cols, float eps).
        unsafe { l.launch(cfg) }?;
        Ok(TensorData::F32(self.down(&out)?))
    }

    fn argmax(&self, a: &Tensor, rows: usize) -> Result<TensorData, DriverError> {
        let f = self.function(&format!("argmax_{}", a.dtype().name()))?;
        let (r, c) = (rows as i32, a.cols() as i32);
        let cfg = elementwise(rows as i64);
        let mut out = self.zeros::<i32>(rows)?;
        macro_rules! go {
            ($x:expr) => {{
                let dx = self.up($x)?;
                let mut l = self.stream.launch_builder(&f);
                l.arg(&dx).arg(&mut out).arg(&r).arg(&c);
                // SAFETY: argmax_T(const T*, int* out, int rows, int cols).
                unsafe { l.launch(cfg) }?;
            }};
        }
        match a.data() {
            TensorData::I8(x) => go!(x),
            TensorData::I32(x) => go!(x),
            TensorData::F32(x) => go!(x),
        }
        Ok(TensorData::I32(self.down(&out)?))
    }
}

impl CudaBackend {
    fn transpose(&self, a: &Tensor) -> Result<TensorData, DriverError> {
        let f = self.function(&format!("transpose_{}", a.dtype().name()))?;
        let (rows, cols) = (a.rows() as i32, a.cols() as i32);
        let len = (a.rows() * a.cols()) as i64;
        let cfg = elementwise(len);
        macro_rules! go {
            ($x:expr, $t:ty, $wrap:path) => {{
                let (dx, mut out) = (self.up($x)?, self.zeros::<$t>($x.len())?);
                let mut l = self.stream.launch_builder(&f);
                l.arg(&dx).arg(&mut out).arg(&rows).arg(&cols);
                // SAFETY: transpose_T(const T*, T* out, int rows, int cols).
                unsafe { l.launch(cfg) }?;
                Ok($wrap(self.down(&out)?))
            }};
        }
        match a.data() {
            TensorData::I8(x) => go!(x, i8, TensorData::I8),
            TensorData::I32(x) => go!(x, i32, TensorData::I32),
            TensorData::F32(x) => go!(x, f32, TensorData::F32),
        }
    }
}

impl Backend for CudaBackend {
    fn info(&self) -> &BackendInfo {
        &self.info
    }

    fn execute(&self, op: Op, plan: &Plan, inputs: &[&Tensor]) -> Result<Tensor, TensorError> {
        let data = self
            .run(op, plan, inputs)
            .map_err(|e| TensorError::Device {
                message: format!("{}: {e}", op.name()),
            })?;
        Tensor::new(plan.rows, plan.cols, data)
    }

    fn energy_counter_mj(&self) -> Result<u64, String> {
        let (nvml, index) = self.nvml.as_ref().map_err(Clone::clone)?;
        nvml.device_by_index(*index)
            .and_then(|d| d.total_energy_consumption())
            .map_err(|e| format!("NVML energy counter: {e}"))
    }
}

/// One thread per element, [`THREADS`] per block.
fn elementwise(len: i64) -> LaunchConfig {
    LaunchConfig {
        grid_dim: ((len as u64).div_ceil(u64::from(THREADS)) as u32, 1, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    }
}

fn f32s(t: &Tensor) -> &[f32] {
    match t.data() {
        TensorData::F32(v) => v,
        _ => &[],
    }
}

/// Where NVML lives on machines whose loader path lacks the driver's folder (as `cairn gpu`).
const NVML_FALLBACK_PATHS: [&str; 2] = [
    "/usr/local/nvidia/lib64/libnvidia-ml.so.1",
    "/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1",
];

fn open_nvml() -> Result<Nvml, String> {
    let first = match Nvml::init() {
        Ok(nvml) => return Ok(nvml),
        Err(e) => e,
    };
    for path in NVML_FALLBACK_PATHS {
        if std::path::Path::new(path).exists()
            && let Ok(nvml) = Nvml::builder().lib_path(std::ffi::OsStr::new(path)).init()
        {
            return Ok(nvml);
        }
    }
    Err(format!("NVML unavailable (libnvidia-ml.so.1): {first}"))
}

/// NVML and the index of the device whose UUID is `uuid`, or why energy cannot be read.
fn nvml_device(uuid: &[std::ffi::c_char; 16]) -> Result<(Nvml, u32), String> {
    let b: Vec<u8> = uuid.iter().map(|&c| c as u8).collect();
    let hex = |r: std::ops::Range<usize>| hex::encode(&b[r]);
    let want = format!(
        "GPU-{}-{}-{}-{}-{}",
        hex(0..4),
        hex(4..6),
        hex(6..8),
        hex(8..10),
        hex(10..16)
    );
    let nvml = open_nvml()?;
    let count = nvml.device_count().map_err(|e| format!("NVML: {e}"))?;
    for index in 0..count {
        let matches = nvml
            .device_by_index(index)
            .and_then(|d| d.uuid())
            .is_ok_and(|u| u.eq_ignore_ascii_case(&want));
        if matches {
            return Ok((nvml, index));
        }
    }
    Err(format!("NVML does not list the CUDA device {want}"))
}
