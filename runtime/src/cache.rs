//! The compiled-module cache: in memory by module hash, plus on-disk artifacts that this host
//! compiled itself, authenticated with a key that never leaves the host.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use cairn_protocol::BlobHash;
use wasmtime::{Engine, Module};

use crate::error::SandboxError;

/// Key-derivation context of the artifact authentication key.
const ARTIFACT_CONTEXT: &str = "cairn 2026 runtime artifact mac v1";
/// File holding the host's secret artifact key.
const KEY_FILE: &str = "host.key";

/// Compiled modules kept in memory, oldest evicted first.
pub(crate) struct MemoryCache<V> {
    entries: Mutex<(HashMap<BlobHash, V>, VecDeque<BlobHash>)>,
    capacity: usize,
}

impl<V: Clone> MemoryCache<V> {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            entries: Mutex::new((HashMap::new(), VecDeque::new())),
            capacity,
        }
    }

    pub(crate) fn get(&self, hash: &BlobHash) -> Option<V> {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .0
            .get(hash)
            .cloned()
    }

    pub(crate) fn insert(&self, hash: BlobHash, value: V) {
        if self.capacity == 0 {
            return;
        }
        let mut guard = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let (map, order) = &mut *guard;
        if map.insert(hash, value).is_none() {
            order.push_back(hash);
        }
        while order.len() > self.capacity {
            if let Some(old) = order.pop_front() {
                map.remove(&old);
            }
        }
    }

    pub(crate) fn clear(&self) {
        let mut guard = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        guard.0.clear();
        guard.1.clear();
    }
}

/// Artifacts on disk: `<module hash>-<runtime fingerprint>.cwasm`, each prefixed by a keyed
/// blake3 MAC over the fingerprint, the module hash and the artifact.
pub(crate) struct DiskCache {
    dir: PathBuf,
    key: [u8; 32],
    fingerprint: [u8; 32],
}

impl DiskCache {
    /// Opens (creating if needed) the cache folder and its host key.
    pub(crate) fn open(dir: &Path, fingerprint: [u8; 32]) -> Result<Self, SandboxError> {
        let err = |source| SandboxError::CacheDir {
            path: dir.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(err)?;
        let key = load_or_create_key(&dir.join(KEY_FILE)).map_err(err)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            key,
            fingerprint,
        })
    }

    fn path(&self, hash: &BlobHash) -> PathBuf {
        let fp = hex::encode(&self.fingerprint[..8]);
        self.dir.join(format!("{hash}-{fp}.cwasm"))
    }

    fn mac(&self, hash: &BlobHash, artifact: &[u8]) -> [u8; 32] {
        let mut h = blake3::Hasher::new_keyed(&self.key);
        h.update(&self.fingerprint)
            .update(hash.as_bytes())
            .update(artifact);
        *h.finalize().as_bytes()
    }

    /// Loads the artifact for `hash`, if present and authentic.
    pub(crate) fn load(&self, engine: &Engine, hash: &BlobHash) -> Option<Module> {
        let bytes = std::fs::read(self.path(hash)).ok()?;
        let (mac, artifact) = bytes.split_at_checked(32)?;
        if mac != self.mac(hash, artifact) {
            tracing::warn!(target: "cairn::runtime", %hash, "cached artifact failed its check");
            return None;
        }
        deserialize_own_artifact(engine, artifact)
    }

    /// Stores `module`'s artifact; failures only cost a later recompile, so they are logged.
    pub(crate) fn store(&self, hash: &BlobHash, module: &Module) {
        let result = module
            .serialize()
            .map_err(std::io::Error::other)
            .and_then(|artifact| {
                let mut bytes = self.mac(hash, &artifact).to_vec();
                bytes.extend_from_slice(&artifact);
                let path = self.path(hash);
                let tmp = path.with_extension(format!("tmp{}", std::process::id()));
                std::fs::write(&tmp, bytes)?;
                std::fs::rename(&tmp, &path)
            });
        if let Err(error) = result {
            tracing::warn!(target: "cairn::runtime", %hash, %error, "could not cache artifact");
        }
    }
}

/// Deserialises an artifact that [`DiskCache::load`] has authenticated.
#[allow(unsafe_code)]
fn deserialize_own_artifact(engine: &Engine, artifact: &[u8]) -> Option<Module> {
    // SAFETY: `Module::deserialize` trusts its input to be code wasmtime produced. Only bytes
    // that carry a valid MAC under this host's secret key (kept in the cache folder, never
    // sent anywhere) reach this point, and the MAC covers the runtime fingerprint, so these
    // are artifacts this host compiled itself with this engine configuration; wasmtime also
    // rejects artifacts from another version or configuration. Bytes from peers never come
    // here: they are always compiled from wasm.
    unsafe { Module::deserialize(engine, artifact) }.ok()
}

/// Reads the host's artifact key, or creates one from the OS's randomness.
fn load_or_create_key(path: &Path) -> std::io::Result<[u8; 32]> {
    if let Ok(bytes) = std::fs::read(path)
        && let Ok(key) = <[u8; 32]>::try_from(bytes.as_slice())
    {
        return Ok(key);
    }
    let key = fresh_key();
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, key)?;
    restrict_permissions(&tmp)?;
    std::fs::rename(&tmp, path)?;
    Ok(key)
}

/// 32 secret bytes: std's `RandomState` is seeded from the operating system's randomness;
/// several draws, the time and the process id are hashed together.
fn fresh_key() -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key(ARTIFACT_CONTEXT);
    for _ in 0..8 {
        let mut s = std::collections::hash_map::RandomState::new().build_hasher();
        s.write_u64(0);
        h.update(&s.finish().to_le_bytes());
    }
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    h.update(&now.map(|d| d.as_nanos()).unwrap_or_default().to_le_bytes());
    h.update(&std::process::id().to_le_bytes());
    *h.finalize().as_bytes()
}

#[cfg(unix)]
fn restrict_permissions(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

#[cfg(not(unix))]
fn restrict_permissions(_: &Path) -> std::io::Result<()> {
    Ok(())
}
