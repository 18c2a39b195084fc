//! A network spec file (`NETWORK.toml`) as `NetworkSpec::load` parses and validates it
//! (`cairn-config`, which `cairn-node` re-exports), then what the node derives from it: the
//! network id, genesis, trust roots and verifier rules.
#![no_main]

use cairn_config::{NetworkSpec, network_rules};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(spec) = toml::from_str::<NetworkSpec>(text) else {
        return;
    };
    if spec.validate().is_err() {
        return;
    }
    let _ = spec.network_id();
    let _ = spec.roots();
    if let Ok(genesis) = spec.genesis() {
        assert_eq!(genesis.network, spec.name);
    }
    let _ = network_rules(&spec);
    // A valid spec written back reads as the same spec.
    let again = toml::to_string(&spec).expect("a spec serialises");
    assert_eq!(
        toml::from_str::<NetworkSpec>(&again).expect("reads back"),
        spec
    );
});
