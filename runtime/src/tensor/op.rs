//! The operations: what each accepts, the shape and type it returns, and what it costs. The
//! arithmetic itself is in the backends.

use super::{Backend, DType, Tensor, TensorError};

/// One tensor operation. Inputs are listed with each variant; every output is a new tensor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Op {
    /// `[a (m×k), b (k×n)]` → `m×n`: `i8×i8→i32` (exact, wrapping) or `f32×f32→f32`
    /// (`acc = +0; acc = acc + a[i][p] * b[p][j]` for `p = 0, 1, …, k-1`).
    MatMul,
    /// `[a, b]` → elementwise `a + b` (same type; `b` the same shape or one row, broadcast).
    /// Integers wrap.
    Add,
    /// `[a, b]` → elementwise `a * b`, like [`Op::Add`].
    Mul,
    /// `[a]` → `to(dtype, f32(x) * scale)`: to `f32` as is (NaN canonical), to an integer type
    /// by round half to even, saturating, NaN to 0.
    Requantize {
        /// The output type.
        dtype: DType,
        /// The scale, one `f32` multiplication.
        scale: f32,
    },
    /// `[a]` → `x > 0 ? x : 0` (any type).
    Relu,
    /// `[a f32]` → [`math::gelu`](super::math::gelu) of each element.
    Gelu,
    /// `[a f32]` → row-wise softmax.
    Softmax,
    /// `[x f32, gamma 1×n f32, beta 1×n f32]` → row-wise layer norm.
    LayerNorm {
        /// Added to the variance.
        eps: f32,
    },
    /// `[x f32, gamma 1×n f32]` → row-wise RMS norm.
    RmsNorm {
        /// Added to the mean square.
        eps: f32,
    },
    /// `[a]` → `m×1 i32`: the first index of each row's maximum (any type).
    Argmax,
    /// `[a (m×n)]` → `n×m`: `out[j][i] = a[i][j]` (any type).
    Transpose,
}

/// What [`Op::check`] found: the output's type and shape, and the work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Output type.
    pub dtype: DType,
    /// Output rows.
    pub rows: usize,
    /// Output columns.
    pub cols: usize,
    /// Multiply-accumulates (matrix multiply only).
    pub macs: u64,
    /// Element work: input elements times the operation's weight.
    pub element_work: u64,
}

impl Plan {
    /// Output size in bytes.
    pub fn out_bytes(&self) -> u64 {
        (self.rows * self.cols * self.dtype.size()) as u64
    }
}

impl Op {
    /// The operation's name in the import module and in errors.
    pub fn name(&self) -> &'static str {
        match self {
            Self::MatMul => "matmul",
            Self::Add => "add",
            Self::Mul => "mul",
            Self::Requantize { .. } => "requantize",
            Self::Relu => "relu",
            Self::Gelu => "gelu",
            Self::Softmax => "softmax",
            Self::LayerNorm { .. } => "layer_norm",
            Self::RmsNorm { .. } => "rms_norm",
            Self::Argmax => "argmax",
            Self::Transpose => "transpose",
        }
    }

    /// Number of input tensors.
    pub fn arity(&self) -> usize {
        match self {
            Self::MatMul | Self::Add | Self::Mul | Self::RmsNorm { .. } => 2,
            Self::LayerNorm { .. } => 3,
            _ => 1,
        }
    }

    /// Fuel weight per input element of the elementwise and row operations (the `f32`
    /// transcendental ones cost more host time).
    fn weight(&self) -> u64 {
        match self {
            Self::Gelu | Self::Softmax => 16,
            Self::LayerNorm { .. } | Self::RmsNorm { .. } => 4,
            _ => 1,
        }
    }

    /// Checks the inputs' number, types and shapes; returns the output and the work.
    pub fn check(&self, inputs: &[&Tensor]) -> Result<Plan, TensorError> {
        let a = match inputs {
            [a, ..] if inputs.len() == self.arity() => *a,
            // The host always passes `arity` inputs; a wrong count is a caller bug.
            _ => {
                return Err(TensorError::Device {
                    message: format!("{} takes {} inputs", self.name(), self.arity()),
                });
            }
        };
        let (rows, cols) = (a.rows(), a.cols());
        let element_work = (rows * cols) as u64 * self.weight();
        let plan = |dtype, rows, cols| Plan {
            dtype,
            rows,
            cols,
            macs: 0,
            element_work,
        };
        match *self {
            Self::MatMul => self.check_matmul(a, inputs[1]),
            Self::Add | Self::Mul => {
                self.same_type(a, inputs[1])?;
                self.row_or_same(a, inputs[1])?;
                Ok(plan(a.dtype(), rows, cols))
            }
            Self::Requantize { dtype, .. } => Ok(plan(dtype, rows, cols)),
            Self::Relu => Ok(plan(a.dtype(), rows, cols)),
            Self::Argmax => Ok(plan(DType::I32, rows, 1)),
            Self::Transpose => Ok(plan(a.dtype(), cols, rows)),
            Self::Gelu | Self::Softmax => {
                self.f32_only(a)?;
                Ok(plan(DType::F32, rows, cols))
            }
            Self::LayerNorm { .. } | Self::RmsNorm { .. } => {
                for t in inputs {
                    self.f32_only(t)?;
                }
                for g in &inputs[1..] {
                    self.one_row(a, g)?;
                }
                Ok(plan(DType::F32, rows, cols))
            }
        }
    }

    fn check_matmul(&self, a: &Tensor, b: &Tensor) -> Result<Plan, TensorError> {
        self.same_type(a, b)?;
        let dtype = match a.dtype() {
            DType::I8 => DType::I32,
            DType::F32 => DType::F32,
            found => {
                return Err(TensorError::TypeMismatch {
                    op: self.name(),
                    expected: "i8 or f32",
                    found,
                });
            }
        };
        if a.cols() != b.rows() {
            return Err(self.shape_mismatch(a, b));
        }
        let (m, k, n) = (a.rows() as u64, a.cols() as u64, b.cols() as u64);
        Ok(Plan {
            dtype,
            rows: a.rows(),
            cols: b.cols(),
            macs: m.saturating_mul(k).saturating_mul(n),
            element_work: m * n,
        })
    }

    fn same_type(&self, a: &Tensor, b: &Tensor) -> Result<(), TensorError> {
        if a.dtype() != b.dtype() {
            return Err(TensorError::TypeMismatch {
                op: self.name(),
                expected: a.dtype().name(),
                found: b.dtype(),
            });
        }
        Ok(())
    }

    fn f32_only(&self, a: &Tensor) -> Result<(), TensorError> {
        if a.dtype() != DType::F32 {
            return Err(TensorError::TypeMismatch {
                op: self.name(),
                expected: "f32",
                found: a.dtype(),
            });
        }
        Ok(())
    }

    /// `b` has `a`'s shape, or is one row of `a`'s width.
    fn row_or_same(&self, a: &Tensor, b: &Tensor) -> Result<(), TensorError> {
        let fits = b.cols() == a.cols() && (b.rows() == a.rows() || b.rows() == 1);
        if fits {
            Ok(())
        } else {
            Err(self.shape_mismatch(a, b))
        }
    }

    /// `g` is one row of `a`'s width.
    fn one_row(&self, a: &Tensor, g: &Tensor) -> Result<(), TensorError> {
        if g.rows() == 1 && g.cols() == a.cols() {
            Ok(())
        } else {
            Err(self.shape_mismatch(a, g))
        }
    }

    fn shape_mismatch(&self, a: &Tensor, b: &Tensor) -> TensorError {
        TensorError::ShapeMismatch {
            op: self.name(),
            left_rows: a.rows(),
            left_cols: a.cols(),
            right_rows: b.rows(),
            right_cols: b.cols(),
        }
    }
}

/// Checks `op`'s inputs and runs it on `backend`.
pub fn apply(backend: &dyn Backend, op: Op, inputs: &[&Tensor]) -> Result<Tensor, TensorError> {
    let plan = op.check(inputs)?;
    backend.execute(op, &plan, inputs)
}
