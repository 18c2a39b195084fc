//! Hostile modules: each ends with the right kind, quickly, and the sandbox then runs a good
//! module normally.

use std::time::Duration;

use cairn_runtime::{JobLimits, RunError};

use crate::common::*;

/// Runs `wasm` with `limits`, expects `kind`, then checks the sandbox still works.
fn expect_kind(wasm: &[u8], limits: JobLimits, kind: &str) -> RunError {
    let sandbox = sandbox();
    let err = run(&sandbox, wasm, &job(b"").with_limits(limits)).expect_err("must fail");
    assert_eq!(err.kind(), kind, "{err}");
    assert_runs_good_module(&sandbox);
    err
}

#[test]
fn infinite_loop_runs_out_of_fuel() {
    let err = expect_kind(&infinite_loop(), tight_limits(), "out_of_fuel");
    assert!(err.is_attributable());
}

#[test]
fn infinite_loop_with_unlimited_fuel_times_out() {
    let limits = tight_limits()
        .with_fuel(u64::MAX)
        .with_timeout(Duration::from_millis(200));
    let err = expect_kind(&infinite_loop(), limits, "timeout");
    assert!(!err.is_attributable(), "a timeout depends on the host");
}

#[test]
fn endless_memory_growth_is_out_of_memory() {
    let err = expect_kind(&grow_forever(), tight_limits(), "out_of_memory");
    assert_eq!(err, RunError::OutOfMemory { limit: 16 << 20 });
}

#[test]
fn initial_memory_above_the_limit_is_out_of_memory() {
    let wasm = wat(r#"(module (memory (export "memory") 1000) (func (export "_start")))"#);
    expect_kind(&wasm, tight_limits(), "out_of_memory");
}

#[test]
fn table_growth_past_the_limit_is_out_of_memory() {
    let wasm = wat(r#"(module (memory (export "memory") 1) (table 1 funcref)
          (func (export "_start") (drop (table.grow (ref.null func) (i32.const 5000)))))"#);
    expect_kind(
        &wasm,
        tight_limits().with_max_table_elements(1000),
        "out_of_memory",
    );
}

#[test]
fn a_second_memory_is_rejected() {
    let wasm = wat(r#"(module (memory (export "memory") 1) (memory 1) (func (export "_start")))"#);
    expect_kind(&wasm, tight_limits(), "invalid_module");
}

#[test]
fn unbounded_recursion_is_a_stack_overflow() {
    let err = expect_kind(&recurse_forever(), tight_limits(), "stack_overflow");
    assert!(!err.is_attributable(), "stack depth depends on the host");
}

#[test]
fn writing_output_forever_is_output_too_large() {
    let err = expect_kind(&write_forever(1, 4096), tight_limits(), "output_too_large");
    assert_eq!(err, RunError::OutputTooLarge { limit: 1 << 20 });
}

#[test]
fn output_limit_is_exact() {
    // 4096 bytes fit a 4096-byte limit exactly; one byte less does not.
    let once = wat(r#"(module
          (import "wasi_snapshot_preview1" "fd_write"
            (func $w (param i32 i32 i32 i32) (result i32)))
          (memory (export "memory") 1)
          (func (export "_start")
            (i32.store (i32.const 0) (i32.const 64))
            (i32.store (i32.const 4) (i32.const 4096))
            (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#);
    let sandbox = sandbox();
    let fits = job(b"").with_limits(tight_limits().with_max_output_bytes(4096));
    assert_eq!(
        run(&sandbox, &once, &fits).expect("fits").output.len(),
        4096
    );
    let over = job(b"").with_limits(tight_limits().with_max_output_bytes(4095));
    assert_eq!(
        run(&sandbox, &once, &over).unwrap_err().kind(),
        "output_too_large"
    );
}

#[test]
fn writing_stderr_forever_runs_out_of_fuel_because_host_calls_cost_fuel() {
    // stderr overflow is not fatal (it is dropped), so only the fuel charged for host calls
    // and the bytes they move can stop this loop.
    expect_kind(&write_forever(2, 4096), tight_limits(), "out_of_fuel");
}

#[test]
fn failing_writes_to_a_bad_fd_forever_run_out_of_fuel() {
    expect_kind(&write_forever(77, 16), tight_limits(), "out_of_fuel");
}

#[test]
fn unknown_import_is_missing_import_and_names_it() {
    let wasm = wat(
        r#"(module (import "env" "evil" (func)) (memory (export "memory") 1)
          (func (export "_start")))"#,
    );
    let err = expect_kind(&wasm, tight_limits(), "missing_import");
    assert_eq!(
        err,
        RunError::MissingImport {
            module: "env".into(),
            name: "evil".into()
        }
    );
    assert!(err.to_string().contains("env::evil"));
}

#[test]
fn unknown_wasi_function_is_missing_import() {
    let wasm = wat(
        r#"(module (import "wasi_snapshot_preview1" "sock_teleport" (func))
          (memory (export "memory") 1) (func (export "_start")))"#,
    );
    expect_kind(&wasm, tight_limits(), "missing_import");
}

#[test]
fn no_start_is_no_entry_point() {
    let wasm = wat(r#"(module (memory (export "memory") 1) (func (export "main")))"#);
    expect_kind(&wasm, tight_limits(), "no_entry_point");
    let wrong_type = wat(r#"(module (memory (export "memory") 1)
          (func (export "_start") (param i32)))"#);
    expect_kind(&wrong_type, tight_limits(), "no_entry_point");
}

#[test]
fn truncated_bytes_are_an_invalid_module() {
    let echo = guest("echo");
    expect_kind(&echo[..echo.len() / 2], tight_limits(), "invalid_module");
    expect_kind(&echo[..7], tight_limits(), "invalid_module");
    expect_kind(b"not wasm at all", tight_limits(), "invalid_module");
}

#[test]
fn threads_and_shared_memory_are_rejected() {
    let wasm = wat(r#"(module (memory (export "memory") 1 1 shared) (func (export "_start")))"#);
    expect_kind(&wasm, tight_limits(), "invalid_module");
}

#[test]
fn trap_in_start_is_a_trap_with_its_message() {
    let err = expect_kind(&trap_in_start(), tight_limits(), "trap");
    assert!(err.to_string().contains("unreachable"), "{err}");
}

#[test]
fn non_zero_exit_is_exit_and_zero_exit_is_success() {
    let exit = |code: i32| {
        wat(&format!(
            r#"(module (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
              (memory (export "memory") 1)
              (func (export "_start") (call $exit (i32.const {code})) unreachable))"#
        ))
    };
    let err = expect_kind(&exit(3), tight_limits(), "exit");
    assert_eq!(err, RunError::Exit { code: 3 });
    let out = run(&sandbox(), &exit(0), &job(b"")).expect("exit 0 is success");
    assert_eq!(out.exit_code, 0);
}

#[test]
fn oversized_module_is_invalid() {
    let sandbox = cairn_runtime::Sandbox::new(
        cairn_runtime::SandboxConfig::default().with_max_module_bytes(1024),
    )
    .expect("sandbox");
    let err = run(&sandbox, &guest("echo"), &job(b"")).unwrap_err();
    assert_eq!(err.kind(), "invalid_module");
}

#[test]
fn sleeping_is_not_supported_and_returns_an_error() {
    // poll_oneoff would block the host thread outside the fuel and epoch limits.
    let wasm = wat(r#"(module
          (import "wasi_snapshot_preview1" "poll_oneoff"
            (func $poll (param i32 i32 i32 i32) (result i32)))
          (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
          (memory (export "memory") 1)
          (func (export "_start")
            (call $exit (call $poll (i32.const 0) (i32.const 64) (i32.const 1) (i32.const 128)))))"#);
    let err = run(&sandbox(), &wasm, &job(b"")).unwrap_err();
    assert_eq!(err, RunError::Exit { code: 52 }, "ENOSYS");
}
