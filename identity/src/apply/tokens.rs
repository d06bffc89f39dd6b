//! Issuing tokens (for an agent itself, under a delegation, or by RFC 8693 exchange) and
//! retiring signing keys.

use std::collections::BTreeSet;

use prost::Message;
use warrant_proto::{
    log::{self, PrincipalKind, RejectReason, event::Kind as EventKind},
    state::{ServiceRow, Status, TokenRow},
};

use super::{Change, Context, Refusal, agent_in_force, reject};
use crate::{
    keys,
    limits::{self, FieldError, SCOPES_PER_TOKEN_MAX, TOKEN_TTL_SECONDS_MAX},
    query,
    state::{StateRead, WriteSet},
    validity::{self, LapseKind},
};

pub(super) fn issue_token(
    state: &dyn StateRead,
    context: &Context<'_>,
    command: &log::IssueToken,
) -> Result<Option<Change>, Refusal> {
    limits::validate_jti("jti", &command.jti)?;
    limits::validate_id("agent_id", &command.agent_id)?;
    limits::validate_audience("audience", &command.audience)?;
    validate_scopes(&command.scopes)?;
    if !(1 <= command.ttl_seconds && command.ttl_seconds <= TOKEN_TTL_SECONDS_MAX) {
        return Err(FieldError::new(
            "ttl_seconds",
            format!("is {}", command.ttl_seconds),
            format!("1 to {TOKEN_TTL_SECONDS_MAX}"),
        )
        .into());
    }
    limits::validate_key_id("key_id", &command.key_id)?;
    if !command.delegation_id.is_empty() {
        limits::validate_id("delegation_id", &command.delegation_id)?;
    }
    if !command.session_id.is_empty() {
        limits::validate_id("session_id", &command.session_id)?;
    }
    if !command.subject_jti.is_empty() {
        limits::validate_jti("subject_jti", &command.subject_jti)?;
        if command.delegation_id.is_empty() {
            return Err(FieldError::new(
                "delegation_id",
                "is empty in a token exchange",
                "the delegation the actor acts under",
            )
            .into());
        }
        if !command.session_id.is_empty() {
            return Err(FieldError::new(
                "session_id",
                "is set in a token exchange",
                "empty: an exchanged token keeps the subject token's session",
            )
            .into());
        }
    }

    // An agent asks for its own tokens; nobody else may mint them in its name.
    if !(context.actor.kind == PrincipalKind::Agent as i32 && context.actor.id == command.agent_id)
    {
        return Err(reject(
            RejectReason::PermissionDenied,
            format!(
                "only agent {} itself may ask for its tokens",
                command.agent_id
            ),
        ));
    }
    let now_unix_s = context.time_unix_ms / 1000;
    agent_in_force(state, &command.agent_id, context.seq)?;
    let service = active_service(state, &command.audience)?;
    check_scopes_allowed(&service, &command.scopes)?;
    let mut signing_key = match query::signing_key(state, &command.key_id)? {
        Some(row) if row.retired => {
            return Err(reject(
                RejectReason::SigningKeyRetired,
                format!(
                    "signing key {} is retired; allowed: the node's current key",
                    command.key_id
                ),
            ));
        }
        Some(row) => row,
        None => {
            return Err(reject(
                RejectReason::SigningKeyNotFound,
                format!("signing key {} is not published", command.key_id),
            ));
        }
    };
    let key = keys::token(&command.jti);
    if state.get(&key)?.is_some() {
        return Err(reject(
            RejectReason::AlreadyExists,
            format!("token {} already exists", command.jti),
        ));
    }

    let issued_at_unix_s = now_unix_s;
    let mut claims = log::TokenIssued {
        jti: command.jti.clone(),
        subject: command.agent_id.clone(),
        agent_id: command.agent_id.clone(),
        audience: command.audience.clone(),
        scopes: command.scopes.clone(),
        issued_at_unix_s,
        expires_at_unix_s: issued_at_unix_s.saturating_add(u64::from(command.ttl_seconds)),
        key_id: command.key_id.clone(),
        session_id: command.session_id.clone(),
        subject_kind: PrincipalKind::Agent as i32,
        subject_jti: command.subject_jti.clone(),
        ..log::TokenIssued::default()
    };
    if !command.session_id.is_empty() {
        let session = session_in_force(state, &command.session_id, now_unix_s)?;
        let started = session.started.unwrap_or_default();
        if !(started.principal_kind == PrincipalKind::Agent as i32
            && started.principal_id == command.agent_id)
        {
            return Err(reject(
                RejectReason::PermissionDenied,
                format!(
                    "session {} is not agent {}'s",
                    command.session_id, command.agent_id
                ),
            ));
        }
        claims.expires_at_unix_s = claims.expires_at_unix_s.min(started.expires_at_unix_s);
    }
    if !command.subject_jti.is_empty() {
        let subject = subject_token_in_force(state, &command.subject_jti, now_unix_s)?;
        claims.session_id = subject.session_id.clone();
        claims.expires_at_unix_s = claims.expires_at_unix_s.min(subject.expires_at_unix_s);
        check_exchange_link(state, command, &subject)?;
    }
    if !command.delegation_id.is_empty() {
        let chain = match validity::delegation_chain(state, &command.delegation_id, now_unix_s)? {
            Ok(chain) => chain,
            Err(lapse) if lapse.kind == LapseKind::DelegationNotFound => {
                return Err(reject(RejectReason::DelegationNotFound, lapse.message));
            }
            Err(lapse) => return Err(reject(RejectReason::DelegationInactive, lapse.message)),
        };
        let Some(leaf) = chain.first() else {
            return Err(reject(
                RejectReason::DelegationNotFound,
                format!("delegation {} does not exist", command.delegation_id),
            ));
        };
        if leaf.grantee_agent_id != command.agent_id {
            return Err(reject(
                RejectReason::PermissionDenied,
                format!(
                    "delegation {} is granted to agent {}, not {}",
                    command.delegation_id, leaf.grantee_agent_id, command.agent_id
                ),
            ));
        }
        if !leaf.audiences.contains(&command.audience) {
            return Err(reject(
                RejectReason::AudienceNotDelegated,
                format!(
                    "audience {} is not in delegation {}; allowed: {}",
                    command.audience,
                    command.delegation_id,
                    leaf.audiences.join(", ")
                ),
            ));
        }
        if let Some(scope) = command.scopes.iter().find(|it| !leaf.scopes.contains(it)) {
            return Err(reject(
                RejectReason::ScopeNotDelegated,
                format!(
                    "scope {scope} is not in delegation {}; allowed: {}",
                    command.delegation_id,
                    leaf.scopes.join(" ")
                ),
            ));
        }
        claims.subject = leaf.root_human_id.clone();
        claims.subject_kind = PrincipalKind::Human as i32;
        claims.delegation_id = command.delegation_id.clone();
        claims.task = leaf.task.clone();
        // The act chain names the current actor first: the reverse of root-to-leaf order.
        claims.actor_chain = leaf.agent_chain.iter().rev().cloned().collect();
        claims.expires_at_unix_s = claims.expires_at_unix_s.min(leaf.expires_at_unix_s);
    }

    let row = TokenRow {
        issued: Some(claims.clone()),
        issued_seq: context.seq,
        revoked: false,
        revoked_seq: 0,
        revoke_reason: String::new(),
    };
    signing_key.last_token_expires_at_unix_s = signing_key
        .last_token_expires_at_unix_s
        .max(claims.expires_at_unix_s);
    let mut writes = WriteSet::new();
    writes.put(key, row.encode_to_vec());
    writes.put(
        keys::signing_key(&command.key_id),
        signing_key.encode_to_vec(),
    );
    Ok(Some(Change {
        token_issued: Some(claims.clone()),
        ..Change::new(EventKind::TokenIssued(claims), writes)
    }))
}

/// The session, if in force at `now_unix_s`; else the matching rejection.
pub(super) fn session_in_force(
    state: &dyn StateRead,
    session_id: &str,
    now_unix_s: u64,
) -> Result<warrant_proto::state::SessionRow, Refusal> {
    match validity::session(state, session_id, now_unix_s)? {
        Ok(row) => Ok(row),
        Err(_) if query::session(state, session_id)?.is_none() => Err(reject(
            RejectReason::SessionNotFound,
            format!("session {session_id} does not exist"),
        )),
        Err(lapse) if lapse.kind == LapseKind::DeviceDisabled => {
            Err(reject(RejectReason::DeviceDisabled, lapse.message))
        }
        Err(lapse) => Err(reject(RejectReason::SessionEnded, lapse.message)),
    }
}

/// The exchanged token's claims, if it is still in force at `now_unix_s`.
fn subject_token_in_force(
    state: &dyn StateRead,
    jti: &str,
    now_unix_s: u64,
) -> Result<log::TokenIssued, Refusal> {
    let Some(row) = query::token(state, jti)? else {
        return Err(reject(
            RejectReason::SubjectTokenInactive,
            format!("subject token {jti} was never issued"),
        ));
    };
    let issued = row.issued.clone().unwrap_or_default();
    if issued.expires_at_unix_s <= now_unix_s {
        return Err(reject(
            RejectReason::SubjectTokenInactive,
            format!(
                "subject token {jti} expired at {}",
                issued.expires_at_unix_s
            ),
        ));
    }
    if let Err(lapse) = validity::token(state, &row, now_unix_s)? {
        return Err(reject(
            RejectReason::SubjectTokenInactive,
            format!("subject token {jti}: {}", lapse.message),
        ));
    }
    Ok(issued)
}

/// In an exchange, the delegation must continue the subject token's authority: a human's session
/// token may be exchanged only under a root delegation from that human; an agent's delegated token
/// only under a delegation that agent granted below its own.
fn check_exchange_link(
    state: &dyn StateRead,
    command: &log::IssueToken,
    subject: &log::TokenIssued,
) -> Result<(), Refusal> {
    let Some(delegation) =
        query::delegation(state, &command.delegation_id)?.and_then(|row| row.created)
    else {
        return Err(reject(
            RejectReason::DelegationNotFound,
            format!("delegation {} does not exist", command.delegation_id),
        ));
    };
    let is_human_session_token =
        subject.subject_kind == PrincipalKind::Human as i32 && subject.agent_id.is_empty();
    let continues = if is_human_session_token {
        delegation.parent_delegation_id.is_empty() && delegation.root_human_id == subject.subject
    } else {
        !subject.delegation_id.is_empty()
            && delegation.parent_delegation_id == subject.delegation_id
            && delegation.grantor_id == subject.agent_id
    };
    if continues {
        return Ok(());
    }
    Err(reject(
        RejectReason::SubjectTokenInactive,
        format!(
            "delegation {} does not continue from subject token {}: allowed: a root delegation \
             from the session's human, or a delegation granted under the subject token's own \
             delegation by its agent",
            command.delegation_id, command.subject_jti
        ),
    ))
}

/// The active service with `audience`; else SERVICE_NOT_FOUND.
pub(super) fn active_service(state: &dyn StateRead, audience: &str) -> Result<ServiceRow, Refusal> {
    match query::service_by_audience(state, audience)? {
        Some(service) if service.status == Status::Active as i32 => Ok(service),
        Some(service) => Err(reject(
            RejectReason::ServiceNotFound,
            format!(
                "service {} for audience {audience} is not active",
                service.service_id
            ),
        )),
        None => Err(reject(
            RejectReason::ServiceNotFound,
            format!("no service has audience {audience}"),
        )),
    }
}

pub(super) fn retire_signing_key(
    state: &dyn StateRead,
    context: &Context<'_>,
    command: &log::RetireSigningKey,
) -> Result<Option<Change>, Refusal> {
    limits::validate_key_id("key_id", &command.key_id)?;
    let Some(mut row) = query::signing_key(state, &command.key_id)? else {
        return Err(reject(
            RejectReason::SigningKeyNotFound,
            format!("signing key {} is not published", command.key_id),
        ));
    };
    let published = row.key.clone().unwrap_or_default();
    let actor = context.actor;
    let is_admin = actor.kind == PrincipalKind::Admin as i32;
    let is_owner_node =
        actor.kind == PrincipalKind::Node as i32 && actor.id == published.node_id.to_string();
    if !(is_admin || is_owner_node) {
        return Err(reject(
            RejectReason::PermissionDenied,
            format!(
                "only an admin or node {} may retire its key {}",
                published.node_id, command.key_id
            ),
        ));
    }
    if row.retired {
        return Ok(None);
    }
    row.retired = true;
    row.retired_seq = context.seq;
    let mut writes = WriteSet::new();
    writes.put(keys::signing_key(&command.key_id), row.encode_to_vec());
    let event = log::SigningKeyRetired {
        key_id: command.key_id.clone(),
        node_id: published.node_id,
        keep_until_unix_s: row.last_token_expires_at_unix_s,
    };
    Ok(Some(Change::new(
        EventKind::SigningKeyRetired(event),
        writes,
    )))
}

pub(super) fn validate_scopes(scopes: &[String]) -> Result<(), FieldError> {
    validate_scope_list("scopes", scopes, SCOPES_PER_TOKEN_MAX)
}

/// Checks a list of scopes (tool names): 1 to `len_max` unique ids.
pub(super) fn validate_scope_list(
    field: &str,
    scopes: &[String],
    len_max: usize,
) -> Result<(), FieldError> {
    if scopes.is_empty() || len_max < scopes.len() {
        return Err(FieldError::new(
            field,
            format!("has {} entries", scopes.len()),
            format!("1 to {len_max} tool names"),
        ));
    }
    let mut seen = BTreeSet::new();
    for (idx, scope) in scopes.iter().enumerate() {
        let item = format!("{field}[{idx}]");
        limits::validate_id(&item, scope)?;
        if !seen.insert(scope.as_str()) {
            return Err(FieldError::new(
                item,
                format!("repeats {scope}"),
                format!("unique {field}"),
            ));
        }
    }
    Ok(())
}

/// Scopes are tool names: a token may only name tools of the service it is for.
pub(super) fn check_scopes_allowed(service: &ServiceRow, scopes: &[String]) -> Result<(), Refusal> {
    let tools: BTreeSet<&str> = service.tools.iter().map(|it| it.name.as_str()).collect();
    let Some(scope) = scopes.iter().find(|it| !tools.contains(it.as_str())) else {
        return Ok(());
    };
    let allowed = if tools.is_empty() {
        "none: the service has no tools".to_owned()
    } else {
        // A service may have hundreds of tools; name enough to help, not all of them.
        let shown: Vec<&str> = tools.iter().copied().take(SCOPES_LISTED_MAX).collect();
        let hidden = tools.len().saturating_sub(shown.len());
        match hidden {
            0 => shown.join(", "),
            _ => format!("{} and {hidden} more", shown.join(", ")),
        }
    };
    Err(reject(
        RejectReason::ScopeNotAllowed,
        format!(
            "scope {scope} is not a tool of service {}; allowed: {allowed}",
            service.service_id
        ),
    ))
}

/// Most tool names a `SCOPE_NOT_ALLOWED` message lists.
const SCOPES_LISTED_MAX: usize = 16;
