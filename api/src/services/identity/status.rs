//! Disabling and enabling any principal (a human, an agent, a service or a device).

use tonic::Request;
use warrant_proto::{api, log};

use super::write::take_idempotency_key;
use crate::{
    context::{Context, command},
    error::ApiError,
};

pub(super) async fn set(
    context: &Context,
    request: Request<api::SetStatusRequest>,
) -> Result<api::SetStatusResponse, ApiError> {
    let caller = context.caller(request.metadata()).await?;
    let mut request = request.into_inner();
    let key = take_idempotency_key(&mut request.idempotency_key)?;
    let kind = log::command::Kind::SetStatus(log::SetStatus {
        entity: request.entity,
        id: request.id.clone(),
        disabled: request.disabled,
        reason: request.reason.clone(),
    });
    let accepted = context
        .commit(command(&caller, &key, "SetStatus", &request, kind))
        .await?;
    Ok(api::SetStatusResponse {
        seq: accepted.seq,
        changed: accepted.changed,
    })
}
