//! Frozen bytes of the log's record schema.
//!
//! ┌──────────────────────────────────────────────────────────────────────────────────────────┐
//! │ These bytes were encoded when each record shape was introduced. NEVER update them: a     │
//! │ failing case means a change would make old logs unreadable. Add a new case for a new      │
//! │ shape; remove one only when that version stops being supported.                          │
//! └──────────────────────────────────────────────────────────────────────────────────────────┘

use prost::Message;
use warrant_identity::fixtures::actor;
use warrant_proto::log::{self, PrincipalKind, event::Kind};

fn event(seq: u64, kind: Kind) -> log::Event {
    log::Event {
        seq,
        time_unix_ms: 1_764_000_000_000,
        log_index: 7,
        batch_position: 1,
        idempotency_key: format!("key-{seq}"),
        actor: Some(actor(PrincipalKind::Admin, "admin")),
        kind: Some(kind),
    }
}

/// (name, value, frozen hex) for every v1 event kind.
fn cases() -> Vec<(&'static str, log::Event, &'static str)> {
    vec![
        (
            "v1_human_registered",
            event(
                1,
                Kind::HumanRegistered(log::HumanRegistered {
                    human_id: "alice".into(),
                    display_name: "Alice".into(),
                    email: "a@example.com".into(),
                    ..Default::default()
                }),
            ),
            V1_HUMAN_REGISTERED,
        ),
        (
            "v1_agent_registered",
            event(
                2,
                Kind::AgentRegistered(log::AgentRegistered {
                    agent_id: "alice-assistant".into(),
                    owner_human_id: "alice".into(),
                    kind: "assistant".into(),
                    description: "scheduling".into(),
                    credential_ids: vec!["secret-1".into()],
                }),
            ),
            V1_AGENT_REGISTERED,
        ),
        (
            "v1_service_registered",
            event(
                3,
                Kind::ServiceRegistered(log::ServiceRegistered {
                    service_id: "calendar".into(),
                    audience: "https://calendar.example/mcp".into(),
                    tools: vec![log::Tool {
                        name: "read_events".into(),
                        description: "List events".into(),
                    }],
                }),
            ),
            V1_SERVICE_REGISTERED,
        ),
        (
            "v1_token_issued",
            event(
                4,
                Kind::TokenIssued(log::TokenIssued {
                    jti: "0190c6a2-7e55-7cc0-8f4e-000000000001".into(),
                    subject: "alice-assistant".into(),
                    agent_id: "alice-assistant".into(),
                    audience: "https://calendar.example/mcp".into(),
                    scopes: vec!["read_events".into()],
                    issued_at_unix_s: 1_764_000_000,
                    expires_at_unix_s: 1_764_000_600,
                    key_id: "kid-1".into(),
                    ..Default::default()
                }),
            ),
            V1_TOKEN_ISSUED,
        ),
        (
            "v1_token_revoked",
            event(
                5,
                Kind::TokenRevoked(log::TokenRevoked {
                    jti: "0190c6a2-7e55-7cc0-8f4e-000000000001".into(),
                    reason: "compromised".into(),
                }),
            ),
            V1_TOKEN_REVOKED,
        ),
        (
            "v1_signing_key_published",
            event(
                6,
                Kind::SigningKeyPublished(log::SigningKeyPublished {
                    key_id: "kid-1".into(),
                    node_id: 1,
                    algorithm: log::SigningAlgorithm::Ed25519 as i32,
                    public_key: vec![0xab; 32],
                }),
            ),
            V1_SIGNING_KEY_PUBLISHED,
        ),
        (
            "v1_human_registered_federated",
            event(
                7,
                Kind::HumanRegistered(log::HumanRegistered {
                    human_id: "hana".into(),
                    display_name: "Hana".into(),
                    email: "h@example.com".into(),
                    federated: Some(federated()),
                    has_password: true,
                }),
            ),
            V1_HUMAN_REGISTERED_FEDERATED,
        ),
        (
            "v1_token_issued_delegated",
            event(
                8,
                Kind::TokenIssued(log::TokenIssued {
                    jti: "0190c6a2-7e55-7cc0-8f4e-000000000002".into(),
                    subject: "alice".into(),
                    agent_id: "alice-sub".into(),
                    audience: "https://calendar.example/mcp".into(),
                    scopes: vec!["read_events".into(), "list_calendars".into()],
                    issued_at_unix_s: 1_764_000_000,
                    expires_at_unix_s: 1_764_000_300,
                    key_id: "kid-2".into(),
                    session_id: "session-1".into(),
                    delegation_id: "delegation-2".into(),
                    actor_chain: vec!["alice-sub".into(), "alice-assistant".into()],
                    task: "plan the offsite".into(),
                    subject_jti: "0190c6a2-7e55-7cc0-8f4e-000000000001".into(),
                    subject_kind: log::PrincipalKind::Human as i32,
                }),
            ),
            V1_TOKEN_ISSUED_DELEGATED,
        ),
        (
            "v1_human_updated",
            event(
                9,
                Kind::HumanUpdated(log::HumanUpdated {
                    human_id: "alice".into(),
                    display_name: "Alice A.".into(),
                    email: "alice@example.org".into(),
                }),
            ),
            V1_HUMAN_UPDATED,
        ),
        (
            "v1_agent_updated",
            event(
                10,
                Kind::AgentUpdated(log::AgentUpdated {
                    agent_id: "alice-assistant".into(),
                    kind: "planner".into(),
                    description: "scheduling and travel".into(),
                }),
            ),
            V1_AGENT_UPDATED,
        ),
        (
            "v1_service_updated",
            event(
                11,
                Kind::ServiceUpdated(log::ServiceUpdated {
                    service_id: "calendar".into(),
                    tools: vec![
                        log::Tool {
                            name: "read_events".into(),
                            description: "List events".into(),
                        },
                        log::Tool {
                            name: "create_event".into(),
                            description: "Create an event".into(),
                        },
                    ],
                }),
            ),
            V1_SERVICE_UPDATED,
        ),
        (
            "v1_device_registered",
            event(
                12,
                Kind::DeviceRegistered(log::DeviceRegistered {
                    device_id: "laptop-1".into(),
                    owner_human_id: "alice".into(),
                    name: "Alice's laptop".into(),
                    platform: "macos".into(),
                }),
            ),
            V1_DEVICE_REGISTERED,
        ),
        (
            "v1_device_updated",
            event(
                13,
                Kind::DeviceUpdated(log::DeviceUpdated {
                    device_id: "laptop-1".into(),
                    name: "Work laptop".into(),
                    platform: "linux".into(),
                }),
            ),
            V1_DEVICE_UPDATED,
        ),
        (
            "v1_agent_device_bound",
            event(
                14,
                Kind::AgentDeviceBound(log::AgentDeviceBound {
                    agent_id: "alice-assistant".into(),
                    device_id: "laptop-1".into(),
                }),
            ),
            V1_AGENT_DEVICE_BOUND,
        ),
        (
            "v1_status_changed",
            event(
                15,
                Kind::StatusChanged(log::StatusChanged {
                    entity: log::EntityKind::Agent as i32,
                    id: "alice-assistant".into(),
                    disabled: true,
                    reason: "kill switch".into(),
                }),
            ),
            V1_STATUS_CHANGED,
        ),
        (
            "v1_credentials_changed",
            event(
                16,
                Kind::CredentialsChanged(log::CredentialsChanged {
                    agent_id: "alice-assistant".into(),
                    added_ids: vec!["key-2".into()],
                    removed_ids: vec!["secret-1".into()],
                }),
            ),
            V1_CREDENTIALS_CHANGED,
        ),
        (
            "v1_session_started",
            event(
                17,
                Kind::SessionStarted(log::SessionStarted {
                    session_id: "session-1".into(),
                    principal_kind: log::PrincipalKind::Human as i32,
                    principal_id: "alice".into(),
                    device_id: "laptop-1".into(),
                    auth_method: log::AuthMethod::OidcIdToken as i32,
                    expires_at_unix_s: 1_764_003_600,
                    federated: Some(federated()),
                    token: Some(log::TokenIssued {
                        jti: "0190c6a2-7e55-7cc0-8f4e-000000000003".into(),
                        subject: "alice".into(),
                        audience: "https://warrant.example".into(),
                        issued_at_unix_s: 1_764_000_000,
                        expires_at_unix_s: 1_764_003_600,
                        key_id: "kid-1".into(),
                        session_id: "session-1".into(),
                        subject_kind: log::PrincipalKind::Human as i32,
                        ..Default::default()
                    }),
                }),
            ),
            V1_SESSION_STARTED,
        ),
        (
            "v1_session_ended",
            event(
                18,
                Kind::SessionEnded(log::SessionEnded {
                    session_id: "session-1".into(),
                    reason: "logout".into(),
                }),
            ),
            V1_SESSION_ENDED,
        ),
        (
            "v1_delegation_created",
            event(
                19,
                Kind::DelegationCreated(log::DelegationCreated {
                    delegation_id: "delegation-2".into(),
                    parent_delegation_id: "delegation-1".into(),
                    root_human_id: "alice".into(),
                    grantor_kind: log::PrincipalKind::Agent as i32,
                    grantor_id: "alice-assistant".into(),
                    grantee_agent_id: "alice-sub".into(),
                    scopes: vec!["read_events".into()],
                    audiences: vec!["https://calendar.example/mcp".into()],
                    task: "plan the offsite".into(),
                    expires_at_unix_s: 1_764_086_400,
                    max_depth: 3,
                    depth: 2,
                    agent_chain: vec!["alice-assistant".into(), "alice-sub".into()],
                    budget: None,
                }),
            ),
            V1_DELEGATION_CREATED,
        ),
        (
            "v1_delegation_revoked",
            event(
                20,
                Kind::DelegationRevoked(log::DelegationRevoked {
                    delegation_id: "delegation-2".into(),
                    reason: "task done".into(),
                }),
            ),
            V1_DELEGATION_REVOKED,
        ),
        (
            "v1_signing_key_retired",
            event(
                21,
                Kind::SigningKeyRetired(log::SigningKeyRetired {
                    key_id: "kid-1".into(),
                    node_id: 1,
                    keep_until_unix_s: 1_764_003_600,
                }),
            ),
            V1_SIGNING_KEY_RETIRED,
        ),
        (
            "v1_signing_key_compromised",
            event(
                22,
                Kind::SigningKeyCompromised(log::SigningKeyCompromised {
                    key_id: "kid-1".into(),
                    node_id: 1,
                    reason: "key file leaked".into(),
                }),
            ),
            V1_SIGNING_KEY_COMPROMISED,
        ),
        (
            "v1_delegation_created_budget",
            event(
                23,
                Kind::DelegationCreated(log::DelegationCreated {
                    delegation_id: "delegation-3".into(),
                    root_human_id: "alice".into(),
                    grantor_kind: log::PrincipalKind::Human as i32,
                    grantor_id: "alice".into(),
                    grantee_agent_id: "alice-assistant".into(),
                    scopes: vec!["convert".into(), "transfer".into()],
                    audiences: vec!["https://fx.example/mcp".into()],
                    expires_at_unix_s: 1_764_086_400,
                    max_depth: 2,
                    depth: 1,
                    agent_chain: vec!["alice-assistant".into()],
                    budget: Some(budget()),
                    ..Default::default()
                }),
            ),
            V1_DELEGATION_CREATED_BUDGET,
        ),
        (
            "v1_policy_published",
            event(
                24,
                Kind::PolicyPublished(log::PolicyPublished {
                    version: 2,
                    text: POLICY_TEXT.into(),
                    description: "cap conversions".into(),
                    attributes: vec![amount_attribute()],
                    text_sha256: vec![0x5a; 32],
                    policy_ids: vec!["big-convert".into()],
                }),
            ),
            V1_POLICY_PUBLISHED,
        ),
        (
            "v1_policy_activated",
            event(
                25,
                Kind::PolicyActivated(log::PolicyActivated {
                    version: 1,
                    previous_version: 2,
                    rollback: true,
                }),
            ),
            V1_POLICY_ACTIVATED,
        ),
        (
            "v1_shadow_policy_set",
            event(
                26,
                Kind::ShadowPolicySet(log::ShadowPolicySet {
                    version: 3,
                    previous_version: 0,
                }),
            ),
            V1_SHADOW_POLICY_SET,
        ),
        (
            "v1_access_decided",
            event(27, Kind::AccessDecided(receipt())),
            V1_ACCESS_DECIDED,
        ),
        (
            "v1_command_rejected",
            event(
                28,
                Kind::CommandRejected(log::CommandRejected {
                    command_kind: "create_delegation".into(),
                    reason: log::RejectReason::BudgetExceedsParent as i32,
                    message: "budget total 4 is above parent delegation d1's 3".into(),
                }),
            ),
            V1_COMMAND_REJECTED,
        ),
        (
            "v1_auth_failures_recorded",
            event(29, Kind::AuthFailuresRecorded(auth_failures())),
            V1_AUTH_FAILURES_RECORDED,
        ),
        (
            "v1_audit_export_progressed",
            log::Event {
                actor: Some(actor(PrincipalKind::Node, "2")),
                ..event(
                    30,
                    Kind::AuditExportProgressed(log::AuditExportProgressed {
                        through_seq: 29,
                        previous_through_seq: 12,
                        node_id: 2,
                    }),
                )
            },
            V1_AUDIT_EXPORT_PROGRESSED,
        ),
    ]
}

const POLICY_TEXT: &str = "@id(\"big-convert\")\nforbid(principal, action == Action::\"call\", \
                           resource) when { context.attributes has amount && \
                           context.attributes.amount > 10000 };";

fn budget() -> log::CallBudget {
    log::CallBudget {
        total: 100,
        tools: vec![log::ToolBudget {
            tool: "transfer".into(),
            limit: 3,
        }],
    }
}

fn amount_attribute() -> log::PolicyAttribute {
    log::PolicyAttribute {
        name: "amount".into(),
        r#type: log::PolicyAttributeType::Long as i32,
    }
}

fn caller_attributes() -> Vec<log::CallerAttribute> {
    use log::caller_attribute::Value;
    vec![
        log::CallerAttribute {
            name: "amount".into(),
            value: Some(Value::LongValue(20_000)),
        },
        log::CallerAttribute {
            name: "currency".into(),
            value: Some(Value::StringValue("EUR".into())),
        },
        log::CallerAttribute {
            name: "urgent".into(),
            value: Some(Value::BoolValue(true)),
        },
    ]
}

/// A SYNC DENY by policy, with a shadow decision: every receipt field set.
fn receipt() -> log::AccessDecided {
    log::AccessDecided {
        decision_id: "authz-1".into(),
        decision: log::AccessDecision::Deny as i32,
        deny_reason: log::AccessDenyReason::PolicyForbidden as i32,
        token_invalid_reason: 0,
        message: "tool convert forbidden by big-convert".into(),
        principal_kind: PrincipalKind::Agent as i32,
        principal_id: "alice-assistant".into(),
        on_behalf_of_human_id: "alice".into(),
        agent_chain: vec!["alice-assistant".into()],
        service_id: "fx-mcp".into(),
        tool: "convert".into(),
        determining_policy_ids: vec!["big-convert".into()],
        evaluation_errors: vec!["other: overflow".into()],
        policy_version: 2,
        token_jti: "0190c6a2-7e55-7cc0-8f4e-000000000004".into(),
        delegation_id: "delegation-3".into(),
        task: "pay the invoice".into(),
        attributes_digest: vec![0x3c; 32],
        serving_node_id: 2,
        decided_at_seq: 26,
        mode: log::AccessMode::Sync as i32,
        shadow: Some(log::ShadowDecision {
            policy_version: 3,
            decision: log::AccessDecision::Allow as i32,
            deny_reason: 0,
            determining_policy_ids: vec!["warrant.delegation".into()],
            evaluation_errors: vec![],
        }),
        decided_at_unix_ms: 1_764_000_000_000,
        requested_by: Some(actor(PrincipalKind::Service, "fx-mcp")),
    }
}

fn auth_failures() -> log::AuthFailures {
    log::AuthFailures {
        claimed_kind: PrincipalKind::Agent as i32,
        claimed_id: "mallory".into(),
        reason: "UNAUTHENTICATED".into(),
        count: 1000,
        first_unix_ms: 1_764_000_000_000,
        last_unix_ms: 1_764_000_009_000,
        node_id: 2,
    }
}

fn command(kind: log::command::Kind, actor: log::Actor) -> log::Command {
    log::Command {
        idempotency_key: "key-c".into(),
        request_digest: vec![0x11; 32],
        actor: Some(actor),
        kind: Some(kind),
        ..Default::default()
    }
}

/// (name, encoded value, decode-and-compare, frozen hex) for the commands, outcomes and rows of
/// access decisions.
type FrozenCase = (&'static str, Vec<u8>, fn(&[u8]) -> Vec<u8>, &'static str);

/// Decodes `bytes` as `M` and encodes it again: equal to the input when the shape is unchanged.
fn roundtrip<M: Message + Default>(bytes: &[u8]) -> Vec<u8> {
    M::decode(bytes)
        .unwrap_or_else(|e| panic!("frozen bytes no longer decode: {e}"))
        .encode_to_vec()
}

fn records() -> Vec<FrozenCase> {
    use log::command::Kind as C;
    use warrant_proto::state;
    let admin = || actor(PrincipalKind::Admin, "admin");
    let node = || actor(PrincipalKind::Node, "2");
    let cmd = |kind, actor| command(kind, actor).encode_to_vec();
    vec![
        (
            "v1_cmd_create_delegation_budget",
            cmd(
                C::CreateDelegation(log::CreateDelegation {
                    delegation_id: "delegation-3".into(),
                    grantee_agent_id: "alice-assistant".into(),
                    scopes: vec!["convert".into(), "transfer".into()],
                    audiences: vec!["https://fx.example/mcp".into()],
                    task: "pay the invoice".into(),
                    expires_at_unix_s: 1_764_086_400,
                    max_depth: 2,
                    budget: Some(budget()),
                    ..Default::default()
                }),
                actor(PrincipalKind::Human, "alice"),
            ),
            roundtrip::<log::Command>,
            V1_CMD_CREATE_DELEGATION_BUDGET,
        ),
        (
            "v1_cmd_publish_policy",
            cmd(
                C::PublishPolicy(log::PublishPolicy {
                    text: POLICY_TEXT.into(),
                    description: "cap conversions".into(),
                    attributes: vec![amount_attribute()],
                }),
                admin(),
            ),
            roundtrip::<log::Command>,
            V1_CMD_PUBLISH_POLICY,
        ),
        (
            "v1_cmd_activate_policy",
            cmd(
                C::ActivatePolicy(log::ActivatePolicy { version: 2 }),
                admin(),
            ),
            roundtrip::<log::Command>,
            V1_CMD_ACTIVATE_POLICY,
        ),
        (
            "v1_cmd_rollback_policy",
            cmd(C::RollbackPolicy(log::RollbackPolicy {}), admin()),
            roundtrip::<log::Command>,
            V1_CMD_ROLLBACK_POLICY,
        ),
        (
            "v1_cmd_set_shadow_policy",
            cmd(
                C::SetShadowPolicy(log::SetShadowPolicy { version: 3 }),
                admin(),
            ),
            roundtrip::<log::Command>,
            V1_CMD_SET_SHADOW_POLICY,
        ),
        (
            "v1_cmd_authorize",
            cmd(
                C::Authorize(log::Authorize {
                    token_jti: "0190c6a2-7e55-7cc0-8f4e-000000000004".into(),
                    token_invalid_reason: 0,
                    service_id: "fx-mcp".into(),
                    tool: "convert".into(),
                    attributes: caller_attributes(),
                    serving_node_id: 2,
                    token_invalid_message: String::new(),
                }),
                actor(PrincipalKind::Service, "fx-mcp"),
            ),
            roundtrip::<log::Command>,
            V1_CMD_AUTHORIZE,
        ),
        (
            "v1_cmd_authorize_invalid_token",
            cmd(
                C::Authorize(log::Authorize {
                    token_invalid_reason: 3,
                    token_invalid_message: "bad signature".into(),
                    service_id: "fx-mcp".into(),
                    tool: "convert".into(),
                    serving_node_id: 2,
                    ..Default::default()
                }),
                actor(PrincipalKind::Service, "fx-mcp"),
            ),
            roundtrip::<log::Command>,
            V1_CMD_AUTHORIZE_INVALID_TOKEN,
        ),
        (
            "v1_cmd_record_access_decisions",
            cmd(
                C::RecordAccessDecisions(log::RecordAccessDecisions {
                    decisions: vec![log::AccessDecided {
                        mode: log::AccessMode::Async as i32,
                        ..receipt()
                    }],
                }),
                node(),
            ),
            roundtrip::<log::Command>,
            V1_CMD_RECORD_ACCESS_DECISIONS,
        ),
        (
            "v1_cmd_record_auth_failures",
            cmd(
                C::RecordAuthFailures(log::RecordAuthFailures {
                    failures: vec![auth_failures()],
                }),
                node(),
            ),
            roundtrip::<log::Command>,
            V1_CMD_RECORD_AUTH_FAILURES,
        ),
        (
            "v1_cmd_record_audit_export_progress",
            cmd(
                C::RecordAuditExportProgress(log::RecordAuditExportProgress {
                    through_seq: 29,
                    node_id: 2,
                }),
                node(),
            ),
            roundtrip::<log::Command>,
            V1_CMD_RECORD_AUDIT_EXPORT_PROGRESS,
        ),
        (
            "v1_outcome_access_decided",
            log::Outcome {
                result: Some(log::outcome::Result::Accepted(log::Accepted {
                    seq: 27,
                    changed: true,
                    access_decided: Some(receipt()),
                    ..Default::default()
                })),
            }
            .encode_to_vec(),
            roundtrip::<log::Outcome>,
            V1_OUTCOME_ACCESS_DECIDED,
        ),
        (
            "v1_outcome_policy_version",
            log::Outcome {
                result: Some(log::outcome::Result::Accepted(log::Accepted {
                    seq: 24,
                    changed: true,
                    policy_version: 2,
                    ..Default::default()
                })),
            }
            .encode_to_vec(),
            roundtrip::<log::Outcome>,
            V1_OUTCOME_POLICY_VERSION,
        ),
        (
            "v1_outcome_policy_invalid",
            log::Outcome {
                result: Some(log::outcome::Result::Rejected(log::Rejected {
                    reason: log::RejectReason::PolicyInvalid as i32,
                    message: "the policy text is invalid".into(),
                    policy_errors: vec![log::PolicyError {
                        line: 2,
                        column: 17,
                        policy_id: "big-convert".into(),
                        message: "unexpected token".into(),
                    }],
                })),
            }
            .encode_to_vec(),
            roundtrip::<log::Outcome>,
            V1_OUTCOME_POLICY_INVALID,
        ),
        (
            "v1_row_policy_version",
            state::PolicyVersionRow {
                published: Some(log::PolicyPublished {
                    version: 2,
                    text: POLICY_TEXT.into(),
                    description: "cap conversions".into(),
                    attributes: vec![amount_attribute()],
                    text_sha256: vec![0x5a; 32],
                    policy_ids: vec!["big-convert".into()],
                }),
                published_seq: 24,
                published_unix_ms: 1_764_000_000_000,
            }
            .encode_to_vec(),
            roundtrip::<state::PolicyVersionRow>,
            V1_ROW_POLICY_VERSION,
        ),
        (
            "v1_row_policy_activation",
            state::PolicyActivationRow {
                active_version: 2,
                shadow_version: 3,
                previous_versions: vec![1],
                latest_version: 3,
                activated_seq: 25,
            }
            .encode_to_vec(),
            roundtrip::<state::PolicyActivationRow>,
            V1_ROW_POLICY_ACTIVATION,
        ),
        (
            "v1_row_budget_usage",
            state::BudgetUsageRow {
                spent: 7,
                tools: vec![state::ToolSpend {
                    tool: "transfer".into(),
                    spent: 2,
                }],
            }
            .encode_to_vec(),
            roundtrip::<state::BudgetUsageRow>,
            V1_ROW_BUDGET_USAGE,
        ),
    ]
}

#[test]
fn frozen_access_records_decode_and_encode_to_the_same_bytes() {
    for (name, encoded, roundtrip, frozen_hex) in records() {
        let encoded_hex = hex::encode(&encoded);
        if std::env::var_os("WARRANT_PRINT_FROZEN").is_some() {
            println!("{name}: {encoded_hex}");
            continue;
        }
        let frozen = hex::decode(frozen_hex).unwrap_or_else(|e| panic!("{name}: bad hex: {e}"));
        assert_eq!(
            hex::encode(roundtrip(&frozen)),
            frozen_hex,
            "{name}: frozen bytes decode to a different record"
        );
        assert_eq!(encoded_hex, frozen_hex, "{name}: encoding changed");
    }
}

fn federated() -> log::FederatedIdentity {
    log::FederatedIdentity {
        issuer: "https://accounts.example".into(),
        subject: "108234".into(),
    }
}

#[test]
fn frozen_events_decode_and_encode_to_the_same_bytes() {
    for (name, value, frozen_hex) in cases() {
        let encoded = hex::encode(value.encode_to_vec());
        if std::env::var_os("WARRANT_PRINT_FROZEN").is_some() {
            println!("{name}: {encoded}");
            continue;
        }
        let frozen = hex::decode(frozen_hex).unwrap_or_else(|e| panic!("{name}: bad hex: {e}"));
        let decoded = log::Event::decode(frozen.as_slice())
            .unwrap_or_else(|e| panic!("{name}: frozen bytes no longer decode: {e}"));
        assert_eq!(
            decoded, value,
            "{name}: frozen bytes decode to a different event"
        );
        assert_eq!(encoded, frozen_hex, "{name}: encoding changed");
    }
}

const V1_HUMAN_REGISTERED: &str = "08011080d0dfb4ab33180720012a056b65792d3132090801120561646d696e521d0a05616c6963651205416c6963651a0d61406578616d706c652e636f6d";
const V1_AGENT_REGISTERED: &str = "08021080d0dfb4ab33180720012a056b65792d3232090801120561646d696e5a390a0f616c6963652d617373697374616e741205616c6963651a09617373697374616e74220a7363686564756c696e672a087365637265742d31";
const V1_SERVICE_REGISTERED: &str = "08031080d0dfb4ab33180720012a056b65792d3332090801120561646d696e62440a0863616c656e646172121c68747470733a2f2f63616c656e6461722e6578616d706c652f6d63701a1a0a0b726561645f6576656e7473120b4c697374206576656e7473";
const V1_TOKEN_ISSUED: &str = "08041080d0dfb4ab33180720012a056b65792d3432090801120561646d696e6a86010a2430313930633661322d376535352d376363302d386634652d303030303030303030303031120f616c6963652d617373697374616e741a0f616c6963652d617373697374616e74221c68747470733a2f2f63616c656e6461722e6578616d706c652f6d63702a0b726561645f6576656e747330808292c90638d88692c90642056b69642d31";
const V1_TOKEN_REVOKED: &str = "08051080d0dfb4ab33180720012a056b65792d3532090801120561646d696e72330a2430313930633661322d376535352d376363302d386634652d303030303030303030303031120b636f6d70726f6d69736564";
const V1_SIGNING_KEY_PUBLISHED: &str = "08061080d0dfb4ab33180720012a056b65792d3632090801120561646d696e7a2d0a056b69642d31100118012220abababababababababababababababababababababababababababababababab";
const V1_HUMAN_REGISTERED_FEDERATED: &str = "08071080d0dfb4ab33180720012a056b65792d3732090801120561646d696e52410a0468616e61120448616e611a0d68406578616d706c652e636f6d22220a1868747470733a2f2f6163636f756e74732e6578616d706c6512063130383233342801";
const V1_TOKEN_ISSUED_DELEGATED: &str = "08081080d0dfb4ab33180720012a056b65792d3832090801120561646d696e6af5010a2430313930633661322d376535352d376363302d386634652d3030303030303030303030321205616c6963651a09616c6963652d737562221c68747470733a2f2f63616c656e6461722e6578616d706c652f6d63702a0b726561645f6576656e74732a0e6c6973745f63616c656e6461727330808292c90638ac8492c90642056b69642d324a0973657373696f6e2d31520c64656c65676174696f6e2d325a09616c6963652d7375625a0f616c6963652d617373697374616e746210706c616e20746865206f6666736974656a2430313930633661322d376535352d376363302d386634652d3030303030303030303030317002";
const V1_HUMAN_UPDATED: &str = "08091080d0dfb4ab33180720012a056b65792d3932090801120561646d696e8201240a05616c6963651208416c69636520412e1a11616c696365406578616d706c652e6f7267";
const V1_AGENT_UPDATED: &str = "080a1080d0dfb4ab33180720012a066b65792d313032090801120561646d696e8a01310a0f616c6963652d617373697374616e741207706c616e6e65721a157363686564756c696e6720616e642074726176656c";
const V1_SERVICE_UPDATED: &str = "080b1080d0dfb4ab33180720012a066b65792d313132090801120561646d696e9201470a0863616c656e646172121a0a0b726561645f6576656e7473120b4c697374206576656e7473121f0a0c6372656174655f6576656e74120f43726561746520616e206576656e74";
const V1_DEVICE_REGISTERED: &str = "080c1080d0dfb4ab33180720012a066b65792d313232090801120561646d696e9a01280a086c6170746f702d311205616c6963651a0e416c6963652773206c6170746f7022056d61636f73";
const V1_DEVICE_UPDATED: &str = "080d1080d0dfb4ab33180720012a066b65792d313332090801120561646d696ea2011e0a086c6170746f702d31120b576f726b206c6170746f701a056c696e7578";
const V1_AGENT_DEVICE_BOUND: &str = "080e1080d0dfb4ab33180720012a066b65792d313432090801120561646d696eaa011b0a0f616c6963652d617373697374616e7412086c6170746f702d31";
const V1_STATUS_CHANGED: &str = "080f1080d0dfb4ab33180720012a066b65792d313532090801120561646d696eb201220802120f616c6963652d617373697374616e741801220b6b696c6c20737769746368";
const V1_CREDENTIALS_CHANGED: &str = "08101080d0dfb4ab33180720012a066b65792d313632090801120561646d696eba01220a0f616c6963652d617373697374616e7412056b65792d321a087365637265742d31";
const V1_SESSION_STARTED: &str = "08111080d0dfb4ab33180720012a066b65792d313732090801120561646d696ec201b2010a0973657373696f6e2d3110021a05616c69636522086c6170746f702d31280330909e92c9063a220a1868747470733a2f2f6163636f756e74732e6578616d706c65120631303832333442660a2430313930633661322d376535352d376363302d386634652d3030303030303030303030331205616c696365221768747470733a2f2f77617272616e742e6578616d706c6530808292c90638909e92c90642056b69642d314a0973657373696f6e2d317002";
const V1_SESSION_ENDED: &str = "08121080d0dfb4ab33180720012a066b65792d313832090801120561646d696eca01130a0973657373696f6e2d3112066c6f676f7574";
const V1_DELEGATION_CREATED: &str = "08131080d0dfb4ab33180720012a066b65792d313932090801120561646d696ed201a4010a0c64656c65676174696f6e2d32120c64656c65676174696f6e2d311a05616c69636520032a0f616c6963652d617373697374616e743209616c6963652d7375623a0b726561645f6576656e7473421c68747470733a2f2f63616c656e6461722e6578616d706c652f6d63704a10706c616e20746865206f6666736974655080a597c906580360026a0f616c6963652d617373697374616e746a09616c6963652d737562";
const V1_DELEGATION_REVOKED: &str = "08141080d0dfb4ab33180720012a066b65792d323032090801120561646d696eda01190a0c64656c65676174696f6e2d3212097461736b20646f6e65";
const V1_SIGNING_KEY_RETIRED: &str = "08151080d0dfb4ab33180720012a066b65792d323132090801120561646d696ee2010f0a056b69642d31100118909e92c906";
const V1_SIGNING_KEY_COMPROMISED: &str = "08161080d0dfb4ab33180720012a066b65792d323232090801120561646d696eea011a0a056b69642d3110011a0f6b65792066696c65206c65616b6564";
const V1_DELEGATION_CREATED_BUDGET: &str = "08171080d0dfb4ab33180720012a066b65792d323332090801120561646d696ed20187010a0c64656c65676174696f6e2d331a05616c69636520022a05616c696365320f616c6963652d617373697374616e743a07636f6e766572743a087472616e73666572421668747470733a2f2f66782e6578616d706c652f6d63705080a597c906580260016a0f616c6963652d617373697374616e7472100864120c0a087472616e736665721003";
const V1_POLICY_PUBLISHED: &str = "08181080d0dfb4ab33180720012a066b65792d323432090801120561646d696efa01e601080212950140696428226269672d636f6e7665727422290a666f72626964287072696e636970616c2c20616374696f6e203d3d20416374696f6e3a3a2263616c6c222c207265736f7572636529207768656e207b20636f6e746578742e617474726962757465732068617320616d6f756e7420262620636f6e746578742e617474726962757465732e616d6f756e74203e203130303030207d3b1a0f63617020636f6e76657273696f6e73220a0a06616d6f756e7410022a205a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a320b6269672d636f6e76657274";
const V1_POLICY_ACTIVATED: &str =
    "08191080d0dfb4ab33180720012a066b65792d323532090801120561646d696e820206080110021801";
const V1_SHADOW_POLICY_SET: &str =
    "081a1080d0dfb4ab33180720012a066b65792d323632090801120561646d696e8a02020803";
const V1_ACCESS_DECIDED: &str = "081b1080d0dfb4ab33180720012a066b65792d323732090801120561646d696e9202b3020a07617574687a2d31100218062a25746f6f6c20636f6e7665727420666f7262696464656e206279206269672d636f6e7665727430033a0f616c6963652d617373697374616e744205616c6963654a0f616c6963652d617373697374616e74520666782d6d63705a07636f6e76657274620b6269672d636f6e766572746a0f6f746865723a206f766572666c6f7770027a2430313930633661322d376535352d376363302d386634652d30303030303030303030303482010c64656c65676174696f6e2d338a010f7061792074686520696e766f6963659201203c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c980102a0011aa80101b2011808031001221277617272616e742e64656c65676174696f6eb80180d0dfb4ab33c2010a0804120666782d6d6370";
const V1_COMMAND_REJECTED: &str = "081c1080d0dfb4ab33180720012a066b65792d323832090801120561646d696e9a02470a116372656174655f64656c65676174696f6e10271a3062756467657420746f74616c20342069732061626f766520706172656e742064656c65676174696f6e20643127732033";
const V1_AUTH_FAILURES_RECORDED: &str = "081d1080d0dfb4ab33180720012a066b65792d323932090801120561646d696ea2022f080312076d616c6c6f72791a0f554e41555448454e5449434154454420e8072880d0dfb4ab3330a896e0b4ab333802";
const V1_CMD_CREATE_DELEGATION_BUDGET: &str = "0a056b65792d63122011111111111111111111111111111111111111111111111111111111111111111a0908021205616c696365d201750a0c64656c65676174696f6e2d331a0f616c6963652d617373697374616e742207636f6e7665727422087472616e736665722a1668747470733a2f2f66782e6578616d706c652f6d6370320f7061792074686520696e766f6963653880a597c906400252100864120c0a087472616e736665721003";
const V1_CMD_PUBLISH_POLICY: &str = "0a056b65792d63122011111111111111111111111111111111111111111111111111111111111111111a090801120561646d696e8202b5010a950140696428226269672d636f6e7665727422290a666f72626964287072696e636970616c2c20616374696f6e203d3d20416374696f6e3a3a2263616c6c222c207265736f7572636529207768656e207b20636f6e746578742e617474726962757465732068617320616d6f756e7420262620636f6e746578742e617474726962757465732e616d6f756e74203e203130303030207d3b120f63617020636f6e76657273696f6e731a0a0a06616d6f756e741002";
const V1_CMD_ACTIVATE_POLICY: &str = "0a056b65792d63122011111111111111111111111111111111111111111111111111111111111111111a090801120561646d696e8a02020802";
const V1_CMD_ROLLBACK_POLICY: &str = "0a056b65792d63122011111111111111111111111111111111111111111111111111111111111111111a090801120561646d696e920200";
const V1_CMD_SET_SHADOW_POLICY: &str = "0a056b65792d63122011111111111111111111111111111111111111111111111111111111111111111a090801120561646d696e9a02020803";
const V1_CMD_AUTHORIZE: &str = "0a056b65792d63122011111111111111111111111111111111111111111111111111111111111111111a0a0804120666782d6d6370a202640a2430313930633661322d376535352d376363302d386634652d3030303030303030303030341a0666782d6d63702207636f6e766572742a0c0a06616d6f756e7418a09c012a0f0a0863757272656e637912034555522a0a0a06757267656e7420013002";
const V1_CMD_AUTHORIZE_INVALID_TOKEN: &str = "0a056b65792d63122011111111111111111111111111111111111111111111111111111111111111111a0a0804120666782d6d6370a2022410031a0666782d6d63702207636f6e7665727430023a0d626164207369676e6174757265";
const V1_CMD_RECORD_ACCESS_DECISIONS: &str = "0a056b65792d63122011111111111111111111111111111111111111111111111111111111111111111a050805120132aa02b6020ab3020a07617574687a2d31100218062a25746f6f6c20636f6e7665727420666f7262696464656e206279206269672d636f6e7665727430033a0f616c6963652d617373697374616e744205616c6963654a0f616c6963652d617373697374616e74520666782d6d63705a07636f6e76657274620b6269672d636f6e766572746a0f6f746865723a206f766572666c6f7770027a2430313930633661322d376535352d376363302d386634652d30303030303030303030303482010c64656c65676174696f6e2d338a010f7061792074686520696e766f6963659201203c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c980102a0011aa80102b2011808031001221277617272616e742e64656c65676174696f6eb80180d0dfb4ab33c2010a0804120666782d6d6370";
const V1_CMD_RECORD_AUTH_FAILURES: &str = "0a056b65792d63122011111111111111111111111111111111111111111111111111111111111111111a050805120132b202310a2f080312076d616c6c6f72791a0f554e41555448454e5449434154454420e8072880d0dfb4ab3330a896e0b4ab333802";
const V1_OUTCOME_ACCESS_DECIDED: &str = "0aba02081b20013ab3020a07617574687a2d31100218062a25746f6f6c20636f6e7665727420666f7262696464656e206279206269672d636f6e7665727430033a0f616c6963652d617373697374616e744205616c6963654a0f616c6963652d617373697374616e74520666782d6d63705a07636f6e76657274620b6269672d636f6e766572746a0f6f746865723a206f766572666c6f7770027a2430313930633661322d376535352d376363302d386634652d30303030303030303030303482010c64656c65676174696f6e2d338a010f7061792074686520696e766f6963659201203c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c980102a0011aa80101b2011808031001221277617272616e742e64656c65676174696f6eb80180d0dfb4ab33c2010a0804120666782d6d6370";
const V1_OUTCOME_POLICY_VERSION: &str = "0a06081820014002";
const V1_OUTCOME_POLICY_INVALID: &str = "12430824121a74686520706f6c696379207465787420697320696e76616c69641a23080210111a0b6269672d636f6e766572742210756e657870656374656420746f6b656e";
const V1_ROW_POLICY_VERSION: &str = "0ae601080212950140696428226269672d636f6e7665727422290a666f72626964287072696e636970616c2c20616374696f6e203d3d20416374696f6e3a3a2263616c6c222c207265736f7572636529207768656e207b20636f6e746578742e617474726962757465732068617320616d6f756e7420262620636f6e746578742e617474726962757465732e616d6f756e74203e203130303030207d3b1a0f63617020636f6e76657273696f6e73220a0a06616d6f756e7410022a205a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a320b6269672d636f6e7665727410181880d0dfb4ab33";
const V1_ROW_POLICY_ACTIVATION: &str = "080210031a010120032819";
const V1_ROW_BUDGET_USAGE: &str = "0807120c0a087472616e736665721002";
const V1_AUDIT_EXPORT_PROGRESSED: &str =
    "081e1080d0dfb4ab33180720012a066b65792d333032050805120132aa0206081d100c1802";
const V1_CMD_RECORD_AUDIT_EXPORT_PROGRESS: &str = "0a056b65792d63122011111111111111111111111111111111111111111111111111111111111111111a050805120132ba0204081d1002";
