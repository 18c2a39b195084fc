//! The node's ed25519 identity: created on first start, read back on every later one.

use cairn_protocol::NodeId;
use libp2p::identity::ed25519;

use crate::error::NodeError;
use crate::store::{self, KvStore, SledStore, Tree};

const IDENTITY_KEY: &[u8] = b"ed25519";

/// Loads the node's key from the store, creating it on first start.
pub fn load_or_create_identity(kv: &dyn KvStore) -> Result<ed25519::Keypair, NodeError> {
    load_or_create_identity_from(kv, None)
}

/// The node id a fresh data dir gets from identity seed `seed` (see
/// [`NodeOptions::identity_seed`]), known before the node starts (a simulation's first
/// checkpoint committee names it).
pub fn node_id_from_seed(mut seed: [u8; 32]) -> Result<NodeId, NodeError> {
    let secret = ed25519::SecretKey::try_from_bytes(&mut seed)
        .map_err(|e| NodeError::Identity(e.to_string()))?;
    Ok(NodeId::from_keypair(&ed25519::Keypair::from(secret)))
}

/// [`load_or_create_identity`], creating the key from `seed` (an ed25519 secret key) when
/// the store has none and a seed is given.
pub fn load_or_create_identity_from(
    kv: &dyn KvStore,
    seed: Option<[u8; 32]>,
) -> Result<ed25519::Keypair, NodeError> {
    if let Some(bytes) = kv.get(Tree::Identity, IDENTITY_KEY)? {
        let mut raw: Vec<u8> = store::decode_value(&bytes)?;
        return ed25519::Keypair::try_from_bytes(&mut raw)
            .map_err(|e| NodeError::Identity(e.to_string()));
    }
    let keypair = match seed {
        Some(mut seed) => ed25519::SecretKey::try_from_bytes(&mut seed)
            .map(ed25519::Keypair::from)
            .map_err(|e| NodeError::Identity(e.to_string()))?,
        None => ed25519::Keypair::generate(),
    };
    kv.put(
        Tree::Identity,
        IDENTITY_KEY,
        &store::encode_value(&keypair.to_bytes().to_vec())?,
    )?;
    kv.flush()?;
    Ok(keypair)
}

/// Creates (or reads) the identity of a node that will run in `data_dir`, before it starts,
/// so that a network spec's first committee can name it (simulations and tests).
pub fn prepare_identity(data_dir: &std::path::Path) -> Result<NodeId, NodeError> {
    let kv = SledStore::open(&data_dir.join("db"), 1 << 20)?;
    let keypair = load_or_create_identity(&kv)?;
    Ok(NodeId::from_keypair(&keypair))
}
