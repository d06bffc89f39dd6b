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

/// One way to spoil a valid inclusion proof: (what, index, size, leaf, proof, root).
type InclusionProbe = (String, u64, u64, Hash, Vec<Hash>, Hash);

/// Every mutation of a valid inclusion proof that must fail (after the Go reference's
/// corruptInclusionProof table, extended with reordering).
fn spoiled_inclusion(
    index: u64,
    size: u64,
    leaf: Hash,
    proof: &[Hash],
    root: Hash,
) -> Vec<InclusionProbe> {
    let some = [0xab; 32];
    let with = |what: &str, i, s, l, p: Vec<Hash>, r| (what.to_string(), i, s, l, p, r);
    let mut probes = vec![
        with(
            "index - 1",
            index.wrapping_sub(1),
            size,
            leaf,
            proof.to_vec(),
            root,
        ),
        with("index + 1", index + 1, size, leaf, proof.to_vec(), root),
        with("index ^ 2", index ^ 2, size, leaf, proof.to_vec(), root),
        with("size * 2", index, size * 2, leaf, proof.to_vec(), root),
        with("size / 2", index, size / 2, leaf, proof.to_vec(), root),
        with("wrong leaf", index, size, some, proof.to_vec(), root),
        with(
            "empty root",
            index,
            size,
            leaf,
            proof.to_vec(),
            empty_root(),
        ),
        with("random root", index, size, leaf, proof.to_vec(), some),
        with(
            "trailing root",
            index,
            size,
            leaf,
            [proof, &[root]].concat(),
            root,
        ),
        with(
            "preceding root",
            index,
            size,
            leaf,
            [&[root], proof].concat(),
            root,
        ),
    ];
    for i in 0..proof.len() {
        let mut flipped = proof.to_vec();
        flipped[i][0] ^= 8;
        probes.push(with(
            &format!("proof[{i}] bit 3"),
            index,
            size,
            leaf,
            flipped,
            root,
        ));
    }
    if let Some((_, shorter)) = proof.split_last() {
        probes.push(with(
            "removed last",
            index,
            size,
            leaf,
            shorter.to_vec(),
            root,
        ));
    }
    if proof.len() > 1 {
        let mut reversed = proof.to_vec();
        reversed.reverse();
        probes.push(with("reversed", index, size, leaf, reversed, root));
        let mut swapped = proof.to_vec();
        swapped.swap(0, 1);
        probes.push(with("first two swapped", index, size, leaf, swapped, root));
    }
    probes
}

#[test]
fn spoiled_inclusion_proofs_fail() {
    let leaves = reference_leaves();
    for (index, size, proof) in INCLUSION_PROOFS {
        let leaf = leaves[index as usize];
        let root = root(size as usize);
        for (what, i, s, l, p, r) in spoiled_inclusion(index, size, leaf, &hashes(proof), root) {
            assert!(
                verify_inclusion(i, s, &l, &p, &r).is_err(),
                "inclusion of {index} in {size}, {what}: verified"
            );
        }
    }
}

/// One way to spoil a valid consistency proof: (what, old, new, old root, new root, proof).
type ConsistencyProbe = (String, u64, u64, Hash, Hash, Vec<Hash>);

fn spoiled_consistency(
    old: u64,
    new: u64,
    r1: Hash,
    r2: Hash,
    proof: &[Hash],
) -> Vec<ConsistencyProbe> {
    let some = [0xab; 32];
    let with = |what: &str, o, n, a, b, p: Vec<Hash>| (what.to_string(), o, n, a, b, p);
    let mut probes = vec![
        with("old - 1", old - 1, new, r1, r2, proof.to_vec()),
        with("old + 1", old + 1, new, r1, r2, proof.to_vec()),
        with("old ^ 2", old ^ 2, new, r1, r2, proof.to_vec()),
        with("new * 2", old, new * 2, r1, r2, proof.to_vec()),
        with("new / 2", old, new / 2, r1, r2, proof.to_vec()),
        with("wrong old root", old, new, some, r2, proof.to_vec()),
        with("wrong new root", old, new, r1, some, proof.to_vec()),
        with("swapped roots", old, new, r2, r1, proof.to_vec()),
        with("empty proof", old, new, r1, r2, Vec::new()),
        with(
            "trailing old root",
            old,
            new,
            r1,
            r2,
            [proof, &[r1]].concat(),
        ),
        with(
            "trailing new root",
            old,
            new,
            r1,
            r2,
            [proof, &[r2]].concat(),
        ),
        with(
            "preceding old root",
            old,
            new,
            r1,
            r2,
            [&[r1], proof].concat(),
        ),
        with(
            "preceding new root",
            old,
            new,
            r1,
            r2,
            [&[r2], proof].concat(),
        ),
        with(
            "preceding proof[0]",
            old,
            new,
            r1,
            r2,
            [&proof[..1], proof].concat(),
        ),
        with(
            "truncated",
            old,
            new,
            r1,
            r2,
            proof[..proof.len() - 1].to_vec(),
        ),
    ];
    for i in 0..proof.len() {
        let mut flipped = proof.to_vec();
        flipped[i][0] ^= 16;
        probes.push(with(
            &format!("proof[{i}] bit 4"),
            old,
            new,
            r1,
            r2,
            flipped,
        ));
    }
    if proof.len() > 1 {
        let mut reversed = proof.to_vec();
        reversed.reverse();
        probes.push(with("reversed", old, new, r1, r2, reversed));
    }
    probes
}

#[test]
fn spoiled_consistency_proofs_fail() {
    for (old, new, proof) in CONSISTENCY_PROOFS {
        if proof.is_empty() {
            continue;
        }
        let (r1, r2) = (root(old as usize), root(new as usize));
        for (what, o, n, a, b, p) in spoiled_consistency(old, new, r1, r2, &hashes(proof)) {
            assert!(
                verify_consistency(o, n, &a, &b, &p).is_err(),
                "consistency {old} to {new}, {what}: verified"
            );
        }
    }
}

#[test]
fn inclusion_arguments_are_refused_before_hashing() {
    let some = [7u8; 32];
    let million = vec![some; 1_000_000];
    let over = vec![some; PROOF_HASHES_MAX + 1];
    let want_8 = Some(3);
    assert_eq!(inclusion_proof_len(5, 8), want_8);
    let cases: Vec<(&str, u64, u64, &[Hash], ProofError)> = vec![
        (
            "empty tree",
            0,
            0,
            &[],
            ProofError::IndexOutOfRange { index: 0, size: 0 },
        ),
        (
            "index = size",
            8,
            8,
            &[],
            ProofError::IndexOutOfRange { index: 8, size: 8 },
        ),
        (
            "index past size",
            u64::MAX,
            3,
            &[],
            ProofError::IndexOutOfRange {
                index: u64::MAX,
                size: 3,
            },
        ),
        (
            "empty proof, size 8",
            5,
            8,
            &[],
            ProofError::WrongLength { got: 0, want: 3 },
        ),
        (
            "empty proof, size 2",
            0,
            2,
            &[],
            ProofError::WrongLength { got: 0, want: 1 },
        ),
        (
            "one short",
            5,
            8,
            &million[..2],
            ProofError::WrongLength { got: 2, want: 3 },
        ),
        (
            "one long",
            5,
            8,
            &million[..4],
            ProofError::WrongLength { got: 4, want: 3 },
        ),
        (
            "size 1 with a hash",
            0,
            1,
            &million[..1],
            ProofError::WrongLength { got: 1, want: 0 },
        ),
        (
            "PROOF_HASHES_MAX + 1",
            5,
            8,
            &over,
            ProofError::WrongLength {
                got: PROOF_HASHES_MAX + 1,
                want: 3,
            },
        ),
        (
            "a million hashes",
            5,
            8,
            &million,
            ProofError::WrongLength {
                got: 1_000_000,
                want: 3,
            },
        ),
        (
            "a million hashes, largest tree",
            0,
            u64::MAX,
            &million,
            ProofError::WrongLength {
                got: 1_000_000,
                want: 64,
            },
        ),
    ];
    for (what, index, size, proof, expected) in cases {
        assert_eq!(
            verify_inclusion(index, size, &some, proof, &some),
            Err(expected),
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

/// (what, old size, new size, old root, new root, proof, verdict).
type ConsistencyCase<'a> = (
    &'a str,
    u64,
    u64,
    Hash,
    Hash,
    &'a [Hash],
    Result<(), ProofError>,
);

#[test]
fn consistency_arguments_are_refused_before_hashing() {
    let some = [7u8; 32];
    let empty = empty_root();
    let million = vec![some; 1_000_000];
    let over = vec![some; PROOF_HASHES_MAX + 1];
    let cases: Vec<ConsistencyCase> = vec![
        (
            "old > new",
            5,
            3,
            some,
            some,
            &[],
            Err(ProofError::SizesOutOfOrder { old: 5, new: 3 }),
        ),
        (
            "largest old, empty new",
            u64::MAX,
            0,
            some,
            some,
            &[],
            Err(ProofError::SizesOutOfOrder {
                old: u64::MAX,
                new: 0,
            }),
        ),
        ("empty to empty", 0, 0, empty, empty, &[], Ok(())),
        ("empty to largest", 0, u64::MAX, empty, some, &[], Ok(())),
        (
            "empty, wrong old root",
            0,
            4,
            some,
            some,
            &[],
            Err(ProofError::RootMismatch),
        ),
        (
            "empty with a hash",
            0,
            4,
            empty,
            some,
            &million[..1],
            Err(ProofError::WrongLength { got: 1, want: 0 }),
        ),
        ("same size", 4, 4, some, some, &[], Ok(())),
        (
            "same largest size",
            u64::MAX,
            u64::MAX,
            some,
            some,
            &[],
            Ok(()),
        ),
        (
            "same size, other root",
            4,
            4,
            some,
            empty,
            &[],
            Err(ProofError::RootMismatch),
        ),
        (
            "same size with a hash",
            4,
            4,
            some,
            some,
            &million[..1],
            Err(ProofError::WrongLength { got: 1, want: 0 }),
        ),
        (
            "empty proof 1 to 2",
            1,
            2,
            some,
            some,
            &[],
            Err(ProofError::WrongLength { got: 0, want: 1 }),
        ),
        (
            "empty proof 6 to 8",
            6,
            8,
            some,
            some,
            &[],
            Err(ProofError::WrongLength { got: 0, want: 3 }),
        ),
        (
            "PROOF_HASHES_MAX + 1",
            6,
            8,
            some,
            some,
            &over,
            Err(ProofError::WrongLength {
                got: PROOF_HASHES_MAX + 1,
                want: 3,
            }),
        ),
        (
            "a million hashes",
            1,
            u64::MAX,
            some,
            some,
            &million,
            Err(ProofError::WrongLength {
                got: 1_000_000,
                want: 64,
            }),
        ),
    ];
    for (what, old, new, r1, r2, proof, expected) in cases {
        assert_eq!(
            verify_consistency(old, new, &r1, &r2, proof),
            expected,
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
