//! Connection trimming. Every protocol that reaches a peer leaves a connection behind, kept
//! for the swarm's idle timeout after its last request, so without trimming a busy node stays
//! connected to most peers its DHT queries and auctions touched in the last minute, whose
//! keep-alives, gossip and timers cost it O(N). Above a high-water mark the swarm task closes
//! the least recently used connections that no one needs, down to the target.
//!
//! Needed, and never closed: gossipsub mesh peers, relays and relayed peers (the caller
//! protects them), peers with a request in flight either way (ours unanswered, or theirs that
//! this node has not answered yet), and peers used within the grace period (a connection that
//! just opened, or served a request, is about to be used again).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use libp2p::PeerId;

/// How long a connection a request used is kept however many there are.
pub(crate) const GRACE: Duration = Duration::from_secs(10);

/// How long a new connection no request has used yet is kept (a DHT query's, say): long
/// enough for identify and the query's round trip.
pub(crate) const CONNECT_GRACE: Duration = Duration::from_secs(3);

/// How often the swarm task checks.
pub(crate) const TRIM_INTERVAL: Duration = Duration::from_secs(5);

/// When each peer was last used, and which have requests of ours in flight.
#[derive(Debug)]
pub(crate) struct PeerActivity {
    target: usize,
    grace: Duration,
    last_used: HashMap<PeerId, Instant>,
    connected_at: HashMap<PeerId, Instant>,
    in_flight: HashMap<PeerId, usize>,
}

impl PeerActivity {
    /// Keeps about `target` peers when idle (0: never trims).
    pub(crate) fn new(target: usize, grace: Duration) -> Self {
        Self {
            target,
            grace,
            last_used: HashMap::new(),
            connected_at: HashMap::new(),
            in_flight: HashMap::new(),
        }
    }

    /// Trimming starts above this many peers.
    pub(crate) fn high_water(&self) -> usize {
        self.target + self.target / 2
    }

    /// A first connection to `peer` opened at `now`.
    pub(crate) fn connected(&mut self, peer: PeerId, now: Instant) {
        self.connected_at.insert(peer, now);
    }

    /// `peer` was used (asked or answered) at `now`.
    pub(crate) fn touch(&mut self, peer: PeerId, now: Instant) {
        self.last_used.insert(peer, now);
    }

    /// A request of ours to `peer` was sent, or one of its to us arrived: the connection is
    /// needed until [`Self::request_ended`].
    pub(crate) fn request_started(&mut self, peer: PeerId, now: Instant) {
        *self.in_flight.entry(peer).or_default() += 1;
        self.touch(peer, now);
    }

    /// A request either way was answered or failed.
    pub(crate) fn request_ended(&mut self, peer: PeerId, now: Instant) {
        if let Some(n) = self.in_flight.get_mut(&peer) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.in_flight.remove(&peer);
            }
        }
        self.touch(peer, now);
    }

    /// The last connection to `peer` closed.
    pub(crate) fn forget(&mut self, peer: &PeerId) {
        self.last_used.remove(peer);
        self.connected_at.remove(peer);
        self.in_flight.remove(peer);
    }

    /// Which of the `connected` peers to disconnect now: none at or below the high-water mark;
    /// above it, the least recently used ones that are neither `protected`, nor waiting on a
    /// request, nor used within the grace period (or, never used, opened within
    /// [`CONNECT_GRACE`]), until `target` remain (or none is left to close).
    pub(crate) fn to_close(
        &self,
        connected: &[PeerId],
        protected: &HashSet<PeerId>,
        now: Instant,
    ) -> Vec<PeerId> {
        if self.target == 0 || connected.len() <= self.high_water() {
            return Vec::new();
        }
        let mut idle: Vec<(Option<Instant>, PeerId)> = connected
            .iter()
            .filter(|p| !protected.contains(p) && !self.in_flight.contains_key(p))
            .filter(
                |p| match (self.last_used.get(p), self.connected_at.get(p)) {
                    (Some(used), _) => now.saturating_duration_since(*used) >= self.grace,
                    (None, Some(opened)) => now.saturating_duration_since(*opened) >= CONNECT_GRACE,
                    (None, None) => true,
                },
            )
            .map(|p| (self.last_used.get(p).copied(), *p))
            .collect();
        // Never used first, then the longest idle.
        idle.sort();
        idle.truncate(connected.len() - self.target);
        idle.into_iter().map(|(_, p)| p).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peers(n: usize) -> Vec<PeerId> {
        (0..n).map(|_| PeerId::random()).collect()
    }

    #[test]
    fn nothing_is_closed_up_to_the_high_water_mark() {
        let activity = PeerActivity::new(4, GRACE);
        let now = Instant::now();
        assert!(
            activity
                .to_close(&peers(6), &HashSet::new(), now)
                .is_empty()
        );
        assert_eq!(activity.to_close(&peers(7), &HashSet::new(), now).len(), 3);
    }

    #[test]
    fn the_longest_idle_go_first_down_to_the_target() {
        let mut activity = PeerActivity::new(2, Duration::from_secs(10));
        let start = Instant::now();
        let connected = peers(5);
        for (i, p) in connected.iter().enumerate() {
            activity.touch(*p, start + Duration::from_secs(i as u64));
        }
        let later = start + Duration::from_secs(100);
        let closed = activity.to_close(&connected, &HashSet::new(), later);
        assert_eq!(closed, connected[..3].to_vec());
    }

    #[test]
    fn protected_busy_and_recent_peers_stay() {
        let mut activity = PeerActivity::new(1, Duration::from_secs(10));
        let start = Instant::now();
        let connected = peers(6);
        for p in &connected {
            activity.touch(*p, start);
        }
        let later = start + Duration::from_secs(60);
        let protected: HashSet<PeerId> = [connected[0]].into();
        activity.request_started(connected[1], start);
        activity.touch(connected[2], later - Duration::from_secs(1));
        let closed = activity.to_close(&connected, &protected, later);
        assert_eq!(closed.len(), 3);
        for kept in &connected[..3] {
            assert!(!closed.contains(kept));
        }

        // Once answered (and idle past the grace period), the busy one may go too.
        activity.request_ended(connected[1], start);
        let closed = activity.to_close(&connected, &protected, later);
        assert!(closed.contains(&connected[1]));
    }

    #[test]
    fn an_unused_new_connection_goes_sooner_than_a_used_one() {
        let mut activity = PeerActivity::new(1, Duration::from_secs(10));
        let start = Instant::now();
        let connected = peers(3);
        for p in &connected {
            activity.connected(*p, start);
        }
        activity.touch(connected[0], start);
        let later = start + CONNECT_GRACE;
        let closed = activity.to_close(&connected, &HashSet::new(), later);
        assert_eq!(closed.len(), 2);
        assert!(!closed.contains(&connected[0]));
        // Just opened: kept.
        let closed = activity.to_close(&connected, &HashSet::new(), start);
        assert!(closed.is_empty());
    }

    #[test]
    fn a_target_of_zero_never_trims() {
        let activity = PeerActivity::new(0, GRACE);
        let far = Instant::now() + Duration::from_secs(3600);
        assert!(
            activity
                .to_close(&peers(500), &HashSet::new(), far)
                .is_empty()
        );
    }
}
