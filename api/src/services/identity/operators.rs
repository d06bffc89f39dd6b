//! Named operators: registering them. They authenticate with client certificates naming
//! `<operator_id>.operator.warrant.internal`; the bootstrap admin token may register the first.

use tonic::Request;
use warrant_proto::{api, log};

use super::write::take_idempotency_key;
use crate::{
    context::{Context, command},
    error::ApiError,
};

pub(super) async fn register(
    context: &Context,
    request: Request<api::RegisterOperatorRequest>,
) -> Result<api::RegisterOperatorResponse, ApiError> {
    let caller = context.admin(request.metadata()).await?;
    let mut request = request.into_inner();
    let key = take_idempotency_key(&mut request.idempotency_key)?;
    let kind = log::command::Kind::RegisterOperator(log::RegisterOperator {
        operator_id: request.operator_id.clone(),
        role: request.role,
        display_name: request.display_name.clone(),
    });
    let accepted = context
        .commit(command(&caller, &key, "RegisterOperator", &request, kind))
        .await?;
    Ok(api::RegisterOperatorResponse {
        operator_id: request.operator_id,
        seq: accepted.seq,
    })
}
