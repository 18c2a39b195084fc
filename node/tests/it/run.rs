//! `cairn run` on each example guest prints the documented JSON, agrees with the library and
//! with itself across processes, and fails with the documented error object.

use std::path::Path;
use std::process::{Command, Output};

use cairn_protocol::{BlobHash, JobId};
use cairn_runtime::{Job, Sandbox, SandboxConfig, guests};
use serde_json::Value;

/// Runs the built `cairn` with `args`.
fn cairn(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(args)
        .output()
        .expect("run cairn")
}

/// Runs `cairn run --json` and parses the single JSON line it prints.
fn run_json(args: &[&str]) -> (Value, Output) {
    let mut full = vec!["run", "--json"];
    full.extend_from_slice(args);
    let out = cairn(&full);
    let stdout = String::from_utf8(out.stdout.clone()).expect("utf-8");
    assert_eq!(stdout.lines().count(), 1, "one JSON object: {stdout:?}");
    (serde_json::from_str(&stdout).expect("valid JSON"), out)
}

/// Asserts the documented success object and returns (digest, fuel_used, output_bytes).
fn assert_ok_object(value: &Value) -> (String, u64, u64) {
    let keys: Vec<_> = value.as_object().expect("object").keys().cloned().collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        [
            "backend",
            "device",
            "digest",
            "exit_code",
            "fuel_used",
            "gpu_energy_joules",
            "gpu_energy_unavailable",
            "gpu_seconds",
            "output_bytes",
            "status",
            "tensor_ops"
        ],
        "{value}"
    );
    assert_eq!(value["status"], "ok");
    // This machine has no CUDA backend: the CPU ran it, and the energy says why it is null.
    assert_eq!(value["backend"], "cpu");
    assert!(value["device"].is_null() && value["gpu_seconds"].is_null());
    assert!(value["gpu_energy_joules"].is_null());
    assert!(value["gpu_energy_unavailable"].is_string(), "{value}");
    assert_eq!(value["exit_code"], 0);
    let digest = value["digest"].as_str().expect("digest").to_owned();
    assert_eq!(digest.len(), 64);
    (
        digest,
        value["fuel_used"].as_u64().unwrap(),
        value["output_bytes"].as_u64().unwrap(),
    )
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// (guest, args, input) for every example guest.
fn cases() -> Vec<(&'static str, Vec<&'static str>, &'static [u8])> {
    vec![
        ("echo", vec![], b"hello, cairn\n"),
        ("wordcount", vec![], b"one two\nthree\n"),
        ("hashloop", vec!["--arg", "7"], b"some bytes to hash"),
        ("matmul", vec!["--arg", "f32", "--arg", "16"], b"seed"),
        ("matmul", vec!["--arg", "f64", "--arg", "16"], b"seed"),
        ("nanfloat", vec![], b""),
        ("matmul-i8", vec![], MATMUL_I8_2X2),
        ("digits", vec![], &[0u8; 128]),
    ]
}

/// `m = n = k = 2`, A = [[1, 2], [3, 4]], B = [[5, 6], [7, -8]] for the `matmul-i8` guest.
const MATMUL_I8_2X2: &[u8] = b"\x02\0\0\0\x02\0\0\0\x02\0\0\0\x01\x02\x03\x04\x05\x06\x07\xf8";

#[test]
fn matmul_i8_through_cairn_run_writes_the_product_on_every_backend_choice() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input.bin");
    std::fs::write(&input, MATMUL_I8_2X2).unwrap();
    let guest = guests::path("matmul-i8");
    // C = [[1*5 + 2*7, 1*6 + 2*-8], [3*5 + 4*7, 3*6 + 4*-8]] = [[19, -10], [43, -14]].
    let want: Vec<u8> = [19i32, -10, 43, -14]
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    for backend in ["cpu", "auto"] {
        let out = cairn(&[
            "run",
            path_str(&guest),
            "--input",
            path_str(&input),
            "--backend",
            backend,
        ]);
        assert!(out.status.success(), "{backend}");
        assert_eq!(out.stdout, want, "{backend}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("backend cpu"));
    }
    let (value, _) = run_json(&[path_str(&guest), "--input", path_str(&input)]);
    assert_eq!(value["tensor_ops"], 1);
    // Without a CUDA device, asking for it is a usage error that says so.
    let out = cairn(&["run", path_str(&guest), "--backend", "cuda"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("tensor backend unavailable"));
}

#[test]
fn each_example_guest_prints_the_documented_json() {
    let dir = tempfile::tempdir().unwrap();
    for (name, args, input) in cases() {
        let input_path = dir.path().join("input.bin");
        std::fs::write(&input_path, input).unwrap();
        let out_path = dir.path().join("out.bin");
        let guest = guests::path(name);
        let mut argv = vec![path_str(&guest), "--input", path_str(&input_path)];
        argv.extend(["-o", path_str(&out_path)]);
        argv.extend(args.iter().copied());
        let (value, out) = run_json(&argv);
        assert!(out.status.success(), "{name}: {value}");
        let (digest, fuel, bytes) = assert_ok_object(&value);
        let written = std::fs::read(&out_path).unwrap();
        assert_eq!(
            digest,
            BlobHash::of(&written).to_string(),
            "{name}: digest of -o file"
        );
        assert_eq!(bytes, written.len() as u64);
        assert!(fuel > 0, "{name}");
        // The same job through the library gives the same digest and fuel.
        let lib_args: Vec<String> = args
            .iter()
            .filter(|a| **a != "--arg")
            .map(|a| a.to_string())
            .collect();
        let job_id = default_job_id(&guests::bytes(name).unwrap(), input);
        let job = Job::new(job_id, input.to_vec()).with_args(lib_args);
        let sandbox = Sandbox::new(SandboxConfig::default()).unwrap();
        let lib = sandbox
            .run_wasm_blocking(&guests::bytes(name).unwrap(), &job)
            .unwrap();
        assert_eq!(
            (digest, fuel),
            (lib.digest.to_string(), lib.fuel_used),
            "{name}"
        );
    }
}

/// `cairn run`'s documented default job id.
fn default_job_id(wasm: &[u8], input: &[u8]) -> JobId {
    let mut bytes = BlobHash::of(wasm).0.to_vec();
    bytes.extend_from_slice(BlobHash::of(input).as_bytes());
    JobId::of(&bytes)
}

#[test]
fn known_outputs_and_stdout_without_json() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input.txt");
    std::fs::write(&input, "one two\nthree\n").unwrap();
    let wc = guests::path("wordcount");
    let out = cairn(&["run", path_str(&wc), "--input", path_str(&input)]);
    assert!(out.status.success());
    assert_eq!(
        out.stdout, b"2 3 14\n",
        "the output goes to stdout without --json"
    );
    let echo = guests::path("echo");
    let (value, _) = run_json(&[path_str(&echo), "--input", path_str(&input)]);
    assert_eq!(
        value["digest"],
        BlobHash::of(b"one two\nthree\n").to_string()
    );
    assert_eq!(value["output_bytes"], 14);
}

#[test]
fn two_processes_print_the_same_json() {
    let hashloop = guests::path("hashloop");
    let args = [path_str(&hashloop), "--arg", "50"];
    let (first, _) = run_json(&args);
    let (second, _) = run_json(&args);
    assert_eq!(first, second);
}

#[test]
fn errors_print_the_documented_error_object_and_fail() {
    let dir = tempfile::tempdir().unwrap();
    let no_start = dir.path().join("no_start.wasm");
    std::fs::write(&no_start, b"\0asm\x01\0\0\0").unwrap();
    let truncated = dir.path().join("truncated.wasm");
    std::fs::write(&truncated, &guests::bytes("echo").unwrap()[..100]).unwrap();
    let hashloop = guests::path("hashloop");
    let cases = [
        (vec![path_str(&no_start)], "no_entry_point"),
        (vec![path_str(&truncated)], "invalid_module"),
        (vec![path_str(&hashloop), "--fuel", "1000"], "out_of_fuel"),
        (
            vec![path_str(&hashloop), "--max-output", "4"],
            "output_too_large",
        ),
    ];
    for (args, kind) in cases {
        let (value, out) = run_json(&args);
        assert!(!out.status.success(), "{kind}");
        assert_eq!(value["status"], "error");
        assert_eq!(value["error"]["kind"], kind, "{value}");
        assert!(
            value["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
        let keys: Vec<_> = value["error"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        assert_eq!(keys.len(), 2);
    }
}

#[test]
fn a_missing_module_is_a_usage_error() {
    let out = cairn(&["run", "/no/such/module.wasm"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("could not read module"));
}

#[test]
fn help_documents_the_defaults_and_the_global_data_dir() {
    let out = cairn(&["run", "--help"]);
    let help = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "--fuel",
        "[default: 10000000000]",
        "--memory",
        "--timeout",
        "--max-output",
        "--backend",
    ] {
        assert!(help.contains(needle), "{needle} missing from:\n{help}");
    }
    assert!(help.contains("--data-dir") && help.contains("CAIRN_DATA_DIR"));
}
