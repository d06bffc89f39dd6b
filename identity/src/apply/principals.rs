//! Humans, agents and services: registering and updating them.

use prost::Message;
use warrant_proto::{
    log::{self, RejectReason, event::Kind as EventKind},
    state::{AgentRow, HumanRow, ServiceRow, Status},
};

use super::{
    context::{Change, Context, Decision, Refusal, existing_agent, reject},
    permissions::{require_admin, require_admin_or_owner},
};
use crate::{
    check, keys, query,
    state::{Overlay, StateRead, WriteSet},
};

pub(super) fn register_human(
    state: &dyn StateRead,
    context: &Context<'_>,
    command: &log::RegisterHuman,
) -> Decision {
    require_admin(context, "register humans")?;
    check::register_human(command)?;
    Ok(Some(new_human(state, context, command)?))
}

/// An import: every human decided as [`register_human`] decides one, each against the state
/// plus the humans before it, at consecutive seqs. The first refusal refuses the whole command,
/// prefixed with the index of the human it is about, and nothing is written.
pub(super) fn register_humans(
    state: &dyn StateRead,
    context: &Context<'_>,
    command: &log::RegisterHumans,
) -> Decision {
    require_admin(context, "register humans")?;
    check::register_humans(command)?;

    let mut registered = Overlay::new(state);
    let mut event_kinds = Vec::with_capacity(command.humans.len());
    for (idx, human) in command.humans.iter().enumerate() {
        let change = new_human(&registered, &context.event_at(idx)?, human)
            .map_err(|refusal| refusal.about(&format!("humans[{idx}]")))?;
        registered.write(change.writes);
        event_kinds.push(change.event_kind);
    }
    let mut event_kinds = event_kinds.into_iter();
    let Some(first) = event_kinds.next() else {
        // `check::register_humans` refuses an empty list; an import of none changes nothing.
        return Ok(None);
    };
    Ok(Some(Change {
        later_event_kinds: event_kinds.collect(),
        ..Change::new(first, registered.into_writes())
    }))
}

/// The decision on one human, after the permission and field checks: refused when the id or its
/// upstream identity is taken, else its rows and its `HumanRegistered` event at `context.seq`.
fn new_human(
    state: &dyn StateRead,
    context: &Context<'_>,
    command: &log::RegisterHuman,
) -> Result<Change, Refusal> {
    let key = keys::human(&command.human_id);
    if state.get(&key)?.is_some() {
        return Err(reject(
            RejectReason::AlreadyExists,
            format!("human {} already exists", command.human_id),
        ));
    }
    let mut writes = WriteSet::new();
    if let Some(federated) = &command.federated {
        let federated_key = keys::federated(&federated.issuer, &federated.subject);
        if let Some(taken_by) = state.get(&federated_key)? {
            return Err(reject(
                RejectReason::FederatedIdentityTaken,
                format!(
                    "subject {} of issuer {} already names human {}",
                    federated.subject,
                    federated.issuer,
                    String::from_utf8_lossy(&taken_by)
                ),
            ));
        }
        writes.put(federated_key, command.human_id.clone().into_bytes());
    }

    let row = HumanRow {
        human_id: command.human_id.clone(),
        display_name: command.display_name.clone(),
        email: command.email.clone(),
        status: Status::Active as i32,
        created_seq: context.seq,
        created_unix_ms: context.time_unix_ms,
        federated: command.federated.clone(),
        password_argon2id: command.password_argon2id.clone(),
        disabled_seq: 0,
    };
    writes.put(key, row.encode_to_vec());
    let event = log::HumanRegistered {
        human_id: command.human_id.clone(),
        display_name: command.display_name.clone(),
        email: command.email.clone(),
        federated: command.federated.clone(),
        has_password: !command.password_argon2id.is_empty(),
    };
    Ok(Change::new(EventKind::HumanRegistered(event), writes))
}

pub(super) fn register_agent(
    state: &dyn StateRead,
    context: &Context<'_>,
    command: &log::RegisterAgent,
) -> Decision {
    require_admin(context, "register agents")?;
    check::register_agent(command)?;

    match query::human(state, &command.owner_human_id)? {
        None => {
            return Err(reject(
                RejectReason::HumanNotFound,
                format!("owner human {} does not exist", command.owner_human_id),
            ));
        }
        Some(owner) if owner.status != Status::Active as i32 => {
            return Err(reject(
                RejectReason::HumanNotFound,
                format!("owner human {} is not active", command.owner_human_id),
            ));
        }
        Some(_) => {}
    }
    let key = keys::agent(&command.agent_id);
    if state.get(&key)?.is_some() {
        return Err(reject(
            RejectReason::AlreadyExists,
            format!("agent {} already exists", command.agent_id),
        ));
    }

    let row = AgentRow {
        agent_id: command.agent_id.clone(),
        owner_human_id: command.owner_human_id.clone(),
        kind: command.kind.clone(),
        description: command.description.clone(),
        status: Status::Active as i32,
        credentials: command.credentials.clone(),
        created_seq: context.seq,
        created_unix_ms: context.time_unix_ms,
        device_id: String::new(),
        disabled_seq: 0,
    };
    let mut writes = WriteSet::new();
    writes.put(key, row.encode_to_vec());
    writes.put(
        keys::agent_by_owner(&command.owner_human_id, &command.agent_id),
        Vec::new(),
    );
    // The event names the credentials but never carries their hashes: the audit stream is read
    // far more widely than the projection.
    let event = log::AgentRegistered {
        agent_id: command.agent_id.clone(),
        owner_human_id: command.owner_human_id.clone(),
        kind: command.kind.clone(),
        description: command.description.clone(),
        credential_ids: command
            .credentials
            .iter()
            .map(|it| it.credential_id.clone())
            .collect(),
    };
    Ok(Some(Change::new(EventKind::AgentRegistered(event), writes)))
}

pub(super) fn register_service(
    state: &dyn StateRead,
    context: &Context<'_>,
    command: &log::RegisterService,
) -> Decision {
    require_admin(context, "register services")?;
    check::register_service(command)?;

    let key = keys::service(&command.service_id);
    if state.get(&key)?.is_some() {
        return Err(reject(
            RejectReason::AlreadyExists,
            format!("service {} already exists", command.service_id),
        ));
    }
    let audience_key = keys::service_by_audience(&command.audience);
    if let Some(owner) = state.get(&audience_key)? {
        return Err(reject(
            RejectReason::AudienceTaken,
            format!(
                "audience {} already names service {}",
                command.audience,
                String::from_utf8_lossy(&owner)
            ),
        ));
    }

    let row = ServiceRow {
        service_id: command.service_id.clone(),
        audience: command.audience.clone(),
        tools: command.tools.clone(),
        status: Status::Active as i32,
        created_seq: context.seq,
        created_unix_ms: context.time_unix_ms,
    };
    let mut writes = WriteSet::new();
    writes.put(key, row.encode_to_vec());
    writes.put(audience_key, command.service_id.clone().into_bytes());
    let event = log::ServiceRegistered {
        service_id: command.service_id.clone(),
        audience: command.audience.clone(),
        tools: command.tools.clone(),
    };
    Ok(Some(Change::new(
        EventKind::ServiceRegistered(event),
        writes,
    )))
}

pub(super) fn update_human(
    state: &dyn StateRead,
    context: &Context<'_>,
    command: &log::UpdateHuman,
) -> Decision {
    check::update_human(command)?;
    require_admin_or_owner(context, &command.human_id, "update this human")?;
    let Some(mut row) = query::human(state, &command.human_id)? else {
        return Err(reject(
            RejectReason::HumanNotFound,
            format!("human {} does not exist", command.human_id),
        ));
    };
    if row.display_name == command.display_name && row.email == command.email {
        return Ok(None);
    }
    row.display_name = command.display_name.clone();
    row.email = command.email.clone();
    let mut writes = WriteSet::new();
    writes.put(keys::human(&command.human_id), row.encode_to_vec());
    let event = log::HumanUpdated {
        human_id: command.human_id.clone(),
        display_name: command.display_name.clone(),
        email: command.email.clone(),
    };
    Ok(Some(Change::new(EventKind::HumanUpdated(event), writes)))
}

pub(super) fn update_agent(
    state: &dyn StateRead,
    context: &Context<'_>,
    command: &log::UpdateAgent,
) -> Decision {
    check::update_agent(command)?;
    let mut row = existing_agent(state, &command.agent_id)?;
    require_admin_or_owner(context, &row.owner_human_id, "update this agent")?;
    if row.kind == command.kind && row.description == command.description {
        return Ok(None);
    }
    row.kind = command.kind.clone();
    row.description = command.description.clone();
    let mut writes = WriteSet::new();
    writes.put(keys::agent(&command.agent_id), row.encode_to_vec());
    let event = log::AgentUpdated {
        agent_id: command.agent_id.clone(),
        kind: command.kind.clone(),
        description: command.description.clone(),
    };
    Ok(Some(Change::new(EventKind::AgentUpdated(event), writes)))
}

pub(super) fn update_service(
    state: &dyn StateRead,
    context: &Context<'_>,
    command: &log::UpdateService,
) -> Decision {
    require_admin(context, "update services")?;
    check::update_service(command)?;
    let Some(mut row) = query::service(state, &command.service_id)? else {
        return Err(reject(
            RejectReason::ServiceNotFound,
            format!("service {} does not exist", command.service_id),
        ));
    };
    if row.tools == command.tools {
        return Ok(None);
    }
    row.tools = command.tools.clone();
    let mut writes = WriteSet::new();
    writes.put(keys::service(&command.service_id), row.encode_to_vec());
    let event = log::ServiceUpdated {
        service_id: command.service_id.clone(),
        tools: command.tools.clone(),
    };
    Ok(Some(Change::new(EventKind::ServiceUpdated(event), writes)))
}
