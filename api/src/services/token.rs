//! `warrant.v1.TokenService`: issue, verify and revoke access tokens.

use std::{
    sync::Arc,
    time::{SystemTime, UNIX_EPOCH},
};

use tonic::{Code, Request, Response, Status};
use warrant_identity::{StateRead, limits, query};
use warrant_proto::{
    api::{self, TokenInvalidReason, token_service_server::TokenService},
    log, state,
};

use warrant_token::jwt::{self, AccessClaims, Expectations, Invalid, KeyLookup};

use super::{Context, command, storage};
use crate::{
    auth::Caller,
    error::{ApiError, Reason},
    validate,
};

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
        let Caller::Agent { agent_id } = &caller else {
            return Err(ApiError::new(
                Code::PermissionDenied,
                Reason::PermissionDenied,
                "Issue is called by the agent the token is for, with its own credential",
            )
            .into());
        };
        let mut request = request.into_inner();
        validate::optional_idempotency_key(&request.idempotency_key)?;
        limits::validate_audience("audience", &request.audience).map_err(ApiError::from)?;
        validate::list_len(
            "scopes",
            request.scopes.len(),
            1,
            limits::SCOPES_PER_TOKEN_MAX,
        )?;
        for (i, scope) in request.scopes.iter().enumerate() {
            limits::validate_id(&format!("scopes[{i}]"), scope).map_err(ApiError::from)?;
        }
        let ttl_seconds = if request.ttl_seconds == 0 {
            self.context.token_ttl_default_s
        } else {
            request.ttl_seconds
        };
        validate::in_range(
            "ttl_seconds",
            u64::from(ttl_seconds),
            1,
            u64::from(limits::TOKEN_TTL_SECONDS_MAX),
        )?;
        let key = std::mem::take(&mut request.idempotency_key);
        let kind = log::command::Kind::IssueToken(log::IssueToken {
            jti: uuid::Uuid::now_v7().to_string(),
            agent_id: agent_id.clone(),
            audience: request.audience.clone(),
            scopes: request.scopes.clone(),
            ttl_seconds,
            key_id: self.context.signing_key.key_id().to_string(),
        });
        let accepted = self
            .context
            .commit(command(&caller, &key, "Issue", &request, kind))
            .await?;
        let issued = accepted
            .token_issued
            .ok_or_else(|| ApiError::internal("accepted issuance carries no claims"))?;
        // The token is signed only now, after its issuance is committed: no token exists whose
        // issuance is not in the log. A replayed issuance is signed again to the same bytes.
        if issued.key_id != self.context.signing_key.key_id() {
            return Err(ApiError::new(
                Code::FailedPrecondition,
                Reason::IssuedByOtherNode,
                format!(
                    "this idempotency key was first used on the node with key {}; retry there",
                    issued.key_id
                ),
            )
            .into());
        }
        let claims = AccessClaims::from_issued(&self.context.issuer, &issued);
        let access_token = jwt::sign(&self.context.signing_key, &claims)
            .map_err(|e| ApiError::internal(e.to_string()))?;
        Ok(Response::new(api::IssueResponse {
            access_token,
            token_type: "Bearer".to_string(),
            expires_in: u32::try_from(
                issued
                    .expires_at_unix_s
                    .saturating_sub(issued.issued_at_unix_s),
            )
            .unwrap_or(u32::MAX),
            jti: issued.jti,
            seq: accepted.seq,
            issued_at_unix_s: issued.issued_at_unix_s,
            expires_at_unix_s: issued.expires_at_unix_s,
        }))
    }

    async fn verify(
        &self,
        request: Request<api::VerifyRequest>,
    ) -> Result<Response<api::VerifyResponse>, Status> {
        self.context.admin(request.metadata()).await?;
        let request = request.into_inner();
        if !request.audience.is_empty() {
            limits::validate_audience("audience", &request.audience).map_err(ApiError::from)?;
        }
        if request.token.is_empty() {
            return Err(ApiError::invalid_field(
                Reason::FieldRequired,
                "token",
                "token is empty; allowed: a compact JWS access token",
            )
            .into());
        }
        let consistency = validate::read_consistency(request.read.as_ref())?;
        let reader = self.context.read(consistency).await?;
        let expect = Expectations {
            issuer: &self.context.issuer,
            audience: (!request.audience.is_empty()).then_some(request.audience.as_str()),
            now_unix_s: now_unix_s(),
            leeway_s: self.context.clock_leeway_s,
        };
        let verdict = jwt::verify(&request.token, &PublishedKeys { state: &reader }, &expect)?;
        let verdict = match verdict {
            Ok(claims) => check_state(&reader, claims)?,
            Err(invalid) => Err(invalid),
        };
        let applied_seq = query::applied_seq(&reader).map_err(storage)?;
        let reply = match verdict {
            Ok((claims, token_row, agent)) => api::VerifyResponse {
                active: true,
                reason: TokenInvalidReason::Unspecified as i32,
                reason_message: String::new(),
                subject: claims.sub,
                agent_id: claims.client_id,
                owner_human_id: agent.owner_human_id,
                scopes: claims.scopes,
                audience: token_row.issued.map(|i| i.audience).unwrap_or_default(),
                jti: claims.jti,
                issued_at_unix_s: claims.iat,
                expires_at_unix_s: claims.exp,
                applied_seq,
            },
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
        limits::validate_jti("jti", &request.jti).map_err(ApiError::from)?;
        limits::validate_text("reason", &request.reason, limits::REASON_LEN_MAX)
            .map_err(ApiError::from)?;
        let key = std::mem::take(&mut request.idempotency_key);
        let kind = log::command::Kind::RevokeToken(log::RevokeToken {
            jti: request.jti.clone(),
            reason: request.reason.clone(),
        });
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

/// Signing keys as the log published them.
struct PublishedKeys<'a> {
    state: &'a dyn StateRead,
}

impl KeyLookup for PublishedKeys<'_> {
    type Error = ApiError;

    fn public_key(&self, key_id: &str) -> Result<Option<[u8; 32]>, ApiError> {
        let row = query::signing_key(self.state, key_id).map_err(storage)?;
        Ok(row
            .and_then(|row| row.key)
            .and_then(|key| key.public_key.as_slice().try_into().ok()))
    }
}

type Verified = (jwt::VerifiedClaims, state::TokenRow, state::AgentRow);

/// A token with a good signature is still only valid if the log says so: it was issued with
/// these claims, it is not revoked, and its agent is active.
fn check_state(
    state: &dyn StateRead,
    claims: jwt::VerifiedClaims,
) -> Result<Result<Verified, Invalid>, ApiError> {
    let invalid =
        |reason: TokenInvalidReason, message: String| Ok(Err(Invalid { reason, message }));
    let Some(row) = query::token(state, &claims.jti).map_err(storage)? else {
        return invalid(
            TokenInvalidReason::UnknownToken,
            format!("no issuance of jti {} is in the log", claims.jti),
        );
    };
    let Some(issued) = row.issued.as_ref() else {
        return invalid(
            TokenInvalidReason::UnknownToken,
            "the token's issuance record is empty".to_string(),
        );
    };
    let matches = issued.subject == claims.sub
        && issued.agent_id == claims.client_id
        && issued.expires_at_unix_s == claims.exp
        && issued.issued_at_unix_s == claims.iat
        && issued.scopes == claims.scopes
        && issued.key_id == claims.key_id
        && claims.aud.contains(&issued.audience);
    if !matches {
        return invalid(
            TokenInvalidReason::UnknownToken,
            "the token's claims differ from its logged issuance".to_string(),
        );
    }
    if row.revoked {
        return invalid(
            TokenInvalidReason::Revoked,
            format!("the token was revoked at seq {}", row.revoked_seq),
        );
    }
    let Some(agent) = query::agent(state, &issued.agent_id).map_err(storage)? else {
        return invalid(
            TokenInvalidReason::AgentDisabled,
            format!("agent {} no longer exists", issued.agent_id),
        );
    };
    if agent.status != state::Status::Active as i32 {
        return invalid(
            TokenInvalidReason::AgentDisabled,
            format!("agent {} is disabled", issued.agent_id),
        );
    }
    Ok(Ok((claims, row, agent)))
}

fn now_unix_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
