//! Request validation at the edge. The rules themselves live in `warrant_identity::limits` and,
//! per command kind, `warrant_identity::check`, so apply and the API agree on them; this module turns a broken rule into an INVALID_ARGUMENT
//! with a stable reason code.

use tonic::Code;
use warrant_identity::{
    check,
    limits::{self, FieldError, FieldProblem},
};
use warrant_proto::{
    api::{AsOf, Consistency, ReadOptions, as_of},
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

/// A point of the log a read answers at, as the client named it (`warrant.v1.AsOf`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AsOfPoint {
    /// The state after the event at this seq (0: before any event).
    Seq(u64),
    /// The state after every event stamped at or before this time.
    Time { unix_ms: u64 },
}

/// The read options of a Get or List: how fresh, and optionally at which past point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadRequest {
    pub consistency: ReadConsistency,
    pub as_of: Option<AsOfPoint>,
}

/// Parses the read options of a Get or a List, which may answer as of a past point
/// (`read.as_of`).
pub fn read_options(read: Option<&ReadOptions>) -> Result<ReadRequest, ApiError> {
    let consistency = consistency(read)?;
    let as_of = as_of_point(read.and_then(|r| r.as_of.as_ref()), "read.as_of")?;
    Ok(ReadRequest { consistency, as_of })
}

/// Parses an `AsOf` field: unset is none; a message with no point set is refused, since the
/// client meant some point and did not say which.
pub fn as_of_point(as_of: Option<&AsOf>, field: &str) -> Result<Option<AsOfPoint>, ApiError> {
    let Some(as_of) = as_of else {
        return Ok(None);
    };
    match as_of.point {
        Some(as_of::Point::Seq(seq)) => Ok(Some(AsOfPoint::Seq(seq))),
        Some(as_of::Point::TimeUnixMs(unix_ms)) => Ok(Some(AsOfPoint::Time { unix_ms })),
        None => Err(ApiError::invalid_field(
            Reason::FieldRequired,
            field,
            format!(
                "{field} is set but names no point; allowed: seq or time_unix_ms, or leave {field} unset for now"
            ),
        )),
    }
}

/// Parses the read options of a call that answers only about now (Verify, Authorize, the audit
/// proofs, Query, Export, ...): the one place `read.as_of` is refused on them, with
/// INVALID_ARGUMENT `AS_OF_NOT_SUPPORTED`. Gets and Lists parse theirs with [`read_options`].
pub fn read_consistency(read: Option<&ReadOptions>) -> Result<ReadConsistency, ApiError> {
    if read.is_some_and(|r| r.as_of.is_some()) {
        return Err(ApiError::invalid_field(
            Reason::AsOfNotSupported,
            "read.as_of",
            "read.as_of is set on a call that answers only about now; allowed: unset (Get, List \
             and AuditService.EffectiveAccess take as_of)",
        ));
    }
    consistency(read)
}

/// The barrier a read asks for.
fn consistency(read: Option<&ReadOptions>) -> Result<ReadConsistency, ApiError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn options(consistency: Consistency, point: Option<Option<as_of::Point>>) -> ReadOptions {
        ReadOptions {
            consistency: consistency as i32,
            at_least_seq: 0,
            as_of: point.map(|point| AsOf { point }),
        }
    }

    #[test]
    fn gets_and_lists_read_as_of_a_seq_or_a_time() {
        let none = read_options(None).expect("no options");
        assert_eq!(
            (none.consistency, none.as_of),
            (ReadConsistency::Linearizable, None)
        );
        let seq = options(Consistency::Local, Some(Some(as_of::Point::Seq(7))));
        assert_eq!(
            read_options(Some(&seq)).expect("seq"),
            ReadRequest {
                consistency: ReadConsistency::Local,
                as_of: Some(AsOfPoint::Seq(7)),
            }
        );
        let zero = options(Consistency::Unspecified, Some(Some(as_of::Point::Seq(0))));
        assert_eq!(
            read_options(Some(&zero)).expect("seq 0").as_of,
            Some(AsOfPoint::Seq(0)),
            "seq 0 is the state before any event"
        );
        let time = options(
            Consistency::Linearizable,
            Some(Some(as_of::Point::TimeUnixMs(1_700_000_000_000))),
        );
        assert_eq!(
            read_options(Some(&time)).expect("time").as_of,
            Some(AsOfPoint::Time {
                unix_ms: 1_700_000_000_000
            })
        );
    }

    #[test]
    fn an_as_of_with_no_point_is_refused_as_required() {
        let empty = options(Consistency::Local, Some(None));
        let refused = read_options(Some(&empty)).expect_err("no point");
        assert_eq!(refused.reason, Reason::FieldRequired);
        assert_eq!(refused.metadata, vec![("field", "read.as_of".to_string())]);
    }

    #[test]
    fn calls_about_now_refuse_as_of_whatever_its_point() {
        for point in [
            None,
            Some(as_of::Point::Seq(1)),
            Some(as_of::Point::TimeUnixMs(5)),
        ] {
            let read = options(Consistency::Local, Some(point));
            let refused = read_consistency(Some(&read)).expect_err("as_of refused");
            assert_eq!(
                (refused.code, refused.reason),
                (Code::InvalidArgument, Reason::AsOfNotSupported)
            );
        }
        let plain = options(Consistency::Local, None);
        assert_eq!(
            read_consistency(Some(&plain)).expect("no as_of"),
            ReadConsistency::Local
        );
    }

    #[test]
    fn the_consistency_rules_are_the_same_with_and_without_as_of() {
        let mut at_least = options(Consistency::AtLeast, Some(Some(as_of::Point::Seq(1))));
        assert_eq!(
            read_options(Some(&at_least))
                .expect_err("at_least_seq 0")
                .reason,
            Reason::FieldRequired
        );
        at_least.at_least_seq = 9;
        assert_eq!(
            read_options(Some(&at_least))
                .expect("at least 9")
                .consistency,
            ReadConsistency::AtLeast(9)
        );
        let unknown = ReadOptions {
            consistency: 99,
            ..Default::default()
        };
        assert_eq!(
            read_options(Some(&unknown)).expect_err("unknown").reason,
            Reason::FieldInvalid
        );
    }
}
