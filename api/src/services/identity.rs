//! `warrant.v1.IdentityService`: humans, agents and services.

use std::sync::Arc;

use tonic::{Code, Request, Response, Status};
use warrant_identity::{limits, query};
use warrant_proto::{
    api::{self, identity_service_server::IdentityService},
    log, state,
};

use super::{Context, command, principal_status, storage};
use crate::{
    auth::{self, hash_secret},
    error::{ApiError, Reason},
    validate,
};

pub struct IdentityApi {
    pub context: Arc<Context>,
}

#[tonic::async_trait]
impl IdentityService for IdentityApi {
    async fn register_human(
        &self,
        request: Request<api::RegisterHumanRequest>,
    ) -> Result<Response<api::RegisterHumanResponse>, Status> {
        let caller = self.context.admin(request.metadata()).await?;
        let mut request = request.into_inner();
        validate::optional_idempotency_key(&request.idempotency_key)?;
        limits::validate_id("human_id", &request.human_id).map_err(ApiError::from)?;
        limits::validate_text(
            "display_name",
            &request.display_name,
            limits::DISPLAY_NAME_LEN_MAX,
        )
        .map_err(ApiError::from)?;
        limits::validate_text("email", &request.email, limits::EMAIL_LEN_MAX)
            .map_err(ApiError::from)?;
        let key = std::mem::take(&mut request.idempotency_key);
        let kind = log::command::Kind::RegisterHuman(log::RegisterHuman {
            human_id: request.human_id.clone(),
            display_name: request.display_name.clone(),
            email: request.email.clone(),
        });
        let accepted = self
            .context
            .commit(command(&caller, &key, "RegisterHuman", &request, kind))
            .await?;
        let human = read_human(&self.context, &request.human_id, accepted.seq).await?;
        Ok(Response::new(api::RegisterHumanResponse {
            human: Some(human),
            seq: accepted.seq,
        }))
    }

    async fn get_human(
        &self,
        request: Request<api::GetHumanRequest>,
    ) -> Result<Response<api::Human>, Status> {
        self.context.admin(request.metadata()).await?;
        let request = request.into_inner();
        limits::validate_id("human_id", &request.human_id).map_err(ApiError::from)?;
        let consistency = validate::read_consistency(request.read.as_ref())?;
        let reader = self.context.read(consistency).await?;
        let row = query::human(&reader, &request.human_id).map_err(storage)?;
        let row = row.ok_or_else(|| {
            not_found(
                Reason::HumanNotFound,
                format!("human {} is not registered", request.human_id),
            )
        })?;
        Ok(Response::new(human_reply(row)))
    }

    async fn register_agent(
        &self,
        request: Request<api::RegisterAgentRequest>,
    ) -> Result<Response<api::RegisterAgentResponse>, Status> {
        let caller = self.context.admin(request.metadata()).await?;
        let mut request = request.into_inner();
        validate::optional_idempotency_key(&request.idempotency_key)?;
        limits::validate_id("agent_id", &request.agent_id).map_err(ApiError::from)?;
        limits::validate_id("owner_human_id", &request.owner_human_id).map_err(ApiError::from)?;
        limits::validate_name("kind", &request.kind, limits::AGENT_KIND_LEN_MAX)
            .map_err(ApiError::from)?;
        limits::validate_text(
            "description",
            &request.description,
            limits::DESCRIPTION_LEN_MAX,
        )
        .map_err(ApiError::from)?;
        check_client_secret(&request.client_secret)?;
        let key = std::mem::take(&mut request.idempotency_key);
        let secret = request.client_secret.clone();
        let phc = tokio::task::spawn_blocking(move || hash_secret(&secret))
            .await
            .map_err(|e| ApiError::internal(format!("hash client secret: {e}")))??;
        let kind = log::command::Kind::RegisterAgent(log::RegisterAgent {
            agent_id: request.agent_id.clone(),
            owner_human_id: request.owner_human_id.clone(),
            kind: request.kind.clone(),
            description: request.description.clone(),
            credentials: vec![log::Credential {
                credential_id: "secret-1".to_string(),
                kind: Some(log::credential::Kind::ClientSecretArgon2id(phc)),
            }],
        });
        let accepted = self
            .context
            .commit(command(&caller, &key, "RegisterAgent", &request, kind))
            .await?;
        let agent = read_agent(&self.context, &request.agent_id, accepted.seq).await?;
        Ok(Response::new(api::RegisterAgentResponse {
            agent: Some(agent),
            seq: accepted.seq,
        }))
    }

    async fn get_agent(
        &self,
        request: Request<api::GetAgentRequest>,
    ) -> Result<Response<api::Agent>, Status> {
        self.context.admin(request.metadata()).await?;
        let request = request.into_inner();
        limits::validate_id("agent_id", &request.agent_id).map_err(ApiError::from)?;
        let consistency = validate::read_consistency(request.read.as_ref())?;
        let reader = self.context.read(consistency).await?;
        let row = query::agent(&reader, &request.agent_id).map_err(storage)?;
        let row = row.ok_or_else(|| {
            not_found(
                Reason::AgentNotFound,
                format!("agent {} is not registered", request.agent_id),
            )
        })?;
        Ok(Response::new(agent_reply(row)))
    }

    async fn list_agents(
        &self,
        request: Request<api::ListAgentsRequest>,
    ) -> Result<Response<api::ListAgentsResponse>, Status> {
        self.context.admin(request.metadata()).await?;
        let request = request.into_inner();
        if !request.owner_human_id.is_empty() {
            limits::validate_id("owner_human_id", &request.owner_human_id)
                .map_err(ApiError::from)?;
        }
        if !request.page_token.is_empty() {
            limits::validate_id("page_token", &request.page_token).map_err(ApiError::from)?;
        }
        let page_size = if request.page_size == 0 {
            100
        } else {
            request.page_size as u64
        };
        validate::in_range("page_size", page_size, 1, limits::LIST_PAGE_MAX as u64)?;
        let consistency = validate::read_consistency(request.read.as_ref())?;
        let reader = self.context.read(consistency).await?;
        let owner = (!request.owner_human_id.is_empty()).then_some(request.owner_human_id.as_str());
        let rows = query::list_agents(&reader, owner, &request.page_token, page_size as usize)
            .map_err(storage)?;
        let next_page_token = if rows.len() as u64 == page_size {
            rows.last().map(|r| r.agent_id.clone()).unwrap_or_default()
        } else {
            String::new()
        };
        let applied_seq = query::applied_seq(&reader).map_err(storage)?;
        Ok(Response::new(api::ListAgentsResponse {
            agents: rows.into_iter().map(agent_reply).collect(),
            next_page_token,
            applied_seq,
        }))
    }

    async fn register_service(
        &self,
        request: Request<api::RegisterServiceRequest>,
    ) -> Result<Response<api::RegisterServiceResponse>, Status> {
        let caller = self.context.admin(request.metadata()).await?;
        let mut request = request.into_inner();
        validate::optional_idempotency_key(&request.idempotency_key)?;
        limits::validate_id("service_id", &request.service_id).map_err(ApiError::from)?;
        limits::validate_audience("audience", &request.audience).map_err(ApiError::from)?;
        validate::list_len(
            "tools",
            request.tools.len(),
            0,
            limits::TOOLS_PER_SERVICE_MAX,
        )?;
        for (i, tool) in request.tools.iter().enumerate() {
            limits::validate_id(&format!("tools[{i}].name"), &tool.name).map_err(ApiError::from)?;
            limits::validate_text(
                &format!("tools[{i}].description"),
                &tool.description,
                limits::DESCRIPTION_LEN_MAX,
            )
            .map_err(ApiError::from)?;
        }
        let key = std::mem::take(&mut request.idempotency_key);
        let kind = log::command::Kind::RegisterService(log::RegisterService {
            service_id: request.service_id.clone(),
            audience: request.audience.clone(),
            tools: request
                .tools
                .iter()
                .map(|t| log::Tool {
                    name: t.name.clone(),
                    description: t.description.clone(),
                })
                .collect(),
        });
        let accepted = self
            .context
            .commit(command(&caller, &key, "RegisterService", &request, kind))
            .await?;
        let service = read_service(&self.context, &request.service_id, accepted.seq).await?;
        Ok(Response::new(api::RegisterServiceResponse {
            service: Some(service),
            seq: accepted.seq,
        }))
    }

    async fn get_service(
        &self,
        request: Request<api::GetServiceRequest>,
    ) -> Result<Response<api::Service>, Status> {
        self.context.admin(request.metadata()).await?;
        let request = request.into_inner();
        limits::validate_id("service_id", &request.service_id).map_err(ApiError::from)?;
        let consistency = validate::read_consistency(request.read.as_ref())?;
        let reader = self.context.read(consistency).await?;
        let row = query::service(&reader, &request.service_id).map_err(storage)?;
        let row = row.ok_or_else(|| {
            not_found(
                Reason::ServiceNotFound,
                format!("service {} is not registered", request.service_id),
            )
        })?;
        Ok(Response::new(service_reply(row)))
    }
}

fn check_client_secret(secret: &str) -> Result<(), ApiError> {
    let len = secret.len();
    if !(auth::CLIENT_SECRET_LEN_MIN..=auth::CLIENT_SECRET_LEN_MAX).contains(&len) {
        return Err(ApiError::invalid_field(
            if len == 0 {
                Reason::FieldRequired
            } else {
                Reason::FieldInvalid
            },
            "client_secret",
            format!(
                "client_secret is {len} bytes; allowed: {} to {} printable ASCII characters",
                auth::CLIENT_SECRET_LEN_MIN,
                auth::CLIENT_SECRET_LEN_MAX
            ),
        ));
    }
    if !secret.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::invalid_field(
            Reason::FieldInvalid,
            "client_secret",
            "client_secret holds a character outside printable ASCII (0x21..=0x7e)",
        ));
    }
    Ok(())
}

fn not_found(reason: Reason, message: String) -> ApiError {
    ApiError::new(Code::NotFound, reason, message)
}

// After a write commits, the reply is read at least at the write's seq (read-your-writes).
async fn read_human(context: &Context, human_id: &str, seq: u64) -> Result<api::Human, ApiError> {
    let reader = context
        .read(warrant_raft::ReadConsistency::AtLeast(seq))
        .await?;
    let row = query::human(&reader, human_id).map_err(storage)?;
    row.map(human_reply)
        .ok_or_else(|| ApiError::internal("committed human is missing from the projection"))
}

async fn read_agent(context: &Context, agent_id: &str, seq: u64) -> Result<api::Agent, ApiError> {
    let reader = context
        .read(warrant_raft::ReadConsistency::AtLeast(seq))
        .await?;
    let row = query::agent(&reader, agent_id).map_err(storage)?;
    row.map(agent_reply)
        .ok_or_else(|| ApiError::internal("committed agent is missing from the projection"))
}

async fn read_service(
    context: &Context,
    service_id: &str,
    seq: u64,
) -> Result<api::Service, ApiError> {
    let reader = context
        .read(warrant_raft::ReadConsistency::AtLeast(seq))
        .await?;
    let row = query::service(&reader, service_id).map_err(storage)?;
    row.map(service_reply)
        .ok_or_else(|| ApiError::internal("committed service is missing from the projection"))
}

fn human_reply(row: state::HumanRow) -> api::Human {
    api::Human {
        human_id: row.human_id,
        display_name: row.display_name,
        email: row.email,
        status: principal_status(row.status),
        created_seq: row.created_seq,
    }
}

fn agent_reply(row: state::AgentRow) -> api::Agent {
    api::Agent {
        agent_id: row.agent_id,
        owner_human_id: row.owner_human_id,
        kind: row.kind,
        description: row.description,
        status: principal_status(row.status),
        credential_ids: row
            .credentials
            .into_iter()
            .map(|c| c.credential_id)
            .collect(),
        created_seq: row.created_seq,
    }
}

fn service_reply(row: state::ServiceRow) -> api::Service {
    api::Service {
        service_id: row.service_id,
        audience: row.audience,
        tools: row
            .tools
            .into_iter()
            .map(|t| api::Tool {
                name: t.name,
                description: t.description,
            })
            .collect(),
        status: principal_status(row.status),
        created_seq: row.created_seq,
    }
}
