//! `GetCheckpoint`, `GetEvent`, `ProveInclusion`, `ProveConsistency`.

use tonic::{Request, Response, Status};
use warrant_proto::api;

use crate::context::Context;

pub(super) async fn get_checkpoint(
    context: &Context,
    request: Request<api::GetCheckpointRequest>,
) -> Result<Response<api::Checkpoint>, Status> {
    todo!("{:p}{:?}", context, request.get_ref())
}

pub(super) async fn get_event(
    context: &Context,
    request: Request<api::GetEventRequest>,
) -> Result<Response<api::GetEventResponse>, Status> {
    todo!("{:p}{:?}", context, request.get_ref())
}

pub(super) async fn prove_inclusion(
    context: &Context,
    request: Request<api::ProveInclusionRequest>,
) -> Result<Response<api::InclusionProof>, Status> {
    todo!("{:p}{:?}", context, request.get_ref())
}

pub(super) async fn prove_consistency(
    context: &Context,
    request: Request<api::ProveConsistencyRequest>,
) -> Result<Response<api::ConsistencyProof>, Status> {
    todo!("{:p}{:?}", context, request.get_ref())
}
