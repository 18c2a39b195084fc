//! The error kinds are stable strings and the attributable ones are exactly those every
//! honest replica reaches.

use cairn_runtime::RunError;

#[test]
fn kinds_are_the_documented_set() {
    assert_eq!(
        RunError::KINDS,
        [
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
        ]
    );
    let samples = [
        RunError::InvalidModule {
            message: String::new(),
        },
        RunError::MissingImport {
            module: "m".into(),
            name: "n".into(),
        },
        RunError::NoEntryPoint,
        RunError::OutOfFuel { limit: 1 },
        RunError::Timeout { limit_ms: 1 },
        RunError::OutOfMemory { limit: 1 },
        RunError::StackOverflow,
        RunError::Trap {
            message: String::new(),
        },
        RunError::OutputTooLarge { limit: 1 },
        RunError::Exit { code: 1 },
        RunError::Host {
            message: String::new(),
        },
        RunError::ModuleTooComplex {
            what: "x",
            found: 2,
            limit: 1,
        },
        RunError::CompileTimeout { limit_ms: 1 },
    ];
    let kinds: Vec<_> = samples.iter().map(RunError::kind).collect();
    assert_eq!(kinds, RunError::KINDS);
    let unattributable: Vec<_> = samples
        .iter()
        .filter(|e| !e.is_attributable())
        .map(RunError::kind)
        .collect();
    assert_eq!(
        unattributable,
        [
            "timeout",
            "stack_overflow",
            "host_fault",
            "module_too_complex",
            "compile_timeout"
        ]
    );
}
