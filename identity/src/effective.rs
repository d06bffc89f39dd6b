//! "What could agent X do for human H at T": everything an agent's authority rests on, read
//! from one state, each item with whether it is in force at an instant.
//!
//! Pass an [`AsOf`](crate::audit::history::AsOf) reader to get the answer as of a past seq: the
//! reads below are ordinary `query` and `validity` reads, so they answer from the versions
//! current then.

use warrant_proto::{
    log::PrincipalKind,
    state::{AgentRow, DelegationRow, DeviceRow, HumanRow, PolicyActivationRow, SessionRow},
};

use crate::{
    keys,
    limits::{
        DELEGATION_DEPTH_MAX, EFFECTIVE_ACCESS_DELEGATIONS_SCANNED_MAX, EFFECTIVE_ACCESS_ITEMS_MAX,
        LIST_PAGE_MAX,
    },
    query,
    state::{StateError, StateRead},
    validity::{self, Lapse},
};

/// What an agent could do, and for whom, in one state at one instant.
#[derive(Clone, Debug, PartialEq)]
pub struct EffectiveAccess {
    /// The state's last seq: the point answered at.
    pub seq: u64,
    pub agent: AgentRow,
    /// Why the agent is not in force (disabled, its owner disabled, its device disabled), if
    /// it is not.
    pub agent_lapse: Option<Lapse>,
    /// The agent's owner.
    pub owner: Option<HumanRow>,
    pub owner_lapse: Option<Lapse>,
    /// The delegations the agent holds (from the human asked about, or from anyone), in
    /// delegation id order.
    pub delegations: Vec<EffectiveDelegation>,
    /// The agent's sessions, ended ones included, in session id order.
    pub agent_sessions: Vec<EffectiveSession>,
    /// The owner's sessions, ended ones included, in session id order.
    pub owner_sessions: Vec<EffectiveSession>,
    /// The device the agent is bound to, if any.
    pub device: Option<DeviceRow>,
    /// The owner's devices, in device id order.
    pub owner_devices: Vec<DeviceRow>,
    /// The active and shadow policy versions.
    pub policy: PolicyActivationRow,
    /// Whether a list above was cut at the limit asked for.
    pub truncated: bool,
}

/// A delegation the agent holds, with its chain.
#[derive(Clone, Debug, PartialEq)]
pub struct EffectiveDelegation {
    /// Root first, ending with the delegation the agent holds.
    pub chain: Vec<DelegationRow>,
    /// Why the chain is not in force (a link revoked or expired, an agent or the root human
    /// disabled), if it is not.
    pub lapse: Option<Lapse>,
}

impl EffectiveDelegation {
    /// The delegation the agent holds: the last link of the chain.
    pub fn delegation(&self) -> Option<&DelegationRow> {
        self.chain.last()
    }
}

/// A session, with whether it is in force.
#[derive(Clone, Debug, PartialEq)]
pub struct EffectiveSession {
    pub row: SessionRow,
    /// Why it is not in force (ended, expired, its device disabled), if it is not.
    pub lapse: Option<Lapse>,
}

/// What agent `agent_id` could do for `human_id` (for anyone when `None`) in `state`, judged
/// in force at `now_unix_s`; `None` when there is no such agent. Each list holds at most
/// `limit` items (capped at [`EFFECTIVE_ACCESS_ITEMS_MAX`]), and `truncated` says when one
/// had more.
pub fn effective_access(
    state: &dyn StateRead,
    agent_id: &str,
    human_id: Option<&str>,
    now_unix_s: u64,
    limit: usize,
) -> Result<Option<EffectiveAccess>, StateError> {
    let limit = limit.min(EFFECTIVE_ACCESS_ITEMS_MAX);
    let Some(agent) = query::agent(state, agent_id)? else {
        return Ok(None);
    };
    let seq = query::applied_seq(state)?;
    let owner_id = agent.owner_human_id.clone();
    let agent_lapse = validity::agent(state, agent_id, seq)?.err();
    let owner = query::human(state, &owner_id)?;
    let owner_lapse = validity::human(state, &owner_id, seq)?.err();
    let (held, mut truncated) = held_delegations(state, agent_id, human_id, limit)?;
    let mut delegations = Vec::with_capacity(held.len());
    for row in held {
        delegations.push(effective_delegation(state, row, now_unix_s)?);
    }
    let (agent_sessions, cut) = sessions(state, PrincipalKind::Agent, agent_id, now_unix_s, limit)?;
    truncated |= cut;
    let (owner_sessions, cut) =
        sessions(state, PrincipalKind::Human, &owner_id, now_unix_s, limit)?;
    truncated |= cut;
    let device = match agent.device_id.as_str() {
        "" => None,
        device_id => query::device(state, device_id)?,
    };
    let mut owner_devices = query::devices_of(state, &owner_id, limit.saturating_add(1))?;
    truncated |= cut_at(&mut owner_devices, limit);
    Ok(Some(EffectiveAccess {
        seq,
        agent,
        agent_lapse,
        owner,
        owner_lapse,
        delegations,
        agent_sessions,
        owner_sessions,
        device,
        owner_devices,
        policy: query::policy_activation(state)?,
        truncated,
    }))
}

/// Cuts `items` to `limit`, saying whether it was longer.
fn cut_at<T>(items: &mut Vec<T>, limit: usize) -> bool {
    let longer = items.len() > limit;
    items.truncate(limit);
    longer
}

/// Up to `limit` delegations held by `agent_id` whose root human is `human_id` (any when
/// `None`), and whether there were more (or more than could be examined).
fn held_delegations(
    state: &dyn StateRead,
    agent_id: &str,
    human_id: Option<&str>,
    limit: usize,
) -> Result<(Vec<DelegationRow>, bool), StateError> {
    let prefix = keys::delegation_by_grantee_prefix(agent_id);
    let mut start = Vec::new();
    let mut held = Vec::new();
    let mut scanned = 0usize;
    loop {
        let page = state.scan(&prefix, &start, LIST_PAGE_MAX)?;
        let exhausted = page.len() < LIST_PAGE_MAX;
        for (key, _) in page {
            if scanned == EFFECTIVE_ACCESS_DELEGATIONS_SCANNED_MAX {
                return Ok((held, true));
            }
            scanned += 1;
            let row = indexed_delegation(state, &key, prefix.len(), agent_id)?;
            let root = row.created.as_ref().map(|it| it.root_human_id.as_str());
            if human_id.is_none_or(|human_id| root == Some(human_id)) {
                if held.len() == limit {
                    return Ok((held, true));
                }
                held.push(row);
            }
            start = keys::successor(&key);
        }
        if exhausted {
            return Ok((held, false));
        }
    }
}

/// The delegation a grantee index entry names, which must be granted to `agent_id`.
fn indexed_delegation(
    state: &dyn StateRead,
    key: &[u8],
    prefix_len: usize,
    agent_id: &str,
) -> Result<DelegationRow, StateError> {
    let delegation_id = std::str::from_utf8(key.get(prefix_len..).unwrap_or_default())
        .map_err(|_| StateError::corrupt(key, "delegation id is not UTF-8"))?;
    match query::delegation(state, delegation_id)? {
        Some(row)
            if row
                .created
                .as_ref()
                .is_some_and(|it| it.grantee_agent_id == agent_id) =>
        {
            Ok(row)
        }
        _ => Err(StateError::corrupt(
            key,
            format!("delegation {delegation_id} is not granted to {agent_id}"),
        )),
    }
}

/// `row` with its chain, root first, and whether the chain is in force at `now_unix_s`.
fn effective_delegation(
    state: &dyn StateRead,
    row: DelegationRow,
    now_unix_s: u64,
) -> Result<EffectiveDelegation, StateError> {
    let delegation_id = row
        .created
        .as_ref()
        .map(|it| it.delegation_id.clone())
        .unwrap_or_default();
    let lapse = validity::delegation_chain(state, &delegation_id, now_unix_s)?.err();
    let mut parent_id = row
        .created
        .as_ref()
        .map(|it| it.parent_delegation_id.clone())
        .unwrap_or_default();
    let mut chain = vec![row];
    // A stored chain is never deeper than the cap: apply refuses to build one.
    for _ in 0..DELEGATION_DEPTH_MAX {
        if parent_id.is_empty() {
            break;
        }
        // A parent is created before its children and never deleted, so it exists in every
        // state that holds the child.
        let Some(parent) = query::delegation(state, &parent_id)? else {
            return Err(StateError::corrupt(
                &keys::delegation(&delegation_id),
                format!("parent delegation {parent_id} does not exist"),
            ));
        };
        parent_id = parent
            .created
            .as_ref()
            .map(|it| it.parent_delegation_id.clone())
            .unwrap_or_default();
        chain.push(parent);
    }
    if !parent_id.is_empty() {
        return Err(StateError::corrupt(
            &keys::delegation(&delegation_id),
            format!("chain is deeper than {DELEGATION_DEPTH_MAX}"),
        ));
    }
    chain.reverse();
    Ok(EffectiveDelegation { chain, lapse })
}

/// Up to `limit` sessions of a principal with whether each is in force at `now_unix_s`, and
/// whether there were more.
fn sessions(
    state: &dyn StateRead,
    kind: PrincipalKind,
    principal_id: &str,
    now_unix_s: u64,
    limit: usize,
) -> Result<(Vec<EffectiveSession>, bool), StateError> {
    let mut rows = query::sessions_of(state, kind as i32, principal_id, limit.saturating_add(1))?;
    let cut = cut_at(&mut rows, limit);
    let mut sessions = Vec::with_capacity(rows.len());
    for row in rows {
        let session_id = row
            .started
            .as_ref()
            .map(|it| it.session_id.clone())
            .unwrap_or_default();
        let lapse = validity::session(state, &session_id, now_unix_s)?.err();
        sessions.push(EffectiveSession { row, lapse });
    }
    Ok((sessions, cut))
}
