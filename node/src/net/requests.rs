//! Requests in flight for one request-response protocol (blob, market or sync): this node's,
//! each with whoever waits for the answer, and peers', each counted against its peer.
//!
//! A peer may have at most `max_per_peer` requests of one protocol waiting for this node's
//! answer. More are refused at once (with the protocol's "busy" answer where it has one, else
//! by closing the stream) and counted, so one peer cannot fill the node's event queue and
//! starve the others, however fast it asks.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::Instant;

use libp2p::PeerId;
use libp2p::request_response::{self, Codec, InboundRequestId, OutboundRequestId, ResponseChannel};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};

use super::handle::{NetError, NetworkEvent};
use super::peers::PeerActivity;

/// One protocol's requests in flight.
pub(super) struct InFlight<Resp> {
    /// Ours, each with whoever waits for the answer.
    ours: HashMap<OutboundRequestId, oneshot::Sender<Result<Resp, NetError>>>,
    /// Peers', until this node answers them or they fail.
    theirs: Waiting<InboundRequestId>,
}

impl<Resp> InFlight<Resp> {
    /// No request in flight; at most `max_per_peer` of each peer's waiting at once.
    pub(super) fn new(max_per_peer: usize) -> Self {
        Self {
            ours: HashMap::new(),
            theirs: Waiting::new(max_per_peer),
        }
    }

    /// Remembers who waits for the answer to this node's request `id`.
    pub(super) fn wait(
        &mut self,
        id: OutboundRequestId,
        reply: oneshot::Sender<Result<Resp, NetError>>,
    ) {
        self.ours.insert(id, reply);
    }

    /// Peers' requests refused so far because their peer had too many waiting, or the node
    /// was too busy to take them.
    pub(super) fn refused(&self) -> u64 {
        self.theirs.refused
    }

    /// Routes a request-response event of `behaviour`: inbound requests go to the node as the
    /// event `inbound` makes, unless refused (the peer has its share waiting: answered with
    /// `busy`'s answer, or the stream is closed where it has none; or the node's queue is
    /// full). Answers and failures of this node's requests go to whoever waits. Either way the
    /// peer counts as needed (see [`super::peers`]) until the request ends.
    pub(super) fn route<C>(
        &mut self,
        event: request_response::Event<C::Request, Resp>,
        behaviour: &mut request_response::Behaviour<C>,
        activity: &mut PeerActivity,
        events: &mpsc::Sender<NetworkEvent>,
        inbound: impl FnOnce(PeerId, C::Request, ResponseChannel<Resp>) -> NetworkEvent,
        busy: impl FnOnce(&C::Request) -> Option<Resp>,
    ) where
        C: Codec<Response = Resp> + Clone + Send + 'static,
    {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request {
                    request_id,
                    request,
                    channel,
                } => {
                    if !self.theirs.admit(peer, request_id) {
                        debug!(target: "cairn::net", %peer, "too many requests from one peer; refused");
                        if let Some(answer) = busy(&request) {
                            let _ = behaviour.send_response(channel, answer);
                        }
                        return;
                    }
                    activity.request_started(peer, Instant::now());
                    // When the queue is full the channel is dropped with the event: the peer's
                    // stream closes and libp2p reports the request failed, which ends it here.
                    if events.try_send(inbound(peer, request, channel)).is_err() {
                        self.theirs.refused += 1;
                        warn!(target: "cairn::net", %peer, "node busy; dropping a request");
                    }
                }
                request_response::Message::Response {
                    request_id,
                    response,
                } => {
                    activity.request_ended(peer, Instant::now());
                    if let Some(reply) = self.ours.remove(&request_id) {
                        let _ = reply.send(Ok(response));
                    }
                }
            },
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                activity.request_ended(peer, Instant::now());
                if let Some(reply) = self.ours.remove(&request_id) {
                    let _ = reply.send(Err(NetError::Request {
                        peer,
                        reason: error.to_string(),
                    }));
                }
            }
            // A failure to read a request, or of a refused one, ends one that was never counted.
            request_response::Event::ResponseSent { request_id, .. }
            | request_response::Event::InboundFailure { request_id, .. } => {
                if let Some(peer) = self.theirs.finish(&request_id) {
                    activity.request_ended(peer, Instant::now());
                }
            }
        }
    }
}

/// Peers' requests waiting for this node's answer, each under its id `K`, counted per peer.
struct Waiting<K> {
    by_request: HashMap<K, PeerId>,
    per_peer: HashMap<PeerId, usize>,
    max_per_peer: usize,
    refused: u64,
}

impl<K: Hash + Eq> Waiting<K> {
    fn new(max_per_peer: usize) -> Self {
        Self {
            by_request: HashMap::new(),
            per_peer: HashMap::new(),
            max_per_peer: max_per_peer.max(1),
            refused: 0,
        }
    }

    /// Takes a peer's request in: counted, or refused (and counted as refused) when `peer`
    /// already has its share waiting. Returns whether it was taken.
    fn admit(&mut self, peer: PeerId, id: K) -> bool {
        let waiting = self.per_peer.entry(peer).or_default();
        if *waiting >= self.max_per_peer {
            self.refused += 1;
            return false;
        }
        *waiting += 1;
        self.by_request.insert(id, peer);
        true
    }

    /// A peer's request ended (answered, or failed); returns its peer if it was counted.
    fn finish(&mut self, id: &K) -> Option<PeerId> {
        let peer = self.by_request.remove(id)?;
        if let Some(waiting) = self.per_peer.get_mut(&peer) {
            *waiting = waiting.saturating_sub(1);
            if *waiting == 0 {
                self.per_peer.remove(&peer);
            }
        }
        Some(peer)
    }

    #[cfg(test)]
    fn waiting(&self, peer: &PeerId) -> usize {
        self.per_peer.get(peer).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_gets_its_share_of_waiting_requests_and_others_are_not_held_up() {
        let mut waiting: Waiting<u32> = Waiting::new(2);
        let greedy = PeerId::random();
        let other = PeerId::random();
        assert!(waiting.admit(greedy, 0));
        assert!(waiting.admit(greedy, 1));
        assert!(
            !waiting.admit(greedy, 2),
            "a third waiting request is refused"
        );
        assert!(waiting.admit(other, 3), "another peer is still served");
        assert_eq!(waiting.refused, 1);
        assert_eq!(waiting.waiting(&greedy), 2);
        // Once one is answered the peer may ask again.
        assert_eq!(waiting.finish(&0), Some(greedy));
        assert!(waiting.admit(greedy, 4));
        // A refused request was never counted, so its failure changes nothing.
        assert_eq!(waiting.finish(&2), None);
        assert_eq!(waiting.waiting(&greedy), 2);
        // Nothing is kept for a peer with nothing waiting.
        waiting.finish(&3);
        assert!(!waiting.per_peer.contains_key(&other));
    }
}
