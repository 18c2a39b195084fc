//! Why a tensor call failed. In a job every one of these ends the run: most as a `trap` whose
//! message starts with `tensor:`, [`TensorError::OutOfMemory`] as `out_of_memory`,
//! [`TensorError::OutOfFuel`] as `out_of_fuel` and [`TensorError::Device`] as a `host_fault`.

use super::DType;

/// A failed tensor call: a hostile or buggy guest, or (only [`TensorError::Device`]) the host.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TensorError {
    /// No tensor was ever created with this handle.
    #[error("bad handle {handle}: no tensor has this handle")]
    BadHandle {
        /// The handle the guest passed.
        handle: u32,
    },
    /// The tensor was freed before this call.
    #[error("use after free: tensor {handle} was already freed")]
    UseAfterFree {
        /// The handle the guest passed.
        handle: u32,
    },
    /// An unknown element-type code.
    #[error("bad dtype code {code}: use 0 (i8), 1 (i32) or 2 (f32)")]
    BadDType {
        /// The code the guest passed.
        code: i32,
    },
    /// A shape with a zero, negative or too large dimension, or whose size overflows.
    #[error(
        "bad shape {rows}x{cols}: each dimension must be between 1 and 16777216 and the size must fit"
    )]
    BadShape {
        /// Rows asked for.
        rows: i64,
        /// Columns asked for.
        cols: i64,
    },
    /// A buffer length that does not match the tensor's size.
    #[error("length mismatch: the tensor has {expected} bytes, the buffer {got}")]
    BadLength {
        /// The tensor's size in bytes.
        expected: u64,
        /// The buffer's length.
        got: u64,
    },
    /// An operand has a type the operation does not accept.
    #[error("type mismatch in {op}: {found} is not allowed here (expected {expected})")]
    TypeMismatch {
        /// The operation.
        op: &'static str,
        /// What it accepts.
        expected: &'static str,
        /// What it got.
        found: DType,
    },
    /// Operand shapes do not fit together.
    #[error("shape mismatch in {op}: {left_rows}x{left_cols} and {right_rows}x{right_cols}")]
    ShapeMismatch {
        /// The operation.
        op: &'static str,
        /// Rows of the first operand.
        left_rows: usize,
        /// Columns of the first operand.
        left_cols: usize,
        /// Rows of the second operand.
        right_rows: usize,
        /// Columns of the second operand.
        right_cols: usize,
    },
    /// A guest pointer and length outside the guest's linear memory.
    #[error("out of bounds: {len} bytes at {ptr} are outside the guest's memory")]
    OutOfBounds {
        /// The guest address.
        ptr: u32,
        /// The length.
        len: u32,
    },
    /// The guest module exports no memory named `memory`.
    #[error("the module exports no memory named `memory`")]
    NoMemory,
    /// More tensors alive at once than allowed.
    #[error("too many tensors: at most {limit} may be alive at once; free some")]
    TooManyTensors {
        /// The limit.
        limit: usize,
    },
    /// The job's tensors would take more memory than its limit.
    #[error("tensor memory: {requested} more bytes would pass the job's limit of {limit}")]
    OutOfMemory {
        /// Bytes the call would allocate.
        requested: u64,
        /// The job's tensor memory limit.
        limit: u64,
    },
    /// The call costs more fuel than the job has left.
    #[error("out of fuel in a tensor call")]
    OutOfFuel,
    /// The device failed (not the guest's fault).
    #[error("device error: {message}")]
    Device {
        /// What the device or driver said.
        message: String,
    },
}
