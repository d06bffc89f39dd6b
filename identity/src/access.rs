//! Access decisions about tool calls: one function, [`decide`], that apply runs for a SYNC
//! Authorize at its log position and the API node runs for an ASYNC one at its applied seq.
//!
//! Order: the token (in force at `now`), the service and tool, the audience, the tool within the
//! token's scopes, the budget, then the policies (active, and shadow when one is marked). The
//! first guard that fails is the DENY; the policies are asked only when every guard passed, so a
//! policy can narrow what a delegation grants but never widen it. The same function decides both
//! modes, so a SYNC and an ASYNC decision at the same seq and time are the same receipt but for
//! the fields that say where it was made.
//!
//! Budgets: a delegation's `CallBudget` counts every SYNC ALLOW under it or under any delegation
//! below it. [`decide`] only reads what was spent; apply spends (see [`budget_spends`]) when it
//! records an ALLOW, so the check and the spend happen at the same log position.

use sha2::{Digest, Sha256};
use warrant_proto::{
    api::TokenInvalidReason,
    log::{
        self, AccessDecision, AccessDenyReason, CallBudget, PrincipalKind,
        caller_attribute::Value as AttributeValue,
    },
    state::{AgentRow, BudgetUsageRow, DelegationRow, HumanRow, ServiceRow, Status, ToolSpend},
};

use crate::{
    keys,
    limits::DELEGATION_DEPTH_MAX,
    policy::{self, CompiledPolicy, PolicyAction, PolicyPrincipal, PolicyRequest, PolicyVerdict},
    query,
    state::{StateError, StateRead},
    validity,
};

/// One tool call to decide.
#[derive(Clone, Copy, Debug)]
pub struct AccessRequest<'a> {
    /// The decision's id (the Authorize idempotency key, or the node's receipt id).
    pub decision_id: &'a str,
    /// Set when the API node verified the token's signature and logged claims.
    pub token_jti: &'a str,
    /// A `warrant.v1.TokenInvalidReason` number when the API node found the token invalid.
    pub token_invalid_reason: u32,
    pub token_invalid_message: &'a str,
    pub service_id: &'a str,
    pub tool: &'a str,
    pub attributes: &'a [log::CallerAttribute],
    pub serving_node_id: u64,
    pub requested_by: &'a log::Actor,
    pub mode: log::AccessMode,
}

/// A decision and what spending it needs.
#[derive(Clone, Debug, PartialEq)]
pub struct Decided {
    /// The receipt, complete but for nothing: apply records it as is.
    pub receipt: log::AccessDecided,
    /// The delegations on the token's chain that carry a budget, root first. Non-empty means
    /// the decision must be SYNC (an ALLOW spends a unit of each in apply).
    pub budgeted_delegations: Vec<String>,
}

/// Why a guard denied.
struct Denial {
    reason: AccessDenyReason,
    /// A `warrant.v1.TokenInvalidReason` number, with `TOKEN_INVALID`.
    token_invalid_reason: u32,
    message: String,
}

impl Denial {
    fn new(reason: AccessDenyReason, message: impl Into<String>) -> Self {
        Self {
            reason,
            token_invalid_reason: 0,
            message: message.into(),
        }
    }

    fn token(reason: TokenInvalidReason, message: impl Into<String>) -> Self {
        Self {
            reason: AccessDenyReason::TokenInvalid,
            token_invalid_reason: reason as u32,
            message: message.into(),
        }
    }
}

impl Denial {
    /// Makes `receipt` this DENY. A guard decides before any policy, so a shadow version, when
    /// one is marked, would decide the same.
    fn record(self, receipt: &mut log::AccessDecided, shadow_version: Option<u32>) {
        receipt.decision = AccessDecision::Deny as i32;
        receipt.deny_reason = self.reason as i32;
        receipt.token_invalid_reason = self.token_invalid_reason;
        receipt.message = self.message;
        receipt.shadow = shadow_version.map(|version| log::ShadowDecision {
            policy_version: version,
            decision: receipt.decision,
            deny_reason: receipt.deny_reason,
            ..log::ShadowDecision::default()
        });
    }
}

/// What the guards established about a call they let through.
struct Guarded {
    issued: log::TokenIssued,
    service: ServiceRow,
}

/// `Ok(Err(_))` is a guard's DENY; `Err(_)` a store failure.
type Guard<T> = Result<Result<T, Denial>, StateError>;

/// Decides `request` against `state` at `now_unix_ms`, as of `decided_at_seq`.
pub fn decide(
    state: &dyn StateRead,
    request: &AccessRequest<'_>,
    now_unix_ms: u64,
    decided_at_seq: u64,
) -> Result<Decided, StateError> {
    let mut receipt = log::AccessDecided {
        decision_id: request.decision_id.to_owned(),
        service_id: request.service_id.to_owned(),
        tool: request.tool.to_owned(),
        token_jti: request.token_jti.to_owned(),
        attributes_digest: attributes_digest(request.attributes).to_vec(),
        serving_node_id: request.serving_node_id,
        decided_at_seq,
        mode: request.mode as i32,
        decided_at_unix_ms: now_unix_ms,
        requested_by: Some(request.requested_by.clone()),
        ..log::AccessDecided::default()
    };
    let active = policy::active(state)?;
    let shadow = policy::shadow(state)?;
    receipt.policy_version = active.as_ref().map_or(0, |(version, _)| *version);
    let mut budgeted_delegations = Vec::new();
    let guarded = guards(
        state,
        request,
        now_unix_ms / 1000,
        &mut receipt,
        &mut budgeted_delegations,
    )?;
    let guarded = match guarded {
        Ok(guarded) => guarded,
        Err(denial) => {
            denial.record(&mut receipt, shadow.map(|(version, _)| version));
            return Ok(Decided {
                receipt,
                budgeted_delegations,
            });
        }
    };
    let facts = Facts::read(state, &guarded)?;
    // The guards found the token in force, so its agent (or its human) exists: apply issues no
    // token that names neither.
    let principal = match (&facts.agent, &facts.human) {
        (Some(agent), _) => PolicyPrincipal::Agent(agent),
        (None, Some(human)) => PolicyPrincipal::Human(human),
        (None, None) => {
            return Err(StateError::corrupt(
                &keys::token(request.token_jti),
                "a token in force whose agent and human are both missing",
            ));
        }
    };
    let policy_request = facts.request(principal, &guarded, request, now_unix_ms / 1000);
    let enforced = match &active {
        Some((_, compiled)) => compiled.evaluate(&policy_request),
        None => PolicyVerdict {
            allowed: true,
            determining_policy_ids: vec![policy::BUILT_IN_POLICY_ID.to_owned()],
            errors: Vec::new(),
        },
    };
    let (decision, deny_reason) = verdict_decision(&enforced);
    receipt.decision = decision as i32;
    receipt.deny_reason = deny_reason as i32;
    receipt.message = verdict_message(&enforced, request.tool);
    receipt.determining_policy_ids = enforced.determining_policy_ids;
    receipt.evaluation_errors = enforced.errors;
    receipt.shadow =
        shadow.map(|(version, compiled)| shadow_decision(version, &compiled, &policy_request));
    Ok(Decided {
        receipt,
        budgeted_delegations,
    })
}

/// Every guard in order; fills the receipt's principal fields from the token as soon as its row
/// is found, and `budgeted` with the budgeted links once the budget is reached.
fn guards(
    state: &dyn StateRead,
    request: &AccessRequest<'_>,
    now_unix_s: u64,
    receipt: &mut log::AccessDecided,
    budgeted: &mut Vec<String>,
) -> Guard<Guarded> {
    let issued = match token_in_force(state, request, now_unix_s, receipt)? {
        Ok(issued) => issued,
        Err(denial) => return Ok(Err(denial)),
    };
    let service = match query::service(state, request.service_id)? {
        None => {
            return Ok(Err(Denial::new(
                AccessDenyReason::ServiceNotFound,
                format!("service {} does not exist", request.service_id),
            )));
        }
        Some(service) if service.status != Status::Active as i32 => {
            return Ok(Err(Denial::new(
                AccessDenyReason::ServiceDisabled,
                format!("service {} is disabled", request.service_id),
            )));
        }
        Some(service) => service,
    };
    if let Some(denial) = tool_denial(request, &issued, &service) {
        return Ok(Err(denial));
    }
    let links = budget_links(state, &issued.delegation_id)?;
    budgeted.extend(links.iter().map(|(id, _)| id.clone()));
    if let Some(message) = budget_exhausted(state, &links, request.tool)? {
        return Ok(Err(Denial::new(AccessDenyReason::BudgetExhausted, message)));
    }
    Ok(Ok(Guarded { issued, service }))
}

/// The token's logged issuance, if the API node found it valid and it is still in force at
/// `now_unix_s`. The receipt names its principal whether or not it is.
fn token_in_force(
    state: &dyn StateRead,
    request: &AccessRequest<'_>,
    now_unix_s: u64,
    receipt: &mut log::AccessDecided,
) -> Guard<log::TokenIssued> {
    if request.token_invalid_reason != 0 {
        return Ok(Err(Denial {
            reason: AccessDenyReason::TokenInvalid,
            token_invalid_reason: request.token_invalid_reason,
            message: request.token_invalid_message.to_owned(),
        }));
    }
    let Some(row) = query::token(state, request.token_jti)? else {
        return Ok(Err(Denial::token(
            TokenInvalidReason::UnknownToken,
            format!("no issuance of jti {} is in the log", request.token_jti),
        )));
    };
    let issued = row.issued.clone().unwrap_or_default();
    name_principal(receipt, &issued);
    if issued.expires_at_unix_s <= now_unix_s {
        return Ok(Err(Denial::token(
            TokenInvalidReason::Expired,
            format!("the token expired at {}", issued.expires_at_unix_s),
        )));
    }
    if let Err(lapse) = validity::token(state, &row, now_unix_s)? {
        return Ok(Err(Denial::token(
            lapse.kind.token_invalid_reason(),
            lapse.message,
        )));
    }
    Ok(Ok(issued))
}

/// Who the token speaks for: its agent (for itself or for a human), or the human of a session
/// token. The chain keeps the token's `act` order, current actor first.
fn name_principal(receipt: &mut log::AccessDecided, issued: &log::TokenIssued) {
    let acts_for_human = issued.subject_kind == PrincipalKind::Human as i32;
    if issued.agent_id.is_empty() {
        receipt.principal_kind = PrincipalKind::Human as i32;
        receipt.principal_id = issued.subject.clone();
    } else {
        receipt.principal_kind = PrincipalKind::Agent as i32;
        receipt.principal_id = issued.agent_id.clone();
        if acts_for_human {
            receipt.on_behalf_of_human_id = issued.subject.clone();
        }
    }
    receipt.agent_chain = issued.actor_chain.clone();
    receipt.delegation_id = issued.delegation_id.clone();
    receipt.task = issued.task.clone();
}

/// The tool must be the service's, the token meant for the service, and the tool among its
/// scopes.
fn tool_denial(
    request: &AccessRequest<'_>,
    issued: &log::TokenIssued,
    service: &ServiceRow,
) -> Option<Denial> {
    if !service.tools.iter().any(|it| it.name == request.tool) {
        return Some(Denial::new(
            AccessDenyReason::ToolNotFound,
            format!(
                "service {} has no tool {}",
                request.service_id, request.tool
            ),
        ));
    }
    if issued.audience != service.audience {
        return Some(Denial::new(
            AccessDenyReason::AudienceMismatch,
            format!(
                "the token is for audience {}, not service {}'s {}",
                issued.audience, request.service_id, service.audience
            ),
        ));
    }
    if !issued.scopes.iter().any(|it| it == request.tool) {
        return Some(Denial::new(
            AccessDenyReason::ToolNotInScope,
            format!(
                "tool {} is not among the token's scopes {}",
                request.tool,
                issued.scopes.join(" ")
            ),
        ));
    }
    None
}

/// The delegations from `delegation_id` up to the root that carry a budget, root first, with
/// their budgets. Empty for a token under no delegation.
pub(crate) fn budget_links(
    state: &dyn StateRead,
    delegation_id: &str,
) -> Result<Vec<(String, CallBudget)>, StateError> {
    let mut links = Vec::new();
    let mut current = delegation_id.to_owned();
    // A stored chain is never deeper than the cap: apply refuses to build one.
    for _ in 0..=DELEGATION_DEPTH_MAX {
        if current.is_empty() {
            break;
        }
        let Some(row) = query::delegation(state, &current)? else {
            break;
        };
        let created = row.created.unwrap_or_default();
        if let Some(budget) = created.budget {
            links.push((current, budget));
        }
        current = created.parent_delegation_id;
    }
    links.reverse();
    Ok(links)
}

/// Why one of `links` has no unit left for `tool`, if one has none.
fn budget_exhausted(
    state: &dyn StateRead,
    links: &[(String, CallBudget)],
    tool: &str,
) -> Result<Option<String>, StateError> {
    for (delegation_id, budget) in links {
        let usage = query::budget_usage(state, delegation_id)?;
        if 0 < budget.total && budget.total <= usage.spent {
            return Ok(Some(format!(
                "delegation {delegation_id} has spent its call budget: {} of {}",
                usage.spent, budget.total
            )));
        }
        if let Some(limit) = budget.tools.iter().find(|it| it.tool == tool) {
            let spent = tool_spent(&usage, tool);
            if limit.limit <= spent {
                return Ok(Some(format!(
                    "delegation {delegation_id} has spent its budget for tool {tool}: {spent} of \
                     {}",
                    limit.limit
                )));
            }
        }
    }
    Ok(None)
}

fn tool_spent(usage: &BudgetUsageRow, tool: &str) -> u64 {
    usage
        .tools
        .iter()
        .find(|it| it.tool == tool)
        .map_or(0, |it| it.spent)
}

/// The usage rows after one ALLOW of `tool` under each of `delegation_ids` (as
/// [`Decided::budgeted_delegations`] lists them): one unit of the total, and one of the tool's
/// limit where the budget lists the tool. Keys and encoded rows, in the order given.
pub(crate) fn budget_spends(
    state: &dyn StateRead,
    delegation_ids: &[String],
    tool: &str,
) -> Result<Vec<(Vec<u8>, BudgetUsageRow)>, StateError> {
    let mut spends = Vec::with_capacity(delegation_ids.len());
    for delegation_id in delegation_ids {
        let Some(row) = query::delegation(state, delegation_id)? else {
            continue;
        };
        let budget = row.created.and_then(|it| it.budget).unwrap_or_default();
        let mut usage = query::budget_usage(state, delegation_id)?;
        usage.spent = usage.spent.saturating_add(1);
        if budget.tools.iter().any(|it| it.tool == tool) {
            match usage
                .tools
                .binary_search_by(|it| it.tool.as_str().cmp(tool))
            {
                Ok(at) => usage.tools[at].spent = usage.tools[at].spent.saturating_add(1),
                Err(at) => usage.tools.insert(
                    at,
                    ToolSpend {
                        tool: tool.to_owned(),
                        spent: 1,
                    },
                ),
            }
        }
        spends.push((keys::budget_usage(delegation_id), usage));
    }
    Ok(spends)
}

/// The rows a policy reads about a call the guards let through.
struct Facts {
    agent: Option<AgentRow>,
    human: Option<HumanRow>,
    agent_chain: Vec<AgentRow>,
    delegation: Option<DelegationRow>,
}

impl Facts {
    fn read(state: &dyn StateRead, guarded: &Guarded) -> Result<Self, StateError> {
        let issued = &guarded.issued;
        let agent = match issued.agent_id.as_str() {
            "" => None,
            agent_id => query::agent(state, agent_id)?,
        };
        let human = if issued.subject_kind == PrincipalKind::Human as i32 {
            query::human(state, &issued.subject)?
        } else {
            None
        };
        let delegation = match issued.delegation_id.as_str() {
            "" => None,
            delegation_id => query::delegation(state, delegation_id)?,
        };
        // Root grantee first, as the policy context names the chain.
        let chain_ids = match &delegation {
            Some(row) => row.created.clone().unwrap_or_default().agent_chain,
            None => agent.iter().map(|it| it.agent_id.clone()).collect(),
        };
        let mut agent_chain = Vec::with_capacity(chain_ids.len());
        for agent_id in &chain_ids {
            if let Some(row) = query::agent(state, agent_id)? {
                agent_chain.push(row);
            }
        }
        Ok(Self {
            agent,
            human,
            agent_chain,
            delegation,
        })
    }

    fn request<'a>(
        &'a self,
        principal: PolicyPrincipal<'a>,
        guarded: &'a Guarded,
        request: &AccessRequest<'a>,
        now_unix_s: u64,
    ) -> PolicyRequest<'a> {
        PolicyRequest {
            action: PolicyAction::Call,
            principal,
            on_behalf_of: self.agent.as_ref().and(self.human.as_ref()),
            agent_chain: &self.agent_chain,
            delegation: self.delegation.as_ref(),
            service: &guarded.service,
            tool: request.tool,
            task: &guarded.issued.task,
            scopes: &guarded.issued.scopes,
            time_unix_s: now_unix_s,
            attributes: request.attributes,
            grantee: None,
        }
    }
}

/// A verdict as a decision: any evaluation error denies (fail closed).
fn verdict_decision(verdict: &PolicyVerdict) -> (AccessDecision, AccessDenyReason) {
    if !verdict.errors.is_empty() {
        (AccessDecision::Deny, AccessDenyReason::PolicyError)
    } else if verdict.allowed {
        (AccessDecision::Allow, AccessDenyReason::Unspecified)
    } else {
        (AccessDecision::Deny, AccessDenyReason::PolicyForbidden)
    }
}

fn verdict_message(verdict: &PolicyVerdict, tool: &str) -> String {
    let ids = verdict.determining_policy_ids.join(", ");
    match verdict_decision(verdict) {
        (_, AccessDenyReason::PolicyError) => format!(
            "a policy failed to evaluate for tool {tool}: {}",
            verdict.errors.join("; ")
        ),
        (AccessDecision::Allow, _) => format!("tool {tool} allowed by {ids}"),
        _ => format!("tool {tool} forbidden by {ids}"),
    }
}

fn shadow_decision(
    version: u32,
    compiled: &CompiledPolicy,
    request: &PolicyRequest<'_>,
) -> log::ShadowDecision {
    let verdict = compiled.evaluate(request);
    let (decision, deny_reason) = verdict_decision(&verdict);
    log::ShadowDecision {
        policy_version: version,
        decision: decision as i32,
        deny_reason: deny_reason as i32,
        determining_policy_ids: verdict.determining_policy_ids,
        evaluation_errors: verdict.errors,
    }
}

/// SHA-256 over the caller attributes in canonical form: sorted by name, each as
/// len(name) ‖ name ‖ type tag ‖ value (u64 BE lengths, i64 BE longs, one byte bools).
///
/// Type tags: 0 no value, 1 string (u64 BE length ‖ UTF-8), 2 long, 3 bool. Every part is
/// length-prefixed or fixed-size, so two different attribute lists never frame the same bytes.
/// Ties in name (which `check::authorize` refuses) are ordered by their encoding, so the digest
/// does not depend on the order the caller sent them in.
pub fn attributes_digest(attributes: &[log::CallerAttribute]) -> [u8; 32] {
    let mut encoded: Vec<(&str, Vec<u8>)> = attributes
        .iter()
        .map(|it| (it.name.as_str(), encode_attribute(it)))
        .collect();
    encoded.sort();
    let mut hasher = Sha256::new();
    for (_, bytes) in &encoded {
        hasher.update(bytes);
    }
    hasher.finalize().into()
}

fn encode_attribute(attribute: &log::CallerAttribute) -> Vec<u8> {
    let name = attribute.name.as_bytes();
    let mut bytes = Vec::with_capacity(name.len() + 18);
    bytes.extend_from_slice(&(name.len() as u64).to_be_bytes());
    bytes.extend_from_slice(name);
    match &attribute.value {
        None => bytes.push(0),
        Some(AttributeValue::StringValue(value)) => {
            bytes.push(1);
            bytes.extend_from_slice(&(value.len() as u64).to_be_bytes());
            bytes.extend_from_slice(value.as_bytes());
        }
        Some(AttributeValue::LongValue(value)) => {
            bytes.push(2);
            bytes.extend_from_slice(&value.to_be_bytes());
        }
        Some(AttributeValue::BoolValue(value)) => {
            bytes.push(3);
            bytes.push(u8::from(*value));
        }
    }
    bytes
}
