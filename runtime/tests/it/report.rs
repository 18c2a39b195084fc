//! The run report keeps the fuel used and the captured stderr when a job fails.

use cairn_runtime::RunError;

use crate::common::*;

#[test]
fn a_failed_job_reports_its_stderr_and_fuel() {
    let wasm = wat(r#"(module
          (import "wasi_snapshot_preview1" "fd_write"
            (func $w (param i32 i32 i32 i32) (result i32)))
          (memory (export "memory") 1)
          (data (i32.const 64) "oops\n")
          (func (export "_start")
            (i32.store (i32.const 0) (i32.const 64))
            (i32.store (i32.const 4) (i32.const 5))
            (drop (call $w (i32.const 2) (i32.const 0) (i32.const 1) (i32.const 8)))
            unreachable))"#);
    let sandbox = sandbox();
    let module = sandbox.prepare(&wasm).unwrap();
    let report = sandbox.run_report_blocking(&module, &job(b""));
    assert_eq!(report.result.unwrap_err().kind(), "trap");
    assert_eq!(report.stderr, b"oops\n");
    assert!(report.fuel_used >= 1_000, "at least the host call's charge");
    let again = sandbox.run_report_blocking(&module, &job(b""));
    assert_eq!(
        again.fuel_used, report.fuel_used,
        "fuel of a failed job is deterministic too"
    );
}

#[test]
fn out_of_fuel_reports_the_whole_limit_used() {
    let sandbox = sandbox();
    let module = sandbox.prepare(&infinite_loop()).unwrap();
    let report = sandbox.run_report_blocking(&module, &job(b""));
    assert_eq!(
        report.result,
        Err(RunError::OutOfFuel {
            limit: tight_limits().fuel
        })
    );
    assert_eq!(report.fuel_used, tight_limits().fuel);
}

#[test]
fn random_bytes_cost_fuel_per_byte() {
    let wasm = wat(r#"(module
          (import "wasi_snapshot_preview1" "random_get" (func $r (param i32 i32) (result i32)))
          (memory (export "memory") 256)
          (func (export "_start") (drop (call $r (i32.const 0) (i32.const 16000000)))))"#);
    let limits = tight_limits().with_fuel(1_000_000);
    let err = run(&sandbox(), &wasm, &job(b"").with_limits(limits)).unwrap_err();
    assert_eq!(err, RunError::OutOfFuel { limit: 1_000_000 });
}
