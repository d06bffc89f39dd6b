//! `Export`.

use tonic::{Request, Response, Status};
use warrant_proto::api;

use crate::context::Context;

pub type ExportStream =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<api::ExportChunk, Status>> + Send>>;

pub(super) async fn export(
    context: &Context,
    request: Request<api::ExportRequest>,
) -> Result<Response<ExportStream>, Status> {
    todo!("{:p}{:?}", context, request.get_ref())
}
