//! One pre-norm transformer block (single-head causal attention and a GELU MLP of width 4d)
//! with seeded weights, through the tensor host API: the benchmark job of the GPU path.
//!
//! Input: `t` (tokens), `d` (width), `seed` as three little-endian `u32`. The activations
//! `x` (`t×d`) and every weight come from `cairn_kernels::fill_f32` with seeds `seed`,
//! `seed + 1`, … in the order below, weights scaled by `1/sqrt(d)` (input width) in the guest.
//! Output: the block's output (`t×d` little-endian `f32`, row-major):
//!
//! ```text
//! a = layer_norm(x, 1, 0, 1e-5); q = a·Wq; k = a·Wk; v = a·Wv
//! s = requantize(q·kᵀ, f32, 1/sqrt(d)) + mask   (mask: 0 on and below the diagonal, -inf above)
//! h = x + (softmax(s)·v)·Wo
//! y = h + gelu(layer_norm(h, 1, 0, 1e-5)·W1)·W2
//! ```
use std::io::{Read, Write};

use cairn_tensor::{DType, Tensor};

const EPS: f32 = 1e-5;

fn main() {
    let mut input = Vec::new();
    std::io::stdin()
        .read_to_end(&mut input)
        .expect("read stdin");
    if input.len() != 12 {
        eprintln!("input: t, d, seed as three little-endian u32");
        std::process::exit(2);
    }
    let word = |i: usize| u32::from_le_bytes(input[4 * i..4 * i + 4].try_into().unwrap());
    let (t, d, seed) = (word(0) as usize, word(1) as usize, u64::from(word(2)));
    let mut seeds = seed..;
    let mut next = || seeds.next().unwrap();
    let x = Tensor::new(t, d, &random(next(), t * d, 1.0));
    let weight = |seed: u64, rows: usize, cols: usize| {
        Tensor::new(
            rows,
            cols,
            &random(seed, rows * cols, 1.0 / (rows as f32).sqrt()),
        )
    };
    let (wq, wk, wv, wo) = (
        weight(next(), d, d),
        weight(next(), d, d),
        weight(next(), d, d),
        weight(next(), d, d),
    );
    let (w1, w2) = (weight(next(), d, 4 * d), weight(next(), 4 * d, d));
    let ones = Tensor::new(1, d, &vec![1.0f32; d]);
    let zeros = Tensor::new(1, d, &vec![0.0f32; d]);
    let mut mask = vec![0.0f32; t * t];
    for i in 0..t {
        for j in i + 1..t {
            mask[i * t + j] = f32::NEG_INFINITY;
        }
    }
    let mask = Tensor::new(t, t, &mask);

    let a = x.layer_norm(&ones, &zeros, EPS);
    let (q, k, v) = (a.matmul(&wq), a.matmul(&wk), a.matmul(&wv));
    let scores = q
        .matmul(&k.transpose())
        .requantize(DType::F32, 1.0 / (d as f32).sqrt())
        .add(&mask);
    let h = x.add(&scores.softmax().matmul(&v).matmul(&wo));
    let m = h
        .layer_norm(&ones, &zeros, EPS)
        .matmul(&w1)
        .gelu()
        .matmul(&w2);
    let y = h.add(&m);
    std::io::stdout()
        .write_all(&y.to_bytes(t * d * 4))
        .expect("write stdout");
}

/// `n` values in `[-scale, scale)` from `seed`.
fn random(seed: u64, n: usize, scale: f32) -> Vec<f32> {
    let mut v = vec![0f32; n];
    cairn_kernels::fill_f32(seed, &mut v);
    for x in &mut v {
        *x *= scale;
    }
    v
}
