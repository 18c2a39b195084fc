//! Turning how a run ended into a [`RunError`] kind.

use wasmtime::Trap;
use wasmtime_wasi::I32Exit;

use crate::config::JobLimits;
use crate::error::RunError;
use crate::host::{HostOutOfFuel, LimitExceeded, OutputOverflow};
use crate::tensor::TensorError;

/// The exit code of a run that ended with `error`, or the [`RunError`] it stands for.
pub(crate) fn classify(error: wasmtime::Error, limits: &JobLimits) -> Result<i32, RunError> {
    if let Some(exit) = find::<I32Exit>(&error) {
        return if exit.0 == 0 {
            Ok(0)
        } else {
            Err(RunError::Exit { code: exit.0 })
        };
    }
    let kind = kind_of(&error, limits);
    tracing::trace!(target: "cairn::runtime", error = %format!("{error:#}"), "wasmtime error");
    Err(kind)
}

fn kind_of(error: &wasmtime::Error, limits: &JobLimits) -> RunError {
    if find::<OutputOverflow>(error).is_some() {
        return RunError::OutputTooLarge {
            limit: limits.max_output_bytes,
        };
    }
    if find::<HostOutOfFuel>(error).is_some() {
        return RunError::OutOfFuel { limit: limits.fuel };
    }
    if let Some(e) = find::<TensorError>(error) {
        return match e {
            TensorError::OutOfFuel => RunError::OutOfFuel { limit: limits.fuel },
            TensorError::OutOfMemory { .. } => RunError::OutOfMemory {
                limit: limits.memory_bytes,
            },
            TensorError::Device { message } => RunError::Host {
                message: format!("tensor backend: {message}"),
            },
            other => RunError::Trap {
                message: format!("tensor: {other}"),
            },
        };
    }
    if find::<LimitExceeded>(error).is_some() {
        return RunError::OutOfMemory {
            limit: limits.memory_bytes,
        };
    }
    match find::<Trap>(error) {
        Some(Trap::OutOfFuel) => RunError::OutOfFuel { limit: limits.fuel },
        Some(Trap::Interrupt) => RunError::Timeout {
            limit_ms: millis(limits),
        },
        Some(Trap::StackOverflow) => RunError::StackOverflow,
        Some(trap) => RunError::Trap {
            message: trap.to_string(),
        },
        // Not a trap of the guest: an engine or host error, which another host may not hit.
        None => RunError::Host {
            message: error.root_cause().to_string(),
        },
    }
}

fn millis(limits: &JobLimits) -> u64 {
    u64::try_from(limits.timeout.as_millis()).unwrap_or(u64::MAX)
}

/// `T` anywhere in `error`'s chain.
fn find<T: std::error::Error + Send + Sync + 'static>(error: &wasmtime::Error) -> Option<&T> {
    error
        .downcast_ref::<T>()
        .or_else(|| error.chain().find_map(|c| c.downcast_ref::<T>()))
}

/// A failure of the host itself (not the guest): never held against the provider.
pub(crate) fn internal(error: impl std::fmt::Display) -> RunError {
    RunError::Host {
        message: error.to_string(),
    }
}
