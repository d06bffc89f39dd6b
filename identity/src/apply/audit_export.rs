//! The audit stream's progress (`RecordAuditExportProgress`): how far the leader's OTLP exporter
//! got, kept in state so an exporter on any node resumes after it.
//!
//! The progress only moves forward and never past the events before the command itself: an
//! exporter can only have sent events that were committed before it proposed. A stale proposal
//! (a deposed leader's exporter finishing its last batch after the new leader moved on) is
//! refused as data, so the progress never goes back and nothing is exported twice on its
//! account. Equal progress is an accepted no-op.

use warrant_proto::log::{self, RejectReason, event::Kind as EventKind};

use super::{
    context::{Change, Context, Decision, reject},
    permissions::require_node,
};
use crate::{keys, query, state::StateRead};

/// Moves the exported-through seq to the command's, if it is ahead and below the command's seq.
pub(super) fn record_progress(
    state: &dyn StateRead,
    context: &Context<'_>,
    command: &log::RecordAuditExportProgress,
) -> Decision {
    require_node(context, "record the audit stream's progress")?;
    if !context.caller.is_node(command.node_id) {
        return Err(reject(
            RejectReason::PermissionDenied,
            format!(
                "progress of node {}'s exporter; allowed: a node records only its own progress",
                command.node_id
            ),
        ));
    }
    let last_event = context.seq.saturating_sub(1);
    if last_event < command.through_seq {
        return Err(reject(
            RejectReason::InvalidCommand,
            format!(
                "through_seq is {} but the last event before this command is {last_event}; \
                 allowed: at most {last_event}",
                command.through_seq
            ),
        ));
    }
    let previous = query::audit_exported(state)?;
    if command.through_seq < previous {
        return Err(reject(
            RejectReason::InvalidCommand,
            format!(
                "through_seq is {} but the audit stream was already exported through {previous}; \
                 allowed: {previous} or more (progress only moves forward)",
                command.through_seq
            ),
        ));
    }
    if command.through_seq == previous {
        return Ok(None);
    }
    let event = log::AuditExportProgressed {
        through_seq: command.through_seq,
        previous_through_seq: previous,
        node_id: command.node_id,
    };
    Ok(Some(Change::one_row(
        EventKind::AuditExportProgressed(event),
        keys::AUDIT_EXPORTED.to_vec(),
        command.through_seq.to_be_bytes().to_vec(),
    )))
}
