//! Services (the resources agents call): registering, updating, reading and listing them.

use tonic::Request;
use warrant_identity::{limits, query};
use warrant_proto::{api, log};

use super::{
    replies::{ReadBack, get},
    write::{Page, commit_and_read_back, take_idempotency_key},
};
use crate::{context::Context, error::ApiError, storage::storage, validate};

pub(super) async fn register(
    context: &Context,
    request: Request<api::RegisterServiceRequest>,
) -> Result<api::RegisterServiceResponse, ApiError> {
    let caller = context.admin(request.metadata()).await?;
    let mut request = request.into_inner();
    let key = take_idempotency_key(&mut request.idempotency_key)?;
    let kind = log::command::Kind::RegisterService(log::RegisterService {
        service_id: request.service_id.clone(),
        audience: request.audience.clone(),
        tools: logged_tools(&request.tools)?,
    });
    let (service, seq) = commit_and_read_back(
        context,
        &caller,
        &key,
        "RegisterService",
        &request,
        kind,
        &request.service_id,
    )
    .await?;
    Ok(api::RegisterServiceResponse {
        service: Some(service),
        seq,
    })
}

pub(super) async fn update(
    context: &Context,
    request: Request<api::UpdateServiceRequest>,
) -> Result<api::Service, ApiError> {
    let caller = context.admin(request.metadata()).await?;
    let mut request = request.into_inner();
    let key = take_idempotency_key(&mut request.idempotency_key)?;
    let kind = log::command::Kind::UpdateService(log::UpdateService {
        service_id: request.service_id.clone(),
        tools: logged_tools(&request.tools)?,
    });
    let (service, _) = commit_and_read_back(
        context,
        &caller,
        &key,
        "UpdateService",
        &request,
        kind,
        &request.service_id,
    )
    .await?;
    Ok(service)
}

pub(super) async fn read(
    context: &Context,
    request: Request<api::GetServiceRequest>,
) -> Result<api::Service, ApiError> {
    context.auditor(request.metadata()).await?;
    let request = request.into_inner();
    limits::validate_id("service_id", &request.service_id).map_err(ApiError::from)?;
    get(context, request.read.as_ref(), &request.service_id).await
}

pub(super) async fn list(
    context: &Context,
    request: Request<api::ListRequest>,
) -> Result<api::ListServicesResponse, ApiError> {
    context.auditor(request.metadata()).await?;
    let page = Page::read(context, request.into_inner()).await?;
    let rows = query::list_services(&page.reader, &page.after, page.size).map_err(storage)?;
    Ok(api::ListServicesResponse {
        next_page_token: page.next_token(rows.len(), rows.last().map(|r| &r.service_id)),
        services: rows.into_iter().map(api::Service::reply).collect(),
        applied_seq: page.applied_seq()?,
    })
}

/// A service's tools as the log keeps them.
/// A request's tools as the log stores them. The list's length is bounded before it is copied
/// (LIST_TOO_LONG); every field of the command is checked once, in `Context::commit`.
fn logged_tools(tools: &[api::Tool]) -> Result<Vec<log::Tool>, ApiError> {
    validate::list_len("tools", tools.len(), 0, limits::TOOLS_PER_SERVICE_MAX)?;
    Ok(tools
        .iter()
        .map(|t| log::Tool {
            name: t.name.clone(),
            description: t.description.clone(),
        })
        .collect())
}
