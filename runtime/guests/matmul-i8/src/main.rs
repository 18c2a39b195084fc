//! Multiplies two `i8` matrices through the tensor host API. Input: `m`, `n`, `k` as three
//! little-endian `u32`, then A (`m×k` `i8`, row-major), then B (`k×n` `i8`, row-major).
//! Output: C = A·B (`m×n` little-endian `i32`, row-major), exact. A malformed input ends the
//! job with exit status 2.
use std::io::{Read, Write};

use cairn_tensor::{DType, Tensor};

fn main() {
    let mut input = Vec::new();
    std::io::stdin()
        .read_to_end(&mut input)
        .expect("read stdin");
    let Some((m, n, k, a, b)) = parse(&input) else {
        eprintln!("input: m, n, k (u32 LE), then m*k + k*n i8 bytes");
        std::process::exit(2);
    };
    // Tensors have no empty dimension: an empty product is all zeros (or nothing).
    let out = if m == 0 || n == 0 || k == 0 {
        vec![0u8; m * n * 4]
    } else {
        let a = Tensor::from_bytes(DType::I8, m, k, a);
        let b = Tensor::from_bytes(DType::I8, k, n, b);
        a.matmul(&b).to_bytes(m * n * 4)
    };
    std::io::stdout().write_all(&out).expect("write stdout");
}

/// `(m, n, k, A bytes, B bytes)`, or `None` when the header or the lengths are wrong.
fn parse(input: &[u8]) -> Option<(usize, usize, usize, &[u8], &[u8])> {
    let word = |i: usize| -> Option<usize> {
        let b = input.get(4 * i..4 * i + 4)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let (m, n, k) = (word(0)?, word(1)?, word(2)?);
    let a_len = m.checked_mul(k)?;
    let b_len = k.checked_mul(n)?;
    let body = input.get(12..)?;
    if body.len() != a_len.checked_add(b_len)? {
        return None;
    }
    Some((m, n, k, &body[..a_len], &body[a_len..]))
}
