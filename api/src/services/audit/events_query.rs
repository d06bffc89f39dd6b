//! `Query`.

use tonic::{Request, Response, Status};
use warrant_proto::api;

use crate::context::Context;

pub(super) async fn query(
    context: &Context,
    request: Request<api::QueryEventsRequest>,
) -> Result<Response<api::QueryEventsResponse>, Status> {
    todo!("{:p}{:?}", context, request.get_ref())
}
