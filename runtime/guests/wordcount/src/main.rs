//! Counts the lines, words and bytes of its input, like `wc`: prints `LINES WORDS BYTES\n`.
use std::io::Read;

fn main() {
    let mut data = Vec::new();
    std::io::stdin().read_to_end(&mut data).expect("read stdin");
    let lines = data.iter().filter(|&&b| b == b'\n').count();
    let words = data
        .split(|b| b.is_ascii_whitespace())
        .filter(|w| !w.is_empty())
        .count();
    println!("{lines} {words} {}", data.len());
}
