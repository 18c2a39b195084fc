//! A cap on inbound connections per remote IP address.
//!
//! Peer ids are free, so a cap per peer (libp2p's `connection_limits`) does not stop one host
//! with many identities from taking every inbound slot and most of the gossip mesh (an
//! eclipse). This behaviour counts inbound connections, pending and established, by the IP
//! they come from, and denies one over the cap before its handshake is done. Connections from
//! 127.0.0.1 and ::1 are exempt unless configured otherwise, as local clusters put every node
//! there (other loopback addresses, such as 127.0.0.2, count like any host); so are relayed
//! connections, whose address is the relay's, not the peer's.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::IpAddr;
use std::task::{Context, Poll};

use libp2p::core::transport::PortUse;
use libp2p::core::{Endpoint, Multiaddr};
use libp2p::swarm::{
    ConnectionClosed, ConnectionDenied, ConnectionId, FromSwarm, ListenFailure, NetworkBehaviour,
    THandler, THandlerInEvent, THandlerOutEvent, ToSwarm, dummy,
};
use libp2p::{PeerId, multiaddr::Protocol};

/// Why an inbound connection was denied.
#[derive(Debug, thiserror::Error)]
#[error("{ip} already has {held} inbound connections, the most one address may hold")]
pub struct IpLimitExceeded {
    /// The address over its cap.
    pub ip: IpAddr,
    /// Connections it holds now.
    pub held: usize,
}

/// Counts inbound connections per IP and denies those over `max_per_ip`.
pub struct IpLimits {
    max_per_ip: usize,
    limit_loopback: bool,
    /// Each counted connection's address, pending or established.
    by_connection: HashMap<ConnectionId, IpAddr>,
    /// Counted connections per address.
    per_ip: HashMap<IpAddr, usize>,
    denied: u64,
}

impl IpLimits {
    /// At most `max_per_ip` inbound connections from one address; those from 127.0.0.1 and ::1
    /// count only when `limit_loopback`.
    pub fn new(max_per_ip: usize, limit_loopback: bool) -> Self {
        Self {
            max_per_ip,
            limit_loopback,
            by_connection: HashMap::new(),
            per_ip: HashMap::new(),
            denied: 0,
        }
    }

    /// Inbound connections denied so far.
    pub fn denied(&self) -> u64 {
        self.denied
    }

    /// The address a connection from `addr` counts against, if it counts at all.
    fn counted_ip(&self, addr: &Multiaddr) -> Option<IpAddr> {
        if addr.iter().any(|p| p == Protocol::P2pCircuit) {
            return None;
        }
        let ip = addr.iter().find_map(|p| match p {
            Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
            Protocol::Ip6(ip) => Some(IpAddr::V6(ip)),
            _ => None,
        })?;
        let local_cluster = match ip {
            IpAddr::V4(v4) => v4 == std::net::Ipv4Addr::LOCALHOST,
            IpAddr::V6(v6) => v6 == std::net::Ipv6Addr::LOCALHOST,
        };
        (self.limit_loopback || !local_cluster).then_some(ip)
    }

    fn release(&mut self, connection: ConnectionId) {
        if let Some(ip) = self.by_connection.remove(&connection)
            && let Some(held) = self.per_ip.get_mut(&ip)
        {
            *held = held.saturating_sub(1);
            if *held == 0 {
                self.per_ip.remove(&ip);
            }
        }
    }
}

impl NetworkBehaviour for IpLimits {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    fn handle_pending_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        _local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        let Some(ip) = self.counted_ip(remote_addr) else {
            return Ok(());
        };
        let held = self.per_ip.get(&ip).copied().unwrap_or(0);
        if held >= self.max_per_ip {
            self.denied += 1;
            return Err(ConnectionDenied::new(IpLimitExceeded { ip, held }));
        }
        self.per_ip.insert(ip, held + 1);
        self.by_connection.insert(connection_id, ip);
        Ok(())
    }

    fn handle_established_inbound_connection(
        &mut self,
        _connection_id: ConnectionId,
        _peer: PeerId,
        _local_addr: &Multiaddr,
        _remote_addr: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn handle_established_outbound_connection(
        &mut self,
        _connection_id: ConnectionId,
        _peer: PeerId,
        _addr: &Multiaddr,
        _role_override: Endpoint,
        _port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            // A counted connection ends either way: closed once established, or failed (or
            // denied by another behaviour) before.
            FromSwarm::ConnectionClosed(ConnectionClosed { connection_id, .. })
            | FromSwarm::ListenFailure(ListenFailure { connection_id, .. }) => {
                self.release(connection_id)
            }
            _ => {}
        }
    }

    fn on_connection_handler_event(
        &mut self,
        _peer: PeerId,
        _connection: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn addr(s: &str) -> Multiaddr {
        s.parse().expect("address")
    }

    fn inbound(limits: &mut IpLimits, from: &str) -> Result<ConnectionId, ConnectionDenied> {
        static NEXT: AtomicUsize = AtomicUsize::new(1);
        let id = ConnectionId::new_unchecked(NEXT.fetch_add(1, Ordering::Relaxed));
        limits
            .handle_pending_inbound_connection(id, &addr("/ip4/0.0.0.0/tcp/1"), &addr(from))
            .map(|()| id)
    }

    #[test]
    fn one_address_gets_its_share_and_no_more_while_others_still_connect() {
        let mut limits = IpLimits::new(2, false);
        assert!(inbound(&mut limits, "/ip4/203.0.113.7/tcp/4001").is_ok());
        let second = inbound(&mut limits, "/ip4/203.0.113.7/tcp/4002").expect("second");
        assert!(inbound(&mut limits, "/ip4/203.0.113.7/tcp/4003").is_err());
        assert!(inbound(&mut limits, "/ip4/198.51.100.1/tcp/4001").is_ok());
        assert_eq!(limits.denied(), 1);
        // When one of its connections ends, the address may connect again.
        limits.release(second);
        assert!(inbound(&mut limits, "/ip4/203.0.113.7/tcp/4004").is_ok());
    }

    #[test]
    fn local_cluster_and_relayed_connections_are_exempt_unless_asked() {
        let mut limits = IpLimits::new(1, false);
        for port in 0..5 {
            assert!(inbound(&mut limits, &format!("/ip4/127.0.0.1/tcp/{port}")).is_ok());
            assert!(inbound(&mut limits, &format!("/ip6/::1/tcp/{port}")).is_ok());
            let relayed = format!("/ip4/203.0.113.9/tcp/4001/p2p-circuit/tcp/{port}");
            assert!(inbound(&mut limits, &relayed).is_ok());
        }
        // Another loopback address is another host.
        assert!(inbound(&mut limits, "/ip4/127.0.0.2/tcp/1").is_ok());
        assert!(inbound(&mut limits, "/ip4/127.0.0.2/tcp/2").is_err());
        let mut strict = IpLimits::new(1, true);
        assert!(inbound(&mut strict, "/ip4/127.0.0.1/tcp/1").is_ok());
        assert!(inbound(&mut strict, "/ip4/127.0.0.1/tcp/2").is_err());
    }
}
