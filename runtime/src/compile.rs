//! Bounded compilation: a structural check of the module before Cranelift sees it, then the
//! compile on its own thread under a wall-clock timeout (see [`CompileLimits`]).

use std::sync::Arc;
use std::sync::mpsc::{RecvTimeoutError, sync_channel};
use std::time::Duration;

use wasmtime::wasmparser::{BinaryReaderError, FunctionBody, Operator, Parser, Payload};
use wasmtime::{Engine, Module};

use crate::config::CompileLimits;
use crate::error::RunError;
use crate::permits::Permits;

/// The measures of a module that the compile limits bound.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ModuleShape {
    /// Functions defined (bodies in the code section).
    pub functions: u64,
    /// Largest function body, in bytes.
    pub largest_function_bytes: u64,
    /// The code section, in bytes.
    pub code_bytes: u64,
    /// Most locals declared in one function.
    pub most_locals: u64,
    /// Most targets of one `br_table`.
    pub largest_br_table: u64,
    /// Blocks (`block`, `loop`, `if`, `try_table`) in the module.
    pub blocks: u64,
    /// Largest work of one function: its blocks times (its blocks plus its locals), what
    /// Cranelift's time on it grows with, faster than linearly (see `docs/benchmarks.md`,
    /// "Compile bounds").
    pub largest_function_work: u64,
    /// The work of every function, summed.
    pub work: u64,
}

impl ModuleShape {
    /// Measures `wasm` without validating it (the compiler validates). Malformed bytes are
    /// `invalid_module`.
    pub fn of(wasm: &[u8]) -> Result<Self, RunError> {
        Self::measure(wasm, &Unbounded)
    }

    /// Measures `wasm` and refuses it with `module_too_complex` at the first measure past
    /// `limits` (what [`Sandbox::prepare`](crate::Sandbox::prepare) does before compiling).
    pub fn check(wasm: &[u8], limits: &CompileLimits) -> Result<Self, RunError> {
        Self::measure(wasm, limits)
    }

    fn measure(wasm: &[u8], limits: &dyn Bound) -> Result<Self, RunError> {
        let mut shape = Self::default();
        for payload in Parser::new(0).parse_all(wasm) {
            match payload.map_err(malformed)? {
                Payload::CodeSectionStart { count, size, .. } => {
                    shape.functions = u64::from(count);
                    shape.code_bytes = u64::from(size);
                    limits.at_most(Measure::Functions, shape.functions)?;
                    limits.at_most(Measure::CodeBytes, shape.code_bytes)?;
                }
                Payload::CodeSectionEntry(body) => shape.add_function(&body, limits)?,
                _ => {}
            }
        }
        Ok(shape)
    }

    fn add_function(
        &mut self,
        body: &FunctionBody<'_>,
        limits: &dyn Bound,
    ) -> Result<(), RunError> {
        let bytes = u64::try_from(body.range().len()).unwrap_or(u64::MAX);
        self.largest_function_bytes = self.largest_function_bytes.max(bytes);
        limits.at_most(Measure::FunctionBytes, bytes)?;
        let mut locals = 0u64;
        for group in body.get_locals_reader().map_err(malformed)? {
            let (count, _) = group.map_err(malformed)?;
            locals = locals.saturating_add(u64::from(count));
        }
        self.most_locals = self.most_locals.max(locals);
        limits.at_most(Measure::Locals, locals)?;
        let mut ops = body.get_operators_reader().map_err(malformed)?;
        let mut blocks = 0u64;
        while !ops.eof() {
            match ops.read().map_err(malformed)? {
                Operator::Block { .. }
                | Operator::Loop { .. }
                | Operator::If { .. }
                | Operator::TryTable { .. } => {
                    blocks = blocks.saturating_add(1);
                    self.blocks = self.blocks.saturating_add(1);
                    limits.at_most(Measure::Blocks, self.blocks)?;
                }
                Operator::BrTable { targets } => {
                    let n = u64::from(targets.len());
                    self.largest_br_table = self.largest_br_table.max(n);
                    limits.at_most(Measure::BrTable, n)?;
                }
                _ => {}
            }
        }
        let work = blocks.saturating_mul(blocks.saturating_add(locals));
        self.largest_function_work = self.largest_function_work.max(work);
        limits.at_most(Measure::FunctionWork, work)?;
        self.work = self.work.saturating_add(work);
        limits.at_most(Measure::Work, self.work)
    }
}

/// One of the bounded measures.
#[derive(Clone, Copy)]
enum Measure {
    Functions,
    FunctionBytes,
    CodeBytes,
    Locals,
    BrTable,
    Blocks,
    FunctionWork,
    Work,
}

impl Measure {
    /// The measure in words, for the error message.
    fn what(self) -> &'static str {
        match self {
            Self::Functions => "the number of functions",
            Self::FunctionBytes => "the size of one function body in bytes",
            Self::CodeBytes => "the size of the code section in bytes",
            Self::Locals => "the number of locals in one function",
            Self::BrTable => "the number of targets of one br_table",
            Self::Blocks => "the number of blocks in the module",
            Self::FunctionWork => "one function's blocks times (its blocks plus its locals)",
            Self::Work => "the sum over functions of blocks times (blocks plus locals)",
        }
    }
}

/// A bound on each measure.
trait Bound {
    /// `Ok` when `found` is within the bound on `measure`.
    fn at_most(&self, measure: Measure, found: u64) -> Result<(), RunError>;
}

impl Bound for CompileLimits {
    fn at_most(&self, measure: Measure, found: u64) -> Result<(), RunError> {
        let limit = match measure {
            Measure::Functions => self.max_functions,
            Measure::FunctionBytes => self.max_function_bytes,
            Measure::CodeBytes => self.max_code_bytes,
            Measure::Locals => self.max_locals,
            Measure::BrTable => self.max_br_table_targets,
            Measure::Blocks => self.max_blocks,
            Measure::FunctionWork => self.max_function_work,
            Measure::Work => self.max_work,
        };
        if found > limit {
            let what = measure.what();
            return Err(RunError::ModuleTooComplex { what, found, limit });
        }
        Ok(())
    }
}

/// No bound: for measuring.
struct Unbounded;

impl Bound for Unbounded {
    fn at_most(&self, _: Measure, _: u64) -> Result<(), RunError> {
        Ok(())
    }
}

fn malformed(e: BinaryReaderError) -> RunError {
    RunError::InvalidModule {
        message: e.to_string(),
    }
}

/// Compiles `wasm` on a thread of its own that holds one of `permits` until it ends, and waits
/// at most `timeout` for it. Waiting for a slot is not counted in the timeout.
pub(crate) fn compile(
    engine: &Engine,
    permits: &Arc<Permits>,
    wasm: &[u8],
    timeout: Duration,
) -> Result<Module, RunError> {
    let permit = permits.acquire();
    let (done, result) = sync_channel(1);
    let (engine, wasm) = (engine.clone(), wasm.to_vec());
    let thread = std::thread::Builder::new().name("cairn-compile".into());
    thread
        .spawn(move || {
            let _slot = permit;
            // The receiver is gone when the compile timed out: the module is dropped.
            let _ = done.send(Module::new(&engine, &wasm));
        })
        .map_err(|e| RunError::Host {
            message: format!("cannot start a compile thread: {e}"),
        })?;
    match result.recv_timeout(timeout) {
        Ok(module) => module.map_err(|e| RunError::InvalidModule {
            message: format!("{e:#}"),
        }),
        Err(RecvTimeoutError::Timeout) => Err(RunError::CompileTimeout {
            limit_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
        }),
        Err(RecvTimeoutError::Disconnected) => Err(RunError::Host {
            message: "the compile thread died".into(),
        }),
    }
}
