//! The stored tree against the pure one: proofs from `tree` verify with `merkle` at every
//! size, whatever the batch splits; the reference vectors come out of the store; and the
//! tamper cases at the tree level (2: a flipped stored leaf hash, 4: a corrupted cached
//! interior node, 12: equivocation between replicas) are found, at the first bad index.

use proptest::prelude::*;

use super::*;
use crate::audit::merkle::{verify_consistency, verify_inclusion};
use crate::audit::rfc6962_vectors::{
    CONSISTENCY_PROOFS, INCLUSION_PROOFS, ROOTS, hash, hashes, leaf_inputs,
};
use crate::state::InMemoryState;

/// A store holding `records` as events 1.., appended to the tree in batches of `splits`
/// (cycled), each batch one write set, as apply writes them.
fn store(records: &[Vec<u8>], splits: &[usize]) -> InMemoryState {
    let mut state = InMemoryState::new();
    let mut size = 0usize;
    let mut batch = 0usize;
    while size < records.len() {
        let take = splits
            .get(batch % splits.len().max(1))
            .copied()
            .unwrap_or(1)
            .max(1);
        let end = (size + take).min(records.len());
        let mut writes = WriteSet::new();
        let mut refs = Vec::new();
        for (offset, record) in records[size..end].iter().enumerate() {
            let seq = (size + offset + 1) as u64;
            writes.put(keys::event(seq), record.clone());
            refs.push(record.as_slice());
        }
        writes.put(keys::LAST_SEQ.to_vec(), (end as u64).to_be_bytes().to_vec());
        let after = append(&state, &mut writes, size as u64, &refs).expect("append");
        assert_eq!(after, end as u64);
        state.apply_writes(&writes);
        size = end;
        batch += 1;
    }
    state
}

fn records(count: usize) -> Vec<Vec<u8>> {
    (0..count)
        .map(|i| format!("event record {i}").into_bytes())
        .collect()
}

fn leaves(records: &[Vec<u8>]) -> Vec<Hash> {
    records.iter().map(|r| merkle::leaf_hash(r)).collect()
}

fn put(state: &mut InMemoryState, key: Vec<u8>, value: Option<Vec<u8>>) {
    let mut writes = WriteSet::new();
    match value {
        Some(value) => writes.put(key, value),
        None => writes.delete(key),
    }
    state.apply_writes(&writes);
}

fn stored(state: &InMemoryState, level: u8, index: u64) -> Hash {
    node(state, level, index).expect("stored node")
}

fn verify_all(state: &dyn StateRead, to_size: u64) -> Result<CompactRange, TreeFault> {
    verify_leaves(state, CompactRange::new(), to_size, u64::MAX)
}

/// Checks every root, compact range, inclusion proof and consistency proof of a tree of
/// `records.len()` leaves against `merkle`; `pairs` picks the proofs (all when `None`).
fn check_tree(state: &InMemoryState, records: &[Vec<u8>], pairs: Option<&[(u64, u64)]>) {
    let leaves = leaves(records);
    let n = leaves.len() as u64;
    assert_eq!(size(state).expect("size"), n);
    let roots: Vec<Hash> = (0..=n)
        .map(|s| merkle::root_of(&leaves[..s as usize]))
        .collect();
    for s in 0..=n {
        assert_eq!(
            root(state, s).expect("root"),
            roots[s as usize],
            "root({s})"
        );
        let range = compact_range(state, s).expect("compact range");
        assert_eq!(range.root(), roots[s as usize], "compact range root({s})");
    }
    let all: Vec<(u64, u64)>;
    let pairs = match pairs {
        Some(pairs) => pairs,
        None => {
            all = (0..=n).flat_map(|b| (0..=b).map(move |a| (a, b))).collect();
            &all
        }
    };
    for &(a, b) in pairs {
        if a < b {
            let proof = inclusion_proof(state, a, b).expect("inclusion proof");
            let verified = verify_inclusion(a, b, &leaves[a as usize], &proof, &roots[b as usize]);
            assert_eq!(verified, Ok(()), "inclusion of {a} in {b}");
        }
        let proof = consistency_proof(state, a, b).expect("consistency proof");
        let verified = verify_consistency(a, b, &roots[a as usize], &roots[b as usize], &proof);
        assert_eq!(verified, Ok(()), "consistency {a} to {b}");
    }
    let verified = verify_all(state, n).expect("the tree matches its records");
    assert_eq!(verified.root(), roots[n as usize]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn stored_proofs_verify_whatever_the_batches(
        n in 0usize..=300,
        splits in proptest::collection::vec(1usize..40, 1..12),
        picks in proptest::collection::vec((any::<u64>(), any::<u64>()), 64),
    ) {
        let records = records(n);
        let state = store(&records, &splits);
        let top = n as u64 + 1;
        let pairs: Vec<(u64, u64)> = picks
            .iter()
            .map(|&(x, y)| {
                let b = y % top;
                (x % (b + 1), b)
            })
            .collect();
        check_tree(&state, &records, Some(&pairs));
    }
}

#[test]
fn every_proof_of_small_trees_verifies() {
    for n in 0..=33 {
        let records = records(n);
        for splits in [&[1usize][..], &[3, 1, 4], &[64]] {
            let state = store(&records, splits);
            check_tree(&state, &records, None);
        }
    }
}

#[test]
fn the_reference_vectors_come_out_of_the_store() {
    let records = leaf_inputs();
    let state = store(&records, &[3, 2]);
    for (size, expected) in ROOTS.iter().enumerate() {
        assert_eq!(root(&state, size as u64).expect("root"), hash(expected));
    }
    for (index, size, proof) in INCLUSION_PROOFS {
        assert_eq!(
            inclusion_proof(&state, index, size).expect("proof"),
            hashes(proof)
        );
    }
    for (old, new, proof) in CONSISTENCY_PROOFS {
        assert_eq!(
            consistency_proof(&state, old, new).expect("proof"),
            hashes(proof)
        );
    }
}

/// (what, the call's result, the refusal it must be).
type RefusalCase = (&'static str, Result<Vec<Hash>, TreeError>, ProofError);

#[test]
fn out_of_range_arguments_are_refused() {
    let state = store(&records(5), &[5]);
    let cases: Vec<RefusalCase> = vec![
        (
            "inclusion, index = size",
            inclusion_proof(&state, 3, 3),
            ProofError::IndexOutOfRange { index: 3, size: 3 },
        ),
        (
            "inclusion, empty tree",
            inclusion_proof(&state, 0, 0),
            ProofError::IndexOutOfRange { index: 0, size: 0 },
        ),
        (
            "inclusion, size past the tree",
            inclusion_proof(&state, 0, 6),
            ProofError::SizeOutOfRange {
                size: 6,
                tree_size: 5,
            },
        ),
        (
            "inclusion, largest sizes",
            inclusion_proof(&state, u64::MAX, u64::MAX),
            ProofError::SizeOutOfRange {
                size: u64::MAX,
                tree_size: 5,
            },
        ),
        (
            "consistency, old > new",
            consistency_proof(&state, 4, 2),
            ProofError::SizesOutOfOrder { old: 4, new: 2 },
        ),
        (
            "consistency, new past the tree",
            consistency_proof(&state, 0, u64::MAX),
            ProofError::SizeOutOfRange {
                size: u64::MAX,
                tree_size: 5,
            },
        ),
    ];
    for (what, result, expected) in cases {
        match result {
            Err(TreeError::OutOfRange(error)) => assert_eq!(error, expected, "{what}"),
            other => panic!("{what}: {other:?}"),
        }
    }
    assert!(matches!(root(&state, 6), Err(TreeError::OutOfRange(_))));
    assert!(matches!(leaf(&state, 5), Err(TreeError::OutOfRange(_))));
    assert!(matches!(
        compact_range(&state, 6),
        Err(TreeError::OutOfRange(_))
    ));
    assert_eq!(
        consistency_proof(&state, 0, 5).expect("empty proof"),
        Vec::<Hash>::new()
    );
    assert_eq!(
        consistency_proof(&state, 5, 5).expect("empty proof"),
        Vec::<Hash>::new()
    );
}

#[test]
fn missing_or_short_rows_are_corrupt_not_out_of_range() {
    let mut state = store(&records(6), &[6]);
    put(&mut state, keys::tree_node(2, 0), None);
    assert!(matches!(root(&state, 6), Err(TreeError::Corrupt(m)) if m.contains("missing")));
    assert!(matches!(
        inclusion_proof(&state, 5, 6),
        Err(TreeError::Corrupt(_))
    ));
    put(&mut state, keys::tree_node(0, 5), Some(vec![0; 31]));
    assert!(
        matches!(leaf(&state, 5), Err(TreeError::Corrupt(m)) if m.contains("31 bytes, not 32"))
    );
    put(&mut state, keys::TREE_SIZE.to_vec(), Some(vec![1, 2, 3]));
    assert!(matches!(size(&state), Err(StateError::Corrupt { .. })));
}

#[test]
fn append_refuses_a_size_it_was_not_given_and_a_broken_right_edge() {
    let mut state = store(&records(6), &[6]);
    let record: &[u8] = b"next";
    let wrong = append(&state, &mut WriteSet::new(), 5, &[record]);
    assert!(
        matches!(wrong, Err(StateError::Corrupt { .. })),
        "{wrong:?}"
    );
    let mut nothing = WriteSet::new();
    assert_eq!(append(&state, &mut nothing, 6, &[]).expect("no records"), 6);
    assert!(nothing.is_empty(), "appending nothing writes nothing");
    put(&mut state, keys::tree_node(1, 2), None);
    let broken = append(&state, &mut WriteSet::new(), 6, &[record]);
    assert!(
        matches!(broken, Err(StateError::Corrupt { .. })),
        "{broken:?}"
    );
}

#[test]
fn appends_in_one_write_set_read_each_others_rows() {
    let records = records(11);
    let reference = store(&records, &[11]);
    let mut state = InMemoryState::new();
    let mut writes = WriteSet::new();
    let refs: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
    let mut size = 0;
    for chunk in refs.chunks(3) {
        size = append(&state, &mut writes, size, chunk).expect("append");
    }
    state.apply_writes(&writes);
    for s in 0..=11 {
        assert_eq!(
            root(&state, s).expect("root"),
            root(&reference, s).expect("root")
        );
    }
}

#[test]
fn a_flipped_stored_leaf_hash_is_found_at_its_index() {
    // Tamper case 2.
    let records = records(13);
    let mut state = store(&records, &[4]);
    let mut flipped = stored(&state, 0, 9);
    flipped[0] ^= 1;
    put(&mut state, keys::tree_node(0, 9), Some(flipped.to_vec()));
    let fault = verify_all(&state, 13).expect_err("a flipped leaf");
    assert!(
        matches!(
            fault,
            TreeFault::Leaf {
                index: 9,
                fault: RowFault::Differs
            }
        ),
        "{fault}"
    );
    assert_eq!(fault.first_bad_index(), Some(9));
    assert_eq!(
        fault.to_string(),
        "leaf 9: the stored leaf hash differs from the hash recomputed from the event records"
    );
}

#[test]
fn a_corrupted_interior_node_is_found_and_its_proofs_fail() {
    // Tamper case 4.
    let records = records(8);
    let mut state = store(&records, &[8]);
    let verified_root = verify_all(&state, 8).expect("intact").root();
    let mut corrupted = stored(&state, 2, 0);
    corrupted[31] ^= 0x80;
    put(&mut state, keys::tree_node(2, 0), Some(corrupted.to_vec()));
    let fault = verify_all(&state, 8).expect_err("a corrupted node");
    assert!(
        matches!(
            fault,
            TreeFault::Node {
                index: 3,
                level: 2,
                node: 0,
                fault: RowFault::Differs
            }
        ),
        "{fault}"
    );
    assert_eq!(fault.first_bad_index(), Some(3));
    // A proof that uses the node does not verify against the root the records give.
    let proof = inclusion_proof(&state, 5, 8).expect("proof from the cache");
    let leaf = merkle::leaf_hash(&records[5]);
    assert_eq!(
        verify_inclusion(5, 8, &leaf, &proof, &verified_root),
        Err(ProofError::RootMismatch)
    );
    // The cached root of 8 leaves is the stored node above it, untouched: only verifying the
    // proof against the root the records give catches the corruption.
    assert_eq!(root(&state, 8).expect("cached root"), verified_root);
}

#[test]
fn every_fault_names_its_first_bad_index() {
    let records = records(10);
    let intact = store(&records, &[3]);
    type Tamper = fn(&mut InMemoryState);
    let cases: Vec<(&str, Tamper, &str)> = vec![
        (
            "record deleted",
            |s| put(s, keys::event(4), None),
            "leaf 3: the event record (seq 4) is missing",
        ),
        (
            "record changed",
            |s| put(s, keys::event(7), Some(b"forged".to_vec())),
            "leaf 6: the stored leaf hash differs from the hash recomputed from the event records",
        ),
        (
            "leaf row deleted",
            |s| put(s, keys::tree_node(0, 2), None),
            "leaf 2: the stored leaf hash is missing",
        ),
        (
            "interior row short",
            |s| put(s, keys::tree_node(1, 2), Some(vec![0; 5])),
            "leaf 5: the stored tree node at level 1, index 2 (completed by this leaf) is 5 \
             bytes, not 32",
        ),
        (
            "interior row deleted",
            |s| put(s, keys::tree_node(3, 0), None),
            "leaf 7: the stored tree node at level 3, index 0 (completed by this leaf) is missing",
        ),
        (
            "tree size behind the last seq",
            |s| {
                put(
                    s,
                    keys::TREE_SIZE.to_vec(),
                    Some(9u64.to_be_bytes().to_vec()),
                )
            },
            "the tree size row says 9 leaves but the last seq is 10",
        ),
    ];
    for (what, tamper, message) in cases {
        let mut state = intact.clone();
        tamper(&mut state);
        let fault = verify_all(&state, 9).expect_err(what);
        assert_eq!(fault.to_string(), message, "{what}");
    }
}

#[test]
fn verifying_in_steps_gives_the_range_verifying_at_once_gives() {
    let records = records(77);
    let state = store(&records, &[5, 9]);
    let whole = verify_all(&state, 77).expect("intact");
    for limit in [1, 2, 7, 64] {
        let mut range = CompactRange::new();
        let mut steps = 0;
        while range.size() < 77 {
            range = verify_leaves(&state, range, 77, limit).expect("intact");
            steps += 1;
        }
        assert_eq!(range, whole, "limit {limit}");
        assert_eq!(steps, 77_u64.div_ceil(limit), "limit {limit}");
    }
    // From a range verified earlier, only the later leaves are read.
    let earlier = verify_all(&state, 40).expect("intact");
    let mut state = state;
    put(&mut state, keys::event(3), None);
    assert_eq!(
        verify_leaves(&state, earlier, 77, u64::MAX).expect("later leaves"),
        whole
    );
    let refused = verify_leaves(&state, whole.clone(), 40, 10);
    assert!(matches!(
        refused,
        Err(TreeFault::OutOfRange {
            from: 77,
            to: 40,
            tree_size: 77
        })
    ));
    let past = verify_leaves(&state, CompactRange::new(), 78, 10);
    assert!(matches!(past, Err(TreeFault::OutOfRange { .. })));
}

#[test]
fn equivocating_replicas_differ_from_the_injected_leaf() {
    // Tamper case 12: replica b applied one more leaf (a test-only injection) at index 5.
    let honest = records(12);
    let mut forked = honest[..5].to_vec();
    forked.push(b"injected".to_vec());
    forked.extend_from_slice(&honest[5..11]);
    let a = store(&honest, &[4]);
    let b = store(&forked, &[3]);
    assert_eq!(root(&a, 5).expect("root"), root(&b, 5).expect("root"));
    assert_ne!(root(&a, 12).expect("root"), root(&b, 12).expect("root"));
    assert_eq!(first_divergence(&a, &b, 5).expect("compare"), None);
    for size in 6..=12 {
        assert_eq!(
            first_divergence(&a, &b, size).expect("compare"),
            Some(Divergence::Leaf { index: 5 }),
            "size {size}"
        );
    }
    // b's own records agree with b's tree: only comparing replicas finds the fork.
    assert!(verify_all(&b, 12).is_ok());
    // A consistency proof from a's tree at 5 to b's at 12 verifies (b extends the same
    // prefix), and none from a's 12 can match b's root.
    let proof = consistency_proof(&b, 5, 12).expect("proof");
    let (a5, b12) = (root(&a, 5).expect("root"), root(&b, 12).expect("root"));
    assert_eq!(verify_consistency(5, 12, &a5, &b12, &proof), Ok(()));
}

#[test]
fn a_corrupted_cached_node_on_one_replica_is_named() {
    let records = records(16);
    let a = store(&records, &[16]);
    let mut b = a.clone();
    let mut corrupted = stored(&b, 2, 2);
    corrupted[0] ^= 1;
    put(&mut b, keys::tree_node(2, 2), Some(corrupted.to_vec()));
    // The root of 12 leaves folds (3, 0) and (2, 2): the corrupted node is reached, and both
    // its halves agree.
    assert_eq!(
        first_divergence(&a, &b, 12).expect("compare"),
        Some(Divergence::Node { level: 2, index: 2 })
    );
    // The stored root of 16 leaves hides it from a comparison of caches; the records do not.
    assert_eq!(first_divergence(&a, &b, 16).expect("compare"), None);
    let fault = verify_all(&b, 16).expect_err("the records find it");
    assert!(
        matches!(
            fault,
            TreeFault::Node {
                index: 11,
                level: 2,
                node: 2,
                fault: RowFault::Differs
            }
        ),
        "{fault}"
    );
    assert!(matches!(
        first_divergence(&a, &b, 17),
        Err(TreeError::OutOfRange(ProofError::SizeOutOfRange {
            size: 17,
            tree_size: 16
        }))
    ));
}
