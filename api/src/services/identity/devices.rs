//! Devices (a human's machines, which agents may be bound to): registering, updating, reading and
//! listing them.

use tonic::Request;
use warrant_identity::{limits, query};
use warrant_proto::{api, log};

use super::{
    replies::{ReadBack, get},
    write::{Page, commit_and_read_back, take_idempotency_key},
};
use crate::{context::Context, error::ApiError, storage::storage};

pub(super) async fn register(
    context: &Context,
    request: Request<api::RegisterDeviceRequest>,
) -> Result<api::Device, ApiError> {
    let caller = context.caller(request.metadata()).await?;
    let mut request = request.into_inner();
    let key = take_idempotency_key(&mut request.idempotency_key)?;
    let kind = log::command::Kind::RegisterDevice(log::RegisterDevice {
        device_id: request.device_id.clone(),
        owner_human_id: request.owner_human_id.clone(),
        name: request.name.clone(),
        platform: request.platform.clone(),
    });
    let (device, _) = commit_and_read_back(
        context,
        &caller,
        &key,
        "RegisterDevice",
        &request,
        kind,
        &request.device_id,
    )
    .await?;
    Ok(device)
}

pub(super) async fn update(
    context: &Context,
    request: Request<api::UpdateDeviceRequest>,
) -> Result<api::Device, ApiError> {
    let caller = context.caller(request.metadata()).await?;
    let mut request = request.into_inner();
    let key = take_idempotency_key(&mut request.idempotency_key)?;
    let kind = log::command::Kind::UpdateDevice(log::UpdateDevice {
        device_id: request.device_id.clone(),
        name: request.name.clone(),
        platform: request.platform.clone(),
    });
    let (device, _) = commit_and_read_back(
        context,
        &caller,
        &key,
        "UpdateDevice",
        &request,
        kind,
        &request.device_id,
    )
    .await?;
    Ok(device)
}

pub(super) async fn read(
    context: &Context,
    request: Request<api::GetDeviceRequest>,
) -> Result<api::Device, ApiError> {
    context.auditor(request.metadata()).await?;
    let request = request.into_inner();
    limits::validate_id("device_id", &request.device_id).map_err(ApiError::from)?;
    get(context, request.read.as_ref(), &request.device_id).await
}

pub(super) async fn list(
    context: &Context,
    request: Request<api::ListRequest>,
) -> Result<api::ListDevicesResponse, ApiError> {
    context.auditor(request.metadata()).await?;
    let page = Page::read(context, request.into_inner()).await?;
    let rows = query::list_devices(&page.reader, &page.after, page.size).map_err(storage)?;
    Ok(api::ListDevicesResponse {
        next_page_token: page.next_token(rows.len(), rows.last().map(|r| &r.device_id)),
        devices: rows.into_iter().map(api::Device::reply).collect(),
        applied_seq: page.applied_seq()?,
    })
}
