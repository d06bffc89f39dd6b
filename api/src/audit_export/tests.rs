#![allow(clippy::unwrap_used)]

use base64::Engine as _;
use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value::Value};
use prost::Message;
use warrant_identity::{InMemoryState, StateError, WriteSet, keys};
use warrant_proto::log::{self, PrincipalKind, event::Kind};

use super::{
    progress_command, read_batch,
    records::{StoredEvent, export_request, log_record},
};

fn decision_event(seq: u64) -> log::Event {
    log::Event {
        seq,
        time_unix_ms: 1_764_000_000_123,
        log_index: 9,
        batch_position: 0,
        idempotency_key: format!("authz-{seq}"),
        actor: Some(log::Actor {
            kind: PrincipalKind::Service as i32,
            id: "calendar".into(),
            on_behalf_of: vec![],
        }),
        kind: Some(Kind::AccessDecided(log::AccessDecided {
            decision_id: "authz-1".into(),
            decision: log::AccessDecision::Deny as i32,
            deny_reason: log::AccessDenyReason::ToolNotInScope as i32,
            principal_kind: PrincipalKind::Agent as i32,
            principal_id: "bot".into(),
            on_behalf_of_human_id: "alice".into(),
            agent_chain: vec!["bot".into()],
            service_id: "calendar".into(),
            tool: "delete".into(),
            ..Default::default()
        })),
    }
}

fn stored(event: log::Event) -> StoredEvent {
    StoredEvent {
        record: event.encode_to_vec(),
        event,
    }
}

fn attribute<'a>(
    record: &'a opentelemetry_proto::tonic::logs::v1::LogRecord,
    key: &str,
) -> &'a Value {
    record
        .attributes
        .iter()
        .find(|it| it.key == key)
        .and_then(|it| it.value.as_ref())
        .and_then(|it| it.value.as_ref())
        .unwrap_or_else(|| panic!("no attribute {key} in {:?}", record.attributes))
}

fn text(value: &str) -> Value {
    Value::StringValue(value.to_string())
}

fn texts(values: &[&str]) -> Value {
    Value::ArrayValue(opentelemetry_proto::tonic::common::v1::ArrayValue {
        values: values
            .iter()
            .map(|it| AnyValue {
                value: Some(text(it)),
            })
            .collect(),
    })
}

#[test]
fn a_decision_becomes_one_record_with_its_attributes_and_exact_bytes() {
    let event = stored(decision_event(42));
    let record = log_record(&event);
    assert_eq!(record.time_unix_nano, 1_764_000_000_123_000_000);
    assert_eq!(record.severity_text, "INFO");
    assert_eq!(
        record.body.as_ref().and_then(|it| it.value.clone()),
        Some(text("access_decided"))
    );
    assert_eq!(attribute(&record, "warrant.seq"), &Value::IntValue(42));
    assert_eq!(
        attribute(&record, "warrant.event.kind"),
        &text("access_decided")
    );
    assert_eq!(attribute(&record, "warrant.actor"), &text("calendar"));
    assert_eq!(attribute(&record, "warrant.actor.kind"), &text("SERVICE"));
    assert_eq!(
        attribute(&record, "warrant.on_behalf_of"),
        &texts(&["alice"])
    );
    assert_eq!(attribute(&record, "warrant.decision"), &text("DENY"));
    assert_eq!(
        attribute(&record, "warrant.deny_reason"),
        &text("TOOL_NOT_IN_SCOPE")
    );
    assert_eq!(attribute(&record, "warrant.principal"), &text("bot"));
    assert_eq!(attribute(&record, "warrant.agents"), &texts(&["bot"]));
    assert_eq!(attribute(&record, "warrant.humans"), &texts(&["alice"]));
    assert_eq!(attribute(&record, "warrant.tools"), &texts(&["delete"]));
    let Value::StringValue(b64) = attribute(&record, "warrant.record_b64") else {
        panic!("record_b64 is not a string");
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    assert_eq!(bytes, event.record);
    assert_eq!(log::Event::decode(bytes.as_slice()).unwrap(), event.event);
}

#[test]
fn a_refusal_is_decided_rejected_and_an_agent_acting_for_a_human_names_both() {
    let event = log::Event {
        actor: Some(log::Actor {
            kind: PrincipalKind::Agent as i32,
            id: "bot".into(),
            on_behalf_of: vec!["alice".into()],
        }),
        kind: Some(Kind::CommandRejected(log::CommandRejected {
            command_kind: "create_delegation".into(),
            reason: log::RejectReason::ScopeExceedsParent as i32,
            message: "too wide".into(),
        })),
        ..decision_event(7)
    };
    let record = log_record(&stored(event));
    assert_eq!(attribute(&record, "warrant.decision"), &text("REJECTED"));
    assert_eq!(
        attribute(&record, "warrant.reject_reason"),
        &text("SCOPE_EXCEEDS_PARENT")
    );
    assert_eq!(
        attribute(&record, "warrant.on_behalf_of"),
        &texts(&["alice"])
    );
    assert_eq!(attribute(&record, "warrant.actor.kind"), &text("AGENT"));
}

#[test]
fn progress_and_its_refusals_are_progress_events_and_nothing_else_is() {
    let progressed = log::Event {
        kind: Some(Kind::AuditExportProgressed(
            log::AuditExportProgressed::default(),
        )),
        ..decision_event(3)
    };
    let refused = |command_kind: &str| log::Event {
        kind: Some(Kind::CommandRejected(log::CommandRejected {
            command_kind: command_kind.into(),
            ..Default::default()
        })),
        ..decision_event(4)
    };
    assert!(stored(progressed).is_progress());
    assert!(stored(refused("record_audit_export_progress")).is_progress());
    assert!(!stored(refused("create_delegation")).is_progress());
    assert!(!stored(decision_event(5)).is_progress());
}

#[test]
fn a_request_names_the_service_and_node_and_keeps_seq_order() {
    let events: Vec<_> = (1..=3).map(|seq| stored(decision_event(seq))).collect();
    let request = export_request(2, &events);
    let [resource_logs] = request.resource_logs.as_slice() else {
        panic!("{request:?}");
    };
    let resource = resource_logs.resource.as_ref().unwrap();
    let names: Vec<_> = resource
        .attributes
        .iter()
        .map(|it| (it.key.as_str(), it.value.clone().and_then(|v| v.value)))
        .collect();
    assert_eq!(
        names,
        [
            ("service.name", Some(text("warrant"))),
            ("service.instance.id", Some(text("2")))
        ]
    );
    let seqs: Vec<_> = resource_logs.scope_logs[0]
        .log_records
        .iter()
        .map(|it| attribute(it, "warrant.seq").clone())
        .collect();
    assert_eq!(seqs, [1, 2, 3].map(Value::IntValue));
}

fn store(events: impl IntoIterator<Item = log::Event>) -> InMemoryState {
    let mut writes = WriteSet::new();
    for event in events {
        writes.put(keys::event(event.seq), event.encode_to_vec());
    }
    let mut state = InMemoryState::new();
    state.apply_writes(&writes);
    state
}

#[test]
fn a_batch_is_the_events_after_the_progress_with_their_bytes_and_bounded() {
    let state = store((1..=10).map(decision_event));
    let batch = read_batch(&state, 4, 3).unwrap();
    let seqs: Vec<_> = batch.iter().map(|it| it.event.seq).collect();
    assert_eq!(seqs, [5, 6, 7]);
    assert_eq!(batch[0].record, decision_event(5).encode_to_vec());
    assert_eq!(read_batch(&state, 10, 3).unwrap(), []);
}

#[test]
fn a_gap_or_a_misplaced_event_is_corrupt() {
    let state = store([decision_event(1), decision_event(3)]);
    let error = read_batch(&state, 0, 10).unwrap_err();
    assert!(matches!(&error, StateError::Corrupt { .. }), "{error:?}");
    assert!(error.to_string().contains("expected event 2"), "{error}");
}

#[test]
fn the_progress_command_is_the_node_s_own_and_keyed_by_its_seq() {
    let command = progress_command(3, 41);
    assert_eq!(command.idempotency_key, "audit-export-41");
    assert_eq!(command.actor.unwrap().id, "3");
    assert_eq!(
        command.kind,
        Some(log::command::Kind::RecordAuditExportProgress(
            log::RecordAuditExportProgress {
                through_seq: 41,
                node_id: 3
            }
        ))
    );
    assert_eq!(
        progress_command(3, 41).request_digest,
        command.request_digest
    );
}
