//! Access policy versions (publish, activate, roll back, mark shadow), all admin acts, and the
//! policy step of issuance: `IssueToken` (and exchange) and `CreateDelegation` are evaluated
//! against the active version after their own rules pass.
//!
//! Versions are numbered 1, 2, … in publication order and never change. One row (`pa`) says
//! which version is active and which is shadow, and keeps the versions active before, for
//! `RollbackPolicy` (at most [`POLICY_ROLLBACK_DEPTH_MAX`]; the oldest are forgotten).

use prost::Message;
use sha2::{Digest, Sha256};
use warrant_proto::{
    log::{self, PrincipalKind, RejectReason, event::Kind as EventKind},
    state::{AgentRow, PolicyActivationRow, PolicyVersionRow, ServiceRow},
};

use super::{
    context::{Change, Context, Decision, Refusal, reject, reject_policy_invalid},
    permissions::require_admin,
};
use crate::{
    check, keys,
    limits::POLICY_ROLLBACK_DEPTH_MAX,
    policy::{self, CompiledPolicy, PolicyAction, PolicyPrincipal, PolicyRequest},
    query,
    state::{StateError, StateRead, WriteSet},
};

pub(super) fn publish_policy(
    state: &dyn StateRead,
    context: &Context<'_>,
    command: &log::PublishPolicy,
) -> Decision {
    require_admin(context, "publish a policy version")?;
    check::publish_policy(command)?;
    // The same validation the edge ran: a pure function of the text and the attributes.
    let validated = match policy::validate(&command.text, &command.attributes) {
        Ok(validated) => validated,
        Err(errors) => return Err(invalid(errors)),
    };
    let mut activation = query::policy_activation(state)?;
    let Some(version) = activation.latest_version.checked_add(1) else {
        return Err(reject(
            RejectReason::InvalidCommand,
            format!(
                "policy version {} is the last number there is; allowed: no more versions",
                activation.latest_version
            ),
        ));
    };
    let published = log::PolicyPublished {
        version,
        text: command.text.clone(),
        description: command.description.clone(),
        attributes: command.attributes.clone(),
        text_sha256: Sha256::digest(command.text.as_bytes()).to_vec(),
        policy_ids: validated.policy_ids,
    };
    let row = PolicyVersionRow {
        published: Some(published.clone()),
        published_seq: context.seq,
        published_unix_ms: context.time_unix_ms,
    };
    activation.latest_version = version;
    let mut writes = WriteSet::new();
    writes.put(keys::policy_version(version), row.encode_to_vec());
    writes.put(keys::POLICY_ACTIVATION.to_vec(), activation.encode_to_vec());
    Ok(Some(Change {
        policy_version: version,
        ..Change::new(EventKind::PolicyPublished(published), writes)
    }))
}

/// The POLICY_INVALID refusal: the first error in the message, every error beside it.
fn invalid(errors: Vec<log::PolicyError>) -> Refusal {
    let first = errors
        .first()
        .map(|it| {
            let policy = match it.policy_id.as_str() {
                "" => String::new(),
                id => format!(" ({id})"),
            };
            format!(
                "line {}, column {}: {}{policy}",
                it.line, it.column, it.message
            )
        })
        .unwrap_or_default();
    let message = format!(
        "the policy text is invalid ({} errors, see policy_errors); first: {first}",
        errors.len()
    );
    reject_policy_invalid(message, errors)
}

pub(super) fn activate_policy(
    state: &dyn StateRead,
    context: &Context<'_>,
    command: &log::ActivatePolicy,
) -> Decision {
    require_admin(context, "activate a policy version")?;
    check::activate_policy(command)?;
    let mut activation = query::policy_activation(state)?;
    require_published(state, &activation, command.version)?;
    if activation.active_version == command.version {
        return Ok(None);
    }
    let previous_version = activation.active_version;
    if previous_version != 0 {
        activation.previous_versions.push(previous_version);
        let excess = activation
            .previous_versions
            .len()
            .saturating_sub(POLICY_ROLLBACK_DEPTH_MAX);
        activation.previous_versions.drain(..excess);
    }
    activation.active_version = command.version;
    activation.activated_seq = context.seq;
    let event = log::PolicyActivated {
        version: command.version,
        previous_version,
        rollback: false,
    };
    Ok(Some(activation_change(
        EventKind::PolicyActivated(event),
        &activation,
        command.version,
    )))
}

pub(super) fn rollback_policy(
    state: &dyn StateRead,
    context: &Context<'_>,
    command: &log::RollbackPolicy,
) -> Decision {
    require_admin(context, "roll back the policy version")?;
    check::rollback_policy(command)?;
    let mut activation = query::policy_activation(state)?;
    let Some(version) = activation.previous_versions.pop() else {
        let message = match activation.active_version {
            0 => "no policy version is active".to_owned(),
            active => format!("no version was active before version {active}"),
        };
        return Err(reject(
            RejectReason::PolicyNoPreviousVersion,
            format!("{message}; allowed: a rollback after an activation replaced a version"),
        ));
    };
    let previous_version = activation.active_version;
    activation.active_version = version;
    activation.activated_seq = context.seq;
    let event = log::PolicyActivated {
        version,
        previous_version,
        rollback: true,
    };
    Ok(Some(activation_change(
        EventKind::PolicyActivated(event),
        &activation,
        version,
    )))
}

pub(super) fn set_shadow_policy(
    state: &dyn StateRead,
    context: &Context<'_>,
    command: &log::SetShadowPolicy,
) -> Decision {
    require_admin(context, "mark a policy version shadow")?;
    check::set_shadow_policy(command)?;
    let mut activation = query::policy_activation(state)?;
    if command.version != 0 {
        require_published(state, &activation, command.version)?;
    }
    if activation.shadow_version == command.version {
        return Ok(None);
    }
    let event = log::ShadowPolicySet {
        version: command.version,
        previous_version: activation.shadow_version,
    };
    activation.shadow_version = command.version;
    Ok(Some(activation_change(
        EventKind::ShadowPolicySet(event),
        &activation,
        command.version,
    )))
}

/// POLICY_VERSION_NOT_FOUND unless `version` was published.
fn require_published(
    state: &dyn StateRead,
    activation: &PolicyActivationRow,
    version: u32,
) -> Result<(), Refusal> {
    if query::policy_version(state, version)?.is_some() {
        return Ok(());
    }
    let allowed = match activation.latest_version {
        0 => "none: no version is published".to_owned(),
        1 => "version 1".to_owned(),
        latest => format!("versions 1 to {latest}"),
    };
    Err(reject(
        RejectReason::PolicyVersionNotFound,
        format!("policy version {version} was never published; allowed: {allowed}"),
    ))
}

fn activation_change(
    event_kind: EventKind,
    activation: &PolicyActivationRow,
    version: u32,
) -> Change {
    Change {
        policy_version: version,
        ..Change::one_row(
            event_kind,
            keys::POLICY_ACTIVATION.to_vec(),
            activation.encode_to_vec(),
        )
    }
}

// Issuance under policies.

/// Most policy ids or errors a POLICY_FORBIDDEN or POLICY_ERROR message names.
const POLICIES_LISTED_MAX: usize = 8;

/// The active version's verdict on a token about to be issued: action `issue`, once per scope
/// (a tool of the audience's `service`), principal the agent, for the human the claims name.
/// Nothing to do when no version is active.
pub(super) fn check_issuance(
    state: &dyn StateRead,
    context: &Context<'_>,
    agent: &AgentRow,
    claims: &log::TokenIssued,
    service: &ServiceRow,
) -> Result<(), Refusal> {
    let Some((version, compiled)) = policy::active(state)? else {
        return Ok(());
    };
    let delegation = match claims.delegation_id.as_str() {
        "" => None,
        delegation_id => query::delegation(state, delegation_id)?,
    };
    let on_behalf_of = match PrincipalKind::try_from(claims.subject_kind) {
        Ok(PrincipalKind::Human) => query::human(state, &claims.subject)?,
        _ => None,
    };
    let chain = match delegation.as_ref().and_then(|it| it.created.as_ref()) {
        Some(created) => agents(state, &created.agent_chain)?,
        // An agent acting for itself is the whole chain.
        None => vec![agent.clone()],
    };
    let base = PolicyRequest {
        action: PolicyAction::Issue,
        principal: PolicyPrincipal::Agent(agent),
        on_behalf_of: on_behalf_of.as_ref(),
        agent_chain: &chain,
        delegation: delegation.as_ref(),
        service,
        tool: "",
        task: &claims.task,
        scopes: &claims.scopes,
        time_unix_s: context.now_unix_s(),
        attributes: &[],
        grantee: None,
    };
    for scope in &claims.scopes {
        enforce(
            &compiled,
            version,
            &PolicyRequest {
                tool: scope,
                ..base
            },
        )?;
    }
    Ok(())
}

/// The active version's verdict on a grant about to be made: action `delegate`, once per
/// (granted audience's service, scope that is a tool of it), principal the grantor (the human
/// for a root grant, the agent for a child), `grantee` the agent receiving it. Nothing to do
/// when no version is active.
pub(super) fn check_delegation(
    state: &dyn StateRead,
    context: &Context<'_>,
    created: &log::DelegationCreated,
    grantee: &AgentRow,
) -> Result<(), Refusal> {
    let Some((version, compiled)) = policy::active(state)? else {
        return Ok(());
    };
    let root_human = existing(
        query::human(state, &created.root_human_id)?,
        keys::human(&created.root_human_id),
    )?;
    let (grantor_agent, parent, chain) = match created.parent_delegation_id.as_str() {
        "" => (None, None, Vec::new()),
        parent_id => {
            let parent = existing(
                query::delegation(state, parent_id)?,
                keys::delegation(parent_id),
            )?;
            let grantor = existing(
                query::agent(state, &created.grantor_id)?,
                keys::agent(&created.grantor_id),
            )?;
            let parent_chain = parent.created.as_ref().map(|it| it.agent_chain.as_slice());
            let chain = agents(state, parent_chain.unwrap_or_default())?;
            (Some(grantor), Some(parent), chain)
        }
    };
    let principal = match &grantor_agent {
        Some(agent) => PolicyPrincipal::Agent(agent),
        None => PolicyPrincipal::Human(&root_human),
    };
    for audience in &created.audiences {
        let Some(service) = query::service_by_audience(state, audience)? else {
            continue;
        };
        let base = PolicyRequest {
            action: PolicyAction::Delegate,
            principal,
            on_behalf_of: Some(&root_human),
            agent_chain: &chain,
            delegation: parent.as_ref(),
            service: &service,
            tool: "",
            task: &created.task,
            scopes: &created.scopes,
            time_unix_s: context.now_unix_s(),
            attributes: &[],
            grantee: Some(grantee),
        };
        for tool in &service.tools {
            if created.scopes.contains(&tool.name) {
                enforce(
                    &compiled,
                    version,
                    &PolicyRequest {
                        tool: &tool.name,
                        ..base
                    },
                )?;
            }
        }
    }
    Ok(())
}

/// POLICY_FORBIDDEN when a policy forbids `request`, POLICY_ERROR when one fails to evaluate
/// (fail closed).
fn enforce(
    compiled: &CompiledPolicy,
    version: u32,
    request: &PolicyRequest<'_>,
) -> Result<(), Refusal> {
    let verdict = compiled.evaluate(request);
    if verdict.allowed {
        return Ok(());
    }
    let action = match request.action {
        PolicyAction::Call => "call",
        PolicyAction::Issue => "issue",
        PolicyAction::Delegate => "delegate",
    };
    let tool = format!("{}/{}", request.service.service_id, request.tool);
    if !verdict.errors.is_empty() {
        return Err(reject(
            RejectReason::PolicyError,
            format!(
                "policy version {version} could not be evaluated for action {action} on tool \
                 {tool}, so it is refused (fail closed): {}",
                listed(&verdict.errors, "; ")
            ),
        ));
    }
    Err(reject(
        RejectReason::PolicyForbidden,
        format!(
            "policy version {version} forbids action {action} on tool {tool}: {}",
            listed(&verdict.determining_policy_ids, ", ")
        ),
    ))
}

/// The first [`POLICIES_LISTED_MAX`] items, then how many more.
fn listed(items: &[String], separator: &str) -> String {
    let shown: Vec<&str> = items
        .iter()
        .take(POLICIES_LISTED_MAX)
        .map(String::as_str)
        .collect();
    match items.len().saturating_sub(shown.len()) {
        0 => shown.join(separator),
        hidden => format!("{} and {hidden} more", shown.join(separator)),
    }
}

/// The rows of the agents `agent_ids`, in that order. The chain of a delegation in force names
/// only existing agents, so a missing one is a corrupt store.
fn agents(state: &dyn StateRead, agent_ids: &[String]) -> Result<Vec<AgentRow>, StateError> {
    agent_ids
        .iter()
        .map(|id| existing(query::agent(state, id)?, keys::agent(id)))
        .collect()
}

/// A row the rules before this step already found; its absence is a corrupt store.
fn existing<M>(row: Option<M>, key: Vec<u8>) -> Result<M, StateError> {
    row.ok_or_else(|| StateError::corrupt(&key, "a row checked earlier in this command is missing"))
}
