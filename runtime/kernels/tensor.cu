// Cairn's tensor kernels: the exact definitions of docs/runtime.md ("Tensor operations") on an
// NVIDIA GPU. Every f32 operation is an explicitly rounded intrinsic (__fadd_rn, __fmul_rn,
// __fdiv_rn, __fsqrt_rn, rintf), which the compiler never contracts into an FMA, so each kernel
// gives the bits of the CPU reference (runtime/src/tensor/cpu.rs and math.rs).
//
// Compiled to tensor.ptx by gen_ptx.py (NVRTC, no CUDA toolkit needed to build Cairn); the
// driver JIT-compiles the PTX for the GPU at hand.

#define CANON_NAN 0x7fc00000
#define I32_MIN (-2147483647 - 1)

__device__ __forceinline__ float canon(float x) { return isnan(x) ? __int_as_float(CANON_NAN) : x; }

// ---- math.rs ----

__device__ float cairn_exp(float x) {
  if (isnan(x)) return __int_as_float(CANON_NAN);
  if (x > 88.0f) return __int_as_float(0x7f800000);
  if (x < -87.0f) return 0.0f;
  float k = rintf(__fmul_rn(x, __int_as_float(0x3fb8aa3b)));
  float r = __fsub_rn(x, __fmul_rn(k, __int_as_float(0x3f318000)));
  r = __fsub_rn(r, __fmul_rn(k, __int_as_float(0xb95e8083)));
  float p = __int_as_float(0x3ab60b61);
  p = __fadd_rn(__fmul_rn(p, r), __int_as_float(0x3c088889));
  p = __fadd_rn(__fmul_rn(p, r), __int_as_float(0x3d2aaaab));
  p = __fadd_rn(__fmul_rn(p, r), __int_as_float(0x3e2aaaab));
  p = __fadd_rn(__fmul_rn(p, r), 0.5f);
  p = __fadd_rn(__fmul_rn(p, r), 1.0f);
  p = __fadd_rn(__fmul_rn(p, r), 1.0f);
  return __fmul_rn(p, __int_as_float(((int)k + 127) << 23));
}

__device__ float cairn_tanh(float u) {
  if (isnan(u)) return __int_as_float(CANON_NAN);
  float a = fabsf(u);
  float e = cairn_exp(__fadd_rn(a, a));
  float t = __fsub_rn(1.0f, __fdiv_rn(2.0f, __fadd_rn(e, 1.0f)));
  return u < 0.0f ? -t : t;
}

__device__ float cairn_gelu(float x) {
  float cube = __fmul_rn(__fmul_rn(x, x), x);
  float inner = __fadd_rn(x, __fmul_rn(__int_as_float(0x3d372713), cube));
  float t = cairn_tanh(__fmul_rn(__int_as_float(0x3f4c422a), inner));
  return canon(__fmul_rn(__fmul_rn(0.5f, x), __fadd_rn(1.0f, t)));
}

// The 32-lane sum, one warp per row: lane l adds elements l, l+32, ... in order, then the
// lanes fold with offsets 16, 8, 4, 2, 1 (lane[l] = lane[l] + lane[l+w]). Lane 0 has the sum;
// every lane returns it.
__device__ float warp_sum(float lane) {
  for (int w = 16; w > 0; w >>= 1) lane = __fadd_rn(lane, __shfl_down_sync(0xffffffffu, lane, w));
  return __shfl_sync(0xffffffffu, lane, 0);
}

__device__ float row_max(const float* row, int n) {
  float m = row[0];
  for (int i = 1; i < n; ++i)
    if (row[i] > m) m = row[i];
  return m;
}

__device__ __forceinline__ int to_int(float y, int lo, int hi) {
  if (isnan(y)) return 0;
  float r = rintf(y);
  if (r >= 2147483648.0f) return hi;
  if (r < -2147483648.0f) return lo;
  int v = (int)r;
  return v < lo ? lo : (v > hi ? hi : v);
}

// ---- matmul ----

#define TILE 16

// C (m x n) = A (m x k) . B (k x n), one output per thread; acc = +0, then acc + a*b for
// p = 0, 1, ..., k-1, each product and sum rounded. Tiles never pad with zeros (that would
// turn -0 into +0): the inner loop stops at k.
extern "C" __global__ void matmul_f32(const float* a, const float* b, float* c, int m, int k, int n) {
  __shared__ float as[TILE][TILE];
  __shared__ float bs[TILE][TILE];
  int tx = threadIdx.x, ty = threadIdx.y;
  int col = blockIdx.x * TILE + tx;
  // gridDim.y is at most 65535: row tiles beyond it are taken in strides (uniform per block).
  for (int by = blockIdx.y; by * TILE < m; by += gridDim.y) {
    int row = by * TILE + ty;
    float acc = 0.0f;
    for (int t = 0; t < k; t += TILE) {
      as[ty][tx] = (row < m && t + tx < k) ? a[(long long)row * k + t + tx] : 0.0f;
      bs[ty][tx] = (t + ty < k && col < n) ? b[(long long)(t + ty) * n + col] : 0.0f;
      __syncthreads();
      int lim = min(TILE, k - t);
      for (int p = 0; p < lim; ++p) acc = __fadd_rn(acc, __fmul_rn(as[ty][p], bs[p][tx]));
      __syncthreads();
    }
    if (row < m && col < n) c[(long long)row * n + col] = canon(acc);
  }
}

// i8 x i8 -> i32, wrapping (unsigned arithmetic: exact modulo 2^32 in any order).
extern "C" __global__ void matmul_i8(const signed char* a, const signed char* b, int* c, int m, int k, int n) {
  __shared__ int as[TILE][TILE];
  __shared__ int bs[TILE][TILE];
  int tx = threadIdx.x, ty = threadIdx.y;
  int col = blockIdx.x * TILE + tx;
  for (int by = blockIdx.y; by * TILE < m; by += gridDim.y) {
    int row = by * TILE + ty;
    unsigned acc = 0;
    for (int t = 0; t < k; t += TILE) {
      as[ty][tx] = (row < m && t + tx < k) ? a[(long long)row * k + t + tx] : 0;
      bs[ty][tx] = (t + ty < k && col < n) ? b[(long long)(t + ty) * n + col] : 0;
      __syncthreads();
      for (int p = 0; p < TILE; ++p) acc += (unsigned)(as[ty][p] * bs[p][tx]);
      __syncthreads();
    }
    if (row < m && col < n) c[(long long)row * n + col] = (int)acc;
  }
}

// ---- elementwise: out[i] = a[i] op b[bcast ? i % cols : i] ----

#define BINARY(NAME, T, EXPR)                                                                  \
  extern "C" __global__ void NAME(const T* a, const T* b, T* out, long long len, int cols,      \
                                  int bcast) {                                                 \
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;                            \
    if (i >= len) return;                                                                      \
    T x = a[i];                                                                                \
    T y = b[bcast ? i % cols : i];                                                             \
    out[i] = EXPR;                                                                             \
  }

BINARY(add_f32, float, canon(__fadd_rn(x, y)))
BINARY(mul_f32, float, canon(__fmul_rn(x, y)))
BINARY(add_i32, int, (int)((unsigned)x + (unsigned)y))
BINARY(mul_i32, int, (int)((unsigned)x * (unsigned)y))
BINARY(add_i8, signed char, (signed char)(unsigned char)((unsigned)x + (unsigned)y))
BINARY(mul_i8, signed char, (signed char)(unsigned char)((unsigned)x * (unsigned)y))

// ---- requantize: y = f32(x) * scale, then to the output type ----

__device__ __forceinline__ void store_q(float y, int out_dtype, void* out, long long i) {
  if (out_dtype == 2) ((float*)out)[i] = canon(y);
  else if (out_dtype == 1) ((int*)out)[i] = to_int(y, I32_MIN, 2147483647);
  else ((signed char*)out)[i] = (signed char)to_int(y, -128, 127);
}

#define REQUANT(NAME, T, CONV)                                                                 \
  extern "C" __global__ void NAME(const T* a, void* out, long long len, float scale,           \
                                  int out_dtype) {                                             \
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;                            \
    if (i >= len) return;                                                                      \
    store_q(__fmul_rn(CONV(a[i]), scale), out_dtype, out, i);                                  \
  }

#define FROM_I8(x) ((float)(x))
#define FROM_I32(x) __int2float_rn(x)
#define FROM_F32(x) (x)
REQUANT(requantize_i8, signed char, FROM_I8)
REQUANT(requantize_i32, int, FROM_I32)
REQUANT(requantize_f32, float, FROM_F32)

// ---- unary ----

#define UNARY(NAME, T, EXPR)                                                                   \
  extern "C" __global__ void NAME(const T* a, T* out, long long len) {                         \
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;                            \
    if (i >= len) return;                                                                      \
    T x = a[i];                                                                                \
    out[i] = EXPR;                                                                             \
  }

UNARY(relu_f32, float, (x > 0.0f ? x : 0.0f))
UNARY(relu_i32, int, (x > 0 ? x : 0))
UNARY(relu_i8, signed char, (x > 0 ? x : (signed char)0))
UNARY(gelu_f32, float, cairn_gelu(x))

// ---- rows: one warp (32 threads) per row ----

extern "C" __global__ void softmax_f32(const float* a, float* out, int rows, int cols) {
  int r = blockIdx.x, l = threadIdx.x;
  if (r >= rows) return;
  const float* x = a + (long long)r * cols;
  float* y = out + (long long)r * cols;
  float m = row_max(x, cols);
  float lane = 0.0f;
  for (int i = l; i < cols; i += 32) {
    float e = cairn_exp(__fsub_rn(x[i], m));
    y[i] = e;
    lane = __fadd_rn(lane, e);
  }
  float s = warp_sum(lane);
  for (int i = l; i < cols; i += 32) y[i] = canon(__fdiv_rn(y[i], s));
}

extern "C" __global__ void layer_norm_f32(const float* a, const float* gamma, const float* beta,
                                          float* out, int rows, int cols, float eps) {
  int r = blockIdx.x, l = threadIdx.x;
  if (r >= rows) return;
  const float* x = a + (long long)r * cols;
  float* y = out + (long long)r * cols;
  float n = (float)cols;
  float lane = 0.0f;
  for (int i = l; i < cols; i += 32) lane = __fadd_rn(lane, x[i]);
  float mean = __fdiv_rn(warp_sum(lane), n);
  lane = 0.0f;
  for (int i = l; i < cols; i += 32) {
    float d = __fsub_rn(x[i], mean);
    lane = __fadd_rn(lane, __fmul_rn(d, d));
  }
  float var = __fdiv_rn(warp_sum(lane), n);
  float inv = __fdiv_rn(1.0f, __fsqrt_rn(__fadd_rn(var, eps)));
  for (int i = l; i < cols; i += 32)
    y[i] = canon(__fadd_rn(__fmul_rn(__fmul_rn(__fsub_rn(x[i], mean), inv), gamma[i]), beta[i]));
}

extern "C" __global__ void rms_norm_f32(const float* a, const float* gamma, float* out, int rows,
                                        int cols, float eps) {
  int r = blockIdx.x, l = threadIdx.x;
  if (r >= rows) return;
  const float* x = a + (long long)r * cols;
  float* y = out + (long long)r * cols;
  float lane = 0.0f;
  for (int i = l; i < cols; i += 32) lane = __fadd_rn(lane, __fmul_rn(x[i], x[i]));
  float ms = __fdiv_rn(warp_sum(lane), (float)cols);
  float inv = __fdiv_rn(1.0f, __fsqrt_rn(__fadd_rn(ms, eps)));
  for (int i = l; i < cols; i += 32) y[i] = canon(__fmul_rn(__fmul_rn(x[i], inv), gamma[i]));
}

// ---- argmax: one thread per row, the first maximum ----

#define ARGMAX(NAME, T)                                                                        \
  extern "C" __global__ void NAME(const T* a, int* out, int rows, int cols) {                  \
    int r = blockIdx.x * blockDim.x + threadIdx.x;                                             \
    if (r >= rows) return;                                                                     \
    const T* x = a + (long long)r * cols;                                                      \
    int best = 0;                                                                              \
    for (int j = 1; j < cols; ++j)                                                             \
      if (x[j] > x[best]) best = j;                                                            \
    out[r] = best;                                                                             \
  }

ARGMAX(argmax_f32, float)
ARGMAX(argmax_i32, int)
ARGMAX(argmax_i8, signed char)

// ---- transpose: out (cols x rows)[j][i] = a (rows x cols)[i][j] ----

#define TRANSPOSE(NAME, T)                                                                     \
  extern "C" __global__ void NAME(const T* a, T* out, int rows, int cols) {                    \
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;                            \
    if (i >= (long long)rows * cols) return;                                                   \
    long long r = i / cols, c = i % cols;                                                      \
    out[c * rows + r] = a[i];                                                                  \
  }

TRANSPOSE(transpose_f32, float)
TRANSPOSE(transpose_i32, int)
TRANSPOSE(transpose_i8, signed char)
