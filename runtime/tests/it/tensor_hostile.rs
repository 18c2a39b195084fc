//! Hostile uses of the tensor API: each ends the job with a typed error a user can read, before
//! the host allocates or computes anything large, and the sandbox then runs a good job.

use std::time::{Duration, Instant};

use cairn_runtime::{JobLimits, RunError};

use crate::common::*;

/// A module importing the tensor functions used below, with one page of memory, running `body`
/// in `_start` (locals `$a`, `$b`, `$c`, `$i`).
fn tensor_module(body: &str) -> Vec<u8> {
    wat(&format!(
        r#"(module
          (import "cairn_tensor" "upload" (func $upload (param i32 i32 i32 i32 i32) (result i32)))
          (import "cairn_tensor" "read" (func $read (param i32 i32 i32)))
          (import "cairn_tensor" "free" (func $free (param i32)))
          (import "cairn_tensor" "matmul" (func $matmul (param i32 i32) (result i32)))
          (import "cairn_tensor" "add" (func $add (param i32 i32) (result i32)))
          (import "cairn_tensor" "softmax" (func $softmax (param i32) (result i32)))
          (import "cairn_tensor" "requantize" (func $requantize (param i32 i32 f32) (result i32)))
          (memory (export "memory") 1)
          (func (export "_start") (local $a i32) (local $b i32) (local $c i32) (local $i i32)
            {body}))"#
    ))
}

/// Uploads a `rows × cols` tensor of `dtype` from address 0 into `$var`.
fn upload(var: &str, dtype: u32, rows: u32, cols: u32) -> String {
    let len = rows * cols * if dtype == 0 { 1 } else { 4 };
    format!(
        "(local.set ${var} (call $upload (i32.const {dtype}) (i32.const {rows}) (i32.const {cols}) \
         (i32.const 0) (i32.const {len})))"
    )
}

/// Runs `body` with `limits`; expects `kind` with a message containing `words`; checks the
/// sandbox still runs a good module.
fn expect(body: &str, limits: JobLimits, kind: &str, words: &str) -> RunError {
    let sandbox = sandbox();
    let started = Instant::now();
    let err = run(
        &sandbox,
        &tensor_module(body),
        &job(b"").with_limits(limits),
    )
    .expect_err("must fail");
    assert_eq!(err.kind(), kind, "{err}");
    assert!(err.to_string().contains(words), "{err:?} lacks {words:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the host must refuse before doing the work"
    );
    assert_runs_good_module(&sandbox);
    err
}

#[test]
fn a_handle_never_given_out_is_a_bad_handle() {
    let err = expect(
        "(drop (call $softmax (i32.const 42)))",
        tight_limits(),
        "trap",
        "bad handle 42",
    );
    assert!(err.is_attributable(), "every replica traps the same way");
    expect(
        "(call $free (i32.const 0))",
        tight_limits(),
        "trap",
        "bad handle 0",
    );
    expect(
        "(call $free (i32.const -1))",
        tight_limits(),
        "trap",
        "bad handle",
    );
}

#[test]
fn using_or_freeing_a_freed_tensor_is_use_after_free() {
    let freed = upload("a", 2, 1, 1) + "(call $free (local.get $a))";
    expect(
        &format!("{freed} (drop (call $softmax (local.get $a)))"),
        tight_limits(),
        "trap",
        "use after free",
    );
    expect(
        &format!("{freed} (call $free (local.get $a))"),
        tight_limits(),
        "trap",
        "use after free",
    );
    expect(
        &format!("{freed} (call $read (local.get $a) (i32.const 0) (i32.const 4))"),
        tight_limits(),
        "trap",
        "use after free",
    );
}

#[test]
fn shapes_that_overflow_or_are_empty_are_bad_shapes() {
    for (rows, cols) in [
        ("0x7fffffff", "0x7fffffff"),
        ("-1", "4"),
        ("0", "4"),
        ("0x1000001", "1"),
    ] {
        let body = format!(
            "(drop (call $upload (i32.const 2) (i32.const {rows}) (i32.const {cols}) \
             (i32.const 0) (i32.const 16)))"
        );
        expect(&body, tight_limits(), "trap", "bad shape");
    }
}

#[test]
fn a_product_larger_than_the_memory_limit_is_out_of_memory_before_allocating() {
    // (8192×1) · (1×8192) would be 256 MiB of f32; the job's limit is 16 MiB.
    let body = upload("a", 2, 8192, 1)
        + &upload("b", 2, 1, 8192)
        + "(drop (call $matmul (local.get $a) (local.get $b)))";
    let err = expect(&body, tight_limits(), "out_of_memory", "16777216");
    assert_eq!(err, RunError::OutOfMemory { limit: 16 << 20 });
}

#[test]
fn hoarding_tensors_is_out_of_memory_at_the_limit() {
    // 32 KiB uploads, never freed: the 513th passes 16 MiB.
    let body = format!(
        "(loop {} (br 0))",
        upload("a", 2, 8192, 1).replace("local.set $a", "local.set $b")
    );
    expect(&body, tight_limits(), "out_of_memory", "out of memory");
}

#[test]
fn too_many_live_tensors_is_a_trap() {
    let body = format!("(loop {} (br 0))", upload("a", 0, 1, 1));
    expect(&body, tight_limits(), "trap", "too many tensors");
}

#[test]
fn allocating_and_freeing_forever_runs_out_of_fuel() {
    let body = format!(
        "(loop {} (call $free (local.get $a)) (br 0))",
        upload("a", 2, 64, 64)
    );
    expect(&body, tight_limits(), "out_of_fuel", "out of fuel");
}

#[test]
fn a_product_costing_more_than_the_fuel_left_is_refused_before_the_work() {
    // 4096×4096×1 MACs plus 4096² outputs: 33 M fuel, with 10 M given.
    let limits = tight_limits()
        .with_fuel(10_000_000)
        .with_memory_bytes(128 << 20);
    let body = upload("a", 2, 4096, 1)
        + &upload("b", 2, 1, 4096)
        + "(drop (call $matmul (local.get $a) (local.get $b)))";
    let err = expect(&body, limits, "out_of_fuel", "10000000");
    assert_eq!(err, RunError::OutOfFuel { limit: 10_000_000 });
}

#[test]
fn mixing_types_is_a_type_mismatch() {
    let body = upload("a", 0, 2, 2)
        + &upload("b", 2, 2, 2)
        + "(drop (call $add (local.get $a) (local.get $b)))";
    expect(&body, tight_limits(), "trap", "type mismatch in add");
    let body = upload("a", 1, 2, 2) + "(drop (call $softmax (local.get $a)))";
    expect(&body, tight_limits(), "trap", "type mismatch in softmax");
    let body = upload("a", 1, 2, 2) + "(drop (call $matmul (local.get $a) (local.get $a)))";
    expect(&body, tight_limits(), "trap", "type mismatch in matmul");
}

#[test]
fn mismatched_shapes_are_a_shape_mismatch() {
    let body = upload("a", 2, 1, 2) + "(drop (call $matmul (local.get $a) (local.get $a)))";
    expect(
        &body,
        tight_limits(),
        "trap",
        "shape mismatch in matmul: 1x2 and 1x2",
    );
    let body = upload("a", 2, 2, 3)
        + &upload("b", 2, 2, 2)
        + "(drop (call $add (local.get $a) (local.get $b)))";
    expect(&body, tight_limits(), "trap", "shape mismatch in add");
}

#[test]
fn pointers_outside_guest_memory_are_out_of_bounds() {
    let body = "(drop (call $upload (i32.const 2) (i32.const 1) (i32.const 4) \
                (i32.const 65530) (i32.const 16)))";
    expect(body, tight_limits(), "trap", "out of bounds");
    let body = upload("a", 2, 1, 4) + "(call $read (local.get $a) (i32.const -4) (i32.const 16))";
    expect(&body, tight_limits(), "trap", "out of bounds");
}

#[test]
fn lengths_and_dtypes_must_match() {
    let body = "(drop (call $upload (i32.const 2) (i32.const 2) (i32.const 2) \
                (i32.const 0) (i32.const 15)))";
    expect(body, tight_limits(), "trap", "length mismatch");
    let body = upload("a", 2, 2, 2) + "(call $read (local.get $a) (i32.const 0) (i32.const 8))";
    expect(&body, tight_limits(), "trap", "length mismatch");
    let body = "(drop (call $upload (i32.const 9) (i32.const 1) (i32.const 1) \
                (i32.const 0) (i32.const 1)))";
    expect(body, tight_limits(), "trap", "bad dtype code 9");
    let body = upload("a", 2, 1, 1)
        + "(drop (call $requantize (local.get $a) (i32.const 3) (f32.const 1)))";
    expect(&body, tight_limits(), "trap", "bad dtype code 3");
}

#[test]
fn a_module_importing_an_unknown_tensor_function_is_missing_import() {
    let wasm = wat(r#"(module (import "cairn_tensor" "teleport" (func))
          (memory (export "memory") 1) (func (export "_start")))"#);
    let err = run(&sandbox(), &wasm, &job(b"")).expect_err("must fail");
    assert_eq!(err.kind(), "missing_import", "{err}");
}

#[test]
fn a_module_without_memory_cannot_pass_pointers() {
    let wasm = wat(r#"(module
          (import "cairn_tensor" "upload" (func $upload (param i32 i32 i32 i32 i32) (result i32)))
          (func (export "_start")
            (drop (call $upload (i32.const 2) (i32.const 1) (i32.const 1) (i32.const 0)
              (i32.const 4)))))"#);
    let err = run(&sandbox(), &wasm, &job(b"")).expect_err("must fail");
    assert_eq!(err.kind(), "trap", "{err}");
    assert!(err.to_string().contains("exports no memory"), "{err}");
}
