//! `GetCheckpoint`, `GetEvent`, `ProveInclusion`, `ProveConsistency`. Auditors only. Every
//! argument is checked against the tree before anything is read, and every proof is verified
//! against the signer's verified tree before it is sent (`audit::anchor`): a node whose cached
//! nodes went bad answers DATA_LOSS `AUDIT_TREE_CORRUPT` naming the leaf, never a wrong proof.

use prost::Message;
use tonic::{Code, Request, Response, Status};
use warrant_identity::{
    StateRead,
    audit::{
        merkle,
        tree::{self, TreeError},
    },
    keys,
};
use warrant_proto::{api, log};
use warrant_raft::StateReader;

use crate::{
    audit::anchor,
    context::Context,
    error::{ApiError, Reason},
    storage::storage,
    validate,
};

pub(super) async fn get_checkpoint(
    context: &Context,
    request: Request<api::GetCheckpointRequest>,
) -> Result<Response<api::Checkpoint>, Status> {
    context.auditor(request.metadata()).await?;
    let request = request.into_inner();
    let consistency = validate::read_consistency(request.read.as_ref())?;
    // A fresh signature passes its own LINEARIZABLE barrier, which no read option weakens.
    let checkpoint = if request.fresh {
        context.checkpoints.sign_fresh().await?
    } else {
        context.read(consistency).await?;
        context.checkpoints.latest()?
    };
    Ok(Response::new(checkpoint))
}

pub(super) async fn get_event(
    context: &Context,
    request: Request<api::GetEventRequest>,
) -> Result<Response<api::GetEventResponse>, Status> {
    context.auditor(request.metadata()).await?;
    let request = request.into_inner();
    let reader = context
        .read(validate::read_consistency(request.read.as_ref())?)
        .await?;
    let size = tree::size(&reader).map_err(storage)?;
    let seq = request.seq;
    seq_in(seq, size)?;
    let (record, leaf_hash) = stored_event(&reader, seq)?;
    let event = log::Event::decode(record.as_slice())
        .map_err(|e| ApiError::internal(format!("decode the event record of seq {seq}: {e}")))?;
    Ok(Response::new(api::GetEventResponse {
        seq,
        record,
        leaf_hash: leaf_hash.to_vec(),
        event: Some(event),
    }))
}

pub(super) async fn prove_inclusion(
    context: &Context,
    request: Request<api::ProveInclusionRequest>,
) -> Result<Response<api::InclusionProof>, Status> {
    context.auditor(request.metadata()).await?;
    let request = request.into_inner();
    let reader = context
        .read(validate::read_consistency(request.read.as_ref())?)
        .await?;
    let size = proof_size(context, &reader, request.tree_size, "tree_size")?;
    let seq = request.seq;
    seq_in(seq, size)?;
    let index = seq - 1;
    let proof = context
        .checkpoints
        .prove(size, move |state, verified| {
            anchor::inclusion(state, verified, index, size)
        })
        .await?;
    Ok(Response::new(api::InclusionProof {
        leaf_index: index,
        tree_size: size,
        leaf_hash: proof.leaf.to_vec(),
        hashes: proof.path.iter().map(|h| h.to_vec()).collect(),
        root_hash: proof.root.to_vec(),
    }))
}

pub(super) async fn prove_consistency(
    context: &Context,
    request: Request<api::ProveConsistencyRequest>,
) -> Result<Response<api::ConsistencyProof>, Status> {
    context.auditor(request.metadata()).await?;
    let request = request.into_inner();
    let reader = context
        .read(validate::read_consistency(request.read.as_ref())?)
        .await?;
    let new_size = proof_size(context, &reader, request.new_size, "new_size")?;
    let old_size = request.old_size;
    if new_size < old_size {
        return Err(ApiError::new(
            Code::OutOfRange,
            Reason::TreeSizeOutOfRange,
            format!(
                "old_size {old_size} is larger than new_size {new_size}; allowed: 0 to {new_size}"
            ),
        )
        .with("field", "old_size")
        .into());
    }
    let proof = context
        .checkpoints
        .prove(new_size, move |state, verified| {
            anchor::consistency(state, verified, old_size, new_size)
        })
        .await?;
    Ok(Response::new(api::ConsistencyProof {
        old_size,
        new_size,
        hashes: proof.path.iter().map(|h| h.to_vec()).collect(),
        old_root: proof.old_root.to_vec(),
        new_root: proof.new_root.to_vec(),
    }))
}

/// The tree size a proof is asked at: 0 means the latest checkpoint's size, the one a client
/// holds a signature for; never past this node's tree.
fn proof_size(
    context: &Context,
    reader: &StateReader,
    asked: u64,
    field: &'static str,
) -> Result<u64, ApiError> {
    let tree_size = tree::size(reader).map_err(storage)?;
    let size = if asked == 0 {
        context.checkpoints.latest()?.tree_size
    } else {
        asked
    };
    if tree_size < size {
        return Err(ApiError::new(
            Code::OutOfRange,
            Reason::TreeSizeOutOfRange,
            format!("{field} {size} is past this node's tree; allowed: 1 to {tree_size}"),
        )
        .with("field", field)
        .with("tree_size", tree_size.to_string()));
    }
    Ok(size)
}

/// `seq` must name a leaf of the tree of `size` leaves.
fn seq_in(seq: u64, size: u64) -> Result<(), ApiError> {
    if seq == 0 || size < seq {
        return Err(ApiError::new(
            Code::OutOfRange,
            Reason::SeqOutOfRange,
            format!("seq {seq} is not in the tree; allowed: 1 to {size}"),
        )
        .with("field", "seq"));
    }
    Ok(())
}

/// The exact record of `seq` and its stored leaf hash, which must be the record's hash (a
/// flipped record or stored hash is AUDIT_TREE_CORRUPT naming the leaf, never served).
fn stored_event(state: &dyn StateRead, seq: u64) -> Result<(Vec<u8>, merkle::Hash), ApiError> {
    let index = seq - 1;
    let corrupt = |what: String| {
        ApiError::new(
            Code::DataLoss,
            Reason::AuditTreeCorrupt,
            format!("leaf {index} (seq {seq}): {what}"),
        )
        .with("index", index.to_string())
        .with("seq", seq.to_string())
    };
    let record = state
        .get(&keys::event(seq))
        .map_err(storage)?
        .ok_or_else(|| corrupt("the event record is missing under the tree".to_string()))?;
    let stored = match tree::leaf(state, index) {
        Ok(stored) => stored,
        Err(TreeError::State(e)) => return Err(storage(e)),
        Err(e) => return Err(corrupt(format!("the stored leaf: {e}"))),
    };
    if merkle::leaf_hash(&record) != stored {
        return Err(corrupt(
            "the stored leaf hash is not the hash of the stored record".to_string(),
        ));
    }
    Ok((record, stored))
}

#[cfg(test)]
mod tests {
    use warrant_identity::InMemoryState;

    use super::*;

    #[test]
    fn arguments_past_any_tree_are_refused_without_arithmetic() {
        for (seq, size) in [
            (0, 0),
            (0, 5),
            (6, 5),
            (u64::MAX, 5),
            (1, 0),
            (u64::MAX, u64::MAX - 1),
        ] {
            let error = seq_in(seq, size).expect_err("refused");
            assert_eq!(error.reason, Reason::SeqOutOfRange, "{seq} {size}");
        }
        seq_in(1, 1).expect("in range");
        seq_in(u64::MAX, u64::MAX).expect("in range");
    }

    #[test]
    fn a_missing_record_under_the_tree_is_corrupt_not_a_panic() {
        let state = InMemoryState::new();
        let error = stored_event(&state, 1).expect_err("refused");
        assert_eq!(error.reason, Reason::AuditTreeCorrupt);
        assert_eq!(error.code, Code::DataLoss);
    }
}
