//! Starting and ending human and agent sessions.

use prost::Message;
use warrant_proto::{
    log::{self, AuthMethod, PrincipalKind, RejectReason, event::Kind as EventKind},
    state::{SessionRow, Status},
};

use super::{
    context::{Caller, Change, Context, Decision, Refusal, agent_in_force, human_in_force, reject},
    revocation,
    tokens::Issuance,
};
use crate::{
    check, keys, query,
    state::{StateRead, WriteSet},
};

pub(super) fn start_session(
    state: &dyn StateRead,
    context: &Context<'_>,
    command: &log::StartSession,
) -> Decision {
    check::start_session(command)?;
    let is_human = check::session_is_human(command)?;
    // A session is started by its own principal, authenticated by the API node.
    if !context
        .caller
        .is_principal(command.principal_kind, &command.principal_id)
    {
        return Err(reject(
            RejectReason::PermissionDenied,
            format!("only {} itself may start its session", command.principal_id),
        ));
    }
    let federated = verified_identity(command);
    let (owner_human_id, device_id) = if is_human {
        let human_id = human_principal(state, context, command, federated)?;
        (human_id, command.device_id.clone())
    } else {
        agent_principal(state, context, command)?
    };
    if !device_id.is_empty() {
        check_device(state, &device_id, &owner_human_id)?;
    }
    let session_key = keys::session(&command.session_id);
    if state.get(&session_key)?.is_some() {
        return Err(reject(
            RejectReason::AlreadyExists,
            format!("session {} already exists", command.session_id),
        ));
    }

    let expires_at_unix_s = context
        .now_unix_s()
        .saturating_add(u64::from(command.ttl_seconds));
    let mut writes = WriteSet::new();
    let token = match is_human {
        true => Some(session_token(
            state,
            context,
            command,
            expires_at_unix_s,
            &mut writes,
        )?),
        false => None,
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
    writes.put(
        keys::session_by_principal(
            command.principal_kind,
            &command.principal_id,
            &command.session_id,
        ),
        Vec::new(),
    );
    Ok(Some(Change {
        token_issued: token,
        session_started: Some(started.clone()),
        ..Change::new(EventKind::SessionStarted(started), writes)
    }))
}

/// The upstream identity an OIDC login verified; none for any other login.
fn verified_identity(command: &log::StartSession) -> Option<&log::FederatedIdentity> {
    match AuthMethod::try_from(command.auth_method) {
        Ok(AuthMethod::OidcIdToken) => command.federated.as_ref(),
        _ => None,
    }
}

/// A human's session: the human must be in force and, for an OIDC login, be the upstream
/// identity the API node verified. Returns the human's id.
fn human_principal(
    state: &dyn StateRead,
    context: &Context<'_>,
    command: &log::StartSession,
    federated: Option<&log::FederatedIdentity>,
) -> Result<String, Refusal> {
    let human = human_in_force(state, &command.principal_id, context.seq)?;
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
    Ok(human.human_id)
}

/// An agent's session: the agent must be in force, and a bound agent runs on its device only
/// (the session defaults to it). Returns the agent's owner and the session's device.
fn agent_principal(
    state: &dyn StateRead,
    context: &Context<'_>,
    command: &log::StartSession,
) -> Result<(String, String), Refusal> {
    let agent = agent_in_force(state, &command.principal_id, context.seq)?;
    let mut device_id = command.device_id.clone();
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
    Ok((agent.owner_human_id, device_id))
}

/// A session's device must exist, be enabled, and belong to `owner_human_id`.
fn check_device(
    state: &dyn StateRead,
    device_id: &str,
    owner_human_id: &str,
) -> Result<(), Refusal> {
    let Some(device) = query::device(state, device_id)? else {
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
    Ok(())
}

/// Issues a human session's access token (audience: the issuer), expiring with the session.
fn session_token(
    state: &dyn StateRead,
    context: &Context<'_>,
    command: &log::StartSession,
    expires_at_unix_s: u64,
    writes: &mut WriteSet,
) -> Result<log::TokenIssued, Refusal> {
    let issuance = Issuance::prepare(state, &command.token_key_id, &command.token_jti)?;
    let claims = log::TokenIssued {
        jti: command.token_jti.clone(),
        subject: command.principal_id.clone(),
        subject_kind: PrincipalKind::Human as i32,
        audience: command.token_audience.clone(),
        issued_at_unix_s: context.now_unix_s(),
        expires_at_unix_s,
        key_id: command.token_key_id.clone(),
        session_id: command.session_id.clone(),
        ..log::TokenIssued::default()
    };
    issuance.record(&claims, context.seq, writes);
    Ok(claims)
}

pub(super) fn end_session(
    state: &dyn StateRead,
    context: &Context<'_>,
    command: &log::EndSession,
) -> Decision {
    check::end_session(command)?;
    let Some(row) = query::session(state, &command.session_id)? else {
        return Err(reject(
            RejectReason::SessionNotFound,
            format!("session {} does not exist", command.session_id),
        ));
    };
    let started = row.started.clone().unwrap_or_default();
    let caller = context.caller;
    let is_agent_owner = started.principal_kind == PrincipalKind::Agent as i32
        && matches!(caller, Caller::Human(_))
        && query::agent(state, &started.principal_id)?
            .is_some_and(|agent| caller.is_human(&agent.owner_human_id));
    if !(caller.is_admin()
        || caller.is_principal(started.principal_kind, &started.principal_id)
        || is_agent_owner)
    {
        return Err(reject(
            RejectReason::PermissionDenied,
            format!(
                "only an admin or {} may end session {}",
                started.principal_id, command.session_id
            ),
        ));
    }
    let event = log::SessionEnded {
        session_id: command.session_id.clone(),
        reason: command.reason.clone(),
    };
    Ok(revocation::revoke(
        row,
        keys::session(&command.session_id),
        context.seq,
        &command.reason,
        EventKind::SessionEnded(event),
    ))
}
