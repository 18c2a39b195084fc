//! Node configuration (`config.toml` in the data dir) and network specs (`NETWORK.toml`):
//! parsed and validated by `cairn-config`, re-exported here, so that those decoders can be
//! fuzzed without compiling the node. What needs the node itself lives beside its user: the
//! NAT settings (`net::NatConfig::from_config`) and, here, the sandbox's compile limits.

use std::time::Duration;

pub use cairn_config::*;

/// The sandbox's compile limits from `[limits.compile]`.
pub fn compile_limits(c: &CompileConfig) -> cairn_runtime::CompileLimits {
    cairn_runtime::CompileLimits::default()
        .with_max_functions(c.max_functions)
        .with_max_function_bytes(c.max_function_bytes)
        .with_max_code_bytes(c.max_code_bytes)
        .with_max_locals(c.max_locals)
        .with_max_br_table_targets(c.max_br_table_targets)
        .with_max_blocks(c.max_blocks)
        .with_max_function_work(c.max_function_work)
        .with_max_work(c.max_work)
        .with_timeout(Duration::from_millis(c.timeout_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compile_limits_reach_the_sandbox_and_the_defaults_agree() {
        let text = "[limits.compile]\nmax_locals = 500\ntimeout_ms = 2500\n";
        let config: NodeConfig = toml::from_str(text).unwrap();
        let limits = compile_limits(&config.limits.compile);
        assert_eq!(limits.max_locals, 500);
        assert_eq!(limits.timeout, Duration::from_millis(2500));
        assert_eq!(
            compile_limits(&CompileConfig::default()),
            cairn_runtime::CompileLimits::default(),
            "config.toml's defaults are the sandbox's"
        );
    }
}
