//! Devices: registering and updating them, and binding an agent to one of its owner's devices.

use prost::Message;
use warrant_proto::{
    log::{self, RejectReason, event::Kind as EventKind},
    state::{DeviceRow, Status},
};

use super::{
    context::{Change, Context, Decision, existing_agent, existing_device, reject},
    permissions::require_admin_or_owner,
};
use crate::{
    check, keys, query,
    state::{StateRead, WriteSet},
};

pub(super) fn register_device(
    state: &dyn StateRead,
    context: &Context<'_>,
    command: &log::RegisterDevice,
) -> Decision {
    check::register_device(command)?;
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
    // A device never changes owner (UpdateDevice renames it only), so its index entry is
    // written once.
    writes.put(
        keys::device_by_owner(&command.owner_human_id, &command.device_id),
        Vec::new(),
    );
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
) -> Decision {
    check::update_device(command)?;
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
) -> Decision {
    check::bind_agent_device(command)?;
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
