//! Hashes its input `ROUNDS` times over (first argument, default 100) with the shared
//! `hash_loop` kernel and prints the 64-bit result as 16 hex digits and a newline.
use std::io::Read;

fn main() {
    let rounds = std::env::args()
        .nth(1)
        .map_or(100, |r| r.parse().expect("ROUNDS: a number"));
    let mut data = Vec::new();
    std::io::stdin().read_to_end(&mut data).expect("read stdin");
    println!("{:016x}", cairn_kernels::hash_loop(&data, rounds));
}
