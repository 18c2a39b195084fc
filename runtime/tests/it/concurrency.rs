//! Many hostile jobs at once: every one ends with its own kind, none takes the process down,
//! and the sandbox keeps working.

use std::sync::Arc;

use cairn_runtime::{Sandbox, SandboxConfig};

use crate::common::*;

/// (module, expected kind) for the four resource-exhausting hostile modules.
fn hostile_set() -> Vec<(Vec<u8>, &'static str)> {
    vec![
        (infinite_loop(), "out_of_fuel"),
        (grow_forever(), "out_of_memory"),
        (recurse_forever(), "stack_overflow"),
        (write_forever(1, 4096), "output_too_large"),
    ]
}

#[test]
fn thirty_two_hostile_runs_at_once() {
    // Fewer slots than jobs: the extra jobs wait for a slot instead of exhausting the pool.
    let sandbox = Sandbox::new(SandboxConfig::default().with_max_concurrent_jobs(8)).unwrap();
    let set = Arc::new(hostile_set());
    let handles: Vec<_> = (0..32)
        .map(|i| {
            let (sandbox, set) = (sandbox.clone(), set.clone());
            std::thread::spawn(move || {
                let (wasm, kind) = &set[i % set.len()];
                let err = run(&sandbox, wasm, &job(b"")).expect_err("hostile module must fail");
                assert_eq!(err.kind(), *kind, "job {i}: {err}");
            })
        })
        .collect();
    for handle in handles {
        handle.join().expect("no hostile run panics");
    }
    assert_runs_good_module(&sandbox);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_runs_are_bounded_and_off_the_async_threads() {
    let sandbox = Sandbox::new(SandboxConfig::default().with_max_concurrent_jobs(2)).unwrap();
    let module = sandbox.prepare(&guest("wordcount")).unwrap();
    let runs = (0..8).map(|i| {
        let input = format!("job {i} has five words\n");
        sandbox.run(module.clone(), job(input.as_bytes()))
    });
    for result in futures_join_all(runs).await {
        assert_eq!(result.unwrap().output, b"1 5 21\n");
    }
    let hostile = sandbox.prepare(&infinite_loop()).unwrap();
    let err = sandbox.run(hostile, job(b"")).await.unwrap_err();
    assert_eq!(err.kind(), "out_of_fuel");
}

/// Awaits every future in turn after spawning them all as tasks.
async fn futures_join_all<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for handle in handles {
        out.push(handle.await.unwrap());
    }
    out
}
