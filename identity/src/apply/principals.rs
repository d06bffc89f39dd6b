//! Updating, disabling and re-enabling principals and devices, binding agents to devices, and
//! changing agents' credentials.

use std::collections::BTreeSet;

use prost::Message;
use warrant_proto::{
    log::{self, EntityKind, PrincipalKind, RejectReason, event::Kind as EventKind},
    state::{AgentRow, DeviceRow, Status},
};

use super::{Change, Context, Refusal, reject, require_admin, validate_credential, validate_tools};
use crate::{
    keys,
    limits::{
        self, CREDENTIAL_CHANGES_MAX, CREDENTIALS_PER_AGENT_MAX, DESCRIPTION_LEN_MAX,
        DEVICE_NAME_LEN_MAX, DISPLAY_NAME_LEN_MAX, EMAIL_LEN_MAX, FieldError, PLATFORM_LEN_MAX,
        REASON_LEN_MAX,
    },
    query,
    state::{StateRead, WriteSet},
};

fn is_admin(context: &Context<'_>) -> bool {
    context.actor.kind == PrincipalKind::Admin as i32
}

fn is_human(context: &Context<'_>, human_id: &str) -> bool {
    context.actor.kind == PrincipalKind::Human as i32 && context.actor.id == human_id
}

/// An admin, or the human `owner_human_id` acting for themself.
fn require_admin_or_owner(
    context: &Context<'_>,
    owner_human_id: &str,
    what: &str,
) -> Result<(), Refusal> {
    if is_admin(context) || is_human(context, owner_human_id) {
        return Ok(());
    }
    Err(reject(
        RejectReason::PermissionDenied,
        format!("only an admin or human {owner_human_id} may {what}"),
    ))
}

fn existing_agent(state: &dyn StateRead, agent_id: &str) -> Result<AgentRow, Refusal> {
    query::agent(state, agent_id)?.ok_or_else(|| {
        reject(
            RejectReason::AgentNotFound,
            format!("agent {agent_id} does not exist"),
        )
    })
}

fn existing_device(state: &dyn StateRead, device_id: &str) -> Result<DeviceRow, Refusal> {
    query::device(state, device_id)?.ok_or_else(|| {
        reject(
            RejectReason::DeviceNotFound,
            format!("device {device_id} does not exist"),
        )
    })
}

pub(super) fn update_human(
    state: &dyn StateRead,
    context: &Context<'_>,
    command: &log::UpdateHuman,
) -> Result<Option<Change>, Refusal> {
    limits::validate_id("human_id", &command.human_id)?;
    limits::validate_text("display_name", &command.display_name, DISPLAY_NAME_LEN_MAX)?;
    limits::validate_text("email", &command.email, EMAIL_LEN_MAX)?;
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
) -> Result<Option<Change>, Refusal> {
    limits::validate_id("agent_id", &command.agent_id)?;
    limits::validate_name("kind", &command.kind, limits::AGENT_KIND_LEN_MAX)?;
    limits::validate_text("description", &command.description, DESCRIPTION_LEN_MAX)?;
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
) -> Result<Option<Change>, Refusal> {
    require_admin(context, "update services")?;
    limits::validate_id("service_id", &command.service_id)?;
    validate_tools(&command.tools)?;
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

pub(super) fn register_device(
    state: &dyn StateRead,
    context: &Context<'_>,
    command: &log::RegisterDevice,
) -> Result<Option<Change>, Refusal> {
    limits::validate_id("device_id", &command.device_id)?;
    limits::validate_id("owner_human_id", &command.owner_human_id)?;
    limits::validate_text("name", &command.name, DEVICE_NAME_LEN_MAX)?;
    limits::validate_text("platform", &command.platform, PLATFORM_LEN_MAX)?;
    require_admin_or_owner(context, &command.owner_human_id, "register its devices")?;
    match query::human(state, &command.owner_human_id)? {
        Some(owner) if owner.status == Status::Active as i32 => {}
        _ => {
            return Err(reject(
                RejectReason::HumanNotFound,
                format!(
                    "owner human {} does not exist or is not active",
                    command.owner_human_id
                ),
            ));
        }
    }
    let key = keys::device(&command.device_id);
    if state.get(&key)?.is_some() {
        return Err(reject(
            RejectReason::AlreadyExists,
            format!("device {} already exists", command.device_id),
        ));
    }
    let row = DeviceRow {
        device_id: command.device_id.clone(),
        owner_human_id: command.owner_human_id.clone(),
        name: command.name.clone(),
        platform: command.platform.clone(),
        status: Status::Active as i32,
        created_seq: context.seq,
        created_unix_ms: context.time_unix_ms,
        disabled_seq: 0,
    };
    let mut writes = WriteSet::new();
    writes.put(key, row.encode_to_vec());
    let event = log::DeviceRegistered {
        device_id: command.device_id.clone(),
        owner_human_id: command.owner_human_id.clone(),
        name: command.name.clone(),
        platform: command.platform.clone(),
    };
    Ok(Some(Change::new(
        EventKind::DeviceRegistered(event),
        writes,
    )))
}

pub(super) fn update_device(
    state: &dyn StateRead,
    context: &Context<'_>,
    command: &log::UpdateDevice,
) -> Result<Option<Change>, Refusal> {
    limits::validate_id("device_id", &command.device_id)?;
    limits::validate_text("name", &command.name, DEVICE_NAME_LEN_MAX)?;
    limits::validate_text("platform", &command.platform, PLATFORM_LEN_MAX)?;
    let mut row = existing_device(state, &command.device_id)?;
    require_admin_or_owner(context, &row.owner_human_id, "update this device")?;
    if row.name == command.name && row.platform == command.platform {
        return Ok(None);
    }
    row.name = command.name.clone();
    row.platform = command.platform.clone();
    let mut writes = WriteSet::new();
    writes.put(keys::device(&command.device_id), row.encode_to_vec());
    let event = log::DeviceUpdated {
        device_id: command.device_id.clone(),
        name: command.name.clone(),
        platform: command.platform.clone(),
    };
    Ok(Some(Change::new(EventKind::DeviceUpdated(event), writes)))
}

pub(super) fn bind_agent_device(
    state: &dyn StateRead,
    context: &Context<'_>,
    command: &log::BindAgentDevice,
) -> Result<Option<Change>, Refusal> {
    limits::validate_id("agent_id", &command.agent_id)?;
    if !command.device_id.is_empty() {
        limits::validate_id("device_id", &command.device_id)?;
    }
    let mut row = existing_agent(state, &command.agent_id)?;
    require_admin_or_owner(context, &row.owner_human_id, "bind this agent")?;
    if !command.device_id.is_empty() {
        let device = existing_device(state, &command.device_id)?;
        if device.status != Status::Active as i32 {
            return Err(reject(
                RejectReason::DeviceDisabled,
                format!("device {} is disabled", command.device_id),
            ));
        }
        // An agent runs on its owner's devices only: binding to another human's device would let
        // that human's device compromise speak for this owner's agent.
        if device.owner_human_id != row.owner_human_id {
            return Err(reject(
                RejectReason::PermissionDenied,
                format!(
                    "device {} belongs to human {}, not to agent {}'s owner {}",
                    command.device_id, device.owner_human_id, command.agent_id, row.owner_human_id
                ),
            ));
        }
    }
    if row.device_id == command.device_id {
        return Ok(None);
    }
    row.device_id = command.device_id.clone();
    let mut writes = WriteSet::new();
    writes.put(keys::agent(&command.agent_id), row.encode_to_vec());
    let event = log::AgentDeviceBound {
        agent_id: command.agent_id.clone(),
        device_id: command.device_id.clone(),
    };
    Ok(Some(Change::new(
        EventKind::AgentDeviceBound(event),
        writes,
    )))
}

pub(super) fn set_status(
    state: &dyn StateRead,
    context: &Context<'_>,
    command: &log::SetStatus,
) -> Result<Option<Change>, Refusal> {
    limits::validate_id("id", &command.id)?;
    limits::validate_text("reason", &command.reason, REASON_LEN_MAX)?;
    let status = if command.disabled {
        Status::Disabled
    } else {
        Status::Active
    } as i32;
    let id = &command.id;
    let (key, bytes) = match EntityKind::try_from(command.entity) {
        Ok(EntityKind::Human) => {
            require_admin(context, "disable or enable humans")?;
            let Some(mut row) = query::human(state, id)? else {
                return Err(reject(
                    RejectReason::HumanNotFound,
                    format!("human {id} does not exist"),
                ));
            };
            if row.status == status {
                return Ok(None);
            }
            row.status = status;
            if command.disabled {
                row.disabled_seq = context.seq;
            }
            (keys::human(id), row.encode_to_vec())
        }
        Ok(EntityKind::Agent) => {
            let mut row = existing_agent(state, id)?;
            require_admin_or_owner(context, &row.owner_human_id, "disable or enable this agent")?;
            if row.status == status {
                return Ok(None);
            }
            row.status = status;
            if command.disabled {
                row.disabled_seq = context.seq;
            }
            (keys::agent(id), row.encode_to_vec())
        }
        Ok(EntityKind::Service) => {
            require_admin(context, "disable or enable services")?;
            let Some(mut row) = query::service(state, id)? else {
                return Err(reject(
                    RejectReason::ServiceNotFound,
                    format!("service {id} does not exist"),
                ));
            };
            if row.status == status {
                return Ok(None);
            }
            row.status = status;
            (keys::service(id), row.encode_to_vec())
        }
        Ok(EntityKind::Device) => {
            let mut row = existing_device(state, id)?;
            require_admin_or_owner(
                context,
                &row.owner_human_id,
                "disable or enable this device",
            )?;
            if row.status == status {
                return Ok(None);
            }
            row.status = status;
            if command.disabled {
                row.disabled_seq = context.seq;
            }
            (keys::device(id), row.encode_to_vec())
        }
        Ok(EntityKind::Unspecified) | Err(_) => {
            return Err(FieldError::new(
                "entity",
                format!("is {}", command.entity),
                "human, agent, service or device",
            )
            .into());
        }
    };
    let mut writes = WriteSet::new();
    writes.put(key, bytes);
    let event = log::StatusChanged {
        entity: command.entity,
        id: command.id.clone(),
        disabled: command.disabled,
        reason: command.reason.clone(),
    };
    Ok(Some(Change::new(EventKind::StatusChanged(event), writes)))
}

pub(super) fn change_credentials(
    state: &dyn StateRead,
    context: &Context<'_>,
    command: &log::ChangeCredentials,
) -> Result<Option<Change>, Refusal> {
    limits::validate_id("agent_id", &command.agent_id)?;
    if command.add.is_empty() && command.remove.is_empty() {
        return Err(FieldError::new(
            "add",
            "and remove are both empty",
            "at least one credential to add or remove",
        )
        .into());
    }
    for (field, len) in [("add", command.add.len()), ("remove", command.remove.len())] {
        if CREDENTIAL_CHANGES_MAX < len {
            return Err(FieldError::new(
                field,
                format!("has {len} entries"),
                format!("at most {CREDENTIAL_CHANGES_MAX}"),
            )
            .into());
        }
    }
    for (idx, credential) in command.add.iter().enumerate() {
        validate_credential(&format!("add[{idx}]"), credential)?;
    }
    for (idx, credential_id) in command.remove.iter().enumerate() {
        limits::validate_id(&format!("remove[{idx}]"), credential_id)?;
    }
    let mut row = existing_agent(state, &command.agent_id)?;
    let is_self =
        context.actor.kind == PrincipalKind::Agent as i32 && context.actor.id == command.agent_id;
    if !(is_self || is_admin(context) || is_human(context, &row.owner_human_id)) {
        return Err(reject(
            RejectReason::PermissionDenied,
            format!(
                "only an admin, human {} or agent {} itself may change its credentials",
                row.owner_human_id, command.agent_id
            ),
        ));
    }
    for credential_id in &command.remove {
        let before = row.credentials.len();
        row.credentials
            .retain(|it| &it.credential_id != credential_id);
        if row.credentials.len() == before {
            return Err(reject(
                RejectReason::CredentialNotFound,
                format!(
                    "agent {} has no credential {credential_id}",
                    command.agent_id
                ),
            ));
        }
    }
    let mut ids: BTreeSet<String> = row
        .credentials
        .iter()
        .map(|it| it.credential_id.clone())
        .collect();
    for credential in &command.add {
        if !ids.insert(credential.credential_id.clone()) {
            return Err(reject(
                RejectReason::AlreadyExists,
                format!(
                    "agent {} already has credential {}",
                    command.agent_id, credential.credential_id
                ),
            ));
        }
        row.credentials.push(credential.clone());
    }
    if CREDENTIALS_PER_AGENT_MAX < row.credentials.len() {
        return Err(FieldError::new(
            "add",
            format!("would leave {} credentials", row.credentials.len()),
            format!("at most {CREDENTIALS_PER_AGENT_MAX} per agent"),
        )
        .into());
    }
    let mut writes = WriteSet::new();
    writes.put(keys::agent(&command.agent_id), row.encode_to_vec());
    let event = log::CredentialsChanged {
        agent_id: command.agent_id.clone(),
        added_ids: command
            .add
            .iter()
            .map(|it| it.credential_id.clone())
            .collect(),
        removed_ids: command.remove.clone(),
    };
    Ok(Some(Change::new(
        EventKind::CredentialsChanged(event),
        writes,
    )))
}
