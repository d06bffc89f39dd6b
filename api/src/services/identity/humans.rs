//! Humans: registering, updating, reading and listing them.

use tonic::Request;
use warrant_identity::{limits, query};
use warrant_proto::{api, log};

use super::{
    credentials::{check_client_secret, hash},
    replies::{ReadBack, get},
    write::{Page, commit_and_read_back, take_idempotency_key},
};
use crate::{context::Context, error::ApiError, storage::storage};

pub(super) async fn register(
    context: &Context,
    request: Request<api::RegisterHumanRequest>,
) -> Result<api::RegisterHumanResponse, ApiError> {
    let caller = context.admin(request.metadata()).await?;
    let mut request = request.into_inner();
    let key = take_idempotency_key(&mut request.idempotency_key)?;
    // Fields are checked once, on the command built below (`Context::commit`); only the
    // plaintext password, which the command never holds, is checked here, before hashing.
    let federated = federated_identity(&request);
    let password_argon2id = if request.password.is_empty() {
        String::new()
    } else {
        check_client_secret("password", &request.password)?;
        hash(request.password.clone()).await?
    };
    // The password stays out of the request digest, which the log keeps.
    let mut digest_source = request.clone();
    digest_source.password.clear();
    let kind = log::command::Kind::RegisterHuman(log::RegisterHuman {
        human_id: request.human_id.clone(),
        display_name: request.display_name.clone(),
        email: request.email.clone(),
        federated,
        password_argon2id,
    });
    let (human, seq) = commit_and_read_back(
        context,
        &caller,
        &key,
        "RegisterHuman",
        &digest_source,
        kind,
        &request.human_id,
    )
    .await?;
    Ok(api::RegisterHumanResponse {
        human: Some(human),
        seq,
    })
}

/// The upstream identity a human logs in as, if the registration names one.
fn federated_identity(request: &api::RegisterHumanRequest) -> Option<log::FederatedIdentity> {
    match (
        request.federated_issuer.as_str(),
        request.federated_subject.as_str(),
    ) {
        ("", "") => None,
        (issuer, subject) => Some(log::FederatedIdentity {
            issuer: issuer.to_string(),
            subject: subject.to_string(),
        }),
    }
}

pub(super) async fn update(
    context: &Context,
    request: Request<api::UpdateHumanRequest>,
) -> Result<api::Human, ApiError> {
    let caller = context.caller(request.metadata()).await?;
    let mut request = request.into_inner();
    let key = take_idempotency_key(&mut request.idempotency_key)?;
    let kind = log::command::Kind::UpdateHuman(log::UpdateHuman {
        human_id: request.human_id.clone(),
        display_name: request.display_name.clone(),
        email: request.email.clone(),
    });
    let (human, _) = commit_and_read_back(
        context,
        &caller,
        &key,
        "UpdateHuman",
        &request,
        kind,
        &request.human_id,
    )
    .await?;
    Ok(human)
}

pub(super) async fn read(
    context: &Context,
    request: Request<api::GetHumanRequest>,
) -> Result<api::Human, ApiError> {
    context.admin(request.metadata()).await?;
    let request = request.into_inner();
    limits::validate_id("human_id", &request.human_id).map_err(ApiError::from)?;
    get(context, request.read.as_ref(), &request.human_id).await
}

pub(super) async fn list(
    context: &Context,
    request: Request<api::ListRequest>,
) -> Result<api::ListHumansResponse, ApiError> {
    context.admin(request.metadata()).await?;
    let page = Page::read(context, request.into_inner()).await?;
    let rows = query::list_humans(&page.reader, &page.after, page.size).map_err(storage)?;
    Ok(api::ListHumansResponse {
        next_page_token: page.next_token(rows.len(), rows.last().map(|r| &r.human_id)),
        humans: rows.into_iter().map(api::Human::reply).collect(),
        applied_seq: page.applied_seq()?,
    })
}
