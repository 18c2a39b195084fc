//! Multiplies two pseudo-random N×N matrices and writes the product's bytes (little endian,
//! row major) to stdout. Arguments: `f32|f64` (default `f64`) and `N` (default 64). The
//! matrices are seeded from the input's length, so different inputs give different products.
use std::io::{Read, Write};

fn main() {
    let mut args = std::env::args().skip(1);
    let kind = args.next().unwrap_or_else(|| "f64".into());
    let n: usize = args.next().map_or(64, |n| n.parse().expect("N: a number"));
    let mut input = Vec::new();
    std::io::stdin()
        .read_to_end(&mut input)
        .expect("read stdin");
    let seed = input.len() as u64;
    let out = match kind.as_str() {
        "f32" => {
            let (mut a, mut b, mut c) = (vec![0f32; n * n], vec![0f32; n * n], vec![0f32; n * n]);
            cairn_kernels::fill_f32(seed, &mut a);
            cairn_kernels::fill_f32(seed + 1, &mut b);
            cairn_kernels::matmul_f32(n, &a, &b, &mut c);
            c.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>()
        }
        "f64" => {
            let (mut a, mut b, mut c) = (vec![0f64; n * n], vec![0f64; n * n], vec![0f64; n * n]);
            cairn_kernels::fill_f64(seed, &mut a);
            cairn_kernels::fill_f64(seed + 1, &mut b);
            cairn_kernels::matmul_f64(n, &a, &b, &mut c);
            c.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>()
        }
        other => panic!("unknown element type {other}: use f32 or f64"),
    };
    std::io::stdout().write_all(&out).expect("write stdout");
}
