//! Persistent state behind a small trait, with sled as the engine.
//!
//! Values are versioned: one version byte, then the bincode encoding. Every write that must
//! survive a crash (identity, blobs, adverts) is flushed before the call returns, so a node
//! killed with SIGKILL restarts with it intact.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bincode::{Decode, Encode};
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
    /// Awards this node took as a provider, with its signed report once it has one, kept
    /// until the job's deadline (see `market/served.rs`).
    Served,
}

impl Tree {
    /// Every tree.
    pub const ALL: [Tree; 10] = [
        Tree::Blobs,
        Tree::Jobs,
        Tree::Bids,
        Tree::Results,
        Tree::Verdicts,
        Tree::Reputation,
        Tree::Adverts,
        Tree::Checkpoints,
        Tree::Identity,
        Tree::Served,
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
            Tree::Served => "served",
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
    /// A requester's job brought a blob larger than its whole quota of cached blobs.
    #[error(
        "blob of {len} bytes exceeds the {quota}-byte share of the cache one requester may use \
         (blob_quota_percent of blob_store_bytes)"
    )]
    RequesterQuota {
        /// The requester.
        owner: cairn_protocol::NodeId,
        /// The blob's length.
        len: u64,
        /// The quota.
        quota: u64,
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
    /// Applies `writes` to `tree` atomically, in order: after a crash either all of them are
    /// in the store or none is (durable once [`KvStore::flush`] returns).
    fn apply(&self, tree: Tree, writes: Vec<Write>) -> Result<(), StoreError>;
}

/// One write of a [`KvStore::apply`] batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Write {
    /// Stores `value` under `key`.
    Put {
        /// The key.
        key: Vec<u8>,
        /// The value.
        value: Vec<u8>,
    },
    /// Removes `key`.
    Remove {
        /// The key.
        key: Vec<u8>,
    },
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

    fn apply(&self, tree: Tree, writes: Vec<Write>) -> Result<(), StoreError> {
        // A sled batch is atomic within one tree: on recovery all of it is there or none.
        let mut batch = sled::Batch::default();
        for write in writes {
            match write {
                Write::Put { key, value } => batch.insert(key, value),
                Write::Remove { key } => batch.remove(key),
            }
        }
        self.tree(tree)?.apply_batch(batch)?;
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

mod blob_index;
mod blobs;

pub use blob_index::Keep;
pub use blobs::BlobStore;

#[cfg(test)]
mod tests {
    use super::*;

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
