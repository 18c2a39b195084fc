//! A node's `config.toml` as `NodeConfig::load` parses and validates it (`cairn-config`,
//! which `cairn-node` re-exports).
#![no_main]

use cairn_config::NodeConfig;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(config) = toml::from_str::<NodeConfig>(text) else {
        return;
    };
    if config.validate().is_err() {
        return;
    }
    // A valid config written back reads as the same config.
    let again = toml::to_string(&config).expect("a config serialises");
    assert_eq!(
        toml::from_str::<NodeConfig>(&again).expect("reads back"),
        config
    );
});
