//! Creating and revoking delegations: a human's grant to an agent, and an agent's strictly
//! narrower grant to a sub-agent.
//!
//! Attenuation is checked here, in apply, against committed state: a child never holds a scope,
//! an audience or a lifetime its parent lacks, never goes deeper than the cap, and never names an
//! agent already in its chain (no cycles).

use std::collections::BTreeSet;

use prost::Message;
use warrant_proto::{
    log::{self, PrincipalKind, RejectReason, event::Kind as EventKind},
    state::DelegationRow,
};

use super::{
    Change, Context, Refusal, agent_in_force, reject,
    tokens::{active_service, validate_scope_list},
};
use crate::{
    keys,
    limits::{
        self, AUDIENCES_PER_DELEGATION_MAX, DELEGATION_DEPTH_MAX, DELEGATION_TTL_SECONDS_MAX,
        FieldError, REASON_LEN_MAX, SCOPES_PER_TOKEN_MAX, TASK_LEN_MAX,
    },
    query,
    state::{StateRead, WriteSet},
    validity::{self, LapseKind},
};

pub(super) fn create_delegation(
    state: &dyn StateRead,
    context: &Context<'_>,
    command: &log::CreateDelegation,
) -> Result<Option<Change>, Refusal> {
    limits::validate_id("delegation_id", &command.delegation_id)?;
    if !command.parent_delegation_id.is_empty() {
        limits::validate_id("parent_delegation_id", &command.parent_delegation_id)?;
    }
    limits::validate_id("grantee_agent_id", &command.grantee_agent_id)?;
    validate_scope_list("scopes", &command.scopes, SCOPES_PER_TOKEN_MAX)?;
    validate_audiences(&command.audiences)?;
    limits::validate_text("task", &command.task, TASK_LEN_MAX)?;
    if !command.grantor_human_id.is_empty() {
        limits::validate_id("grantor_human_id", &command.grantor_human_id)?;
    }
    let now_unix_s = context.time_unix_ms / 1000;
    let latest = now_unix_s.saturating_add(DELEGATION_TTL_SECONDS_MAX);
    if !(now_unix_s < command.expires_at_unix_s && command.expires_at_unix_s <= latest) {
        return Err(FieldError::new(
            "expires_at_unix_s",
            format!("is {} (now {now_unix_s})", command.expires_at_unix_s),
            format!(
                "a time after now and at most {DELEGATION_TTL_SECONDS_MAX} s ahead (up to {latest})"
            ),
        )
        .into());
    }
    if !(1 <= command.max_depth && command.max_depth <= DELEGATION_DEPTH_MAX) {
        return Err(FieldError::new(
            "max_depth",
            format!("is {}", command.max_depth),
            format!("1 to {DELEGATION_DEPTH_MAX}"),
        )
        .into());
    }

    agent_in_force(state, &command.grantee_agent_id, context.seq)?;
    let created = if command.parent_delegation_id.is_empty() {
        root_grant(state, context, command)?
    } else {
        child_grant(state, context, command, now_unix_s)?
    };
    let key = keys::delegation(&command.delegation_id);
    if state.get(&key)?.is_some() {
        return Err(reject(
            RejectReason::AlreadyExists,
            format!("delegation {} already exists", command.delegation_id),
        ));
    }
    let row = DelegationRow {
        created: Some(created.clone()),
        created_seq: context.seq,
        ..DelegationRow::default()
    };
    let mut writes = WriteSet::new();
    writes.put(key, row.encode_to_vec());
    writes.put(
        keys::delegation_by_grantee(&command.grantee_agent_id, &command.delegation_id),
        Vec::new(),
    );
    Ok(Some(Change {
        delegation_created: Some(created.clone()),
        ..Change::new(EventKind::DelegationCreated(created), writes)
    }))
}

/// A human's grant: the human must be in force, and every scope must be a tool of one of the
/// granted audiences' services.
fn root_grant(
    state: &dyn StateRead,
    context: &Context<'_>,
    command: &log::CreateDelegation,
) -> Result<log::DelegationCreated, Refusal> {
    let actor = context.actor;
    let human_id = if actor.kind == PrincipalKind::Human as i32 {
        if !(command.grantor_human_id.is_empty() || command.grantor_human_id == actor.id) {
            return Err(reject(
                RejectReason::PermissionDenied,
                format!(
                    "human {} may grant only as themself, not as {}",
                    actor.id, command.grantor_human_id
                ),
            ));
        }
        actor.id.clone()
    } else if actor.kind == PrincipalKind::Admin as i32 {
        if command.grantor_human_id.is_empty() {
            return Err(FieldError::new(
                "grantor_human_id",
                "is empty",
                "the human an admin makes the grant for",
            )
            .into());
        }
        command.grantor_human_id.clone()
    } else {
        return Err(reject(
            RejectReason::PermissionDenied,
            "a delegation without a parent is granted by a human (or an admin for one); an agent \
             delegates onward only under a delegation it holds (parent_delegation_id)",
        ));
    };
    match validity::human(state, &human_id, context.seq)? {
        Ok(_) => {}
        Err(lapse) if query::human(state, &human_id)?.is_none() => {
            return Err(reject(RejectReason::HumanNotFound, lapse.message));
        }
        Err(lapse) => return Err(reject(RejectReason::HumanDisabled, lapse.message)),
    }
    let mut tools = BTreeSet::new();
    for audience in &command.audiences {
        let service = active_service(state, audience)?;
        tools.extend(service.tools.into_iter().map(|it| it.name));
    }
    if let Some(scope) = command.scopes.iter().find(|it| !tools.contains(*it)) {
        return Err(reject(
            RejectReason::ScopeNotAllowed,
            format!(
                "scope {scope} is not a tool of any granted audience's service; allowed: {}",
                tools.into_iter().collect::<Vec<_>>().join(" ")
            ),
        ));
    }
    Ok(log::DelegationCreated {
        delegation_id: command.delegation_id.clone(),
        parent_delegation_id: String::new(),
        root_human_id: human_id.clone(),
        grantor_kind: PrincipalKind::Human as i32,
        grantor_id: human_id,
        grantee_agent_id: command.grantee_agent_id.clone(),
        scopes: command.scopes.clone(),
        audiences: command.audiences.clone(),
        task: command.task.clone(),
        expires_at_unix_s: command.expires_at_unix_s,
        max_depth: command.max_depth,
        depth: 1,
        agent_chain: vec![command.grantee_agent_id.clone()],
    })
}

/// An agent's grant under a delegation it holds: strictly within the parent.
fn child_grant(
    state: &dyn StateRead,
    context: &Context<'_>,
    command: &log::CreateDelegation,
    now_unix_s: u64,
) -> Result<log::DelegationCreated, Refusal> {
    let parent_id = &command.parent_delegation_id;
    let chain = match validity::delegation_chain(state, parent_id, now_unix_s)? {
        Ok(chain) => chain,
        Err(lapse) if lapse.kind == LapseKind::DelegationNotFound => {
            return Err(reject(RejectReason::DelegationNotFound, lapse.message));
        }
        Err(lapse) => return Err(reject(RejectReason::DelegationInactive, lapse.message)),
    };
    let Some(parent) = chain.into_iter().next() else {
        return Err(reject(
            RejectReason::DelegationNotFound,
            format!("delegation {parent_id} does not exist"),
        ));
    };
    let actor = context.actor;
    if !(actor.kind == PrincipalKind::Agent as i32 && actor.id == parent.grantee_agent_id) {
        return Err(reject(
            RejectReason::PermissionDenied,
            format!(
                "only agent {}, which holds delegation {parent_id}, may delegate under it",
                parent.grantee_agent_id
            ),
        ));
    }
    if parent.agent_chain.contains(&command.grantee_agent_id) {
        return Err(reject(
            RejectReason::DelegationCycle,
            format!(
                "agent {} is already in the chain {}; allowed: an agent not yet in it",
                command.grantee_agent_id,
                parent.agent_chain.join(" -> ")
            ),
        ));
    }
    let depth = parent.depth.saturating_add(1);
    if parent.max_depth < depth || DELEGATION_DEPTH_MAX < depth {
        return Err(reject(
            RejectReason::DelegationDepthExceeded,
            format!(
                "the chain would be {depth} agents deep; allowed: at most {} under delegation \
                 {parent_id}",
                parent.max_depth.min(DELEGATION_DEPTH_MAX)
            ),
        ));
    }
    if parent.max_depth < command.max_depth {
        return Err(reject(
            RejectReason::DelegationDepthExceeded,
            format!(
                "max_depth {} is above the parent's {}; allowed: {depth} to {}",
                command.max_depth, parent.max_depth, parent.max_depth
            ),
        ));
    }
    if command.max_depth < depth {
        return Err(FieldError::new(
            "max_depth",
            format!(
                "is {} but this grant is at depth {depth}",
                command.max_depth
            ),
            format!("{depth} to {}", parent.max_depth),
        )
        .into());
    }
    if let Some(scope) = command.scopes.iter().find(|it| !parent.scopes.contains(it)) {
        return Err(reject(
            RejectReason::ScopeExceedsParent,
            format!(
                "scope {scope} is not in parent delegation {parent_id}; allowed: a subset of {}",
                parent.scopes.join(" ")
            ),
        ));
    }
    if let Some(audience) = command
        .audiences
        .iter()
        .find(|it| !parent.audiences.contains(it))
    {
        return Err(reject(
            RejectReason::AudienceExceedsParent,
            format!(
                "audience {audience} is not in parent delegation {parent_id}; allowed: a subset \
                 of {}",
                parent.audiences.join(" ")
            ),
        ));
    }
    if parent.expires_at_unix_s < command.expires_at_unix_s {
        return Err(reject(
            RejectReason::ExpiryExceedsParent,
            format!(
                "expiry {} is after parent delegation {parent_id}'s {}; allowed: at most {}",
                command.expires_at_unix_s, parent.expires_at_unix_s, parent.expires_at_unix_s
            ),
        ));
    }
    let mut agent_chain = parent.agent_chain.clone();
    agent_chain.push(command.grantee_agent_id.clone());
    Ok(log::DelegationCreated {
        delegation_id: command.delegation_id.clone(),
        parent_delegation_id: parent_id.clone(),
        root_human_id: parent.root_human_id.clone(),
        grantor_kind: PrincipalKind::Agent as i32,
        grantor_id: actor.id.clone(),
        grantee_agent_id: command.grantee_agent_id.clone(),
        scopes: command.scopes.clone(),
        audiences: command.audiences.clone(),
        // A sub-agent works on its grantor's task unless it is given a narrower one.
        task: if command.task.is_empty() {
            parent.task.clone()
        } else {
            command.task.clone()
        },
        expires_at_unix_s: command.expires_at_unix_s,
        max_depth: command.max_depth,
        depth,
        agent_chain,
    })
}

fn validate_audiences(audiences: &[String]) -> Result<(), FieldError> {
    if audiences.is_empty() || AUDIENCES_PER_DELEGATION_MAX < audiences.len() {
        return Err(FieldError::new(
            "audiences",
            format!("has {} entries", audiences.len()),
            format!("1 to {AUDIENCES_PER_DELEGATION_MAX} service audiences"),
        ));
    }
    let mut seen = BTreeSet::new();
    for (idx, audience) in audiences.iter().enumerate() {
        let field = format!("audiences[{idx}]");
        limits::validate_audience(&field, audience)?;
        if !seen.insert(audience.as_str()) {
            return Err(FieldError::new(
                field,
                format!("repeats {audience}"),
                "unique audiences",
            ));
        }
    }
    Ok(())
}

pub(super) fn revoke_delegation(
    state: &dyn StateRead,
    context: &Context<'_>,
    command: &log::RevokeDelegation,
) -> Result<Option<Change>, Refusal> {
    limits::validate_id("delegation_id", &command.delegation_id)?;
    limits::validate_text("reason", &command.reason, REASON_LEN_MAX)?;
    let Some(mut row) = query::delegation(state, &command.delegation_id)? else {
        return Err(reject(
            RejectReason::DelegationNotFound,
            format!("delegation {} does not exist", command.delegation_id),
        ));
    };
    let created = row.created.clone().unwrap_or_default();
    let actor = context.actor;
    // Anyone above the grant, or its grantee giving it up.
    let allowed = actor.kind == PrincipalKind::Admin as i32
        || (actor.kind == PrincipalKind::Human as i32 && actor.id == created.root_human_id)
        || (actor.kind == PrincipalKind::Agent as i32 && created.agent_chain.contains(&actor.id));
    if !allowed {
        return Err(reject(
            RejectReason::PermissionDenied,
            format!(
                "only an admin, human {} or an agent in the chain {} may revoke delegation {}",
                created.root_human_id,
                created.agent_chain.join(" -> "),
                command.delegation_id
            ),
        ));
    }
    if row.revoked {
        return Ok(None);
    }
    row.revoked = true;
    row.revoked_seq = context.seq;
    row.revoke_reason = command.reason.clone();
    let mut writes = WriteSet::new();
    writes.put(
        keys::delegation(&command.delegation_id),
        row.encode_to_vec(),
    );
    let event = log::DelegationRevoked {
        delegation_id: command.delegation_id.clone(),
        reason: command.reason.clone(),
    };
    Ok(Some(Change::new(
        EventKind::DelegationRevoked(event),
        writes,
    )))
}
