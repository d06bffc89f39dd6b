//! `Watch`.

use tonic::{Request, Response, Status};
use warrant_proto::api;

use crate::context::Context;

pub type WatchStream =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<api::WatchResponse, Status>> + Send>>;

pub(super) async fn watch(
    context: &Context,
    request: Request<api::WatchRequest>,
) -> Result<Response<WatchStream>, Status> {
    todo!("{:p}{:?}", context, request.get_ref())
}
