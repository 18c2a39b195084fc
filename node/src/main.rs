//! The `cairn` command-line interface.

fn main() {
    eprintln!(
        "cairn: no subcommands are built yet; `cairn run` arrives with the runtime issue, \
         `cairn node` with the node issue"
    );
    std::process::exit(2);
}
