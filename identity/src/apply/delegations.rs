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
    context::{
        Caller, Change, Context, Decision, Refusal, agent_in_force, delegation_in_force,
        human_in_force, reject,
    },
    policies, revocation,
    tokens::active_service,
};
use crate::{
    check, keys,
    limits::{DELEGATION_DEPTH_MAX, FieldError},
    query,
    state::{StateRead, WriteSet},
};

pub(super) fn create_delegation(
    state: &dyn StateRead,
    context: &Context<'_>,
    command: &log::CreateDelegation,
) -> Decision {
    let now_unix_s = context.now_unix_s();
    check::create_delegation(command, now_unix_s)?;
    let grantee = agent_in_force(state, &command.grantee_agent_id, context.seq)?;
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
    // Last: a policy narrows what the rules above allow, never widens it.
    policies::check_delegation(state, context, &created, &grantee)?;
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
    let human_id = root_grantor(context, command)?;
    human_in_force(state, &human_id, context.seq)?;
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
        budget: command.budget.clone(),
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

/// The human a root grant is from: the human asking (as themself), or the human an admin names.
fn root_grantor(context: &Context<'_>, command: &log::CreateDelegation) -> Result<String, Refusal> {
    match context.caller {
        Caller::Human(id) => {
            if !(command.grantor_human_id.is_empty() || command.grantor_human_id == id) {
                return Err(reject(
                    RejectReason::PermissionDenied,
                    format!(
                        "human {id} may grant only as themself, not as {}",
                        command.grantor_human_id
                    ),
                ));
            }
            Ok(id.to_owned())
        }
        Caller::Admin => {
            if command.grantor_human_id.is_empty() {
                return Err(FieldError::new(
                    "grantor_human_id",
                    "is empty",
                    "the human an admin makes the grant for",
                )
                .into());
            }
            Ok(command.grantor_human_id.clone())
        }
        _ => Err(reject(
            RejectReason::PermissionDenied,
            "a delegation without a parent is granted by a human (or an admin for one); an agent \
             delegates onward only under a delegation it holds (parent_delegation_id)",
        )),
    }
}

/// An agent's grant under a delegation it holds: strictly within the parent.
fn child_grant(
    state: &dyn StateRead,
    context: &Context<'_>,
    command: &log::CreateDelegation,
    now_unix_s: u64,
) -> Result<log::DelegationCreated, Refusal> {
    let parent_id = &command.parent_delegation_id;
    let parent = delegation_in_force(state, parent_id, now_unix_s)?;
    if !context.caller.is_agent(&parent.grantee_agent_id) {
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
    let depth = check_child_depth(&parent, command)?;
    check_within_parent(&parent, command)?;
    check_budget_within_parent(&parent, command)?;
    let mut agent_chain = parent.agent_chain.clone();
    agent_chain.push(command.grantee_agent_id.clone());
    Ok(log::DelegationCreated {
        budget: command.budget.clone(),
        delegation_id: command.delegation_id.clone(),
        parent_delegation_id: parent_id.clone(),
        root_human_id: parent.root_human_id.clone(),
        grantor_kind: PrincipalKind::Agent as i32,
        grantor_id: context.actor.id.clone(),
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

/// The child's depth, one below its parent: within the parent's cap (and the global one), and
/// the child's own cap between its depth and the parent's cap.
fn check_child_depth(
    parent: &log::DelegationCreated,
    command: &log::CreateDelegation,
) -> Result<u32, Refusal> {
    let parent_id = &command.parent_delegation_id;
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
    Ok(depth)
}

/// Attenuation: the child's scopes and audiences are subsets of the parent's, and it expires no
/// later.
fn check_within_parent(
    parent: &log::DelegationCreated,
    command: &log::CreateDelegation,
) -> Result<(), Refusal> {
    let parent_id = &command.parent_delegation_id;
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
    Ok(())
}

/// A child's budget is no larger than its parent's: its total no more than the parent's total,
/// and each tool's limit no more than the parent's limit for that tool, where both state one.
/// (The parent's budget counts the child's calls anyway; this keeps a grant from promising what
/// its parent cannot give.)
fn check_budget_within_parent(
    parent: &log::DelegationCreated,
    command: &log::CreateDelegation,
) -> Result<(), Refusal> {
    let (Some(parent_budget), Some(budget)) = (&parent.budget, &command.budget) else {
        return Ok(());
    };
    let parent_id = &command.parent_delegation_id;
    if 0 < parent_budget.total && parent_budget.total < budget.total {
        return Err(reject(
            RejectReason::BudgetExceedsParent,
            format!(
                "budget total {} is above parent delegation {parent_id}'s {}; allowed: at most {}",
                budget.total, parent_budget.total, parent_budget.total
            ),
        ));
    }
    for each in &budget.tools {
        if let Some(limit) = parent_budget.tools.iter().find(|it| it.tool == each.tool)
            && limit.limit < each.limit
        {
            return Err(reject(
                RejectReason::BudgetExceedsParent,
                format!(
                    "budget for tool {} is {}, above parent delegation {parent_id}'s {}; \
                     allowed: at most {}",
                    each.tool, each.limit, limit.limit, limit.limit
                ),
            ));
        }
    }
    Ok(())
}

pub(super) fn revoke_delegation(
    state: &dyn StateRead,
    context: &Context<'_>,
    command: &log::RevokeDelegation,
) -> Decision {
    check::revoke_delegation(command)?;
    let Some(row) = query::delegation(state, &command.delegation_id)? else {
        return Err(reject(
            RejectReason::DelegationNotFound,
            format!("delegation {} does not exist", command.delegation_id),
        ));
    };
    let created = row.created.clone().unwrap_or_default();
    let caller = context.caller;
    // Anyone above the grant, or its grantee giving it up.
    let in_chain =
        matches!(caller, Caller::Agent(id) if created.agent_chain.iter().any(|it| it == id));
    if !(caller.is_admin() || caller.is_human(&created.root_human_id) || in_chain) {
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
    let event = log::DelegationRevoked {
        delegation_id: command.delegation_id.clone(),
        reason: command.reason.clone(),
    };
    Ok(revocation::revoke(
        row,
        keys::delegation(&command.delegation_id),
        context.seq,
        &command.reason,
        EventKind::DelegationRevoked(event),
    ))
}
