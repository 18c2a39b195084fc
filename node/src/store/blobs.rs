//! The blob store: content-addressed files beside the database, indexed in its `blobs` tree.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use cairn_protocol::BlobHash;

use super::{KvStore, StoreError, Tree, decode_value, encode_value};

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

    /// The blob's size as indexed, if it is held.
    pub fn size_of(&self, hash: &BlobHash) -> Result<Option<u64>, StoreError> {
        match self.kv.get(Tree::Blobs, &Self::size_key(hash))? {
            Some(v) => Ok(Some(decode_value::<u64>(&v)?)),
            None => Ok(None),
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
    use crate::store::SledStore;

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
}
