//! Changing an agent's credentials: adding and removing client secrets and public keys in one
//! atomic command, so a rotation never leaves the agent without one.

use std::collections::BTreeSet;

use prost::Message;
use warrant_proto::{
    log::{self, RejectReason, event::Kind as EventKind},
    state::AgentRow,
};

use super::context::{Change, Context, Decision, Refusal, agent_in_force, existing_agent, reject};
use crate::{
    check, keys,
    limits::{CREDENTIALS_PER_AGENT_MAX, FieldError},
    state::{StateRead, WriteSet},
};

pub(super) fn change_credentials(
    state: &dyn StateRead,
    context: &Context<'_>,
    command: &log::ChangeCredentials,
) -> Decision {
    check::change_credentials(command)?;
    let mut row = existing_agent(state, &command.agent_id)?;
    may_change(state, context, command, &row)?;
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

/// An admin, the agent's owner, or the agent itself (while in force) may change its credentials.
fn may_change(
    state: &dyn StateRead,
    context: &Context<'_>,
    command: &log::ChangeCredentials,
    row: &AgentRow,
) -> Result<(), Refusal> {
    let caller = context.caller;
    if !(caller.is_agent(&command.agent_id)
        || caller.is_admin()
        || caller.is_human(&row.owner_human_id))
    {
        return Err(reject(
            RejectReason::PermissionDenied,
            format!(
                "only an admin, human {} or agent {} itself may change its credentials",
                row.owner_human_id, command.agent_id
            ),
        ));
    }
    // The edge authenticated the agent against its node's state, which may lag: a disabled
    // agent could still pass there. Committed state decides, so a disabled agent (or one whose
    // owner or device is disabled) cannot mint itself a credential. An admin or the owner may
    // still change it, e.g. to rotate a leaked secret before enabling the agent again.
    if caller.is_agent(&command.agent_id) {
        agent_in_force(state, &command.agent_id, context.seq)?;
    }
    Ok(())
}
