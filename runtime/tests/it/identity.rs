//! The runtime identity pins the wasmtime version and the settings that change results.

use cairn_runtime::{HostFuel, Sandbox, SandboxConfig, WASMTIME_VERSION};

#[test]
fn wasmtime_version_matches_the_lock_file() {
    let lock = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.lock"))
        .expect("Cargo.lock");
    let entry = format!("name = \"wasmtime\"\nversion = \"{WASMTIME_VERSION}\"");
    assert!(
        lock.contains(&entry),
        "update WASMTIME_VERSION to the locked wasmtime"
    );
}

#[test]
fn fingerprint_is_stable_and_follows_the_fuel_settings() {
    let a = Sandbox::new(SandboxConfig::default()).unwrap();
    let b = Sandbox::new(SandboxConfig::default()).unwrap();
    assert_eq!(a.identity(), b.identity());
    assert_eq!(a.identity().wasmtime_version, WASMTIME_VERSION);
    let mut fuel = HostFuel::default();
    fuel.per_byte = 2;
    let c = Sandbox::new(SandboxConfig::default().with_host_fuel(fuel)).unwrap();
    assert_ne!(a.identity().fingerprint, c.identity().fingerprint);
    assert_eq!(a.identity().fingerprint_hex().len(), 64);
}
