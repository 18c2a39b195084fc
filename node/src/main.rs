//! The `cairn` command-line interface: a thin binary over `cairn-node` and `cairn-runtime`.
//! Each subcommand lives in its own module under `cli/` with an `execute()`.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
