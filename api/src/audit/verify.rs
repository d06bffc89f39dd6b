//! Recomputes the tree from the event records, a bounded step at a time: what the signer
//! verifies at start (from its record's frontier) and before every signature (the leaves
//! appended since).
//!
//! Each leaf is recomputed from the exact stored record and compared with the stored leaf
//! row; at the end of a step the stored root at the step's size is compared with the root of
//! the recomputed range, which covers the cached interior nodes on the tree's right edge. The
//! interior nodes no root uses (right children inside a completed subtree) are checked by the
//! proofs themselves, which are verified against the recomputed root before they are sent
//! (`anchor`). Helper H1's `tree::verify_leaves`, which compares every interior row as it
//! completes, replaces the body of [`step`] when it lands (same contract).

use warrant_identity::{
    StateError, StateRead,
    audit::{
        merkle::{self, CompactRange},
        tree::{self, TreeError},
    },
    keys,
};

/// Where the stored tree disagrees with the event records: the first bad leaf index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    pub index: u64,
    pub what: String,
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("leaf {}: {}", .0.index, .0.what)]
    Fault(Fault),
    #[error(transparent)]
    State(#[from] StateError),
}

fn fault(index: u64, what: impl Into<String>) -> VerifyError {
    VerifyError::Fault(Fault {
        index,
        what: what.into(),
    })
}

/// Verifies the leaves after `from` up to `to_size`, at most `leaves_max` of them, and returns
/// the range extended over them.
pub fn step(
    state: &dyn StateRead,
    from: &CompactRange,
    to_size: u64,
    leaves_max: usize,
) -> Result<CompactRange, VerifyError> {
    let start = from.size();
    let end = to_size.min(start.saturating_add(leaves_max as u64));
    let mut range = from.clone();
    if end <= start {
        return Ok(range);
    }
    let count = usize::try_from(end - start).unwrap_or(leaves_max);
    let rows = state.scan(keys::EVENT_PREFIX, &keys::event(start + 1), count)?;
    for (index, (key, record)) in (start..).zip(rows.iter()) {
        let seq = index + 1;
        if keys::event_seq(key) != Some(seq) {
            return Err(fault(
                index,
                format!("the event record of seq {seq} is missing"),
            ));
        }
        let leaf = merkle::leaf_hash(record);
        match tree::leaf(state, index) {
            Ok(stored) if stored == leaf => {}
            Ok(_) => {
                return Err(fault(
                    index,
                    format!("the stored leaf hash of seq {seq} is not the hash of its record"),
                ));
            }
            Err(TreeError::State(e)) => return Err(VerifyError::State(e)),
            Err(e) => return Err(fault(index, format!("the stored leaf of seq {seq}: {e}"))),
        }
        range.push(leaf);
    }
    if range.size() < end {
        let seq = range.size() + 1;
        return Err(fault(
            range.size(),
            format!("the event record of seq {seq} is missing"),
        ));
    }
    match tree::root(state, end) {
        Ok(root) if root == range.root() => Ok(range),
        Ok(_) => Err(fault(
            start,
            format!(
                "the stored root at size {end} is not the root of the leaves: a cached interior \
                 node at or before leaf {start} is wrong"
            ),
        )),
        Err(TreeError::State(e)) => Err(VerifyError::State(e)),
        Err(e) => Err(fault(start, format!("the stored root at size {end}: {e}"))),
    }
}

/// Checks the stored tree at a signed size against the signed frontier: the first frontier
/// subtree whose stored prefix root differs names where the stored history left the signed
/// one (its first leaf).
pub fn check_signed(state: &dyn StateRead, frontier: &CompactRange) -> Result<(), VerifyError> {
    let hashes = frontier.hashes();
    let mut covered = 0u64;
    let mut sizes = Vec::with_capacity(hashes.len());
    for bit in (0..64).rev() {
        if frontier.size() & (1u64 << bit) != 0 {
            covered += 1u64 << bit;
            sizes.push(covered);
        }
    }
    let mut start = 0u64;
    for (taken, size) in sizes.iter().enumerate() {
        let expected = prefix_root(&hashes[..=taken]);
        match tree::root(state, *size) {
            Ok(stored) if stored == expected => {}
            Ok(_) => {
                return Err(fault(
                    start,
                    format!(
                        "the stored tree differs from the checkpoint this node signed at size \
                         {} within leaves {start}..{size}",
                        frontier.size()
                    ),
                ));
            }
            Err(TreeError::State(e)) => return Err(VerifyError::State(e)),
            Err(e) => return Err(fault(start, format!("the stored root at size {size}: {e}"))),
        }
        start = *size;
    }
    Ok(())
}

/// The root of the tree made of the first perfect subtrees of a frontier (RFC 9162: the
/// subtrees of a size's decomposition, joined right to left).
fn prefix_root(subtrees: &[merkle::Hash]) -> merkle::Hash {
    let mut iter = subtrees.iter().rev();
    let Some(last) = iter.next() else {
        return merkle::empty_root();
    };
    iter.fold(*last, |right, left| merkle::node_hash(left, &right))
}
