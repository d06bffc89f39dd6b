//! The Merkle tree kept in the state store, appended in apply in the same write set as the
//! events it covers.
//!
//! Rows: `mt\0` + level (u8) + index (u64 BE) holds the 32-byte hash of the perfect subtree of
//! 2^level leaves starting at leaf index × 2^level (level 0: the leaf hashes); `m\0tree_size`
//! the number of leaves (u64 BE), which equals the last seq. A node is stored once its subtree
//! is complete, so the roots of every size, and every proof, are O(log n) reads. The interior
//! rows are a cache: every one of them can be recomputed from the event records.

use super::merkle::{Hash, ProofError};
use crate::state::{StateError, StateRead, WriteSet};

/// Why a tree read failed.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    /// The arguments name no tree this store holds (a size past the tree, an index past the
    /// size): the caller's mistake.
    #[error(transparent)]
    OutOfRange(ProofError),
    /// A row the tree needs is missing or not 32 bytes: the store is corrupt.
    #[error("tree row missing or malformed: {0}")]
    Corrupt(String),
    #[error(transparent)]
    State(#[from] StateError),
}

/// The number of leaves.
pub fn size(state: &dyn StateRead) -> Result<u64, StateError> {
    todo!("{:p}", state)
}

/// Appends the leaves of `records` (event record bytes, in seq order) after the `size_before`
/// leaves `state` holds, writing leaf and completed interior rows and the new size into
/// `writes`. Reads left siblings from `state`, or from `writes` when this call made them.
pub fn append(
    state: &dyn StateRead,
    writes: &mut WriteSet,
    size_before: u64,
    records: &[&[u8]],
) -> Result<u64, StateError> {
    todo!("{:p}{writes:?}{size_before}{records:?}", state)
}

/// The stored hash of leaf `index`.
pub fn leaf(state: &dyn StateRead, index: u64) -> Result<Hash, TreeError> {
    todo!("{:p}{index}", state)
}

/// The root of the tree of its first `size` leaves (`size` at most the stored size).
pub fn root(state: &dyn StateRead, size: u64) -> Result<Hash, TreeError> {
    todo!("{:p}{size}", state)
}

/// The inclusion proof of leaf `index` in the tree of `size` leaves.
pub fn inclusion_proof(
    state: &dyn StateRead,
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, TreeError> {
    todo!("{:p}{index}{size}", state)
}

/// The consistency proof from `old_size` to `new_size`.
pub fn consistency_proof(
    state: &dyn StateRead,
    old_size: u64,
    new_size: u64,
) -> Result<Vec<Hash>, TreeError> {
    todo!("{:p}{old_size}{new_size}", state)
}
