//! The one table of reason codes: every stable code a non-OK status can carry, with its gRPC
//! status and what the caller should do.
//!
//! Each row of `reasons!` generates a [`Reason`] variant (documented by its description), its
//! code string ([`Reason::as_str`]), its status ([`Reason::status`]) and its description
//! ([`Reason::description`]). A domain rejection from apply (the log's `RejectReason`) names a
//! row through [`Reason::of_rejection`], one exhaustive match, and takes that row's status.
//! Codes are part of the API: never rename or reuse one. Descriptions are for docs; clients
//! receive only the code, the status and the message.
//!
//! Edge call sites build an error with an explicit status ([`crate::error::ApiError::new`]); two
//! still differ from their row: `AGENT_DISABLED` at authentication (PERMISSION_DENIED) and
//! `DELEGATION_NOT_FOUND` when no delegation continues an exchange (FAILED_PRECONDITION).

use tonic::Code;
use warrant_proto::{api::TokenInvalidReason, log::RejectReason};

/// Generates [`Reason`] and its lookups from rows `Variant => "CODE", Status, "description";`,
/// after the [`Reason::Credential`] row, whose code is the credential check's own.
macro_rules! reasons {
    (
        Credential(code) => $credential_status:ident, $credential_description:literal;
        $( $variant:ident => $code:literal, $status:ident, $description:literal; )*
    ) => {
        /// Stable reason codes for non-OK statuses.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        #[non_exhaustive]
        pub enum Reason {
            $( #[doc = $description] $variant, )*
            #[doc = $credential_description]
            Credential(&'static str),
        }

        impl Reason {
            /// Every row but [`Reason::Credential`], whose codes the credential checks own.
            pub const ROWS: &'static [Reason] = &[$( Reason::$variant, )*];

            /// The code sent as `ErrorInfo.reason`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( Reason::$variant => $code, )*
                    Reason::Credential(code) => code,
                }
            }

            /// The gRPC status this reason is sent with, unless the call site names another.
            pub fn status(self) -> Code {
                match self {
                    $( Reason::$variant => Code::$status, )*
                    Reason::Credential(_) => Code::$credential_status,
                }
            }

            /// What went wrong and what the caller should do, in one line.
            pub fn description(self) -> &'static str {
                match self {
                    $( Reason::$variant => $description, )*
                    Reason::Credential(_) => $credential_description,
                }
            }
        }
    };
}

reasons! {
    Credential(code) => Unauthenticated,
        "A credential check refused the credential, with its own code (`ASSERTION_*`, \
         `ID_TOKEN_*`, `CREDENTIAL_REVOKED`): get a fresh credential and retry.";
    // Caller credentials.
    CredentialMissing => "CREDENTIAL_MISSING", Unauthenticated,
        "The request carries no credential: send the admin token, a session token, a client \
         secret or a client assertion.";
    CredentialInvalid => "CREDENTIAL_INVALID", Unauthenticated,
        "The credential is malformed, unknown or wrong: check it, or get a fresh one.";
    AuthRateLimited => "AUTH_RATE_LIMITED", ResourceExhausted,
        "Too many costly authentication attempts failed for this principal or from this address \
         in the window: wait the `retry_after_s` the metadata names, then retry with the right \
         credential.";
    AuthBusy => "AUTH_BUSY", ResourceExhausted,
        "This node is checking as many secrets as it allows, and none was checked for this \
         request: retry with backoff, or on another node.";
    PermissionDenied => "PERMISSION_DENIED", PermissionDenied,
        "The caller may not do this: call as a principal that may (often the admin).";
    BootstrapTokenRetired => "BOOTSTRAP_TOKEN_RETIRED", PermissionDenied,
        "The bootstrap admin token only registers the first operator, and one exists: call as a \
         named operator, with its client certificate.";
    // Request fields.
    FieldRequired => "FIELD_REQUIRED", InvalidArgument,
        "A required field is empty (metadata `field` names it): set it.";
    FieldTooLong => "FIELD_TOO_LONG", InvalidArgument,
        "A field is longer than allowed (metadata `field` names it): shorten it.";
    FieldInvalid => "FIELD_INVALID", InvalidArgument,
        "A field's value is not allowed (metadata `field` names it): send what the message \
         allows.";
    ListTooLong => "LIST_TOO_LONG", InvalidArgument,
        "A list has more items than allowed (metadata `field` names it): send fewer.";
    ValueOutOfRange => "VALUE_OUT_OF_RANGE", InvalidArgument,
        "A number is outside its range (metadata `field` names it): send one inside it.";
    // Domain outcomes.
    AlreadyExists => "ALREADY_EXISTS", AlreadyExists,
        "Something with this id is already registered: use it, or pick another id.";
    AudienceTaken => "AUDIENCE_TAKEN", AlreadyExists,
        "Another service already has this audience: pick another audience.";
    HumanNotFound => "HUMAN_NOT_FOUND", NotFound,
        "No human has this id: check the id, or register the human first.";
    AgentNotFound => "AGENT_NOT_FOUND", NotFound,
        "No agent has this id: check the id, or register the agent first.";
    ServiceNotFound => "SERVICE_NOT_FOUND", NotFound,
        "No service has this id or audience: check it, or register the service first.";
    TokenNotFound => "TOKEN_NOT_FOUND", NotFound,
        "No token with this jti was issued: check the jti.";
    AgentDisabled => "AGENT_DISABLED", FailedPrecondition,
        "The agent, its owner or its device is disabled: have an admin enable it, or act as \
         another agent.";
    ScopeNotAllowed => "SCOPE_NOT_ALLOWED", PermissionDenied,
        "A scope is not a tool of the service: ask only for the scopes the message lists.";
    SigningKeyNotFound => "SIGNING_KEY_NOT_FOUND", FailedPrecondition,
        "The node's signing key is not published yet: retry shortly.";
    SigningKeyConflict => "SIGNING_KEY_CONFLICT", FailedPrecondition,
        "A key with this id is already published with other content: publish under a new id.";
    IdempotencyKeyReused => "IDEMPOTENCY_KEY_REUSED", FailedPrecondition,
        "The idempotency key was used for a different request: use a new key per request.";
    InvalidCommand => "INVALID_COMMAND", InvalidArgument,
        "The command broke a rule that apply checks: fix what the message names.";
    IssuedByOtherNode => "ISSUED_BY_OTHER_NODE", FailedPrecondition,
        "The first attempt with this idempotency key was signed by another node: retry there.";
    AssertionReplayed => "ASSERTION_REPLAYED", Unauthenticated,
        "The client assertion or id_token was already used: make a fresh one per request.";
    DeviceNotFound => "DEVICE_NOT_FOUND", NotFound,
        "No device has this id: check the id, or register the device first.";
    DeviceDisabled => "DEVICE_DISABLED", FailedPrecondition,
        "The device is disabled: have an admin enable it, or use another device.";
    DelegationNotFound => "DELEGATION_NOT_FOUND", NotFound,
        "No delegation has this id: check the id.";
    DelegationInactive => "DELEGATION_INACTIVE", FailedPrecondition,
        "The delegation, or a link above it, is revoked or expired, or names a disabled \
         principal: get a new delegation.";
    ScopeExceedsParent => "SCOPE_EXCEEDS_PARENT", FailedPrecondition,
        "A delegation may only narrow its parent's scopes: ask for a subset of them.";
    AudienceExceedsParent => "AUDIENCE_EXCEEDS_PARENT", FailedPrecondition,
        "A delegation may only narrow its parent's audiences: ask for a subset of them.";
    ExpiryExceedsParent => "EXPIRY_EXCEEDS_PARENT", FailedPrecondition,
        "A delegation may not outlive its parent: expire at or before the parent does.";
    DelegationDepthExceeded => "DELEGATION_DEPTH_EXCEEDED", FailedPrecondition,
        "The delegation chain would be too deep: delegate from a link nearer the human.";
    DelegationCycle => "DELEGATION_CYCLE", FailedPrecondition,
        "The grantee is already in the chain: delegate to an agent not yet in it.";
    SessionNotFound => "SESSION_NOT_FOUND", NotFound,
        "No session has this id: check the id.";
    SessionEnded => "SESSION_ENDED", FailedPrecondition,
        "The session has ended or expired: log in again.";
    HumanDisabled => "HUMAN_DISABLED", FailedPrecondition,
        "The human is disabled: have an admin enable them.";
    CredentialNotFound => "CREDENTIAL_NOT_FOUND", NotFound,
        "The agent has no credential with this id: check the id.";
    SigningKeyRetired => "SIGNING_KEY_RETIRED", FailedPrecondition,
        "The signing key was retired while the request was in flight: retry.";
    SigningKeyCompromised => "SIGNING_KEY_COMPROMISED", FailedPrecondition,
        "The signing key was marked compromised: the node rotates to a new key; retry.";
    FederatedIdentityTaken => "FEDERATED_IDENTITY_TAKEN", AlreadyExists,
        "This issuer's subject already names another human: use that human.";
    SubjectTokenInactive => "SUBJECT_TOKEN_INACTIVE", FailedPrecondition,
        "The subject token is invalid, revoked or expired, or not one an exchange accepts: \
         exchange a token in force.";
    AudienceNotDelegated => "AUDIENCE_NOT_DELEGATED", PermissionDenied,
        "The delegation does not cover this audience: ask for one it covers.";
    ScopeNotDelegated => "SCOPE_NOT_DELEGATED", PermissionDenied,
        "The delegation does not cover a scope: ask only for scopes it covers.";
    PolicyInvalid => "POLICY_INVALID", InvalidArgument,
        "The Cedar policy text does not parse or does not validate against the schema: fix \
         each error at the line and column given (PolicyService.GetSchema shows the schema).";
    PolicyVersionNotFound => "POLICY_VERSION_NOT_FOUND", NotFound,
        "No policy version has this number: publish it first, or list the versions.";
    PolicyForbidden => "POLICY_FORBIDDEN", PermissionDenied,
        "A forbid policy of the active version refuses this: ask for less, or change the policy.";
    PolicyError => "POLICY_ERROR", FailedPrecondition,
        "A policy could not be evaluated for this request, so it was refused (fail closed): fix \
         the policy named in the message.";
    PolicyNoPreviousVersion => "POLICY_NO_PREVIOUS_VERSION", FailedPrecondition,
        "No version was active before the current one: activate a version by number instead.";
    BudgetExceedsParent => "BUDGET_EXCEEDS_PARENT", FailedPrecondition,
        "A child delegation's call budget is larger than its parent's: ask for at most the \
         parent's budget.";
    ReceiptQueueFull => "RECEIPT_QUEUE_FULL", ResourceExhausted,
        "This node's queue of ASYNC receipts waiting for commit stayed full for the wait bound, \
         and nothing was decided: retry with backoff, on another node, or with audit SYNC.";
    AsOfNotSupported => "AS_OF_NOT_SUPPORTED", InvalidArgument,
        "ReadOptions.as_of was set on a call that answers only about now (Verify, Authorize, \
         the audit proofs): unset it; Get, List and EffectiveAccess take it.";
    AsOfAhead => "AS_OF_AHEAD", OutOfRange,
        "The as_of point is past what this node has applied: ask for an earlier point, or raise \
         the read barrier (at_least_seq, LINEARIZABLE) so the node catches up first.";
    SeqOutOfRange => "SEQ_OUT_OF_RANGE", OutOfRange,
        "The seq names no event this node holds (seqs start at 1 and end at its tree size): \
         ask for a seq in that range.";
    TreeSizeOutOfRange => "TREE_SIZE_OUT_OF_RANGE", OutOfRange,
        "The tree size is past this node's tree, or the sizes are out of order: ask for sizes \
         at most the node's tree size, the old one not larger than the new one.";
    AuditRollback => "AUDIT_ROLLBACK", FailedPrecondition,
        "This node's tree is smaller than a checkpoint it signed before (its data was rolled \
         back): it signs and proves nothing until it has caught up; use another node.";
    AuditTreeCorrupt => "AUDIT_TREE_CORRUPT", DataLoss,
        "This node's stored tree disagrees with the event records it covers: it serves no \
         proof or checkpoint; restore the node from a healthy member and report the index.";
    CheckpointUnavailable => "CHECKPOINT_UNAVAILABLE", Unavailable,
        "This node has not signed a checkpoint yet (its tree is empty, or it is still \
         verifying its tree after a start): retry shortly, or ask another node.";
    QueryCursorInvalid => "QUERY_CURSOR_INVALID", InvalidArgument,
        "The cursor is not one a previous page returned: pass next_cursor back unchanged, or \
         leave it empty to start over.";
    EventKindUnknown => "EVENT_KIND_UNKNOWN", InvalidArgument,
        "A kind filter names no event kind: use the field names of warrant.log.v1.Event's kind \
         (human_registered, access_decided, ...).";
    WatchersBusy => "WATCHERS_BUSY", ResourceExhausted,
        "This node serves as many Watch or Export streams as it allows: retry later or on \
         another node.";
    SnapshotSaveBusy => "SNAPSHOT_SAVE_BUSY", ResourceExhausted,
        "This node is already saving a backup (one at a time): retry when it has finished, or \
         save from another node.";
    NothingToBackUp => "NOTHING_TO_BACK_UP", FailedPrecondition,
        "This node has applied nothing yet (its cluster is not initialised): save from a member \
         of an initialised cluster.";
    IssuerNotConfigured => "ISSUER_NOT_CONFIGURED", Unauthenticated,
        "The id_token's issuer is not one this cluster trusts: log in with a configured issuer.";
    LocalPasswordsDisabled => "LOCAL_PASSWORDS_DISABLED", FailedPrecondition,
        "This cluster does not accept local passwords: log in with an id_token.";
    // Membership.
    AlreadyInitialized => "ALREADY_INITIALIZED", FailedPrecondition,
        "The cluster is already initialized: change it with member add, promote or remove.";
    NotAMember => "NOT_A_MEMBER", NotFound,
        "No member has this node id: check the id.";
    AlreadyAMember => "ALREADY_A_MEMBER", AlreadyExists,
        "A member already has this node id: a wiped node rejoins under a new id.";
    LearnerBehind => "LEARNER_BEHIND", FailedPrecondition,
        "The learner has not caught up with the log: retry when it has.";
    MembershipChangeInProgress => "MEMBERSHIP_CHANGE_IN_PROGRESS", FailedPrecondition,
        "Another membership change is running: retry when it has finished.";
    // Cluster conditions.
    NotLeader => "NOT_LEADER", Unavailable,
        "This node is not the leader: retry, or send the request to the leader (metadata \
         `leader_addr`).";
    NoQuorum => "NO_QUORUM", Unavailable,
        "No quorum answered: retry with backoff.";
    ReadTimeout => "READ_TIMEOUT", Unavailable,
        "This node has not applied far enough to answer: retry, or read from another node.";
    Overloaded => "OVERLOADED", ResourceExhausted,
        "The proposal queue is full and nothing was proposed: retry with backoff.";
    OutcomeUnknown => "OUTCOME_UNKNOWN", Unavailable,
        "The command may or may not have committed: retry with the same idempotency key.";
    NodeStopped => "NODE_STOPPED", Unavailable,
        "This node is stopping: retry on another node.";
    Internal => "INTERNAL", Internal,
        "The server failed: retry, and report it if it persists.";
    // Transport: statuses the gRPC stack raises before a handler runs.
    RequestTooLarge => "REQUEST_TOO_LARGE", ResourceExhausted,
        "The request message is larger than allowed: send a smaller one.";
    MessageUndecodable => "MESSAGE_UNDECODABLE", InvalidArgument,
        "The request body is not a protobuf message of the method's request type: send one.";
    DeadlineExceeded => "DEADLINE_EXCEEDED", DeadlineExceeded,
        "The call's deadline (`grpc-timeout`) passed before it finished: retry with a longer \
         deadline; a write may have committed, so retry it with the same idempotency key.";
    DeadlineInvalid => "DEADLINE_INVALID", InvalidArgument,
        "The `grpc-timeout` header is malformed: send 1 to 8 digits and a unit (H, M, S, m, u, \
         n).";
    SymbolNotFound => "SYMBOL_NOT_FOUND", NotFound,
        "Reflection does not serve this symbol here: ask for one of the public API or health.";
    MethodNotFound => "METHOD_NOT_FOUND", Unimplemented,
        "No service on this listener has this method: check the method name and the port.";
    PeerBusy => "PEER_BUSY", ResourceExhausted,
        "Too many peer requests of this kind are in flight on the node: retry (peers do).";
    PeerUnauthenticated => "PEER_UNAUTHENTICATED", Unauthenticated,
        "Peer RPCs are for cluster members: present a node certificate from the cluster's CA on \
         the peer listener.";
    TransportError => "TRANSPORT_ERROR", Unknown,
        "The gRPC stack refused the call before it reached Warrant (the message says why): fix \
         the request or retry.";
}

impl Reason {
    /// The row for a domain rejection from apply. A value this build does not know (a newer
    /// node's) reads as [`RejectReason::Unspecified`].
    pub fn of_rejection(reason: i32) -> Reason {
        match RejectReason::try_from(reason).unwrap_or(RejectReason::Unspecified) {
            RejectReason::Unspecified | RejectReason::InvalidCommand => Reason::InvalidCommand,
            RejectReason::IdempotencyKeyReused => Reason::IdempotencyKeyReused,
            RejectReason::AlreadyExists => Reason::AlreadyExists,
            RejectReason::HumanNotFound => Reason::HumanNotFound,
            RejectReason::AgentNotFound => Reason::AgentNotFound,
            RejectReason::ServiceNotFound => Reason::ServiceNotFound,
            RejectReason::TokenNotFound => Reason::TokenNotFound,
            RejectReason::AgentDisabled => Reason::AgentDisabled,
            RejectReason::ScopeNotAllowed => Reason::ScopeNotAllowed,
            RejectReason::SigningKeyNotFound => Reason::SigningKeyNotFound,
            RejectReason::AudienceTaken => Reason::AudienceTaken,
            RejectReason::PermissionDenied => Reason::PermissionDenied,
            RejectReason::SigningKeyConflict => Reason::SigningKeyConflict,
            // A spent assertion is a bad credential: the caller must authenticate afresh.
            RejectReason::AssertionReplayed => Reason::AssertionReplayed,
            RejectReason::DeviceNotFound => Reason::DeviceNotFound,
            RejectReason::DelegationNotFound => Reason::DelegationNotFound,
            RejectReason::DelegationInactive => Reason::DelegationInactive,
            RejectReason::ScopeExceedsParent => Reason::ScopeExceedsParent,
            RejectReason::AudienceExceedsParent => Reason::AudienceExceedsParent,
            RejectReason::ExpiryExceedsParent => Reason::ExpiryExceedsParent,
            RejectReason::DelegationDepthExceeded => Reason::DelegationDepthExceeded,
            RejectReason::DelegationCycle => Reason::DelegationCycle,
            RejectReason::SessionNotFound => Reason::SessionNotFound,
            RejectReason::SessionEnded => Reason::SessionEnded,
            RejectReason::HumanDisabled => Reason::HumanDisabled,
            RejectReason::CredentialNotFound => Reason::CredentialNotFound,
            RejectReason::SigningKeyRetired => Reason::SigningKeyRetired,
            RejectReason::SigningKeyCompromised => Reason::SigningKeyCompromised,
            RejectReason::FederatedIdentityTaken => Reason::FederatedIdentityTaken,
            RejectReason::DeviceDisabled => Reason::DeviceDisabled,
            RejectReason::SubjectTokenInactive => Reason::SubjectTokenInactive,
            RejectReason::AudienceNotDelegated => Reason::AudienceNotDelegated,
            RejectReason::ScopeNotDelegated => Reason::ScopeNotDelegated,
            // Checked again at apply, after the edge accepted them: the same codes as the edge's.
            RejectReason::AssertionExpired => Reason::Credential("ASSERTION_EXPIRED"),
            RejectReason::CredentialRevoked => Reason::Credential("CREDENTIAL_REVOKED"),
            RejectReason::PolicyInvalid => Reason::PolicyInvalid,
            RejectReason::PolicyVersionNotFound => Reason::PolicyVersionNotFound,
            RejectReason::PolicyForbidden => Reason::PolicyForbidden,
            RejectReason::PolicyError => Reason::PolicyError,
            RejectReason::PolicyNoPreviousVersion => Reason::PolicyNoPreviousVersion,
            RejectReason::BudgetExceedsParent => Reason::BudgetExceedsParent,
        }
    }
}

/// What a `VerifyResponse.reason` means and what the holder of the token should do. A refused
/// token is not an error status at Verify; presented as a caller's credential it is
/// `CREDENTIAL_INVALID`, and as an exchange's subject token `SUBJECT_TOKEN_INACTIVE`.
pub fn token_invalid_description(reason: TokenInvalidReason) -> &'static str {
    use TokenInvalidReason as R;
    match reason {
        R::Unspecified => "The token is in force (active is true): use it.",
        R::Malformed => "The token is not a well-formed Warrant access token: send it unaltered.",
        R::AlgNotAllowed => "The token names an algorithm other than EdDSA: get a Warrant token.",
        R::BadSignature => "The signature does not verify: the token was altered or forged.",
        R::UnknownKey => "No published signing key has the token's kid: get a Warrant token.",
        R::KeySourceNotAllowed => "The token names its own key: get a Warrant token.",
        R::Expired => "The token has expired: get a new one.",
        R::NotYetValid => "The token is not valid yet: check the clocks, or wait.",
        R::MissingClaim => "The token lacks a required claim: get a Warrant token.",
        R::AudienceMismatch => "The token is for another audience: get one for this audience.",
        R::IssuerMismatch => "The token is from another issuer: get one from this cluster.",
        R::WrongTokenType => "The token is not an access token: send an access token.",
        R::Revoked => "The token, or one it was exchanged for, was revoked: get a new one.",
        R::UnknownToken => "The log holds no issuance with these claims: get a new token.",
        R::AgentDisabled => "The token's agent is disabled: have an admin enable it.",
        R::TooLarge => "The token is larger than any Warrant token: send it unaltered.",
        R::SessionEnded => "The token's session ended or expired: log in again.",
        R::DelegationRevoked => "The delegation behind the token was revoked: get a new one.",
        R::DelegationExpired => "The delegation behind the token expired: get a new one.",
        R::HumanDisabled => "The token's human is disabled: have an admin enable them.",
        R::DeviceDisabled => "The token's device is disabled: have an admin enable it.",
        R::SigningKeyCompromised => {
            "The key that signed the token was marked compromised: get a new token."
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use warrant_token::{assertion::AssertionError, id_token::IdTokenError};

    use super::*;

    /// Every value a prost enum accepts: they are small and non-negative in our protos.
    fn enum_values(accepts: impl Fn(i32) -> bool) -> Vec<i32> {
        (0..=1024).filter(|&value| accepts(value)).collect()
    }

    /// Today's mapping of every `RejectReason` to the status and code a client receives, frozen:
    /// the wire enum is never renumbered and its codes never change.
    const REJECTIONS: &[(i32, Code, &str)] = &[
        (0, Code::InvalidArgument, "INVALID_COMMAND"),
        (1, Code::InvalidArgument, "INVALID_COMMAND"),
        (2, Code::FailedPrecondition, "IDEMPOTENCY_KEY_REUSED"),
        (3, Code::AlreadyExists, "ALREADY_EXISTS"),
        (4, Code::NotFound, "HUMAN_NOT_FOUND"),
        (5, Code::NotFound, "AGENT_NOT_FOUND"),
        (6, Code::NotFound, "SERVICE_NOT_FOUND"),
        (7, Code::NotFound, "TOKEN_NOT_FOUND"),
        (8, Code::FailedPrecondition, "AGENT_DISABLED"),
        (9, Code::PermissionDenied, "SCOPE_NOT_ALLOWED"),
        (10, Code::FailedPrecondition, "SIGNING_KEY_NOT_FOUND"),
        (11, Code::AlreadyExists, "AUDIENCE_TAKEN"),
        (12, Code::PermissionDenied, "PERMISSION_DENIED"),
        (13, Code::FailedPrecondition, "SIGNING_KEY_CONFLICT"),
        (14, Code::Unauthenticated, "ASSERTION_REPLAYED"),
        (15, Code::NotFound, "DEVICE_NOT_FOUND"),
        (16, Code::NotFound, "DELEGATION_NOT_FOUND"),
        (17, Code::FailedPrecondition, "DELEGATION_INACTIVE"),
        (18, Code::FailedPrecondition, "SCOPE_EXCEEDS_PARENT"),
        (19, Code::FailedPrecondition, "AUDIENCE_EXCEEDS_PARENT"),
        (20, Code::FailedPrecondition, "EXPIRY_EXCEEDS_PARENT"),
        (21, Code::FailedPrecondition, "DELEGATION_DEPTH_EXCEEDED"),
        (22, Code::FailedPrecondition, "DELEGATION_CYCLE"),
        (23, Code::NotFound, "SESSION_NOT_FOUND"),
        (24, Code::FailedPrecondition, "SESSION_ENDED"),
        (25, Code::FailedPrecondition, "HUMAN_DISABLED"),
        (26, Code::NotFound, "CREDENTIAL_NOT_FOUND"),
        (27, Code::FailedPrecondition, "SIGNING_KEY_RETIRED"),
        (28, Code::AlreadyExists, "FEDERATED_IDENTITY_TAKEN"),
        (29, Code::FailedPrecondition, "DEVICE_DISABLED"),
        (30, Code::FailedPrecondition, "SUBJECT_TOKEN_INACTIVE"),
        (31, Code::PermissionDenied, "AUDIENCE_NOT_DELEGATED"),
        (32, Code::PermissionDenied, "SCOPE_NOT_DELEGATED"),
        (33, Code::Unauthenticated, "ASSERTION_EXPIRED"),
        (34, Code::Unauthenticated, "CREDENTIAL_REVOKED"),
        (35, Code::FailedPrecondition, "SIGNING_KEY_COMPROMISED"),
        (36, Code::InvalidArgument, "POLICY_INVALID"),
        (37, Code::NotFound, "POLICY_VERSION_NOT_FOUND"),
        (38, Code::PermissionDenied, "POLICY_FORBIDDEN"),
        (39, Code::FailedPrecondition, "BUDGET_EXCEEDS_PARENT"),
        (40, Code::FailedPrecondition, "POLICY_ERROR"),
        (41, Code::FailedPrecondition, "POLICY_NO_PREVIOUS_VERSION"),
    ];

    #[test]
    fn every_rejection_has_a_row_with_todays_status_and_code() {
        let values = enum_values(|value| RejectReason::try_from(value).is_ok());
        let frozen: Vec<i32> = REJECTIONS.iter().map(|(value, _, _)| *value).collect();
        assert_eq!(
            values, frozen,
            "a RejectReason was added: give it a row and a line here"
        );
        for &(value, status, code) in REJECTIONS {
            let reason = Reason::of_rejection(value);
            assert_eq!(
                (reason.status(), reason.as_str()),
                (status, code),
                "RejectReason {value}"
            );
            assert!(!reason.description().is_empty(), "RejectReason {value}");
        }
        // A value from a newer node reads as unspecified.
        assert_eq!(Reason::of_rejection(1025), Reason::InvalidCommand);
    }

    #[test]
    fn every_token_invalid_reason_has_a_description() {
        let values = enum_values(|value| TokenInvalidReason::try_from(value).is_ok());
        assert_eq!(
            values.len(),
            22,
            "a TokenInvalidReason was added: describe it"
        );
        for value in values {
            let reason = TokenInvalidReason::try_from(value).expect("listed as accepted");
            assert!(
                !token_invalid_description(reason).is_empty(),
                "{}",
                reason.as_str_name()
            );
        }
    }

    #[test]
    fn every_row_has_a_status_and_a_description_and_codes_are_unique() {
        let mut codes = BTreeSet::new();
        for &reason in Reason::ROWS {
            assert!(!reason.description().is_empty(), "{reason:?}");
            assert_ne!(reason.status(), Code::Ok, "{reason:?}");
            assert!(
                codes.insert(reason.as_str()),
                "{} is in two rows",
                reason.as_str()
            );
        }
        let credential = Reason::Credential("ASSERTION_EXPIRED");
        assert_eq!(credential.status(), Code::Unauthenticated);
        assert!(!credential.description().is_empty());
    }

    #[test]
    fn credential_codes_name_no_row() {
        let assertion_codes = [
            AssertionError::Malformed(String::new()),
            AssertionError::AlgNotAllowed(String::new()),
            AssertionError::KeySourceNotAllowed(String::new()),
            AssertionError::BadSignature(String::new()),
            AssertionError::Expired(String::new()),
            AssertionError::NotYetValid(String::new()),
            AssertionError::LifetimeTooLong(String::new()),
            AssertionError::AudienceMismatch(String::new()),
            AssertionError::IssuerMismatch(String::new()),
            AssertionError::MissingClaim(String::new()),
            AssertionError::TooLarge(String::new()),
        ]
        .map(|error| error.reason());
        let id_token_codes = [
            IdTokenError::Malformed(String::new()),
            IdTokenError::AlgNotAllowed(String::new()),
            IdTokenError::KeySourceNotAllowed(String::new()),
            IdTokenError::UnknownKey(String::new()),
            IdTokenError::BadSignature(String::new()),
            IdTokenError::Expired(String::new()),
            IdTokenError::NotYetValid(String::new()),
            IdTokenError::IssuerMismatch(String::new()),
            IdTokenError::AudienceMismatch(String::new()),
            IdTokenError::NonceMismatch(String::new()),
            IdTokenError::MissingClaim(String::new()),
            IdTokenError::TooLarge(String::new()),
        ]
        .map(|error| error.reason());
        let rows: BTreeSet<&str> = Reason::ROWS.iter().map(|reason| reason.as_str()).collect();
        for code in assertion_codes
            .into_iter()
            .chain(id_token_codes)
            .chain(["CREDENTIAL_REVOKED"])
        {
            assert!(
                !rows.contains(code),
                "{code} is both a credential code and a row"
            );
        }
    }
}
