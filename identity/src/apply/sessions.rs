//! Starting and ending human and agent sessions.

use prost::Message;
use warrant_proto::{
    log::{self, AuthMethod, PrincipalKind, RejectReason, event::Kind as EventKind},
    state::{SessionRow, Status, TokenRow},
};

use super::{Change, Context, Refusal, agent_in_force, reject, validate_federated};
use crate::{
    keys,
    limits::{self, FieldError, REASON_LEN_MAX, SESSION_TTL_SECONDS_MAX},
    query,
    state::{StateRead, WriteSet},
    validity,
};

pub(super) fn start_session(
    state: &dyn StateRead,
    context: &Context<'_>,
    command: &log::StartSession,
) -> Result<Option<Change>, Refusal> {
    limits::validate_id("session_id", &command.session_id)?;
    limits::validate_id("principal_id", &command.principal_id)?;
    if !command.device_id.is_empty() {
        limits::validate_id("device_id", &command.device_id)?;
    }
    if !(1 <= command.ttl_seconds && command.ttl_seconds <= SESSION_TTL_SECONDS_MAX) {
        return Err(FieldError::new(
            "ttl_seconds",
            format!("is {}", command.ttl_seconds),
            format!("1 to {SESSION_TTL_SECONDS_MAX}"),
        )
        .into());
    }
    let principal_kind = PrincipalKind::try_from(command.principal_kind);
    let auth_method = AuthMethod::try_from(command.auth_method);
    let is_human = match (principal_kind, auth_method) {
        (Ok(PrincipalKind::Human), Ok(AuthMethod::OidcIdToken | AuthMethod::LocalPassword)) => true,
        (Ok(PrincipalKind::Agent), Ok(AuthMethod::ClientSecret | AuthMethod::PrivateKeyJwt)) => {
            false
        }
        _ => {
            return Err(FieldError::new(
                "auth_method",
                format!(
                    "is {} for principal kind {}",
                    command.auth_method, command.principal_kind
                ),
                "a human with OIDC_ID_TOKEN or LOCAL_PASSWORD, or an agent with CLIENT_SECRET or \
                 PRIVATE_KEY_JWT",
            )
            .into());
        }
    };
    if is_human {
        limits::validate_jti("token_jti", &command.token_jti)?;
        limits::validate_key_id("token_key_id", &command.token_key_id)?;
        limits::validate_audience("token_audience", &command.token_audience)?;
    }
    let federated = match (&command.federated, auth_method) {
        (Some(federated), Ok(AuthMethod::OidcIdToken)) => {
            validate_federated(federated)?;
            Some(federated)
        }
        (None, Ok(AuthMethod::OidcIdToken)) => {
            return Err(FieldError::new(
                "federated",
                "is missing",
                "the issuer and subject of the verified id_token",
            )
            .into());
        }
        _ => None,
    };
    // A session is started by its own principal, authenticated by the API node.
    if !(context.actor.kind == command.principal_kind && context.actor.id == command.principal_id) {
        return Err(reject(
            RejectReason::PermissionDenied,
            format!("only {} itself may start its session", command.principal_id),
        ));
    }
    let now_unix_s = context.time_unix_ms / 1000;
    let mut device_id = command.device_id.clone();
    let owner_human_id = if is_human {
        let human = match validity::human(state, &command.principal_id, context.seq)? {
            Ok(human) => human,
            Err(lapse) if query::human(state, &command.principal_id)?.is_none() => {
                return Err(reject(RejectReason::HumanNotFound, lapse.message));
            }
            Err(lapse) => return Err(reject(RejectReason::HumanDisabled, lapse.message)),
        };
        if let Some(federated) = federated
            && human.federated.as_ref() != Some(federated)
        {
            return Err(reject(
                RejectReason::PermissionDenied,
                format!(
                    "human {} is not subject {} of issuer {}",
                    human.human_id, federated.subject, federated.issuer
                ),
            ));
        }
        human.human_id
    } else {
        let agent = agent_in_force(state, &command.principal_id, context.seq)?;
        if !agent.device_id.is_empty() {
            if device_id.is_empty() {
                device_id = agent.device_id.clone();
            } else if device_id != agent.device_id {
                return Err(reject(
                    RejectReason::PermissionDenied,
                    format!(
                        "agent {} is bound to device {}, not {device_id}",
                        agent.agent_id, agent.device_id
                    ),
                ));
            }
        }
        agent.owner_human_id
    };
    if !device_id.is_empty() {
        let Some(device) = query::device(state, &device_id)? else {
            return Err(reject(
                RejectReason::DeviceNotFound,
                format!("device {device_id} does not exist"),
            ));
        };
        if device.status != Status::Active as i32 {
            return Err(reject(
                RejectReason::DeviceDisabled,
                format!("device {device_id} is disabled"),
            ));
        }
        if device.owner_human_id != owner_human_id {
            return Err(reject(
                RejectReason::PermissionDenied,
                format!(
                    "device {device_id} belongs to human {}",
                    device.owner_human_id
                ),
            ));
        }
    }
    let session_key = keys::session(&command.session_id);
    if state.get(&session_key)?.is_some() {
        return Err(reject(
            RejectReason::AlreadyExists,
            format!("session {} already exists", command.session_id),
        ));
    }

    let expires_at_unix_s = now_unix_s.saturating_add(u64::from(command.ttl_seconds));
    let mut writes = WriteSet::new();
    let token = if is_human {
        let Some(mut signing_key) = query::signing_key(state, &command.token_key_id)? else {
            return Err(reject(
                RejectReason::SigningKeyNotFound,
                format!("signing key {} is not published", command.token_key_id),
            ));
        };
        if signing_key.retired {
            return Err(reject(
                RejectReason::SigningKeyRetired,
                format!("signing key {} is retired", command.token_key_id),
            ));
        }
        let token_key = keys::token(&command.token_jti);
        if state.get(&token_key)?.is_some() {
            return Err(reject(
                RejectReason::AlreadyExists,
                format!("token {} already exists", command.token_jti),
            ));
        }
        let claims = log::TokenIssued {
            jti: command.token_jti.clone(),
            subject: command.principal_id.clone(),
            subject_kind: PrincipalKind::Human as i32,
            audience: command.token_audience.clone(),
            issued_at_unix_s: now_unix_s,
            expires_at_unix_s,
            key_id: command.token_key_id.clone(),
            session_id: command.session_id.clone(),
            ..log::TokenIssued::default()
        };
        let row = TokenRow {
            issued: Some(claims.clone()),
            issued_seq: context.seq,
            ..TokenRow::default()
        };
        signing_key.last_token_expires_at_unix_s = signing_key
            .last_token_expires_at_unix_s
            .max(expires_at_unix_s);
        writes.put(token_key, row.encode_to_vec());
        writes.put(
            keys::signing_key(&command.token_key_id),
            signing_key.encode_to_vec(),
        );
        Some(claims)
    } else {
        None
    };
    let started = log::SessionStarted {
        session_id: command.session_id.clone(),
        principal_kind: command.principal_kind,
        principal_id: command.principal_id.clone(),
        device_id,
        auth_method: command.auth_method,
        expires_at_unix_s,
        // Only an identity the OIDC branch validated and matched against the human is recorded.
        federated: federated.cloned(),
        token: token.clone(),
    };
    let row = SessionRow {
        started: Some(started.clone()),
        started_seq: context.seq,
        ..SessionRow::default()
    };
    writes.put(session_key, row.encode_to_vec());
    Ok(Some(Change {
        token_issued: token,
        session_started: Some(started.clone()),
        ..Change::new(EventKind::SessionStarted(started), writes)
    }))
}

pub(super) fn end_session(
    state: &dyn StateRead,
    context: &Context<'_>,
    command: &log::EndSession,
) -> Result<Option<Change>, Refusal> {
    limits::validate_id("session_id", &command.session_id)?;
    limits::validate_text("reason", &command.reason, REASON_LEN_MAX)?;
    let Some(mut row) = query::session(state, &command.session_id)? else {
        return Err(reject(
            RejectReason::SessionNotFound,
            format!("session {} does not exist", command.session_id),
        ));
    };
    let started = row.started.clone().unwrap_or_default();
    let actor = context.actor;
    let is_admin = actor.kind == PrincipalKind::Admin as i32;
    let is_principal = actor.kind == started.principal_kind && actor.id == started.principal_id;
    let is_agent_owner = started.principal_kind == PrincipalKind::Agent as i32
        && actor.kind == PrincipalKind::Human as i32
        && query::agent(state, &started.principal_id)?
            .is_some_and(|agent| agent.owner_human_id == actor.id);
    if !(is_admin || is_principal || is_agent_owner) {
        return Err(reject(
            RejectReason::PermissionDenied,
            format!(
                "only an admin or {} may end session {}",
                started.principal_id, command.session_id
            ),
        ));
    }
    if row.ended {
        return Ok(None);
    }
    row.ended = true;
    row.ended_seq = context.seq;
    row.end_reason = command.reason.clone();
    let mut writes = WriteSet::new();
    writes.put(keys::session(&command.session_id), row.encode_to_vec());
    let event = log::SessionEnded {
        session_id: command.session_id.clone(),
        reason: command.reason.clone(),
    };
    Ok(Some(Change::new(EventKind::SessionEnded(event), writes)))
}
