//! The CPU reference backend. Fast where speed does not change bits: the matrix multiply is
//! blocked and vectorises across columns, but each output still adds its products in the
//! defined order `p = 0, 1, …, k-1`.

use super::backend::{Backend, BackendInfo, BackendKind};
use super::math::{self, canon};
use super::op::{Op, Plan};
use super::{DType, Tensor, TensorData, TensorError};

/// Columns per block of the matrix multiply (one block of a row of C stays in L1).
const BLOCK_COLS: usize = 256;
/// Depth per block of the matrix multiply (a `BLOCK_DEPTH × BLOCK_COLS` panel of B stays in L2).
const BLOCK_DEPTH: usize = 256;

/// The CPU reference backend.
#[derive(Debug, Clone)]
pub struct CpuBackend {
    info: BackendInfo,
}

impl CpuBackend {
    /// The CPU backend.
    pub fn new() -> Self {
        Self {
            info: BackendInfo {
                kind: BackendKind::Cpu,
                device: None,
            },
        }
    }
}

impl Default for CpuBackend {
    fn default() -> Self {
        Self::new()
    }
}

impl Backend for CpuBackend {
    fn info(&self) -> &BackendInfo {
        &self.info
    }

    fn execute(&self, op: Op, plan: &Plan, inputs: &[&Tensor]) -> Result<Tensor, TensorError> {
        let a = inputs[0];
        let data = match op {
            Op::MatMul => matmul(a, inputs[1]),
            Op::Add => binary(a, inputs[1], i8::wrapping_add, i32::wrapping_add, |x, y| {
                x + y
            }),
            Op::Mul => binary(a, inputs[1], i8::wrapping_mul, i32::wrapping_mul, |x, y| {
                x * y
            }),
            Op::Requantize { dtype, scale } => requantize(a, dtype, scale),
            Op::Relu => relu(a),
            Op::Gelu => TensorData::F32(f32s(a).iter().map(|&x| math::gelu(x)).collect()),
            Op::Softmax => rows_f32(a, softmax_row),
            Op::LayerNorm { eps } => layer_norm(a, f32s(inputs[1]), f32s(inputs[2]), eps),
            Op::RmsNorm { eps } => rms_norm(a, f32s(inputs[1]), eps),
            Op::Argmax => argmax(a),
            Op::Transpose => transpose(a),
        };
        Tensor::new(plan.rows, plan.cols, data)
    }
}

/// The `f32` elements of a tensor [`Op::check`] found to be `f32`.
fn f32s(t: &Tensor) -> &[f32] {
    match t.data() {
        TensorData::F32(v) => v,
        _ => &[],
    }
}

fn matmul(a: &Tensor, b: &Tensor) -> TensorData {
    let (m, k, n) = (a.rows(), a.cols(), b.cols());
    match (a.data(), b.data()) {
        (TensorData::I8(x), TensorData::I8(y)) => {
            let mut c = vec![0i32; m * n];
            blocked(m, k, n, &mut c, |crow, p0, p1, j0, j1, i| {
                for p in p0..p1 {
                    // An i8 product fits in i16 (|product| <= 2^14): a 16-bit multiply, then
                    // widen and add (wrapping in i32, as defined).
                    let av = i16::from(x[i * k + p]);
                    for (cv, &bv) in crow.iter_mut().zip(&y[p * n + j0..p * n + j1]) {
                        *cv = cv.wrapping_add(i32::from(av * i16::from(bv)));
                    }
                }
            });
            TensorData::I32(c)
        }
        (TensorData::F32(x), TensorData::F32(y)) => {
            let mut c = vec![0f32; m * n];
            blocked(m, k, n, &mut c, |crow, p0, p1, j0, j1, i| {
                for p in p0..p1 {
                    let av = x[i * k + p];
                    for (cv, &bv) in crow.iter_mut().zip(&y[p * n + j0..p * n + j1]) {
                        *cv += av * bv;
                    }
                }
            });
            TensorData::F32(c.into_iter().map(canon).collect())
        }
        // `Op::check` admits only these two pairs.
        _ => TensorData::I32(Vec::new()),
    }
}

/// Calls `kernel(c[i][j0..j1], p0, p1, j0, j1, i)` over blocks of depth and columns, depth
/// blocks in increasing order, so that every output accumulates `p = 0, 1, …` in order.
fn blocked<T>(
    m: usize,
    k: usize,
    n: usize,
    c: &mut [T],
    mut kernel: impl FnMut(&mut [T], usize, usize, usize, usize, usize),
) {
    for p0 in (0..k).step_by(BLOCK_DEPTH) {
        let p1 = (p0 + BLOCK_DEPTH).min(k);
        for j0 in (0..n).step_by(BLOCK_COLS) {
            let j1 = (j0 + BLOCK_COLS).min(n);
            for i in 0..m {
                kernel(&mut c[i * n + j0..i * n + j1], p0, p1, j0, j1, i);
            }
        }
    }
}

/// Elementwise `a op b`, `b` the same shape or one row broadcast over `a`'s rows.
fn binary(
    a: &Tensor,
    b: &Tensor,
    i8_op: fn(i8, i8) -> i8,
    i32_op: fn(i32, i32) -> i32,
    f32_op: fn(f32, f32) -> f32,
) -> TensorData {
    let cols = a.cols();
    let broadcast = b.rows() == 1;
    fn zip<T: Copy>(x: &[T], y: &[T], cols: usize, bc: bool, f: impl Fn(T, T) -> T) -> Vec<T> {
        x.iter()
            .enumerate()
            .map(|(i, &v)| f(v, y[if bc { i % cols } else { i }]))
            .collect()
    }
    match (a.data(), b.data()) {
        (TensorData::I8(x), TensorData::I8(y)) => TensorData::I8(zip(x, y, cols, broadcast, i8_op)),
        (TensorData::I32(x), TensorData::I32(y)) => {
            TensorData::I32(zip(x, y, cols, broadcast, i32_op))
        }
        (TensorData::F32(x), TensorData::F32(y)) => {
            TensorData::F32(zip(x, y, cols, broadcast, |u, v| canon(f32_op(u, v))))
        }
        // `Op::check` admits only equal types.
        _ => TensorData::I32(Vec::new()),
    }
}

fn requantize(a: &Tensor, dtype: DType, scale: f32) -> TensorData {
    // `f32(x) * scale` for element `i`, without a temporary the size of the tensor.
    let n = a.rows() * a.cols();
    let scaled = |i: usize| match a.data() {
        TensorData::I8(v) => f32::from(v[i]) * scale,
        TensorData::I32(v) => v[i] as f32 * scale,
        TensorData::F32(v) => v[i] * scale,
    };
    match dtype {
        DType::F32 => TensorData::F32((0..n).map(|i| canon(scaled(i))).collect()),
        DType::I32 => TensorData::I32(
            (0..n)
                .map(|i| math::to_int(scaled(i), i32::MIN, i32::MAX))
                .collect(),
        ),
        DType::I8 => TensorData::I8(
            (0..n)
                .map(|i| math::to_int(scaled(i), -128, 127) as i8)
                .collect(),
        ),
    }
}

fn relu(a: &Tensor) -> TensorData {
    match a.data() {
        TensorData::I8(v) => TensorData::I8(v.iter().map(|&x| x.max(0)).collect()),
        TensorData::I32(v) => TensorData::I32(v.iter().map(|&x| x.max(0)).collect()),
        TensorData::F32(v) => {
            TensorData::F32(v.iter().map(|&x| if x > 0.0 { x } else { 0.0 }).collect())
        }
    }
}

/// Applies `row_op(row, out)` to each row of an `f32` tensor.
fn rows_f32(a: &Tensor, mut row_op: impl FnMut(&[f32], &mut [f32])) -> TensorData {
    let cols = a.cols();
    let mut out = vec![0f32; a.rows() * cols];
    for (row, dst) in f32s(a).chunks_exact(cols).zip(out.chunks_exact_mut(cols)) {
        row_op(row, dst);
    }
    TensorData::F32(out)
}

fn softmax_row(row: &[f32], out: &mut [f32]) {
    let m = math::max(row);
    for (o, &x) in out.iter_mut().zip(row) {
        *o = math::exp(x - m);
    }
    let s = math::sum(out);
    for o in out.iter_mut() {
        *o = canon(*o / s);
    }
}

fn layer_norm(a: &Tensor, gamma: &[f32], beta: &[f32], eps: f32) -> TensorData {
    let n = a.cols() as f32;
    rows_f32(a, |row, out| {
        let mean = math::sum(row) / n;
        let var = math::sum_map(row, |x| {
            let d = x - mean;
            d * d
        }) / n;
        let inv = 1.0 / (var + eps).sqrt();
        for (((o, &x), &g), &b) in out.iter_mut().zip(row).zip(gamma).zip(beta) {
            *o = canon(((x - mean) * inv) * g + b);
        }
    })
}

fn rms_norm(a: &Tensor, gamma: &[f32], eps: f32) -> TensorData {
    let n = a.cols() as f32;
    rows_f32(a, |row, out| {
        let ms = math::sum_map(row, |x| x * x) / n;
        let inv = 1.0 / (ms + eps).sqrt();
        for ((o, &x), &g) in out.iter_mut().zip(row).zip(gamma) {
            *o = canon((x * inv) * g);
        }
    })
}

fn argmax(a: &Tensor) -> TensorData {
    let cols = a.cols();
    fn first_max<T: Copy + PartialOrd>(v: &[T], cols: usize) -> Vec<i32> {
        v.chunks_exact(cols)
            .map(|row| {
                let mut best = 0;
                for (j, x) in row.iter().enumerate() {
                    if *x > row[best] {
                        best = j;
                    }
                }
                best as i32
            })
            .collect()
    }
    TensorData::I32(match a.data() {
        TensorData::I8(v) => first_max(v, cols),
        TensorData::I32(v) => first_max(v, cols),
        TensorData::F32(v) => first_max(v, cols),
    })
}

fn transpose(a: &Tensor) -> TensorData {
    let (rows, cols) = (a.rows(), a.cols());
    fn t<T: Copy>(v: &[T], rows: usize, cols: usize) -> Vec<T> {
        (0..rows * cols)
            .map(|o| v[(o % rows) * cols + o / rows])
            .collect()
    }
    match a.data() {
        TensorData::I8(v) => TensorData::I8(t(v, rows, cols)),
        TensorData::I32(v) => TensorData::I32(t(v, rows, cols)),
        TensorData::F32(v) => TensorData::F32(t(v, rows, cols)),
    }
}
