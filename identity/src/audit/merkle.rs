//! RFC 9162 section 2.1 Merkle trees, pure: leaf and node hashes, the compact range (the
//! right-edge perfect subtrees) that folds leaves into a root in O(log n) memory, and the
//! verification of inclusion and consistency proofs. No storage: `tree` keeps the nodes.
//!
//! Every verifier checks the sizes and the proof's length before it hashes anything, so a
//! hostile argument costs at most a comparison, and none of them panics on any input.

use sha2::{Digest, Sha256};

/// A SHA-256 digest.
pub type Hash = [u8; 32];

/// The longest proof any tree can need (sizes are u64): longer proofs are refused unread.
pub const PROOF_HASHES_MAX: usize = 128;

/// Why a proof or a compact range was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("leaf index {index} is not below tree size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("old size {old} is larger than new size {new}")]
    SizesOutOfOrder { old: u64, new: u64 },
    #[error("the proof has {got} hashes; this proof needs exactly {want}")]
    WrongLength { got: usize, want: usize },
    #[error("the proof does not lead to the expected root")]
    RootMismatch,
    #[error("tree size {size} is past the {tree_size} leaves the tree holds")]
    SizeOutOfRange { size: u64, tree_size: u64 },
    #[error("the tree holds {size} leaves, the most a u64 size can count; no leaf can be added")]
    TreeFull { size: u64 },
    #[error("{0}")]
    Malformed(String),
}

/// SHA-256(0x00 || record).
pub fn leaf_hash(record: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0x00]);
    hasher.update(record);
    hasher.finalize().into()
}

/// SHA-256(0x01 || left || right).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0x01]);
    hasher.update(left);
    hasher.update(right);
    hasher.finalize().into()
}

/// The root of the empty tree, SHA-256 of nothing.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// RFC 9162's k for a tree of `n` leaves: the largest power of two smaller than `n`, where the
/// tree splits into a perfect left subtree and the rest. 0 when `n` < 2 (no split).
pub fn split(n: u64) -> u64 {
    if n < 2 {
        return 0;
    }
    1 << (63 - (n - 1).leading_zeros())
}

/// The root of `leaves` (already leaf hashes), by RFC 9162's recursive definition. O(n): for
/// tests and verifiers that hold every leaf.
pub fn root_of(leaves: &[Hash]) -> Hash {
    match leaves {
        [] => empty_root(),
        [leaf] => *leaf,
        _ => {
            // `split` on the slice's length (at least 2 here), in usize.
            let k = 1usize << (usize::BITS - 1 - (leaves.len() - 1).leading_zeros());
            let (left, right) = leaves.split_at(k);
            node_hash(&root_of(left), &root_of(right))
        }
    }
}

/// The perfect subtrees that make up the leaves `start..start + len`, largest (leftmost) first,
/// as (level, index): the subtree of 2^level leaves from leaf index × 2^level. `start` must be
/// a multiple of the largest power of two ≤ `len` (true of every prefix and of every subtree
/// RFC 9162's recursions name), so each part is aligned. At most 64 parts.
pub fn perfect_subtrees(start: u64, len: u64) -> Vec<(u8, u64)> {
    let mut parts = Vec::with_capacity(len.count_ones() as usize);
    let mut offset = start;
    for level in (0u8..64).rev() {
        let width = 1u64 << level;
        if len & width != 0 {
            parts.push((level, offset >> level));
            offset = offset.wrapping_add(width);
        }
    }
    parts
}

/// The right-edge perfect subtrees of a tree of `size` leaves, largest (leftmost) first: the
/// O(log n) state that folds further leaves into the tree and gives its root.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompactRange {
    size: u64,
    hashes: Vec<Hash>,
}

impl CompactRange {
    /// The empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// A range from its parts; refused unless `hashes` has one hash per set bit of `size`.
    pub fn from_parts(size: u64, hashes: Vec<Hash>) -> Result<Self, ProofError> {
        let want = size.count_ones() as usize;
        if hashes.len() != want {
            return Err(ProofError::Malformed(format!(
                "a compact range of {size} leaves has {want} subtree hashes; got {}",
                hashes.len()
            )));
        }
        Ok(Self { size, hashes })
    }

    /// Appends one leaf hash.
    pub fn push(&mut self, leaf: Hash) -> Result<(), ProofError> {
        self.push_visit(leaf, |_, _, _| {})
    }

    /// Appends one leaf hash and shows `visit` every perfect subtree it completes, as (level,
    /// index, hash), from the leaf itself (level 0, index = the old size) upwards: the rows a
    /// stored tree writes, or checks, for this leaf.
    pub fn push_visit(
        &mut self,
        leaf: Hash,
        mut visit: impl FnMut(u8, u64, &Hash),
    ) -> Result<(), ProofError> {
        let Some(new_size) = self.size.checked_add(1) else {
            return Err(ProofError::TreeFull { size: self.size });
        };
        // The leaf merges once per trailing one bit of the size; `from_parts` keeps one hash per
        // set bit, so the left siblings are there. Checked before any change to stay whole.
        if self.size.trailing_ones() as usize > self.hashes.len() {
            return Err(ProofError::Malformed(format!(
                "a compact range of {} leaves has {} subtree hashes",
                self.size,
                self.hashes.len()
            )));
        }
        let mut hash = leaf;
        let mut level = 0u8;
        let mut index = self.size;
        visit(level, index, &hash);
        while index & 1 == 1 {
            let Some(left) = self.hashes.pop() else {
                return Err(ProofError::Malformed("compact range lost a subtree".into()));
            };
            hash = node_hash(&left, &hash);
            level += 1;
            index >>= 1;
            visit(level, index, &hash);
        }
        self.hashes.push(hash);
        self.size = new_size;
        Ok(())
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// The subtree hashes, largest first.
    pub fn hashes(&self) -> &[Hash] {
        &self.hashes
    }

    /// The root of the tree of `size()` leaves.
    pub fn root(&self) -> Hash {
        fold_right(&self.hashes)
    }
}

/// The hash of adjacent subtrees given largest (leftmost) first, each smaller one a right
/// child: the root of a compact range, or of an incomplete right-edge node.
pub fn fold_right(hashes: &[Hash]) -> Hash {
    let mut from_right = hashes.iter().rev();
    let Some(last) = from_right.next() else {
        return empty_root();
    };
    from_right.fold(*last, |right, left| node_hash(left, &right))
}

/// The number of hashes in the inclusion proof of leaf `index` in a tree of `size` leaves, or
/// `None` when `index` is not below `size`.
pub fn inclusion_proof_len(index: u64, size: u64) -> Option<usize> {
    if index >= size {
        return None;
    }
    // Below the level where the paths to `index` and to the last leaf part, every level has a
    // sibling; above it, only the levels where `index` is a right child (the rest of the path
    // runs along the right edge, where a node with no right sibling is promoted).
    let inner = 64 - (index ^ (size - 1)).leading_zeros();
    let border = index.checked_shr(inner).unwrap_or(0).count_ones();
    Some((inner + border) as usize)
}

/// The number of hashes in the consistency proof from `old_size` to `new_size`, or `None` when
/// `old_size` > `new_size`.
pub fn consistency_proof_len(old_size: u64, new_size: u64) -> Option<usize> {
    if old_size > new_size {
        return None;
    }
    if old_size == 0 || old_size == new_size {
        return Some(0);
    }
    // The proof is the inclusion proof of the old tree's last perfect subtree (at the level of
    // the old size's trailing zeros), plus that subtree's own hash unless it is the whole old
    // tree (the old size a power of two), when the verifier starts from the old root.
    let level = old_size.trailing_zeros();
    let index = (old_size - 1) >> level;
    let size = ((new_size - 1) >> level) + 1;
    let seed = usize::from(index != 0);
    inclusion_proof_len(index, size).map(|len| seed + len)
}

/// Checks an RFC 9162 section 2.1.3.2 inclusion proof of `leaf` at `index` in the tree of
/// `size` leaves whose root is `root`.
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    let Some(want) = inclusion_proof_len(index, size) else {
        return Err(ProofError::IndexOutOfRange { index, size });
    };
    if proof.len() != want {
        return Err(ProofError::WrongLength {
            got: proof.len(),
            want,
        });
    }
    let mut fn_ = index;
    let mut sn = size - 1;
    let mut r = *leaf;
    for p in proof {
        if sn == 0 {
            return Err(ProofError::WrongLength {
                got: proof.len(),
                want,
            });
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 || r != *root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// Checks an RFC 9162 section 2.1.4.2 consistency proof from the tree of `old_size` leaves
/// (root `old_root`) to the tree of `new_size` (root `new_root`).
///
/// The sizes RFC 9162 leaves out are decided here: the empty tree (`old_size` 0) is consistent
/// with every tree, by an empty proof, when `old_root` is the empty root; equal sizes need an
/// empty proof and equal roots.
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    let Some(want) = consistency_proof_len(old_size, new_size) else {
        return Err(ProofError::SizesOutOfOrder {
            old: old_size,
            new: new_size,
        });
    };
    if proof.len() != want {
        return Err(ProofError::WrongLength {
            got: proof.len(),
            want,
        });
    }
    if old_size == 0 || old_size == new_size {
        let expected = if old_size == 0 {
            empty_root()
        } else {
            *new_root
        };
        if *old_root != expected {
            return Err(ProofError::RootMismatch);
        }
        return Ok(());
    }
    let (seed, path) = match (old_size.is_power_of_two(), proof.split_first()) {
        (true, _) => (*old_root, proof),
        (false, Some((first, rest))) => (*first, rest),
        (false, None) => return Err(ProofError::WrongLength { got: 0, want }),
    };
    let (fr, sr, sn) = consistency_roots(old_size, new_size, seed, path);
    if sn != 0 || fr != *old_root || sr != *new_root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// Steps 3 to 6 of RFC 9162 section 2.1.4.2: the old and new roots `path` leads to from
/// `seed`, and what is left of `sn` (0 when the path had the right length).
fn consistency_roots(old_size: u64, new_size: u64, seed: Hash, path: &[Hash]) -> (Hash, Hash, u64) {
    let mut fn_ = old_size - 1;
    let mut sn = new_size - 1;
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let (mut fr, mut sr) = (seed, seed);
    for c in path {
        if sn == 0 {
            // A path too long for these sizes; the length check makes this unreachable, and
            // a nonzero `sn` makes the caller refuse.
            return (fr, sr, u64::MAX);
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    (fr, sr, sn)
}

#[cfg(test)]
mod tests;
