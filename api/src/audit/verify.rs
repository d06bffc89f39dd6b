//! Recomputes the tree from the event records, a bounded step at a time: what the signer
//! verifies at start (from its record's frontier) and before every signature (the leaves
//! appended since).
//!
//! The work is `tree::verify_leaves` (identity): each leaf recomputed from the exact stored
//! record and compared with the stored leaf row, and every cached interior node compared with
//! its stored row as it completes. This module maps its faults to the signer's (the first bad
//! leaf index and what was wrong), and checks the stored tree at a signed size against the
//! signed frontier.

use warrant_identity::{
    StateError, StateRead,
    audit::{
        merkle::{self, CompactRange},
        tree::{self, TreeError, TreeFault},
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
    tree::verify_leaves(state, from.clone(), to_size, leaves_max as u64).map_err(|e| {
        match e {
            TreeFault::State(e) => VerifyError::State(e),
            // The signer asks only within the tree it just read: past it is a bug, reported
            // as the corrupt-state error it would otherwise hide.
            TreeFault::OutOfRange { .. } => {
                VerifyError::State(StateError::corrupt(keys::TREE_SIZE, e.to_string()))
            }
            fault => {
                let index = fault.first_bad_index().unwrap_or(from.size());
                VerifyError::Fault(Fault {
                    index,
                    what: fault.to_string(),
                })
            }
        }
    })
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
        let expected = merkle::fold_right(&hashes[..=taken]);
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
