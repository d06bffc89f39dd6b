//! Traces over OTLP: a three-node TLS cluster exports its spans to an in-test collector (the
//! OTLP/gRPC `TraceService`, built on opentelemetry-proto's server). One Issue sent to a follower
//! is one trace across the follower and the leader, with the RPC attributes, and no span,
//! event or attribute carries the token, the agent's secret or the admin token.

mod support;

use std::{
    collections::BTreeSet,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use opentelemetry_proto::tonic::{
    collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
        trace_service_server::{TraceService, TraceServiceServer},
    },
    common::v1::{AnyValue, KeyValue, any_value::Value},
    trace::v1::Span,
};
use prost::Message as _;
use support::{AgentCredential, cluster::Cluster};
use tonic::metadata::MetadataValue;
use warrant_proto::api;

const AUDIENCE: &str = "https://calendar.example/mcp";
/// How long the spans of the Issue may take to reach the collector (batches leave every
/// `SCHEDULE_DELAY_MS`; a loaded machine is slow).
const SPANS_WAIT_MAX: Duration = Duration::from_secs(60);
const SPANS_POLL_INTERVAL: Duration = Duration::from_millis(100);
/// The batch span processor's delay between exports, short so the test does not wait.
const SCHEDULE_DELAY_MS: &str = "100";
/// OTLP span kinds.
const KIND_SERVER: i32 = 2;
const KIND_CLIENT: i32 = 3;

/// Every export request received, as sent.
#[derive(Clone, Default)]
struct Collector {
    received: Arc<Mutex<Vec<ExportTraceServiceRequest>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.received
            .lock()
            .expect("collector lock")
            .push(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

impl Collector {
    /// Serves the collector on a fresh loopback port (plaintext, as a local agent would).
    async fn start() -> (Collector, SocketAddr) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the collector");
        let addr = listener.local_addr().expect("collector address");
        let collector = Collector::default();
        let service = TraceServiceServer::new(collector.clone());
        tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
                .await
                .expect("collector serves");
        });
        (collector, addr)
    }

    /// Every span received so far, with the `service.instance.id` and `service.name` of the
    /// resource that sent it.
    fn spans(&self) -> Vec<Received> {
        let received = self.received.lock().expect("collector lock");
        let mut spans = Vec::new();
        for request in received.iter() {
            for resource_spans in &request.resource_spans {
                let resource = resource_spans.resource.clone().unwrap_or_default();
                let instance = string_attr(&resource.attributes, "service.instance.id");
                let service = string_attr(&resource.attributes, "service.name");
                for scope_spans in &resource_spans.scope_spans {
                    for span in &scope_spans.spans {
                        spans.push(Received {
                            instance: instance.clone(),
                            service: service.clone(),
                            span: span.clone(),
                        });
                    }
                }
            }
        }
        spans
    }

    /// Every byte received, as the nodes encoded it: what no secret may appear in.
    fn bytes(&self) -> Vec<u8> {
        let received = self.received.lock().expect("collector lock");
        received.iter().flat_map(|r| r.encode_to_vec()).collect()
    }
}

#[derive(Clone, Debug)]
struct Received {
    instance: Option<String>,
    service: Option<String>,
    span: Span,
}

fn attr<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v: &AnyValue| v.value.as_ref())
}

fn string_attr(attributes: &[KeyValue], key: &str) -> Option<String> {
    match attr(attributes, key) {
        Some(Value::StringValue(s)) => Some(s.clone()),
        _ => None,
    }
}

fn int_attr(attributes: &[KeyValue], key: &str) -> Option<i64> {
    match attr(attributes, key) {
        Some(Value::IntValue(i)) => Some(*i),
        _ => None,
    }
}

/// The spans of `trace_id`, once they include every span named in `names` (each from the node
/// given with it).
async fn wait_for_trace(
    collector: &Collector,
    trace_id: &[u8],
    names: &[(&str, u64)],
) -> Vec<Received> {
    let deadline = tokio::time::Instant::now() + SPANS_WAIT_MAX;
    loop {
        let trace: Vec<Received> = collector
            .spans()
            .into_iter()
            .filter(|r| r.span.trace_id == trace_id)
            .collect();
        let missing: Vec<_> = names
            .iter()
            .filter(|(name, node)| {
                !trace.iter().any(|r| {
                    r.span.name == *name && r.instance.as_deref() == Some(&node.to_string())
                })
            })
            .collect();
        if missing.is_empty() {
            return trace;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "spans {missing:?} of trace {} did not arrive within {SPANS_WAIT_MAX:?}; got {:?}",
            hex::encode(trace_id),
            trace
                .iter()
                .map(|r| (&r.span.name, &r.instance))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(SPANS_POLL_INTERVAL).await;
    }
}

fn one<'a>(trace: &'a [Received], name: &str, node: u64) -> &'a Span {
    let found: Vec<_> = trace
        .iter()
        .filter(|r| r.span.name == name && r.instance.as_deref() == Some(&node.to_string()))
        .collect();
    assert_eq!(found.len(), 1, "one {name} span on node {node}: {found:?}");
    &found[0].span
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_issue_sent_to_a_follower_is_one_trace_across_both_nodes_without_secrets() {
    let (collector, collector_addr) = Collector::start().await;
    let env = vec![
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT".to_string(),
            format!("http://{collector_addr}"),
        ),
        (
            "OTEL_BSP_SCHEDULE_DELAY".to_string(),
            SCHEDULE_DELAY_MS.to_string(),
        ),
    ];
    let cluster = Cluster::start_with_env(3, toml::Table::new(), env).await;
    let leader_id = cluster.leader().await;
    let follower_id = (1..=3).find(|id| *id != leader_id).expect("a follower");
    let follower = cluster.node(follower_id);

    follower.register_human("alice").await;
    let agent = AgentCredential::new("alice-assistant");
    follower
        .register_agent(&agent.agent_id, "alice", &agent.secret)
        .await;
    follower
        .register_service("calendar", AUDIENCE, &["read_events"])
        .await;

    // The caller's own trace: the follower's server span must be its child.
    let trace_id: [u8; 16] = rand::random();
    let client_span_id: [u8; 8] = rand::random();
    let traceparent = format!(
        "00-{}-{}-01",
        hex::encode(trace_id),
        hex::encode(client_span_id)
    );
    let mut request = agent.request(api::IssueRequest {
        audience: AUDIENCE.to_string(),
        scopes: vec!["read_events".to_string()],
        ttl_seconds: 600,
        ..Default::default()
    });
    request.metadata_mut().insert(
        "traceparent",
        MetadataValue::try_from(traceparent.as_str()).expect("metadata"),
    );
    let issued = follower
        .tokens()
        .issue(request)
        .await
        .expect("Issue through the follower")
        .into_inner();

    let issue = "warrant.v1.TokenService/Issue";
    let forward = "warrant.raft.v1.RaftService/Forward";
    let trace = wait_for_trace(
        &collector,
        &trace_id,
        &[
            (issue, follower_id),
            (forward, follower_id),
            ("raft.propose", follower_id),
            ("token.sign", follower_id),
            (forward, leader_id),
            ("raft.propose", leader_id),
            ("raft.replication_wait", leader_id),
            ("raft.apply", leader_id),
        ],
    )
    .await;

    // Two nodes, one trace.
    let nodes: BTreeSet<_> = trace.iter().filter_map(|r| r.instance.clone()).collect();
    assert_eq!(
        nodes,
        BTreeSet::from([follower_id.to_string(), leader_id.to_string()]),
        "the trace's spans come from the follower and the leader"
    );
    assert!(
        trace
            .iter()
            .all(|r| r.service.as_deref() == Some("warrant")),
        "service.name defaults to warrant"
    );

    // The follower's server span: a child of the caller's, with the RPC conventions.
    let server = one(&trace, issue, follower_id);
    assert_eq!(server.kind, KIND_SERVER);
    assert_eq!(server.parent_span_id, client_span_id);
    let attributes = &server.attributes;
    assert_eq!(
        string_attr(attributes, "rpc.system").as_deref(),
        Some("grpc")
    );
    assert_eq!(
        string_attr(attributes, "rpc.service").as_deref(),
        Some("warrant.v1.TokenService")
    );
    assert_eq!(
        string_attr(attributes, "rpc.method").as_deref(),
        Some("Issue")
    );
    assert_eq!(int_attr(attributes, "rpc.grpc.status_code"), Some(0));
    assert_eq!(int_attr(attributes, "node_id"), Some(follower_id as i64));
    assert!(string_attr(attributes, "request_id").is_some_and(|id| !id.is_empty()));

    // Across the hop: the leader's Forward server span is the child of the follower's client
    // span, and the leader's apply is under its replication wait.
    let forward_client = trace
        .iter()
        .find(|r| r.span.name == forward && r.instance.as_deref() == Some(&follower_id.to_string()))
        .map(|r| &r.span)
        .expect("the follower's Forward client span");
    assert_eq!(forward_client.kind, KIND_CLIENT);
    let forward_server = one(&trace, forward, leader_id);
    assert_eq!(forward_server.kind, KIND_SERVER);
    assert_eq!(forward_server.parent_span_id, forward_client.span_id);
    assert_eq!(
        int_attr(&forward_server.attributes, "rpc.grpc.status_code"),
        Some(0)
    );
    let wait = one(&trace, "raft.replication_wait", leader_id);
    let apply = one(&trace, "raft.apply", leader_id);
    assert_eq!(apply.parent_span_id, wait.span_id);
    let sign = one(&trace, "token.sign", follower_id);
    assert!(
        trace.iter().any(|r| r.span.span_id == sign.parent_span_id),
        "token.sign has its parent in the trace"
    );

    // Raft's own RPCs are not traced at all.
    let all = collector.spans();
    for internal in ["AppendEntries", "Vote", "InstallSnapshot"] {
        assert!(
            !all.iter().any(|r| r.span.name.ends_with(internal)),
            "{internal} was traced"
        );
    }

    // No secret anywhere in what the nodes sent: not the token (nor its signature), the agent's
    // secret or its Basic credential, nor the admin token.
    let sent = collector.bytes();
    let signature = issued
        .access_token
        .rsplit('.')
        .next()
        .expect("a JWT has a signature");
    let basic = agent.auth();
    let basic_credential = basic.strip_prefix("Basic ").expect("a Basic credential");
    for (what, secret) in [
        ("the issued token", issued.access_token.as_str()),
        ("the token's signature", signature),
        ("the agent's secret", agent.secret.as_str()),
        ("the agent's Basic credential", basic_credential),
        ("the admin token", cluster.admin_token()),
    ] {
        assert!(
            !contains(&sent, secret.as_bytes()),
            "{what} appears in the exported spans"
        );
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// A start-up error is reported long before this.
const EXIT_WAIT_MAX: Duration = Duration::from_secs(30);

/// An exporter or protocol Warrant cannot speak stops `warrant server` before it touches any
/// data, with a message naming what is allowed: traces asked for are never silently off.
#[test]
fn an_unsupported_protocol_or_exporter_is_refused_at_start() {
    for (name, value, allowed) in [
        (
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            "http/protobuf",
            "allowed: grpc",
        ),
        (
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            "http/json",
            "allowed: grpc",
        ),
        ("OTEL_TRACES_EXPORTER", "zipkin", "allowed: otlp"),
    ] {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("warrant.toml");
        let data_dir = dir.path().join("data");
        std::fs::write(
            &config,
            format!(
                "data_dir = {:?}\nadmin_token = \"a-long-enough-admin-token\"\n\
                 insecure_plaintext = true\n",
                data_dir.display().to_string()
            ),
        )
        .expect("write config");
        let mut child = support::warrant_command()
            .arg("server")
            .arg("--config")
            .arg(&config)
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317")
            .env(name, value)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn warrant");
        let deadline = std::time::Instant::now() + EXIT_WAIT_MAX;
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for warrant") {
                break status;
            }
            if deadline <= std::time::Instant::now() {
                // Only the child this test started.
                let _ = child.kill();
                panic!("warrant kept running with {name}={value}");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut stderr = String::new();
        std::io::Read::read_to_string(
            &mut child.stderr.take().expect("stderr is piped"),
            &mut stderr,
        )
        .expect("read stderr");
        assert!(!status.success(), "{name}={value} must fail the start");
        assert!(
            stderr.contains(name) && stderr.contains(allowed),
            "{name}={value}: {stderr}"
        );
        assert!(!data_dir.exists(), "{name}={value} created the data dir");
    }
}
