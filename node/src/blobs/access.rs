//! Who may fetch a private blob besides its holder: the parties of the jobs it belongs to,
//! as the awards this node made (as requester: each awarded provider gets the job's module
//! and input) or took (as provider: the requester gets the output) say. Grants are kept in
//! the `blobs` tree under `g/HASH/NODE` (the time they lapse), made durable (by group commit) before the award goes
//! out, so a restarted node still lets its job's parties in; they lapse an hour after the
//! job's deadline and are pruned as they are read.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use cairn_protocol::{BlobHash, NodeId, Timestamp};
use libp2p::PeerId;

use crate::store::{KvStore, StoreError, Tree, decode_value, encode_value};

const GRANT: &[u8] = b"g/";
/// Grants kept per blob (a job has at most 255 replicas); past it, the soonest to lapse go.
const MAX_GRANTS_PER_BLOB: usize = 1024;
/// How long after a job's deadline its parties may still fetch its blobs (a requester that
/// restarts, say, fetches its output late).
pub(crate) const GRANT_GRACE_MS: u64 = 3_600_000;

/// Per blob, the nodes granted it and when each grant lapses.
type ByBlob = HashMap<BlobHash, Vec<(NodeId, Timestamp)>>;

/// The grants (see the module docs). Cheap to clone.
#[derive(Clone)]
pub(crate) struct Grants {
    kv: Arc<dyn KvStore>,
    by_blob: Arc<Mutex<ByBlob>>,
}

impl Grants {
    /// Loads the grants still in force at `now`, removing lapsed ones from the store.
    pub(crate) fn load(kv: Arc<dyn KvStore>, now: Timestamp) -> Result<Self, StoreError> {
        let mut by_blob = ByBlob::new();
        for key in kv.keys(Tree::Blobs, GRANT)? {
            let parsed = key.get(GRANT.len()..).and_then(|rest| {
                let hash: [u8; 32] = rest.get(..32)?.try_into().ok()?;
                let node: [u8; 32] = rest.get(32..)?.try_into().ok()?;
                Some((BlobHash(hash), NodeId(node)))
            });
            let until = match kv.get(Tree::Blobs, &key)? {
                Some(v) => Timestamp(decode_value::<u64>(&v)?),
                None => continue,
            };
            match parsed {
                Some((hash, node)) if until > now => {
                    by_blob.entry(hash).or_default().push((node, until))
                }
                _ => {
                    kv.remove(Tree::Blobs, &key)?;
                }
            }
        }
        Ok(Self {
            kv,
            by_blob: Arc::new(Mutex::new(by_blob)),
        })
    }

    fn map(&self) -> MutexGuard<'_, ByBlob> {
        self.by_blob.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn key(hash: &BlobHash, node: &NodeId) -> Vec<u8> {
        [GRANT, hash.as_bytes(), &node.0].concat()
    }

    /// Lets `to` fetch `hash` until `until`, durably (the store is flushed before this
    /// returns). Blocking: call it off the async threads.
    pub(crate) fn grant(
        &self,
        hash: BlobHash,
        to: NodeId,
        until: Timestamp,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut dropped = Vec::new();
        {
            let mut map = self.map();
            let grants = map.entry(hash).or_default();
            grants.retain(|(node, lapses)| {
                let keep = *lapses > now;
                if !keep {
                    dropped.push(*node);
                }
                keep
            });
            match grants.iter_mut().find(|(node, _)| *node == to) {
                Some((_, lapses)) => *lapses = (*lapses).max(until),
                None => grants.push((to, until)),
            }
            if grants.len() > MAX_GRANTS_PER_BLOB {
                grants.sort_by_key(|(_, lapses)| std::cmp::Reverse(*lapses));
                dropped.extend(grants.drain(MAX_GRANTS_PER_BLOB..).map(|(node, _)| node));
            }
        }
        for node in dropped {
            self.kv.remove(Tree::Blobs, &Self::key(&hash, &node))?;
        }
        self.kv.put(
            Tree::Blobs,
            &Self::key(&hash, &to),
            &encode_value(&until.0)?,
        )
    }

    /// Whether `peer` may fetch `hash` at `now`.
    pub(crate) fn allows(&self, hash: &BlobHash, peer: &PeerId, now: Timestamp) -> bool {
        self.map().get(hash).is_some_and(|grants| {
            grants
                .iter()
                .any(|(node, lapses)| *lapses > now && node.peer_id().ok().as_ref() == Some(peer))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SledStore;

    #[test]
    fn grants_survive_reopening_and_lapse() {
        let dir = tempfile::tempdir().unwrap();
        let kv: Arc<dyn KvStore> = Arc::new(SledStore::open(dir.path(), 1 << 20).unwrap());
        let keypair = libp2p::identity::ed25519::Keypair::generate();
        let node = NodeId(keypair.public().to_bytes());
        let peer = node.peer_id().unwrap();
        let hash = BlobHash::of(b"a job's input");
        let grants = Grants::load(kv.clone(), Timestamp(0)).unwrap();
        assert!(!grants.allows(&hash, &peer, Timestamp(10)));
        grants
            .grant(hash, node, Timestamp(100), Timestamp(10))
            .unwrap();
        assert!(grants.allows(&hash, &peer, Timestamp(99)));
        assert!(!grants.allows(&hash, &PeerId::random(), Timestamp(99)));
        assert!(!grants.allows(&hash, &peer, Timestamp(100)), "lapsed");

        let again = Grants::load(kv.clone(), Timestamp(50)).unwrap();
        assert!(again.allows(&hash, &peer, Timestamp(60)));
        let later = Grants::load(kv.clone(), Timestamp(100)).unwrap();
        assert!(!later.allows(&hash, &peer, Timestamp(60)));
        assert!(kv.keys(Tree::Blobs, GRANT).unwrap().is_empty(), "pruned");
    }
}
