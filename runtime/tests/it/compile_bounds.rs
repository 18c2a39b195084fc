//! Compilation is bounded: modules past a structural limit are refused before Cranelift sees
//! them, and a compile past its timeout fails without being held against the provider, while
//! its slot stays taken until the compile really ends.

use std::time::Duration;

use cairn_runtime::{CompileLimits, ModuleShape, RunError, Sandbox, SandboxConfig, guests};

use crate::common::*;

/// A sandbox with `limits` (and a generous timeout).
fn limited(limits: CompileLimits) -> Sandbox {
    Sandbox::new(SandboxConfig::default().with_compile_limits(limits)).expect("sandbox")
}

/// Prepares `wasm` under `limits` and returns the refusal, checking its fields.
fn refused(limits: CompileLimits, wasm: &[u8], found: u64, limit: u64) -> RunError {
    let err = limited(limits).prepare(wasm).expect_err("must be refused");
    match &err {
        RunError::ModuleTooComplex {
            found: f, limit: l, ..
        } => assert_eq!((*f, *l), (found, limit), "{err}"),
        other => panic!("expected module_too_complex, got {other}"),
    }
    assert_eq!(err.kind(), "module_too_complex");
    assert!(!err.is_attributable(), "the limits are this host's policy");
    err
}

/// Accepts `wasm` under `limits` (exactly at the limit is allowed).
fn accepted(limits: CompileLimits, wasm: &[u8]) {
    limited(limits).prepare(wasm).expect("within the limits");
}

/// A module with `_start` and one function per body.
fn module(bodies: &[&str]) -> Vec<u8> {
    let funcs: String = bodies.iter().map(|b| format!("(func {b})")).collect();
    wat(&format!(
        r#"(module (memory (export "memory") 1) {funcs} (func (export "_start")))"#
    ))
}

#[test]
fn too_many_functions_are_refused() {
    let limits = CompileLimits::default().with_max_functions(3);
    let err = refused(limits, &module(&["", "", ""]), 4, 3);
    assert!(err.to_string().contains("number of functions"), "{err}");
    accepted(limits, &module(&["", ""]));
}

#[test]
fn a_function_body_too_large_is_refused() {
    let big = "(drop (i32.const 1))".repeat(40);
    let wasm = module(&[&big]);
    let found = ModuleShape::of(&wasm)
        .expect("shape")
        .largest_function_bytes;
    let limits = CompileLimits::default().with_max_function_bytes(found - 1);
    let err = refused(limits, &wasm, found, found - 1);
    assert!(err.to_string().contains("one function body"), "{err}");
    accepted(limits.with_max_function_bytes(found), &wasm);
}

#[test]
fn a_code_section_too_large_is_refused() {
    let body = "(drop (i32.const 1))".repeat(10);
    let wasm = module(&[&body, &body, &body]);
    let found = ModuleShape::of(&wasm).expect("shape").code_bytes;
    let limits = CompileLimits::default().with_max_code_bytes(found - 1);
    let err = refused(limits, &wasm, found, found - 1);
    assert!(err.to_string().contains("code section"), "{err}");
    accepted(limits.with_max_code_bytes(found), &wasm);
}

#[test]
fn too_many_locals_are_refused() {
    let limits = CompileLimits::default().with_max_locals(10);
    let err = refused(
        limits,
        &module(&["(local i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i32)"]),
        11,
        10,
    );
    assert!(err.to_string().contains("locals"), "{err}");
    accepted(
        limits,
        &module(&["(local i64 i64 i64 i64 i64 i64 i64 i64 i64 i64)"]),
    );
}

#[test]
fn a_br_table_too_wide_is_refused() {
    let table = |n: usize| format!("(block (br_table {} 0 (i32.const 0)))", "0 ".repeat(n));
    let limits = CompileLimits::default().with_max_br_table_targets(4);
    let err = refused(limits, &module(&[&table(5)]), 5, 4);
    assert!(err.to_string().contains("br_table"), "{err}");
    accepted(limits, &module(&[&table(4)]));
}

#[test]
fn too_many_blocks_are_refused() {
    let blocks = |n: usize| "(block) (loop) (if (i32.const 0) (then))".repeat(n);
    let limits = CompileLimits::default().with_max_blocks(6);
    let err = refused(limits, &module(&[&blocks(1), &blocks(2)]), 7, 6);
    assert!(err.to_string().contains("blocks in the module"), "{err}");
    accepted(limits, &module(&[&blocks(1), &blocks(1)]));
}

#[test]
fn a_function_with_too_much_work_is_refused() {
    // Three blocks and two locals: 3 × (3 + 2) = 15.
    let body = "(local i32 i64) (block) (loop) (block)";
    let limits = CompileLimits::default().with_max_function_work(14);
    let err = refused(limits, &module(&[body]), 15, 14);
    assert!(err.to_string().contains("one function's blocks"), "{err}");
    accepted(limits.with_max_function_work(15), &module(&[body]));
}

#[test]
fn a_module_with_too_much_work_is_refused() {
    // Two functions of three blocks and no locals: 9 + 9 = 18.
    let three = "(block) (block) (block)";
    let limits = CompileLimits::default().with_max_work(17);
    let err = refused(limits, &module(&[three, three]), 18, 17);
    assert!(err.to_string().contains("sum over functions"), "{err}");
    accepted(limits.with_max_work(18), &module(&[three, three]));
}

#[test]
fn every_example_guest_is_within_the_default_limits() {
    for name in guests::NAMES {
        let wasm = guests::bytes(name).expect("guest built");
        ModuleShape::check(&wasm, &CompileLimits::default())
            .unwrap_or_else(|e| panic!("guest {name} refused: {e}"));
    }
}

/// A module within the default limits whose compile takes about a second: one function of
/// 1 400 loops, which Cranelift analyses against each other (`docs/benchmarks.md`, "Compile
/// bounds").
fn slow_to_compile() -> Vec<u8> {
    let loops = "(loop $l (local.set 0 (i64.add (local.get 0) (i64.const 1))) (br_if $l (i64.eqz (local.get 0))))";
    module(&[&format!("(local i64) {}", loops.repeat(1400))])
}

#[test]
fn a_compile_past_its_timeout_fails_keeps_its_slot_and_the_sandbox_serves_the_next_job() {
    // The good module comes from a disk cache, so serving it needs no compile.
    let dir = tempfile::tempdir().expect("tempdir");
    sandbox_with(SandboxConfig::default().with_cache_dir(dir.path()))
        .prepare(&guest("echo"))
        .expect("echo compiles");
    let limits = CompileLimits::default().with_timeout(Duration::from_nanos(1));
    let config = SandboxConfig::default()
        .with_cache_dir(dir.path())
        .with_max_concurrent_jobs(1)
        .with_compile_limits(limits);
    let sandbox = sandbox_with(config);
    let err = sandbox
        .prepare(&slow_to_compile())
        .expect_err("must time out");
    assert_eq!(err, RunError::CompileTimeout { limit_ms: 0 });
    assert_eq!(err.kind(), "compile_timeout");
    assert!(!err.is_attributable(), "compile time depends on the host");
    // The compile cannot be stopped: it keeps the only slot until it ends.
    assert_eq!(
        sandbox.free_slots(),
        0,
        "the abandoned compile holds its slot"
    );
    assert_runs_good_module(&sandbox);
    assert_eq!(sandbox.free_slots(), 1, "the slot came back");
}

fn sandbox_with(config: SandboxConfig) -> Sandbox {
    Sandbox::new(config).expect("sandbox")
}
