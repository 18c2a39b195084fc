//! Backends run checked operations; every backend gives the same bits.

use std::sync::Arc;
use std::time::Duration;

use super::op::Plan;
use super::{CpuBackend, CudaBackend, Op, Tensor, TensorError};

/// Runs tensor operations. Implementations must follow the exact definitions in
/// `docs/runtime.md` bit for bit: a quorum may mix backends.
pub trait Backend: Send + Sync + std::fmt::Debug {
    /// Which backend and device this is.
    fn info(&self) -> &BackendInfo;

    /// Runs `op` on `inputs`, which [`Op::check`] accepted with `plan`.
    fn execute(&self, op: Op, plan: &Plan, inputs: &[&Tensor]) -> Result<Tensor, TensorError>;

    /// The device's total energy counter in millijoules (NVML's), or why there is none.
    fn energy_counter_mj(&self) -> Result<u64, String> {
        Err(format!(
            "the {} backend has no energy counter",
            self.info().kind.name()
        ))
    }
}

/// What a job used of its backend's device: for reports, receipts and prices. Not
/// deterministic (times and energy are measured), so never part of what replicas compare.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct DeviceReport {
    /// The backend and device.
    pub backend: BackendInfo,
    /// Wall-clock time the backend spent on the job's tensor operations (GPU-seconds on a GPU).
    pub busy: Duration,
    /// Energy the device used during the job.
    pub energy: Energy,
}

/// A measured energy, or why there is none.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Energy {
    /// The device's energy counter advanced by this much during the job (other work on the
    /// same device at the same time is included).
    Measured {
        /// Millijoules.
        millijoules: u64,
    },
    /// No measurement.
    Unavailable {
        /// Why (no GPU, no counter, a driver error).
        reason: String,
    },
}

impl Energy {
    /// The energy between two counter readings, or the first reason there is none.
    pub fn between(before: Result<u64, String>, after: Result<u64, String>) -> Self {
        match (before, after) {
            (Ok(a), Ok(b)) => Self::Measured {
                millijoules: b.saturating_sub(a),
            },
            (Err(reason), _) | (_, Err(reason)) => Self::Unavailable { reason },
        }
    }
}

/// The kinds of backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BackendKind {
    /// The CPU reference backend.
    Cpu,
    /// An NVIDIA GPU through CUDA.
    Cuda,
}

impl BackendKind {
    /// `cpu` or `cuda`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Cpu => "cpu",
            Self::Cuda => "cuda",
        }
    }
}

/// What a backend runs on, for reports and receipts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BackendInfo {
    /// The kind.
    pub kind: BackendKind,
    /// The device model (a GPU's name), `None` for the CPU.
    pub device: Option<String>,
}

/// Which backend a sandbox should use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum BackendChoice {
    /// The CPU reference backend.
    #[default]
    Cpu,
    /// CUDA; creating the sandbox fails when no CUDA device can be used.
    Cuda,
    /// CUDA when a device can be used, otherwise the CPU.
    Auto,
}

impl std::str::FromStr for BackendChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "cpu" => Ok(Self::Cpu),
            "cuda" => Ok(Self::Cuda),
            "auto" => Ok(Self::Auto),
            other => Err(format!("unknown backend {other:?}: use cpu, cuda or auto")),
        }
    }
}

/// The backend for `choice`: for `Cuda`, the reason none is available as the error. CUDA
/// means device 0.
pub fn select(choice: BackendChoice) -> Result<Arc<dyn Backend>, String> {
    let cuda = || CudaBackend::new(0).map(|b| Arc::new(b) as Arc<dyn Backend>);
    match choice {
        BackendChoice::Cpu => Ok(Arc::new(CpuBackend::new())),
        BackendChoice::Cuda => cuda(),
        BackendChoice::Auto => Ok(cuda().unwrap_or_else(|reason| {
            tracing::debug!(target: "cairn::runtime", %reason, "no CUDA backend; using the CPU");
            Arc::new(CpuBackend::new())
        })),
    }
}
