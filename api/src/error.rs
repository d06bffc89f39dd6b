//! Errors as callers see them: a gRPC status plus a stable reason code.
//!
//! Every non-OK status carries a `google.rpc.ErrorInfo` detail with `reason` set to one of the
//! [`Reason`] codes below and `domain` set to [`ERROR_DOMAIN`]. Codes are part of the API: they
//! are never renamed or reused. The message says what was wrong and what is allowed.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};
use warrant_proto::log::RejectReason;
use warrant_raft::{MembershipError, ProposeError, ReadError};

pub const ERROR_DOMAIN: &str = "warrant.dev";

/// Stable reason codes for non-OK statuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reason {
    // Caller credentials.
    CredentialMissing,
    CredentialInvalid,
    PermissionDenied,
    // Request fields.
    FieldRequired,
    FieldTooLong,
    FieldInvalid,
    ListTooLong,
    ValueOutOfRange,
    // Domain outcomes.
    AlreadyExists,
    AudienceTaken,
    HumanNotFound,
    AgentNotFound,
    ServiceNotFound,
    TokenNotFound,
    AgentDisabled,
    ScopeNotAllowed,
    SigningKeyNotFound,
    SigningKeyConflict,
    IdempotencyKeyReused,
    InvalidCommand,
    IssuedByOtherNode,
    AssertionReplayed,
    DeviceNotFound,
    DeviceDisabled,
    DelegationNotFound,
    DelegationInactive,
    ScopeExceedsParent,
    AudienceExceedsParent,
    ExpiryExceedsParent,
    DelegationDepthExceeded,
    DelegationCycle,
    SessionNotFound,
    SessionEnded,
    HumanDisabled,
    CredentialNotFound,
    SigningKeyRetired,
    FederatedIdentityTaken,
    SubjectTokenInactive,
    AudienceNotDelegated,
    ScopeNotDelegated,
    IssuerNotConfigured,
    LocalPasswordsDisabled,
    /// A credential check's own stable code (`ASSERTION_*`, `ID_TOKEN_*`, `SUBJECT_TOKEN_*`).
    Credential(&'static str),
    // Membership.
    AlreadyInitialized,
    NotAMember,
    AlreadyAMember,
    LearnerBehind,
    MembershipChangeInProgress,
    // Cluster conditions.
    NotLeader,
    NoQuorum,
    ReadTimeout,
    Overloaded,
    OutcomeUnknown,
    NodeStopped,
    Internal,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::CredentialMissing => "CREDENTIAL_MISSING",
            Reason::CredentialInvalid => "CREDENTIAL_INVALID",
            Reason::PermissionDenied => "PERMISSION_DENIED",
            Reason::FieldRequired => "FIELD_REQUIRED",
            Reason::FieldTooLong => "FIELD_TOO_LONG",
            Reason::FieldInvalid => "FIELD_INVALID",
            Reason::ListTooLong => "LIST_TOO_LONG",
            Reason::ValueOutOfRange => "VALUE_OUT_OF_RANGE",
            Reason::AlreadyExists => "ALREADY_EXISTS",
            Reason::AudienceTaken => "AUDIENCE_TAKEN",
            Reason::HumanNotFound => "HUMAN_NOT_FOUND",
            Reason::AgentNotFound => "AGENT_NOT_FOUND",
            Reason::ServiceNotFound => "SERVICE_NOT_FOUND",
            Reason::TokenNotFound => "TOKEN_NOT_FOUND",
            Reason::AgentDisabled => "AGENT_DISABLED",
            Reason::ScopeNotAllowed => "SCOPE_NOT_ALLOWED",
            Reason::SigningKeyNotFound => "SIGNING_KEY_NOT_FOUND",
            Reason::SigningKeyConflict => "SIGNING_KEY_CONFLICT",
            Reason::IdempotencyKeyReused => "IDEMPOTENCY_KEY_REUSED",
            Reason::InvalidCommand => "INVALID_COMMAND",
            Reason::IssuedByOtherNode => "ISSUED_BY_OTHER_NODE",
            Reason::AssertionReplayed => "ASSERTION_REPLAYED",
            Reason::DeviceNotFound => "DEVICE_NOT_FOUND",
            Reason::DeviceDisabled => "DEVICE_DISABLED",
            Reason::DelegationNotFound => "DELEGATION_NOT_FOUND",
            Reason::DelegationInactive => "DELEGATION_INACTIVE",
            Reason::ScopeExceedsParent => "SCOPE_EXCEEDS_PARENT",
            Reason::AudienceExceedsParent => "AUDIENCE_EXCEEDS_PARENT",
            Reason::ExpiryExceedsParent => "EXPIRY_EXCEEDS_PARENT",
            Reason::DelegationDepthExceeded => "DELEGATION_DEPTH_EXCEEDED",
            Reason::DelegationCycle => "DELEGATION_CYCLE",
            Reason::SessionNotFound => "SESSION_NOT_FOUND",
            Reason::SessionEnded => "SESSION_ENDED",
            Reason::HumanDisabled => "HUMAN_DISABLED",
            Reason::CredentialNotFound => "CREDENTIAL_NOT_FOUND",
            Reason::SigningKeyRetired => "SIGNING_KEY_RETIRED",
            Reason::FederatedIdentityTaken => "FEDERATED_IDENTITY_TAKEN",
            Reason::SubjectTokenInactive => "SUBJECT_TOKEN_INACTIVE",
            Reason::AudienceNotDelegated => "AUDIENCE_NOT_DELEGATED",
            Reason::ScopeNotDelegated => "SCOPE_NOT_DELEGATED",
            Reason::IssuerNotConfigured => "ISSUER_NOT_CONFIGURED",
            Reason::LocalPasswordsDisabled => "LOCAL_PASSWORDS_DISABLED",
            Reason::Credential(code) => code,
            Reason::AlreadyInitialized => "ALREADY_INITIALIZED",
            Reason::NotAMember => "NOT_A_MEMBER",
            Reason::AlreadyAMember => "ALREADY_A_MEMBER",
            Reason::LearnerBehind => "LEARNER_BEHIND",
            Reason::MembershipChangeInProgress => "MEMBERSHIP_CHANGE_IN_PROGRESS",
            Reason::NotLeader => "NOT_LEADER",
            Reason::NoQuorum => "NO_QUORUM",
            Reason::ReadTimeout => "READ_TIMEOUT",
            Reason::Overloaded => "OVERLOADED",
            Reason::OutcomeUnknown => "OUTCOME_UNKNOWN",
            Reason::NodeStopped => "NODE_STOPPED",
            Reason::Internal => "INTERNAL",
        }
    }
}

/// An error on its way to becoming a gRPC status.
#[derive(Debug, thiserror::Error)]
#[error("{reason:?}: {message}")]
pub struct ApiError {
    pub code: Code,
    pub reason: Reason,
    pub message: String,
    /// Extra ErrorInfo metadata, e.g. the offending field or the leader's address.
    pub metadata: Vec<(&'static str, String)>,
}

impl ApiError {
    pub fn new(code: Code, reason: Reason, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            metadata: Vec::new(),
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

    /// Maps a domain rejection from apply.
    pub fn from_rejection(reason: i32, message: String) -> Self {
        let reason = RejectReason::try_from(reason).unwrap_or(RejectReason::Unspecified);
        let (code, reason) = match reason {
            RejectReason::InvalidCommand | RejectReason::Unspecified => {
                (Code::InvalidArgument, Reason::InvalidCommand)
            }
            RejectReason::IdempotencyKeyReused => {
                (Code::FailedPrecondition, Reason::IdempotencyKeyReused)
            }
            RejectReason::AlreadyExists => (Code::AlreadyExists, Reason::AlreadyExists),
            RejectReason::AudienceTaken => (Code::AlreadyExists, Reason::AudienceTaken),
            RejectReason::HumanNotFound => (Code::NotFound, Reason::HumanNotFound),
            RejectReason::AgentNotFound => (Code::NotFound, Reason::AgentNotFound),
            RejectReason::ServiceNotFound => (Code::NotFound, Reason::ServiceNotFound),
            RejectReason::TokenNotFound => (Code::NotFound, Reason::TokenNotFound),
            RejectReason::AgentDisabled => (Code::FailedPrecondition, Reason::AgentDisabled),
            RejectReason::ScopeNotAllowed => (Code::PermissionDenied, Reason::ScopeNotAllowed),
            RejectReason::SigningKeyNotFound => {
                (Code::FailedPrecondition, Reason::SigningKeyNotFound)
            }
            RejectReason::SigningKeyConflict => {
                (Code::FailedPrecondition, Reason::SigningKeyConflict)
            }
            RejectReason::PermissionDenied => (Code::PermissionDenied, Reason::PermissionDenied),
            // A spent assertion is a bad credential: the caller must authenticate afresh.
            RejectReason::AssertionReplayed => (Code::Unauthenticated, Reason::AssertionReplayed),
            RejectReason::CredentialRevoked => (
                Code::Unauthenticated,
                Reason::Credential("CREDENTIAL_REVOKED"),
            ),
            RejectReason::AssertionExpired => (
                Code::Unauthenticated,
                Reason::Credential("ASSERTION_EXPIRED"),
            ),
            RejectReason::DeviceNotFound => (Code::NotFound, Reason::DeviceNotFound),
            RejectReason::DeviceDisabled => (Code::FailedPrecondition, Reason::DeviceDisabled),
            RejectReason::DelegationNotFound => (Code::NotFound, Reason::DelegationNotFound),
            RejectReason::DelegationInactive => {
                (Code::FailedPrecondition, Reason::DelegationInactive)
            }
            RejectReason::ScopeExceedsParent => {
                (Code::FailedPrecondition, Reason::ScopeExceedsParent)
            }
            RejectReason::AudienceExceedsParent => {
                (Code::FailedPrecondition, Reason::AudienceExceedsParent)
            }
            RejectReason::ExpiryExceedsParent => {
                (Code::FailedPrecondition, Reason::ExpiryExceedsParent)
            }
            RejectReason::DelegationDepthExceeded => {
                (Code::FailedPrecondition, Reason::DelegationDepthExceeded)
            }
            RejectReason::DelegationCycle => (Code::FailedPrecondition, Reason::DelegationCycle),
            RejectReason::SessionNotFound => (Code::NotFound, Reason::SessionNotFound),
            RejectReason::SessionEnded => (Code::FailedPrecondition, Reason::SessionEnded),
            RejectReason::HumanDisabled => (Code::FailedPrecondition, Reason::HumanDisabled),
            RejectReason::CredentialNotFound => (Code::NotFound, Reason::CredentialNotFound),
            RejectReason::SigningKeyRetired => {
                (Code::FailedPrecondition, Reason::SigningKeyRetired)
            }
            RejectReason::FederatedIdentityTaken => {
                (Code::AlreadyExists, Reason::FederatedIdentityTaken)
            }
            RejectReason::SubjectTokenInactive => {
                (Code::FailedPrecondition, Reason::SubjectTokenInactive)
            }
            RejectReason::AudienceNotDelegated => {
                (Code::PermissionDenied, Reason::AudienceNotDelegated)
            }
            RejectReason::ScopeNotDelegated => (Code::PermissionDenied, Reason::ScopeNotDelegated),
        };
        ApiError::new(code, reason, message)
    }
}

impl From<ApiError> for Status {
    fn from(error: ApiError) -> Status {
        let metadata: HashMap<String, String> = error
            .metadata
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        let details = ErrorDetails::with_error_info(error.reason.as_str(), ERROR_DOMAIN, metadata);
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
