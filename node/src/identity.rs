//! The node's ed25519 identity: created on first start, read back on every later one.
//!
//! The key lives in its own file, `identity.key` in the data dir (hex of the 64-byte
//! keypair, mode 0600, written to a temporary file, synced and renamed, so a crash leaves the
//! old key or the new one). A key file others can read is refused at start, with the fix in
//! the message, as ssh refuses such a private key. Nodes of earlier versions kept it in the sled store; the first
//! start of this version moves it to the file (written and synced before the store's copy is
//! removed), so the identity survives the upgrade.

use std::path::{Path, PathBuf};

use cairn_protocol::NodeId;
use libp2p::identity::ed25519;
use tracing::info;

use crate::error::NodeError;
use crate::files;
use crate::store::{self, KvStore, SledStore, Tree};

/// File in the data dir holding the identity key.
pub const IDENTITY_FILE: &str = "identity.key";

/// Where earlier versions kept the key in the store.
const LEGACY_KEY: &[u8] = b"ed25519";

/// The node id a fresh data dir gets from identity seed `seed` (see
/// [`crate::NodeOptions::identity_seed`]), known before the node starts (a simulation's
/// first checkpoint committee names it).
pub fn node_id_from_seed(mut seed: [u8; 32]) -> Result<NodeId, NodeError> {
    let secret = ed25519::SecretKey::try_from_bytes(&mut seed)
        .map_err(|e| NodeError::Identity(e.to_string()))?;
    Ok(NodeId::from_keypair(&ed25519::Keypair::from(secret)))
}

/// The key of the node whose data dir is `data_dir` and whose store is `kv`: read from
/// [`IDENTITY_FILE`], else moved there from the store (earlier versions), else created, from
/// `seed` (an ed25519 secret key) when given, at random otherwise.
pub fn load_or_create(
    data_dir: &Path,
    kv: &dyn KvStore,
    seed: Option<[u8; 32]>,
) -> Result<ed25519::Keypair, NodeError> {
    let path = data_dir.join(IDENTITY_FILE);
    if let Some(keypair) = read(&path)? {
        return Ok(keypair);
    }
    if let Some(bytes) = kv.get(Tree::Identity, LEGACY_KEY)? {
        let mut raw: Vec<u8> = store::decode_value(&bytes)?;
        let keypair = ed25519::Keypair::try_from_bytes(&mut raw)
            .map_err(|e| NodeError::Identity(e.to_string()))?;
        write(&path, &keypair)?;
        kv.remove(Tree::Identity, LEGACY_KEY)?;
        kv.flush()?;
        info!(target: "cairn::node", file = %path.display(), "identity key moved out of the store into its own file");
        return Ok(keypair);
    }
    let keypair = match seed {
        Some(mut seed) => ed25519::SecretKey::try_from_bytes(&mut seed)
            .map(ed25519::Keypair::from)
            .map_err(|e| NodeError::Identity(e.to_string()))?,
        None => ed25519::Keypair::generate(),
    };
    write(&path, &keypair)?;
    Ok(keypair)
}

/// Creates (or reads) the identity of a node that will run in `data_dir`, before it starts,
/// so that a network spec's first committee can name it (simulations and tests).
pub fn prepare_identity(data_dir: &Path) -> Result<NodeId, NodeError> {
    let io = |source| NodeError::Io {
        path: data_dir.to_owned(),
        source,
    };
    files::create_private_dir(data_dir).map_err(io)?;
    let kv = SledStore::open(&data_dir.join("db"), 1 << 20)?;
    let keypair = load_or_create(data_dir, &kv, None)?;
    Ok(NodeId::from_keypair(&keypair))
}

/// The key in `path`, `None` if there is no such file. A file others may read is refused,
/// with the fix in the message (as ssh does with a private key).
fn read(path: &Path) -> Result<Option<ed25519::Keypair>, NodeError> {
    let io = |source| NodeError::Io {
        path: path.to_owned(),
        source,
    };
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(e)),
    };
    if let Some(mode) = files::readable_by_others(path).map_err(io)? {
        return Err(NodeError::Identity(format!(
            "{} is readable by others (mode {mode:o}): the key may be compromised; if it is not, \
             run `chmod 600 {}` and start again",
            path.display(),
            path.display()
        )));
    }
    let mut raw = hex::decode(text.trim())
        .map_err(|e| NodeError::Identity(format!("{}: not hex: {e}", path.display())))?;
    ed25519::Keypair::try_from_bytes(&mut raw)
        .map(Some)
        .map_err(|e| NodeError::Identity(format!("{}: {e}", path.display())))
}

fn write(path: &Path, keypair: &ed25519::Keypair) -> Result<(), NodeError> {
    let io = |path: PathBuf| move |source| NodeError::Io { path, source };
    files::write_private_durable(path, hex::encode(keypair.to_bytes()).as_bytes())
        .map_err(io(path.to_owned()))
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::sync::Arc;

    use super::*;
    use crate::store::KvStore;

    fn store(dir: &Path) -> Arc<dyn KvStore> {
        Arc::new(SledStore::open(&dir.join("db"), 1 << 20).unwrap())
    }

    #[test]
    fn the_key_lives_in_an_owner_only_file_and_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let kv = store(dir.path());
        let first = load_or_create(dir.path(), kv.as_ref(), None).unwrap();
        let file = dir.path().join(IDENTITY_FILE);
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(kv.get(Tree::Identity, LEGACY_KEY).unwrap().is_none());
        let again = load_or_create(dir.path(), kv.as_ref(), Some([5; 32])).unwrap();
        assert_eq!(first.public(), again.public(), "a stored key always wins");
        // A key file others could read is refused, with the fix in the message.
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = load_or_create(dir.path(), kv.as_ref(), None).unwrap_err();
        assert!(
            err.to_string().contains("readable by others (mode 644)")
                && err.to_string().contains("chmod 600"),
            "{err}"
        );
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let fixed = load_or_create(dir.path(), kv.as_ref(), None).unwrap();
        assert_eq!(fixed.public(), first.public());
    }

    #[test]
    fn a_key_kept_in_the_store_by_an_earlier_version_moves_to_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let kv = store(dir.path());
        let old = ed25519::Keypair::generate();
        let bytes = store::encode_value(&old.to_bytes().to_vec()).unwrap();
        kv.put(Tree::Identity, LEGACY_KEY, &bytes).unwrap();
        let moved = load_or_create(dir.path(), kv.as_ref(), None).unwrap();
        assert_eq!(
            moved.public(),
            old.public(),
            "the identity survives the upgrade"
        );
        assert!(dir.path().join(IDENTITY_FILE).exists());
        assert!(kv.get(Tree::Identity, LEGACY_KEY).unwrap().is_none());
        let again = load_or_create(dir.path(), kv.as_ref(), None).unwrap();
        assert_eq!(again.public(), old.public());
    }

    #[test]
    fn a_corrupt_key_file_is_a_clear_error_not_a_new_identity() {
        let dir = tempfile::tempdir().unwrap();
        let kv = store(dir.path());
        files::write_private(&dir.path().join(IDENTITY_FILE), b"not a key").unwrap();
        let err = load_or_create(dir.path(), kv.as_ref(), None).unwrap_err();
        assert!(err.to_string().contains(IDENTITY_FILE), "{err}");
    }
}
