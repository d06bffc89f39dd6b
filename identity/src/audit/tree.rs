//! The Merkle tree kept in the state store, appended in apply in the same write set as the
//! events it covers.
//!
//! Rows: `mt\0` + level (u8) + index (u64 BE) holds the 32-byte hash of the perfect subtree of
//! 2^level leaves starting at leaf index × 2^level (level 0: the leaf hashes); `m\0tree_size`
//! the number of leaves (u64 BE), which equals the last seq. A node is stored once its subtree
//! is complete, so the roots of every size, and every proof, are O(log n) reads. The interior
//! rows are a cache: every one of them can be recomputed from the event records, and
//! [`verify_leaves`] does, so what a node signs never rests on the cache.
//!
//! Every range the RFC 9162 recursions name (a prefix `0..size`, or a node of the tree of
//! `size` leaves) is aligned, so its hash is the fold of at most 64 stored perfect subtrees
//! ([`merkle::perfect_subtrees`]): an incomplete right-edge node is computed, never stored.

use super::merkle::{self, CompactRange, Hash, ProofError};
use crate::keys;
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
    decode_u64(keys::TREE_SIZE, state.get(keys::TREE_SIZE)?)
}

/// Appends the leaves of `records` (event record bytes, in seq order) after the `size_before`
/// leaves `state` holds, writing leaf and completed interior rows and the new size into
/// `writes`. Reads left siblings from `state`, or from `writes` when an earlier call made
/// them: the right edge (at most 64 rows) once per call, then each leaf costs its hash, its
/// row and the rows it completes (two on average, O(log n) at most).
pub fn append(
    state: &dyn StateRead,
    writes: &mut WriteSet,
    size_before: u64,
    records: &[&[u8]],
) -> Result<u64, StateError> {
    let stored = decode_u64(
        keys::TREE_SIZE,
        read_through(state, writes, keys::TREE_SIZE)?,
    )?;
    if stored != size_before {
        return Err(StateError::corrupt(
            keys::TREE_SIZE,
            format!("the tree holds {stored} leaves; appending expected {size_before}"),
        ));
    }
    if records.is_empty() {
        return Ok(size_before);
    }
    let mut range = right_edge_through(state, writes, size_before)?;
    for record in records {
        range
            .push_visit(merkle::leaf_hash(record), |level, index, hash| {
                writes.put(keys::tree_node(level, index), hash.to_vec());
            })
            .map_err(|e| StateError::corrupt(keys::TREE_SIZE, e.to_string()))?;
    }
    writes.put(
        keys::TREE_SIZE.to_vec(),
        range.size().to_be_bytes().to_vec(),
    );
    Ok(range.size())
}

/// The stored hash of leaf `index`.
pub fn leaf(state: &dyn StateRead, index: u64) -> Result<Hash, TreeError> {
    let tree_size = size(state)?;
    if index >= tree_size {
        return Err(TreeError::OutOfRange(ProofError::IndexOutOfRange {
            index,
            size: tree_size,
        }));
    }
    node(state, 0, index)
}

/// The root of the tree of its first `size` leaves (`size` at most the stored size).
pub fn root(state: &dyn StateRead, size: u64) -> Result<Hash, TreeError> {
    within_tree(state, size)?;
    range_hash(state, 0, size)
}

/// The compact range of the tree of its first `size` leaves, from the stored (cached) rows:
/// what the tree says, not what the records say (for that, [`verify_leaves`]).
pub fn compact_range(state: &dyn StateRead, size: u64) -> Result<CompactRange, TreeError> {
    within_tree(state, size)?;
    let hashes = merkle::perfect_subtrees(0, size)
        .into_iter()
        .map(|(level, index)| node(state, level, index))
        .collect::<Result<Vec<_>, _>>()?;
    CompactRange::from_parts(size, hashes).map_err(|e| TreeError::Corrupt(e.to_string()))
}

/// The inclusion proof of leaf `index` in the tree of `size` leaves: RFC 9162 section
/// 2.1.3.1's PATH(index, D[0:size]), nearest sibling first.
pub fn inclusion_proof(
    state: &dyn StateRead,
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, TreeError> {
    within_tree(state, size)?;
    if index >= size {
        return Err(TreeError::OutOfRange(ProofError::IndexOutOfRange {
            index,
            size,
        }));
    }
    // PATH(m, D[n]) for k = split(n): PATH(m, D[0:k]) : MTH(D[k:n]) when m < k, else
    // PATH(m - k, D[k:n]) : MTH(D[0:k]); the recursion walked top-down, siblings reversed.
    let mut siblings = Vec::new();
    let (mut start, mut len) = (0u64, size);
    while len > 1 {
        let k = merkle::split(len);
        if index - start < k {
            siblings.push((start + k, len - k));
            len = k;
        } else {
            siblings.push((start, k));
            start += k;
            len -= k;
        }
    }
    hashes_of(state, siblings)
}

/// The consistency proof from `old_size` to `new_size`: RFC 9162 section 2.1.4.1's
/// PROOF(old_size, D[0:new_size]); empty when `old_size` is 0 or equals `new_size`.
pub fn consistency_proof(
    state: &dyn StateRead,
    old_size: u64,
    new_size: u64,
) -> Result<Vec<Hash>, TreeError> {
    within_tree(state, new_size)?;
    if old_size > new_size {
        return Err(TreeError::OutOfRange(ProofError::SizesOutOfOrder {
            old: old_size,
            new: new_size,
        }));
    }
    if old_size == 0 {
        return Ok(Vec::new());
    }
    // SUBPROOF(m, D[n], b): {} when m = n and b, {MTH(D[n])} when m = n and not b; else for
    // k = split(n): SUBPROOF(m, D[0:k], b) : MTH(D[k:n]) when m <= k, else
    // SUBPROOF(m - k, D[k:n], false) : MTH(D[0:k]).
    let mut nodes = Vec::new();
    let (mut start, mut len, mut m, mut whole) = (0u64, new_size, old_size, true);
    loop {
        if m == len {
            if !whole {
                nodes.push((start, len));
            }
            break;
        }
        let k = merkle::split(len);
        if m <= k {
            nodes.push((start + k, len - k));
            len = k;
        } else {
            nodes.push((start, k));
            start += k;
            len -= k;
            m -= k;
            whole = false;
        }
    }
    hashes_of(state, nodes)
}

/// Where two stores' trees first differ, found top-down from the root by comparing stored
/// subtree hashes: O(log n) reads on each side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Divergence {
    /// The stored leaf hashes at `index` differ (and every leaf before it agrees).
    Leaf { index: u64 },
    /// The stored hash of node (`level`, `index`) differs while both its halves agree: one
    /// side's cached interior row is not the hash of its children.
    Node { level: u8, index: u64 },
}

/// The first place where the trees of `a` and `b` at `size` leaves differ, or `None` when
/// their roots at `size` agree. `size` must be within both trees.
pub fn first_divergence(
    a: &dyn StateRead,
    b: &dyn StateRead,
    size: u64,
) -> Result<Option<Divergence>, TreeError> {
    within_tree(a, size)?;
    within_tree(b, size)?;
    if range_hash(a, 0, size)? == range_hash(b, 0, size)? {
        return Ok(None);
    }
    // Invariant: the node start..start + len differs between a and b.
    let (mut start, mut len) = (0u64, size);
    while len > 1 {
        let k = merkle::split(len);
        if range_hash(a, start, k)? != range_hash(b, start, k)? {
            len = k;
        } else if range_hash(a, start + k, len - k)? != range_hash(b, start + k, len - k)? {
            start += k;
            len -= k;
        } else {
            // Only a stored node can differ from the fold of its agreeing halves: a computed
            // one is that fold. So len is a power of two and the node is aligned to it.
            let level = len.trailing_zeros() as u8;
            return Ok(Some(Divergence::Node {
                level,
                index: start >> level,
            }));
        }
    }
    Ok(Some(Divergence::Leaf { index: start }))
}

/// What is wrong with one stored tree row.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RowFault {
    #[error("is missing")]
    Missing,
    #[error("is {len} bytes, not 32")]
    Malformed { len: usize },
    #[error("differs from the hash recomputed from the event records")]
    Differs,
}

/// Why the stored tree does not match the event records, naming the first bad leaf index.
#[derive(Debug, thiserror::Error)]
pub enum TreeFault {
    #[error("leaf {index}: the event record (seq {}) is missing", u128::from(*.index) + 1)]
    RecordMissing { index: u64 },
    #[error("leaf {index}: the stored leaf hash {fault}")]
    Leaf { index: u64, fault: RowFault },
    #[error(
        "leaf {index}: the stored tree node at level {level}, index {node} (completed by this \
         leaf) {fault}"
    )]
    Node {
        index: u64,
        level: u8,
        node: u64,
        fault: RowFault,
    },
    #[error("the tree size row says {tree_size} leaves but the last seq is {last_seq}")]
    SizeMismatch { tree_size: u64, last_seq: u64 },
    /// The caller's mistake: `from` past `to`, or `to` past the tree.
    #[error("cannot verify leaves {from}..{to}: the tree holds {tree_size} leaves")]
    OutOfRange { from: u64, to: u64, tree_size: u64 },
    /// The store failed to read, or a row is not a number where one belongs.
    #[error(transparent)]
    State(#[from] StateError),
}

impl TreeFault {
    /// The first leaf index the fault is at, when it names one.
    pub fn first_bad_index(&self) -> Option<u64> {
        match self {
            TreeFault::RecordMissing { index }
            | TreeFault::Leaf { index, .. }
            | TreeFault::Node { index, .. } => Some(*index),
            TreeFault::SizeMismatch {
                tree_size,
                last_seq,
            } => Some((*tree_size).min(*last_seq)),
            TreeFault::OutOfRange { .. } | TreeFault::State(_) => None,
        }
    }
}

/// Checks the leaves `from.size()..` (at most `limit` of them, and not past `to_size`) against
/// the event records: recomputes each leaf hash from the record under `e\0` + (index + 1),
/// compares it with the stored leaf row, folds it into `from`, and compares every node that
/// completes with its stored row. Returns the range grown by the leaves checked, so a caller
/// verifies in bounded steps (a reader held for `limit` leaves, not for the whole log) until
/// the range reaches `to_size`. `from` is trusted: it is a range verified earlier.
///
/// Also checks that the tree size row equals the last seq (they are written in one batch).
pub fn verify_leaves(
    state: &dyn StateRead,
    from: CompactRange,
    to_size: u64,
    limit: u64,
) -> Result<CompactRange, TreeFault> {
    let tree_size = size(state)?;
    let last_seq = decode_u64(keys::LAST_SEQ, state.get(keys::LAST_SEQ)?)?;
    if tree_size != last_seq {
        return Err(TreeFault::SizeMismatch {
            tree_size,
            last_seq,
        });
    }
    if from.size() > to_size || to_size > tree_size {
        return Err(TreeFault::OutOfRange {
            from: from.size(),
            to: to_size,
            tree_size,
        });
    }
    let end = from.size().saturating_add(limit).min(to_size);
    let mut range = from;
    let mut completed = Vec::with_capacity(64);
    for index in range.size()..end {
        // index < end <= tree_size, so index + 1 fits.
        let record = state
            .get(&keys::event(index + 1))?
            .ok_or(TreeFault::RecordMissing { index })?;
        completed.clear();
        range
            .push_visit(merkle::leaf_hash(&record), |level, node, hash| {
                completed.push((level, node, *hash));
            })
            .map_err(|e| StateError::corrupt(keys::TREE_SIZE, e.to_string()))?;
        for (level, node, hash) in &completed {
            check_row(state, index, *level, *node, hash)?;
        }
    }
    Ok(range)
}

/// Compares the stored row of node (`level`, `node`) with `want`, recomputed at leaf `index`.
fn check_row(
    state: &dyn StateRead,
    index: u64,
    level: u8,
    node: u64,
    want: &Hash,
) -> Result<(), TreeFault> {
    let fault = match state.get(&keys::tree_node(level, node))? {
        None => RowFault::Missing,
        Some(value) if value.len() != want.len() => RowFault::Malformed { len: value.len() },
        Some(value) if value != want => RowFault::Differs,
        Some(_) => return Ok(()),
    };
    Err(match level {
        0 => TreeFault::Leaf { index, fault },
        _ => TreeFault::Node {
            index,
            level,
            node,
            fault,
        },
    })
}

/// Fails unless the tree holds at least `size` leaves.
fn within_tree(state: &dyn StateRead, size: u64) -> Result<(), TreeError> {
    let tree_size = self::size(state)?;
    if size > tree_size {
        return Err(TreeError::OutOfRange(ProofError::SizeOutOfRange {
            size,
            tree_size,
        }));
    }
    Ok(())
}

/// The hashes of the aligned ranges `(start, len)`, reversed: the proofs' order.
fn hashes_of(state: &dyn StateRead, ranges: Vec<(u64, u64)>) -> Result<Vec<Hash>, TreeError> {
    ranges
        .into_iter()
        .rev()
        .map(|(start, len)| range_hash(state, start, len))
        .collect()
}

/// MTH(D[start:start + len]) for an aligned range whose leaves the tree holds, from its
/// stored perfect subtrees.
fn range_hash(state: &dyn StateRead, start: u64, len: u64) -> Result<Hash, TreeError> {
    let parts = merkle::perfect_subtrees(start, len)
        .into_iter()
        .map(|(level, index)| node(state, level, index))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(merkle::fold_right(&parts))
}

/// The stored hash of node (`level`, `index`).
pub(crate) fn node(state: &dyn StateRead, level: u8, index: u64) -> Result<Hash, TreeError> {
    let key = keys::tree_node(level, index);
    match state.get(&key)? {
        None => Err(TreeError::Corrupt(format!(
            "{} (level {level}, index {index}) is missing",
            keys::display(&key)
        ))),
        Some(value) => Hash::try_from(value.as_slice()).map_err(|_| {
            TreeError::Corrupt(format!(
                "{} (level {level}, index {index}) is {} bytes, not 32",
                keys::display(&key),
                value.len()
            ))
        }),
    }
}

/// The compact range of the first `size` leaves, reading through this batch's `writes`.
fn right_edge_through(
    state: &dyn StateRead,
    writes: &WriteSet,
    size: u64,
) -> Result<CompactRange, StateError> {
    let mut hashes = Vec::new();
    for (level, index) in merkle::perfect_subtrees(0, size) {
        let key = keys::tree_node(level, index);
        let value = read_through(state, writes, &key)?
            .ok_or_else(|| StateError::corrupt(&key, "tree node on the right edge is missing"))?;
        let hash = Hash::try_from(value.as_slice()).map_err(|_| {
            StateError::corrupt(&key, format!("tree node is {} bytes, not 32", value.len()))
        })?;
        hashes.push(hash);
    }
    CompactRange::from_parts(size, hashes)
        .map_err(|e| StateError::corrupt(keys::TREE_SIZE, e.to_string()))
}

/// `key` as this batch left it: its pending write if it has one, else the stored row.
fn read_through(
    state: &dyn StateRead,
    writes: &WriteSet,
    key: &[u8],
) -> Result<Option<Vec<u8>>, StateError> {
    match writes.ops.get(key) {
        Some(pending) => Ok(pending.clone()),
        None => state.get(key),
    }
}

/// A u64 BE row; an absent row is 0.
pub(crate) fn decode_u64(key: &[u8], value: Option<Vec<u8>>) -> Result<u64, StateError> {
    match value {
        None => Ok(0),
        Some(bytes) => <[u8; 8]>::try_from(bytes.as_slice())
            .map(u64::from_be_bytes)
            .map_err(|_| StateError::corrupt(key, format!("{} bytes; want a u64 BE", bytes.len()))),
    }
}

#[cfg(test)]
mod tests;
