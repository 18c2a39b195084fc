//! Runtime benchmarks (`cargo bench -p cairn-runtime`); results in `docs/benchmarks.md`.
//!
//! - `start/empty_job_cached`: start and run an empty job whose module is already compiled;
//! - `start/prepare_cache_hit`: hash a module and find it in the memory cache;
//! - `kernels/*`: the same kernel source (`guests/kernels/src/lib.rs`) natively and as wasm,
//!   with and without fuel metering (the wasm side includes instantiation and stdio);
//! - `digest/blake3`: output digest throughput on one core;
//! - `compile/*`: first compile of each example guest;
//! - `tensor/*`: the CPU reference backend's `f32` and `i8` matrix multiply, the `matmul-i8`
//!   guest end to end (input parsing, upload, multiply, read back, output), and the
//!   `transformer` guest (one block, 64 tokens, width 256) end to end.

use std::hint::black_box;
use std::time::Duration;

use cairn_protocol::{BlobHash, JobId};
use cairn_runtime::{Job, JobLimits, PreparedModule, Sandbox, SandboxConfig, guests};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_main};

#[allow(dead_code, missing_docs)]
#[path = "../guests/kernels/src/lib.rs"]
mod kernels;

/// Rounds and input size of the hashing benchmark: 16 × 64 KiB = 1 MiB hashed.
const HASH_ROUNDS: u32 = 16;
const HASH_INPUT: usize = 64 * 1024;
/// Matrix size of the matrix-multiply benchmark.
const MATMUL_N: usize = 96;

fn sandbox(fuel: bool) -> Sandbox {
    Sandbox::new(SandboxConfig::default().with_fuel_metering(fuel)).expect("sandbox")
}

fn job(input: Vec<u8>, args: &[String]) -> Job {
    Job::new(JobId::of(b"bench"), input)
        .with_args(args.iter().cloned())
        .with_limits(JobLimits::default().with_fuel(u64::MAX / 2))
}

fn run(sandbox: &Sandbox, module: &PreparedModule, job: &Job) -> usize {
    sandbox
        .run_blocking(module, job)
        .expect("bench job runs")
        .output
        .len()
}

fn start(c: &mut Criterion) {
    let sandbox = sandbox(true);
    let empty = wat::parse_str(r#"(module (memory (export "memory") 1) (func (export "_start")))"#)
        .expect("wat");
    let module = sandbox.prepare(&empty).expect("prepare");
    let job = job(Vec::new(), &[]);
    let mut group = c.benchmark_group("start");
    group.bench_function("empty_job_cached", |b| {
        b.iter(|| run(&sandbox, &module, &job))
    });
    let echo = guests::bytes("echo").expect("echo guest");
    let echo_module = sandbox.prepare(&echo).expect("prepare");
    group.bench_function("prepare_cache_hit_echo", |b| {
        b.iter(|| sandbox.prepare(black_box(&echo)).expect("hit"))
    });
    let dir = tempfile::tempdir().expect("temp dir");
    let disk = Sandbox::new(SandboxConfig::default().with_cache_dir(dir.path())).expect("sandbox");
    disk.prepare(&echo).expect("compile and store the artifact");
    group.bench_function("prepare_disk_cache_hit_echo", |b| {
        b.iter(|| {
            disk.clear_memory_cache();
            disk.prepare(black_box(&echo)).expect("load")
        })
    });
    let echo_job = job.clone();
    group.bench_function("echo_job_cached", |b| {
        b.iter(|| run(&sandbox, &echo_module, &echo_job))
    });
    group.finish();
}

fn hash_native(data: &[u8]) -> String {
    format!("{:016x}\n", kernels::hash_loop(data, HASH_ROUNDS))
}

fn matmul_native(kind: &str, n: usize, seed: u64) -> Vec<u8> {
    if kind == "f32" {
        let (mut a, mut b, mut c) = (vec![0f32; n * n], vec![0f32; n * n], vec![0f32; n * n]);
        kernels::fill_f32(seed, &mut a);
        kernels::fill_f32(seed + 1, &mut b);
        kernels::matmul_f32(n, &a, &b, &mut c);
        c.iter().flat_map(|x| x.to_le_bytes()).collect()
    } else {
        let (mut a, mut b, mut c) = (vec![0f64; n * n], vec![0f64; n * n], vec![0f64; n * n]);
        kernels::fill_f64(seed, &mut a);
        kernels::fill_f64(seed + 1, &mut b);
        kernels::matmul_f64(n, &a, &b, &mut c);
        c.iter().flat_map(|x| x.to_le_bytes()).collect()
    }
}

fn kernels_native_vs_wasm(c: &mut Criterion) {
    let data: Vec<u8> = (0..HASH_INPUT).map(|i| (i * 31 % 251) as u8).collect();
    let metered = sandbox(true);
    let unmetered = sandbox(false);
    let mut group = c.benchmark_group("kernels");
    group.throughput(Throughput::Bytes(
        (HASH_INPUT as u64) * u64::from(HASH_ROUNDS),
    ));
    group.bench_function("hashloop/native", |b| {
        b.iter(|| hash_native(black_box(&data)))
    });
    let hash_job = job(data.clone(), &[HASH_ROUNDS.to_string()]);
    for (label, sandbox) in [("wasm_fuel", &metered), ("wasm_no_fuel", &unmetered)] {
        let module = sandbox
            .prepare(&guests::bytes("hashloop").expect("guest"))
            .expect("prep");
        let out = sandbox
            .run_blocking(&module, &hash_job)
            .expect("runs")
            .output;
        assert_eq!(
            out,
            hash_native(&data).into_bytes(),
            "same result natively and in wasm"
        );
        group.bench_function(format!("hashloop/{label}"), |b| {
            b.iter(|| run(sandbox, &module, &hash_job))
        });
    }
    group.throughput(Throughput::Elements(
        (MATMUL_N * MATMUL_N * MATMUL_N) as u64,
    ));
    for kind in ["f32", "f64"] {
        let input = b"seed".to_vec();
        group.bench_function(format!("matmul_{kind}/native"), |b| {
            b.iter(|| matmul_native(kind, MATMUL_N, black_box(input.len() as u64)))
        });
        let matmul_job = job(input.clone(), &[kind.into(), MATMUL_N.to_string()]);
        for (label, sandbox) in [("wasm_fuel", &metered), ("wasm_no_fuel", &unmetered)] {
            let module = sandbox
                .prepare(&guests::bytes("matmul").expect("guest"))
                .expect("prep");
            let out = sandbox
                .run_blocking(&module, &matmul_job)
                .expect("runs")
                .output;
            assert_eq!(
                out,
                matmul_native(kind, MATMUL_N, 4),
                "same bytes natively and in wasm"
            );
            group.bench_function(format!("matmul_{kind}/{label}"), |b| {
                b.iter(|| run(sandbox, &module, &matmul_job))
            });
        }
    }
    group.finish();
}

fn digest(c: &mut Criterion) {
    let data = vec![0x5au8; 16 << 20];
    let mut group = c.benchmark_group("digest");
    group.throughput(Throughput::Bytes(data.len() as u64));
    group.bench_function("blake3_16MiB", |b| {
        b.iter(|| BlobHash::of(black_box(&data)))
    });
    group.finish();
}

fn compile(c: &mut Criterion) {
    let sandbox = sandbox(true);
    let mut group = c.benchmark_group("compile");
    group.sample_size(10);
    for name in guests::NAMES {
        let wasm = guests::bytes(name).expect("guest");
        group.bench_with_input(BenchmarkId::new("first_compile", name), &wasm, |b, wasm| {
            b.iter(|| {
                sandbox.clear_memory_cache();
                sandbox.prepare(wasm).expect("compiles")
            })
        });
    }
    group.finish();
}

/// Side of the square matrices of the tensor benchmark.
const TENSOR_N: usize = 512;

fn tensor(c: &mut Criterion) {
    use cairn_runtime::tensor::{CpuBackend, Op, Tensor, TensorData, apply};
    let n = TENSOR_N;
    let mut group = c.benchmark_group("tensor");
    group.sample_size(10);
    group.throughput(Throughput::Elements((n * n * n) as u64));
    let mut f = vec![0f32; n * n];
    kernels::fill_f32(1, &mut f);
    let a = Tensor::new(n, n, TensorData::F32(f)).expect("tensor");
    let cpu = CpuBackend::new();
    group.bench_function(BenchmarkId::new("cpu_matmul_f32", n), |b| {
        b.iter(|| apply(&cpu, Op::MatMul, &[&a, &a]).expect("matmul"))
    });
    let bytes: Vec<i8> = (0..n * n).map(|i| (i * 7919 % 251) as i8).collect();
    let q = Tensor::new(n, n, TensorData::I8(bytes.clone())).expect("tensor");
    group.bench_function(BenchmarkId::new("cpu_matmul_i8", n), |b| {
        b.iter(|| apply(&cpu, Op::MatMul, &[&q, &q]).expect("matmul"))
    });
    let sandbox = sandbox(true);
    let module = sandbox
        .prepare(&guests::bytes("matmul-i8").expect("guest"))
        .expect("prepare");
    let mut input: Vec<u8> = [n as u32; 3].iter().flat_map(|d| d.to_le_bytes()).collect();
    input.extend(bytes.iter().chain(&bytes).map(|&x| x as u8));
    let product = job(input, &[]);
    group.bench_function(BenchmarkId::new("guest_matmul_i8", n), |b| {
        b.iter(|| run(&sandbox, &module, &product))
    });
    group.finish();
    // The transformer block end to end: 64 tokens, width 256 (seeded weights made in the guest).
    let mut group = c.benchmark_group("tensor");
    group.sample_size(10);
    let module = sandbox
        .prepare(&guests::bytes("transformer").expect("guest"))
        .expect("prepare");
    let input: Vec<u8> = [64u32, 256, 1]
        .iter()
        .flat_map(|d| d.to_le_bytes())
        .collect();
    let block = job(input, &[]);
    group.bench_function("guest_transformer_t64_d256", |b| {
        b.iter(|| run(&sandbox, &module, &block))
    });
    group.finish();
}

/// The criterion group (its generated function has no docs of its own).
mod group {
    #![allow(missing_docs)]
    use super::*;
    use criterion::criterion_group;

    criterion_group! {
        name = benches;
        config = Criterion::default()
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(3));
        targets = start, kernels_native_vs_wasm, digest, compile, tensor
    }
}
criterion_main!(group::benches);
