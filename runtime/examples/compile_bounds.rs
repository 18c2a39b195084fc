//! Measures compile times behind the default [`CompileLimits`]: the example guests (which
//! the defaults must accept), then adversarial modules built at the limits. Figures are in
//! `docs/benchmarks.md`, "Compile bounds".
//!
//! ```sh
//! cargo run -p cairn-runtime --example compile_bounds            # every case
//! cargo run -p cairn-runtime --example compile_bounds -- locals  # cases whose name has `locals`
//! ```
//!
//! Dependencies (Cranelift among them) are built with `opt-level = 2` even in the dev
//! profile, so a dev build measures the compiler as a node runs it, within a few percent.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use cairn_runtime::{CompileLimits, ModuleShape, RunError, Sandbox, SandboxConfig, guests};

/// A body of `ops` repeated until the function reaches about `bytes` of wasm.
fn repeat(ops: &str, op_bytes: u64, bytes: u64) -> String {
    let n = bytes / op_bytes.max(1);
    let mut body = String::with_capacity(ops.len() * n as usize);
    for _ in 0..n {
        body.push_str(ops);
    }
    body
}

/// A module with `_start` and `funcs` copies of one function (`locals` i64 locals, `body`).
fn module(funcs: u64, locals: u64, body: &str) -> Vec<u8> {
    let mut text = String::from("(module (memory (export \"memory\") 1)\n");
    let decl = if locals > 0 {
        format!("(local {})", "i64 ".repeat(locals as usize))
    } else {
        String::new()
    };
    for i in 0..funcs {
        let _ = writeln!(text, "(func $f{i} {decl} {body})");
    }
    text.push_str("(func (export \"_start\")))");
    wat::parse_str(&text).expect("generated WAT is valid")
}

/// Straight-line code keeping many locals live: each op reads two locals and writes a third.
fn live_locals(locals: u64, bytes: u64) -> String {
    let mut body = String::new();
    let mut i = 0u64;
    // Each group is about 8 bytes of wasm (three 2-3 byte local ops and an add).
    while i * 8 < bytes {
        let (a, b, c) = (i % locals, (i * 7 + 3) % locals, (i * 13 + 5) % locals);
        let _ = write!(
            body,
            "(local.set {c} (i64.add (local.get {a}) (local.get {b})))"
        );
        i += 1;
    }
    body
}

/// A loop per group that writes every local and may branch back: every local is live across
/// every loop header (block parameters in Cranelift's SSA).
fn loops_over_locals(locals: u64, bytes: u64) -> String {
    let mut group = String::from("(loop $l ");
    for i in 0..locals {
        let _ = write!(
            group,
            "(local.set {i} (i64.add (local.get {i}) (i64.const 1)))"
        );
    }
    group.push_str("(br_if $l (i64.eqz (local.get 0))))");
    let group_bytes = 8 * locals + 8;
    repeat(&group, group_bytes, bytes)
}

/// `loops` loops that only branch back, then a read of each of `locals` locals: every read
/// walks back through every loop header (a block parameter per local and loop).
fn locals_across_loops(locals: u64, loops: u64) -> String {
    let mut body = "(loop $l (br_if $l (i32.const 0)))".repeat(loops as usize);
    for i in 0..locals {
        let _ = write!(body, "(drop (local.get {i}))");
    }
    body
}

/// `depth` nested blocks, repeated.
fn nested(depth: u64, bytes: u64) -> String {
    let mut group = "(block ".repeat(depth as usize);
    group.push_str("(br_if 0 (i32.const 1))");
    group.push_str(&")".repeat(depth as usize));
    repeat(&group, 2 * depth + 4, bytes)
}

/// A `br_table` of `targets` targets over 16 blocks, repeated.
fn br_table(targets: u64, bytes: u64) -> String {
    let labels: String = (0..targets).map(|i| format!("{} ", i % 16)).collect();
    let mut group = "(block ".repeat(16);
    let _ = write!(group, "(br_table {labels} 0 (i32.const 3))");
    group.push_str(&")".repeat(16));
    repeat(&group, targets + 40, bytes)
}

/// Builds one case's module.
type Builder = Box<dyn Fn() -> Vec<u8>>;

/// Time to compile `wasm` in a fresh sandbox with limits far above the defaults.
fn compile_time(wasm: &[u8]) -> Result<Duration, RunError> {
    let unbounded = CompileLimits::default()
        .with_max_functions(u64::MAX)
        .with_max_function_bytes(u64::MAX)
        .with_max_code_bytes(u64::MAX)
        .with_max_locals(u64::MAX)
        .with_max_br_table_targets(u64::MAX)
        .with_max_blocks(u64::MAX)
        .with_max_function_work(u64::MAX)
        .with_max_work(u64::MAX)
        .with_timeout(Duration::from_secs(3600));
    let config = SandboxConfig::default()
        .with_max_module_bytes(usize::MAX)
        .with_compile_limits(unbounded);
    let sandbox = Sandbox::new(config).expect("sandbox");
    let start = Instant::now();
    sandbox.prepare(wasm)?;
    Ok(start.elapsed())
}

fn report(name: &str, wasm: &[u8]) {
    let start = Instant::now();
    let shape = ModuleShape::of(wasm).expect("a module");
    let measured = start.elapsed();
    let verdict = match ModuleShape::check(wasm, &CompileLimits::default()) {
        Ok(_) => "accepted".to_string(),
        Err(e) => format!("refused: {e}"),
    };
    let time = match compile_time(wasm) {
        Ok(t) => format!("{:.2} s", t.as_secs_f64()),
        Err(e) => format!("error: {e}"),
    };
    println!(
        "{name:<28} {:>9} B  funcs {:>6}  largest {:>8} B  locals {:>6}  br_table {:>6}  blocks {:>6}  fn work {:>9}  work {:>9}  check {:.1} ms  compile {time}  ({verdict})",
        wasm.len(),
        shape.functions,
        shape.largest_function_bytes,
        shape.most_locals,
        shape.largest_br_table,
        shape.blocks,
        shape.largest_function_work,
        shape.work,
        measured.as_secs_f64() * 1e3,
    );
}

/// One adversarial case with chosen sizes: `KIND PARAM BYTES [FUNCS]`.
fn custom(args: &[String]) {
    let num = |i: usize, default: u64| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    let (param, bytes, funcs) = (num(1, 100), num(2, 1 << 20), num(3, 1));
    let (locals, body) = match args[0].as_str() {
        "live_locals" => (param, live_locals(param, bytes)),
        "loops_over_locals" => (param, loops_over_locals(param, bytes)),
        "nested" => (0, nested(param, bytes)),
        "locals_across_loops" => (param, locals_across_loops(param, bytes)),
        "br_table" => (0, br_table(param, bytes)),
        other => panic!("unknown kind {other}"),
    };
    let start = Instant::now();
    let wasm = module(funcs, locals, &body);
    eprintln!("built in {:.2} s", start.elapsed().as_secs_f64());
    report(&args.join(" "), &wasm);
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().is_some_and(|a| a == "custom") {
        return custom(&args[1..]);
    }
    let filter = args.first().cloned().unwrap_or_default();
    let d = CompileLimits::default();
    // Worst cases at the defaults, one per limit that bounds them. Loops are the costliest
    // blocks; `locals_across_loops` the costliest work per unit.
    let loops = |n: u64| loops_over_locals(1, 16 * n);
    // Loops per function at the function-work limit (one local each).
    let per_fn = (d.max_function_work as f64).sqrt() as u64 - 1;
    // Locals and loops per function at the function-work limit: side × (side + side).
    let side = ((d.max_function_work / 2) as f64).sqrt() as u64;
    let cases: Vec<(&str, Builder)> = vec![
        (
            "loops_1fn_at_function_work",
            Box::new(move || module(1, 1, &loops(per_fn))),
        ),
        (
            "locals_across_loops_at_function_work",
            Box::new(move || module(1, side, &locals_across_loops(side, side))),
        ),
        (
            "loops_at_work",
            Box::new(move || module(d.max_work / (per_fn * (per_fn + 1)), 1, &loops(per_fn))),
        ),
        (
            "locals_across_loops_at_work",
            Box::new(move || {
                let funcs = d.max_work / d.max_function_work;
                module(funcs, side, &locals_across_loops(side, side))
            }),
        ),
        (
            "loops_at_max_blocks",
            Box::new(move || {
                // Small functions: little work each, every block a loop.
                module(d.max_blocks / 20, 1, &loops(20))
            }),
        ),
        (
            "blocks_at_max_blocks",
            // 200 blocks a function: 250 of them are at both the block and the work limit.
            Box::new(move || module(d.max_blocks / 200, 0, &nested(10, 24 * 20))),
        ),
        (
            "live_locals_1fn_at_max",
            Box::new(move || {
                module(
                    1,
                    d.max_locals,
                    &live_locals(d.max_locals, d.max_function_bytes * 8 / 10),
                )
            }),
        ),
        (
            "br_table_1fn_at_max",
            Box::new(move || {
                module(
                    1,
                    0,
                    &br_table(d.max_br_table_targets, d.max_function_bytes / 20),
                )
            }),
        ),
        (
            "code_section_at_max",
            Box::new(move || {
                let funcs = d.max_code_bytes / d.max_function_bytes;
                module(
                    funcs,
                    1000,
                    &live_locals(1000, d.max_function_bytes * 8 / 10),
                )
            }),
        ),
        (
            "functions_at_max",
            Box::new(move || {
                module(
                    d.max_functions - 1,
                    16,
                    &live_locals(16, d.max_code_bytes / d.max_functions * 6 / 10),
                )
            }),
        ),
    ];
    for name in guests::NAMES {
        let label = format!("guest {name}");
        if label.contains(filter.as_str()) {
            report(&label, &guests::bytes(name).expect("guest built"));
        }
    }
    for (name, build) in cases {
        if name.contains(filter.as_str()) {
            report(name, &build());
        }
    }
}
