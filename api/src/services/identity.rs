//! `warrant.v1.IdentityService`: humans, agents and services.

use std::sync::Arc;

use tonic::{Code, Request, Response, Status};
use warrant_identity::{limits, query};
use warrant_proto::{
    api::{self, identity_service_server::IdentityService},
    log, state,
};

use super::{Context, command, principal_status, storage};
use sha2::Digest;

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
        let federated = match (
            request.federated_issuer.as_str(),
            request.federated_subject.as_str(),
        ) {
            ("", "") => None,
            (issuer, subject) => {
                limits::validate_opaque("federated_issuer", issuer, limits::ISSUER_LEN_MAX)
                    .map_err(ApiError::from)?;
                limits::validate_opaque(
                    "federated_subject",
                    subject,
                    limits::FEDERATED_SUBJECT_LEN_MAX,
                )
                .map_err(ApiError::from)?;
                Some(log::FederatedIdentity {
                    issuer: issuer.to_string(),
                    subject: subject.to_string(),
                })
            }
        };
        let password_argon2id = if request.password.is_empty() {
            String::new()
        } else {
            check_client_secret("password", &request.password)?;
            hash(request.password.clone()).await?
        };
        let key = std::mem::take(&mut request.idempotency_key);
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
        let accepted = self
            .context
            .commit(command(
                &caller,
                &key,
                "RegisterHuman",
                &digest_source,
                kind,
            ))
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
        let mut credentials = Vec::new();
        if !request.client_secret.is_empty() || request.credentials.is_empty() {
            check_client_secret("client_secret", &request.client_secret)?;
            credentials.push(log::Credential {
                credential_id: "secret-1".to_string(),
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
        let key = std::mem::take(&mut request.idempotency_key);
        let mut digest_source = request.clone();
        digest_source.client_secret = secret_digest(&request.client_secret);
        strip_secrets(&mut digest_source.credentials);
        let kind = log::command::Kind::RegisterAgent(log::RegisterAgent {
            agent_id: request.agent_id.clone(),
            owner_human_id: request.owner_human_id.clone(),
            kind: request.kind.clone(),
            description: request.description.clone(),
            credentials,
        });
        let accepted = self
            .context
            .commit(command(
                &caller,
                &key,
                "RegisterAgent",
                &digest_source,
                kind,
            ))
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

    async fn update_human(
        &self,
        request: Request<api::UpdateHumanRequest>,
    ) -> Result<Response<api::Human>, Status> {
        let caller = self.context.caller(request.metadata()).await?;
        let mut request = request.into_inner();
        validate::optional_idempotency_key(&request.idempotency_key)?;
        limits::validate_id("human_id", &request.human_id).map_err(ApiError::from)?;
        let key = std::mem::take(&mut request.idempotency_key);
        let kind = log::command::Kind::UpdateHuman(log::UpdateHuman {
            human_id: request.human_id.clone(),
            display_name: request.display_name.clone(),
            email: request.email.clone(),
        });
        let accepted = self
            .context
            .commit(command(&caller, &key, "UpdateHuman", &request, kind))
            .await?;
        Ok(Response::new(
            read_human(&self.context, &request.human_id, accepted.seq).await?,
        ))
    }

    async fn update_agent(
        &self,
        request: Request<api::UpdateAgentRequest>,
    ) -> Result<Response<api::Agent>, Status> {
        let caller = self.context.caller(request.metadata()).await?;
        let mut request = request.into_inner();
        validate::optional_idempotency_key(&request.idempotency_key)?;
        limits::validate_id("agent_id", &request.agent_id).map_err(ApiError::from)?;
        let key = std::mem::take(&mut request.idempotency_key);
        let kind = log::command::Kind::UpdateAgent(log::UpdateAgent {
            agent_id: request.agent_id.clone(),
            kind: request.kind.clone(),
            description: request.description.clone(),
        });
        let accepted = self
            .context
            .commit(command(&caller, &key, "UpdateAgent", &request, kind))
            .await?;
        Ok(Response::new(
            read_agent(&self.context, &request.agent_id, accepted.seq).await?,
        ))
    }

    async fn update_service(
        &self,
        request: Request<api::UpdateServiceRequest>,
    ) -> Result<Response<api::Service>, Status> {
        let caller = self.context.admin(request.metadata()).await?;
        let mut request = request.into_inner();
        validate::optional_idempotency_key(&request.idempotency_key)?;
        limits::validate_id("service_id", &request.service_id).map_err(ApiError::from)?;
        validate::list_len(
            "tools",
            request.tools.len(),
            0,
            limits::TOOLS_PER_SERVICE_MAX,
        )?;
        let key = std::mem::take(&mut request.idempotency_key);
        let kind = log::command::Kind::UpdateService(log::UpdateService {
            service_id: request.service_id.clone(),
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
            .commit(command(&caller, &key, "UpdateService", &request, kind))
            .await?;
        Ok(Response::new(
            read_service(&self.context, &request.service_id, accepted.seq).await?,
        ))
    }

    async fn list_humans(
        &self,
        request: Request<api::ListRequest>,
    ) -> Result<Response<api::ListHumansResponse>, Status> {
        self.context.admin(request.metadata()).await?;
        let (reader, page_size, after) = self.list_page(request.into_inner()).await?;
        let rows = query::list_humans(&reader, &after, page_size).map_err(storage)?;
        let next_page_token = next_page(rows.len(), page_size, rows.last().map(|r| &r.human_id));
        Ok(Response::new(api::ListHumansResponse {
            humans: rows.into_iter().map(human_reply).collect(),
            next_page_token,
            applied_seq: query::applied_seq(&reader).map_err(storage)?,
        }))
    }

    async fn list_services(
        &self,
        request: Request<api::ListRequest>,
    ) -> Result<Response<api::ListServicesResponse>, Status> {
        self.context.admin(request.metadata()).await?;
        let (reader, page_size, after) = self.list_page(request.into_inner()).await?;
        let rows = query::list_services(&reader, &after, page_size).map_err(storage)?;
        let next_page_token = next_page(rows.len(), page_size, rows.last().map(|r| &r.service_id));
        Ok(Response::new(api::ListServicesResponse {
            services: rows.into_iter().map(service_reply).collect(),
            next_page_token,
            applied_seq: query::applied_seq(&reader).map_err(storage)?,
        }))
    }

    async fn register_device(
        &self,
        request: Request<api::RegisterDeviceRequest>,
    ) -> Result<Response<api::Device>, Status> {
        let caller = self.context.caller(request.metadata()).await?;
        let mut request = request.into_inner();
        validate::optional_idempotency_key(&request.idempotency_key)?;
        limits::validate_id("device_id", &request.device_id).map_err(ApiError::from)?;
        limits::validate_id("owner_human_id", &request.owner_human_id).map_err(ApiError::from)?;
        let key = std::mem::take(&mut request.idempotency_key);
        let kind = log::command::Kind::RegisterDevice(log::RegisterDevice {
            device_id: request.device_id.clone(),
            owner_human_id: request.owner_human_id.clone(),
            name: request.name.clone(),
            platform: request.platform.clone(),
        });
        let accepted = self
            .context
            .commit(command(&caller, &key, "RegisterDevice", &request, kind))
            .await?;
        Ok(Response::new(
            read_device(&self.context, &request.device_id, accepted.seq).await?,
        ))
    }

    async fn update_device(
        &self,
        request: Request<api::UpdateDeviceRequest>,
    ) -> Result<Response<api::Device>, Status> {
        let caller = self.context.caller(request.metadata()).await?;
        let mut request = request.into_inner();
        validate::optional_idempotency_key(&request.idempotency_key)?;
        limits::validate_id("device_id", &request.device_id).map_err(ApiError::from)?;
        let key = std::mem::take(&mut request.idempotency_key);
        let kind = log::command::Kind::UpdateDevice(log::UpdateDevice {
            device_id: request.device_id.clone(),
            name: request.name.clone(),
            platform: request.platform.clone(),
        });
        let accepted = self
            .context
            .commit(command(&caller, &key, "UpdateDevice", &request, kind))
            .await?;
        Ok(Response::new(
            read_device(&self.context, &request.device_id, accepted.seq).await?,
        ))
    }

    async fn get_device(
        &self,
        request: Request<api::GetDeviceRequest>,
    ) -> Result<Response<api::Device>, Status> {
        self.context.admin(request.metadata()).await?;
        let request = request.into_inner();
        limits::validate_id("device_id", &request.device_id).map_err(ApiError::from)?;
        let consistency = validate::read_consistency(request.read.as_ref())?;
        let reader = self.context.read(consistency).await?;
        let row = query::device(&reader, &request.device_id)
            .map_err(storage)?
            .ok_or_else(|| {
                not_found(
                    Reason::DeviceNotFound,
                    format!("device {} is not registered", request.device_id),
                )
            })?;
        Ok(Response::new(device_reply(row)))
    }

    async fn list_devices(
        &self,
        request: Request<api::ListRequest>,
    ) -> Result<Response<api::ListDevicesResponse>, Status> {
        self.context.admin(request.metadata()).await?;
        let (reader, page_size, after) = self.list_page(request.into_inner()).await?;
        let rows = query::list_devices(&reader, &after, page_size).map_err(storage)?;
        let next_page_token = next_page(rows.len(), page_size, rows.last().map(|r| &r.device_id));
        Ok(Response::new(api::ListDevicesResponse {
            devices: rows.into_iter().map(device_reply).collect(),
            next_page_token,
            applied_seq: query::applied_seq(&reader).map_err(storage)?,
        }))
    }

    async fn bind_agent_device(
        &self,
        request: Request<api::BindAgentDeviceRequest>,
    ) -> Result<Response<api::Agent>, Status> {
        let caller = self.context.caller(request.metadata()).await?;
        let mut request = request.into_inner();
        validate::optional_idempotency_key(&request.idempotency_key)?;
        limits::validate_id("agent_id", &request.agent_id).map_err(ApiError::from)?;
        let key = std::mem::take(&mut request.idempotency_key);
        let kind = log::command::Kind::BindAgentDevice(log::BindAgentDevice {
            agent_id: request.agent_id.clone(),
            device_id: request.device_id.clone(),
        });
        let accepted = self
            .context
            .commit(command(&caller, &key, "BindAgentDevice", &request, kind))
            .await?;
        Ok(Response::new(
            read_agent(&self.context, &request.agent_id, accepted.seq).await?,
        ))
    }

    async fn set_status(
        &self,
        request: Request<api::SetStatusRequest>,
    ) -> Result<Response<api::SetStatusResponse>, Status> {
        let caller = self.context.caller(request.metadata()).await?;
        let mut request = request.into_inner();
        validate::optional_idempotency_key(&request.idempotency_key)?;
        limits::validate_id("id", &request.id).map_err(ApiError::from)?;
        let key = std::mem::take(&mut request.idempotency_key);
        let kind = log::command::Kind::SetStatus(log::SetStatus {
            entity: request.entity,
            id: request.id.clone(),
            disabled: request.disabled,
            reason: request.reason.clone(),
        });
        let accepted = self
            .context
            .commit(command(&caller, &key, "SetStatus", &request, kind))
            .await?;
        Ok(Response::new(api::SetStatusResponse {
            seq: accepted.seq,
            changed: accepted.changed,
        }))
    }

    async fn add_credential(
        &self,
        request: Request<api::AddCredentialRequest>,
    ) -> Result<Response<api::CredentialResponse>, Status> {
        let caller = self.context.caller(request.metadata()).await?;
        let mut request = request.into_inner();
        let credential = request.credential.clone().unwrap_or_default();
        let add = vec![stored_credential("credential", &credential).await?];
        let key = std::mem::take(&mut request.idempotency_key);
        if let Some(credential) = request.credential.as_mut() {
            strip_secrets(std::slice::from_mut(credential));
        }
        let agent_id = request.agent_id.clone();
        let reply = self
            .change_credentials(
                &caller,
                &key,
                "AddCredential",
                &request,
                agent_id,
                add,
                vec![],
            )
            .await?;
        Ok(Response::new(reply))
    }

    async fn rotate_credential(
        &self,
        request: Request<api::RotateCredentialRequest>,
    ) -> Result<Response<api::CredentialResponse>, Status> {
        let caller = self.context.caller(request.metadata()).await?;
        let mut request = request.into_inner();
        limits::validate_id("old_credential_id", &request.old_credential_id)
            .map_err(ApiError::from)?;
        let credential = request.credential.clone().unwrap_or_default();
        let add = vec![stored_credential("credential", &credential).await?];
        let key = std::mem::take(&mut request.idempotency_key);
        if let Some(credential) = request.credential.as_mut() {
            strip_secrets(std::slice::from_mut(credential));
        }
        let agent_id = request.agent_id.clone();
        let remove = vec![request.old_credential_id.clone()];
        let reply = self
            .change_credentials(
                &caller,
                &key,
                "RotateCredential",
                &request,
                agent_id,
                add,
                remove,
            )
            .await?;
        Ok(Response::new(reply))
    }

    async fn remove_credential(
        &self,
        request: Request<api::RemoveCredentialRequest>,
    ) -> Result<Response<api::CredentialResponse>, Status> {
        let caller = self.context.caller(request.metadata()).await?;
        let mut request = request.into_inner();
        limits::validate_id("credential_id", &request.credential_id).map_err(ApiError::from)?;
        let key = std::mem::take(&mut request.idempotency_key);
        let agent_id = request.agent_id.clone();
        let remove = vec![request.credential_id.clone()];
        let reply = self
            .change_credentials(
                &caller,
                &key,
                "RemoveCredential",
                &request,
                agent_id,
                vec![],
                remove,
            )
            .await?;
        Ok(Response::new(reply))
    }
}

impl IdentityApi {
    /// Validates a page request and passes the read barrier.
    async fn list_page(
        &self,
        request: api::ListRequest,
    ) -> Result<(warrant_raft::StateReader, usize, String), ApiError> {
        if !request.page_token.is_empty() {
            limits::validate_id("page_token", &request.page_token)?;
        }
        let page_size = if request.page_size == 0 {
            100
        } else {
            u64::from(request.page_size)
        };
        validate::in_range("page_size", page_size, 1, limits::LIST_PAGE_MAX as u64)?;
        let consistency = validate::read_consistency(request.read.as_ref())?;
        let reader = self.context.read(consistency).await?;
        Ok((reader, page_size as usize, request.page_token))
    }

    #[allow(clippy::too_many_arguments)]
    async fn change_credentials(
        &self,
        caller: &crate::auth::Caller,
        key: &str,
        method: &str,
        request_without_secrets: &impl prost::Message,
        agent_id: String,
        add: Vec<log::Credential>,
        remove: Vec<String>,
    ) -> Result<api::CredentialResponse, ApiError> {
        validate::optional_idempotency_key(key)?;
        limits::validate_id("agent_id", &agent_id)?;
        let kind = log::command::Kind::ChangeCredentials(log::ChangeCredentials {
            agent_id: agent_id.clone(),
            add,
            remove,
        });
        let accepted = self
            .context
            .commit(command(caller, key, method, request_without_secrets, kind))
            .await?;
        Ok(api::CredentialResponse {
            agent: Some(read_agent(&self.context, &agent_id, accepted.seq).await?),
            seq: accepted.seq,
        })
    }
}

fn next_page(len: usize, page_size: usize, last_id: Option<&String>) -> String {
    match last_id {
        Some(id) if len == page_size => id.clone(),
        _ => String::new(),
    }
}

/// Hashes a secret with argon2id off the async runtime.
async fn hash(secret: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || hash_secret(&secret))
        .await
        .map_err(|e| ApiError::internal(format!("hash secret: {e}")))?
}

/// A secret's place in a request digest: its SHA-256, so a retry with the same secret matches.
/// Client secrets are long random strings (at least 24 characters), so the hash the log keeps
/// gives a guesser nothing to check against cheaply.
fn secret_digest(secret: &str) -> String {
    if secret.is_empty() {
        return String::new();
    }
    hex::encode(sha2::Sha256::digest(secret.as_bytes()))
}

/// Replaces client secrets in `credentials` with their digests before a request is hashed.
fn strip_secrets(credentials: &mut [api::NewCredential]) {
    for credential in credentials {
        if let Some(api::new_credential::Kind::ClientSecret(secret)) = &mut credential.kind {
            *secret = secret_digest(secret);
        }
    }
}

/// A credential as the log stores it: a secret hashed with argon2id, or an Ed25519 public key.
async fn stored_credential(
    field: &str,
    credential: &api::NewCredential,
) -> Result<log::Credential, ApiError> {
    limits::validate_id(&format!("{field}.credential_id"), &credential.credential_id)?;
    let kind = match &credential.kind {
        Some(api::new_credential::Kind::ClientSecret(secret)) => {
            check_client_secret(&format!("{field}.client_secret"), secret)?;
            log::credential::Kind::ClientSecretArgon2id(hash(secret.clone()).await?)
        }
        Some(api::new_credential::Kind::Ed25519PublicKey(key)) => {
            if key.len() != limits::ED25519_PUBLIC_KEY_LEN {
                return Err(ApiError::invalid_field(
                    Reason::FieldInvalid,
                    &format!("{field}.ed25519_public_key"),
                    format!(
                        "{field}.ed25519_public_key is {} bytes; allowed: exactly {} (a raw Ed25519 public key)",
                        key.len(),
                        limits::ED25519_PUBLIC_KEY_LEN
                    ),
                ));
            }
            log::credential::Kind::Ed25519PublicKey(key.clone())
        }
        None => {
            return Err(ApiError::invalid_field(
                Reason::FieldRequired,
                &format!("{field}.kind"),
                format!("{field} has no kind; allowed: client_secret or ed25519_public_key"),
            ));
        }
    };
    Ok(log::Credential {
        credential_id: credential.credential_id.clone(),
        kind: Some(kind),
    })
}

fn check_client_secret(field: &str, secret: &str) -> Result<(), ApiError> {
    let len = secret.len();
    if !(auth::CLIENT_SECRET_LEN_MIN..=auth::CLIENT_SECRET_LEN_MAX).contains(&len) {
        return Err(ApiError::invalid_field(
            if len == 0 {
                Reason::FieldRequired
            } else {
                Reason::FieldInvalid
            },
            field,
            format!(
                "{field} is {len} bytes; allowed: {} to {} printable ASCII characters",
                auth::CLIENT_SECRET_LEN_MIN,
                auth::CLIENT_SECRET_LEN_MAX
            ),
        ));
    }
    if !secret.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::invalid_field(
            Reason::FieldInvalid,
            field,
            format!("{field} holds a character outside printable ASCII (0x21..=0x7e)"),
        ));
    }
    Ok(())
}

fn not_found(reason: Reason, message: String) -> ApiError {
    ApiError::new(Code::NotFound, reason, message)
}

fn human_reply(row: state::HumanRow) -> api::Human {
    let federated = row.federated.unwrap_or_default();
    api::Human {
        human_id: row.human_id,
        display_name: row.display_name,
        email: row.email,
        status: principal_status(row.status),
        created_seq: row.created_seq,
        federated_issuer: federated.issuer,
        federated_subject: federated.subject,
        has_password: !row.password_argon2id.is_empty(),
    }
}

fn device_reply(row: state::DeviceRow) -> api::Device {
    api::Device {
        device_id: row.device_id,
        owner_human_id: row.owner_human_id,
        name: row.name,
        platform: row.platform,
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
        device_id: row.device_id,
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

/// The row a committed write made, read at least at the write's seq (read-your-writes).
async fn read_back<R, T>(
    context: &Context,
    seq: u64,
    what: &str,
    lookup: impl FnOnce(&warrant_raft::StateReader) -> Result<Option<R>, warrant_identity::StateError>,
    reply: impl FnOnce(R) -> T,
) -> Result<T, ApiError> {
    let reader = context
        .read(warrant_raft::ReadConsistency::AtLeast(seq))
        .await?;
    lookup(&reader).map_err(storage)?.map(reply).ok_or_else(|| {
        ApiError::internal(format!("committed {what} is missing from the projection"))
    })
}

async fn read_human(context: &Context, id: &str, seq: u64) -> Result<api::Human, ApiError> {
    read_back(context, seq, "human", |r| query::human(r, id), human_reply).await
}

async fn read_agent(context: &Context, id: &str, seq: u64) -> Result<api::Agent, ApiError> {
    read_back(context, seq, "agent", |r| query::agent(r, id), agent_reply).await
}

async fn read_service(context: &Context, id: &str, seq: u64) -> Result<api::Service, ApiError> {
    read_back(
        context,
        seq,
        "service",
        |r| query::service(r, id),
        service_reply,
    )
    .await
}

async fn read_device(context: &Context, id: &str, seq: u64) -> Result<api::Device, ApiError> {
    read_back(
        context,
        seq,
        "device",
        |r| query::device(r, id),
        device_reply,
    )
    .await
}
