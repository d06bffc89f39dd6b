//! Access policies: Cedar policy sets, the schema generated from the identity model, strict
//! validation with positions, and evaluation.
//!
//! **Semantics.** Every evaluation runs the published set together with one built-in policy,
//! `warrant.delegation` (`permit(principal, action, resource);`): what a delegation grants is
//! permitted, and a published set narrows it with `forbid`. Warrant's own rules (the token in
//! force, the audience, the tool within the scopes, the budget) are checked before any policy
//! and cannot be widened by one. A policy that fails to evaluate fails closed: the request is
//! denied (`PolicyVerdict::errors` non-empty means DENY).
//!
//! **Determinism.** Validation and evaluation are pure functions of the text, the declared
//! attributes and the request; errors and policy ids come out sorted, never in hash order, so
//! the edge and apply reach the same verdict byte for byte.

//! Modules: `schema` (the generated schema and the declared attributes' rules), `validate`
//! (parsing, naming by `@id`, strict validation, positions), `evaluate` (compiling a version,
//! the entities and context of a request, the verdict) and `cache` (compiled versions by
//! content, and the active and shadow lookups).

use std::sync::Arc;

use warrant_proto::{
    log,
    state::{AgentRow, DelegationRow, HumanRow, ServiceRow},
};

use crate::state::{StateError, StateRead};

mod cache;
mod evaluate;
mod schema;
mod validate;

pub use schema::check_attributes;

/// The id of the built-in policy every evaluation adds (`permit(principal, action, resource);`).
/// A published text may not use it.
pub const BUILT_IN_POLICY_ID: &str = "warrant.delegation";

/// What a request asks to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyAction {
    /// Call a tool (Authorize). Cedar action `Action::"call"`, resource the `Tool`.
    Call,
    /// Issue a token carrying a tool as a scope (Issue, Exchange). Resource the `Tool`.
    Issue,
    /// Delegate a tool to an agent (CreateDelegation). Resource the `Tool`; context.grantee.
    Delegate,
}

/// The acting principal of a request.
#[derive(Clone, Copy, Debug)]
pub enum PolicyPrincipal<'a> {
    Agent(&'a AgentRow),
    Human(&'a HumanRow),
}

/// The facts of one request, as the schema names them.
#[derive(Clone, Copy, Debug)]
pub struct PolicyRequest<'a> {
    pub action: PolicyAction,
    pub principal: PolicyPrincipal<'a>,
    /// The human the principal acts for (the delegation's root), if any.
    pub on_behalf_of: Option<&'a HumanRow>,
    /// The agents from the root delegation's grantee down to the principal.
    pub agent_chain: &'a [AgentRow],
    pub delegation: Option<&'a DelegationRow>,
    pub service: &'a ServiceRow,
    pub tool: &'a str,
    pub task: &'a str,
    pub scopes: &'a [String],
    pub time_unix_s: u64,
    pub attributes: &'a [log::CallerAttribute],
    /// For `Delegate`: the agent receiving the grant.
    pub grantee: Option<&'a AgentRow>,
}

/// What a policy set decided.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PolicyVerdict {
    pub allowed: bool,
    /// Cedar's determining policies, sorted by id.
    pub determining_policy_ids: Vec<String>,
    /// "policy_id: message", sorted. Non-empty means DENY (fail closed).
    pub errors: Vec<String>,
}

/// A validated policy text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidatedPolicy {
    /// The policy ids the text defines, sorted.
    pub policy_ids: Vec<String>,
}

/// A policy version compiled for evaluation.
pub struct CompiledPolicy {
    /// Err when the stored text no longer compiles (only a Cedar upgrade could cause it): every
    /// evaluation then denies with this error, failing closed.
    inner: Result<evaluate::Compiled, String>,
}

impl std::fmt::Debug for CompiledPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.inner {
            Ok(compiled) => write!(f, "CompiledPolicy({} policies)", compiled.policy_count()),
            Err(error) => write!(f, "CompiledPolicy(broken: {error})"),
        }
    }
}

impl CompiledPolicy {
    /// Evaluates `request` against this set plus the built-in permit.
    pub fn evaluate(&self, request: &PolicyRequest<'_>) -> PolicyVerdict {
        match &self.inner {
            Ok(compiled) => compiled.evaluate(request),
            Err(error) => evaluate::failed(format!("{BUILT_IN_POLICY_ID}: {error}")),
        }
    }

    /// Compiles `text` and `attributes` (as published: validated) outside the cache, for
    /// benchmarks and tools that hold their own set.
    pub fn compile(text: &str, attributes: &[log::PolicyAttribute]) -> Self {
        Self {
            inner: evaluate::compile(text, attributes),
        }
    }
}

/// Parses and strictly validates `text` against the schema for `attributes`. Every error, with
/// its line and column, sorted by position then message.
pub fn validate(
    text: &str,
    attributes: &[log::PolicyAttribute],
) -> Result<ValidatedPolicy, Vec<log::PolicyError>> {
    validate::validate(text, attributes)
}

/// The Cedar schema (Cedar's schema syntax) policies are validated against.
pub fn schema_text(attributes: &[log::PolicyAttribute]) -> String {
    schema::schema_text(attributes)
}

/// The active version and its compiled set (cached by content), or `None`.
pub fn active(state: &dyn StateRead) -> Result<Option<(u32, Arc<CompiledPolicy>)>, StateError> {
    cache::active(state)
}

/// The shadow version and its compiled set (cached by content), or `None`.
pub fn shadow(state: &dyn StateRead) -> Result<Option<(u32, Arc<CompiledPolicy>)>, StateError> {
    cache::shadow(state)
}

/// The compiled set for a stored text and its attributes, through the process-wide cache.
pub fn compiled(text: &str, attributes: &[log::PolicyAttribute]) -> Arc<CompiledPolicy> {
    cache::compiled(text, attributes)
}

#[cfg(test)]
mod tests;
