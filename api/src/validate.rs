//! Request validation at the edge. The rules themselves live in `warrant_identity::limits` and,
//! per command kind, `warrant_identity::check`, so apply and the API agree on them; this module turns a broken rule into an INVALID_ARGUMENT
//! with a stable reason code.

use tonic::Code;
use warrant_identity::{
    check,
    limits::{self, FieldError, FieldProblem},
};
use warrant_proto::{
    api::{Consistency, ReadOptions},
    log::command::Kind as CommandKind,
};
use warrant_raft::ReadConsistency;

use crate::error::{ApiError, Reason};

impl From<FieldError> for ApiError {
    fn from(error: FieldError) -> Self {
        let reason = match error.kind {
            FieldProblem::Empty => Reason::FieldRequired,
            FieldProblem::TooLong => Reason::FieldTooLong,
            FieldProblem::Invalid => Reason::FieldInvalid,
        };
        ApiError::invalid_field(reason, &error.field, error.to_string())
    }
}

/// The field rules of a command's kind, judged now: the same `warrant_identity::check` apply
/// runs when it decides the command, so a request the edge lets through is refused by apply only
/// for what depends on state (or, for a delegation's expiry, on the leader's clock).
pub fn command_fields(kind: &CommandKind, now_unix_s: u64) -> Result<(), ApiError> {
    check::command(kind, now_unix_s).map_err(ApiError::from)
}

/// Checks a list's length against its named limit.
pub fn list_len(field: &str, len: usize, len_min: usize, len_max: usize) -> Result<(), ApiError> {
    if len < len_min {
        return Err(ApiError::invalid_field(
            Reason::FieldRequired,
            field,
            format!("{field} has {len} items; allowed: {len_min} to {len_max}"),
        ));
    }
    if len_max < len {
        return Err(ApiError::invalid_field(
            Reason::ListTooLong,
            field,
            format!("{field} has {len} items; allowed: at most {len_max}"),
        ));
    }
    Ok(())
}

/// Checks an idempotency key if the client sent one; an empty key means "no retries intended".
pub fn optional_idempotency_key(value: &str) -> Result<(), ApiError> {
    if value.is_empty() {
        return Ok(());
    }
    Ok(limits::validate_idempotency_key("idempotency_key", value)?)
}

/// Parses the read options of a query.
pub fn read_consistency(read: Option<&ReadOptions>) -> Result<ReadConsistency, ApiError> {
    let Some(read) = read else {
        return Ok(ReadConsistency::Linearizable);
    };
    let consistency = Consistency::try_from(read.consistency).map_err(|_| {
        ApiError::invalid_field(
            Reason::FieldInvalid,
            "read.consistency",
            format!(
                "read.consistency {} is unknown; allowed: LOCAL, AT_LEAST, LINEARIZABLE",
                read.consistency
            ),
        )
    })?;
    match consistency {
        Consistency::Unspecified | Consistency::Linearizable => Ok(ReadConsistency::Linearizable),
        Consistency::Local => Ok(ReadConsistency::Local),
        Consistency::AtLeast if read.at_least_seq == 0 => Err(ApiError::invalid_field(
            Reason::FieldRequired,
            "read.at_least_seq",
            "read.at_least_seq is 0; allowed: the seq of an event this client saw (1 or more) with AT_LEAST",
        )),
        Consistency::AtLeast => Ok(ReadConsistency::AtLeast(read.at_least_seq)),
    }
}

/// Checks a number against an inclusive range.
pub fn in_range(field: &str, value: u64, min: u64, max: u64) -> Result<(), ApiError> {
    if value < min || max < value {
        return Err(ApiError::new(
            Code::InvalidArgument,
            Reason::ValueOutOfRange,
            format!("{field} is {value}; allowed: {min} to {max}"),
        )
        .with("field", field));
    }
    Ok(())
}
