//! Humans: registering (one, or an import of many), updating, reading and listing them.

use tonic::Request;
use warrant_identity::{limits, query};
use warrant_proto::{api, log};

use super::{
    credentials::{check_client_secret, hash},
    replies::{ReadBack, get},
    write::{Page, commit_and_read_back, take_idempotency_key},
};
use crate::{
    context::{Context, command},
    error::ApiError,
    storage::storage,
    validate,
};

pub(super) async fn register(
    context: &Context,
    request: Request<api::RegisterHumanRequest>,
) -> Result<api::RegisterHumanResponse, ApiError> {
    let caller = context.admin(request.metadata()).await?;
    let mut request = request.into_inner();
    let key = take_idempotency_key(&mut request.idempotency_key)?;
    // Fields are checked once, on the command built below (`Context::commit`); only the
    // plaintext password, which the command never holds, is checked here, before hashing.
    let federated = federated_identity(&request.federated_issuer, &request.federated_subject);
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

/// An import: every human in one command, all or none (see `warrant.v1.RegisterHumans`).
pub(super) async fn register_many(
    context: &Context,
    request: Request<api::RegisterHumansRequest>,
) -> Result<api::RegisterHumansResponse, ApiError> {
    let caller = context.admin(request.metadata()).await?;
    let mut request = request.into_inner();
    let key = take_idempotency_key(&mut request.idempotency_key)?;
    // The list is bounded here, with its own reason (LIST_TOO_LONG), before it is read; each
    // human's fields, and ids unique within the list, are checked once, in `Context::commit`.
    validate::list_len(
        "humans",
        request.humans.len(),
        1,
        limits::HUMANS_PER_IMPORT_MAX,
    )?;
    let humans = request
        .humans
        .iter()
        .map(|human| log::RegisterHuman {
            human_id: human.human_id.clone(),
            display_name: human.display_name.clone(),
            email: human.email.clone(),
            federated: federated_identity(&human.federated_issuer, &human.federated_subject),
            password_argon2id: String::new(),
        })
        .collect();
    let kind = log::command::Kind::RegisterHumans(log::RegisterHumans { humans });
    let accepted = context
        .commit(command(&caller, &key, "RegisterHumans", &request, kind))
        .await?;
    // The list is 1 to HUMANS_PER_IMPORT_MAX long, and its events end at `accepted.seq`.
    let later_events = request.humans.len() as u64 - 1;
    Ok(api::RegisterHumansResponse {
        first_seq: accepted.seq.saturating_sub(later_events),
        seq: accepted.seq,
    })
}

/// The upstream identity a human logs in as, if the registration names one.
fn federated_identity(issuer: &str, subject: &str) -> Option<log::FederatedIdentity> {
    match (issuer, subject) {
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
    context.auditor(request.metadata()).await?;
    let request = request.into_inner();
    limits::validate_id("human_id", &request.human_id).map_err(ApiError::from)?;
    get(context, request.read.as_ref(), &request.human_id).await
}

pub(super) async fn list(
    context: &Context,
    request: Request<api::ListRequest>,
) -> Result<api::ListHumansResponse, ApiError> {
    context.auditor(request.metadata()).await?;
    let page = Page::read(context, request.into_inner()).await?;
    let rows = query::list_humans(&page.reader, &page.after, page.size).map_err(storage)?;
    Ok(api::ListHumansResponse {
        next_page_token: page.next_token(rows.len(), rows.last().map(|r| &r.human_id)),
        humans: rows.into_iter().map(api::Human::reply).collect(),
        applied_seq: page.applied_seq()?,
    })
}
