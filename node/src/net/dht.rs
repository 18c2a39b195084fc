//! How often the DHT routing table's far buckets are refreshed.
//!
//! A kad bootstrap is a lookup of the node's own id followed by one lookup of a random key in
//! every bucket farther than the closest non-empty one (about log2 N lookups of some twenty
//! dials each). kad starts one whenever a peer joins a routing table of fewer than twenty
//! (so every node runs one or two while joining) and then periodically. Joining only needs the
//! self-lookup: it finds the node's neighbourhood and tells the neighbours about the node, and
//! the far buckets, which hold half, a quarter, an eighth... of the network, fill from the
//! peers that the node meets anyway. A full refresh on every join made 200 nodes starting on
//! one machine dial each other for minutes (see docs/benchmarks.md, "Scale").
//!
//! So far buckets are refreshed at most once per [`BUCKET_REFRESH`] (as go-libp2p-kad-dht
//! does), never in the first interval after start; every other bootstrap stops after its
//! self-lookup.

use std::time::{Duration, Instant};

use libp2p::kad::QueryId;

/// The shortest time between two refreshes of the far buckets; also kad's periodic bootstrap
/// interval.
pub(crate) const BUCKET_REFRESH: Duration = Duration::from_secs(10 * 60);

/// Decides, step by step, whether a bootstrap query goes on past its self-lookup.
#[derive(Debug)]
pub(crate) struct BucketRefresh {
    every: Duration,
    last: Instant,
    running: Option<QueryId>,
}

impl BucketRefresh {
    /// A node started at `now` refreshes its far buckets first at `now + every`.
    pub(crate) fn new(every: Duration, now: Instant) -> Self {
        Self {
            every,
            last: now,
            running: None,
        }
    }

    /// Bootstrap query `id` reported step number `step` (1 when the self-lookup has ended
    /// and the first bucket lookup is about to start), `last` when it was the final one.
    /// Yields whether the query may go on; `false` means finish it now.
    pub(crate) fn go_on(&mut self, id: QueryId, step: usize, last: bool, now: Instant) -> bool {
        if last {
            if self.running == Some(id) {
                self.running = None;
            }
            return true;
        }
        if step == 1
            && self.running.is_none()
            && now.saturating_duration_since(self.last) >= self.every
        {
            self.running = Some(id);
            self.last = now;
        }
        self.running == Some(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> (QueryId, QueryId) {
        // QueryIds can only come from a kad behaviour.
        use libp2p::identity::Keypair;
        use libp2p::kad::{self, store::MemoryStore};
        let peer = Keypair::generate_ed25519().public().to_peer_id();
        let mut kad = kad::Behaviour::new(peer, MemoryStore::new(peer));
        (kad.get_closest_peers(peer), kad.get_closest_peers(peer))
    }

    #[test]
    fn joining_bootstraps_stop_after_the_self_lookup() {
        let (a, b) = ids();
        let start = Instant::now();
        let mut refresh = BucketRefresh::new(Duration::from_secs(600), start);
        assert!(!refresh.go_on(a, 1, false, start));
        assert!(!refresh.go_on(a, 2, false, start));
        assert!(refresh.go_on(a, 3, true, start));
        assert!(!refresh.go_on(b, 1, false, start + Duration::from_secs(599)));
    }

    #[test]
    fn far_buckets_are_refreshed_once_per_interval() {
        let (a, b) = ids();
        let start = Instant::now();
        let mut refresh = BucketRefresh::new(Duration::from_secs(600), start);
        let due = start + Duration::from_secs(600);
        assert!(refresh.go_on(a, 1, false, due));
        // Another bootstrap meanwhile stops after its self-lookup.
        assert!(!refresh.go_on(b, 1, false, due));
        assert!(refresh.go_on(a, 2, false, due));
        assert!(refresh.go_on(a, 9, true, due));
        // Not again until an interval after the last one began.
        assert!(!refresh.go_on(b, 1, false, due + Duration::from_secs(599)));
        assert!(refresh.go_on(b, 1, false, due + Duration::from_secs(600)));
    }
}
