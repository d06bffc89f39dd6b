//! Errors as callers see them: a gRPC status plus a stable reason code.
//!
//! Every non-OK status carries a `google.rpc.ErrorInfo` detail with `reason` set to one of the
//! [`Reason`] codes (the table in [`crate::reasons`]) and `domain` set to [`ERROR_DOMAIN`]. Codes
//! are part of the API: they are never renamed or reused. The message says what was wrong and
//! what is allowed.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};
use warrant_proto::log;
use warrant_raft::{MembershipError, ProposeError, ReadError};

// Named with `ApiError` by its users; the table itself lives in `reasons`.
pub use crate::reasons::Reason;

pub const ERROR_DOMAIN: &str = "warrant.dev";

/// An error on its way to becoming a gRPC status.
#[derive(Debug, thiserror::Error)]
#[error("{reason:?}: {message}")]
pub struct ApiError {
    pub code: Code,
    pub reason: Reason,
    pub message: String,
    /// Extra ErrorInfo metadata, e.g. the offending field or the leader's address.
    pub metadata: Vec<(&'static str, String)>,
    /// `google.rpc.BadRequest` field violations (field, description), sent beside the
    /// ErrorInfo when there are any: one per error of an invalid policy text.
    pub violations: Vec<(String, String)>,
}

impl ApiError {
    pub fn new(code: Code, reason: Reason, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            metadata: Vec::new(),
            violations: Vec::new(),
        }
    }

    pub fn with(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.metadata.push((key, value.into()));
        self
    }

    pub fn invalid_field(reason: Reason, field: &str, message: impl Into<String>) -> Self {
        ApiError::new(Code::InvalidArgument, reason, message).with("field", field)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::new(Code::Internal, Reason::Internal, message)
    }

    /// Maps a domain rejection from apply to its row, and sends it with the row's status.
    pub fn from_rejection(reason: i32, message: String) -> Self {
        let reason = Reason::of_rejection(reason);
        ApiError::new(reason.status(), reason, message)
    }

    /// A rejection from apply, with its policy errors as field violations when it has any (an
    /// invalid policy text refused in apply reads as the edge's own refusal).
    pub fn from_rejected(rejected: log::Rejected) -> Self {
        if rejected.policy_errors.is_empty() {
            return ApiError::from_rejection(rejected.reason, rejected.message);
        }
        ApiError::policy_invalid(&rejected.policy_errors)
    }

    /// INVALID_ARGUMENT `POLICY_INVALID` for a policy text: every error becomes a BadRequest
    /// violation of field `text`, described as "line L, column C: message (policy id)", so a
    /// client (or an editor) can point at each one. ErrorInfo names the field and the count.
    pub fn policy_invalid(errors: &[log::PolicyError]) -> Self {
        let first = errors
            .first()
            .map(policy_error_description)
            .unwrap_or_else(|| "no error was reported".to_string());
        let mut error = ApiError::new(
            Code::InvalidArgument,
            Reason::PolicyInvalid,
            format!(
                "the policy text has {} error(s); the first: {first}",
                errors.len()
            ),
        )
        .with("field", "text")
        .with("errors", errors.len().to_string());
        error.violations = errors
            .iter()
            .map(|it| ("text".to_string(), policy_error_description(it)))
            .collect();
        error
    }
}

/// One policy error as a person reads it: "line L, column C: message (policy id)".
pub fn policy_error_description(error: &log::PolicyError) -> String {
    let policy = if error.policy_id.is_empty() {
        String::new()
    } else {
        format!(" ({})", error.policy_id)
    };
    format!(
        "line {}, column {}: {}{policy}",
        error.line, error.column, error.message
    )
}

impl From<ApiError> for Status {
    fn from(error: ApiError) -> Status {
        let metadata: HashMap<String, String> = error
            .metadata
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        let mut details =
            ErrorDetails::with_error_info(error.reason.as_str(), ERROR_DOMAIN, metadata);
        for (field, description) in error.violations {
            details.add_bad_request_violation(field, description);
        }
        Status::with_error_details(error.code, error.message, details)
    }
}

impl From<ProposeError> for ApiError {
    fn from(error: ProposeError) -> Self {
        match error {
            ProposeError::NotLeader {
                leader_id,
                leader_addr,
            } => leader_hint(
                ApiError::new(
                    Code::Unavailable,
                    Reason::NotLeader,
                    "no leader accepted the command within the forwarding hop limit; nothing was proposed: retry, or send it to the leader",
                ),
                leader_id,
                leader_addr,
            ),
            ProposeError::Overloaded { queue_len_max } => ApiError::new(
                Code::ResourceExhausted,
                Reason::Overloaded,
                format!(
                    "the proposal queue is full ({queue_len_max} commands); nothing was proposed: retry with backoff"
                ),
            ),
            ProposeError::Indeterminate(why) => ApiError::new(
                Code::Unavailable,
                Reason::OutcomeUnknown,
                format!(
                    "the command may or may not have committed ({why}); retry with the same idempotency key"
                ),
            ),
            ProposeError::Stopped(why) => ApiError::new(
                Code::Unavailable,
                Reason::NodeStopped,
                format!("node is stopping: {why}"),
            ),
        }
    }
}

impl From<ReadError> for ApiError {
    fn from(error: ReadError) -> Self {
        match error {
            ReadError::NotLeader {
                leader_id,
                leader_addr,
            } => leader_hint(
                ApiError::new(
                    Code::Unavailable,
                    Reason::NotLeader,
                    "a LINEARIZABLE read needs a read index from the leader, and the node asked is no longer it: retry, or use AT_LEAST",
                ),
                leader_id,
                leader_addr,
            ),
            ReadError::NoQuorum(why) => ApiError::new(
                Code::Unavailable,
                Reason::NoQuorum,
                format!(
                    "leadership could not be confirmed by a quorum ({why}); a stale answer is never given"
                ),
            ),
            ReadError::Timeout {
                wanted,
                applied_index,
                applied_seq,
                waited_ms,
            } => ApiError::new(
                Code::Unavailable,
                Reason::ReadTimeout,
                format!(
                    "this node applied up to log index {applied_index} (seq {applied_seq}), not {wanted}, within {waited_ms} ms"
                ),
            ),
            ReadError::Stopped(why) => ApiError::new(
                Code::Unavailable,
                Reason::NodeStopped,
                format!("node is stopping: {why}"),
            ),
        }
    }
}

impl From<MembershipError> for ApiError {
    fn from(error: MembershipError) -> Self {
        let message = error.to_string();
        match error {
            MembershipError::NotLeader {
                leader_id,
                leader_addr,
            } => leader_hint(
                ApiError::new(
                    Code::Unavailable,
                    Reason::NotLeader,
                    "membership changes run on the leader, and this node is not it: retry on the leader",
                ),
                leader_id,
                leader_addr,
            ),
            MembershipError::AlreadyInitialized { .. } => ApiError::new(
                Code::FailedPrecondition,
                Reason::AlreadyInitialized,
                format!("{message}; change it with member add/promote/remove"),
            ),
            MembershipError::Invalid(_) => {
                ApiError::new(Code::InvalidArgument, Reason::FieldInvalid, message)
            }
            MembershipError::NotFound(_) => {
                ApiError::new(Code::NotFound, Reason::NotAMember, message)
            }
            MembershipError::AlreadyMember { .. } => ApiError::new(
                Code::AlreadyExists,
                Reason::AlreadyAMember,
                format!("{message}; a wiped node rejoins under a new id"),
            ),
            MembershipError::LearnerBehind { .. } => ApiError::new(
                Code::FailedPrecondition,
                Reason::LearnerBehind,
                format!("{message}: retry when it has caught up"),
            ),
            MembershipError::InProgress(_) => ApiError::new(
                Code::FailedPrecondition,
                Reason::MembershipChangeInProgress,
                format!("{message}: retry when it has finished"),
            ),
            MembershipError::NoQuorum(_) => {
                ApiError::new(Code::Unavailable, Reason::NoQuorum, message)
            }
            MembershipError::Stopped(_) => {
                ApiError::new(Code::Unavailable, Reason::NodeStopped, message)
            }
        }
    }
}

fn leader_hint(error: ApiError, leader_id: Option<u64>, leader_addr: Option<String>) -> ApiError {
    let error = match leader_id {
        Some(id) => error.with("leader_id", id.to_string()),
        None => error,
    };
    match leader_addr {
        Some(addr) => error.with("leader_addr", addr),
        None => error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors() -> Vec<log::PolicyError> {
        vec![
            log::PolicyError {
                line: 2,
                column: 14,
                policy_id: "no-transfer".to_string(),
                message: "unrecognized entity type `Tol`".to_string(),
            },
            log::PolicyError {
                line: 9,
                column: 1,
                policy_id: String::new(),
                message: "unexpected end of input".to_string(),
            },
        ]
    }

    /// The status a client receives, and its ErrorInfo and BadRequest details.
    fn details_of(error: ApiError) -> (Status, ErrorDetails) {
        let status = Status::from(error);
        let details = status.get_error_details();
        (status, details)
    }

    #[test]
    fn policy_invalid_carries_every_error_with_its_line_and_column() {
        let (status, details) = details_of(ApiError::policy_invalid(&errors()));
        assert_eq!(status.code(), Code::InvalidArgument);
        let info = details.error_info().expect("ErrorInfo");
        assert_eq!(
            (info.reason.as_str(), info.domain.as_str()),
            ("POLICY_INVALID", ERROR_DOMAIN)
        );
        assert_eq!(info.metadata.get("errors").map(String::as_str), Some("2"));
        let violations: Vec<(&str, &str)> = details
            .bad_request()
            .expect("BadRequest")
            .field_violations
            .iter()
            .map(|it| (it.field.as_str(), it.description.as_str()))
            .collect();
        assert_eq!(
            violations,
            vec![
                (
                    "text",
                    "line 2, column 14: unrecognized entity type `Tol` (no-transfer)"
                ),
                ("text", "line 9, column 1: unexpected end of input"),
            ]
        );
        assert!(
            status.message().contains("2 error(s)"),
            "{}",
            status.message()
        );
    }

    #[test]
    fn apply_refusing_a_policy_reads_as_the_edge_refusal() {
        let rejected = log::Rejected {
            reason: log::RejectReason::PolicyInvalid as i32,
            message: "invalid".to_string(),
            policy_errors: errors(),
        };
        let (from_apply, apply_details) = details_of(ApiError::from_rejected(rejected));
        let (from_edge, edge_details) = details_of(ApiError::policy_invalid(&errors()));
        assert_eq!(from_apply.code(), from_edge.code());
        let descriptions = |details: &ErrorDetails| -> Vec<String> {
            details
                .bad_request()
                .map(|it| {
                    it.field_violations
                        .iter()
                        .map(|v| v.description.clone())
                        .collect()
                })
                .unwrap_or_default()
        };
        assert_eq!(descriptions(&apply_details), descriptions(&edge_details));
        assert_eq!(descriptions(&apply_details).len(), 2);
        // Any other refusal has no violations.
        let (other, other_details) = details_of(ApiError::from_rejected(log::Rejected {
            reason: log::RejectReason::PolicyVersionNotFound as i32,
            message: "no version 9".to_string(),
            policy_errors: vec![],
        }));
        assert_eq!(other.code(), Code::NotFound);
        assert!(other_details.bad_request().is_none());
    }
}
