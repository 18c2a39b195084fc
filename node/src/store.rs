//! Persistent state behind a small trait, with sled as the engine.
//!
//! Values are versioned: one version byte, then the bincode encoding. Every write that must
//! survive a crash (identity, blobs, adverts) is flushed before the call returns, so a node
//! killed with SIGKILL restarts with it intact.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bincode::{Decode, Encode};
use cairn_protocol::BlobHash;
use cairn_protocol::codec::{self, CodecError};

/// Version byte in front of every stored value.
const VALUE_VERSION: u8 = 1;

/// The named trees of the store (DESIGN.md "Storage").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Tree {
    /// Content-addressed blobs.
    Blobs,
    /// Jobs this node submitted or serves.
    Jobs,
    /// Bids.
    Bids,
    /// Result reports.
    Results,
    /// Verdicts.
    Verdicts,
    /// The reputation table.
    Reputation,
    /// Capability adverts of other nodes.
    Adverts,
    /// Checkpoints.
    Checkpoints,
    /// This node's keys.
    Identity,
}

impl Tree {
    /// Every tree.
    pub const ALL: [Tree; 9] = [
        Tree::Blobs,
        Tree::Jobs,
        Tree::Bids,
        Tree::Results,
        Tree::Verdicts,
        Tree::Reputation,
        Tree::Adverts,
        Tree::Checkpoints,
        Tree::Identity,
    ];

    fn name(self) -> &'static str {
        match self {
            Tree::Blobs => "blobs",
            Tree::Jobs => "jobs",
            Tree::Bids => "bids",
            Tree::Results => "results",
            Tree::Verdicts => "verdicts",
            Tree::Reputation => "reputation",
            Tree::Adverts => "adverts",
            Tree::Checkpoints => "checkpoints",
            Tree::Identity => "identity",
        }
    }
}

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database engine failed (disk full, corruption, permissions).
    #[error("database error: {0}")]
    Engine(#[from] sled::Error),
    /// A stored value does not decode.
    #[error("stored value does not decode: {0}")]
    Codec(#[from] CodecError),
    /// A stored value was written by an unknown version of Cairn.
    #[error("stored value has version {found}; this build reads version {VALUE_VERSION}")]
    UnknownVersion {
        /// The version byte found.
        found: u8,
    },
    /// A blob file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A blob is larger than the per-blob limit.
    #[error("blob of {len} bytes exceeds the {max}-byte limit (max_blob_bytes)")]
    BlobTooLarge {
        /// Its length.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// The blob store is full.
    #[error(
        "blob store full: {used} of {capacity} bytes used; raise blob_store_bytes or remove blobs"
    )]
    BlobStoreFull {
        /// Bytes in use.
        used: u64,
        /// The capacity.
        capacity: u64,
    },
    /// A background flush task failed to run (the runtime is shutting down).
    #[error("background flush did not run: {0}")]
    Background(String),
}

/// A key-value store with named trees.
pub trait KvStore: Send + Sync + 'static {
    /// The value under `key`.
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// Stores `value` under `key`.
    fn put(&self, tree: Tree, key: &[u8], value: &[u8]) -> Result<(), StoreError>;
    /// Removes `key`; returns whether it was there.
    fn remove(&self, tree: Tree, key: &[u8]) -> Result<bool, StoreError>;
    /// Keys under `prefix`, in order.
    fn keys(&self, tree: Tree, prefix: &[u8]) -> Result<Vec<Vec<u8>>, StoreError>;
    /// Makes every write so far durable.
    fn flush(&self) -> Result<(), StoreError>;
}

/// sled, one tree per [`Tree`].
#[derive(Clone)]
pub struct SledStore {
    db: sled::Db,
}

impl SledStore {
    /// Opens (or creates) the database in `dir` with a page cache of `cache_bytes`.
    ///
    /// The database is locked by one process at a time. A store that was just closed (by a
    /// node shut down in this process, or a process that is exiting) releases its lock when
    /// sled's background flusher stops, so a lock conflict is retried for up to 3 s.
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<Self, StoreError> {
        let config = sled::Config::new().path(dir).cache_capacity(cache_bytes);
        let step = std::time::Duration::from_millis(50);
        let mut waited = std::time::Duration::ZERO;
        loop {
            match config.open() {
                Ok(db) => return Ok(Self { db }),
                Err(sled::Error::Io(e))
                    if e.to_string().contains("could not acquire lock")
                        && waited < std::time::Duration::from_secs(3) =>
                {
                    std::thread::sleep(step);
                    waited += step;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn tree(&self, tree: Tree) -> Result<sled::Tree, StoreError> {
        Ok(self.db.open_tree(tree.name())?)
    }
}

impl KvStore for SledStore {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.tree(tree)?.get(key)?.map(|v| v.to_vec()))
    }

    fn put(&self, tree: Tree, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.tree(tree)?.insert(key, value)?;
        Ok(())
    }

    fn remove(&self, tree: Tree, key: &[u8]) -> Result<bool, StoreError> {
        Ok(self.tree(tree)?.remove(key)?.is_some())
    }

    fn keys(&self, tree: Tree, prefix: &[u8]) -> Result<Vec<Vec<u8>>, StoreError> {
        let tree = self.tree(tree)?;
        tree.scan_prefix(prefix)
            .keys()
            .map(|k| Ok(k?.to_vec()))
            .collect()
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }
}

/// Group commit over a [`KvStore`]: each caller's writes are durable when
/// [`GroupFlush::flush`] returns, but callers that arrive while a flush is running share the
/// next one instead of each paying for their own.
pub struct GroupFlush {
    kv: Arc<dyn KvStore>,
    /// Tickets handed out; a caller takes one after its writes.
    requested: AtomicU64,
    /// Highest ticket that a finished flush covers.
    done: AtomicU64,
    /// One flush at a time.
    running: tokio::sync::Mutex<()>,
}

impl GroupFlush {
    /// Group commit for `kv`.
    pub fn new(kv: Arc<dyn KvStore>) -> Self {
        Self {
            kv,
            requested: AtomicU64::new(0),
            done: AtomicU64::new(0),
            running: tokio::sync::Mutex::new(()),
        }
    }

    /// Returns once every write this caller made before the call is durable.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let ticket = self.requested.fetch_add(1, Ordering::SeqCst) + 1;
        let _running = self.running.lock().await;
        if self.done.load(Ordering::SeqCst) >= ticket {
            return Ok(()); // a flush that started after our writes has finished
        }
        // Every ticket up to here was taken after its writes, so this flush covers them all.
        let covers = self.requested.load(Ordering::SeqCst);
        let kv = self.kv.clone();
        tokio::task::spawn_blocking(move || kv.flush())
            .await
            .map_err(|e| StoreError::Background(e.to_string()))??;
        self.done.fetch_max(covers, Ordering::SeqCst);
        Ok(())
    }
}

/// Encodes a value with its version byte.
pub fn encode_value<T: Encode>(value: &T) -> Result<Vec<u8>, StoreError> {
    let mut bytes = vec![VALUE_VERSION];
    bytes.extend(codec::encode(value)?);
    Ok(bytes)
}

/// Decodes a value written by [`encode_value`].
pub fn decode_value<T: Decode<()> + bincode::Encode>(bytes: &[u8]) -> Result<T, StoreError> {
    match bytes.split_first() {
        Some((&VALUE_VERSION, rest)) => Ok(codec::decode(rest, codec::MAX_FRAME_BYTES)?),
        Some((&found, _)) => Err(StoreError::UnknownVersion { found }),
        None => Err(StoreError::UnknownVersion { found: 0 }),
    }
}

const BLOB_SIZE: &[u8] = b"s/";
/// Whether a blob write waits for the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// Synced before the write returns: blobs a user handed in, and accepted outputs.
    Synced,
    /// Left to the page cache: copies the job path can fetch again (a provider's module,
    /// input and output). Every use checks the hash, so a copy a crash mangled is refetched.
    Cached,
}

/// Numbers temporary blob files.
static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Content-addressed blobs with a per-blob limit and a total capacity.
///
/// The bytes live in files named by their hash under the blob directory (written to a
/// temporary file, synced, then renamed, so a file under its final name is always complete);
/// the `blobs` tree holds each blob's size under `s/HASH`, written after the file, so the total
/// is known at start without reading any data. Large values are what sled handles worst, so
/// they stay out of it.
#[derive(Clone)]
pub struct BlobStore {
    kv: Arc<dyn KvStore>,
    dir: PathBuf,
    max_blob_bytes: u64,
    capacity: u64,
    used: Arc<AtomicU64>,
}

impl BlobStore {
    /// Opens the blob store with its files in `dir` and its index in `kv`. Files left by a
    /// crash between writing a blob and indexing it are indexed if their bytes match their
    /// name, and removed otherwise.
    pub fn open(
        kv: Arc<dyn KvStore>,
        dir: &Path,
        max_blob_bytes: u64,
        capacity: u64,
    ) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
        let mut store = Self {
            kv,
            dir: dir.to_owned(),
            max_blob_bytes,
            capacity,
            used: Arc::new(AtomicU64::new(0)),
        };
        store.recover()?;
        let mut used = 0u64;
        for key in store.kv.keys(Tree::Blobs, BLOB_SIZE)? {
            if let Some(v) = store.kv.get(Tree::Blobs, &key)? {
                used = used.saturating_add(decode_value::<u64>(&v)?);
            }
        }
        store.used = Arc::new(AtomicU64::new(used));
        Ok(store)
    }

    fn recover(&mut self) -> Result<(), StoreError> {
        let entries = std::fs::read_dir(&self.dir).map_err(|e| io_error(&self.dir, e))?;
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            match name.parse::<BlobHash>() {
                Ok(hash) if !self.contains(&hash)? => {
                    let bytes = std::fs::read(&path).map_err(|e| io_error(&path, e))?;
                    if BlobHash::of(&bytes) == hash {
                        self.index(&hash, bytes.len() as u64)?;
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

    fn path(&self, hash: &BlobHash) -> PathBuf {
        self.dir.join(hash.to_string())
    }

    /// Records a blob's size. Not flushed on its own: the file is durable before its index
    /// entry is written, and [`BlobStore::open`] indexes any file whose entry a crash lost, so
    /// the entry rides along with the store's next flush.
    fn index(&self, hash: &BlobHash, len: u64) -> Result<(), StoreError> {
        self.kv
            .put(Tree::Blobs, &Self::size_key(hash), &encode_value(&len)?)
    }

    /// Stores `bytes` durably under their blake3 hash and returns it.
    pub fn put(&self, bytes: &[u8]) -> Result<BlobHash, StoreError> {
        self.put_with(bytes, Durability::Synced)
    }

    /// Stores `bytes` under their blake3 hash, synced to disk or not, and returns it.
    pub fn put_with(&self, bytes: &[u8], durability: Durability) -> Result<BlobHash, StoreError> {
        let hash = BlobHash::of(bytes);
        let len = bytes.len() as u64;
        if len > self.max_blob_bytes {
            return Err(StoreError::BlobTooLarge {
                len,
                max: self.max_blob_bytes,
            });
        }
        let held = self.contains(&hash)?;
        if held {
            // A cached copy may never have reached the disk whole: a synced write checks it
            // and makes it durable, or writes it again.
            if durability == Durability::Cached || self.sync_existing(&hash)? {
                return Ok(hash);
            }
        } else {
            let used = self.used.load(Ordering::Relaxed);
            if used.saturating_add(len) > self.capacity {
                return Err(StoreError::BlobStoreFull {
                    used,
                    capacity: self.capacity,
                });
            }
        }
        let path = self.path(&hash);
        // Unique per write, so two concurrent writes of one blob never share a file.
        let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = self
            .dir
            .join(format!("{hash}.{}.{n}.tmp", std::process::id()));
        let written = match durability {
            Durability::Synced => write_synced(&tmp, bytes),
            Durability::Cached => std::fs::write(&tmp, bytes),
        };
        written.map_err(|e| io_error(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| io_error(&path, e))?;
        if durability == Durability::Synced {
            sync_dir(&self.dir).map_err(|e| io_error(&self.dir, e))?;
        }
        self.index(&hash, len)?;
        if !held {
            self.used.fetch_add(len, Ordering::Relaxed);
        }
        Ok(hash)
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

    /// The blob's bytes, only if they still match their hash. A copy that does not (rot, or a
    /// cached write a crash cut short) is dropped, so the next write of the blob replaces it.
    pub fn get_verified(&self, hash: &BlobHash) -> Result<Option<Vec<u8>>, StoreError> {
        match self.get(hash)? {
            Some(bytes) if BlobHash::of(&bytes) == *hash => Ok(Some(bytes)),
            Some(_) => {
                self.drop_blob(hash)?;
                Ok(None)
            }
            None => Ok(None),
        }
    }

    fn drop_blob(&self, hash: &BlobHash) -> Result<(), StoreError> {
        if let Some(v) = self.kv.get(Tree::Blobs, &Self::size_key(hash))? {
            let len = decode_value::<u64>(&v)?;
            self.kv.remove(Tree::Blobs, &Self::size_key(hash))?;
            self.used
                .fetch_sub(len.min(self.used_bytes()), Ordering::Relaxed);
        }
        let path = self.path(hash);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_error(&path, e)),
            _ => Ok(()),
        }
    }

    /// Where the blob's file is (for inspection; it may be absent).
    pub fn file_of(&self, hash: &BlobHash) -> PathBuf {
        self.path(hash)
    }

    /// Whether the blob is held.
    pub fn contains(&self, hash: &BlobHash) -> Result<bool, StoreError> {
        Ok(self.kv.get(Tree::Blobs, &Self::size_key(hash))?.is_some())
    }

    /// Hashes of every blob held.
    pub fn list(&self) -> Result<Vec<BlobHash>, StoreError> {
        let keys = self.kv.keys(Tree::Blobs, BLOB_SIZE)?;
        let hashes = keys
            .iter()
            .filter_map(|k| k.get(BLOB_SIZE.len()..)?.try_into().ok());
        Ok(hashes.map(BlobHash).collect())
    }

    /// Bytes in use.
    pub fn used_bytes(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
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
        let hash = blobs.put_with(b"cached bytes", Durability::Cached).unwrap();
        std::fs::write(blobs.file_of(&hash), b"torn").unwrap();
        // A synced write of the same blob notices and writes it again.
        blobs.put(b"cached bytes").unwrap();
        assert_eq!(blobs.get_verified(&hash).unwrap().unwrap(), b"cached bytes");
        // A reader that finds a bad copy drops it, so a cached write can replace it.
        std::fs::write(blobs.file_of(&hash), b"torn").unwrap();
        assert_eq!(blobs.get_verified(&hash).unwrap(), None);
        assert!(!blobs.contains(&hash).unwrap());
        assert_eq!(blobs.used_bytes(), 0);
        blobs.put_with(b"cached bytes", Durability::Cached).unwrap();
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
    fn values_carry_a_version() {
        let bytes = encode_value(&7u64).unwrap();
        assert_eq!(decode_value::<u64>(&bytes).unwrap(), 7);
        let mut future = bytes;
        future[0] = 9;
        assert!(matches!(
            decode_value::<u64>(&future),
            Err(StoreError::UnknownVersion { found: 9 })
        ));
    }
}
