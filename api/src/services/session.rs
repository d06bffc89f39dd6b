//! `warrant.v1.SessionService`: human logins (upstream id_token or local password) and agent
//! sessions.

use std::sync::Arc;

use tonic::{Code, Request, Response, Status, metadata::MetadataMap};
use warrant_identity::{limits, query};
use warrant_proto::{
    api::{self, session_service_server::SessionService},
    log,
};
use warrant_token::id_token;

use super::mint::commit_and_sign;
use crate::{
    auth::{Caller, failure_log::Claimed, now_unix_ms, now_unix_s},
    context::{Context, command},
    error::{ApiError, Reason},
    storage::storage,
    validate,
};

/// Longest local password accepted; argon2 cost grows with it.
pub const PASSWORD_LEN_MAX: usize = 256;
/// Hex digits of an id_token's single-use digest that name it when it is spent (192 bits).
const ID_TOKEN_DIGEST_HEX_LEN: usize = 48;

pub struct SessionApi {
    pub context: Arc<Context>,
}

#[tonic::async_trait]
impl SessionService for SessionApi {
    async fn start_session(
        &self,
        request: Request<api::StartSessionRequest>,
    ) -> Result<Response<api::StartSessionResponse>, Status> {
        let metadata = request.metadata().clone();
        let mut request = request.into_inner();
        validate::optional_idempotency_key(&request.idempotency_key)?;
        let ttl_seconds = self.session_ttl(request.ttl_seconds)?;
        let login = self.login(&request, &metadata).await?;
        let key = std::mem::take(&mut request.idempotency_key);
        let reply = self.start(login, ttl_seconds, &key, &request).await?;
        Ok(Response::new(reply))
    }

    async fn end_session(
        &self,
        request: Request<api::EndSessionRequest>,
    ) -> Result<Response<api::EndSessionResponse>, Status> {
        let caller = self.context.caller(request.metadata()).await?;
        let mut request = request.into_inner();
        validate::optional_idempotency_key(&request.idempotency_key)?;
        let key = std::mem::take(&mut request.idempotency_key);
        let kind = log::command::Kind::EndSession(log::EndSession {
            session_id: request.session_id.clone(),
            reason: request.reason.clone(),
        });
        let accepted = self
            .context
            .commit(command(&caller, &key, "EndSession", &request, kind))
            .await?;
        Ok(Response::new(api::EndSessionResponse {
            seq: accepted.seq,
            changed: accepted.changed,
        }))
    }
}

type Login = (Caller, log::AuthMethod, Option<log::FederatedIdentity>);

impl SessionApi {
    /// A session's lifetime: the one requested, or the cluster's default when none was.
    fn session_ttl(&self, requested: u32) -> Result<u32, ApiError> {
        let ttl_seconds = if requested == 0 {
            self.context.session_ttl_default_s
        } else {
            requested
        };
        validate::in_range(
            "ttl_seconds",
            u64::from(ttl_seconds),
            1,
            u64::from(limits::SESSION_TTL_SECONDS_MAX),
        )?;
        Ok(ttl_seconds)
    }

    /// Who logs in: a human with an id_token or a password in the request, else an agent with
    /// its credential in the metadata.
    async fn login(
        &self,
        request: &api::StartSessionRequest,
        metadata: &MetadataMap,
    ) -> Result<Login, ApiError> {
        if !request.id_token.is_empty() {
            // The id_token's subject is not trusted before it verifies: counted as unnamed.
            let claimed = Claimed::unnamed(log::PrincipalKind::Human);
            return self.federated_login(request).await.inspect_err(|error| {
                self.context
                    .auth
                    .failure_log()
                    .record_error(&claimed, error, now_unix_ms())
            });
        }
        if !request.human_id.is_empty() || !request.password.is_empty() {
            return self.password_login(request).await;
        }
        let caller = self.context.caller(metadata).await?;
        let Caller::Agent { method, .. } = &caller else {
            return Err(ApiError::new(
                Code::InvalidArgument,
                Reason::FieldRequired,
                "no login given; allowed: id_token (a federated human), human_id and password \
                 (a local human), or an agent's credential in the metadata",
            )
            .with("field", "id_token"));
        };
        let method = *method;
        Ok((caller, method, None))
    }

    /// Commits the session `login` starts and, for a human, signs the session's access token.
    /// `request` is the request without its idempotency key `key`.
    async fn start(
        &self,
        login: Login,
        ttl_seconds: u32,
        key: &str,
        request: &api::StartSessionRequest,
    ) -> Result<api::StartSessionResponse, ApiError> {
        let (caller, method, federated) = login;
        let (principal_kind, principal_id) = match &caller {
            Caller::Human { human_id, .. } => (log::PrincipalKind::Human, human_id.clone()),
            Caller::Agent { agent_id, .. } => (log::PrincipalKind::Agent, agent_id.clone()),
            Caller::Admin | Caller::Operator { .. } => {
                return Err(ApiError::internal(
                    "a login resolved to the admin or an operator",
                ));
            }
        };
        let is_human = principal_kind == log::PrincipalKind::Human;
        // Secrets stay out of the request digest, which the log keeps for years.
        let mut digest_source = request.clone();
        digest_source.password.clear();
        digest_source.id_token.clear();
        digest_source.human_id = principal_id.clone();
        let mut start = log::StartSession {
            session_id: uuid::Uuid::now_v7().to_string(),
            principal_kind: principal_kind as i32,
            principal_id,
            device_id: request.device_id.clone(),
            auth_method: method as i32,
            ttl_seconds,
            federated,
            token_jti: String::new(),
            token_key_id: String::new(),
            token_audience: String::new(),
        };
        if is_human {
            start.token_jti = uuid::Uuid::now_v7().to_string();
            start.token_audience = self.context.issuer.clone();
        }
        let build = |key_id: &str| {
            if is_human {
                start.token_key_id = key_id.to_string();
            }
            let kind = log::command::Kind::StartSession(start.clone());
            command(&caller, key, "StartSession", &digest_source, kind)
        };
        let minted = commit_and_sign(&self.context, build, |accepted| {
            accepted.session_started.as_ref()?.token.as_ref()
        })
        .await?;
        let started = minted
            .accepted
            .session_started
            .ok_or_else(|| ApiError::internal("accepted session carries no start"))?;
        Ok(api::StartSessionResponse {
            session_id: started.session_id,
            access_token: minted
                .token
                .map(|token| token.access_token)
                .unwrap_or_default(),
            expires_at_unix_s: started.expires_at_unix_s,
            seq: minted.accepted.seq,
            principal_id: started.principal_id,
        })
    }

    /// A federated human: the id_token must verify against its issuer's configured keys, and the
    /// (issuer, subject) must name a registered human.
    async fn federated_login(&self, request: &api::StartSessionRequest) -> Result<Login, ApiError> {
        let nonce = (!request.nonce.is_empty()).then_some(request.nonce.as_str());
        let verified = self
            .context
            .federation
            .verify(
                &request.id_token,
                nonce,
                now_unix_s(),
                self.context.clock_leeway_s,
            )
            .await?;
        // Registered a moment ago through another node, perhaps: `resolve` catches up once.
        let human = self
            .context
            .resolve(
                |reader| {
                    query::human_by_federated(reader, &verified.issuer, &verified.subject)
                        .map_err(storage)?
                        .ok_or_else(|| {
                            ApiError::new(
                                Code::Unauthenticated,
                                Reason::CredentialInvalid,
                                format!(
                                    "no human is registered as subject {} of issuer {}",
                                    verified.subject, verified.issuer
                                ),
                            )
                        })
                },
                |e| e.reason == Reason::CredentialInvalid,
            )
            .await?;
        // The id_token is single-use, like a client assertion: the session spends a digest of
        // what the issuer signed through the log, so the same id_token cannot log in twice
        // anywhere, not even with a second signature over the same claims (ES256's (r, n − s)).
        let digest = hex::encode(id_token::single_use_digest(&request.id_token));
        let jti = format!("id_token-{}", &digest[..ID_TOKEN_DIGEST_HEX_LEN]);
        // Apply is the authority on replays; this early look spares the log a doomed write.
        if query::assertion_spent(&self.context.node.reader(), &human.human_id, &jti)
            .map_err(storage)?
        {
            return Err(ApiError::new(
                Code::Unauthenticated,
                Reason::AssertionReplayed,
                "this id_token was already used to log in; allowed: a fresh one from the issuer",
            ));
        }
        Ok((
            Caller::Human {
                human_id: human.human_id.clone(),
                session_id: String::new(),
                assertion: Some(log::AssertionUse {
                    principal_id: human.human_id,
                    jti,
                    expires_at_unix_s: verified.expires_at_unix_s,
                }),
            },
            log::AuthMethod::OidcIdToken,
            Some(log::FederatedIdentity {
                issuer: verified.issuer,
                subject: verified.subject,
            }),
        ))
    }

    /// A local human with a password, where the cluster allows it.
    async fn password_login(&self, request: &api::StartSessionRequest) -> Result<Login, ApiError> {
        if !self.context.allow_local_passwords {
            return Err(ApiError::new(
                Code::FailedPrecondition,
                Reason::LocalPasswordsDisabled,
                "this cluster does not allow local passwords (allow_local_passwords = false); log \
                 in with an id_token from a configured issuer",
            ));
        }
        limits::validate_id("human_id", &request.human_id).map_err(ApiError::from)?;
        if request.password.is_empty() || PASSWORD_LEN_MAX < request.password.len() {
            return Err(ApiError::invalid_field(
                Reason::FieldInvalid,
                "password",
                format!(
                    "password is {} bytes; allowed: 1 to {PASSWORD_LEN_MAX}",
                    request.password.len()
                ),
            ));
        }
        let rejected = || {
            ApiError::new(
                Code::Unauthenticated,
                Reason::CredentialInvalid,
                "unknown human or wrong password",
            )
        };
        let human = self
            .context
            .resolve(
                |reader| {
                    query::human(reader, &request.human_id)
                        .map_err(storage)?
                        .ok_or_else(rejected)
                },
                |e| e.reason == Reason::CredentialInvalid,
            )
            .await;
        let human = match human {
            Ok(human) => Some(human),
            Err(e) if e.reason == Reason::CredentialInvalid => None,
            Err(e) => return Err(e),
        };
        // One hash on the argon2 pool whether or not the human exists or has a password, so the
        // answer and its cost say nothing about which humans exist.
        let phc = human
            .as_ref()
            .map(|human| human.password_argon2id.as_str())
            .filter(|phc| !phc.is_empty());
        let matches = self
            .context
            .auth
            .check_secret(&request.human_id, &request.password, phc)
            .await?;
        let (Some(human), true) = (human, matches) else {
            return Err(rejected());
        };
        Ok((
            Caller::Human {
                human_id: human.human_id,
                session_id: String::new(),
                assertion: None,
            },
            log::AuthMethod::LocalPassword,
            None,
        ))
    }
}
