//! The example guests under `runtime/guests/`, built for `wasm32-wasip1` by this crate's
//! build script. For tests, benchmarks and trying `cairn run`; a node never needs them.

use std::path::PathBuf;

/// The names of the example guests.
pub const NAMES: [&str; 8] = include!("../guests/names.rs");

/// Where the build script put the example guests (inside this build's target directory).
pub const DIR: &str = env!("CAIRN_EXAMPLE_GUESTS_DIR");

/// How this build got them: `"source"` (built for wasm32-wasip1) or `"prebuilt"` (copied
/// from `runtime/guests/prebuilt/`, when the target is not installed).
pub const FROM: &str = env!("CAIRN_EXAMPLE_GUESTS_FROM");

/// The path of the example guest `name` (one of [`NAMES`]).
pub fn path(name: &str) -> PathBuf {
    PathBuf::from(DIR).join(format!("{name}.wasm"))
}

/// The bytes of the example guest `name`.
pub fn bytes(name: &str) -> std::io::Result<Vec<u8>> {
    std::fs::read(path(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A build without the wasm32-wasip1 target uses the committed guests: they must be what
    /// the source builds. Meaningful where the target is installed (CI), which builds them.
    #[test]
    fn prebuilt_guests_match_their_source() {
        let prebuilt = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("guests/prebuilt");
        if FROM != "source" {
            eprintln!("the guests of this build are the prebuilt ones: nothing to compare");
        }
        for name in NAMES {
            let built = bytes(name).unwrap();
            let committed = std::fs::read(prebuilt.join(format!("{name}.wasm"))).unwrap();
            assert!(
                built == committed,
                "{name}.wasm built from source differs from runtime/guests/prebuilt/{name}.wasm: \
                 run runtime/guests/update-prebuilt and commit the result"
            );
        }
    }
}
