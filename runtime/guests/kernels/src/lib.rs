//! Compute kernels shared by the example guests and the native side of the runtime benchmark
//! (`runtime/benches/runtime.rs` includes this file with `#[path]`), so that both measure the
//! same source. Plain `core` arithmetic only: no allocation, no I/O.

/// Multiplier of the 64-bit mixing step (a large odd constant from wyhash).
const MIX: u64 = 0xa076_1d64_78bd_642f;

/// Hashes `data` `rounds` times over with a 64-bit multiply-rotate mix; each round starts
/// from the previous round's state, so the work is `rounds * data.len()` and cannot be skipped.
pub fn hash_loop(data: &[u8], rounds: u32) -> u64 {
    let mut h: u64 = 0x243f_6a88_85a3_08d3 ^ data.len() as u64;
    let remainder = data.chunks_exact(8).remainder();
    let mut tail = [0u8; 8];
    tail[..remainder.len()].copy_from_slice(remainder);
    for round in 0..rounds {
        h ^= u64::from(round);
        for chunk in data.chunks_exact(8) {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            h = mix(h, u64::from_le_bytes(word));
        }
        if !remainder.is_empty() {
            h = mix(h, u64::from_le_bytes(tail));
        }
    }
    h ^ (h >> 32)
}

/// One step of [`hash_loop`].
#[inline(always)]
fn mix(h: u64, word: u64) -> u64 {
    (h ^ word).wrapping_mul(MIX).rotate_left(29)
}

/// Fills `out` with deterministic pseudo-random values in [-1, 1) from `seed` (a 64-bit LCG).
pub fn fill_f64(seed: u64, out: &mut [f64]) {
    let mut state = seed;
    for x in out.iter_mut() {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        *x = ((state >> 11) as f64) / ((1u64 << 53) as f64) * 2.0 - 1.0;
    }
}

/// Fills `out` like [`fill_f64`], rounded to `f32`.
pub fn fill_f32(seed: u64, out: &mut [f32]) {
    let mut state = seed;
    for x in out.iter_mut() {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        *x = (((state >> 11) as f64) / ((1u64 << 53) as f64) * 2.0 - 1.0) as f32;
    }
}

/// Width of the blocks the matrix-multiply inner loop works on: fixed-size blocks let the
/// compiler vectorise the loop for wasm SIMD as it does natively.
const BLOCK: usize = 8;

macro_rules! matmul {
    ($(#[$doc:meta])* $name:ident, $t:ty) => {
        $(#[$doc])*
        pub fn $name(n: usize, a: &[$t], b: &[$t], c: &mut [$t]) {
            assert!(a.len() == n * n && b.len() == n * n && c.len() == n * n);
            c.fill(0.0);
            for i in 0..n {
                let row_c = &mut c[i * n..(i + 1) * n];
                for k in 0..n {
                    let aik = a[i * n + k];
                    let row_b = &b[k * n..(k + 1) * n];
                    let mut blocks_c = row_c.chunks_exact_mut(BLOCK);
                    let mut blocks_b = row_b.chunks_exact(BLOCK);
                    for (bc, bb) in (&mut blocks_c).zip(&mut blocks_b) {
                        for l in 0..BLOCK {
                            bc[l] += aik * bb[l];
                        }
                    }
                    let tail = blocks_c.into_remainder().iter_mut().zip(blocks_b.remainder());
                    for (cij, bkj) in tail {
                        *cij += aik * *bkj;
                    }
                }
            }
        }
    };
}

matmul!(
    /// `c = a * b` for row-major `n`×`n` `f32` matrices (i-k-j loop order).
    matmul_f32,
    f32
);
matmul!(
    /// `c = a * b` for row-major `n`×`n` `f64` matrices (i-k-j loop order).
    matmul_f64,
    f64
);
