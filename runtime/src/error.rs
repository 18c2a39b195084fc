//! Typed errors: [`RunError`] for a job, [`SandboxError`] for setting up the sandbox.

use std::path::PathBuf;

/// Why a job did not finish successfully. Each variant has a stable [`kind`](Self::kind)
/// string, used in reports and in `cairn run --json`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The bytes are not a valid WebAssembly module for this runtime (malformed, truncated,
    /// too large, or using a disabled feature such as threads).
    #[error("invalid module: {message}")]
    InvalidModule {
        /// What the validator or the compiler said.
        message: String,
    },
    /// The module imports something the sandbox does not provide (only WASI preview 1 and
    /// `cairn_tensor` are).
    #[error(
        "missing import: {module}::{name} is not provided; jobs may import only wasi_snapshot_preview1 and cairn_tensor"
    )]
    MissingImport {
        /// Import module name.
        module: String,
        /// Import field name.
        name: String,
    },
    /// The module has no exported `_start` function taking and returning nothing.
    #[error("no entry point: the module must export `_start: func()` (a WASI command)")]
    NoEntryPoint,
    /// The job used up its fuel.
    #[error("out of fuel: the job used all {limit} units; give it more fuel")]
    OutOfFuel {
        /// The fuel the job was given.
        limit: u64,
    },
    /// The job ran past its wall-clock limit (a host-dependent safety net).
    #[error("timeout: the job ran longer than {limit_ms} ms of wall-clock time")]
    Timeout {
        /// The wall-clock limit in milliseconds.
        limit_ms: u64,
    },
    /// The job asked for more memory (or table space) than its limit.
    #[error("out of memory: the job asked for more than its limit of {limit} bytes")]
    OutOfMemory {
        /// The memory limit in bytes.
        limit: u64,
    },
    /// The wasm stack overflowed (the stack limit is not exact across hosts).
    #[error("stack overflow: the job exhausted the wasm stack")]
    StackOverflow,
    /// The guest trapped.
    #[error("trap: {message}")]
    Trap {
        /// The trap's description.
        message: String,
    },
    /// The job wrote more output than its limit.
    #[error("output too large: the job wrote more than its limit of {limit} bytes")]
    OutputTooLarge {
        /// The output limit in bytes.
        limit: u64,
    },
    /// The guest exited with a non-zero status.
    #[error("exit: the job exited with status {code}")]
    Exit {
        /// The exit status.
        code: i32,
    },
    /// The host failed, not the guest (a worker thread died, an engine error that is not a
    /// trap). Never held against the provider.
    #[error("host fault: {message}")]
    Host {
        /// What failed.
        message: String,
    },
    /// The module's shape is past one of this host's compile limits
    /// ([`CompileLimits`](crate::CompileLimits)); it was not compiled. The limits are the
    /// host's policy, so this is never held against the provider.
    #[error(
        "module too complex: {what} is {found}, above this host's limit of {limit}; split the code into smaller functions or modules"
    )]
    ModuleTooComplex {
        /// The measure past its limit (for example `locals in one function`).
        what: &'static str,
        /// The module's value.
        found: u64,
        /// This host's limit.
        limit: u64,
    },
    /// Compiling the module took longer than this host's compile timeout. Host-dependent:
    /// never held against the provider.
    #[error(
        "compile timeout: compiling the module took longer than {limit_ms} ms on this host; try a smaller module"
    )]
    CompileTimeout {
        /// The compile timeout in milliseconds.
        limit_ms: u64,
    },
}

impl RunError {
    /// Every stable kind string, in declaration order.
    pub const KINDS: [&'static str; 13] = [
        "invalid_module",
        "missing_import",
        "no_entry_point",
        "out_of_fuel",
        "timeout",
        "out_of_memory",
        "stack_overflow",
        "trap",
        "output_too_large",
        "exit",
        "host_fault",
        "module_too_complex",
        "compile_timeout",
    ];

    /// The stable kind string: one of [`RunError::KINDS`].
    pub fn kind(&self) -> &'static str {
        match self {
            Self::InvalidModule { .. } => "invalid_module",
            Self::MissingImport { .. } => "missing_import",
            Self::NoEntryPoint => "no_entry_point",
            Self::OutOfFuel { .. } => "out_of_fuel",
            Self::Timeout { .. } => "timeout",
            Self::OutOfMemory { .. } => "out_of_memory",
            Self::StackOverflow => "stack_overflow",
            Self::Trap { .. } => "trap",
            Self::OutputTooLarge { .. } => "output_too_large",
            Self::Exit { .. } => "exit",
            Self::Host { .. } => "host_fault",
            Self::ModuleTooComplex { .. } => "module_too_complex",
            Self::CompileTimeout { .. } => "compile_timeout",
        }
    }

    /// Whether every honest replica reaches this same outcome, so it may be held against (or
    /// credited to) a provider. `timeout`, `compile_timeout` and `stack_overflow` depend on
    /// the host's speed and stack layout, `host_fault` on the host itself, and
    /// `module_too_complex` on the host's own compile limits: they are never attributable.
    pub fn is_attributable(&self) -> bool {
        !matches!(
            self,
            Self::Timeout { .. }
                | Self::StackOverflow
                | Self::Host { .. }
                | Self::ModuleTooComplex { .. }
                | Self::CompileTimeout { .. }
        )
    }
}

/// Why a [`Sandbox`](crate::Sandbox) could not be created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SandboxError {
    /// wasmtime rejected the engine configuration.
    #[error("could not create the wasmtime engine: {message}")]
    Engine {
        /// wasmtime's explanation.
        message: String,
    },
    /// The artifact cache folder could not be prepared.
    #[error(
        "could not use the module cache folder {path}: {source}; check its permissions or choose another"
    )]
    CacheDir {
        /// The folder.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The chosen tensor backend cannot be used here.
    #[error("tensor backend unavailable: {reason}; choose the cpu backend")]
    Backend {
        /// Why not.
        reason: String,
    },
    /// A background thread could not be started.
    #[error("could not start the sandbox's epoch thread: {0}")]
    Thread(#[source] std::io::Error),
}
