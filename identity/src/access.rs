//! Access decisions about tool calls: one function, [`decide`], that apply runs for a SYNC
//! Authorize at its log position and the API node runs for an ASYNC one at its applied seq.
//!
//! Order: the token (in force at `now`), the service and tool, the audience, the tool within the
//! token's scopes, the budget, then the policies (active, and shadow when one is marked).

// OWNED BY THE ACCESS HELPER: the bodies below are filled in by that work.

use warrant_proto::log;

use crate::state::{StateError, StateRead};

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

/// Decides `request` against `state` at `now_unix_ms`, as of `decided_at_seq`.
pub fn decide(
    state: &dyn StateRead,
    request: &AccessRequest<'_>,
    now_unix_ms: u64,
    decided_at_seq: u64,
) -> Result<Decided, StateError> {
    let _ = (state, request, now_unix_ms, decided_at_seq);
    todo!("access helper")
}

/// SHA-256 over the caller attributes in canonical form: sorted by name, each as
/// len(name) ‖ name ‖ type tag ‖ value (u64 BE lengths, i64 BE longs, one byte bools).
pub fn attributes_digest(attributes: &[log::CallerAttribute]) -> [u8; 32] {
    let _ = attributes;
    todo!("access helper")
}
