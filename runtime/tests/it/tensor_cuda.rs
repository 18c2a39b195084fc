//! The CUDA backend: the shipped PTX is complete and free of contraction everywhere; without a
//! device the backend says why and `auto` falls back to the CPU; with one, the example guests
//! give the CPU's bits and fuel on it (a quorum may mix backends).

use cairn_protocol::JobId;
use cairn_runtime::tensor::CudaBackend;
use cairn_runtime::{
    BackendChoice, BackendKind, Energy, Job, Sandbox, SandboxConfig, SandboxError,
};

use crate::common::*;

const PTX: &str = include_str!("../../kernels/tensor.ptx");

/// Every kernel `runtime/src/tensor/cuda.rs` launches.
fn kernels() -> Vec<String> {
    let mut names = vec!["matmul_f32", "matmul_i8", "gelu_f32", "softmax_f32"]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
    names.extend(["layer_norm_f32", "rms_norm_f32"].map(String::from));
    for t in ["i8", "i32", "f32"] {
        for op in ["add", "mul", "requantize", "relu", "argmax", "transpose"] {
            names.push(format!("{op}_{t}"));
        }
    }
    names
}

#[test]
fn the_shipped_ptx_has_every_kernel_and_no_fused_multiply_add() {
    for name in kernels() {
        assert!(
            PTX.contains(&format!(".visible .entry {name}(")),
            "kernel {name} missing from tensor.ptx: run runtime/kernels/gen_ptx.py"
        );
    }
    let fused: Vec<_> = PTX
        .lines()
        .filter(|l| l.trim_start().starts_with("fma."))
        .collect();
    assert!(fused.is_empty(), "contracted operations: {fused:?}");
    assert!(
        PTX.contains("--fmad=false"),
        "generated without --fmad=false"
    );
}

#[test]
fn the_default_is_the_cpu_and_without_a_device_cuda_says_why() {
    // The default is the CPU reference, with or without a device (until CUDA is verified).
    let default = Sandbox::new(SandboxConfig::default()).unwrap();
    assert_eq!(default.backend_info().kind, BackendKind::Cpu);
    let auto = Sandbox::new(SandboxConfig::default().with_backend(BackendChoice::Auto)).unwrap();
    match CudaBackend::new(0) {
        Err(why) => {
            assert!(!why.is_empty());
            assert_eq!(auto.backend_info().kind, BackendKind::Cpu);
            let err = Sandbox::new(SandboxConfig::default().with_backend(BackendChoice::Cuda))
                .err()
                .expect("no CUDA here");
            assert!(matches!(err, SandboxError::Backend { .. }), "{err}");
            assert!(err.to_string().contains(&why), "{err}");
        }
        Ok(cuda) => {
            use cairn_runtime::tensor::Backend;
            assert_eq!(auto.backend_info().kind, BackendKind::Cuda);
            assert!(cuda.info().device.is_some());
        }
    }
}

#[test]
fn cpu_and_cuda_agree_on_the_example_guests() {
    let Ok(cuda) = Sandbox::new(SandboxConfig::default().with_backend(BackendChoice::Cuda)) else {
        eprintln!("no CUDA device: nothing to compare");
        return;
    };
    let cpu = Sandbox::new(SandboxConfig::default().with_backend(BackendChoice::Cpu)).unwrap();
    let images = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/digits-test-images.bin"
    ))
    .unwrap();
    let mut product: Vec<u8> = [40u32, 70, 300]
        .iter()
        .flat_map(|d| d.to_le_bytes())
        .collect();
    product.extend((0..40 * 300 + 300 * 70).map(|i| (i * 131 % 256) as u8));
    for (name, input) in [("digits", images), ("matmul-i8", product)] {
        let job = Job::new(JobId::of(name.as_bytes()), input);
        let on_cpu = run(&cpu, &guest(name), &job).unwrap();
        let on_gpu = run(&cuda, &guest(name), &job).unwrap();
        assert_eq!(
            (on_cpu.digest, on_cpu.fuel_used),
            (on_gpu.digest, on_gpu.fuel_used),
            "{name}"
        );
        assert_eq!(on_gpu.device.backend.kind, BackendKind::Cuda);
        match &on_gpu.device.energy {
            Energy::Measured { millijoules } => eprintln!("{name}: {millijoules} mJ"),
            Energy::Unavailable { reason } => assert!(!reason.is_empty()),
        }
    }
}
