//! Known answers (tamper case 14: the RFC 6962 reference vectors) and adversarial proofs
//! (tamper case 15): every malformed proof is an `Err`, none panics, none is hashed when its
//! length is wrong.

use super::*;
use crate::audit::rfc6962_vectors::{
    COMPACT_RANGES, CONSISTENCY_PROOFS, INCLUSION_PROOFS, NODE_HASHES, ROOTS, hash, hashes,
    leaf_inputs,
};

fn reference_leaves() -> Vec<Hash> {
    leaf_inputs().iter().map(|input| leaf_hash(input)).collect()
}

fn root(size: usize) -> Hash {
    hash(ROOTS[size])
}

#[test]
fn leaf_and_node_hashes_match_the_reference() {
    let leaves = reference_leaves();
    assert_eq!(leaves, hashes(NODE_HASHES[0]));
    for (level, nodes) in NODE_HASHES.iter().enumerate().skip(1) {
        let below = hashes(NODE_HASHES[level - 1]);
        for (index, expected) in nodes.iter().enumerate() {
            assert_eq!(
                node_hash(&below[2 * index], &below[2 * index + 1]),
                hash(expected),
                "node level {level} index {index}"
            );
        }
    }
    assert_eq!(empty_root(), root(0));
}

#[test]
fn roots_and_compact_ranges_of_every_size_match_the_reference() {
    let leaves = reference_leaves();
    let mut range = CompactRange::new();
    for size in 0..=8 {
        assert_eq!(root_of(&leaves[..size]), root(size), "root_of size {size}");
        assert_eq!(range.root(), root(size), "compact range root size {size}");
        let expected: Vec<Hash> = COMPACT_RANGES[size]
            .iter()
            .map(|&(level, index)| hash(NODE_HASHES[level][index]))
            .collect();
        assert_eq!(range.hashes(), expected.as_slice(), "compact range {size}");
        assert_eq!(range.size(), size as u64);
        if let Some(leaf) = leaves.get(size) {
            range.push(*leaf).expect("push");
        }
    }
}

#[test]
fn push_visit_shows_every_completed_subtree() {
    let leaves = reference_leaves();
    let mut range = CompactRange::new();
    let mut seen = Vec::new();
    for leaf in &leaves {
        range
            .push_visit(*leaf, |level, index, hash| {
                seen.push((level as usize, index as usize, *hash))
            })
            .expect("push");
    }
    let mut expected = Vec::new();
    for (level, nodes) in NODE_HASHES.iter().enumerate() {
        for (index, node) in nodes.iter().enumerate() {
            expected.push((level, index, hash(node)));
        }
    }
    seen.sort();
    expected.sort();
    assert_eq!(seen, expected);
}

#[test]
fn reference_inclusion_proofs_verify() {
    let leaves = reference_leaves();
    for (index, size, proof) in INCLUSION_PROOFS {
        let result = verify_inclusion(
            index,
            size,
            &leaves[index as usize],
            &hashes(proof),
            &root(size as usize),
        );
        assert_eq!(result, Ok(()), "inclusion of {index} in {size}");
    }
}

#[test]
fn reference_consistency_proofs_verify() {
    for (old, new, proof) in CONSISTENCY_PROOFS {
        let result = verify_consistency(
            old,
            new,
            &root(old as usize),
            &root(new as usize),
            &hashes(proof),
        );
        assert_eq!(result, Ok(()), "consistency {old} to {new}");
    }
}

/// An inclusion proof and what it claims.
#[derive(Clone, PartialEq)]
struct Inclusion {
    index: u64,
    size: u64,
    leaf: Hash,
    proof: Vec<Hash>,
    root: Hash,
}

const SOME: Hash = [0xab; 32];

/// Every way to spoil a valid inclusion proof that must fail (the Go reference's
/// corruptInclusionProof table, with reordering added); a mutation that does not apply to a
/// proof (too short to reorder) leaves it valid and is skipped.
/// (what, how).
type Spoiler<T> = (&'static str, fn(&mut T));

const INCLUSION_SPOILERS: &[Spoiler<Inclusion>] = &[
    ("index - 1", |p| p.index = p.index.wrapping_sub(1)),
    ("index + 1", |p| p.index += 1),
    ("index ^ 2", |p| p.index ^= 2),
    ("size * 2", |p| p.size *= 2),
    ("size / 2", |p| p.size /= 2),
    ("wrong leaf", |p| p.leaf = SOME),
    ("empty root", |p| p.root = empty_root()),
    ("random root", |p| p.root = SOME),
    ("trailing root", |p| p.proof.push(p.root)),
    ("preceding root", |p| p.proof.insert(0, p.root)),
    ("removed last", |p| {
        p.proof.truncate(p.proof.len().saturating_sub(1))
    }),
    ("proof[0] bit 3", |p| flip(&mut p.proof, 0, 8)),
    ("proof[1] bit 3", |p| flip(&mut p.proof, 1, 8)),
    ("proof[2] bit 3", |p| flip(&mut p.proof, 2, 8)),
    ("reversed", |p| p.proof.reverse()),
    ("first two swapped", |p| swap_first_two(&mut p.proof)),
];

fn flip(proof: &mut [Hash], i: usize, bit: u8) {
    if let Some(hash) = proof.get_mut(i) {
        hash[0] ^= bit;
    }
}

fn swap_first_two(proof: &mut [Hash]) {
    if proof.len() > 1 {
        proof.swap(0, 1);
    }
}

#[test]
fn spoiled_inclusion_proofs_fail() {
    let leaves = reference_leaves();
    for (index, size, proof) in INCLUSION_PROOFS {
        let valid = Inclusion {
            index,
            size,
            leaf: leaves[index as usize],
            proof: hashes(proof),
            root: root(size as usize),
        };
        for (what, spoil) in INCLUSION_SPOILERS {
            let mut p = valid.clone();
            spoil(&mut p);
            if p == valid {
                continue;
            }
            assert!(
                verify_inclusion(p.index, p.size, &p.leaf, &p.proof, &p.root).is_err(),
                "inclusion of {index} in {size}, {what}: verified"
            );
        }
    }
}

/// A consistency proof and what it claims.
#[derive(Clone, PartialEq)]
struct Consistency {
    old: u64,
    new: u64,
    old_root: Hash,
    new_root: Hash,
    proof: Vec<Hash>,
}

/// Every way to spoil a valid, non-empty consistency proof that must fail (the Go reference's
/// corruptConsistencyProof table, with reordering added).
const CONSISTENCY_SPOILERS: &[Spoiler<Consistency>] = &[
    ("old - 1", |p| p.old -= 1),
    ("old + 1", |p| p.old += 1),
    ("old ^ 2", |p| p.old ^= 2),
    ("new * 2", |p| p.new *= 2),
    ("new / 2", |p| p.new /= 2),
    ("wrong old root", |p| p.old_root = SOME),
    ("wrong new root", |p| p.new_root = SOME),
    ("swapped roots", |p| {
        std::mem::swap(&mut p.old_root, &mut p.new_root)
    }),
    ("empty proof", |p| p.proof.clear()),
    ("trailing old root", |p| p.proof.push(p.old_root)),
    ("trailing new root", |p| p.proof.push(p.new_root)),
    ("preceding old root", |p| p.proof.insert(0, p.old_root)),
    ("preceding new root", |p| p.proof.insert(0, p.new_root)),
    ("preceding proof[0]", |p| p.proof.insert(0, p.proof[0])),
    ("truncated", |p| {
        p.proof.truncate(p.proof.len().saturating_sub(1))
    }),
    ("proof[0] bit 4", |p| flip(&mut p.proof, 0, 16)),
    ("proof[1] bit 4", |p| flip(&mut p.proof, 1, 16)),
    ("proof[2] bit 4", |p| flip(&mut p.proof, 2, 16)),
    ("reversed", |p| p.proof.reverse()),
];

#[test]
fn spoiled_consistency_proofs_fail() {
    for (old, new, proof) in CONSISTENCY_PROOFS {
        if proof.is_empty() {
            continue;
        }
        let valid = Consistency {
            old,
            new,
            old_root: root(old as usize),
            new_root: root(new as usize),
            proof: hashes(proof),
        };
        for (what, spoil) in CONSISTENCY_SPOILERS {
            let mut p = valid.clone();
            spoil(&mut p);
            if p == valid {
                continue;
            }
            assert!(
                verify_consistency(p.old, p.new, &p.old_root, &p.new_root, &p.proof).is_err(),
                "consistency {old} to {new}, {what}: verified"
            );
        }
    }
}

fn wrong_length(got: usize, want: usize) -> ProofError {
    ProofError::WrongLength { got, want }
}

const MILLION: usize = 1_000_000;
const OVER: usize = PROOF_HASHES_MAX + 1;

/// (what, index, size, hashes in the proof, refusal).
type InclusionRefusal = (&'static str, u64, u64, usize, fn() -> ProofError);

const INCLUSION_REFUSALS: &[InclusionRefusal] = &[
    ("empty tree", 0, 0, 0, || ProofError::IndexOutOfRange {
        index: 0,
        size: 0,
    }),
    ("index = size", 8, 8, 0, || ProofError::IndexOutOfRange {
        index: 8,
        size: 8,
    }),
    ("index past size", u64::MAX, 3, 3, || {
        ProofError::IndexOutOfRange {
            index: u64::MAX,
            size: 3,
        }
    }),
    ("empty proof, size 8", 5, 8, 0, || wrong_length(0, 3)),
    ("empty proof, size 2", 0, 2, 0, || wrong_length(0, 1)),
    ("one short", 5, 8, 2, || wrong_length(2, 3)),
    ("one long", 5, 8, 4, || wrong_length(4, 3)),
    ("size 1 with a hash", 0, 1, 1, || wrong_length(1, 0)),
    ("PROOF_HASHES_MAX + 1", 5, 8, OVER, || wrong_length(OVER, 3)),
    ("a million hashes", 5, 8, MILLION, || {
        wrong_length(MILLION, 3)
    }),
    (
        "a million hashes, largest tree",
        0,
        u64::MAX,
        MILLION,
        || wrong_length(MILLION, 64),
    ),
];

#[test]
fn inclusion_arguments_are_refused_before_hashing() {
    let some = [7u8; 32];
    let million = vec![some; MILLION];
    for (what, index, size, hashes, refusal) in INCLUSION_REFUSALS {
        assert_eq!(
            verify_inclusion(*index, *size, &some, &million[..*hashes], &some),
            Err(refusal()),
            "{what}"
        );
    }
}

#[test]
fn extreme_inclusion_sizes_are_hashed_without_panic() {
    let some = [7u8; 32];
    for (index, size) in [
        (0, u64::MAX),
        (u64::MAX - 1, u64::MAX),
        (1 << 63, u64::MAX),
        (0, 1),
    ] {
        let len = inclusion_proof_len(index, size).expect("index below size");
        assert!(len <= PROOF_HASHES_MAX);
        let proof = vec![some; len];
        let result = verify_inclusion(index, size, &some, &proof, &some);
        let expected = if size == 1 {
            Ok(())
        } else {
            Err(ProofError::RootMismatch)
        };
        assert_eq!(result, expected, "index {index} size {size}");
    }
}

/// Which root a consistency case claims.
#[derive(Clone, Copy)]
enum Claim {
    Some,
    Empty,
}

/// (what, old size, new size, old root, new root, hashes in the proof, verdict).
type ConsistencyCase = (
    &'static str,
    u64,
    u64,
    Claim,
    Claim,
    usize,
    fn() -> Result<(), ProofError>,
);

const CONSISTENCY_VERDICTS: &[ConsistencyCase] = &[
    ("old > new", 5, 3, Claim::Some, Claim::Some, 0, || {
        Err(ProofError::SizesOutOfOrder { old: 5, new: 3 })
    }),
    (
        "largest old, empty new",
        u64::MAX,
        0,
        Claim::Some,
        Claim::Some,
        0,
        || {
            Err(ProofError::SizesOutOfOrder {
                old: u64::MAX,
                new: 0,
            })
        },
    ),
    (
        "empty to empty",
        0,
        0,
        Claim::Empty,
        Claim::Empty,
        0,
        || Ok(()),
    ),
    (
        "empty to largest",
        0,
        u64::MAX,
        Claim::Empty,
        Claim::Some,
        0,
        || Ok(()),
    ),
    (
        "empty, wrong old root",
        0,
        4,
        Claim::Some,
        Claim::Some,
        0,
        || Err(ProofError::RootMismatch),
    ),
    (
        "empty with a hash",
        0,
        4,
        Claim::Empty,
        Claim::Some,
        1,
        || Err(wrong_length(1, 0)),
    ),
    ("same size", 4, 4, Claim::Some, Claim::Some, 0, || Ok(())),
    (
        "same largest size",
        u64::MAX,
        u64::MAX,
        Claim::Some,
        Claim::Some,
        0,
        || Ok(()),
    ),
    (
        "same size, other root",
        4,
        4,
        Claim::Some,
        Claim::Empty,
        0,
        || Err(ProofError::RootMismatch),
    ),
    (
        "same size with a hash",
        4,
        4,
        Claim::Some,
        Claim::Some,
        1,
        || Err(wrong_length(1, 0)),
    ),
    (
        "empty proof 1 to 2",
        1,
        2,
        Claim::Some,
        Claim::Some,
        0,
        || Err(wrong_length(0, 1)),
    ),
    (
        "empty proof 6 to 8",
        6,
        8,
        Claim::Some,
        Claim::Some,
        0,
        || Err(wrong_length(0, 3)),
    ),
    (
        "PROOF_HASHES_MAX + 1",
        6,
        8,
        Claim::Some,
        Claim::Some,
        OVER,
        || Err(wrong_length(OVER, 3)),
    ),
    (
        "a million hashes",
        1,
        u64::MAX,
        Claim::Some,
        Claim::Some,
        MILLION,
        || Err(wrong_length(MILLION, 64)),
    ),
];

#[test]
fn consistency_arguments_are_refused_before_hashing() {
    let some = [7u8; 32];
    let million = vec![some; MILLION];
    let hash_of = |claim: &Claim| match claim {
        Claim::Some => some,
        Claim::Empty => empty_root(),
    };
    for (what, old, new, old_root, new_root, hashes, verdict) in CONSISTENCY_VERDICTS {
        let proof = &million[..*hashes];
        assert_eq!(
            verify_consistency(*old, *new, &hash_of(old_root), &hash_of(new_root), proof),
            verdict(),
            "{what}"
        );
    }
}

#[test]
fn extreme_consistency_sizes_are_hashed_without_panic() {
    let some = [7u8; 32];
    for (old, new) in [
        (1, u64::MAX),
        (u64::MAX - 1, u64::MAX),
        (1 << 63, u64::MAX),
        (3, 1 << 40),
    ] {
        let len = consistency_proof_len(old, new).expect("old <= new");
        assert!(0 < len && len <= PROOF_HASHES_MAX, "{old} to {new}: {len}");
        let proof = vec![some; len];
        assert_eq!(
            verify_consistency(old, new, &some, &some, &proof),
            Err(ProofError::RootMismatch),
            "{old} to {new}"
        );
    }
}

#[test]
fn compact_ranges_refuse_bad_parts_and_a_full_tree() {
    let some = [7u8; 32];
    let cases: &[(u64, usize, bool)] = &[
        (0, 0, true),
        (0, 1, false),
        (3, 2, true),
        (3, 1, false),
        (3, 3, false),
        (u64::MAX, 64, true),
        (u64::MAX, 63, false),
    ];
    for &(size, count, ok) in cases {
        let result = CompactRange::from_parts(size, vec![some; count]);
        assert_eq!(
            result.is_ok(),
            ok,
            "size {size} with {count} hashes: {result:?}"
        );
    }
    let Ok(mut full) = CompactRange::from_parts(u64::MAX, vec![some; 64]) else {
        panic!("a full range has 64 parts");
    };
    assert_eq!(
        full.push(some),
        Err(ProofError::TreeFull { size: u64::MAX })
    );
    assert_eq!(full.size(), u64::MAX, "a refused push changes nothing");
    let Ok(mut almost) = CompactRange::from_parts(u64::MAX - 1, vec![some; 63]) else {
        panic!("63 parts");
    };
    assert_eq!(almost.push(some), Ok(()));
    assert_eq!(almost.hashes().len(), 64);
}

/// (start, len, its perfect subtrees).
type Decomposition = (u64, u64, &'static [(u8, u64)]);

#[test]
fn perfect_subtrees_decompose_aligned_ranges() {
    let cases: &[Decomposition] = &[
        (0, 0, &[]),
        (0, 1, &[(0, 0)]),
        (0, 7, &[(2, 0), (1, 2), (0, 6)]),
        (8, 5, &[(2, 2), (0, 12)]),
        (0, u64::MAX, &[]),
    ];
    for &(start, len, expected) in cases {
        let parts = perfect_subtrees(start, len);
        if len == u64::MAX {
            assert_eq!(parts.len(), 64);
            assert_eq!(parts.first(), Some(&(63, 0)));
            assert_eq!(parts.last(), Some(&(0, u64::MAX - 1)));
        } else {
            assert_eq!(parts, expected, "{start}..+{len}");
        }
    }
}

#[test]
fn split_is_the_largest_power_of_two_below() {
    let cases = [
        (0, 0),
        (1, 0),
        (2, 1),
        (3, 2),
        (4, 2),
        (5, 4),
        (8, 4),
        (9, 8),
        (u64::MAX, 1 << 63),
    ];
    for (n, k) in cases {
        assert_eq!(split(n), k, "split({n})");
    }
}

mod arbitrary_arguments {
    use proptest::prelude::*;

    use super::*;

    fn size() -> impl Strategy<Value = u64> {
        prop_oneof![0u64..70, any::<u64>(), Just(u64::MAX), Just(u64::MAX - 1)]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Whatever the arguments, the verifiers answer (never panic), and a proof of random
        /// hashes never verifies unless it is the trivial one.
        #[test]
        fn verifiers_never_panic(
            a in size(),
            b in size(),
            len in 0usize..=PROOF_HASHES_MAX + 2,
            fill in any::<u8>(),
        ) {
            let proof = vec![[fill; 32]; len];
            let (x, y) = ([fill ^ 1; 32], [fill ^ 2; 32]);
            let inclusion = verify_inclusion(a, b, &x, &proof, &y);
            prop_assert!(inclusion.is_err());
            let consistency = verify_consistency(a, b, &x, &y, &proof);
            prop_assert!(consistency.is_err());
            if let Some(want) = inclusion_proof_len(a, b) {
                prop_assert!(want <= 64);
            }
            if let Some(want) = consistency_proof_len(a, b) {
                prop_assert!(want <= 65);
            }
        }
    }
}
