//! Disabling and re-enabling humans, agents, services and devices.

use prost::Message;
use warrant_proto::{
    log::{self, EntityKind, RejectReason, event::Kind as EventKind},
    state::Status,
};

use super::{
    context::{Change, Context, Decision, Refusal, existing_agent, existing_device, reject},
    permissions::{require_admin, require_admin_or_owner},
};
use crate::{check, keys, query, state::StateRead};

pub(super) fn set_status(
    state: &dyn StateRead,
    context: &Context<'_>,
    command: &log::SetStatus,
) -> Decision {
    check::set_status(command)?;
    let target = Target {
        id: &command.id,
        status: if command.disabled {
            Status::Disabled
        } else {
            Status::Active
        } as i32,
        disabled: command.disabled,
    };
    let changed = match EntityKind::try_from(command.entity) {
        Ok(EntityKind::Human) => set_human(state, context, &target)?,
        Ok(EntityKind::Agent) => set_agent(state, context, &target)?,
        Ok(EntityKind::Service) => set_service(state, context, &target)?,
        Ok(EntityKind::Device) => set_device(state, context, &target)?,
        Ok(EntityKind::Operator) => set_operator(state, context, &target)?,
        // check::set_status refused every other value.
        Ok(EntityKind::Unspecified) | Err(_) => None,
    };
    let Some((key, row)) = changed else {
        return Ok(None);
    };
    let event = log::StatusChanged {
        entity: command.entity,
        id: command.id.clone(),
        disabled: command.disabled,
        reason: command.reason.clone(),
    };
    Ok(Some(Change::one_row(
        EventKind::StatusChanged(event),
        key,
        row,
    )))
}

/// The entity a `SetStatus` names and the status it asks for.
struct Target<'a> {
    id: &'a str,
    status: i32,
    disabled: bool,
}

/// A row to write, or `None` when the entity already has the status.
type RowChange = Result<Option<(Vec<u8>, Vec<u8>)>, Refusal>;

fn set_human(state: &dyn StateRead, context: &Context<'_>, target: &Target<'_>) -> RowChange {
    require_admin(context, "disable or enable humans")?;
    let id = target.id;
    let Some(mut row) = query::human(state, id)? else {
        return Err(reject(
            RejectReason::HumanNotFound,
            format!("human {id} does not exist"),
        ));
    };
    if row.status == target.status {
        return Ok(None);
    }
    row.status = target.status;
    if target.disabled {
        row.disabled_seq = context.seq;
    }
    Ok(Some((keys::human(id), row.encode_to_vec())))
}

fn set_agent(state: &dyn StateRead, context: &Context<'_>, target: &Target<'_>) -> RowChange {
    let mut row = existing_agent(state, target.id)?;
    require_admin_or_owner(context, &row.owner_human_id, "disable or enable this agent")?;
    if row.status == target.status {
        return Ok(None);
    }
    row.status = target.status;
    if target.disabled {
        row.disabled_seq = context.seq;
    }
    Ok(Some((keys::agent(target.id), row.encode_to_vec())))
}

fn set_service(state: &dyn StateRead, context: &Context<'_>, target: &Target<'_>) -> RowChange {
    require_admin(context, "disable or enable services")?;
    let id = target.id;
    let Some(mut row) = query::service(state, id)? else {
        return Err(reject(
            RejectReason::ServiceNotFound,
            format!("service {id} does not exist"),
        ));
    };
    if row.status == target.status {
        return Ok(None);
    }
    row.status = target.status;
    Ok(Some((keys::service(id), row.encode_to_vec())))
}

fn set_device(state: &dyn StateRead, context: &Context<'_>, target: &Target<'_>) -> RowChange {
    let mut row = existing_device(state, target.id)?;
    require_admin_or_owner(
        context,
        &row.owner_human_id,
        "disable or enable this device",
    )?;
    if row.status == target.status {
        return Ok(None);
    }
    row.status = target.status;
    if target.disabled {
        row.disabled_seq = context.seq;
    }
    Ok(Some((keys::device(target.id), row.encode_to_vec())))
}

/// Disables or enables operator `id` (admins only): a disabled operator's certificate
/// authenticates nothing.
fn set_operator(state: &dyn StateRead, context: &Context<'_>, target: &Target<'_>) -> RowChange {
    require_admin(context, "disable or enable operators")?;
    let (id, status) = (target.id, target.status);
    let Some(mut row) = query::operator(state, id)? else {
        return Err(reject(
            RejectReason::PermissionDenied,
            format!("no operator {id} is registered"),
        ));
    };
    if row.status == status {
        return Ok(None);
    }
    row.status = status;
    Ok(Some((keys::operator(id), row.encode_to_vec())))
}
