//! Access decisions in the log: a SYNC `Authorize` decided here, at its position, and the
//! records a node makes of what it saw (ASYNC receipts, failed authentications).
//!
//! An Authorize is always accepted: ALLOW and DENY are both receipts, one `AccessDecided` event,
//! so a denial is as much on the record as a grant. An ALLOW spends one unit of every budget
//! above the token's delegation, in the same write as its receipt, so no two decisions can
//! spend the same unit on any replica.

use prost::Message;
use warrant_proto::log::{
    self, AccessDecision, AccessMode, RejectReason, event::Kind as EventKind,
};

use super::{
    context::{Change, Context, Decision, reject},
    permissions::require_node,
};
use crate::{
    access::{self, AccessRequest},
    check,
    state::{StateRead, WriteSet},
};

pub(super) fn authorize(
    state: &dyn StateRead,
    context: &Context<'_>,
    command: &log::Authorize,
) -> Decision {
    check::authorize(command)?;
    let request = AccessRequest {
        decision_id: context.idempotency_key,
        token_jti: &command.token_jti,
        token_invalid_reason: command.token_invalid_reason,
        token_invalid_message: &command.token_invalid_message,
        service_id: &command.service_id,
        tool: &command.tool,
        attributes: &command.attributes,
        serving_node_id: command.serving_node_id,
        requested_by: context.actor,
        mode: AccessMode::Sync,
    };
    // The seq before the receipt: the state the decision read.
    let decided_at_seq = context.seq.saturating_sub(1);
    let decided = access::decide(state, &request, context.time_unix_ms, decided_at_seq)?;
    let mut writes = WriteSet::new();
    if decided.receipt.decision == AccessDecision::Allow as i32 {
        for (key, usage) in
            access::budget_spends(state, &decided.budgeted_delegations, &command.tool)?
        {
            writes.put(key, usage.encode_to_vec());
        }
    }
    let receipt = decided.receipt;
    Ok(Some(Change {
        access_decided: Some(receipt.clone()),
        ..Change::new(EventKind::AccessDecided(receipt), writes)
    }))
}

/// ASYNC receipts from the node that decided them: each one event, recorded as is.
pub(super) fn record_access_decisions(
    context: &Context<'_>,
    command: &log::RecordAccessDecisions,
) -> Decision {
    require_node(context, "record access decisions")?;
    check::record_access_decisions(command)?;
    if let Some(receipt) = command
        .decisions
        .iter()
        .find(|it| !context.caller.is_node(it.serving_node_id))
    {
        return Err(reject(
            RejectReason::PermissionDenied,
            format!(
                "receipt {} was served by node {}; allowed: a node records only its own \
                 receipts",
                receipt.decision_id, receipt.serving_node_id
            ),
        ));
    }
    events(
        context,
        command
            .decisions
            .iter()
            .cloned()
            .map(EventKind::AccessDecided),
    )
}

/// Failed authentications a node aggregated: each entry one event.
pub(super) fn record_auth_failures(
    context: &Context<'_>,
    command: &log::RecordAuthFailures,
) -> Decision {
    require_node(context, "record authentication failures")?;
    check::record_auth_failures(command)?;
    if let Some(entry) = command
        .failures
        .iter()
        .find(|it| !context.caller.is_node(it.node_id))
    {
        return Err(reject(
            RejectReason::PermissionDenied,
            format!(
                "failures of {} were seen by node {}; allowed: a node records only what it saw",
                entry.claimed_id, entry.node_id
            ),
        ));
    }
    events(
        context,
        command
            .failures
            .iter()
            .cloned()
            .map(EventKind::AuthFailuresRecorded),
    )
}

/// A change of only events, at the command's seq and the ones after it.
fn events(context: &Context<'_>, kinds: impl ExactSizeIterator<Item = EventKind>) -> Decision {
    // Takes the last seq up front: refuses (as a corrupt store) a list that would overflow it.
    context.event_at(kinds.len().saturating_sub(1))?;
    let mut kinds = kinds;
    let Some(first) = kinds.next() else {
        // The checks refuse an empty list; recording nothing changes nothing.
        return Ok(None);
    };
    Ok(Some(Change {
        later_event_kinds: kinds.collect(),
        ..Change::new(first, WriteSet::new())
    }))
}
