//! Safe bindings to Cairn's tensor host API (`cairn_tensor`), for guest modules built for
//! `wasm32-wasip1`.
//!
//! A [`Tensor`] is a handle to a row-major matrix held by the host (on the CPU or a GPU):
//! upload inputs and weights once, chain operations without copying through the guest, and
//! read back only results. The handle is freed when the `Tensor` is dropped. Every operation is
//! defined exactly in Cairn's `docs/runtime.md`, so every provider computes the same bits.
//!
//! Misuse (mismatched shapes or types, a shape too large, more memory than the job's limit) ends
//! the job with a trap whose message starts with `tensor:`; these functions never return an
//! error because the job does not continue after one.
#![deny(missing_docs)]

/// Element type of a tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    /// Signed 8-bit integer.
    I8 = 0,
    /// Signed 32-bit integer.
    I32 = 1,
    /// IEEE-754 binary32.
    F32 = 2,
}

mod sys {
    #[link(wasm_import_module = "cairn_tensor")]
    unsafe extern "C" {
        pub fn upload(dtype: i32, rows: i32, cols: i32, ptr: *const u8, len: i32) -> i32;
        pub fn read(handle: i32, ptr: *mut u8, len: i32);
        pub fn free(handle: i32);
        pub fn rows(handle: i32) -> i32;
        pub fn cols(handle: i32) -> i32;
        pub fn matmul(a: i32, b: i32) -> i32;
        pub fn add(a: i32, b: i32) -> i32;
        pub fn mul(a: i32, b: i32) -> i32;
        pub fn requantize(a: i32, dtype: i32, scale: f32) -> i32;
        pub fn relu(a: i32) -> i32;
        pub fn gelu(a: i32) -> i32;
        pub fn softmax(a: i32) -> i32;
        pub fn argmax(a: i32) -> i32;
        pub fn layer_norm(x: i32, gamma: i32, beta: i32, eps: f32) -> i32;
        pub fn rms_norm(x: i32, gamma: i32, eps: f32) -> i32;
        pub fn transpose(a: i32) -> i32;
    }
}

/// A host tensor: a `rows × cols` row-major matrix behind a handle.
#[derive(Debug)]
pub struct Tensor {
    handle: i32,
}

/// Element types that can be uploaded and read back.
pub trait Element: Copy + Default {
    /// The element's [`DType`].
    const DTYPE: DType;
    /// Appends the element's little-endian bytes.
    fn put(self, out: &mut Vec<u8>);
    /// The element from its little-endian bytes.
    fn get(bytes: &[u8]) -> Self;
}

impl Element for i8 {
    const DTYPE: DType = DType::I8;
    fn put(self, out: &mut Vec<u8>) {
        out.push(self as u8);
    }
    fn get(bytes: &[u8]) -> Self {
        bytes[0] as i8
    }
}

impl Element for i32 {
    const DTYPE: DType = DType::I32;
    fn put(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
    fn get(bytes: &[u8]) -> Self {
        i32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
    }
}

impl Element for f32 {
    const DTYPE: DType = DType::F32;
    fn put(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
    fn get(bytes: &[u8]) -> Self {
        f32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
    }
}

impl DType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::I8 => 1,
            DType::I32 | DType::F32 => 4,
        }
    }
}

impl Tensor {
    fn wrap(handle: i32) -> Self {
        Self { handle }
    }

    /// Uploads `rows × cols` elements (row-major); panics when `data` has another length.
    pub fn new<T: Element>(rows: usize, cols: usize, data: &[T]) -> Self {
        assert_eq!(data.len(), rows * cols, "tensor data length");
        let mut bytes = Vec::with_capacity(data.len() * T::DTYPE.size());
        for &x in data {
            x.put(&mut bytes);
        }
        Self::from_bytes(T::DTYPE, rows, cols, &bytes)
    }

    /// Uploads `rows × cols` elements of `dtype` given as little-endian bytes.
    pub fn from_bytes(dtype: DType, rows: usize, cols: usize, bytes: &[u8]) -> Self {
        // SAFETY: the host reads `bytes.len()` bytes at `bytes.as_ptr()`, which is valid.
        Self::wrap(unsafe {
            sys::upload(
                dtype as i32,
                rows as i32,
                cols as i32,
                bytes.as_ptr(),
                bytes.len() as i32,
            )
        })
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        // SAFETY: a host call on our own handle.
        unsafe { sys::rows(self.handle) as usize }
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        // SAFETY: a host call on our own handle.
        unsafe { sys::cols(self.handle) as usize }
    }

    /// The elements' little-endian bytes, `len` of them.
    pub fn to_bytes(&self, len: usize) -> Vec<u8> {
        let mut out = vec![0u8; len];
        // SAFETY: the host writes exactly `len` bytes into `out`, or traps.
        unsafe { sys::read(self.handle, out.as_mut_ptr(), len as i32) };
        out
    }

    /// Reads the elements back; `T` must be the tensor's type (the host traps otherwise, as
    /// the length would not match for a different element size).
    pub fn to_vec<T: Element>(&self) -> Vec<T> {
        let n = self.rows() * self.cols();
        let bytes = self.to_bytes(n * T::DTYPE.size());
        bytes.chunks_exact(T::DTYPE.size()).map(T::get).collect()
    }

    /// Matrix product: `i8 × i8 → i32` (exact) or `f32 × f32 → f32`.
    pub fn matmul(&self, b: &Tensor) -> Tensor {
        // SAFETY: host calls on handles only.
        Self::wrap(unsafe { sys::matmul(self.handle, b.handle) })
    }

    /// Elementwise sum; `b` the same shape or one row (added to every row).
    pub fn add(&self, b: &Tensor) -> Tensor {
        // SAFETY: host calls on handles only.
        Self::wrap(unsafe { sys::add(self.handle, b.handle) })
    }

    /// Elementwise product; `b` the same shape or one row.
    pub fn mul(&self, b: &Tensor) -> Tensor {
        // SAFETY: host calls on handles only.
        Self::wrap(unsafe { sys::mul(self.handle, b.handle) })
    }

    /// Each element times `scale` (in `f32`), converted to `dtype` (round half to even,
    /// saturating).
    pub fn requantize(&self, dtype: DType, scale: f32) -> Tensor {
        // SAFETY: host calls on handles only.
        Self::wrap(unsafe { sys::requantize(self.handle, dtype as i32, scale) })
    }

    /// `max(x, 0)` elementwise.
    pub fn relu(&self) -> Tensor {
        // SAFETY: host calls on handles only.
        Self::wrap(unsafe { sys::relu(self.handle) })
    }

    /// GELU (tanh form), `f32` only.
    pub fn gelu(&self) -> Tensor {
        // SAFETY: host calls on handles only.
        Self::wrap(unsafe { sys::gelu(self.handle) })
    }

    /// Softmax of each row, `f32` only.
    pub fn softmax(&self) -> Tensor {
        // SAFETY: host calls on handles only.
        Self::wrap(unsafe { sys::softmax(self.handle) })
    }

    /// The first index of each row's maximum, as an `m × 1` `i32` tensor.
    pub fn argmax(&self) -> Tensor {
        // SAFETY: host calls on handles only.
        Self::wrap(unsafe { sys::argmax(self.handle) })
    }

    /// Layer norm of each row with `gamma` and `beta` (each one row), `f32` only.
    pub fn layer_norm(&self, gamma: &Tensor, beta: &Tensor, eps: f32) -> Tensor {
        // SAFETY: host calls on handles only.
        Self::wrap(unsafe { sys::layer_norm(self.handle, gamma.handle, beta.handle, eps) })
    }

    /// RMS norm of each row with `gamma` (one row), `f32` only.
    pub fn rms_norm(&self, gamma: &Tensor, eps: f32) -> Tensor {
        // SAFETY: host calls on handles only.
        Self::wrap(unsafe { sys::rms_norm(self.handle, gamma.handle, eps) })
    }
}

impl Tensor {
    /// The transpose (`cols × rows`).
    pub fn transpose(&self) -> Tensor {
        // SAFETY: host calls on handles only.
        Self::wrap(unsafe { sys::transpose(self.handle) })
    }
}

impl Drop for Tensor {
    fn drop(&mut self) {
        // SAFETY: each handle is freed once, here.
        unsafe { sys::free(self.handle) }
    }
}
