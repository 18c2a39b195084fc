//! The tensor host API: matrices behind handles, operations with exact definitions, and the
//! backends that run them.
//!
//! Every tensor is a row-major matrix (`rows × cols`, both at least 1) of one [`DType`]. An
//! [`Op`] is defined exactly (integer arithmetic, or a fixed sequence of correctly rounded
//! IEEE-754 `f32` operations; see `docs/runtime.md` and [`math`]), so every [`Backend`] gives the
//! same bits. [`apply`] checks an operation's inputs and runs it on a backend; the sandbox
//! exposes the same operations to guests as the `cairn_tensor` import module, with fuel,
//! memory limits and handles on top.

mod backend;
mod cpu;
// Driver calls and kernel launches need `unsafe`; each block says what it relies on.
#[allow(unsafe_code)]
mod cuda;
mod error;
pub(crate) mod host;
pub mod math;
mod op;

pub use backend::{Backend, BackendChoice, BackendInfo, BackendKind, DeviceReport, Energy, select};
pub use cpu::CpuBackend;
pub use cuda::CudaBackend;
pub use error::TensorError;
pub use host::{MAX_LIVE_TENSORS, TensorUsage};
pub use op::{Op, Plan, apply};

/// Largest number of rows or columns of a tensor: 2^24, so that a row length is exact in
/// `f32` (the norms divide by it).
pub const MAX_DIM: usize = 1 << 24;

/// Element type of a tensor. The discriminant is the code guests pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    /// Signed 8-bit integer.
    I8 = 0,
    /// Signed 32-bit integer.
    I32 = 1,
    /// IEEE-754 binary32.
    F32 = 2,
}

impl DType {
    /// The type with guest code `code`, if any.
    pub fn from_code(code: i32) -> Option<Self> {
        match code {
            0 => Some(Self::I8),
            1 => Some(Self::I32),
            2 => Some(Self::F32),
            _ => None,
        }
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Self::I8 => 1,
            Self::I32 | Self::F32 => 4,
        }
    }

    /// The lower-case name (`i8`, `i32`, `f32`).
    pub fn name(self) -> &'static str {
        match self {
            Self::I8 => "i8",
            Self::I32 => "i32",
            Self::F32 => "f32",
        }
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The elements of a tensor.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    /// `i8` elements.
    I8(Vec<i8>),
    /// `i32` elements.
    I32(Vec<i32>),
    /// `f32` elements.
    F32(Vec<f32>),
}

impl TensorData {
    /// The element type.
    pub fn dtype(&self) -> DType {
        match self {
            Self::I8(_) => DType::I8,
            Self::I32(_) => DType::I32,
            Self::F32(_) => DType::F32,
        }
    }

    fn len(&self) -> usize {
        match self {
            Self::I8(v) => v.len(),
            Self::I32(v) => v.len(),
            Self::F32(v) => v.len(),
        }
    }
}

/// A row-major `rows × cols` matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    rows: usize,
    cols: usize,
    data: TensorData,
}

impl Tensor {
    /// A tensor of `rows × cols` elements, or an error when the shape is empty, too large or
    /// does not match the number of elements.
    pub fn new(rows: usize, cols: usize, data: TensorData) -> Result<Self, TensorError> {
        let elements = check_shape(rows, cols)?;
        if data.len() != elements {
            return Err(TensorError::BadLength {
                expected: elements as u64 * data.dtype().size() as u64,
                got: data.len() as u64 * data.dtype().size() as u64,
            });
        }
        Ok(Self { rows, cols, data })
    }

    /// A tensor of type `dtype` decoded from little-endian `bytes`.
    pub fn from_le_bytes(
        dtype: DType,
        rows: usize,
        cols: usize,
        bytes: &[u8],
    ) -> Result<Self, TensorError> {
        let expected = byte_size(dtype, rows, cols)?;
        if bytes.len() as u64 != expected {
            let got = bytes.len() as u64;
            return Err(TensorError::BadLength { expected, got });
        }
        let data = match dtype {
            DType::I8 => TensorData::I8(bytes.iter().map(|&b| b as i8).collect()),
            DType::I32 => TensorData::I32(words(bytes).map(i32::from_le_bytes).collect()),
            DType::F32 => TensorData::F32(words(bytes).map(f32::from_le_bytes).collect()),
        };
        Self::new(rows, cols, data)
    }

    /// The elements as little-endian bytes.
    pub fn to_le_bytes(&self) -> Vec<u8> {
        match &self.data {
            TensorData::I8(v) => v.iter().map(|&x| x as u8).collect(),
            TensorData::I32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            TensorData::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        }
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.data.dtype()
    }

    /// The elements.
    pub fn data(&self) -> &TensorData {
        &self.data
    }

    /// Size of the elements in bytes.
    pub fn byte_len(&self) -> u64 {
        (self.rows * self.cols * self.dtype().size()) as u64
    }
}

/// Four-byte little-endian words of `bytes` (whose length is a multiple of four).
fn words(bytes: &[u8]) -> impl Iterator<Item = [u8; 4]> + '_ {
    bytes.chunks_exact(4).map(|c| [c[0], c[1], c[2], c[3]])
}

/// The element count of a `rows × cols` tensor, or why that shape is not allowed.
pub(crate) fn check_shape(rows: usize, cols: usize) -> Result<usize, TensorError> {
    if rows == 0 || cols == 0 || rows > MAX_DIM || cols > MAX_DIM {
        return Err(TensorError::BadShape {
            rows: rows as i64,
            cols: cols as i64,
        });
    }
    rows.checked_mul(cols).ok_or(TensorError::BadShape {
        rows: rows as i64,
        cols: cols as i64,
    })
}

/// Bytes of a `rows × cols` tensor of `dtype`, or why that shape is not allowed.
pub(crate) fn byte_size(dtype: DType, rows: usize, cols: usize) -> Result<u64, TensorError> {
    let elements = check_shape(rows, cols)? as u64;
    Ok(elements * dtype.size() as u64)
}
