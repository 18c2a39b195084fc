//! The exact scalar definitions behind the `f32` operations (`docs/runtime.md`, "Tensor
//! operations"). Each function is a fixed sequence of correctly rounded IEEE-754 binary32
//! operations (`+ - * /`, `sqrt`, comparisons, round-half-to-even, multiplication by a power of
//! two): Rust never contracts `a * b + c` into a fused multiply-add, so these run as written on
//! every host, and a device kernel that issues the same operations (`add.rn`, `mul.rn`, …)
//! gives the same bits.

/// The one NaN every `f32` operation returns: `0x7fc00000`.
pub const CANONICAL_NAN: f32 = f32::from_bits(0x7fc0_0000);
/// `log2(e)` rounded to `f32` (`0x3fb8aa3b`).
pub const LOG2_E: f32 = f32::from_bits(0x3fb8_aa3b);
/// High part of `ln 2` (`0x3f318000` = 0.693359375, 9 significant bits, so `k * LN2_HI` is exact).
pub const LN2_HI: f32 = f32::from_bits(0x3f31_8000);
/// Low part of `ln 2` (`0xb95e8083` ≈ -2.12194440e-4).
pub const LN2_LO: f32 = f32::from_bits(0xb95e_8083);
/// Above this, [`exp`] is `+inf`.
pub const EXP_HI: f32 = 88.0;
/// Below this, [`exp`] is `+0`.
pub const EXP_LO: f32 = -87.0;
/// Taylor coefficients 1/6!, 1/5!, … 1/0! of `exp` on the reduced range, highest first.
pub const EXP_COEFFS: [f32; 7] = [
    f32::from_bits(0x3ab6_0b61), // 1/720
    f32::from_bits(0x3c08_8889), // 1/120
    f32::from_bits(0x3d2a_aaab), // 1/24
    f32::from_bits(0x3e2a_aaab), // 1/6
    0.5,
    1.0,
    1.0,
];
/// `sqrt(2/pi)` rounded to `f32` (`0x3f4c422a`).
pub const GELU_SQRT_2_OVER_PI: f32 = f32::from_bits(0x3f4c_422a);
/// The cubic coefficient of the tanh form of GELU, 0.044715 rounded to `f32` (`0x3d372713`).
pub const GELU_CUBIC: f32 = f32::from_bits(0x3d37_2713);
/// Lanes of the fixed reduction tree of [`sum`].
pub const SUM_LANES: usize = 32;

/// `x`, with any NaN replaced by [`CANONICAL_NAN`].
#[inline(always)]
pub fn canon(x: f32) -> f32 {
    if x.is_nan() { CANONICAL_NAN } else { x }
}

/// `e^x`: range reduction `x = k ln2 + r`, a degree-6 Taylor polynomial in Horner form, and an
/// exact scaling by `2^k`.
pub fn exp(x: f32) -> f32 {
    if x.is_nan() {
        return CANONICAL_NAN;
    }
    if x > EXP_HI {
        return f32::INFINITY;
    }
    if x < EXP_LO {
        return 0.0;
    }
    let k = (x * LOG2_E).round_ties_even();
    let r = (x - k * LN2_HI) - k * LN2_LO;
    let mut p = EXP_COEFFS[0];
    for &c in &EXP_COEFFS[1..] {
        p = p * r + c;
    }
    // |k| <= 127 here, so 2^k is a normal f32 and the multiplication is one rounding.
    p * pow2(k as i32)
}

/// `2^k` for `-126 <= k <= 127`.
#[inline(always)]
fn pow2(k: i32) -> f32 {
    f32::from_bits(((k + 127) as u32) << 23)
}

/// `tanh(u) = sign(u) * (1 - 2 / (e^(2|u|) + 1))`.
pub fn tanh(u: f32) -> f32 {
    if u.is_nan() {
        return CANONICAL_NAN;
    }
    let a = u.abs();
    let e = exp(a + a);
    let t = 1.0 - 2.0 / (e + 1.0);
    if u < 0.0 { -t } else { t }
}

/// GELU, tanh form: `(0.5 x) * (1 + tanh(c1 * (x + c3 * ((x * x) * x))))`.
pub fn gelu(x: f32) -> f32 {
    let cube = (x * x) * x;
    let inner = x + GELU_CUBIC * cube;
    let t = tanh(GELU_SQRT_2_OVER_PI * inner);
    canon((0.5 * x) * (1.0 + t))
}

/// The fixed-order sum: element `i` goes to lane `i % 32` (each lane adds left to right from
/// `+0`), then lanes are folded `l += l + w` for `w` = 16, 8, 4, 2, 1; the result is lane 0.
pub fn sum(xs: &[f32]) -> f32 {
    let mut lanes = [0.0f32; SUM_LANES];
    let mut chunks = xs.chunks_exact(SUM_LANES);
    for chunk in &mut chunks {
        for (lane, &x) in lanes.iter_mut().zip(chunk) {
            *lane += x;
        }
    }
    for (lane, &x) in lanes.iter_mut().zip(chunks.remainder()) {
        *lane += x;
    }
    fold(lanes)
}

/// Like [`sum`] of `f(x)` for each `x`, without a temporary.
pub fn sum_map(xs: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut lanes = [0.0f32; SUM_LANES];
    for (i, &x) in xs.iter().enumerate() {
        lanes[i % SUM_LANES] += f(x);
    }
    fold(lanes)
}

/// The tree of [`sum`]: `lane[l] = lane[l] + lane[l + w]` for `w` = 16, 8, 4, 2, 1.
fn fold(mut lanes: [f32; SUM_LANES]) -> f32 {
    let mut w = SUM_LANES / 2;
    while w > 0 {
        for l in 0..w {
            lanes[l] += lanes[l + w];
        }
        w /= 2;
    }
    lanes[0]
}

/// The row maximum: `m = x[0]`, then `m = x[i]` whenever `x[i] > m`, left to right.
pub fn max(xs: &[f32]) -> f32 {
    let mut m = xs.first().copied().unwrap_or(f32::NEG_INFINITY);
    for &x in xs {
        if x > m {
            m = x;
        }
    }
    m
}

/// Converts `y` to an integer: NaN is 0, otherwise round half to even and saturate to
/// `[lo, hi]`.
#[inline(always)]
pub fn to_int(y: f32, lo: i32, hi: i32) -> i32 {
    // `as` saturates and maps NaN to 0; the rounded value is an integer, so it is exact.
    (y.round_ties_even() as i32).clamp(lo, hi)
}
