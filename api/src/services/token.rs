//! `warrant.v1.TokenService`: issue (for an agent itself or under a delegation), exchange
//! (RFC 8693), verify and revoke access tokens.

use std::sync::Arc;

use tonic::{Code, Request, Response, Status};
use warrant_identity::{StateRead, limits, query, validity};
use warrant_proto::{
    api::{self, TokenInvalidReason, token_service_server::TokenService},
    log,
};
use warrant_token::jwt::Expectations;

use super::mint::{ACCESS_TOKEN_TYPE_URN, issue_and_sign};
use crate::{
    auth::{Caller, now_unix_s},
    context::{Context, command},
    error::{ApiError, Reason},
    storage::storage,
    tokens, validate,
};

/// RFC 8693 §2.1 `grant_type`.
pub const TOKEN_EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// RFC 8693 §3: a subject or actor token that is a JWT (the access token's own type is
/// [`ACCESS_TOKEN_TYPE_URN`]).
pub const JWT_TOKEN_TYPE_URN: &str = "urn:ietf:params:oauth:token-type:jwt";

pub struct TokenApi {
    pub context: Arc<Context>,
}

#[tonic::async_trait]
impl TokenService for TokenApi {
    async fn issue(
        &self,
        request: Request<api::IssueRequest>,
    ) -> Result<Response<api::IssueResponse>, Status> {
        let caller = self.context.caller(request.metadata()).await?;
        let agent_id = calling_agent(&caller)?;
        let mut request = request.into_inner();
        validate::optional_idempotency_key(&request.idempotency_key)?;
        // The scope list is bounded here (its own reason, LIST_TOO_LONG); every field of the
        // command is checked once, in `Context::commit`.
        validate::list_len(
            "scopes",
            request.scopes.len(),
            1,
            limits::SCOPES_PER_TOKEN_MAX,
        )?;
        let ttl_seconds = token_ttl(&self.context, request.ttl_seconds)?;
        let key = std::mem::take(&mut request.idempotency_key);
        let issue = log::IssueToken {
            jti: uuid::Uuid::now_v7().to_string(),
            agent_id,
            audience: request.audience.clone(),
            scopes: request.scopes.clone(),
            ttl_seconds,
            key_id: String::new(),
            delegation_id: request.delegation_id.clone(),
            session_id: request.session_id.clone(),
            subject_jti: String::new(),
        };
        let reply = issue_and_sign(&self.context, &caller, &key, "Issue", &request, issue).await?;
        Ok(Response::new(reply))
    }

    async fn exchange(
        &self,
        request: Request<api::ExchangeRequest>,
    ) -> Result<Response<api::IssueResponse>, Status> {
        let metadata = request.metadata().clone();
        let mut request = request.into_inner();
        let caller = if request.actor_token.is_empty() {
            self.context.caller(&metadata).await?
        } else {
            if request.actor_token_type != JWT_TOKEN_TYPE_URN {
                return Err(ApiError::invalid_field(
                    Reason::FieldInvalid,
                    "actor_token_type",
                    format!(
                        "actor_token_type is {:?}; allowed: {JWT_TOKEN_TYPE_URN} (a client assertion)",
                        request.actor_token_type
                    ),
                )
                .into());
            }
            self.context.assertion_caller(&request.actor_token).await?
        };
        let reply = exchange(&self.context, &caller, &mut request).await?;
        Ok(Response::new(reply))
    }

    async fn verify(
        &self,
        request: Request<api::VerifyRequest>,
    ) -> Result<Response<api::VerifyResponse>, Status> {
        let caller = self.context.caller(request.metadata()).await?;
        caller.require_reusable_credential()?;
        let request = request.into_inner();
        check_verify_request(&caller, &request)?;
        let consistency = validate::read_consistency(request.read.as_ref())?;
        let reader = self.context.read(consistency).await?;
        let expect = Expectations {
            issuer: &self.context.issuer,
            audience: (!request.audience.is_empty()).then_some(request.audience.as_str()),
            now_unix_s: now_unix_s(),
            leeway_s: self.context.clock_leeway_s,
        };
        #[cfg(not(feature = "chaos"))]
        let verdict = tokens::check(&reader, &request.token, &expect)?;
        #[cfg(feature = "chaos")]
        let verdict =
            crate::chaos::verify_token(&self.context.node, &reader, &request.token, &expect)?;
        let applied_seq = query::applied_seq(&reader).map_err(storage)?;
        crate::metrics::token_verified(verdict.as_ref().err().map(|invalid| invalid.reason));
        let reply = match verdict {
            Ok(checked) => {
                let issued = checked.issued();
                let owner_human_id = match issued.agent_id.as_str() {
                    "" => String::new(),
                    agent_id => query::agent(&reader, agent_id)
                        .map_err(storage)?
                        .map(|agent| agent.owner_human_id)
                        .unwrap_or_default(),
                };
                let human_id = if issued.subject_kind == log::PrincipalKind::Human as i32 {
                    issued.subject.clone()
                } else {
                    String::new()
                };
                api::VerifyResponse {
                    active: true,
                    reason: TokenInvalidReason::Unspecified as i32,
                    reason_message: String::new(),
                    subject: checked.claims.sub,
                    agent_id: issued.agent_id,
                    owner_human_id,
                    scopes: checked.claims.scopes,
                    audience: issued.audience,
                    jti: checked.claims.jti,
                    issued_at_unix_s: checked.claims.iat,
                    expires_at_unix_s: checked.claims.exp,
                    applied_seq,
                    human_id,
                    actor_chain: issued.actor_chain,
                    delegation_id: issued.delegation_id,
                    session_id: issued.session_id,
                    task: issued.task,
                }
            }
            Err(invalid) => api::VerifyResponse {
                active: false,
                reason: invalid.reason as i32,
                reason_message: invalid.message,
                applied_seq,
                ..Default::default()
            },
        };
        Ok(Response::new(reply))
    }

    async fn revoke(
        &self,
        request: Request<api::RevokeRequest>,
    ) -> Result<Response<api::RevokeResponse>, Status> {
        let caller = self.context.caller(request.metadata()).await?;
        let mut request = request.into_inner();
        validate::optional_idempotency_key(&request.idempotency_key)?;
        let kind = revocation(&request)?;
        let key = std::mem::take(&mut request.idempotency_key);
        let accepted = self
            .context
            .commit(command(&caller, &key, "Revoke", &request, kind))
            .await?;
        Ok(Response::new(api::RevokeResponse {
            seq: accepted.seq,
            changed: accepted.changed,
        }))
    }
}

/// A token's lifetime: the one requested, or the cluster's default when none was.
fn token_ttl(context: &Context, requested: u32) -> Result<u32, ApiError> {
    let ttl_seconds = if requested == 0 {
        context.token_ttl_default_s
    } else {
        requested
    };
    validate::in_range(
        "ttl_seconds",
        u64::from(ttl_seconds),
        1,
        u64::from(limits::TOKEN_TTL_SECONDS_MAX),
    )?;
    Ok(ttl_seconds)
}

/// The one target a revocation names: its field. Exactly one must be set.
fn revocation_target(request: &api::RevokeRequest) -> Result<&'static str, ApiError> {
    let targets = [
        ("jti", &request.jti),
        ("session_id", &request.session_id),
        ("delegation_id", &request.delegation_id),
        ("agent_id", &request.agent_id),
        ("human_id", &request.human_id),
    ];
    let named: Vec<&str> = targets
        .iter()
        .filter(|(_, value)| !value.is_empty())
        .map(|(field, _)| *field)
        .collect();
    let [field] = named.as_slice() else {
        return Err(ApiError::invalid_field(
            Reason::FieldInvalid,
            "jti",
            format!(
                "{} revocation targets are set ({}); allowed: exactly one of jti, session_id, \
                     delegation_id, agent_id, human_id",
                named.len(),
                named.join(", ")
            ),
        ));
    };
    Ok(*field)
}

/// The command a revocation makes, for the one target it names.
fn revocation(request: &api::RevokeRequest) -> Result<log::command::Kind, ApiError> {
    let field = revocation_target(request)?;
    let reason = request.reason.clone();
    let kind = match field {
        // The command's fields are checked in `Context::commit`; only the two targets whose
        // field the command names differently (`id`) are checked here, under their own names.
        "jti" => log::command::Kind::RevokeToken(log::RevokeToken {
            jti: request.jti.clone(),
            reason,
        }),
        "session_id" => log::command::Kind::EndSession(log::EndSession {
            session_id: request.session_id.clone(),
            reason,
        }),
        "delegation_id" => log::command::Kind::RevokeDelegation(log::RevokeDelegation {
            delegation_id: request.delegation_id.clone(),
            reason,
        }),
        "agent_id" => {
            limits::validate_id("agent_id", &request.agent_id).map_err(ApiError::from)?;
            log::command::Kind::SetStatus(log::SetStatus {
                entity: log::EntityKind::Agent as i32,
                id: request.agent_id.clone(),
                disabled: true,
                reason,
            })
        }
        _ => {
            limits::validate_id("human_id", &request.human_id).map_err(ApiError::from)?;
            log::command::Kind::SetStatus(log::SetStatus {
                entity: log::EntityKind::Human as i32,
                id: request.human_id.clone(),
                disabled: true,
                reason,
            })
        }
    };
    Ok(kind)
}

/// The agent making the call: only agents are issued access tokens.
fn calling_agent(caller: &Caller) -> Result<String, ApiError> {
    match caller {
        Caller::Agent { agent_id, .. } => Ok(agent_id.clone()),
        _ => Err(ApiError::new(
            Code::PermissionDenied,
            Reason::PermissionDenied,
            "tokens are issued to the agent they are for, authenticated with its own credential",
        )),
    }
}

fn validate_scopes(scopes: &[String]) -> Result<(), ApiError> {
    validate::list_len("scopes", scopes.len(), 1, limits::SCOPES_PER_TOKEN_MAX)?;
    for (i, scope) in scopes.iter().enumerate() {
        limits::validate_id(&format!("scopes[{i}]"), scope).map_err(ApiError::from)?;
    }
    Ok(())
}

/// RFC 8693 token exchange by `caller` (the actor agent).
pub(crate) async fn exchange(
    context: &Context,
    caller: &Caller,
    request: &mut api::ExchangeRequest,
) -> Result<api::IssueResponse, ApiError> {
    let agent_id = calling_agent(caller)?;
    validate::optional_idempotency_key(&request.idempotency_key)?;
    let scopes = check_exchange(request)?;
    let ttl_seconds = token_ttl(context, request.ttl_seconds)?;
    let now = now_unix_s();
    let expect = Expectations {
        issuer: &context.issuer,
        audience: None,
        now_unix_s: now,
        leeway_s: context.clock_leeway_s,
    };
    // The subject token or the delegation may have been committed through another node a moment
    // ago (`Context::resolve` catches up once). Apply checks both again anyway.
    let (subject, delegation_id) = context
        .resolve(
            |reader| resolve_exchange(reader, &agent_id, request, &scopes, &expect),
            |_| true,
        )
        .await?;
    let key = std::mem::take(&mut request.idempotency_key);
    // The actor token is a single-use credential, spent through the command; it is not part of
    // what a retry must repeat.
    let mut digest_source = request.clone();
    digest_source.actor_token.clear();
    let issue = log::IssueToken {
        jti: uuid::Uuid::now_v7().to_string(),
        agent_id,
        audience: request.resource.clone(),
        scopes,
        ttl_seconds,
        key_id: String::new(),
        delegation_id,
        session_id: String::new(),
        subject_jti: subject.jti,
    };
    issue_and_sign(context, caller, &key, "Exchange", &digest_source, issue).await
}

/// Checks an exchange request's fields, and returns the scopes it asks for.
fn check_exchange(request: &api::ExchangeRequest) -> Result<Vec<String>, ApiError> {
    if request.grant_type != TOKEN_EXCHANGE_GRANT {
        return Err(ApiError::invalid_field(
            Reason::FieldInvalid,
            "grant_type",
            format!(
                "grant_type is {:?}; allowed: {TOKEN_EXCHANGE_GRANT}",
                request.grant_type
            ),
        ));
    }
    if !matches!(
        request.subject_token_type.as_str(),
        ACCESS_TOKEN_TYPE_URN | JWT_TOKEN_TYPE_URN
    ) {
        return Err(ApiError::invalid_field(
            Reason::FieldInvalid,
            "subject_token_type",
            format!(
                "subject_token_type is {:?}; allowed: {ACCESS_TOKEN_TYPE_URN} or {JWT_TOKEN_TYPE_URN}",
                request.subject_token_type
            ),
        ));
    }
    if request.subject_token.is_empty() {
        return Err(ApiError::invalid_field(
            Reason::FieldRequired,
            "subject_token",
            "subject_token is empty; allowed: a Warrant access token",
        ));
    }
    limits::validate_audience("resource", &request.resource).map_err(ApiError::from)?;
    let scopes = scope_list(&request.scope);
    validate_scopes(&scopes)?;
    if !request.delegation_id.is_empty() {
        limits::validate_id("delegation_id", &request.delegation_id).map_err(ApiError::from)?;
    }
    Ok(scopes)
}

/// The scopes of an OAuth `scope` parameter: space-separated, empty parts ignored.
pub(crate) fn scope_list(scope: &str) -> Vec<String> {
    scope
        .split(' ')
        .filter(|it| !it.is_empty())
        .map(str::to_string)
        .collect()
}

/// The subject token's logged issuance and the delegation the actor acts under, as `state` knows
/// them.
fn resolve_exchange(
    state: &dyn StateRead,
    agent_id: &str,
    request: &api::ExchangeRequest,
    scopes: &[String],
    expect: &Expectations<'_>,
) -> Result<(log::TokenIssued, String), ApiError> {
    let subject = match tokens::check(state, &request.subject_token, expect)? {
        Ok(checked) => checked.issued(),
        Err(invalid) => {
            return Err(ApiError::new(
                Code::FailedPrecondition,
                Reason::SubjectTokenInactive,
                format!(
                    "the subject token is not valid ({}): {}",
                    invalid.reason.as_str_name(),
                    invalid.message
                ),
            ));
        }
    };
    let is_human_session =
        subject.subject_kind == log::PrincipalKind::Human as i32 && subject.agent_id.is_empty();
    if !is_human_session && subject.delegation_id.is_empty() {
        return Err(ApiError::new(
            Code::FailedPrecondition,
            Reason::SubjectTokenInactive,
            "the subject token is an agent's token for itself; allowed: a human's session token \
             or a token an agent holds under a delegation",
        ));
    }
    let delegation_id = if request.delegation_id.is_empty() {
        find_delegation(
            state,
            agent_id,
            &subject,
            &request.resource,
            scopes,
            expect.now_unix_s,
        )?
    } else {
        request.delegation_id.clone()
    };
    Ok((subject, delegation_id))
}

/// The first delegation (in id order) to `agent_id` that continues `subject`'s authority, covers
/// `audience` and `scopes`, and is in force.
fn find_delegation(
    state: &dyn StateRead,
    agent_id: &str,
    subject: &log::TokenIssued,
    audience: &str,
    scopes: &[String],
    now_unix_s: u64,
) -> Result<String, ApiError> {
    for row in query::delegations_to(state, agent_id, limits::LIST_PAGE_MAX).map_err(storage)? {
        let Some(grant) = row.created else { continue };
        // Apply checks the same rule again when it decides the exchange.
        let continues = validity::continues_subject_token(&grant, subject);
        let covers = grant.audiences.iter().any(|it| it == audience)
            && scopes.iter().all(|scope| grant.scopes.contains(scope));
        if continues
            && covers
            && validity::delegation_chain(state, &grant.delegation_id, now_unix_s)
                .map_err(storage)?
                .is_ok()
        {
            return Ok(grant.delegation_id);
        }
    }
    Err(ApiError::new(
        Code::FailedPrecondition,
        Reason::DelegationNotFound,
        format!(
            "no delegation in force to agent {agent_id} continues the subject token's authority \
             and covers {audience} with scopes {}",
            scopes.join(" ")
        ),
    ))
}

/// A Verify request names the audience it expects (only admins may skip the check) and a token.
fn check_verify_request(caller: &Caller, request: &api::VerifyRequest) -> Result<(), ApiError> {
    if !request.audience.is_empty() {
        limits::validate_audience("audience", &request.audience).map_err(ApiError::from)?;
    } else if *caller != Caller::Admin {
        return Err(ApiError::invalid_field(
            Reason::FieldRequired,
            "audience",
            "audience is empty; allowed: the audience you expect (only admins may skip the check)",
        ));
    }
    if request.token.is_empty() {
        return Err(ApiError::invalid_field(
            Reason::FieldRequired,
            "token",
            "token is empty; allowed: a compact JWS access token",
        ));
    }
    Ok(())
}
