//! Reachability: AutoNAT (am I reachable from outside?), circuit relay v2 (a public node relays
//! for peers behind NAT) and DCUtR (upgrade a relayed connection to a direct one by hole
//! punching). The settings are [`NatConfig`]; the swarm task keeps a [`NatState`] from the
//! events of the three behaviours and answers [`super::Command::Nat`] with a [`NatInfo`].

use std::collections::BTreeSet;
use std::time::Duration;

use libp2p::core::transport::ListenerId;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::NetworkBehaviour;
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::{Multiaddr, PeerId, Swarm, autonat, dcutr, relay};
use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};

pub use crate::config::RelayServerMode;
use crate::config::{NetworkSpec, NodeConfig};

/// Reachability settings of the network layer.
#[derive(Clone, Debug)]
pub struct NatConfig {
    /// Relay server mode. Default: [`RelayServerMode::Auto`].
    pub relay_server: RelayServerMode,
    /// Most reservations this node holds for other peers as a relay. Default: 128.
    pub relay_max_reservations: usize,
    /// Most relayed connections at once. Default: 16.
    pub relay_max_circuits: usize,
    /// Bytes one relayed connection may carry before the relay closes it. Default: 1 MiB
    /// (libp2p's own default, 128 KiB, is smaller than a typical module).
    pub relay_max_circuit_bytes: u64,
    /// How long one relayed connection may last. Default: 2 minutes.
    pub relay_max_circuit_duration: Duration,
    /// Addresses this node announces as publicly reachable without asking AutoNAT (for example
    /// a bootstrap node's public address). Default: none.
    pub external_addrs: Vec<Multiaddr>,
    /// Let AutoNAT servers dial back private (non-global) addresses and count private
    /// addresses of peers; for lab and LAN networks only. Default: `false`.
    pub autonat_private_addrs: bool,
    /// Delay before the first AutoNAT probe, and between probes while the status is unknown.
    /// Default: 15 s.
    pub autonat_probe_delay: Duration,
    /// Relays (addresses ending in `/p2p/ID`) to reserve on when AutoNAT finds this node
    /// private and it has no relayed listen address; at most [`MAX_AUTO_RELAYS`] are used.
    /// Default: none.
    pub auto_relays: Vec<Multiaddr>,
}

/// Most relays a private node reserves on by itself.
pub const MAX_AUTO_RELAYS: usize = 2;

impl Default for NatConfig {
    fn default() -> Self {
        Self {
            relay_server: RelayServerMode::Auto,
            relay_max_reservations: 128,
            relay_max_circuits: 16,
            relay_max_circuit_bytes: 1 << 20,
            relay_max_circuit_duration: Duration::from_secs(120),
            external_addrs: Vec::new(),
            autonat_private_addrs: false,
            autonat_probe_delay: Duration::from_secs(15),
            auto_relays: Vec::new(),
        }
    }
}

impl NatConfig {
    /// The reachability settings from a node's `config` and its network's `spec`. External
    /// addresses that do not parse are skipped; [`NodeConfig::validate`] refuses them.
    pub fn from_config(config: &NodeConfig, spec: &NetworkSpec) -> Self {
        let parsed = |addrs: &mut dyn Iterator<Item = &String>| -> Vec<Multiaddr> {
            addrs.filter_map(|a| a.parse().ok()).collect()
        };
        let auto_relays = if config.auto_relay {
            parsed(&mut spec.bootstrap.iter().chain(&config.bootstrap))
        } else {
            Vec::new()
        };
        Self {
            relay_server: config.relay_server,
            external_addrs: parsed(&mut config.external_addrs.iter()),
            auto_relays,
            autonat_private_addrs: spec.autonat_private_addrs,
            autonat_probe_delay: Duration::from_secs(spec.autonat_probe_secs),
            ..Self::default()
        }
    }

    /// The AutoNAT (v1) configuration: this node both asks peers to dial it back and answers
    /// their requests.
    pub(crate) fn autonat(&self) -> autonat::Config {
        autonat::Config {
            boot_delay: self.autonat_probe_delay,
            retry_interval: self.autonat_probe_delay.max(Duration::from_secs(1)),
            only_global_ips: !self.autonat_private_addrs,
            ..autonat::Config::default()
        }
    }

    /// The relay server configuration, `None` when the mode is off.
    pub(crate) fn relay_server(&self) -> Option<relay::Config> {
        (self.relay_server != RelayServerMode::Off).then(|| relay::Config {
            max_reservations: self.relay_max_reservations,
            max_circuits: self.relay_max_circuits,
            max_circuit_bytes: self.relay_max_circuit_bytes,
            max_circuit_duration: self.relay_max_circuit_duration,
            ..relay::Config::default()
        })
    }
}

/// What the node knows about its own reachability (`cairn status`, `/v1/status`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NatInfo {
    /// AutoNAT's verdict: `public`, `private` or `unknown`.
    pub status: String,
    /// The address AutoNAT confirmed, when public.
    pub public_addr: Option<String>,
    /// Whether this node currently serves as a relay for others.
    pub relay_serving: bool,
    /// Peers holding a reservation on this node (when it serves as a relay).
    pub relayed_peers: usize,
    /// Relays holding a reservation for this node.
    pub reservations: Vec<String>,
    /// Relayed connections upgraded to direct ones by hole punching.
    pub hole_punches_succeeded: u64,
    /// Failed hole punching attempts.
    pub hole_punches_failed: u64,
}

/// The swarm task's running record of reachability.
#[derive(Debug, Default)]
pub(crate) struct NatState {
    status: Option<autonat::NatStatus>,
    relay_serving: bool,
    relayed_peers: BTreeSet<PeerId>,
    reservations: BTreeSet<PeerId>,
    punched: u64,
    punch_failed: u64,
}

impl NatState {
    /// Starts with the relay server on when its mode is [`RelayServerMode::On`].
    pub(crate) fn new(config: &NatConfig) -> Self {
        Self {
            relay_serving: config.relay_server == RelayServerMode::On,
            ..Self::default()
        }
    }

    /// The current picture.
    pub(crate) fn info(&self) -> NatInfo {
        let (status, public_addr) = match &self.status {
            Some(autonat::NatStatus::Public(addr)) => ("public", Some(addr.to_string())),
            Some(autonat::NatStatus::Private) => ("private", None),
            Some(autonat::NatStatus::Unknown) | None => ("unknown", None),
        };
        NatInfo {
            status: status.into(),
            public_addr,
            relay_serving: self.relay_serving,
            relayed_peers: self.relayed_peers.len(),
            reservations: self.reservations.iter().map(ToString::to_string).collect(),
            hole_punches_succeeded: self.punched,
            hole_punches_failed: self.punch_failed,
        }
    }

    /// Peers whose connections reachability depends on: our relays and the peers we relay.
    pub(crate) fn relay_peers(&self) -> impl Iterator<Item = &PeerId> {
        self.reservations.iter().chain(&self.relayed_peers)
    }

    pub(crate) fn on_autonat(&mut self, event: autonat::Event) {
        if let autonat::Event::StatusChanged { old, new } = event {
            info!(target: "cairn::net::nat", ?old, ?new, "reachability changed");
            self.status = Some(new);
        }
    }

    pub(crate) fn on_relay_server(&mut self, event: relay::Event) {
        match event {
            relay::Event::ReservationReqAccepted { src_peer_id, .. } => {
                info!(target: "cairn::net::nat", peer = %src_peer_id, "relaying for a peer");
                self.relayed_peers.insert(src_peer_id);
            }
            relay::Event::ReservationClosed { src_peer_id }
            | relay::Event::ReservationTimedOut { src_peer_id } => {
                self.relayed_peers.remove(&src_peer_id);
            }
            relay::Event::StatusChanged { status } => {
                info!(target: "cairn::net::nat", ?status, "relay server status");
                self.relay_serving = status == relay::Status::Enable;
            }
            _ => {}
        }
    }

    pub(crate) fn on_relay_client(&mut self, event: relay::client::Event) {
        match event {
            relay::client::Event::ReservationReqAccepted {
                relay_peer_id,
                renewal,
                ..
            } => {
                if !renewal {
                    info!(target: "cairn::net::nat", relay = %relay_peer_id, "reservation accepted; reachable through the relay");
                }
                self.reservations.insert(relay_peer_id);
            }
            relay::client::Event::InboundCircuitEstablished { src_peer_id, .. } => {
                info!(target: "cairn::net::nat", peer = %src_peer_id, "inbound relayed connection");
            }
            relay::client::Event::OutboundCircuitEstablished { relay_peer_id, .. } => {
                info!(target: "cairn::net::nat", relay = %relay_peer_id, "outbound relayed connection");
            }
        }
    }

    /// A relay's connection closed: its reservation is gone with it.
    pub(crate) fn on_connection_closed(&mut self, peer: &PeerId) {
        if self.reservations.remove(peer) {
            warn!(target: "cairn::net::nat", relay = %peer, "lost the reservation on a relay");
        }
        self.relayed_peers.remove(peer);
    }

    pub(crate) fn on_dcutr(&mut self, event: dcutr::Event) {
        match event.result {
            Ok(_) => {
                info!(target: "cairn::net::nat", peer = %event.remote_peer_id, "hole punching succeeded; direct connection");
                self.punched += 1;
            }
            Err(error) => {
                info!(target: "cairn::net::nat", peer = %event.remote_peer_id, %error, "hole punching failed; staying relayed");
                self.punch_failed += 1;
            }
        }
    }
}

/// Whether `addr` goes through a relay (has `/p2p-circuit`).
pub(crate) fn is_relayed(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| p == Protocol::P2pCircuit)
}

/// How often the swarm task re-checks relayed listen addresses whose reservation is missing.
pub(crate) const RELAY_RETRY: Duration = Duration::from_secs(15);

/// A listen address through a relay (`/.../p2p/RELAY/p2p-circuit`) and its listener, if any.
#[derive(Debug)]
struct RelayListen {
    relay: PeerId,
    /// The relay's own address (the part before `/p2p-circuit`).
    relay_addr: Multiaddr,
    /// The full `/p2p-circuit` address.
    addr: Multiaddr,
    listener: Option<ListenerId>,
}

/// Relayed listen addresses. libp2p's relay client gives up on a reservation when its own dial
/// to the relay races another dial to the same peer (for example the bootstrap dial), so the
/// swarm task listens only once the relay is connected, dials it when not, and listens again
/// when a reservation's listener closes.
#[derive(Debug, Default)]
pub(crate) struct RelayListens {
    listens: Vec<RelayListen>,
}

impl RelayListens {
    /// Adds a relayed listen address; it must name the relay (`/p2p/RELAY/p2p-circuit`).
    pub(crate) fn add(&mut self, addr: Multiaddr) -> Result<(), String> {
        let mut relay_addr = Multiaddr::empty();
        let mut relay = None;
        for protocol in addr.iter() {
            if protocol == Protocol::P2pCircuit {
                break;
            }
            if let Protocol::P2p(peer) = protocol {
                relay = Some(peer);
            }
            relay_addr.push(protocol);
        }
        let relay =
            relay.ok_or("a relayed listen address needs /p2p/RELAY_PEER_ID before /p2p-circuit")?;
        self.listens.push(RelayListen {
            relay,
            relay_addr,
            addr,
            listener: None,
        });
        Ok(())
    }

    /// Adds a `/p2p-circuit` listen address on each of `relays` (at most [`MAX_AUTO_RELAYS`]),
    /// unless there are relayed listen addresses already.
    pub(crate) fn add_auto(&mut self, relays: &[Multiaddr]) {
        if !self.listens.is_empty() {
            return;
        }
        for relay in relays.iter().take(MAX_AUTO_RELAYS) {
            let addr = relay.clone().with(Protocol::P2pCircuit);
            match self.add(addr) {
                Ok(()) => {
                    info!(target: "cairn::net::nat", %relay, "private: listening through a relay")
                }
                Err(error) => {
                    warn!(target: "cairn::net::nat", %relay, %error, "cannot use as relay")
                }
            }
        }
    }

    /// Forgets a closed listener, so that [`RelayListens::ensure`] listens again.
    /// The relays named by relayed listen addresses.
    pub(crate) fn relays(&self) -> impl Iterator<Item = PeerId> + '_ {
        self.listens.iter().map(|l| l.relay)
    }

    pub(crate) fn on_listener_closed(&mut self, id: ListenerId) {
        for listen in &mut self.listens {
            if listen.listener == Some(id) {
                warn!(target: "cairn::net::nat", addr = %listen.addr, "relayed listener closed; will retry");
                listen.listener = None;
            }
        }
    }

    /// Listens on each relayed address without a listener whose relay is connected; dials the
    /// relays that are not.
    pub(crate) fn ensure<B: NetworkBehaviour>(&mut self, swarm: &mut Swarm<B>) {
        for listen in self.listens.iter_mut().filter(|l| l.listener.is_none()) {
            if swarm.is_connected(&listen.relay) {
                match swarm.listen_on(listen.addr.clone()) {
                    Ok(id) => listen.listener = Some(id),
                    Err(error) => {
                        warn!(target: "cairn::net::nat", addr = %listen.addr, %error, "cannot listen through the relay")
                    }
                }
            } else {
                let opts = DialOpts::peer_id(listen.relay)
                    .addresses(vec![listen.relay_addr.clone()])
                    .build();
                if let Err(error) = swarm.dial(opts) {
                    debug!(target: "cairn::net::nat", relay = %listen.relay, %error, "not dialling the relay");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RELAY: &str = "12D3KooWRGVEvSDk6a6V1m7QLfD5pzn1vPbt3QfSp64hgCj2wne9";

    #[test]
    fn a_relayed_listen_address_must_name_its_relay() {
        let mut listens = RelayListens::default();
        let addr: Multiaddr = format!("/ip4/10.0.0.1/tcp/4741/p2p/{RELAY}/p2p-circuit")
            .parse()
            .unwrap();
        assert!(is_relayed(&addr));
        listens.add(addr).unwrap();
        let listen = &listens.listens[0];
        assert_eq!(listen.relay.to_string(), RELAY);
        assert_eq!(
            listen.relay_addr.to_string(),
            format!("/ip4/10.0.0.1/tcp/4741/p2p/{RELAY}")
        );
        let anonymous: Multiaddr = "/ip4/10.0.0.1/tcp/4741/p2p-circuit".parse().unwrap();
        assert!(
            listens
                .add(anonymous)
                .unwrap_err()
                .contains("/p2p/RELAY_PEER_ID")
        );
        assert!(!is_relayed(&"/ip4/10.0.0.1/tcp/4741".parse().unwrap()));
    }

    #[test]
    fn settings_reach_the_behaviours() {
        let config = NatConfig {
            autonat_private_addrs: true,
            autonat_probe_delay: Duration::from_secs(2),
            ..NatConfig::default()
        };
        let autonat = config.autonat();
        assert!(!autonat.only_global_ips);
        assert_eq!(autonat.boot_delay, Duration::from_secs(2));
        assert!(
            NatConfig::default().autonat().only_global_ips,
            "public by default"
        );
        let relay = config.relay_server().unwrap();
        assert_eq!(relay.max_circuit_bytes, 1 << 20);
        let off = NatConfig {
            relay_server: RelayServerMode::Off,
            ..NatConfig::default()
        };
        assert!(off.relay_server().is_none());
    }

    #[test]
    fn info_starts_unknown_and_the_relay_mode_sets_serving() {
        let state = NatState::new(&NatConfig::default());
        let info = state.info();
        assert_eq!(info.status, "unknown");
        assert!(!info.relay_serving, "auto mode waits for a public address");
        let on = NatConfig {
            relay_server: RelayServerMode::On,
            ..NatConfig::default()
        };
        assert!(NatState::new(&on).info().relay_serving);
    }

    #[test]
    fn nat_settings_come_from_config_and_spec() {
        let config: NodeConfig = toml::from_str(
            "relay_server = \"on\"\nexternal_addrs = [\"/ip4/203.0.113.7/tcp/4741\"]",
        )
        .unwrap();
        config.validate().unwrap();
        let spec: NetworkSpec =
            toml::from_str("name = \"lab\"\nautonat_private_addrs = true\nautonat_probe_secs = 3")
                .unwrap();
        spec.validate().unwrap();
        let nat = NatConfig::from_config(&config, &spec);
        assert_eq!(nat.relay_server, RelayServerMode::On);
        assert_eq!(
            nat.external_addrs[0].to_string(),
            "/ip4/203.0.113.7/tcp/4741"
        );
        assert!(nat.autonat_private_addrs);
        assert_eq!(nat.autonat_probe_delay, Duration::from_secs(3));
    }
}
