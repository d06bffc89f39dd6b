//! What every command must carry (kind, idempotency key, request digest, actor, and the caller's
//! credential and assertion when present), and replaying a retried idempotency key.

use warrant_proto::{
    log::{self, RejectReason, command::Kind as CommandKind, outcome::Result as OutcomeResult},
    state::IdempotencyRow,
};

use super::context::{Caller, accepted, outcome, rejected};
use crate::{
    limits::{self, FieldError, ON_BEHALF_OF_MAX, REQUEST_DIGEST_LEN},
    state::StateError,
};

/// A command whose envelope passed: its kind, its actor, and the actor typed.
pub(super) struct Envelope<'a> {
    pub(super) kind: &'a CommandKind,
    pub(super) actor: &'a log::Actor,
    pub(super) caller: Caller<'a>,
}

/// Checks what every command must carry, in a fixed order so that the first problem is always
/// the one reported.
pub(super) fn check(command: &log::Command) -> Result<Envelope<'_>, FieldError> {
    let Some(kind) = &command.kind else {
        return Err(FieldError::new(
            "kind",
            "is missing",
            "one of the command kinds of warrant.log.v1.Command",
        ));
    };
    limits::validate_idempotency_key("idempotency_key", &command.idempotency_key)?;
    if command.request_digest.len() != REQUEST_DIGEST_LEN {
        return Err(FieldError::new(
            "request_digest",
            format!("is {} bytes long", command.request_digest.len()),
            format!("exactly {REQUEST_DIGEST_LEN} bytes (SHA-256)"),
        ));
    }
    let Some(actor) = &command.actor else {
        return Err(FieldError::new(
            "actor",
            "is missing",
            "the principal that asked",
        ));
    };
    let caller = check_actor(actor)?;
    if let Some(credential) = &command.credential {
        check_credential(caller, credential)?;
    }
    if let Some(assertion) = &command.assertion {
        check_assertion(actor, caller, assertion)?;
    }
    Ok(Envelope {
        kind,
        actor,
        caller,
    })
}

fn check_actor(actor: &log::Actor) -> Result<Caller<'_>, FieldError> {
    let Some(caller) = Caller::of(actor) else {
        return Err(FieldError::new(
            "actor.kind",
            format!("is {}", actor.kind),
            "admin, human, agent, service, node or operator",
        ));
    };
    limits::validate_actor_id("actor.id", &actor.id)?;
    if ON_BEHALF_OF_MAX < actor.on_behalf_of.len() {
        return Err(FieldError::new(
            "actor.on_behalf_of",
            format!("has {} entries", actor.on_behalf_of.len()),
            format!("at most {ON_BEHALF_OF_MAX}"),
        ));
    }
    for (idx, principal) in actor.on_behalf_of.iter().enumerate() {
        limits::validate_actor_id(&format!("actor.on_behalf_of[{idx}]"), principal)?;
    }
    Ok(caller)
}

/// The caller's credential must fit its kind: a session for a human, a credential id for an
/// agent.
fn check_credential(
    caller: Caller<'_>,
    credential: &log::CallerCredential,
) -> Result<(), FieldError> {
    use log::caller_credential::Kind;
    match (&credential.kind, caller) {
        (Some(Kind::SessionId(session_id)), Caller::Human(_)) => {
            limits::validate_id("credential.session_id", session_id)
        }
        (Some(Kind::CredentialId(credential_id)), Caller::Agent(_)) => {
            limits::validate_id("credential.credential_id", credential_id)
        }
        _ => Err(FieldError::new(
            "credential",
            "does not fit the actor",
            "a session id for a human actor, a credential id for an agent actor",
        )),
    }
}

/// An assertion (or id_token) is presented by the agent or human that is the actor.
fn check_assertion(
    actor: &log::Actor,
    caller: Caller<'_>,
    assertion: &log::AssertionUse,
) -> Result<(), FieldError> {
    let presenter = match caller {
        Caller::Agent(id) | Caller::Human(id) => Some(id),
        _ => None,
    };
    if presenter != Some(assertion.principal_id.as_str()) {
        return Err(FieldError::new(
            "assertion.principal_id",
            format!(
                "is {} but the actor is {}",
                assertion.principal_id, actor.id
            ),
            "the agent or human that is the actor",
        ));
    }
    limits::validate_opaque(
        "assertion.jti",
        &assertion.jti,
        limits::ASSERTION_JTI_LEN_MAX,
    )
}

/// The first outcome for a retried idempotency key, or a rejection if the key now names a
/// different request.
pub(super) fn replay(
    key: &[u8],
    row: IdempotencyRow,
    command: &log::Command,
) -> Result<log::Outcome, StateError> {
    if row.request_digest != command.request_digest {
        return Ok(rejected(
            RejectReason::IdempotencyKeyReused,
            format!(
                "idempotency key {} was already used by this actor for a different request; \
                 allowed: a new key per request",
                command.idempotency_key
            ),
        ));
    }
    // An accepted outcome replays as such; a refusal a handler made (recorded as a
    // CommandRejected event) replays as the same refusal, adding nothing.
    match row.outcome.and_then(|it| it.result) {
        Some(OutcomeResult::Accepted(first)) => Ok(accepted(log::Accepted {
            replayed: true,
            ..first
        })),
        Some(OutcomeResult::Rejected(first)) => Ok(outcome(OutcomeResult::Rejected(first))),
        None => Err(StateError::corrupt(
            key,
            "idempotency row without an outcome",
        )),
    }
}

/// The command's kind as the log schema names it: the field name of its `Command.kind` oneof
/// member (what a `CommandRejected` event records).
pub(super) fn kind_name(kind: &CommandKind) -> &'static str {
    match kind {
        CommandKind::RegisterHuman(_) => "register_human",
        CommandKind::RegisterAgent(_) => "register_agent",
        CommandKind::RegisterService(_) => "register_service",
        CommandKind::IssueToken(_) => "issue_token",
        CommandKind::RevokeToken(_) => "revoke_token",
        CommandKind::PublishSigningKey(_) => "publish_signing_key",
        CommandKind::UpdateHuman(_) => "update_human",
        CommandKind::UpdateAgent(_) => "update_agent",
        CommandKind::UpdateService(_) => "update_service",
        CommandKind::RegisterDevice(_) => "register_device",
        CommandKind::UpdateDevice(_) => "update_device",
        CommandKind::BindAgentDevice(_) => "bind_agent_device",
        CommandKind::SetStatus(_) => "set_status",
        CommandKind::ChangeCredentials(_) => "change_credentials",
        CommandKind::StartSession(_) => "start_session",
        CommandKind::EndSession(_) => "end_session",
        CommandKind::CreateDelegation(_) => "create_delegation",
        CommandKind::RevokeDelegation(_) => "revoke_delegation",
        CommandKind::RetireSigningKey(_) => "retire_signing_key",
        CommandKind::RegisterHumans(_) => "register_humans",
        CommandKind::MarkSigningKeyCompromised(_) => "mark_signing_key_compromised",
        CommandKind::RegisterOperator(_) => "register_operator",
        CommandKind::PublishPolicy(_) => "publish_policy",
        CommandKind::ActivatePolicy(_) => "activate_policy",
        CommandKind::RollbackPolicy(_) => "rollback_policy",
        CommandKind::SetShadowPolicy(_) => "set_shadow_policy",
        CommandKind::Authorize(_) => "authorize",
        CommandKind::RecordAccessDecisions(_) => "record_access_decisions",
        CommandKind::RecordAuthFailures(_) => "record_auth_failures",
        CommandKind::RecordAuditExportProgress(_) => "record_audit_export_progress",
    }
}
