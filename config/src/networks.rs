//! Network specs shipped with Cairn (`networks/*.toml` in the repository, compiled in), so a
//! node joins a public network by name: `cairn node --network testnet`.

use std::path::Path;

use crate::{ConfigError, NetworkSpec};

/// The shipped specs: name and TOML text.
const SHIPPED: [(&str, &str); 1] = [("testnet", include_str!("../../networks/testnet.toml"))];

/// The names of the shipped networks.
pub fn shipped() -> impl Iterator<Item = &'static str> {
    SHIPPED.iter().map(|(name, _)| *name)
}

/// The shipped spec called `name`, if there is one.
pub fn shipped_spec(name: &str) -> Option<Result<NetworkSpec, ConfigError>> {
    let (_, text) = SHIPPED.iter().find(|(n, _)| *n == name)?;
    let parsed = toml::from_str::<NetworkSpec>(text).map_err(|e| ConfigError::Invalid {
        field: "network",
        reason: format!("the shipped {name} spec does not parse: {e}"),
    });
    Some(parsed.and_then(|spec| spec.validate().map(|()| spec)))
}

impl NetworkSpec {
    /// The spec `network` names: a spec file, or else the name of a shipped network
    /// (`testnet`). A file of that name wins, so a local `testnet` file can stand in.
    pub fn resolve(network: &Path) -> Result<Self, ConfigError> {
        if network.exists() {
            return Self::load(network);
        }
        let name = network.to_str().unwrap_or_default();
        match shipped_spec(name) {
            Some(spec) => spec,
            None => Err(ConfigError::Invalid {
                field: "network",
                reason: format!(
                    "{name:?} is neither a spec file nor a shipped network (shipped: {})",
                    shipped().collect::<Vec<_>>().join(", ")
                ),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_network_parses_and_a_name_resolves_to_it() {
        for name in shipped() {
            let spec = NetworkSpec::resolve(Path::new(name)).unwrap();
            assert_eq!(spec.name, name);
            assert!(spec.network_id().is_ok());
        }
        let err = NetworkSpec::resolve(Path::new("no-such-net")).unwrap_err();
        assert!(err.to_string().contains("shipped: testnet"), "{err}");
    }
}
