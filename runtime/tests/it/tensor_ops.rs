//! Every tensor operation, over random shapes and values (specials included), against a plain
//! scalar reference written here from the definitions in `docs/runtime.md`: the CPU backend
//! must give the same bits, and so must the CUDA backend on a machine with a device.

use std::sync::OnceLock;

use cairn_runtime::tensor::{
    CpuBackend, CudaBackend, DType, Op, Tensor, TensorData, TensorError, apply, math,
};

/// SplitMix64: a small deterministic generator for shapes and values.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> usize {
        (self.next() % n) as usize
    }

    fn i8(&mut self) -> i8 {
        self.next() as i8
    }

    fn i32(&mut self) -> i32 {
        // Mostly small, sometimes anything (to exercise wrapping).
        if self.below(8) == 0 {
            self.next() as i32
        } else {
            (self.next() % 2001) as i32 - 1000
        }
    }

    /// Mostly in [-6, 6], sometimes a special value.
    fn f32(&mut self, specials: bool) -> f32 {
        if specials && self.below(40) == 0 {
            let s = [
                0.0,
                -0.0,
                f32::INFINITY,
                f32::NEG_INFINITY,
                f32::NAN,
                f32::from_bits(0xffc0_0001), // a NaN with sign and payload
                1e-40,                       // subnormal
                3e38,
                -95.0,
                95.0,
            ];
            return s[self.below(s.len() as u64)];
        }
        ((self.next() >> 40) as f32 / (1u64 << 24) as f32) * 12.0 - 6.0
    }
}

// ---- The reference, written from docs/runtime.md ("Tensor operations"). ----

const NAN: u32 = 0x7fc0_0000;

fn canon(x: f32) -> f32 {
    if x.is_nan() { f32::from_bits(NAN) } else { x }
}

fn ref_exp(x: f32) -> f32 {
    if x.is_nan() {
        return f32::from_bits(NAN);
    }
    if x > 88.0 {
        return f32::INFINITY;
    }
    if x < -87.0 {
        return 0.0;
    }
    let k = (x * f32::from_bits(0x3fb8_aa3b)).round_ties_even();
    let r1 = x - k * f32::from_bits(0x3f31_8000);
    let r = r1 - k * f32::from_bits(0xb95e_8083);
    let c6 = f32::from_bits(0x3ab6_0b61);
    let c5 = f32::from_bits(0x3c08_8889);
    let c4 = f32::from_bits(0x3d2a_aaab);
    let c3 = f32::from_bits(0x3e2a_aaab);
    let p = ((((((c6 * r + c5) * r + c4) * r + c3) * r + 0.5) * r + 1.0) * r) + 1.0;
    p * (2.0f64.powi(k as i32) as f32)
}

fn ref_tanh(u: f32) -> f32 {
    if u.is_nan() {
        return f32::from_bits(NAN);
    }
    let a = u.abs();
    let t = 1.0 - 2.0 / (ref_exp(a + a) + 1.0);
    if u < 0.0 { -t } else { t }
}

fn ref_gelu(x: f32) -> f32 {
    let inner = x + f32::from_bits(0x3d37_2713) * ((x * x) * x);
    canon((0.5 * x) * (1.0 + ref_tanh(f32::from_bits(0x3f4c_422a) * inner)))
}

fn ref_sum(xs: &[f32]) -> f32 {
    let mut lane = [0.0f32; 32];
    for (i, x) in xs.iter().enumerate() {
        lane[i % 32] += x;
    }
    for w in [16, 8, 4, 2, 1] {
        for l in 0..w {
            lane[l] += lane[l + w];
        }
    }
    lane[0]
}

fn ref_round_sat(y: f32, lo: f64, hi: f64) -> f64 {
    if y.is_nan() {
        return 0.0;
    }
    (y as f64).round_ties_even().clamp(lo, hi)
}

fn f32_data(t: &Tensor) -> Vec<f32> {
    match t.data() {
        TensorData::F32(v) => v.clone(),
        other => panic!("not f32: {other:?}"),
    }
}

fn f32_tensor(rows: usize, cols: usize, data: Vec<f32>) -> Tensor {
    Tensor::new(rows, cols, TensorData::F32(data)).unwrap()
}

fn random_tensor(rng: &mut Rng, dtype: DType, rows: usize, cols: usize) -> Tensor {
    let n = rows * cols;
    let data = match dtype {
        DType::I8 => TensorData::I8((0..n).map(|_| rng.i8()).collect()),
        DType::I32 => TensorData::I32((0..n).map(|_| rng.i32()).collect()),
        DType::F32 => TensorData::F32((0..n).map(|_| rng.f32(true)).collect()),
    };
    Tensor::new(rows, cols, data).unwrap()
}

fn assert_same_bits(op: &str, got: &Tensor, want: &Tensor) {
    assert_eq!((got.rows(), got.cols()), (want.rows(), want.cols()), "{op}");
    assert_eq!(got.dtype(), want.dtype(), "{op}");
    let (g, w) = (got.to_le_bytes(), want.to_le_bytes());
    if g != w {
        let at = g.iter().zip(&w).position(|(a, b)| a != b).unwrap();
        panic!(
            "{op} {}x{}: bits differ at byte {at}",
            got.rows(),
            got.cols()
        );
    }
}

/// The CUDA backend where a device can be used (then every case also runs there).
fn cuda() -> Option<&'static CudaBackend> {
    static CUDA: OnceLock<Option<CudaBackend>> = OnceLock::new();
    CUDA.get_or_init(|| {
        CudaBackend::new(0)
            .inspect_err(|why| eprintln!("no CUDA: {why}"))
            .ok()
    })
    .as_ref()
}

/// `op` on the CPU backend, after checking that CUDA (where there is a device) gives the same
/// bits.
fn run(op: Op, inputs: &[&Tensor]) -> Tensor {
    let cpu =
        apply(&CpuBackend::new(), op, inputs).unwrap_or_else(|e| panic!("{}: {e}", op.name()));
    if let Some(cuda) = cuda() {
        let gpu = apply(cuda, op, inputs).unwrap_or_else(|e| panic!("cuda {}: {e}", op.name()));
        assert_same_bits(&format!("cuda {}", op.name()), &gpu, &cpu);
    }
    cpu
}

const DTYPES: [DType; 3] = [DType::I8, DType::I32, DType::F32];

#[test]
fn matmul_matches_the_definition() {
    let mut rng = Rng(1);
    for case in 0..24 {
        // Depths and widths cross the CPU backend's 256-wide blocks.
        let (m, k, n) = (1 + rng.below(7), 1 + rng.below(300), 1 + rng.below(300));
        let dtype = if case % 2 == 0 { DType::I8 } else { DType::F32 };
        let a = random_tensor(&mut rng, dtype, m, k);
        let b = random_tensor(&mut rng, dtype, k, n);
        let got = run(Op::MatMul, &[&a, &b]);
        let want = match (a.data(), b.data()) {
            (TensorData::I8(x), TensorData::I8(y)) => {
                let mut c = vec![0i32; m * n];
                for i in 0..m {
                    for j in 0..n {
                        let mut acc = 0i64;
                        for p in 0..k {
                            acc += i64::from(x[i * k + p]) * i64::from(y[p * n + j]);
                        }
                        c[i * n + j] = acc as i32; // exact: |acc| < 2^31 for these depths
                    }
                }
                TensorData::I32(c)
            }
            (TensorData::F32(x), TensorData::F32(y)) => {
                let mut c = vec![0f32; m * n];
                for i in 0..m {
                    for j in 0..n {
                        let mut acc = 0.0f32;
                        for p in 0..k {
                            acc += x[i * k + p] * y[p * n + j];
                        }
                        c[i * n + j] = canon(acc);
                    }
                }
                TensorData::F32(c)
            }
            _ => unreachable!(),
        };
        assert_same_bits("matmul", &got, &Tensor::new(m, n, want).unwrap());
    }
}

#[test]
fn i8_matmul_wraps_like_i32_arithmetic() {
    // 2^17 products of -128 * -128 = 2^31: one past i32::MAX, so it wraps to i32::MIN.
    let k = 1 << 17;
    let a = Tensor::new(1, k, TensorData::I8(vec![-128; k])).unwrap();
    let b = Tensor::new(k, 1, TensorData::I8(vec![-128; k])).unwrap();
    let c = run(Op::MatMul, &[&a, &b]);
    assert_eq!(c.data(), &TensorData::I32(vec![i32::MIN]));
}

#[test]
fn elementwise_ops_match_the_definition() {
    let mut rng = Rng(2);
    for case in 0..36 {
        let dtype = DTYPES[case % 3];
        let (rows, cols) = (1 + rng.below(6), 1 + rng.below(80));
        let a = random_tensor(&mut rng, dtype, rows, cols);
        let brows = if rng.below(2) == 0 { 1 } else { rows };
        let b = random_tensor(&mut rng, dtype, brows, cols);
        for (op, name) in [(Op::Add, "add"), (Op::Mul, "mul")] {
            let got = run(op, &[&a, &b]);
            let bi = |i: usize| if brows == 1 { i % cols } else { i };
            let want = match (a.data(), b.data()) {
                (TensorData::I8(x), TensorData::I8(y)) => TensorData::I8(
                    (0..x.len())
                        .map(|i| {
                            let (u, v) = (i32::from(x[i]), i32::from(y[bi(i)]));
                            (if name == "add" { u + v } else { u * v }) as i8
                        })
                        .collect(),
                ),
                (TensorData::I32(x), TensorData::I32(y)) => TensorData::I32(
                    (0..x.len())
                        .map(|i| {
                            let (u, v) = (i64::from(x[i]), i64::from(y[bi(i)]));
                            (if name == "add" { u + v } else { u * v }) as i32
                        })
                        .collect(),
                ),
                (TensorData::F32(x), TensorData::F32(y)) => TensorData::F32(
                    (0..x.len())
                        .map(|i| {
                            let (u, v) = (x[i], y[bi(i)]);
                            canon(if name == "add" { u + v } else { u * v })
                        })
                        .collect(),
                ),
                _ => unreachable!(),
            };
            assert_same_bits(name, &got, &Tensor::new(rows, cols, want).unwrap());
        }
        // relu
        let want = match a.data() {
            TensorData::I8(x) => TensorData::I8(x.iter().map(|&v| v.max(0)).collect()),
            TensorData::I32(x) => TensorData::I32(x.iter().map(|&v| v.max(0)).collect()),
            TensorData::F32(x) => {
                TensorData::F32(x.iter().map(|&v| if v > 0.0 { v } else { 0.0 }).collect())
            }
        };
        let got = run(Op::Relu, &[&a]);
        assert_same_bits("relu", &got, &Tensor::new(rows, cols, want).unwrap());
    }
}

#[test]
fn requantize_matches_the_definition() {
    let mut rng = Rng(3);
    for case in 0..45 {
        let from = DTYPES[case % 3];
        let to = DTYPES[(case / 3) % 3];
        let (rows, cols) = (1 + rng.below(5), 1 + rng.below(40));
        let a = random_tensor(&mut rng, from, rows, cols);
        let scale = if case % 5 == 0 {
            1e9
        } else {
            rng.f32(false) / 7.0
        };
        let as_f32: Vec<f32> = match a.data() {
            TensorData::I8(x) => x.iter().map(|&v| v as f32 * scale).collect(),
            TensorData::I32(x) => x.iter().map(|&v| v as f32 * scale).collect(),
            TensorData::F32(x) => x.iter().map(|&v| v * scale).collect(),
        };
        let want = match to {
            DType::F32 => TensorData::F32(as_f32.into_iter().map(canon).collect()),
            DType::I32 => TensorData::I32(
                as_f32
                    .into_iter()
                    .map(|y| ref_round_sat(y, -2147483648.0, 2147483647.0) as i32)
                    .collect(),
            ),
            DType::I8 => TensorData::I8(
                as_f32
                    .into_iter()
                    .map(|y| ref_round_sat(y, -128.0, 127.0) as i8)
                    .collect(),
            ),
        };
        let got = run(Op::Requantize { dtype: to, scale }, &[&a]);
        assert_same_bits("requantize", &got, &Tensor::new(rows, cols, want).unwrap());
    }
}

#[test]
fn gelu_and_softmax_match_the_definition() {
    let mut rng = Rng(4);
    for _ in 0..30 {
        let (rows, cols) = (1 + rng.below(6), 1 + rng.below(100));
        let a = random_tensor(&mut rng, DType::F32, rows, cols);
        let x = f32_data(&a);
        let got = run(Op::Gelu, &[&a]);
        let want = f32_tensor(rows, cols, x.iter().map(|&v| ref_gelu(v)).collect());
        assert_same_bits("gelu", &got, &want);

        let mut want = Vec::new();
        for row in x.chunks(cols) {
            let mut m = row[0];
            for &v in &row[1..] {
                if v > m {
                    m = v;
                }
            }
            let e: Vec<f32> = row.iter().map(|&v| ref_exp(v - m)).collect();
            let s = ref_sum(&e);
            want.extend(e.iter().map(|&v| canon(v / s)));
        }
        let got = run(Op::Softmax, &[&a]);
        assert_same_bits("softmax", &got, &f32_tensor(rows, cols, want));
    }
}

#[test]
fn norms_match_the_definition() {
    let mut rng = Rng(5);
    for _ in 0..30 {
        let (rows, cols) = (1 + rng.below(6), 1 + rng.below(100));
        let a = random_tensor(&mut rng, DType::F32, rows, cols);
        let gamma = f32_tensor(1, cols, (0..cols).map(|_| rng.f32(false)).collect());
        let beta = f32_tensor(1, cols, (0..cols).map(|_| rng.f32(false)).collect());
        let (g, b, x) = (f32_data(&gamma), f32_data(&beta), f32_data(&a));
        let eps = 1e-5f32;
        let n = cols as f32;
        let (mut ln, mut rms) = (Vec::new(), Vec::new());
        for row in x.chunks(cols) {
            let mean = ref_sum(row) / n;
            let sq: Vec<f32> = row.iter().map(|&v| (v - mean) * (v - mean)).collect();
            let inv = 1.0 / (ref_sum(&sq) / n + eps).sqrt();
            ln.extend((0..cols).map(|j| canon(((row[j] - mean) * inv) * g[j] + b[j])));
            let sq: Vec<f32> = row.iter().map(|&v| v * v).collect();
            let inv = 1.0 / (ref_sum(&sq) / n + eps).sqrt();
            rms.extend((0..cols).map(|j| canon((row[j] * inv) * g[j])));
        }
        let got = run(Op::LayerNorm { eps }, &[&a, &gamma, &beta]);
        assert_same_bits("layer_norm", &got, &f32_tensor(rows, cols, ln));
        let got = run(Op::RmsNorm { eps }, &[&a, &gamma]);
        assert_same_bits("rms_norm", &got, &f32_tensor(rows, cols, rms));
    }
}

#[test]
fn argmax_is_the_first_maximum() {
    let mut rng = Rng(6);
    for case in 0..30 {
        let dtype = DTYPES[case % 3];
        let (rows, cols) = (1 + rng.below(6), 1 + rng.below(50));
        let mut a = random_tensor(&mut rng, dtype, rows, cols);
        if case % 4 == 0 {
            // Ties: the first index wins.
            a = Tensor::new(rows, cols, TensorData::I32(vec![7; rows * cols])).unwrap();
        }
        let want: Vec<i32> = (0..rows)
            .map(|r| {
                let mut best = 0;
                for j in 1..cols {
                    let greater = match a.data() {
                        TensorData::I8(x) => x[r * cols + j] > x[r * cols + best],
                        TensorData::I32(x) => x[r * cols + j] > x[r * cols + best],
                        TensorData::F32(x) => x[r * cols + j] > x[r * cols + best],
                    };
                    if greater {
                        best = j;
                    }
                }
                best as i32
            })
            .collect();
        let got = run(Op::Argmax, &[&a]);
        assert_same_bits(
            "argmax",
            &got,
            &Tensor::new(rows, 1, TensorData::I32(want)).unwrap(),
        );
    }
}

#[test]
fn transpose_swaps_rows_and_columns() {
    let mut rng = Rng(7);
    for case in 0..18 {
        let dtype = DTYPES[case % 3];
        let (rows, cols) = (1 + rng.below(40), 1 + rng.below(40));
        let a = random_tensor(&mut rng, dtype, rows, cols);
        let got = run(Op::Transpose, &[&a]);
        let at = |j: usize, i: usize| i * cols + j; // out[j][i] = a[i][j]
        let want = match a.data() {
            TensorData::I8(x) => TensorData::I8(
                (0..cols)
                    .flat_map(|j| (0..rows).map(move |i| (j, i)))
                    .map(|(j, i)| x[at(j, i)])
                    .collect(),
            ),
            TensorData::I32(x) => TensorData::I32(
                (0..cols)
                    .flat_map(|j| (0..rows).map(move |i| (j, i)))
                    .map(|(j, i)| x[at(j, i)])
                    .collect(),
            ),
            TensorData::F32(x) => TensorData::F32(
                (0..cols)
                    .flat_map(|j| (0..rows).map(move |i| (j, i)))
                    .map(|(j, i)| x[at(j, i)])
                    .collect(),
            ),
        };
        assert_same_bits("transpose", &got, &Tensor::new(cols, rows, want).unwrap());
    }
}

#[test]
fn exp_is_accurate_where_it_is_finite() {
    // The definition is exact by construction; this checks it is also a good exp.
    let mut x = -87.0f32;
    while x < 88.0 {
        assert_eq!(math::exp(x).to_bits(), ref_exp(x).to_bits(), "exp({x})");
        assert_eq!(math::tanh(x).to_bits(), ref_tanh(x).to_bits(), "tanh({x})");
        let got = math::exp(x) as f64;
        let want = (x as f64).exp();
        assert!(
            ((got - want) / want).abs() < 1e-6,
            "exp({x}) = {got}, want {want}"
        );
        x += 0.37;
    }
    for x in [-3.0f32, -0.5, 0.0, 0.25, 2.0] {
        let t = math::tanh(x) as f64;
        assert!((t - (x as f64).tanh()).abs() < 1e-6, "tanh({x}) = {t}");
    }
}

#[test]
fn nan_results_are_canonical() {
    let a = f32_tensor(1, 2, vec![f32::from_bits(0xffc0_0001), f32::INFINITY]);
    let b = f32_tensor(1, 2, vec![1.0, f32::NEG_INFINITY]);
    for op in [Op::Add, Op::Mul] {
        for x in f32_data(&run(op, &[&a, &b])) {
            if x.is_nan() {
                assert_eq!(x.to_bits(), NAN, "{}", op.name());
            }
        }
    }
    let gelu = f32_data(&run(Op::Gelu, &[&a]));
    assert_eq!(gelu[0].to_bits(), NAN);
}

#[test]
fn mismatched_operands_are_typed_errors() {
    let cpu = CpuBackend::new();
    let f = f32_tensor(2, 3, vec![0.0; 6]);
    let i = Tensor::new(2, 3, TensorData::I8(vec![0; 6])).unwrap();
    let wide = f32_tensor(4, 4, vec![0.0; 16]);
    assert!(matches!(
        apply(&cpu, Op::Add, &[&f, &i]),
        Err(TensorError::TypeMismatch { op: "add", .. })
    ));
    assert!(matches!(
        apply(&cpu, Op::MatMul, &[&f, &wide]),
        Err(TensorError::ShapeMismatch { op: "matmul", .. })
    ));
    assert!(matches!(
        apply(&cpu, Op::Softmax, &[&i]),
        Err(TensorError::TypeMismatch { op: "softmax", .. })
    ));
    let i32s = Tensor::new(2, 3, TensorData::I32(vec![0; 6])).unwrap();
    assert!(matches!(
        apply(&cpu, Op::MatMul, &[&i32s, &i32s]),
        Err(TensorError::TypeMismatch { op: "matmul", .. })
    ));
    assert!(matches!(
        Tensor::new(0, 3, TensorData::F32(vec![])),
        Err(TensorError::BadShape { .. })
    ));
}
