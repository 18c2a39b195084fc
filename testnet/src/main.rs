//! The `cairn-testnet` binary: local simulations and clusters.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    eprintln!(
        "cairn-testnet {}: the simulation is not built yet (it arrives with the testnet issue, \
         which builds on the node and job-market issues); nothing was run",
        args.join(" ")
    );
    std::process::exit(2);
}
