//! Merkle proofs verify for every leaf and fail for any changed leaf, position or root.

use cairn_protocol::NodeId;
use cairn_protocol::merkle::{MerkleError, MerkleProof, MerkleTree, ReputationLeaf};
use proptest::prelude::*;

fn leaves(n: usize) -> Vec<ReputationLeaf> {
    (0..n)
        .map(|i| ReputationLeaf {
            peer: NodeId(*blake3::hash(&i.to_le_bytes()).as_bytes()),
            score: i as i64 - 3,
            evidence_count: i as u64 * 2,
            balance: i as u64 * 1_000,
        })
        .map(|l| (l.peer, l))
        .collect::<std::collections::BTreeMap<_, _>>()
        .into_values()
        .collect()
}

#[test]
fn every_leaf_proves_and_every_change_fails() {
    for n in 1..=33 {
        let leaves = leaves(n);
        let tree = MerkleTree::from_reputation(&leaves).unwrap();
        let root = tree.root();
        for (i, leaf) in leaves.iter().enumerate() {
            let proof = tree.proof(i).unwrap();
            assert!(proof.verifies(leaf.hash(), &root), "n={n} i={i}");

            let changed = ReputationLeaf {
                score: leaf.score + 1,
                ..*leaf
            };
            assert!(
                !proof.verifies(changed.hash(), &root),
                "changed score n={n} i={i}"
            );
            let more = ReputationLeaf {
                evidence_count: leaf.evidence_count + 1,
                ..*leaf
            };
            assert!(
                !proof.verifies(more.hash(), &root),
                "changed count n={n} i={i}"
            );
            let richer = ReputationLeaf {
                balance: leaf.balance + 1,
                ..*leaf
            };
            assert!(
                !proof.verifies(richer.hash(), &root),
                "changed balance n={n} i={i}"
            );

            for other in 0..n as u64 {
                if other != i as u64 {
                    let moved = MerkleProof {
                        index: other,
                        ..proof.clone()
                    };
                    assert!(
                        !moved.verifies(leaf.hash(), &root),
                        "moved {i}->{other} n={n}"
                    );
                }
            }
            let mut other_root = root;
            other_root[0] ^= 1;
            assert!(!proof.verifies(leaf.hash(), &other_root));

            let mut longer = proof.clone();
            longer.siblings.push([0; 32]);
            assert!(!longer.verifies(leaf.hash(), &root), "extra sibling n={n}");
            let resized = MerkleProof {
                leaf_count: proof.leaf_count + 1,
                ..proof.clone()
            };
            assert!(!resized.verifies(leaf.hash(), &root), "resized n={n}");
        }
        assert!(tree.proof(n).is_none());
    }
}

#[test]
fn a_leaf_hash_is_not_a_node_hash() {
    // Two leaves' node hash presented as a single leaf of a one-leaf tree must not verify
    // against the two-leaf root.
    let leaves = leaves(2);
    let tree = MerkleTree::from_reputation(&leaves).unwrap();
    let fake = MerkleProof {
        index: 0,
        leaf_count: 1,
        siblings: vec![],
    };
    assert!(!fake.verifies(leaves[0].hash(), &tree.root()));
}

#[test]
fn unsorted_or_repeated_leaves_are_refused() {
    let mut l = leaves(4);
    l.swap(1, 2);
    assert_eq!(
        MerkleTree::from_reputation(&l).unwrap_err(),
        MerkleError::Unsorted { index: 2 }
    );
    let mut l = leaves(3);
    l[2].peer = l[1].peer;
    assert!(MerkleTree::from_reputation(&l).is_err());
}

#[test]
fn empty_tree_has_a_fixed_root_distinct_from_any_leaf() {
    let empty = MerkleTree::from_reputation(&[]).unwrap();
    assert_eq!(empty.root(), MerkleTree::from_hashes(vec![]).root());
    assert_ne!(
        empty.root(),
        MerkleTree::from_reputation(&leaves(1)).unwrap().root()
    );
    assert!(empty.proof(0).is_none());
}

proptest! {
    #[test]
    fn proofs_verify_for_random_trees(n in 1usize..200, pick in any::<prop::sample::Index>()) {
        let leaves = leaves(n);
        let tree = MerkleTree::from_reputation(&leaves).unwrap();
        let i = pick.index(n);
        let proof = tree.proof(i).unwrap();
        prop_assert!(proof.verifies(leaves[i].hash(), &tree.root()));
        let j = (i + 1) % n;
        if j != i {
            prop_assert!(!proof.verifies(leaves[j].hash(), &tree.root()));
        }
    }
}
