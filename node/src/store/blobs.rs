//! The blob store: content-addressed files beside the database, indexed in its `blobs` tree
//! and in memory ([`super::blob_index`]), with cached blobs evicted to make room.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use bincode::{Decode, Encode};
use cairn_protocol::BlobHash;

use super::blob_index::{Index, Keep, StoredKeep};
use super::{KvStore, StoreError, Tree, decode_value, encode_value};

const BLOB_SIZE: &[u8] = b"s/";
const BLOB_KEEP: &[u8] = b"m/";

/// Numbers temporary blob files.
static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// How a blob is kept, with when it was written (the eviction order after a restart).
#[derive(Encode, Decode)]
struct KeepRecord {
    keep: StoredKeep,
    written_ms: u64,
}

/// Content-addressed blobs with a per-blob limit, a total capacity, and a quota of cached
/// bytes per requester.
///
/// The bytes live in files named by their hash under the blob directory (written to a
/// temporary file, then renamed, so a file under its final name is always complete; pinned
/// blobs are synced first); the `blobs` tree holds each blob's size under `s/HASH` and how it
/// is kept under `m/HASH`, written after the file, so the index is rebuilt at start without
/// reading any data. Large values are what sled handles worst, so they stay out of it.
///
/// A write that would pass the capacity, or its requester's quota, first evicts cached blobs,
/// least recently used first (see [`Keep`]); pinned blobs are never evicted, so only a store
/// full of them refuses a write.
#[derive(Clone)]
pub struct BlobStore {
    kv: Arc<dyn KvStore>,
    dir: PathBuf,
    max_blob_bytes: u64,
    capacity: u64,
    quota: u64,
    index: Arc<Mutex<Index>>,
    evicted: Arc<AtomicU64>,
}

impl BlobStore {
    /// Opens the blob store with its files in `dir` and its index in `kv`, with no quota per
    /// requester beyond the capacity ([`BlobStore::with_requester_quota`] sets one). Files
    /// left by a crash between writing a blob and indexing it are indexed (as pinned) if their
    /// bytes match their name, and removed otherwise; index entries whose file is gone are
    /// dropped.
    pub fn open(
        kv: Arc<dyn KvStore>,
        dir: &Path,
        max_blob_bytes: u64,
        capacity: u64,
    ) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
        let store = Self {
            kv,
            dir: dir.to_owned(),
            max_blob_bytes,
            capacity,
            quota: capacity,
            index: Arc::new(Mutex::new(Index::default())),
            evicted: Arc::new(AtomicU64::new(0)),
        };
        store.load()?;
        store.recover()?;
        Ok(store)
    }

    /// Limits the cached copies kept for one requester's jobs to `quota` bytes: past it, its
    /// own oldest cached blobs make room. Default: the capacity.
    pub fn with_requester_quota(mut self, quota: u64) -> Self {
        self.quota = quota;
        self
    }

    fn index(&self) -> MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Rebuilds the index from the `blobs` tree, oldest write first.
    fn load(&self) -> Result<(), StoreError> {
        let mut found = Vec::new();
        for key in self.kv.keys(Tree::Blobs, BLOB_SIZE)? {
            let Some(hash) = key.get(BLOB_SIZE.len()..).and_then(|h| h.try_into().ok()) else {
                continue;
            };
            let hash = BlobHash(hash);
            let Some(v) = self.kv.get(Tree::Blobs, &key)? else {
                continue;
            };
            let len = decode_value::<u64>(&v)?;
            if !self.path(&hash).exists() {
                // Evicted or dropped by a run that stopped before removing the entry.
                self.remove_entry(&hash)?;
                continue;
            }
            let record = match self.kv.get(Tree::Blobs, &Self::keep_key(&hash))? {
                Some(v) => Some(decode_value::<KeepRecord>(&v)?),
                None => None,
            };
            let written = record.as_ref().map_or(0, |r| r.written_ms);
            let keep = record.map_or(Keep::PINNED, |r| r.keep.into());
            found.push((written, hash, len, keep));
        }
        found.sort_by_key(|(written, hash, ..)| (*written, *hash));
        let mut index = self.index();
        for (_, hash, len, keep) in found {
            index.insert(hash, len, keep);
        }
        Ok(())
    }

    fn recover(&self) -> Result<(), StoreError> {
        let entries = std::fs::read_dir(&self.dir).map_err(|e| io_error(&self.dir, e))?;
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            match name.parse::<BlobHash>() {
                Ok(hash) if !self.contains(&hash)? => {
                    let bytes = std::fs::read(&path).map_err(|e| io_error(&path, e))?;
                    if BlobHash::of(&bytes) == hash {
                        let len = bytes.len() as u64;
                        self.write_index(&hash, len, None)?;
                        self.index().insert(hash, len, Keep::PINNED);
                    } else {
                        let _ = std::fs::remove_file(&path);
                    }
                }
                Ok(_) => {}
                // Temporary files of interrupted writes.
                Err(_) => {
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        Ok(())
    }

    fn size_key(hash: &BlobHash) -> Vec<u8> {
        [BLOB_SIZE, hash.as_bytes()].concat()
    }

    fn keep_key(hash: &BlobHash) -> Vec<u8> {
        [BLOB_KEEP, hash.as_bytes()].concat()
    }

    fn path(&self, hash: &BlobHash) -> PathBuf {
        self.dir.join(hash.to_string())
    }

    /// Records a blob's size and how it is kept. Not flushed on its own: the file is written
    /// before its index entry, and [`BlobStore::open`] indexes any file whose entry a crash
    /// lost, as pinned and private, so the entry rides along with the store's next flush. A
    /// public blob's entry is flushed at once, since recovery would make it private.
    fn write_index(&self, hash: &BlobHash, len: u64, keep: Option<Keep>) -> Result<(), StoreError> {
        if let Some(keep) = keep {
            let written_ms = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
            let record = KeepRecord {
                keep: keep.into(),
                written_ms,
            };
            self.kv
                .put(Tree::Blobs, &Self::keep_key(hash), &encode_value(&record)?)?;
        }
        self.kv
            .put(Tree::Blobs, &Self::size_key(hash), &encode_value(&len)?)?;
        if keep.is_some_and(Keep::is_public) {
            self.kv.flush()?;
        }
        Ok(())
    }

    fn remove_entry(&self, hash: &BlobHash) -> Result<(), StoreError> {
        self.kv.remove(Tree::Blobs, &Self::size_key(hash))?;
        self.kv.remove(Tree::Blobs, &Self::keep_key(hash))?;
        Ok(())
    }

    /// Stores `bytes` durably and pinned (private) under their blake3 hash and returns it.
    pub fn put(&self, bytes: &[u8]) -> Result<BlobHash, StoreError> {
        self.put_with(bytes, Keep::PINNED)
    }

    /// Stores `bytes` under their blake3 hash, kept as `keep` says, and returns the hash. A
    /// blob held already is kept both ways at once (pinned wins, and public). A new one may
    /// first evict cached blobs (see [`BlobStore`]); it is refused when it is over the
    /// per-blob limit, over its requester's whole quota, or when pinned blobs fill the store.
    pub fn put_with(&self, bytes: &[u8], keep: Keep) -> Result<BlobHash, StoreError> {
        let hash = BlobHash::of(bytes);
        let len = bytes.len() as u64;
        if len > self.max_blob_bytes {
            return Err(StoreError::BlobTooLarge {
                len,
                max: self.max_blob_bytes,
            });
        }
        let held = self.index().get(&hash).map(|(_, k)| k);
        if let Some(old) = held {
            // A cached copy may never have reached the disk whole: a pinned write checks it
            // and makes it durable, or writes it again.
            if !keep.is_pinned() || self.sync_existing(&hash)? {
                let now = self.index().insert(hash, len, keep);
                if now != old {
                    self.write_index(&hash, len, Some(now))?;
                }
                return Ok(hash);
            }
        } else {
            let evicted = self
                .index()
                .make_room(len, keep, self.capacity, self.quota)?;
            self.remove_files(&evicted);
        }
        let written = self.write_file(&hash, bytes, keep.is_pinned());
        let mut index = self.index();
        if held.is_none() {
            index.release(len);
        }
        written?;
        let now = index.insert(hash, len, keep);
        drop(index);
        self.write_index(&hash, len, Some(now))?;
        Ok(hash)
    }

    fn write_file(&self, hash: &BlobHash, bytes: &[u8], synced: bool) -> Result<(), StoreError> {
        let path = self.path(hash);
        // Unique per write, so two concurrent writes of one blob never share a file.
        let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = self
            .dir
            .join(format!("{hash}.{}.{n}.tmp", std::process::id()));
        let written = if synced {
            write_synced(&tmp, bytes)
        } else {
            std::fs::write(&tmp, bytes)
        };
        written.map_err(|e| io_error(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| io_error(&path, e))?;
        if synced {
            sync_dir(&self.dir).map_err(|e| io_error(&self.dir, e))?;
        }
        Ok(())
    }

    /// Removes the files and entries of evicted blobs (already out of the in-memory index);
    /// the file goes first, so a crash between leaves an entry that the next start drops.
    fn remove_files(&self, evicted: &[BlobHash]) {
        for hash in evicted {
            let _ = std::fs::remove_file(self.path(hash));
            let _ = self.remove_entry(hash);
            self.evicted.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Syncs the held copy of `hash` to disk if its bytes match; `false` when they do not
    /// (or the file is gone) and the blob must be written again.
    fn sync_existing(&self, hash: &BlobHash) -> Result<bool, StoreError> {
        let path = self.path(hash);
        match std::fs::read(&path) {
            Ok(bytes) if BlobHash::of(&bytes) == *hash => {
                let file = std::fs::File::open(&path).map_err(|e| io_error(&path, e))?;
                file.sync_all().map_err(|e| io_error(&path, e))?;
                Ok(true)
            }
            Ok(_) => Ok(false),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_error(&path, e)),
        }
    }

    /// The blob's bytes as stored. Callers that act on them check the hash (bytes on disk can
    /// rot); serving them to a peer does not, because the peer checks.
    pub fn get(&self, hash: &BlobHash) -> Result<Option<Vec<u8>>, StoreError> {
        if !self.contains(hash)? {
            return Ok(None);
        }
        let path = self.path(hash);
        match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error(&path, e)),
        }
    }

    /// The blob's bytes, only if they still match their hash (and then it counts as just
    /// used). A copy that does not (rot, or a cached write a crash cut short) is dropped, so
    /// the next write of the blob replaces it.
    pub fn get_verified(&self, hash: &BlobHash) -> Result<Option<Vec<u8>>, StoreError> {
        match self.get(hash)? {
            Some(bytes) if BlobHash::of(&bytes) == *hash => {
                self.touch(hash);
                Ok(Some(bytes))
            }
            Some(_) => {
                self.drop_blob(hash)?;
                Ok(None)
            }
            None => Ok(None),
        }
    }

    fn drop_blob(&self, hash: &BlobHash) -> Result<(), StoreError> {
        self.index().remove(hash);
        let path = self.path(hash);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_error(&path, e)),
            _ => self.remove_entry(hash),
        }
    }

    /// Marks a blob as just used, so it is among the last cached ones evicted.
    pub fn touch(&self, hash: &BlobHash) {
        self.index().touch(hash);
    }

    /// Where the blob's file is (for inspection; it may be absent).
    pub fn file_of(&self, hash: &BlobHash) -> PathBuf {
        self.path(hash)
    }

    /// Whether the blob is held.
    pub fn contains(&self, hash: &BlobHash) -> Result<bool, StoreError> {
        Ok(self.index().get(hash).is_some())
    }

    /// The blob's size, if it is held.
    pub fn size_of(&self, hash: &BlobHash) -> Result<Option<u64>, StoreError> {
        Ok(self.index().get(hash).map(|(len, _)| len))
    }

    /// How the blob is kept, if it is held.
    pub fn keep_of(&self, hash: &BlobHash) -> Option<Keep> {
        self.index().get(hash).map(|(_, keep)| keep)
    }

    /// Hashes of every blob held, in order.
    pub fn list(&self) -> Result<Vec<BlobHash>, StoreError> {
        Ok(self.index().hashes())
    }

    /// Bytes in use.
    pub fn used_bytes(&self) -> u64 {
        self.index().used()
    }

    /// Bytes of the cached copies kept for `requester`'s jobs.
    pub fn cached_bytes_of(&self, requester: &cairn_protocol::NodeId) -> u64 {
        self.index().owned_bytes(requester)
    }

    /// Cached blobs evicted to make room since the store was opened.
    pub fn evicted(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }
}

fn io_error(path: &Path, source: std::io::Error) -> StoreError {
    StoreError::Io {
        path: path.to_owned(),
        source,
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut file = std::fs::File::create(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SledStore;
    use cairn_protocol::NodeId;

    const A: NodeId = NodeId([0xa; 32]);
    const B: NodeId = NodeId([0xb; 32]);

    /// A blob of `len` bytes numbered `n`.
    fn blob(n: u8, len: usize) -> Vec<u8> {
        vec![n; len]
    }

    fn store(dir: &Path, max: u64, capacity: u64) -> BlobStore {
        let kv: Arc<dyn KvStore> = Arc::new(SledStore::open(&dir.join("db"), 1 << 20).unwrap());
        BlobStore::open(kv, &dir.join("blobs"), max, capacity).unwrap()
    }

    #[test]
    fn blobs_are_addressed_by_hash_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let hash = {
            let blobs = store(dir.path(), 100, 1000);
            let hash = blobs.put(b"hello").unwrap();
            assert_eq!(hash, BlobHash::of(b"hello"));
            hash
        };
        let blobs = store(dir.path(), 100, 1000);
        assert_eq!(
            blobs.get_verified(&hash).unwrap().as_deref(),
            Some(&b"hello"[..])
        );
        assert_eq!(blobs.used_bytes(), 5);
        assert_eq!(blobs.list().unwrap(), vec![hash]);
    }

    #[test]
    fn files_left_by_a_crash_are_indexed_or_removed() {
        let dir = tempfile::tempdir().unwrap();
        let blobs_dir = dir.path().join("blobs");
        std::fs::create_dir_all(&blobs_dir).unwrap();
        // A complete file that was never indexed, one whose bytes do not match its name, and
        // a temporary file of an interrupted write.
        let good = BlobHash::of(b"complete");
        std::fs::write(blobs_dir.join(good.to_string()), b"complete").unwrap();
        let liar = BlobHash::of(b"expected");
        std::fs::write(blobs_dir.join(liar.to_string()), b"something else").unwrap();
        std::fs::write(blobs_dir.join("abc.1.tmp"), b"half").unwrap();
        let blobs = store(dir.path(), 100, 1000);
        assert_eq!(blobs.list().unwrap(), vec![good]);
        assert_eq!(blobs.used_bytes(), 8);
        assert_eq!(std::fs::read_dir(&blobs_dir).unwrap().count(), 1);
    }

    #[test]
    fn a_mangled_cached_copy_is_dropped_and_a_synced_write_replaces_it() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = store(dir.path(), 1 << 20, 1 << 20);
        let hash = blobs
            .put_with(b"cached bytes", Keep::cached(NodeId([1; 32])))
            .unwrap();
        std::fs::write(blobs.file_of(&hash), b"torn").unwrap();
        // A synced write of the same blob notices and writes it again.
        blobs.put(b"cached bytes").unwrap();
        assert_eq!(blobs.get_verified(&hash).unwrap().unwrap(), b"cached bytes");
        // A reader that finds a bad copy drops it, so a cached write can replace it.
        std::fs::write(blobs.file_of(&hash), b"torn").unwrap();
        assert_eq!(blobs.get_verified(&hash).unwrap(), None);
        assert!(!blobs.contains(&hash).unwrap());
        assert_eq!(blobs.used_bytes(), 0);
        blobs
            .put_with(b"cached bytes", Keep::cached(NodeId([1; 32])))
            .unwrap();
        assert_eq!(blobs.get_verified(&hash).unwrap().unwrap(), b"cached bytes");
    }

    #[test]
    fn limits_are_enforced() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = store(dir.path(), 10, 15);
        assert!(matches!(
            blobs.put(&[0; 11]),
            Err(StoreError::BlobTooLarge { len: 11, max: 10 })
        ));
        blobs.put(&[1; 10]).unwrap();
        assert!(matches!(
            blobs.put(&[2; 10]),
            Err(StoreError::BlobStoreFull { .. })
        ));
        blobs.put(&[1; 10]).unwrap(); // the same blob again costs nothing
    }

    #[test]
    fn a_store_full_of_one_requesters_cached_blobs_still_takes_another_jobs_blob() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = store(dir.path(), 100, 100);
        let mine = blobs.put(&blob(0, 30)).unwrap();
        let theirs: Vec<BlobHash> = (1..=7)
            .map(|n| blobs.put_with(&blob(n, 10), Keep::cached(A)).unwrap())
            .collect();
        assert_eq!(blobs.used_bytes(), 100);
        // The oldest but one is read again: it is now among the last to go.
        blobs.get_verified(&theirs[0]).unwrap().unwrap();

        let new = blobs.put_with(&blob(8, 10), Keep::cached(B)).unwrap();
        assert!(blobs.contains(&new).unwrap(), "a new job's blob is stored");
        assert!(
            !blobs.contains(&theirs[1]).unwrap(),
            "the least recently used went"
        );
        assert!(blobs.contains(&theirs[0]).unwrap());
        assert!(
            blobs.contains(&mine).unwrap(),
            "a pinned blob is never evicted"
        );
        assert!(!blobs.file_of(&theirs[1]).exists());
        assert_eq!((blobs.used_bytes(), blobs.evicted()), (100, 1));

        // A pinned blob makes room the same way; a store full of pinned blobs refuses.
        blobs.put(&blob(9, 10)).unwrap();
        assert_eq!(blobs.evicted(), 2);
        assert!(matches!(
            blobs.put(&blob(10, 90)),
            Err(StoreError::BlobStoreFull { .. })
        ));
        assert!(
            blobs.contains(&theirs[0]).unwrap(),
            "a refused write evicts nothing"
        );
    }

    #[test]
    fn one_requester_cannot_take_more_than_its_quota_of_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = store(dir.path(), 50, 100).with_requester_quota(40);
        let flood: Vec<BlobHash> = (0..6)
            .map(|n| blobs.put_with(&blob(n, 10), Keep::cached(A)).unwrap())
            .collect();
        assert_eq!(
            blobs.cached_bytes_of(&A),
            40,
            "its own oldest blobs made room"
        );
        assert!(!blobs.contains(&flood[0]).unwrap() && !blobs.contains(&flood[1]).unwrap());
        assert!(blobs.contains(&flood[5]).unwrap());
        // Room is left for others: another requester fills the rest without evicting A.
        for n in 10..16 {
            blobs.put_with(&blob(n, 10), Keep::cached(B)).unwrap();
        }
        assert_eq!(blobs.cached_bytes_of(&B), 40);
        assert_eq!(blobs.cached_bytes_of(&A), 40);
        assert!(matches!(
            blobs.put_with(&blob(20, 41), Keep::cached(A)),
            Err(StoreError::RequesterQuota {
                len: 41,
                quota: 40,
                ..
            })
        ));
    }

    #[test]
    fn how_a_blob_is_kept_survives_reopening_and_pinning_wins() {
        let dir = tempfile::tempdir().unwrap();
        let (cached, public) = {
            let blobs = store(dir.path(), 100, 1000);
            let cached = blobs.put_with(b"a cached copy", Keep::cached(A)).unwrap();
            let public = blobs
                .put_with(b"published", Keep::Pinned { public: true })
                .unwrap();
            // A user saving what a provider cached pins it (and stays private).
            blobs.put_with(b"published", Keep::cached(B)).unwrap();
            (cached, public)
        };
        let blobs = store(dir.path(), 100, 1000);
        assert_eq!(blobs.keep_of(&cached), Some(Keep::cached(A)));
        assert_eq!(blobs.keep_of(&public), Some(Keep::Pinned { public: true }));
        assert_eq!(blobs.cached_bytes_of(&A), 13);
        blobs.put(b"a cached copy").unwrap();
        assert_eq!(blobs.keep_of(&cached), Some(Keep::PINNED));
        assert_eq!(blobs.cached_bytes_of(&A), 0);
    }
}
