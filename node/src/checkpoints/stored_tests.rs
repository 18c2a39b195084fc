//! The stored chain across crashes: adoption is one atomic batch, and what a node reads back
//! at start is checked again, with what does not extend the chain dropped and removed.

use std::collections::BTreeMap;
use std::sync::Mutex;

use cairn_protocol::checkpoint::{self, CheckpointInput, Genesis, Threshold};
use cairn_protocol::proof::SignedCheckpoint;
use cairn_protocol::{CheckpointVote, Envelope, NodeId, Timestamp, VerdictId};
use libp2p::identity::ed25519;

use super::catch_up::store_adopted;
use super::key;
use super::restore::stored_chain;
use crate::store::{self, KvStore, StoreError, Tree, Write};

/// A store in memory that crashes (refuses every write) once `writes_left` writes are done;
/// a batch is one write.
struct CrashingStore {
    map: Mutex<BTreeMap<Vec<u8>, Vec<u8>>>,
    writes_left: Mutex<usize>,
}

impl CrashingStore {
    fn new() -> Self {
        Self {
            map: Mutex::new(BTreeMap::new()),
            writes_left: Mutex::new(usize::MAX),
        }
    }

    fn crash_after(&self, writes: usize) {
        *self.writes_left.lock().unwrap() = writes;
    }

    fn write(&self) -> Result<(), StoreError> {
        let mut left = self.writes_left.lock().unwrap();
        if *left == 0 {
            let source = std::io::Error::other("crashed");
            let path = "memory".into();
            return Err(StoreError::Io { path, source });
        }
        *left -= 1;
        Ok(())
    }
}

impl KvStore for CrashingStore {
    fn get(&self, _: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.map.lock().unwrap().get(key).cloned())
    }
    fn put(&self, _: Tree, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.write()?;
        self.map
            .lock()
            .unwrap()
            .insert(key.to_vec(), value.to_vec());
        Ok(())
    }
    fn remove(&self, _: Tree, key: &[u8]) -> Result<bool, StoreError> {
        self.write()?;
        Ok(self.map.lock().unwrap().remove(key).is_some())
    }
    fn keys(&self, _: Tree, prefix: &[u8]) -> Result<Vec<Vec<u8>>, StoreError> {
        let map = self.map.lock().unwrap();
        Ok(map
            .keys()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect())
    }
    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }
    fn apply(&self, _: Tree, writes: Vec<Write>) -> Result<(), StoreError> {
        self.write()?;
        let mut map = self.map.lock().unwrap();
        for write in writes {
            match write {
                Write::Put { key, value } => map.insert(key, value),
                Write::Remove { key } => map.remove(&key),
            };
        }
        Ok(())
    }
}

fn keys() -> Vec<ed25519::Keypair> {
    (1..=3u8)
        .map(|seed| {
            let mut secret = [seed; 32];
            ed25519::Keypair::from(ed25519::SecretKey::try_from_bytes(&mut secret).unwrap())
        })
        .collect()
}

fn genesis(keys: &[ed25519::Keypair]) -> Genesis {
    let mut committee: Vec<NodeId> = keys.iter().map(NodeId::from_keypair).collect();
    committee.sort();
    Genesis {
        network: "stored-chain".into(),
        committee,
        committee_size: 3,
        threshold: Threshold {
            numerator: 2,
            denominator: 3,
        },
        credits: None,
    }
}

/// `chain` extended by one checkpoint of `branch`, signed by the whole committee.
fn extend(
    genesis: &Genesis,
    keys: &[ed25519::Keypair],
    chain: &mut Vec<SignedCheckpoint>,
    branch: u8,
) {
    let epoch = chain.len() as u64;
    let previous = match chain.last() {
        Some(last) => last.checkpoint.hash().unwrap(),
        None => genesis.hash().unwrap(),
    };
    let input = CheckpointInput {
        network: &genesis.network,
        epoch,
        previous,
        committee: &genesis.committee,
        committee_size: genesis.committee.len(),
        verdicts: &[VerdictId::of(&[branch, epoch as u8])],
        proposer: genesis.committee[0],
        now: Timestamp(1_000 * epoch + u64::from(branch)),
    };
    let c = checkpoint::build(&input, &[]).unwrap();
    let network = genesis.network_id().unwrap();
    let votes = keys
        .iter()
        .map(|k| {
            let vote = CheckpointVote {
                checkpoint: c.hash().unwrap(),
                epoch,
                voter: NodeId::from_keypair(k),
            };
            Envelope::seal(&vote, k, &network).unwrap()
        })
        .collect();
    chain.push(SignedCheckpoint {
        checkpoint: c,
        votes,
    });
}

/// A chain of `len` checkpoints of `branch`, from `base`.
fn chain(
    genesis: &Genesis,
    base: &[SignedCheckpoint],
    len: usize,
    branch: u8,
) -> Vec<SignedCheckpoint> {
    let (keys, mut chain) = (keys(), base.to_vec());
    while chain.len() < len {
        extend(genesis, &keys, &mut chain, branch);
    }
    chain
}

#[test]
fn a_crash_at_any_point_of_an_adoption_leaves_the_old_chain_or_the_new() {
    let genesis = genesis(&keys());
    let old = chain(&genesis, &[], 4, 0);
    let new = chain(&genesis, &old[..1], 5, 1);
    // The node switches to the other branch from epoch 1 and crashes after `writes` writes
    // to the store (3 removes for each of the 3 epochs replaced, 4 puts: at most 13).
    for writes in 0..16 {
        let kv = CrashingStore::new();
        store_adopted(&kv, 0..0, &old, None).unwrap();
        kv.crash_after(writes);
        let _ = store_adopted(&kv, 1..4, &new[1..], None);
        let restored = stored_chain(&kv, Some(&genesis)).unwrap();
        assert!(
            restored == old || restored == new,
            "a crash after {writes} writes left {} checkpoints, neither chain",
            restored.len()
        );
    }
}

#[test]
fn an_adoption_replaces_the_stored_branch() {
    let genesis = genesis(&keys());
    let old = chain(&genesis, &[], 4, 0);
    let new = chain(&genesis, &old[..1], 3, 1);
    let kv = CrashingStore::new();
    store_adopted(&kv, 0..0, &old, None).unwrap();
    store_adopted(&kv, 1..4, &new[1..], None).unwrap();
    assert!(
        stored_chain(&kv, Some(&genesis)).unwrap() == new,
        "the shorter branch, no leftovers"
    );
}

#[test]
fn an_undecodable_stored_checkpoint_is_dropped_with_what_follows() {
    let genesis = genesis(&keys());
    let stored = chain(&genesis, &[], 4, 0);
    let kv = CrashingStore::new();
    store_adopted(&kv, 0..0, &stored, None).unwrap();
    kv.put(Tree::Checkpoints, &key(b'c', 2), b"\x01torn write")
        .unwrap();
    assert!(stored_chain(&kv, Some(&genesis)).unwrap() == stored[..2]);
    // What was dropped is gone from the store too.
    assert_eq!(kv.keys(Tree::Checkpoints, b"c").unwrap().len(), 2);
}

#[test]
fn a_tampered_stored_checkpoint_is_dropped_with_what_follows() {
    let genesis = genesis(&keys());
    let stored = chain(&genesis, &[], 4, 0);
    let kv = CrashingStore::new();
    store_adopted(&kv, 0..0, &stored, None).unwrap();
    let mut tampered = stored[1].clone();
    tampered.checkpoint.proposed_at = Timestamp(u64::MAX);
    kv.put(
        Tree::Checkpoints,
        &key(b'c', 1),
        &store::encode_value(&tampered).unwrap(),
    )
    .unwrap();
    assert!(stored_chain(&kv, Some(&genesis)).unwrap() == stored[..1]);
    assert_eq!(kv.keys(Tree::Checkpoints, b"c").unwrap().len(), 1);
}
