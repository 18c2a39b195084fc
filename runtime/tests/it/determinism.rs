//! Determinism: the same module and input give the same digest and fuel in two fresh
//! sandboxes, in two processes, and with the cache cold or warm; NaNs are canonical; the
//! clock and the random source are the same on every run.

use std::process::Command;

use cairn_protocol::JobId;
use cairn_runtime::{FIXED_WALL_CLOCK, Job, Sandbox, SandboxConfig};

use crate::common::*;

/// (guest, arguments, input) cases covering every example guest.
fn cases() -> Vec<(&'static str, Vec<&'static str>, Vec<u8>)> {
    let text = b"the quick brown fox\njumps over the lazy dog\n".repeat(50);
    vec![
        ("echo", vec![], text.clone()),
        ("wordcount", vec![], text.clone()),
        ("hashloop", vec!["20"], text),
        ("matmul", vec!["f32", "24"], b"seed".to_vec()),
        ("matmul", vec!["f64", "24"], b"seed".to_vec()),
        ("nanfloat", vec![], Vec::new()),
        ("matmul-i8", vec![], matmul_i8_input()),
        ("digits", vec![], digit_images()),
        (
            "transformer",
            vec![],
            [4u32, 16, 9].iter().flat_map(|x| x.to_le_bytes()).collect(),
        ),
    ]
}

/// A 9×13 by 13×11 `i8` product for the `matmul-i8` guest.
fn matmul_i8_input() -> Vec<u8> {
    let mut input: Vec<u8> = [9u32, 11, 13]
        .iter()
        .flat_map(|d| d.to_le_bytes())
        .collect();
    input.extend((0..9 * 13 + 13 * 11).map(|i| (i * 37 % 256) as u8));
    input
}

/// Twenty held-out digit images for the `digits` guest.
fn digit_images() -> Vec<u8> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/digits-test-images.bin"
    );
    let images = std::fs::read(path).expect("digit images");
    images[..20 * 64].to_vec()
}

/// `guest digest fuel` for every case, one line each.
fn fingerprints(sandbox: &Sandbox) -> Vec<String> {
    cases()
        .into_iter()
        .map(|(name, args, input)| {
            let job = Job::new(JobId::of(name.as_bytes()), input).with_args(args.clone());
            let out = run(sandbox, &guest(name), &job).unwrap_or_else(|e| panic!("{name}: {e}"));
            format!("{name}/{} {} {}", args.join(","), out.digest, out.fuel_used)
        })
        .collect()
}

#[test]
fn two_fresh_sandboxes_agree_on_digest_and_fuel() {
    let a = fingerprints(&sandbox());
    let b = fingerprints(&sandbox());
    assert_eq!(a, b);
}

#[test]
fn pooling_and_on_demand_allocation_agree() {
    let on_demand = Sandbox::new(SandboxConfig::default().with_pooling(false)).unwrap();
    assert_eq!(fingerprints(&sandbox()), fingerprints(&on_demand));
}

#[test]
fn cold_and_warm_cache_agree_and_the_disk_cache_is_used() {
    let dir = tempfile::tempdir().unwrap();
    let config = SandboxConfig::default().with_cache_dir(dir.path());
    let cold = fingerprints(&Sandbox::new(config.clone()).unwrap());
    let artifacts = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "cwasm")
        })
        .count();
    assert_eq!(artifacts, 8, "one artifact per distinct guest");
    // A new sandbox loads the artifacts from disk (warm disk cache), then hits memory.
    let warm = Sandbox::new(config).unwrap();
    assert_eq!(cold, fingerprints(&warm));
    assert_eq!(cold, fingerprints(&warm));
    warm.clear_memory_cache();
    assert_eq!(cold, fingerprints(&warm));
}

#[test]
fn a_tampered_artifact_is_ignored_and_recompiled() {
    let dir = tempfile::tempdir().unwrap();
    let config = SandboxConfig::default().with_cache_dir(dir.path());
    let expected = run(
        &Sandbox::new(config.clone()).unwrap(),
        &guest("echo"),
        &job(b"hi"),
    );
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|x| x == "cwasm") {
            let mut bytes = std::fs::read(&path).unwrap();
            let last = bytes.len() - 1;
            bytes[last] ^= 0xff;
            std::fs::write(&path, bytes).unwrap();
        }
    }
    let again = run(&Sandbox::new(config).unwrap(), &guest("echo"), &job(b"hi"));
    assert_eq!(expected.unwrap(), again.unwrap());
}

/// Set in the child process started by `two_processes_agree`.
const CHILD_ENV: &str = "CAIRN_RUNTIME_DETERMINISM_CHILD";

/// In a child process, prints this process's fingerprints; otherwise does nothing.
#[test]
fn child_prints_fingerprints() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    for line in fingerprints(&sandbox()) {
        println!("FINGERPRINT {line}");
    }
}

/// Re-runs this test binary as `child_prints_fingerprints` and returns what it printed.
fn fingerprints_from_child() -> Vec<String> {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "determinism::child_prints_fingerprints",
            "--nocapture",
        ])
        .args(["--test-threads", "1"])
        .env(CHILD_ENV, "1")
        .output()
        .expect("re-run the test binary");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once("FINGERPRINT ").map(|(_, f)| f.to_owned()))
        .collect()
}

#[test]
fn two_processes_agree() {
    let first = fingerprints_from_child();
    let second = fingerprints_from_child();
    assert_eq!(first.len(), cases().len());
    assert_eq!(first, second);
    assert_eq!(
        first,
        fingerprints(&sandbox()),
        "and agree with this process"
    );
}

#[test]
fn nan_results_are_canonical() {
    let out = run(&sandbox(), &guest("nanfloat"), &job(b"")).unwrap();
    let text = String::from_utf8(out.output).unwrap();
    let (mut f32s, mut f64s) = (0, 0);
    for line in text.lines() {
        match line.split_once(' ') {
            Some(("f32", bits)) => {
                assert_eq!(bits, "7fc00000", "non-canonical f32 NaN in {text}");
                f32s += 1;
            }
            Some(("f64", bits)) => {
                assert_eq!(bits, "7ff8000000000000", "non-canonical f64 NaN in {text}");
                f64s += 1;
            }
            _ => panic!("unexpected line {line:?}"),
        }
    }
    assert_eq!((f32s, f64s), (10, 11));
}

/// Reads the realtime and monotonic clocks and 32 random bytes, writes all 48 bytes, and
/// exits with the first non-zero errno (so a failing import cannot pass as zeros).
fn clock_and_random_probe() -> Vec<u8> {
    wat(r#"(module
      (import "wasi_snapshot_preview1" "clock_time_get"
        (func $clock (param i32 i64 i32) (result i32)))
      (import "wasi_snapshot_preview1" "random_get" (func $rand (param i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
      (memory (export "memory") 1)
      (func $check (param i32) (if (local.get 0) (then (call $exit (local.get 0)))))
      (func (export "_start")
        (call $check (call $clock (i32.const 0) (i64.const 1) (i32.const 104)))
        (call $check (call $clock (i32.const 1) (i64.const 1) (i32.const 112)))
        (call $check (call $rand (i32.const 120) (i32.const 32)))
        (i32.store (i32.const 0) (i32.const 104))
        (i32.store (i32.const 4) (i32.const 48))
        (call $check (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#)
}

#[test]
fn clock_and_random_are_the_same_on_every_run() {
    let probe = clock_and_random_probe();
    let job_a = Job::new(JobId::of(b"a"), Vec::new());
    let first = run(&sandbox(), &probe, &job_a).unwrap().output;
    std::thread::sleep(std::time::Duration::from_millis(20));
    let second = run(&sandbox(), &probe, &job_a).unwrap().output;
    assert_eq!(first, second, "same job, same clock and random bytes");
    let wall = u64::from_le_bytes(first[..8].try_into().unwrap());
    assert_eq!(
        u128::from(wall),
        FIXED_WALL_CLOCK.as_nanos(),
        "fixed wall clock"
    );
    assert_eq!(
        u64::from_le_bytes(first[8..16].try_into().unwrap()),
        0,
        "fixed monotonic"
    );
    let random = &first[16..];
    assert!(random.iter().any(|&b| b != 0), "random bytes are filled");
    let other = run(&sandbox(), &probe, &Job::new(JobId::of(b"b"), Vec::new())).unwrap();
    assert_ne!(
        &other.output[16..],
        random,
        "the random source is seeded by the job id"
    );
    assert_eq!(other.output[..16], first[..16]);
}

#[test]
fn guests_compute_what_they_document() {
    let s = sandbox();
    let wc = run(&s, &guest("wordcount"), &job(b"one two\nthree\n")).unwrap();
    assert_eq!(wc.output, b"2 3 14\n");
    let f32s = run(&s, &guest("matmul"), &job(b"x").with_args(["f32", "8"])).unwrap();
    assert_eq!(f32s.output.len(), 8 * 8 * 4);
    let f64s = run(&s, &guest("matmul"), &job(b"x").with_args(["f64", "8"])).unwrap();
    assert_eq!(f64s.output.len(), 8 * 8 * 8);
    let hash = run(&s, &guest("hashloop"), &job(b"abc").with_args(["3"])).unwrap();
    assert_eq!(hash.output.len(), 17);
    assert!(hash.fuel_used > 0);
}
