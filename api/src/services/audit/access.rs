//! `EffectiveAccess`.

use tonic::{Request, Response, Status};
use warrant_proto::api;

use crate::context::Context;

pub(super) async fn effective_access(
    context: &Context,
    request: Request<api::EffectiveAccessRequest>,
) -> Result<Response<api::EffectiveAccessResponse>, Status> {
    todo!("{:p}{:?}", context, request.get_ref())
}
