//! Proofs from the stored tree, checked against the signer's verified tree before they leave
//! the node. The stored interior nodes are a cache that a flipped byte can make wrong; the
//! verified range was recomputed from the event records. A root at a smaller size is taken
//! from the store only once a consistency proof, also from the store, carries it to the
//! verified root; then the proof asked for is verified against it. A wrong cached node makes
//! one of the two fail, and the caller gets the leaf index where it was found, never the proof.

use warrant_identity::{
    StateError, StateRead,
    audit::{
        merkle::{self, CompactRange, Hash, PROOF_HASHES_MAX},
        tree::{self, TreeError},
    },
};

use super::verify::Fault;

/// Why a proof was not produced.
#[derive(Debug, thiserror::Error)]
pub enum ProofRefusal {
    /// The store disagrees with the verified tree.
    #[error("leaf {}: {}", .0.index, .0.what)]
    Fault(Fault),
    /// The arguments name no tree the verified tree covers (checked before, so rare).
    #[error("{0}")]
    OutOfRange(String),
    #[error(transparent)]
    State(#[from] StateError),
}

fn fault(index: u64, what: String) -> ProofRefusal {
    ProofRefusal::Fault(Fault { index, what })
}

fn tree_error(error: TreeError, index: u64) -> ProofRefusal {
    match error {
        TreeError::OutOfRange(e) => ProofRefusal::OutOfRange(e.to_string()),
        TreeError::Corrupt(what) => fault(index, what),
        TreeError::State(e) => ProofRefusal::State(e),
    }
}

fn bounded(proof: Vec<Hash>, index: u64) -> Result<Vec<Hash>, ProofRefusal> {
    if PROOF_HASHES_MAX < proof.len() {
        return Err(fault(
            index,
            format!(
                "the stored tree gave a proof of {} hashes; allowed: at most {PROOF_HASHES_MAX}",
                proof.len()
            ),
        ));
    }
    Ok(proof)
}

/// The root of the tree of `size` leaves (at most the verified size), proven to be a prefix of
/// the verified tree.
pub fn anchored_root(
    state: &dyn StateRead,
    verified: &CompactRange,
    size: u64,
) -> Result<Hash, ProofRefusal> {
    let top = verified.size();
    if top < size {
        return Err(ProofRefusal::OutOfRange(format!(
            "size {size} is past the verified tree ({top} leaves)"
        )));
    }
    if size == top {
        return Ok(verified.root());
    }
    if size == 0 {
        return Ok(merkle::empty_root());
    }
    let stored = tree::root(state, size).map_err(|e| tree_error(e, size))?;
    let proof = bounded(
        tree::consistency_proof(state, size, top).map_err(|e| tree_error(e, size))?,
        size,
    )?;
    merkle::verify_consistency(size, top, &stored, &verified.root(), &proof).map_err(|e| {
        fault(
            size,
            format!(
                "the stored tree at size {size} does not prove consistent with the verified \
                 tree at size {top} ({e}): a cached interior node is wrong"
            ),
        )
    })?;
    Ok(stored)
}

/// An inclusion proof: the stored leaf hash, the audit path and the root it leads to.
pub struct Inclusion {
    pub leaf: Hash,
    pub path: Vec<Hash>,
    pub root: Hash,
}

/// The inclusion proof of leaf `index` in the tree of `size` leaves, verified.
pub fn inclusion(
    state: &dyn StateRead,
    verified: &CompactRange,
    index: u64,
    size: u64,
) -> Result<Inclusion, ProofRefusal> {
    if size <= index {
        return Err(ProofRefusal::OutOfRange(format!(
            "leaf index {index} is not below size {size}"
        )));
    }
    let root = anchored_root(state, verified, size)?;
    let leaf = tree::leaf(state, index).map_err(|e| tree_error(e, index))?;
    let path = bounded(
        tree::inclusion_proof(state, index, size).map_err(|e| tree_error(e, index))?,
        index,
    )?;
    merkle::verify_inclusion(index, size, &leaf, &path, &root).map_err(|e| {
        fault(
            index,
            format!(
                "the stored audit path of leaf {index} at size {size} does not lead to the \
                 verified root ({e}): a cached node on it is wrong"
            ),
        )
    })?;
    Ok(Inclusion { leaf, path, root })
}

/// A consistency proof with both roots.
pub struct Consistency {
    pub path: Vec<Hash>,
    pub old_root: Hash,
    pub new_root: Hash,
}

/// The consistency proof from `old_size` to `new_size`, verified. Every tree is consistent
/// with the empty one and with itself: those proofs are empty (RFC 9162 section 2.1.4).
pub fn consistency(
    state: &dyn StateRead,
    verified: &CompactRange,
    old_size: u64,
    new_size: u64,
) -> Result<Consistency, ProofRefusal> {
    if new_size < old_size {
        return Err(ProofRefusal::OutOfRange(format!(
            "old size {old_size} is larger than new size {new_size}"
        )));
    }
    let new_root = anchored_root(state, verified, new_size)?;
    let old_root = anchored_root(state, verified, old_size)?;
    if old_size == 0 || old_size == new_size {
        return Ok(Consistency {
            path: Vec::new(),
            old_root,
            new_root,
        });
    }
    let path = bounded(
        tree::consistency_proof(state, old_size, new_size).map_err(|e| tree_error(e, old_size))?,
        old_size,
    )?;
    merkle::verify_consistency(old_size, new_size, &old_root, &new_root, &path).map_err(|e| {
        fault(
            old_size,
            format!(
                "the stored consistency proof from {old_size} to {new_size} does not verify \
                 ({e}): a cached interior node is wrong"
            ),
        )
    })?;
    Ok(Consistency {
        path,
        old_root,
        new_root,
    })
}
