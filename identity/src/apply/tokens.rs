//! Issuing tokens (for an agent itself, under a delegation, or by RFC 8693 exchange), recording
//! an issuance, and revoking a token.

use std::collections::BTreeSet;

use prost::Message;
use warrant_proto::{
    log::{self, PrincipalKind, RejectReason, event::Kind as EventKind},
    state::{ServiceRow, SessionRow, SigningKeyRow, Status, TokenRow},
};

use super::{
    context::{Change, Context, Decision, Refusal, agent_in_force, delegation_in_force, reject},
    policies, revocation,
};
use crate::{
    check, keys, query,
    state::{StateRead, WriteSet},
    validity,
};

pub(super) fn issue_token(
    state: &dyn StateRead,
    context: &Context<'_>,
    command: &log::IssueToken,
) -> Decision {
    check::issue_token(command)?;
    // An agent asks for its own tokens; nobody else may mint them in its name.
    if !context.caller.is_agent(&command.agent_id) {
        return Err(reject(
            RejectReason::PermissionDenied,
            format!(
                "only agent {} itself may ask for its tokens",
                command.agent_id
            ),
        ));
    }
    let now_unix_s = context.now_unix_s();
    let agent = agent_in_force(state, &command.agent_id, context.seq)?;
    let service = active_service(state, &command.audience)?;
    check_scopes_allowed(&service, &command.scopes)?;
    let issuance = Issuance::prepare(state, &command.key_id, &command.jti)?;

    let mut claims = own_claims(command, now_unix_s);
    if !command.session_id.is_empty() {
        within_agent_session(state, command, now_unix_s, &mut claims)?;
    }
    if !command.subject_jti.is_empty() {
        let subject = subject_token_in_force(state, &command.subject_jti, now_unix_s)?;
        claims.session_id = subject.session_id.clone();
        claims.expires_at_unix_s = claims.expires_at_unix_s.min(subject.expires_at_unix_s);
        check_exchange_link(state, command, &subject)?;
    }
    if !command.delegation_id.is_empty() {
        under_delegation(state, command, now_unix_s, &mut claims)?;
    }
    // Last: a policy narrows what the rules above allow, never widens it.
    policies::check_issuance(state, context, &agent, &claims, &service)?;

    let mut writes = WriteSet::new();
    issuance.record(&claims, context.seq, &mut writes);
    Ok(Some(Change {
        token_issued: Some(claims.clone()),
        ..Change::new(EventKind::TokenIssued(claims), writes)
    }))
}

/// The claims of an agent's token for itself, issued at `now_unix_s`; a session, an exchange
/// or a delegation then narrows them.
fn own_claims(command: &log::IssueToken, now_unix_s: u64) -> log::TokenIssued {
    log::TokenIssued {
        jti: command.jti.clone(),
        subject: command.agent_id.clone(),
        agent_id: command.agent_id.clone(),
        audience: command.audience.clone(),
        scopes: command.scopes.clone(),
        issued_at_unix_s: now_unix_s,
        expires_at_unix_s: now_unix_s.saturating_add(u64::from(command.ttl_seconds)),
        key_id: command.key_id.clone(),
        session_id: command.session_id.clone(),
        subject_kind: PrincipalKind::Agent as i32,
        subject_jti: command.subject_jti.clone(),
        ..log::TokenIssued::default()
    }
}

/// A token tied to a session: the session must be the agent's own and in force, and the token
/// ends with it at the latest.
fn within_agent_session(
    state: &dyn StateRead,
    command: &log::IssueToken,
    now_unix_s: u64,
    claims: &mut log::TokenIssued,
) -> Result<(), Refusal> {
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
    Ok(())
}

/// A token under a delegation the agent holds: it speaks for the root human, within the
/// delegation's audiences, scopes and lifetime, and carries the chain of agents as `act`.
fn under_delegation(
    state: &dyn StateRead,
    command: &log::IssueToken,
    now_unix_s: u64,
    claims: &mut log::TokenIssued,
) -> Result<(), Refusal> {
    let leaf = delegation_in_force(state, &command.delegation_id, now_unix_s)?;
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
    Ok(())
}

/// A token about to be issued: its signing key may sign and its jti is unused. Shared by every
/// command that issues a token (`IssueToken`, and `StartSession` for a human's session token).
pub(super) struct Issuance {
    signing_key: SigningKeyRow,
    token_key: Vec<u8>,
}

impl Issuance {
    /// Refuses a signing key that is unpublished, compromised or retired, and a jti already
    /// issued.
    pub(super) fn prepare(state: &dyn StateRead, key_id: &str, jti: &str) -> Result<Self, Refusal> {
        let signing_key = match query::signing_key(state, key_id)? {
            // Before "retired", which a compromised key also is: the node must rotate, not retry.
            Some(row) if row.compromised => {
                return Err(reject(
                    RejectReason::SigningKeyCompromised,
                    format!(
                        "signing key {key_id} was marked compromised; allowed: a new key, after \
                         the node rotates"
                    ),
                ));
            }
            Some(row) if row.retired => {
                return Err(reject(
                    RejectReason::SigningKeyRetired,
                    format!("signing key {key_id} is retired; allowed: the node's current key"),
                ));
            }
            Some(row) => row,
            None => {
                return Err(reject(
                    RejectReason::SigningKeyNotFound,
                    format!("signing key {key_id} is not published"),
                ));
            }
        };
        let token_key = keys::token(jti);
        if state.get(&token_key)?.is_some() {
            return Err(reject(
                RejectReason::AlreadyExists,
                format!("token {jti} already exists"),
            ));
        }
        Ok(Self {
            signing_key,
            token_key,
        })
    }

    /// Writes the token's row, committed at `seq`, and moves its key's "last token expires"
    /// mark, which keeps a retired key listed until then.
    pub(super) fn record(mut self, claims: &log::TokenIssued, seq: u64, writes: &mut WriteSet) {
        let row = TokenRow {
            issued: Some(claims.clone()),
            issued_seq: seq,
            ..TokenRow::default()
        };
        self.signing_key.last_token_expires_at_unix_s = self
            .signing_key
            .last_token_expires_at_unix_s
            .max(claims.expires_at_unix_s);
        writes.put(self.token_key, row.encode_to_vec());
        writes.put(
            keys::signing_key(&claims.key_id),
            self.signing_key.encode_to_vec(),
        );
    }
}

/// The session, if in force at `now_unix_s`; else the matching rejection.
pub(super) fn session_in_force(
    state: &dyn StateRead,
    session_id: &str,
    now_unix_s: u64,
) -> Result<SessionRow, Refusal> {
    match validity::session(state, session_id, now_unix_s)? {
        Ok(row) => Ok(row),
        Err(_) if query::session(state, session_id)?.is_none() => Err(reject(
            RejectReason::SessionNotFound,
            format!("session {session_id} does not exist"),
        )),
        Err(lapse) => Err(reject(lapse.kind.session_reject_reason(), lapse.message)),
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

/// In an exchange, the delegation must continue the subject token's authority
/// ([`validity::continues_subject_token`]).
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
    if validity::continues_subject_token(&delegation, subject) {
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

/// Scopes are tool names: a token may only name tools of the service it is for.
fn check_scopes_allowed(service: &ServiceRow, scopes: &[String]) -> Result<(), Refusal> {
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

pub(super) fn revoke_token(
    state: &dyn StateRead,
    context: &Context<'_>,
    command: &log::RevokeToken,
) -> Decision {
    check::revoke_token(command)?;
    let Some(row) = query::token(state, &command.jti)? else {
        return Err(reject(
            RejectReason::TokenNotFound,
            format!("token {} does not exist", command.jti),
        ));
    };
    let issued = row.issued.clone().unwrap_or_default();
    let caller = context.caller;
    let is_subject_human =
        issued.subject_kind == PrincipalKind::Human as i32 && caller.is_human(&issued.subject);
    if !(caller.is_admin() || caller.is_agent(&issued.agent_id) || is_subject_human) {
        return Err(reject(
            RejectReason::PermissionDenied,
            format!(
                "only an admin, agent {} or the human it acts for may revoke token {}",
                issued.agent_id, command.jti
            ),
        ));
    }
    let event = log::TokenRevoked {
        jti: command.jti.clone(),
        reason: command.reason.clone(),
    };
    Ok(revocation::revoke(
        row,
        keys::token(&command.jti),
        context.seq,
        &command.reason,
        EventKind::TokenRevoked(event),
    ))
}
