//! Builds the example guests (`guests/`, a separate cargo workspace) for `wasm32-wasip1`, so
//! that tests, benchmarks and `cairn run` examples work from a fresh clone.
//!
//! The nested cargo gets its own target directory under `OUT_DIR`, so it never waits on the
//! outer build's lock, and a cleaned environment, so that the outer build's wrappers (clippy),
//! flags and target settings do not leak into the guests. The guests depend only on crates in
//! their own workspace and build offline, with their source paths remapped, so the same
//! toolchain builds the same bytes from any clone.
//!
//! Without the wasm32-wasip1 target (rustup does not add a pinned toolchain's targets when the
//! toolchain is already installed), or with `CAIRN_PREBUILT_GUESTS=1`, the guests come from
//! `guests/prebuilt/`, which the test `prebuilt_guests_match_their_source` keeps equal to what
//! the source builds (refresh them with `runtime/guests/update-prebuilt`).
//! `CAIRN_SKIP_GUESTS=1` skips the guests altogether.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The example guests; each becomes `<name>.wasm`.
const GUESTS: [&str; 8] = include!("guests/names.rs");

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let guests = manifest_dir.join("guests");
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default());
    let target_dir = out_dir.join("guests");
    let wasm_dir = target_dir.join("wasm32-wasip1").join("release");
    println!("cargo:rerun-if-changed=guests");
    println!("cargo:rerun-if-env-changed=CAIRN_SKIP_GUESTS");
    println!("cargo:rerun-if-env-changed=CAIRN_PREBUILT_GUESTS");
    // Another toolchain may lack (or have) the wasm target.
    println!("cargo:rerun-if-env-changed=RUSTUP_TOOLCHAIN");
    println!(
        "cargo:rustc-env=CAIRN_EXAMPLE_GUESTS_DIR={}",
        wasm_dir.display()
    );
    if std::env::var_os("CAIRN_SKIP_GUESTS").is_some_and(|v| v == "1") {
        return;
    }
    let forced = std::env::var_os("CAIRN_PREBUILT_GUESTS").is_some_and(|v| v == "1");
    let source = if forced {
        "prebuilt"
    } else if wasm_target_installed() {
        build_guests(&guests, &target_dir);
        "source"
    } else {
        println!(
            "cargo:warning=the wasm32-wasip1 target is not installed, so the example guests \
             come prebuilt from runtime/guests/prebuilt (the same bytes as their source \
             builds; `rustup target add wasm32-wasip1` builds them from source)"
        );
        "prebuilt"
    };
    if source == "prebuilt" {
        copy_prebuilt(&guests.join("prebuilt"), &wasm_dir);
    }
    println!("cargo:rustc-env=CAIRN_EXAMPLE_GUESTS_FROM={source}");
    for guest in GUESTS {
        let path = wasm_dir.join(format!("{guest}.wasm"));
        if !path.is_file() {
            panic!(
                "example guest {} was not built at {}",
                guest,
                path.display()
            );
        }
    }
}

/// Whether the toolchain building this crate has the wasm32-wasip1 standard library.
fn wasm_target_installed() -> bool {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let libdir = Command::new(rustc)
        .args(["--print", "target-libdir", "--target", "wasm32-wasip1"])
        .output();
    let Ok(out) = libdir else {
        return false;
    };
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    out.status.success()
        && std::fs::read_dir(dir).is_ok_and(|entries| {
            entries
                .flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with("libstd-"))
        })
}

/// Copies the prebuilt guests to where a source build would put them.
fn copy_prebuilt(prebuilt: &Path, wasm_dir: &Path) {
    std::fs::create_dir_all(wasm_dir)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", wasm_dir.display()));
    for guest in GUESTS {
        let from = prebuilt.join(format!("{guest}.wasm"));
        std::fs::copy(&from, wasm_dir.join(format!("{guest}.wasm")))
            .unwrap_or_else(|e| panic!("cannot copy the prebuilt {}: {e}", from.display()));
    }
}

/// Runs `cargo build --release --target wasm32-wasip1` in the guests workspace.
fn build_guests(guests: &Path, target_dir: &Path) {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(guests)
        .args([
            "build",
            "--release",
            "--locked",
            "--offline",
            "--target",
            "wasm32-wasip1",
        ])
        .arg("--target-dir")
        .arg(target_dir)
        // Appended to the guests' own rustflags (`.cargo/config.toml`): no clone's path in
        // the bytes, so every clone builds the prebuilt guests exactly.
        .arg("--config")
        .arg(format!(
            "target.wasm32-wasip1.rustflags=[\"--remap-path-prefix={}=guests\"]",
            guests.display()
        ));
    // Keep what finds the toolchain (RUSTUP_*, CARGO_HOME, PATH); drop what configures the
    // outer build.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        let outer = key.starts_with("CARGO_") && key != "CARGO_HOME";
        let rustc = matches!(
            key.as_ref(),
            "RUSTC" | "RUSTC_WRAPPER" | "RUSTC_WORKSPACE_WRAPPER" | "RUSTFLAGS" | "RUSTDOCFLAGS"
        );
        if outer || rustc {
            cmd.env_remove(key.as_ref());
        }
    }
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("could not run cargo for guests: {e}"));
    if !status.success() {
        panic!(
            "building the example guests failed ({status}); is the wasm32-wasip1 target \
             installed? (`rustup target add wasm32-wasip1`, or set CAIRN_SKIP_GUESTS=1)"
        );
    }
}
