//! The blob store's index in memory: each blob's size and how it is kept, the bytes each
//! requester's cached blobs take, and the order in which cached blobs are evicted (least
//! recently used first). Pure bookkeeping: the store does the I/O.

use std::collections::{BTreeSet, HashMap};

use bincode::{Decode, Encode};
use cairn_protocol::{BlobHash, NodeId};

use super::StoreError;

/// How a blob is kept: whether it may be evicted, whom it is counted against, and whether
/// any peer may fetch it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keep {
    /// A user's blob (put through the API or the CLI, a job's module and input on its
    /// requester, an accepted output it fetched): synced to disk before the write returns
    /// and never evicted. A `public` one (published deliberately, announced in the DHT) is
    /// served to any peer; another only to the parties of a job it belongs to.
    Pinned {
        /// Served to any peer.
        public: bool,
    },
    /// A provider's copy of a job's blob (module, input or output): left to the page cache,
    /// evicted least recently used first when the store needs room, and counted against the
    /// quota of `owner`, the job's requester. `public` when it was found through the DHT.
    Cached {
        /// The requester whose job brought it here.
        owner: NodeId,
        /// Served to any peer.
        public: bool,
    },
}

impl Keep {
    /// A private pinned blob.
    pub const PINNED: Keep = Keep::Pinned { public: false };

    /// A private cached copy counted against `owner`.
    pub fn cached(owner: NodeId) -> Self {
        Keep::Cached {
            owner,
            public: false,
        }
    }

    /// Whether its write waits for the disk.
    pub fn is_pinned(self) -> bool {
        matches!(self, Keep::Pinned { .. })
    }

    /// Whether any peer may fetch it.
    pub fn is_public(self) -> bool {
        match self {
            Keep::Pinned { public } | Keep::Cached { public, .. } => public,
        }
    }

    fn owner(self) -> Option<NodeId> {
        match self {
            Keep::Pinned { .. } => None,
            Keep::Cached { owner, .. } => Some(owner),
        }
    }

    /// Both kinds of keeping at once: pinned wins over cached (the first owner stays), public
    /// over private.
    pub(super) fn merge(self, other: Keep) -> Keep {
        let public = self.is_public() || other.is_public();
        match (self, other) {
            (Keep::Cached { owner, .. }, Keep::Cached { .. }) => Keep::Cached { owner, public },
            _ => Keep::Pinned { public },
        }
    }
}

/// How a blob is kept, as stored under `m/HASH` in the `blobs` tree. A blob without one
/// (indexed by an older version, or recovered after a crash) counts as pinned and private:
/// nothing a user stored is ever evicted or published by mistake.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode)]
pub(super) struct StoredKeep {
    pinned: bool,
    public: bool,
    owner: Option<NodeId>,
}

impl From<Keep> for StoredKeep {
    fn from(keep: Keep) -> Self {
        Self {
            pinned: keep.is_pinned(),
            public: keep.is_public(),
            owner: keep.owner(),
        }
    }
}

impl From<StoredKeep> for Keep {
    fn from(s: StoredKeep) -> Self {
        match (s.pinned, s.owner) {
            (false, Some(owner)) => Keep::Cached {
                owner,
                public: s.public,
            },
            _ => Keep::Pinned { public: s.public },
        }
    }
}

struct Entry {
    len: u64,
    keep: Keep,
    used_at: u64,
}

/// The index (see the module docs).
#[derive(Default)]
pub(super) struct Index {
    entries: HashMap<BlobHash, Entry>,
    /// Cached blobs by last use, oldest first.
    lru: BTreeSet<(u64, BlobHash)>,
    /// Per owner: its cached bytes and its cached blobs by last use.
    owners: HashMap<NodeId, (u64, BTreeSet<(u64, BlobHash)>)>,
    /// Bytes held, plus those reserved by writes in progress.
    used: u64,
    /// Bytes of cached blobs (those eviction can free).
    cached: u64,
    /// A logical clock for last use.
    clock: u64,
}

impl Index {
    pub(super) fn used(&self) -> u64 {
        self.used
    }

    pub(super) fn get(&self, hash: &BlobHash) -> Option<(u64, Keep)> {
        self.entries.get(hash).map(|e| (e.len, e.keep))
    }

    pub(super) fn hashes(&self) -> Vec<BlobHash> {
        let mut hashes: Vec<BlobHash> = self.entries.keys().copied().collect();
        hashes.sort();
        hashes
    }

    /// Bytes of `owner`'s cached blobs.
    pub(super) fn owned_bytes(&self, owner: &NodeId) -> u64 {
        self.owners.get(owner).map_or(0, |(bytes, _)| *bytes)
    }

    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    /// Adds a blob (or changes how a held one is kept, merging the two); returns how it is
    /// now kept.
    pub(super) fn insert(&mut self, hash: BlobHash, len: u64, keep: Keep) -> Keep {
        let keep = match self.remove(&hash) {
            Some((_, old)) => old.merge(keep),
            None => keep,
        };
        let used_at = self.tick();
        self.used = self.used.saturating_add(len);
        if let Keep::Cached { owner, .. } = keep {
            self.lru.insert((used_at, hash));
            let (bytes, order) = self.owners.entry(owner).or_default();
            *bytes = bytes.saturating_add(len);
            order.insert((used_at, hash));
            self.cached = self.cached.saturating_add(len);
        }
        self.entries.insert(hash, Entry { len, keep, used_at });
        keep
    }

    /// Takes a blob out; returns its size and how it was kept.
    pub(super) fn remove(&mut self, hash: &BlobHash) -> Option<(u64, Keep)> {
        let entry = self.entries.remove(hash)?;
        self.used = self.used.saturating_sub(entry.len);
        if let Keep::Cached { owner, .. } = entry.keep {
            self.lru.remove(&(entry.used_at, *hash));
            self.cached = self.cached.saturating_sub(entry.len);
            if let Some((bytes, order)) = self.owners.get_mut(&owner) {
                *bytes = bytes.saturating_sub(entry.len);
                order.remove(&(entry.used_at, *hash));
                if order.is_empty() {
                    self.owners.remove(&owner);
                }
            }
        }
        Some((entry.len, entry.keep))
    }

    /// Marks a blob as just used, so it is evicted last.
    pub(super) fn touch(&mut self, hash: &BlobHash) {
        if let Some((len, keep)) = self.get(hash) {
            self.insert(*hash, len, keep);
        }
    }

    /// Gives back a reservation [`Index::make_room`] made (the write failed, or it is done
    /// and the blob is inserted).
    pub(super) fn release(&mut self, len: u64) {
        self.used = self.used.saturating_sub(len);
    }

    /// Makes room for a new blob of `len` bytes kept as `keep`, and reserves it: first the
    /// owner's least recently used cached blobs go while the owner would pass `quota`, then
    /// anyone's while the store would pass `capacity`. Pinned blobs never go. Returns what
    /// was evicted (taken out of the index; the caller removes the files), or why the blob
    /// cannot be stored, having evicted nothing. A reservation counts against the capacity at
    /// once but against its owner's quota only once written, so concurrent writes for one
    /// requester (a provider runs at most `capacity × (backlog_per_slot + 1)` jobs) may pass
    /// its quota by their own sizes until its next write evicts; refusing them instead would
    /// fail honest jobs, which costs the provider a timeout.
    pub(super) fn make_room(
        &mut self,
        len: u64,
        keep: Keep,
        capacity: u64,
        quota: u64,
    ) -> Result<Vec<BlobHash>, StoreError> {
        if let Keep::Cached { owner, .. } = keep
            && len > quota
        {
            return Err(StoreError::RequesterQuota { owner, len, quota });
        }
        // Quota evictions free cached bytes and used bytes alike, so this check holds after.
        let over = self.used.saturating_add(len).saturating_sub(capacity);
        if over > self.cached {
            return Err(StoreError::BlobStoreFull {
                used: self.used,
                capacity,
            });
        }
        let mut evicted = Vec::new();
        if let Keep::Cached { owner, .. } = keep {
            while self.owned_bytes(&owner).saturating_add(len) > quota {
                let Some(&(_, oldest)) = self.owners.get(&owner).and_then(|(_, o)| o.first())
                else {
                    break;
                };
                self.remove(&oldest);
                evicted.push(oldest);
            }
        }
        while self.used.saturating_add(len) > capacity {
            let Some(&(_, oldest)) = self.lru.first() else {
                break;
            };
            self.remove(&oldest);
            evicted.push(oldest);
        }
        self.used = self.used.saturating_add(len);
        Ok(evicted)
    }
}
