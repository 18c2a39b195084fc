//! Copies its input (stdin) to its output (stdout) unchanged.
use std::io::{Read, Write};

fn main() {
    let mut data = Vec::new();
    std::io::stdin().read_to_end(&mut data).expect("read stdin");
    std::io::stdout().write_all(&data).expect("write stdout");
}
