//! Agents: registering, updating, binding to a device, reading and listing them. Their
//! credentials are in `credentials`.

use tonic::Request;
use warrant_identity::{limits, query};
use warrant_proto::{api, log};

use super::{
    credentials::{check_client_secret, hash, stored_credential, strip_secrets},
    replies::{ReadBack, get},
    write::{Page, commit_and_read_back, take_idempotency_key},
};
use crate::{context::Context, error::ApiError, storage::storage, validate};

/// The id of the client secret an agent is registered with.
const FIRST_SECRET_ID: &str = "secret-1";

pub(super) async fn register(
    context: &Context,
    request: Request<api::RegisterAgentRequest>,
) -> Result<api::RegisterAgentResponse, ApiError> {
    let caller = context.admin(request.metadata()).await?;
    let mut request = request.into_inner();
    let key = take_idempotency_key(&mut request.idempotency_key)?;
    // Fields are checked once, on the command built below (`Context::commit`); only the
    // plaintext secrets, which the command never holds, are checked here, before hashing.
    let credentials = registered_credentials(&request).await?;
    let mut digest_source = request.clone();
    digest_source.client_secret = context.digest_key.secret(&request.client_secret);
    strip_secrets(&context.digest_key, &mut digest_source.credentials);
    let kind = log::command::Kind::RegisterAgent(log::RegisterAgent {
        agent_id: request.agent_id.clone(),
        owner_human_id: request.owner_human_id.clone(),
        kind: request.kind.clone(),
        description: request.description.clone(),
        credentials,
    });
    let (agent, seq) = commit_and_read_back(
        context,
        &caller,
        &key,
        "RegisterAgent",
        &digest_source,
        kind,
        &request.agent_id,
    )
    .await?;
    Ok(api::RegisterAgentResponse {
        agent: Some(agent),
        seq,
    })
}

/// The credentials an agent is registered with, as the log stores them: its client secret (the
/// only credential when none other is given) and the credentials listed.
async fn registered_credentials(
    request: &api::RegisterAgentRequest,
) -> Result<Vec<log::Credential>, ApiError> {
    let mut credentials = Vec::new();
    if !request.client_secret.is_empty() || request.credentials.is_empty() {
        check_client_secret("client_secret", &request.client_secret)?;
        credentials.push(log::Credential {
            credential_id: FIRST_SECRET_ID.to_string(),
            kind: Some(log::credential::Kind::ClientSecretArgon2id(
                hash(request.client_secret.clone()).await?,
            )),
        });
    }
    validate::list_len(
        "credentials",
        request.credentials.len(),
        0,
        limits::CREDENTIALS_PER_AGENT_MAX,
    )?;
    for (i, credential) in request.credentials.iter().enumerate() {
        credentials.push(stored_credential(&format!("credentials[{i}]"), credential).await?);
    }
    Ok(credentials)
}

pub(super) async fn update(
    context: &Context,
    request: Request<api::UpdateAgentRequest>,
) -> Result<api::Agent, ApiError> {
    let caller = context.caller(request.metadata()).await?;
    let mut request = request.into_inner();
    let key = take_idempotency_key(&mut request.idempotency_key)?;
    let kind = log::command::Kind::UpdateAgent(log::UpdateAgent {
        agent_id: request.agent_id.clone(),
        kind: request.kind.clone(),
        description: request.description.clone(),
    });
    let (agent, _) = commit_and_read_back(
        context,
        &caller,
        &key,
        "UpdateAgent",
        &request,
        kind,
        &request.agent_id,
    )
    .await?;
    Ok(agent)
}

pub(super) async fn bind_device(
    context: &Context,
    request: Request<api::BindAgentDeviceRequest>,
) -> Result<api::Agent, ApiError> {
    let caller = context.caller(request.metadata()).await?;
    let mut request = request.into_inner();
    let key = take_idempotency_key(&mut request.idempotency_key)?;
    let kind = log::command::Kind::BindAgentDevice(log::BindAgentDevice {
        agent_id: request.agent_id.clone(),
        device_id: request.device_id.clone(),
    });
    let (agent, _) = commit_and_read_back(
        context,
        &caller,
        &key,
        "BindAgentDevice",
        &request,
        kind,
        &request.agent_id,
    )
    .await?;
    Ok(agent)
}

pub(super) async fn read(
    context: &Context,
    request: Request<api::GetAgentRequest>,
) -> Result<api::Agent, ApiError> {
    context.auditor(request.metadata()).await?;
    let request = request.into_inner();
    limits::validate_id("agent_id", &request.agent_id).map_err(ApiError::from)?;
    get(context, request.read.as_ref(), &request.agent_id).await
}

pub(super) async fn list(
    context: &Context,
    request: Request<api::ListAgentsRequest>,
) -> Result<api::ListAgentsResponse, ApiError> {
    context.auditor(request.metadata()).await?;
    let request = request.into_inner();
    if !request.owner_human_id.is_empty() {
        limits::validate_id("owner_human_id", &request.owner_human_id).map_err(ApiError::from)?;
    }
    let page = api::ListRequest {
        page_size: request.page_size,
        page_token: request.page_token,
        read: request.read,
    };
    let page = Page::read(context, page).await?;
    let owner = (!request.owner_human_id.is_empty()).then_some(request.owner_human_id.as_str());
    let rows = query::list_agents(&page.reader, owner, &page.after, page.size).map_err(storage)?;
    Ok(api::ListAgentsResponse {
        next_page_token: page.next_token(rows.len(), rows.last().map(|r| &r.agent_id)),
        agents: rows.into_iter().map(api::Agent::reply).collect(),
        applied_seq: page.applied_seq()?,
    })
}
