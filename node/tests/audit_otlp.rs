//! The audit stream over OTLP logs between real `warrant` processes: an in-test collector (the
//! opentelemetry-proto `LogsService`, plaintext on loopback) receives one log record per event
//! from the leader, in seq order and gapless across a graceful leader stop and an unannounced
//! leader kill, and after a graceful restart of every node no seq arrives twice. The records
//! carry the exact stored event bytes and the attributes of a known decision.

#![allow(clippy::unwrap_used)]

mod support;

use std::{
    collections::BTreeSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use base64::{Engine as _, engine::general_purpose::STANDARD};
use nix::sys::signal::Signal;
use opentelemetry_proto::tonic::{
    collector::logs::v1::{
        ExportLogsServiceRequest, ExportLogsServiceResponse,
        logs_service_server::{LogsService, LogsServiceServer},
    },
    common::v1::{AnyValue, KeyValue, any_value::Value},
    logs::v1::LogRecord,
};
use prost::Message as _;
use support::{
    READY_POLL_INTERVAL,
    cluster::Cluster,
    fx::{self, CONVERT, FxWorld},
};
use warrant_proto::{
    api::AuditMode,
    log::{self, event::Kind},
};

/// How long the collector may take to receive what the cluster committed.
const EXPORT_WAIT_MAX: Duration = Duration::from_secs(60);
/// How long a SIGTERMed node may take to exit.
const EXIT_WAIT_MAX: Duration = Duration::from_secs(30);
/// Humans registered in each phase of the test.
const WRITES_PER_PHASE: usize = 12;

/// One received record: the node that sent it (`service.instance.id`) and the record.
#[derive(Clone, Debug)]
struct Received {
    node_id: String,
    record: LogRecord,
}

impl Received {
    fn seq(&self) -> u64 {
        match attribute(&self.record, "warrant.seq") {
            Some(Value::IntValue(seq)) => u64::try_from(*seq).unwrap(),
            other => panic!("warrant.seq is {other:?}"),
        }
    }
}

/// The in-test OTLP logs receiver: keeps every record in arrival order.
#[derive(Clone, Default)]
struct Collector {
    received: Arc<Mutex<Vec<Received>>>,
}

#[tonic::async_trait]
impl LogsService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        let mut received = self.received.lock().unwrap();
        for resource_logs in request.into_inner().resource_logs {
            let resource = resource_logs.resource.unwrap_or_default();
            let node_id = match find(&resource.attributes, "service.instance.id") {
                Some(Value::StringValue(id)) => id.clone(),
                other => panic!("service.instance.id is {other:?}"),
            };
            assert_eq!(
                find(&resource.attributes, "service.name"),
                Some(&Value::StringValue("warrant".into()))
            );
            for scope_logs in resource_logs.scope_logs {
                for record in scope_logs.log_records {
                    received.push(Received {
                        node_id: node_id.clone(),
                        record,
                    });
                }
            }
        }
        Ok(tonic::Response::new(ExportLogsServiceResponse::default()))
    }
}

impl Collector {
    /// Serves on a free loopback port; returns its `http://` endpoint.
    async fn start(&self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let service = LogsServiceServer::new(self.clone());
        tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
                .await
                .unwrap();
        });
        format!("http://{addr}")
    }

    fn snapshot(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Waits until the collector holds exactly the seqs the cluster committed, `node` as the
    /// reader, up to the last committed progress, and that progress covers every event but
    /// progress (which the exporter holds back until the next other event). Returns the
    /// committed events.
    async fn wait_caught_up(&self, cluster: &Cluster, node: u64) -> Vec<log::Event> {
        let deadline = tokio::time::Instant::now() + EXPORT_WAIT_MAX;
        loop {
            let events = cluster.node(node).all_events().await;
            let committed: BTreeSet<u64> = events[..sent_part(&events)]
                .iter()
                .map(|it| it.seq)
                .collect();
            let last_other = events
                .iter()
                .rev()
                .find(|it| !matches!(it.kind, Some(Kind::AuditExportProgressed(_))))
                .map_or(0, |it| it.seq);
            let received: BTreeSet<u64> = self.snapshot().iter().map(Received::seq).collect();
            if committed == received && last_other <= committed.len() as u64 {
                return events;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the collector did not catch up within {EXPORT_WAIT_MAX:?}: committed {} (last \
                 {:?}), received {} (last {:?})",
                committed.len(),
                committed.last(),
                received.len(),
                received.last()
            );
            tokio::time::sleep(READY_POLL_INTERVAL).await;
        }
    }
}

/// How many of `events` the last committed progress says were sent: the exporter holds back
/// the progress events after it until the next other event.
fn sent_part(events: &[log::Event]) -> usize {
    let through = events
        .iter()
        .rev()
        .find_map(|it| match &it.kind {
            Some(Kind::AuditExportProgressed(progress)) => Some(progress.through_seq),
            _ => None,
        })
        .unwrap_or(0);
    usize::try_from(through).unwrap().min(events.len())
}

fn find<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    attributes
        .iter()
        .find(|it| it.key == key)
        .and_then(|it| it.value.as_ref())
        .and_then(|it| it.value.as_ref())
}

fn attribute<'a>(record: &'a LogRecord, key: &str) -> Option<&'a Value> {
    find(&record.attributes, key)
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

/// `[audit_export]` to `endpoint` on every node, small batches and a short idle interval.
fn config(endpoint: &str) -> toml::Table {
    let mut export = toml::Table::new();
    export.insert("endpoint".into(), endpoint.into());
    export.insert("batch_max".into(), 8.into());
    export.insert("interval_ms".into(), 50.into());
    let mut extra = toml::Table::new();
    extra.insert("audit_export".into(), toml::Value::Table(export));
    extra.insert("allow_local_passwords".into(), true.into());
    extra
}

/// Registers [`WRITES_PER_PHASE`] humans named `{phase}-{n}` through node `via`.
async fn write_phase(cluster: &Cluster, via: u64, phase: &str) {
    for n in 0..WRITES_PER_PHASE {
        cluster
            .node(via)
            .register_human(&format!("{phase}-{n}"))
            .await;
    }
}

/// Checks that `received` is in seq order and gapless from 1: each record is the next seq, or
/// (only at index `duplicates_from` or later) one already received. Returns the seqs received
/// again.
fn check_order(received: &[Received], duplicates_from: usize) -> Vec<u64> {
    let mut last = 0;
    let mut again = Vec::new();
    for (idx, it) in received.iter().enumerate() {
        let seq = it.seq();
        if seq == last + 1 {
            last = seq;
            continue;
        }
        assert!(
            seq <= last,
            "record {idx} is seq {seq} after seq {last}: a gap"
        );
        assert!(
            duplicates_from <= idx,
            "record {idx} is seq {seq} again, before any crash (from node {})",
            it.node_id
        );
        again.push(seq);
    }
    again
}

/// A SYNC decision on fx-mcp: alice's assistant calls `convert` under her grant, through the
/// gateway. Returns the decision id.
async fn decide(cluster: &Cluster, via: u64) -> String {
    let node = cluster.node(via);
    let world = FxWorld::register(node).await;
    let grant = world.delegate(node, &[CONVERT], None).await;
    let token = world.issue(node, &grant.delegation_id, &[CONVERT]).await;
    let key = "otlp-decision-1";
    let request = fx::authorize_request(key, &token.access_token, CONVERT, vec![], AuditMode::Sync);
    world.authorize(node, request).await.expect("Authorize");
    key.to_string()
}

/// The record of the decision `decision_id` carries its seq, kind, actor, on-behalf-of,
/// decision and the exact stored bytes of the event the cluster serves.
fn check_decision_record(received: &[Received], events: &[log::Event], decision_id: &str) {
    let event = events
        .iter()
        .find(|it| matches!(&it.kind, Some(Kind::AccessDecided(d)) if d.decision_id == decision_id))
        .expect("the decision is in the log");
    let Some(Kind::AccessDecided(decided)) = &event.kind else {
        unreachable!()
    };
    let record = &received
        .iter()
        .find(|it| it.seq() == event.seq)
        .expect("the decision was exported")
        .record;
    let actor = event.actor.as_ref().unwrap();
    let expect = [
        (
            "warrant.seq",
            Value::IntValue(i64::try_from(event.seq).unwrap()),
        ),
        ("warrant.event.kind", text("access_decided")),
        ("warrant.actor", text(&actor.id)),
        ("warrant.on_behalf_of", texts(&[fx::ALICE])),
        (
            "warrant.decision",
            text(fx::decision_name(decided.decision).trim_start_matches("ACCESS_DECISION_")),
        ),
        ("warrant.principal", text(fx::ASSISTANT)),
        ("warrant.tool", text(CONVERT)),
    ];
    for (key, value) in expect {
        assert_eq!(attribute(record, key), Some(&value), "{key}");
    }
    assert_eq!(
        record.body.as_ref().and_then(|it| it.value.clone()),
        Some(text("access_decided"))
    );
    assert_eq!(record.time_unix_nano, event.time_unix_ms * 1_000_000);
    let Some(Value::StringValue(b64)) = attribute(record, "warrant.record_b64") else {
        panic!("no warrant.record_b64");
    };
    let bytes = STANDARD.decode(b64).unwrap();
    assert_eq!(log::Event::decode(bytes.as_slice()).unwrap(), *event);
    assert_eq!(bytes, event.encode_to_vec(), "the stored bytes, exactly");
}

/// Stops node `id` with SIGTERM, waits for its exit (0) and starts it again.
async fn restart_gracefully(cluster: &mut Cluster, id: u64) {
    let node = cluster.node_mut(id);
    node.signal(Signal::SIGTERM);
    let exit = node.wait_exit(EXIT_WAIT_MAX).await.expect("the node exits");
    assert!(exit.success(), "node {id} exited with {exit:?}");
    node.start_again().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_leader_streams_every_event_once_in_order_across_leader_changes_and_restarts() {
    let collector = Collector::default();
    let endpoint = collector.start().await;
    let mut cluster = Cluster::start_with(3, config(&endpoint)).await;

    // Phase 1: writes and a decision; every event arrives, from the leader.
    let first_leader = cluster.leader().await;
    write_phase(&cluster, first_leader, "before").await;
    let decision_id = decide(&cluster, first_leader).await;
    let events = collector.wait_caught_up(&cluster, first_leader).await;
    let received = collector.snapshot();
    assert!(
        received
            .iter()
            .all(|it| it.node_id == first_leader.to_string()),
        "only the leader sends"
    );
    check_decision_record(&received, &events, &decision_id);
    assert!(
        events
            .iter()
            .any(|it| matches!(it.kind, Some(Kind::AuditExportProgressed(_)))),
        "the progress is committed as an event"
    );

    // Phase 2: SIGTERM the leader; a new one resumes after the committed progress.
    let node = cluster.node_mut(first_leader);
    node.signal(Signal::SIGTERM);
    let exit = node
        .wait_exit(EXIT_WAIT_MAX)
        .await
        .expect("the leader exits");
    assert!(exit.success(), "the leader exited with {exit:?}");
    let survivors: Vec<u64> = (1..=3).filter(|id| *id != first_leader).collect();
    let second_leader = cluster.leader_among(&survivors).await;
    write_phase(&cluster, second_leader, "after-stop").await;
    collector.wait_caught_up(&cluster, second_leader).await;
    cluster.node_mut(first_leader).start_again().await;
    let graceful = collector.snapshot();
    assert_eq!(
        check_order(&graceful, graceful.len()),
        Vec::<u64>::new(),
        "no seq twice across a graceful leader change"
    );
    assert!(
        graceful
            .iter()
            .any(|it| it.node_id == second_leader.to_string()),
        "the new leader sends"
    );

    // Phase 3: SIGKILL the leader; writes go on; a batch may be sent again from here on.
    let killed_at = collector.snapshot().len();
    cluster.node_mut(second_leader).kill();
    let survivors: Vec<u64> = (1..=3).filter(|id| *id != second_leader).collect();
    let third_leader = cluster.leader_among(&survivors).await;
    write_phase(&cluster, third_leader, "after-kill").await;
    collector.wait_caught_up(&cluster, third_leader).await;
    cluster.node_mut(second_leader).start_again().await;
    let again = check_order(&collector.snapshot(), killed_at);
    eprintln!("seqs sent again after the SIGKILL of leader {second_leader}: {again:?}");

    // Phase 4: restart every node gracefully, with writes between; nothing arrives twice.
    let restarts_from = collector.snapshot().len();
    let mut events = Vec::new();
    for id in 1..=3 {
        restart_gracefully(&mut cluster, id).await;
        let leader = cluster.leader().await;
        write_phase(&cluster, leader, &format!("restart-{id}")).await;
        events = collector.wait_caught_up(&cluster, leader).await;
    }
    let received = collector.snapshot();
    check_order(&received, killed_at);
    let before: BTreeSet<u64> = received[..restarts_from]
        .iter()
        .map(Received::seq)
        .collect();
    let mut after = BTreeSet::new();
    for it in &received[restarts_from..] {
        let seq = it.seq();
        assert!(
            !before.contains(&seq) && after.insert(seq),
            "seq {seq} received twice after the restarts (from node {})",
            it.node_id
        );
    }
    // The set is every committed event, as ListEvents serves them, and only those, but for the
    // progress at the end, which goes out with the next write.
    let committed: Vec<u64> = events.iter().map(|it| it.seq).collect();
    assert_eq!(committed, (1..=events.len() as u64).collect::<Vec<_>>());
    let held = events.len() - sent_part(&events);
    assert!(held <= 2, "{held} progress events held back");
    let received_set: Vec<u64> = before.union(&after).copied().collect();
    assert_eq!(received_set, committed[..sent_part(&events)]);
    eprintln!(
        "{} events exported as {} records ({} sent again after the SIGKILL)",
        events.len(),
        received.len(),
        again.len()
    );
}
