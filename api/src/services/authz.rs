//! `warrant.v1.AuthzService`: may the agent holding a token call a tool now? Every answer is a
//! receipt (`AccessDecided`) in the log.
//!
//! The edge checks what the log cannot: the caller, the request's fields, and the presented
//! token's signature and claims against its logged issuance (`tokens::check_issuance`, without
//! the audience: the decision checks the audience against the service and records
//! `AUDIENCE_MISMATCH`; and without whether the issuance is still in force, which the decision
//! asks at its own position, so that the denial of a revoked token still names the token, its
//! agent and its human). What it found (a jti, or why the token is invalid) goes into the
//! decision. **SYNC** commits an `Authorize` command, decided in apply at its log position.
//! **ASYNC** decides on this node after the read barrier, with the same
//! `warrant_identity::access::decide`, replies at once, and queues the receipt
//! (`crate::receipts`); a token under a budgeted delegation is decided SYNC, since only apply
//! may spend a budget.

use std::sync::Arc;

use tonic::{Request, Response, Status};
use warrant_identity::{access, query};
use warrant_proto::{
    api::{self, AuditMode, TokenInvalidReason, authz_service_server::AuthzService},
    log,
};
use warrant_raft::{ReadConsistency, StateReader};
use warrant_token::jwt::{Expectations, Invalid};

use crate::{
    auth::{Caller, now_unix_s},
    context::{Context, command},
    error::{ApiError, Reason},
    storage::storage,
    tokens, validate,
};

pub struct AuthzApi {
    pub context: Arc<Context>,
}

#[tonic::async_trait]
impl AuthzService for AuthzApi {
    async fn authorize(
        &self,
        request: Request<api::AuthorizeRequest>,
    ) -> Result<Response<api::AuthorizeResponse>, Status> {
        let caller = self.context.caller(request.metadata()).await?;
        let reply = authorize(&self.context, &caller, request.into_inner()).await?;
        Ok(Response::new(reply))
    }
}

/// Decides one tool call for the authenticated `caller`, in the mode the request asks for. The
/// body of `AuthzService.Authorize`, shared with the AuthZEN endpoints.
pub async fn authorize(
    context: &Context,
    caller: &Caller,
    mut request: api::AuthorizeRequest,
) -> Result<api::AuthorizeResponse, ApiError> {
    // The receipt's requested_by is the caller: a single-use assertion cannot be spent by an
    // ASYNC decision, which commits nothing under it.
    caller.require_reusable_credential()?;
    validate::optional_idempotency_key(&request.idempotency_key)?;
    let mode = audit_mode(request.audit)?;
    if request.token.is_empty() {
        return Err(ApiError::invalid_field(
            Reason::FieldRequired,
            "token",
            "token is empty; allowed: the access token the agent presented",
        ));
    }
    let consistency = validate::read_consistency(request.read.as_ref())?;
    let reply = match mode {
        AuditMode::Async => authorize_async(context, caller, request, consistency).await?,
        AuditMode::Unspecified | AuditMode::Sync => {
            let verdict = sync_token_verdict(context, &request.token).await?;
            let key = std::mem::take(&mut request.idempotency_key);
            authorize_sync(context, caller, &key, request, verdict).await?
        }
    };
    if let Some(receipt) = &reply.decision {
        crate::metrics::decided(receipt.decision);
    }
    Ok(reply)
}

fn audit_mode(value: i32) -> Result<AuditMode, ApiError> {
    AuditMode::try_from(value).map_err(|_| {
        ApiError::invalid_field(
            Reason::FieldInvalid,
            "audit",
            format!("audit {value} is unknown; allowed: SYNC, ASYNC"),
        )
    })
}

/// What the edge found about the presented token.
struct TokenVerdict {
    /// Set when the signature and claims verified against the logged issuance.
    jti: String,
    /// A `TokenInvalidReason` number otherwise.
    invalid_reason: u32,
    invalid_message: String,
}

impl TokenVerdict {
    fn of(verdict: Result<tokens::Checked, Invalid>) -> Self {
        match verdict {
            Ok(checked) => TokenVerdict {
                jti: checked.claims.jti,
                invalid_reason: 0,
                invalid_message: String::new(),
            },
            Err(invalid) => TokenVerdict {
                jti: String::new(),
                invalid_reason: invalid.reason as u32,
                invalid_message: invalid.message,
            },
        }
    }
}

/// The token's expectations: this cluster's issuer, any audience (the decision compares it with
/// the service's), at this node's clock.
fn expectations(context: &Context) -> Expectations<'_> {
    Expectations {
        issuer: &context.issuer,
        audience: None,
        now_unix_s: now_unix_s(),
        leeway_s: context.clock_leeway_s,
    }
}

/// The token checked on this node's state. A token (or key) this node does not know yet may
/// have been committed through another node a moment ago: it then catches up to the leader's
/// read index once and looks again. Apply checks the token again at the decision's position.
async fn sync_token_verdict(context: &Context, token: &str) -> Result<TokenVerdict, ApiError> {
    let check = || tokens::check_issuance(&context.node.reader(), token, &expectations(context));
    let before = context.node.applied();
    let verdict = check()?;
    let unknown = matches!(
        &verdict,
        Err(Invalid {
            reason: TokenInvalidReason::UnknownToken | TokenInvalidReason::UnknownKey,
            ..
        })
    );
    if unknown
        && let Ok(after) = context
            .node
            .read_barrier(ReadConsistency::Linearizable)
            .await
        && after.seq > before.seq
    {
        return Ok(TokenVerdict::of(check()?));
    }
    Ok(TokenVerdict::of(verdict))
}

/// The `Authorize` command for `request` as this node serves it.
fn authorize_command(
    context: &Context,
    request: &api::AuthorizeRequest,
    verdict: TokenVerdict,
) -> log::Authorize {
    log::Authorize {
        token_jti: verdict.jti,
        token_invalid_reason: verdict.invalid_reason,
        service_id: request.service_id.clone(),
        tool: request.tool.clone(),
        attributes: request.attributes.clone(),
        serving_node_id: context.node.node_id(),
        token_invalid_message: verdict.invalid_message,
    }
}

/// SYNC: commits the decision and replies with its receipt. A retry with the same idempotency
/// key replays the same decision and spends no second budget unit.
async fn authorize_sync(
    context: &Context,
    caller: &Caller,
    idempotency_key: &str,
    request: api::AuthorizeRequest,
    verdict: TokenVerdict,
) -> Result<api::AuthorizeResponse, ApiError> {
    let authorize = authorize_command(context, &request, verdict);
    // The token is a bearer credential and the log keeps digests for years: the digest covers
    // its HMAC under the cluster's digest key, so a retry through another node still matches.
    let mut digest_source = request;
    digest_source.token = context.digest_key.secret(&digest_source.token);
    digest_source.audit = AuditMode::Sync as i32;
    digest_source.read = None;
    let accepted = context
        .commit(command(
            caller,
            idempotency_key,
            "Authorize",
            &digest_source,
            log::command::Kind::Authorize(authorize),
        ))
        .await?;
    let receipt = accepted
        .access_decided
        .ok_or_else(|| ApiError::internal("accepted Authorize carries no receipt"))?;
    Ok(reply(receipt, accepted.seq, AuditMode::Sync))
}

/// ASYNC: decided here at the applied seq after the read barrier, replied at once, the receipt
/// queued for commit. Room for the receipt is reserved before deciding, so a full queue refuses
/// the call with nothing decided.
async fn authorize_async(
    context: &Context,
    caller: &Caller,
    mut request: api::AuthorizeRequest,
    consistency: ReadConsistency,
) -> Result<api::AuthorizeResponse, ApiError> {
    let reader = context.read(consistency).await?;
    let verdict = TokenVerdict::of(tokens::check_issuance(
        &reader,
        &request.token,
        &expectations(context),
    )?);
    let authorize = authorize_command(context, &request, verdict);
    // The fields apply would check, checked here too: the receipt is recorded as decided.
    validate::command_fields(
        &log::command::Kind::Authorize(authorize.clone()),
        now_unix_s(),
    )?;
    let slot = context.receipts.reserve().await?;
    let decided = decide_here(caller, &reader, &authorize)?;
    if !decided.budgeted_delegations.is_empty() {
        // Only apply spends a budget: decided again there, at its log position.
        drop(slot);
        let verdict = TokenVerdict {
            jti: authorize.token_jti,
            invalid_reason: authorize.token_invalid_reason,
            invalid_message: authorize.token_invalid_message,
        };
        let key = std::mem::take(&mut request.idempotency_key);
        return authorize_sync(context, caller, &key, request, verdict).await;
    }
    slot.push(decided.receipt.clone());
    Ok(api::AuthorizeResponse {
        receipt_pending: true,
        ..reply(decided.receipt, 0, AuditMode::Async)
    })
}

/// `access::decide` on this node's state, as of its applied seq (read first: the state decided
/// on is at least that new), at this node's clock, under a decision id this node chooses.
fn decide_here(
    caller: &Caller,
    reader: &StateReader,
    authorize: &log::Authorize,
) -> Result<access::Decided, ApiError> {
    let decided_at_seq = query::applied_seq(reader).map_err(storage)?;
    let decision_id = uuid::Uuid::now_v7().to_string();
    let requested_by = caller.actor();
    let request = access::AccessRequest {
        decision_id: &decision_id,
        token_jti: &authorize.token_jti,
        token_invalid_reason: authorize.token_invalid_reason,
        token_invalid_message: &authorize.token_invalid_message,
        service_id: &authorize.service_id,
        tool: &authorize.tool,
        attributes: &authorize.attributes,
        serving_node_id: authorize.serving_node_id,
        requested_by: &requested_by,
        mode: log::AccessMode::Async,
    };
    access::decide(reader, &request, crate::auth::now_unix_ms(), decided_at_seq).map_err(storage)
}

fn reply(
    receipt: log::AccessDecided,
    receipt_seq: u64,
    audit: AuditMode,
) -> api::AuthorizeResponse {
    api::AuthorizeResponse {
        allowed: receipt.decision == log::AccessDecision::Allow as i32,
        decision: Some(receipt),
        receipt_seq,
        receipt_pending: false,
        audit: audit as i32,
    }
}
