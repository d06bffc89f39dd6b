//! Named operators: who they are ([`resolve`]), and registering them.
//!
//! An operator's role is read from its row at the command's position in the log, never from
//! the actor, so a role change or a disabled operator takes effect on every node at the same
//! point. The bootstrap admin (the shared admin token) acts only until the first operator is
//! registered: from then on every event names the operator who caused it.

use prost::Message;
use warrant_proto::{
    log::{self, OperatorRole, RejectReason, event::Kind as EventKind},
    state::{OperatorRow, Status},
};

use super::{
    context::{Caller, Change, Context, Decision, Refusal, reject},
    permissions::require_admin,
};
use crate::{
    check, keys, query,
    state::{StateError, StateRead, WriteSet},
};

/// The caller as it may act at this position: an operator with its row's role, or a refusal
/// (unknown, disabled, or the bootstrap admin once an operator exists). Other callers pass.
pub(super) fn resolve<'a>(
    state: &dyn StateRead,
    caller: Caller<'a>,
) -> Result<Result<Caller<'a>, Refusal>, StateError> {
    match caller {
        Caller::Operator(id, _) => Ok(match query::operator(state, id)? {
            None => Err(reject(
                RejectReason::PermissionDenied,
                format!("no operator {id} is registered"),
            )),
            Some(row) if row.status == Status::Disabled as i32 => Err(reject(
                RejectReason::CredentialRevoked,
                format!("operator {id} is disabled"),
            )),
            Some(row) => Ok(Caller::Operator(
                id,
                OperatorRole::try_from(row.role).unwrap_or(OperatorRole::Unspecified),
            )),
        }),
        Caller::Admin if query::any_operator(state)? => Ok(Err(reject(
            RejectReason::PermissionDenied,
            "the bootstrap admin token only registers the first operator, and an operator \
             exists: act as a named operator (a client certificate naming \
             <operator_id>.operator.warrant.internal)",
        ))),
        caller => Ok(Ok(caller)),
    }
}

pub(super) fn register_operator(
    state: &dyn StateRead,
    context: &Context<'_>,
    command: &log::RegisterOperator,
) -> Decision {
    require_admin(context, "register operators")?;
    check::register_operator(command)?;
    let key = keys::operator(&command.operator_id);
    if state.get(&key)?.is_some() {
        return Err(reject(
            RejectReason::AlreadyExists,
            format!("operator {} already exists", command.operator_id),
        ));
    }
    let row = OperatorRow {
        operator_id: command.operator_id.clone(),
        role: command.role,
        display_name: command.display_name.clone(),
        status: Status::Active as i32,
        created_seq: context.seq,
        created_unix_ms: context.time_unix_ms,
    };
    let mut writes = WriteSet::new();
    writes.put(key, row.encode_to_vec());
    let event = log::OperatorRegistered {
        operator_id: command.operator_id.clone(),
        role: command.role,
        display_name: command.display_name.clone(),
    };
    Ok(Some(Change::new(
        EventKind::OperatorRegistered(event),
        writes,
    )))
}
