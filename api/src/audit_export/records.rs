//! One committed event as one OTLP log record, and a batch of them as one export request.
//!
//! The record carries the exact stored event bytes (`warrant.record_b64`), so a SIEM can check
//! any record against the Merkle proofs the audit service serves, plus structured attributes
//! for routing and search: seq, kind, actor, on-behalf-of, decision, and the humans, agents,
//! services and tools the event names, as `identity::event_subjects` (the audit `Query`'s
//! filters) reads them. Nothing here reads a secret: events hold no token text nor credential.

use base64::Engine as _;
use opentelemetry_proto::tonic::{
    collector::logs::v1::ExportLogsServiceRequest,
    common::v1::{AnyValue, ArrayValue, InstrumentationScope, KeyValue, any_value::Value},
    logs::v1::{LogRecord, ResourceLogs, ScopeLogs, SeverityNumber},
    resource::v1::Resource,
};
use warrant_identity::event_subjects::{self, Subjects};
use warrant_proto::log::{self, AccessDecision, AccessDenyReason, PrincipalKind, RejectReason};

/// The instrumentation scope every record is under: receivers route the audit trail by it.
pub const SCOPE_NAME: &str = "warrant.audit";

/// One event as read from the store: its decoded form and the exact bytes stored.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredEvent {
    pub event: log::Event,
    pub record: Vec<u8>,
}

impl StoredEvent {
    /// Whether the event is the audit stream's own progress, or the refusal of one: exporting
    /// it needs no progress of its own (else every progress would call for another).
    pub fn is_progress(&self) -> bool {
        match &self.event.kind {
            Some(log::event::Kind::AuditExportProgressed(_)) => true,
            Some(log::event::Kind::CommandRejected(rejected)) => {
                rejected.command_kind == "record_audit_export_progress"
            }
            _ => false,
        }
    }
}

/// The export request for `events`, from node `node_id`: one resource (service.name warrant,
/// service.instance.id the node), one scope, one record per event in seq order.
pub fn export_request(node_id: u64, events: &[StoredEvent]) -> ExportLogsServiceRequest {
    let resource = Resource {
        attributes: vec![
            string("service.name", "warrant"),
            string("service.instance.id", &node_id.to_string()),
        ],
        ..Default::default()
    };
    let scope = InstrumentationScope {
        name: SCOPE_NAME.to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        ..Default::default()
    };
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(resource),
            scope_logs: vec![ScopeLogs {
                scope: Some(scope),
                log_records: events.iter().map(log_record).collect(),
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

/// One event's record: time is the event's (the batch stamp), severity INFO, body its kind.
pub fn log_record(stored: &StoredEvent) -> LogRecord {
    let event = &stored.event;
    let kind = event
        .kind
        .as_ref()
        .map_or("unknown", event_subjects::kind_name);
    let time_unix_nano = event.time_unix_ms.saturating_mul(1_000_000);
    let mut attributes = vec![
        int("warrant.seq", event.seq),
        string("warrant.event.kind", kind),
        int("warrant.log_index", event.log_index),
    ];
    attributes.extend(actor_attributes(event));
    attributes.extend(kind_attributes(event));
    attributes.extend(subject_attributes(&event_subjects::subjects(event)));
    attributes.push(string(
        "warrant.record_b64",
        &base64::engine::general_purpose::STANDARD.encode(&stored.record),
    ));
    LogRecord {
        time_unix_nano,
        observed_time_unix_nano: time_unix_nano,
        severity_number: SeverityNumber::Info as i32,
        severity_text: "INFO".to_string(),
        body: Some(string_value(kind)),
        attributes,
        ..Default::default()
    }
}

/// Who caused the event and for whom: `warrant.actor`, `warrant.actor.kind` and
/// `warrant.on_behalf_of` (the chain, outermost first; for a decision, the human it was for).
fn actor_attributes(event: &log::Event) -> Vec<KeyValue> {
    let mut attributes = Vec::new();
    let mut on_behalf_of: Vec<&str> = Vec::new();
    if let Some(actor) = &event.actor {
        attributes.push(string("warrant.actor", &actor.id));
        attributes.push(string("warrant.actor.kind", principal_kind(actor.kind)));
        on_behalf_of.extend(actor.on_behalf_of.iter().map(String::as_str));
    }
    if let Some(log::event::Kind::AccessDecided(decided)) = &event.kind
        && !decided.on_behalf_of_human_id.is_empty()
        && !on_behalf_of.contains(&decided.on_behalf_of_human_id.as_str())
    {
        on_behalf_of.push(&decided.on_behalf_of_human_id);
    }
    if !on_behalf_of.is_empty() {
        attributes.push(strings("warrant.on_behalf_of", &on_behalf_of));
    }
    attributes
}

/// What decisions and refusals decided: `warrant.decision` (ALLOW, DENY or REJECTED) with the
/// reason, and a decision's principal, service and tool.
fn kind_attributes(event: &log::Event) -> Vec<KeyValue> {
    match &event.kind {
        Some(log::event::Kind::AccessDecided(decided)) => {
            let decision = AccessDecision::try_from(decided.decision).map_or("UNSPECIFIED", |it| {
                it.as_str_name().trim_start_matches("ACCESS_DECISION_")
            });
            let mut attributes = vec![
                string("warrant.decision", decision),
                string("warrant.principal", &decided.principal_id),
                string("warrant.service", &decided.service_id),
                string("warrant.tool", &decided.tool),
                string("warrant.decision_id", &decided.decision_id),
            ];
            if let Ok(reason) = AccessDenyReason::try_from(decided.deny_reason)
                && reason != AccessDenyReason::Unspecified
            {
                let name = reason
                    .as_str_name()
                    .trim_start_matches("ACCESS_DENY_REASON_");
                attributes.push(string("warrant.deny_reason", name));
            }
            attributes
        }
        Some(log::event::Kind::CommandRejected(rejected)) => {
            let reason = RejectReason::try_from(rejected.reason).map_or("UNSPECIFIED", |it| {
                it.as_str_name().trim_start_matches("REJECT_REASON_")
            });
            vec![
                string("warrant.decision", "REJECTED"),
                string("warrant.reject_reason", reason),
                string("warrant.command_kind", &rejected.command_kind),
            ]
        }
        _ => Vec::new(),
    }
}

/// The ids the event names, by what they are, as the audit `Query` filters match them.
fn subject_attributes(subjects: &Subjects<'_>) -> Vec<KeyValue> {
    [
        ("warrant.humans", &subjects.humans),
        ("warrant.agents", &subjects.agents),
        ("warrant.services", &subjects.services),
        ("warrant.audiences", &subjects.audiences),
        ("warrant.tools", &subjects.tools),
    ]
    .into_iter()
    .filter(|(_, ids)| !ids.is_empty())
    .map(|(key, ids)| strings(key, ids))
    .collect()
}

fn principal_kind(kind: i32) -> &'static str {
    PrincipalKind::try_from(kind).map_or("UNSPECIFIED", |it| {
        it.as_str_name().trim_start_matches("PRINCIPAL_KIND_")
    })
}

fn string_value(value: &str) -> AnyValue {
    AnyValue {
        value: Some(Value::StringValue(value.to_string())),
    }
}

fn string(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(string_value(value)),
        ..Default::default()
    }
}

fn strings(key: &str, values: &[&str]) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(Value::ArrayValue(ArrayValue {
                values: values.iter().map(|it| string_value(it)).collect(),
            })),
        }),
        ..Default::default()
    }
}

fn int(key: &str, value: u64) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(Value::IntValue(i64::try_from(value).unwrap_or(i64::MAX))),
        }),
        ..Default::default()
    }
}
