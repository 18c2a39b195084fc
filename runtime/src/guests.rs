//! The example guests under `runtime/guests/`, built for `wasm32-wasip1` by this crate's
//! build script. For tests, benchmarks and trying `cairn run`; a node never needs them.

use std::path::PathBuf;

/// The names of the example guests.
pub const NAMES: [&str; 8] = include!("../guests/names.rs");

/// Where the build script put the example guests (inside this build's target directory).
pub const DIR: &str = env!("CAIRN_EXAMPLE_GUESTS_DIR");

/// The path of the example guest `name` (one of [`NAMES`]).
pub fn path(name: &str) -> PathBuf {
    PathBuf::from(DIR).join(format!("{name}.wasm"))
}

/// The bytes of the example guest `name`.
pub fn bytes(name: &str) -> std::io::Result<Vec<u8>> {
    std::fs::read(path(name))
}
