//! Admission for serving blobs to peers: at most so many transfers at once per peer and in
//! all. A transfer holds a [`ServePermit`] until its last byte is written (or the stream
//! fails), so the memory spent serving is bounded by the total limit times a chunk.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use libp2p::PeerId;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::net::BlobRefusal;

/// The limits on blob transfers in flight, shared by every serving task.
#[derive(Clone)]
pub(crate) struct ServeLimits {
    per_peer: usize,
    total: Arc<Semaphore>,
    /// Transfers in flight per peer; a peer is removed when its count falls to zero, so the
    /// map holds at most as many peers as the total limit.
    peers: Arc<Mutex<HashMap<PeerId, usize>>>,
}

/// One admitted transfer; dropping it frees its place.
pub(crate) struct ServePermit {
    _total: OwnedSemaphorePermit,
    peer: PeerId,
    peers: Arc<Mutex<HashMap<PeerId, usize>>>,
}

/// Which limit refused a transfer (a metrics label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Limit {
    PerPeer,
    Total,
}

impl Limit {
    /// The label counted under `cairn_rejections_total{what="blob_request"}`.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::PerPeer => "busy_peer",
            Self::Total => "busy_total",
        }
    }
}

impl From<Limit> for BlobRefusal {
    fn from(_: Limit) -> Self {
        BlobRefusal::Busy
    }
}

impl ServeLimits {
    /// At most `per_peer` transfers to one peer and `total` in all (each at least 1).
    pub(crate) fn new(per_peer: usize, total: usize) -> Self {
        Self {
            per_peer: per_peer.max(1),
            total: Arc::new(Semaphore::new(total.max(1))),
            peers: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// A place for one more transfer to `peer`, or the limit that refuses it. Never waits.
    pub(crate) fn try_admit(&self, peer: PeerId) -> Result<ServePermit, Limit> {
        let mut peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        let held = peers.get(&peer).copied().unwrap_or(0);
        if held >= self.per_peer {
            return Err(Limit::PerPeer);
        }
        let total = self
            .total
            .clone()
            .try_acquire_owned()
            .map_err(|_| Limit::Total)?;
        peers.insert(peer, held + 1);
        Ok(ServePermit {
            _total: total,
            peer,
            peers: self.peers.clone(),
        })
    }
}

impl Drop for ServePermit {
    fn drop(&mut self) {
        let mut peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = peers.get_mut(&self.peer) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                peers.remove(&self.peer);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_past_its_share_is_refused_while_others_are_served_until_the_total_is_reached() {
        let limits = ServeLimits::new(2, 3);
        let (a, b, c) = (PeerId::random(), PeerId::random(), PeerId::random());
        let a1 = limits.try_admit(a).unwrap();
        let _a2 = limits.try_admit(a).unwrap();
        assert_eq!(limits.try_admit(a).err(), Some(Limit::PerPeer));
        let _b1 = limits.try_admit(b).unwrap();
        assert_eq!(limits.try_admit(c).err(), Some(Limit::Total));
        // A finished transfer frees its place for its peer and for the total.
        drop(a1);
        let _a3 = limits.try_admit(a).unwrap();
        assert_eq!(limits.try_admit(c).err(), Some(Limit::Total));
        assert_eq!(limits.peers.lock().unwrap().len(), 2);
    }
}
