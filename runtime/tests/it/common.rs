//! Helpers shared by the scenarios: sandboxes, jobs, guests and WAT modules.

use std::time::Duration;

use cairn_protocol::JobId;
use cairn_runtime::{Job, JobLimits, RunError, RunOutput, Sandbox, SandboxConfig};

/// A sandbox with the default configuration.
pub fn sandbox() -> Sandbox {
    Sandbox::new(SandboxConfig::default()).expect("sandbox")
}

/// The bytes of an example guest.
pub fn guest(name: &str) -> Vec<u8> {
    cairn_runtime::guests::bytes(name).unwrap_or_else(|e| panic!("guest {name}: {e}"))
}

/// WAT text compiled to wasm.
pub fn wat(text: &str) -> Vec<u8> {
    wat::parse_str(text).expect("valid WAT")
}

/// A job with the given input and limits small enough that hostile modules end quickly.
pub fn job(input: &[u8]) -> Job {
    Job::new(JobId::of(b"test job"), input.to_vec()).with_limits(tight_limits())
}

/// Limits for hostile-module tests: 200 M fuel, 16 MiB memory, 1 MiB output, 20 s wall clock.
pub fn tight_limits() -> JobLimits {
    JobLimits::default()
        .with_fuel(200_000_000)
        .with_memory_bytes(16 << 20)
        .with_max_output_bytes(1 << 20)
        .with_timeout(Duration::from_secs(20))
}

/// Runs `wasm` with `job` in `sandbox`.
pub fn run(sandbox: &Sandbox, wasm: &[u8], job: &Job) -> Result<RunOutput, RunError> {
    sandbox.run_wasm_blocking(wasm, job)
}

/// Asserts the sandbox still runs a good module normally (the echo guest).
pub fn assert_runs_good_module(sandbox: &Sandbox) {
    let out = run(sandbox, &guest("echo"), &job(b"still alive")).expect("echo runs");
    assert_eq!(out.output, b"still alive");
    assert_eq!(out.exit_code, 0);
}

/// `fd_write(fd, iov at 0 = {64, len})` forever, ignoring errors.
pub fn write_forever(fd: u32, len: u32) -> Vec<u8> {
    wat(&format!(
        r#"(module
          (import "wasi_snapshot_preview1" "fd_write"
            (func $w (param i32 i32 i32 i32) (result i32)))
          (memory (export "memory") 1)
          (func (export "_start")
            (i32.store (i32.const 0) (i32.const 64))
            (i32.store (i32.const 4) (i32.const {len}))
            (loop (drop (call $w (i32.const {fd}) (i32.const 0) (i32.const 1) (i32.const 8)))
                  (br 0))))"#
    ))
}

/// An infinite loop.
pub fn infinite_loop() -> Vec<u8> {
    wat(r#"(module (memory (export "memory") 1) (func (export "_start") (loop (br 0))))"#)
}

/// Grows memory one page at a time forever.
pub fn grow_forever() -> Vec<u8> {
    wat(r#"(module (memory (export "memory") 1)
          (func (export "_start") (loop (drop (memory.grow (i32.const 1))) (br 0))))"#)
}

/// Unbounded recursion.
pub fn recurse_forever() -> Vec<u8> {
    wat(r#"(module (memory (export "memory") 1)
          (func $f (param i64) (call $f (i64.add (local.get 0) (i64.const 1))))
          (func (export "_start") (call $f (i64.const 0))))"#)
}

/// `unreachable` in `_start`.
pub fn trap_in_start() -> Vec<u8> {
    wat(r#"(module (memory (export "memory") 1) (func (export "_start") unreachable))"#)
}
