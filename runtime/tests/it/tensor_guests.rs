//! The tensor example guests through the sandbox: `matmul-i8` against a plain Rust product,
//! `digits` against a plain Rust copy of its network and against the labels.

use cairn_protocol::JobId;
use cairn_runtime::{BackendKind, Job, JobLimits, Sandbox, SandboxConfig};

use crate::common::*;

/// `m, n, k` then A and B, as the guest reads them.
fn matmul_input(m: usize, n: usize, k: usize, a: &[i8], b: &[i8]) -> Vec<u8> {
    let mut input = Vec::new();
    for d in [m, n, k] {
        input.extend_from_slice(&(d as u32).to_le_bytes());
    }
    input.extend(a.iter().map(|&x| x as u8));
    input.extend(b.iter().map(|&x| x as u8));
    input
}

/// The product the plain way, in 64-bit integers.
fn reference_product(m: usize, n: usize, k: usize, a: &[i8], b: &[i8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(m * n * 4);
    for i in 0..m {
        for j in 0..n {
            let c: i64 = (0..k)
                .map(|p| i64::from(a[i * k + p]) * i64::from(b[p * n + j]))
                .sum();
            out.extend_from_slice(&(c as i32).to_le_bytes());
        }
    }
    out
}

/// Deterministic bytes from a seed (an LCG's high bytes).
fn bytes(seed: u64, len: usize) -> Vec<i8> {
    let mut s = seed;
    (0..len)
        .map(|_| {
            s = s
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (s >> 56) as i8
        })
        .collect()
}

#[test]
fn matmul_i8_equals_the_plain_product() {
    let sandbox = sandbox();
    let wasm = guest("matmul-i8");
    for (seed, (m, n, k)) in [
        (1, 1, 1),
        (3, 5, 7),
        (17, 1, 300),
        (64, 48, 33),
        (2, 260, 270),
    ]
    .into_iter()
    .enumerate()
    {
        let a = bytes(seed as u64, m * k);
        let b = bytes(seed as u64 + 100, k * n);
        let input = matmul_input(m, n, k, &a, &b);
        let out = run(&sandbox, &wasm, &job(&input)).expect("matmul-i8 runs");
        assert_eq!(
            out.output,
            reference_product(m, n, k, &a, &b),
            "{m}x{k} · {k}x{n}"
        );
        assert_eq!(out.tensor.ops, 1, "one matmul");
        assert_eq!(out.device.backend.kind, BackendKind::Cpu);
    }
    // The extremes: -128 everywhere.
    let (m, n, k) = (4, 4, 64);
    let a = vec![-128i8; m * k];
    let input = matmul_input(m, n, k, &a, &a[..k * n]);
    let out = run(&sandbox, &wasm, &job(&input)).unwrap();
    assert_eq!(out.output, reference_product(m, n, k, &a, &a[..k * n]));
}

#[test]
fn matmul_i8_handles_empty_products_and_rejects_bad_input() {
    let sandbox = sandbox();
    let wasm = guest("matmul-i8");
    let out = run(&sandbox, &wasm, &job(&matmul_input(2, 3, 0, &[], &[]))).unwrap();
    assert_eq!(out.output, vec![0u8; 2 * 3 * 4], "k = 0: zeros");
    let out = run(&sandbox, &wasm, &job(&matmul_input(0, 3, 4, &[], &[0; 12]))).unwrap();
    assert!(out.output.is_empty());
    let mut short = matmul_input(2, 2, 2, &[1; 4], &[1; 4]);
    short.pop();
    let err = run(&sandbox, &wasm, &job(&short)).unwrap_err();
    assert_eq!(err.kind(), "exit");
}

#[test]
fn tensor_fuel_is_deterministic_and_grows_with_the_work() {
    let sandbox = sandbox();
    let other = Sandbox::new(SandboxConfig::default().with_pooling(false)).unwrap();
    let wasm = guest("matmul-i8");
    let fuel = |m: usize, n: usize, k: usize| {
        let input = matmul_input(m, n, k, &bytes(7, m * k), &bytes(8, k * n));
        let a = run(&sandbox, &wasm, &job(&input)).unwrap();
        let b = run(&other, &wasm, &job(&input)).unwrap();
        assert_eq!((a.digest, a.fuel_used), (b.digest, b.fuel_used));
        a.fuel_used
    };
    let small = fuel(32, 32, 32);
    let large = fuel(32, 32, 256);
    // 32·32·224 more MACs at 1 fuel each, plus the guest's own work on a larger input.
    assert!(large - small >= 32 * 32 * 224, "{small} -> {large}");
}

/// The digits network in plain Rust, from `weights.bin`'s documented layout.
fn reference_digits(weights: &[u8], images: &[u8]) -> Vec<u8> {
    let word = |i: usize| u32::from_le_bytes(weights[i..i + 4].try_into().unwrap()) as usize;
    let (inputs, hidden, classes) = (word(4), word(8), word(12));
    let requant = f32::from_le_bytes(weights[16..20].try_into().unwrap());
    let w1 = &weights[20..20 + inputs * hidden];
    let at = 20 + inputs * hidden;
    let b1: Vec<i32> = (0..hidden).map(|j| word(at + 4 * j) as i32).collect();
    let at = at + 4 * hidden;
    let w2 = &weights[at..at + hidden * classes];
    let at = at + hidden * classes;
    let b2: Vec<i32> = (0..classes).map(|j| word(at + 4 * j) as i32).collect();
    images
        .chunks(inputs)
        .map(|x| {
            let h8: Vec<i32> = (0..hidden)
                .map(|j| {
                    let acc: i32 = (0..inputs)
                        .map(|p| i32::from(x[p] as i8) * i32::from(w1[p * hidden + j] as i8))
                        .sum::<i32>()
                        + b1[j];
                    let y = acc.max(0) as f32 * requant;
                    (y.round_ties_even() as i32).clamp(-128, 127)
                })
                .collect();
            let logits: Vec<i32> = (0..classes)
                .map(|c| {
                    (0..hidden)
                        .map(|j| h8[j] * i32::from(w2[j * classes + c] as i8))
                        .sum::<i32>()
                        + b2[c]
                })
                .collect();
            let mut best = 0;
            for c in 1..classes {
                if logits[c] > logits[best] {
                    best = c;
                }
            }
            best as u8
        })
        .collect()
}

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");
const WEIGHTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/guests/digits/weights.bin");

/// Samples 1200 and later of scikit-learn's digits (never seen in training), and labels.
fn held_out() -> (Vec<u8>, Vec<u8>) {
    let images = std::fs::read(format!("{DATA}/digits-test-images.bin")).unwrap();
    let labels = std::fs::read(format!("{DATA}/digits-test-labels.bin")).unwrap();
    assert_eq!(images.len(), labels.len() * 64);
    (images, labels)
}

#[test]
fn digits_classifies_held_out_samples() {
    let (images, labels) = held_out();
    let out = run(&sandbox(), &guest("digits"), &job(&images)).expect("digits runs");
    assert_eq!(out.output.len(), labels.len(), "one digit per image");
    let weights = std::fs::read(WEIGHTS).unwrap();
    assert_eq!(
        out.output,
        reference_digits(&weights, &images),
        "the sandbox and the plain Rust network agree on every image"
    );
    let correct = out
        .output
        .iter()
        .zip(&labels)
        .filter(|(a, b)| a == b)
        .count();
    let accuracy = correct as f64 / labels.len() as f64;
    println!(
        "digits: {correct}/{} correct on samples 1200+ ({:.2}%), fuel {}",
        labels.len(),
        accuracy * 100.0,
        out.fuel_used
    );
    assert!(accuracy >= 0.9, "accuracy {accuracy}");
}

#[test]
fn digits_gives_the_same_bits_for_each_image_alone_and_in_a_batch() {
    let (images, _) = held_out();
    let sandbox = sandbox();
    let wasm = guest("digits");
    let batch = run(&sandbox, &wasm, &job(&images[..64 * 20]))
        .unwrap()
        .output;
    for (i, image) in images[..64 * 20].chunks(64).enumerate() {
        let one = run(&sandbox, &wasm, &job(image)).unwrap().output;
        assert_eq!(one, [batch[i]], "image {i}");
    }
    let empty = run(&sandbox, &wasm, &job(b"")).unwrap();
    assert!(empty.output.is_empty());
    let ragged = Job::new(JobId::of(b"ragged"), vec![0u8; 65]).with_limits(JobLimits::default());
    assert_eq!(
        sandbox
            .run_wasm_blocking(&wasm, &ragged)
            .unwrap_err()
            .kind(),
        "exit"
    );
}

#[allow(dead_code, missing_docs)]
#[path = "../../guests/kernels/src/lib.rs"]
mod kernels;

/// The `transformer` guest's block, composed here from the library's operations on the CPU
/// backend (the same definitions, so the same bits), and the float64 textbook block.
mod transformer_reference {
    use cairn_runtime::tensor::{CpuBackend, DType, Op, Tensor, TensorData, apply};

    fn random(seed: u64, n: usize, scale: f32) -> Vec<f32> {
        let mut v = vec![0f32; n];
        super::kernels::fill_f32(seed, &mut v);
        v.iter().map(|x| x * scale).collect()
    }

    fn f32t(rows: usize, cols: usize, v: Vec<f32>) -> Tensor {
        Tensor::new(rows, cols, TensorData::F32(v)).unwrap()
    }

    /// x, Wq, Wk, Wv, Wo, W1, W2 as the guest makes them.
    pub fn inputs(t: usize, d: usize, seed: u64) -> Vec<(usize, usize, Vec<f32>)> {
        let s = 1.0 / (d as f32).sqrt();
        let mut out = vec![(t, d, random(seed, t * d, 1.0))];
        for i in 1..=4 {
            out.push((d, d, random(seed + i, d * d, s)));
        }
        out.push((d, 4 * d, random(seed + 5, d * 4 * d, s)));
        out.push((
            4 * d,
            d,
            random(seed + 6, 4 * d * d, 1.0 / ((4 * d) as f32).sqrt()),
        ));
        out
    }

    pub fn with_ops(t: usize, d: usize, seed: u64) -> Vec<u8> {
        let cpu = CpuBackend::new();
        let op = |o: Op, i: &[&Tensor]| apply(&cpu, o, i).unwrap();
        let w: Vec<Tensor> = inputs(t, d, seed)
            .into_iter()
            .map(|(r, c, v)| f32t(r, c, v))
            .collect();
        let (ones, zeros) = (f32t(1, d, vec![1.0; d]), f32t(1, d, vec![0.0; d]));
        let mut mask = vec![0.0f32; t * t];
        for i in 0..t {
            for j in i + 1..t {
                mask[i * t + j] = f32::NEG_INFINITY;
            }
        }
        let mask = f32t(t, t, mask);
        let ln = Op::LayerNorm { eps: 1e-5 };
        let x = &w[0];
        let a = op(ln, &[x, &ones, &zeros]);
        let q = op(Op::MatMul, &[&a, &w[1]]);
        let k = op(Op::MatMul, &[&a, &w[2]]);
        let v = op(Op::MatMul, &[&a, &w[3]]);
        let kt = op(Op::Transpose, &[&k]);
        let s = op(Op::MatMul, &[&q, &kt]);
        let scale = 1.0 / (d as f32).sqrt();
        let s = op(
            Op::Requantize {
                dtype: DType::F32,
                scale,
            },
            &[&s],
        );
        let s = op(Op::Add, &[&s, &mask]);
        let p = op(Op::Softmax, &[&s]);
        let o = op(Op::MatMul, &[&op(Op::MatMul, &[&p, &v]), &w[4]]);
        let h = op(Op::Add, &[x, &o]);
        let m = op(Op::MatMul, &[&op(ln, &[&h, &ones, &zeros]), &w[5]]);
        let m = op(Op::MatMul, &[&op(Op::Gelu, &[&m]), &w[6]]);
        op(Op::Add, &[&h, &m]).to_le_bytes()
    }

    /// The textbook block in f64 (libm exp and tanh).
    pub fn float64(t: usize, d: usize, seed: u64) -> Vec<f64> {
        let w: Vec<(usize, usize, Vec<f64>)> = inputs(t, d, seed)
            .into_iter()
            .map(|(r, c, v)| (r, c, v.into_iter().map(f64::from).collect()))
            .collect();
        let mm = |a: &[f64], n: usize, k: usize, b: &[f64], m: usize| -> Vec<f64> {
            let mut c = vec![0.0; n * m];
            for i in 0..n {
                for p in 0..k {
                    for j in 0..m {
                        c[i * m + j] += a[i * k + p] * b[p * m + j];
                    }
                }
            }
            c
        };
        let ln = |x: &[f64]| -> Vec<f64> {
            x.chunks(d)
                .flat_map(|r| {
                    let mean = r.iter().sum::<f64>() / d as f64;
                    let var = r.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / d as f64;
                    r.iter()
                        .map(move |v| (v - mean) / (var + 1e-5).sqrt())
                        .collect::<Vec<_>>()
                })
                .collect()
        };
        let x = &w[0].2;
        let a = ln(x);
        let (q, k, v) = (
            mm(&a, t, d, &w[1].2, d),
            mm(&a, t, d, &w[2].2, d),
            mm(&a, t, d, &w[3].2, d),
        );
        let mut p = vec![0.0; t * t];
        for i in 0..t {
            let s: Vec<f64> = (0..=i)
                .map(|j| {
                    (0..d).map(|c| q[i * d + c] * k[j * d + c]).sum::<f64>() / (d as f64).sqrt()
                })
                .collect();
            let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let z: f64 = s.iter().map(|v| (v - m).exp()).sum();
            for (j, v) in s.iter().enumerate() {
                p[i * t + j] = (v - m).exp() / z;
            }
        }
        let o = mm(&mm(&p, t, t, &v, d), t, d, &w[4].2, d);
        let h: Vec<f64> = x.iter().zip(&o).map(|(a, b)| a + b).collect();
        let g: Vec<f64> = mm(&ln(&h), t, d, &w[5].2, 4 * d)
            .into_iter()
            .map(|x| {
                0.5 * x
                    * (1.0
                        + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x.powi(3))).tanh())
            })
            .collect();
        let m = mm(&g, t, 4 * d, &w[6].2, d);
        h.iter().zip(&m).map(|(a, b)| a + b).collect()
    }
}

#[test]
fn transformer_block_matches_its_definition_and_a_float64_block() {
    let (t, d, seed) = (8usize, 32usize, 5u64);
    let input: Vec<u8> = [t as u32, d as u32, seed as u32]
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    let out = run(&sandbox(), &guest("transformer"), &job(&input)).expect("transformer runs");
    assert_eq!(out.output.len(), t * d * 4);
    assert_eq!(
        out.output,
        transformer_reference::with_ops(t, d, seed),
        "the guest composes the documented operations"
    );
    let want = transformer_reference::float64(t, d, seed);
    let got: Vec<f32> = out
        .output
        .chunks(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    let worst = got
        .iter()
        .zip(&want)
        .map(|(g, w)| (f64::from(*g) - w).abs())
        .fold(0.0, f64::max);
    assert!(
        worst < 1e-4,
        "largest difference from the float64 block: {worst}"
    );
}
