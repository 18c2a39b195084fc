//! The relay v2 server behind a guard against a panic in libp2p-relay 0.22.
//!
//! libp2p-relay 0.22 gives relayed connections a dummy handler, but when its status changes
//! (in `auto` mode: when the node gains or loses a confirmed external address) it sends
//! `SetStatus` to the handler of *every* connection, relayed ones included, and the dummy
//! handler's `unreachable!` panics the connection's task. [`GuardedRelay`] remembers which
//! connections are relayed and drops handler events addressed to them; a dummy handler has
//! nothing to configure, so nothing is lost. It also keeps relayed external addresses (which a
//! node gets from its own reservations) from switching the server on in `auto` mode.

use std::collections::HashSet;
use std::task::{Context, Poll};

use libp2p::core::Endpoint;
use libp2p::core::transport::PortUse;
use libp2p::swarm::{
    ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, NotifyHandler, THandler,
    THandlerInEvent, THandlerOutEvent, ToSwarm,
};
use libp2p::{Multiaddr, PeerId, relay};

use super::nat::is_relayed;

/// [`relay::Behaviour`] that never notifies the dummy handlers of relayed connections.
pub struct GuardedRelay {
    inner: relay::Behaviour,
    relayed: HashSet<ConnectionId>,
}

impl GuardedRelay {
    /// Wraps `inner`.
    pub fn new(inner: relay::Behaviour) -> Self {
        Self {
            inner,
            relayed: HashSet::new(),
        }
    }
}

impl NetworkBehaviour for GuardedRelay {
    type ConnectionHandler = THandler<relay::Behaviour>;
    type ToSwarm = relay::Event;

    fn handle_pending_inbound_connection(
        &mut self,
        id: ConnectionId,
        local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        self.inner
            .handle_pending_inbound_connection(id, local, remote)
    }

    fn handle_established_inbound_connection(
        &mut self,
        id: ConnectionId,
        peer: PeerId,
        local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        if local
            .iter()
            .any(|p| p == libp2p::multiaddr::Protocol::P2pCircuit)
        {
            self.relayed.insert(id);
        }
        self.inner
            .handle_established_inbound_connection(id, peer, local, remote)
    }

    fn handle_pending_outbound_connection(
        &mut self,
        id: ConnectionId,
        peer: Option<PeerId>,
        addresses: &[Multiaddr],
        role: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        self.inner
            .handle_pending_outbound_connection(id, peer, addresses, role)
    }

    fn handle_established_outbound_connection(
        &mut self,
        id: ConnectionId,
        peer: PeerId,
        addr: &Multiaddr,
        role: Endpoint,
        port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        if addr
            .iter()
            .any(|p| p == libp2p::multiaddr::Protocol::P2pCircuit)
        {
            self.relayed.insert(id);
        }
        self.inner
            .handle_established_outbound_connection(id, peer, addr, role, port_use)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match &event {
            FromSwarm::ConnectionClosed(closed) => {
                self.relayed.remove(&closed.connection_id);
            }
            // A reservation on another relay makes the relayed address external, but a node
            // reachable only through a relay cannot serve as one: hide those addresses from
            // the server's `auto` mode.
            FromSwarm::ExternalAddrConfirmed(e) if is_relayed(e.addr) => return,
            FromSwarm::ExternalAddrExpired(e) if is_relayed(e.addr) => return,
            _ => {}
        }
        self.inner.on_swarm_event(event);
    }

    fn on_connection_handler_event(
        &mut self,
        peer: PeerId,
        id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        self.inner.on_connection_handler_event(peer, id, event);
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<ToSwarm<relay::Event, THandlerInEvent<Self>>> {
        loop {
            match self.inner.poll(cx) {
                Poll::Ready(ToSwarm::NotifyHandler {
                    handler: NotifyHandler::One(id),
                    ..
                }) if self.relayed.contains(&id) => continue,
                other => return other,
            }
        }
    }
}
