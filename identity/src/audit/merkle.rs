//! RFC 9162 section 2.1 Merkle trees, pure: leaf and node hashes, the compact range (the
//! right-edge perfect subtrees) that folds leaves into a root in O(log n) memory, and the
//! verification of inclusion and consistency proofs. No storage: `tree` keeps the nodes.

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
    #[error("{0}")]
    Malformed(String),
}

/// SHA-256(0x00 || record).
pub fn leaf_hash(record: &[u8]) -> Hash {
    todo!("{record:?}")
}

/// SHA-256(0x01 || left || right).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    todo!("{left:?}{right:?}")
}

/// The root of the empty tree, SHA-256 of nothing.
pub fn empty_root() -> Hash {
    todo!()
}

/// The root of `leaves` (already leaf hashes), by RFC 9162's recursive definition. O(n): for
/// tests and verifiers that hold every leaf.
pub fn root_of(leaves: &[Hash]) -> Hash {
    todo!("{leaves:?}")
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
        todo!("{size}{hashes:?}")
    }

    /// Appends one leaf hash.
    pub fn push(&mut self, leaf: Hash) {
        todo!("{leaf:?}")
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
        todo!()
    }
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
    todo!("{index}{size}{leaf:?}{proof:?}{root:?}")
}

/// Checks an RFC 9162 section 2.1.4.2 consistency proof from the tree of `old_size` leaves
/// (root `old_root`) to the tree of `new_size` (root `new_root`).
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    todo!("{old_size}{new_size}{old_root:?}{new_root:?}{proof:?}")
}
