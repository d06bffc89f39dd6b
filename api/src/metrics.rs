//! Prometheus metrics: the recorder, `/metrics`, and what the edges report.
//!
//! Every crate reports through the `metrics` facade; [`install`] sets the one process-wide
//! recorder (metrics-exporter-prometheus) the first time a node starts, and every later node in
//! the same process (tests) shares it. `/metrics` renders it in the text format 0.0.4.
//!
//! Names follow the Prometheus conventions: a `warrant_` prefix, base units in the name
//! (`_seconds`, `_bytes`), `_total` on counters. No label value grows with history or principals:
//! `service` and `method` name only methods of the services this node serves (anything else is
//! `_other`), `code` is a gRPC status code, `reason` a row of the reason table (or a credential
//! check's code), `kind`, `result` and `decision` are closed enums, `peer` a member's node id
//! (rendered at scrape time from the current membership, so a removed peer's series goes with it).

use std::{
    borrow::Cow,
    collections::{BTreeMap, BTreeSet},
    fmt::Write,
    sync::OnceLock,
    time::Duration,
};

use ::metrics::{Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tonic::Code;
use warrant_proto::{api::TokenInvalidReason, log};
use warrant_raft::{RaftNode, metric_names as raft};

use crate::Reason;

/// One finished gRPC call, as the edge saw it.
pub struct RpcOutcome<'a> {
    pub service: &'a str,
    pub method: &'a str,
    pub code: tonic::Code,
    /// The `ErrorInfo` reason of a non-OK status, when it carried one.
    pub reason: Option<&'a str>,
    pub elapsed: Duration,
}

pub const BUILD_INFO: &str = "warrant_build_info";
pub const RPC_REQUESTS: &str = "warrant_rpc_requests_total";
pub const RPC_ERRORS: &str = "warrant_rpc_errors_total";
pub const RPC_DURATION_SECONDS: &str = "warrant_rpc_duration_seconds";
pub const RAFT_REPLICATION_LAG: &str = "warrant_raft_replication_lag_entries";
pub const ARGON2_QUEUE_DEPTH: &str = "warrant_argon2_queue_depth";
pub const ARGON2_QUEUE_CAPACITY: &str = "warrant_argon2_queue_capacity";
pub const ARGON2_REJECTED: &str = "warrant_argon2_rejected_total";
pub const ARGON2_HASHES: &str = "warrant_argon2_hashes_total";
pub const TOKENS_ISSUED: &str = "warrant_tokens_issued_total";
pub const TOKENS_VERIFIED: &str = "warrant_tokens_verified_total";
pub const DECISIONS: &str = "warrant_decisions_total";

/// The label value of a service, method or reason outside the known sets.
pub const OTHER: &str = "_other";
/// The `reason` of a non-OK status that carried none.
pub const NO_REASON: &str = "_none";
/// The longest credential-check code taken as a label (`ASSERTION_*`, `ID_TOKEN_*`,
/// `CREDENTIAL_*`); the longest the checks use is far shorter.
const CREDENTIAL_CODE_LEN_MAX: usize = 48;
/// The prefixes of the codes credential checks own ([`Reason::Credential`]).
const CREDENTIAL_CODE_PREFIXES: [&str; 3] = ["ASSERTION_", "ID_TOKEN_", "CREDENTIAL_"];

/// Latency buckets (seconds) of every `_seconds` histogram: 0.5 ms, where a cached check
/// answers, to 10 s, the longest a write waits (`PROPOSE_WAIT_MAX`).
const LATENCY_BUCKETS_S: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Snapshot builds and installs scan the whole state: 10 ms to 10 minutes
/// (`COMPACT_WAIT_MAX`).
const SNAPSHOT_BUCKETS_S: [f64; 10] = [0.01, 0.05, 0.25, 1.0, 5.0, 15.0, 60.0, 120.0, 300.0, 600.0];
/// Commands per batch: powers of two up to `BATCH_COMMANDS_MAX` (1024).
const BATCH_BUCKETS: [f64; 11] = [
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];
/// How often histograms are drained into their buckets when nobody scrapes: without it, samples
/// recorded between scrapes pile up in memory.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide recorder, once; later calls return the same handle.
pub fn install() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let handle = build_and_set_recorder();
        describe();
        gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
        spawn_upkeep(handle.clone());
        handle
    })
}

fn build_and_set_recorder() -> PrometheusHandle {
    let builder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".to_string()), &LATENCY_BUCKETS_S)
        .and_then(|b| {
            b.set_buckets_for_metric(
                Matcher::Prefix("warrant_snapshot_".to_string()),
                &SNAPSHOT_BUCKETS_S,
            )
        })
        .and_then(|b| {
            b.set_buckets_for_metric(
                Matcher::Full(raft::PROPOSER_BATCH_COMMANDS.to_string()),
                &BATCH_BUCKETS,
            )
        })
        // The bucket lists are constants, never empty: the only error the builder names.
        .expect("non-empty bucket lists");
    let recorder = builder.build_recorder();
    let handle = recorder.handle();
    if let Err(e) = ::metrics::set_global_recorder(recorder) {
        // Another recorder owns the facade (an embedding process): /metrics stays empty.
        tracing::warn!(error = %e, "a metrics recorder is already installed; /metrics reports nothing");
    }
    handle
}

fn spawn_upkeep(handle: PrometheusHandle) {
    let spawned = std::thread::Builder::new()
        .name("metrics-upkeep".to_string())
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_INTERVAL);
                handle.run_upkeep();
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "no metrics upkeep thread: histograms drain only on scrape");
    }
}

/// HELP lines, with units, for every metric this node reports.
fn describe() {
    describe_rpc();
    describe_raft();
    describe_domain();
}

/// The build and the RPC edge.
fn describe_rpc() {
    describe_gauge!(
        BUILD_INFO,
        "Always 1; the version of this node's binary in a label."
    );
    describe_counter!(
        RPC_REQUESTS,
        "gRPC calls finished, by service, method and status code."
    );
    describe_counter!(
        RPC_ERRORS,
        "gRPC calls finished non-OK, by the stable reason they carried."
    );
    describe_histogram!(
        RPC_DURATION_SECONDS,
        Unit::Seconds,
        "gRPC call latency, received to status."
    );
}

/// Raft and storage (`raft::metrics` names them).
fn describe_raft() {
    describe_gauge!(raft::RAFT_TERM, "The Raft term this node is in.");
    describe_gauge!(
        raft::RAFT_HAS_LEADER,
        "1 while this node knows a leader, else 0."
    );
    describe_gauge!(raft::RAFT_IS_LEADER, "1 while this node leads, else 0.");
    describe_counter!(
        raft::RAFT_LEADER_CHANGES,
        "Leaders this node has seen take over."
    );
    describe_gauge!(
        raft::RAFT_COMMIT_INDEX,
        "The highest log index this node knows committed."
    );
    describe_gauge!(
        raft::RAFT_APPLIED_INDEX,
        "The highest log index this node has applied."
    );
    describe_gauge!(
        raft::RAFT_LAST_LOG_INDEX,
        "The highest log index in this node's log."
    );
    describe_histogram!(
        raft::PROPOSER_BATCH_COMMANDS,
        "Commands per Raft entry (group commit)."
    );
    describe_gauge!(
        raft::PROPOSER_QUEUE_DEPTH,
        "Commands waiting for a batch on this node."
    );
    describe_histogram!(
        raft::STORAGE_FSYNC_SECONDS,
        Unit::Seconds,
        "Synced Raft log writes."
    );
    describe_histogram!(raft::APPLY_SECONDS, Unit::Seconds, "State machine applies.");
    describe_histogram!(
        raft::SNAPSHOT_BUILD_SECONDS,
        Unit::Seconds,
        "Snapshot builds."
    );
    describe_histogram!(
        raft::SNAPSHOT_INSTALL_SECONDS,
        Unit::Seconds,
        "Snapshot installs."
    );
    describe_gauge!(
        raft::STORAGE_SIZE_BYTES,
        Unit::Bytes,
        "RocksDB files on disk, by database."
    );
}

/// argon2, tokens and decisions.
fn describe_domain() {
    describe_gauge!(
        ARGON2_QUEUE_DEPTH,
        "Secret checks queued for the argon2 pool."
    );
    describe_gauge!(
        ARGON2_QUEUE_CAPACITY,
        "Secret checks the argon2 queue holds at most."
    );
    describe_counter!(
        ARGON2_REJECTED,
        "Secret checks refused because the argon2 queue was full."
    );
    describe_counter!(ARGON2_HASHES, "argon2 hashes computed.");
    describe_counter!(TOKENS_ISSUED, "Access tokens signed, by kind.");
    describe_counter!(TOKENS_VERIFIED, "Tokens checked by Verify, by result.");
    describe_counter!(DECISIONS, "Authorization decisions, by outcome.");
}

/// The text `/metrics` answers: the gauges read at scrape time set first, then everything the
/// recorder holds, then each peer's replication lag as this node (the leader) sees it.
pub fn render(node: &RaftNode, argon2: Argon2Load) -> String {
    let handle = install();
    gauge!(ARGON2_QUEUE_DEPTH).set(argon2.queue_depth as f64);
    gauge!(ARGON2_QUEUE_CAPACITY).set(argon2.queue_capacity as f64);
    let mut text = handle.render();
    render_replication_lag(&mut text, node);
    text
}

/// How full the argon2 pool's queue is at a scrape (its owner reads it: `auth::pool`).
#[derive(Clone, Copy, Debug)]
pub struct Argon2Load {
    pub queue_depth: usize,
    pub queue_capacity: usize,
}

/// `warrant_raft_replication_lag_entries{peer}` for each member the leader replicates to: only
/// current members, so a removed peer's series is gone at the next scrape. Followers have none.
fn render_replication_lag(text: &mut String, node: &RaftNode) {
    let replication = node.status().replication;
    if replication.is_empty() {
        return;
    }
    let _ = writeln!(
        text,
        "# HELP {RAFT_REPLICATION_LAG} Log entries a member is behind this leader's log."
    );
    let _ = writeln!(text, "# TYPE {RAFT_REPLICATION_LAG} gauge");
    for peer in replication {
        let _ = writeln!(
            text,
            "{RAFT_REPLICATION_LAG}{{peer=\"{}\"}} {}",
            peer.node_id, peer.lag
        );
    }
    text.push('\n');
}

/// Counts and times one finished call.
pub fn rpc_finished(rpc: &RpcOutcome<'_>) {
    let (service, method) = rpc_labels(rpc.service, rpc.method);
    let code = code_name(rpc.code);
    counter!(RPC_REQUESTS, "service" => service, "method" => method, "code" => code).increment(1);
    ::metrics::histogram!(RPC_DURATION_SECONDS, "service" => service, "method" => method)
        .record(rpc.elapsed.as_secs_f64());
    if rpc.code != Code::Ok {
        let reason = reason_label(rpc.reason);
        counter!(RPC_ERRORS, "service" => service, "method" => method, "reason" => reason)
            .increment(1);
    }
}

/// The services this node serves, each with its methods, from the compiled descriptors, plus
/// the standard health and reflection services.
fn known_rpcs() -> &'static BTreeMap<String, BTreeSet<String>> {
    static KNOWN: OnceLock<BTreeMap<String, BTreeSet<String>>> = OnceLock::new();
    KNOWN.get_or_init(|| {
        let mut known: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        if let Ok(pool) = prost_reflect::DescriptorPool::decode(warrant_proto::FILE_DESCRIPTOR_SET)
        {
            for service in pool.services() {
                let methods = service.methods().map(|m| m.name().to_string()).collect();
                known.insert(service.full_name().to_string(), methods);
            }
        }
        let standard: [(&str, &[&str]); 3] = [
            ("grpc.health.v1.Health", &["Check", "Watch", "List"]),
            (
                "grpc.reflection.v1.ServerReflection",
                &["ServerReflectionInfo"],
            ),
            (
                "grpc.reflection.v1alpha.ServerReflection",
                &["ServerReflectionInfo"],
            ),
        ];
        for (service, methods) in standard {
            known.insert(
                service.to_string(),
                methods.iter().map(|m| m.to_string()).collect(),
            );
        }
        known
    })
}

/// The `service` and `method` labels: the names when the method is one a known service
/// defines; else `_other` for what is unknown (a client can send any path).
fn rpc_labels(service: &str, method: &str) -> (&'static str, &'static str) {
    match known_rpcs().get_key_value(service) {
        Some((service, methods)) => match methods.get(method) {
            Some(method) => (service.as_str(), method.as_str()),
            None => (service.as_str(), OTHER),
        },
        None => (OTHER, OTHER),
    }
}

/// A reason code as a label: a row of the reason table, or a credential check's code (a short
/// upper-case code with one of their prefixes); anything else is `_other`.
fn reason_label(reason: Option<&str>) -> Cow<'static, str> {
    let Some(reason) = reason else {
        return Cow::Borrowed(NO_REASON);
    };
    if let Some(row) = Reason::ROWS.iter().find(|row| row.as_str() == reason) {
        return Cow::Borrowed(row.as_str());
    }
    let credential_code = reason.len() <= CREDENTIAL_CODE_LEN_MAX
        && CREDENTIAL_CODE_PREFIXES
            .iter()
            .any(|p| reason.starts_with(p))
        && reason.bytes().all(|b| b.is_ascii_uppercase() || b == b'_');
    if credential_code {
        Cow::Owned(reason.to_string())
    } else {
        Cow::Borrowed(OTHER)
    }
}

/// The canonical name of a gRPC status code, as gRPC's own metrics label it.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// One access token signed (a replayed issuance signed again counts again: it is a token
/// handed out). `kind`: `session` (a human's login), `delegated` (an exchange on someone's
/// behalf) or `agent` (an agent or service for itself).
pub fn token_issued(issued: &log::TokenIssued) {
    let kind = if !issued.session_id.is_empty() {
        "session"
    } else if !issued.delegation_id.is_empty() || !issued.actor_chain.is_empty() {
        "delegated"
    } else {
        "agent"
    };
    counter!(TOKENS_ISSUED, "kind" => kind).increment(1);
}

/// One token checked by Verify: `valid`, or why not (the `TokenInvalidReason`, in lower case
/// without its prefix).
pub fn token_verified(invalid: Option<TokenInvalidReason>) {
    let result = match invalid {
        None => Cow::Borrowed("valid"),
        Some(reason) => Cow::Owned(
            reason
                .as_str_name()
                .trim_start_matches("TOKEN_INVALID_REASON_")
                .to_ascii_lowercase(),
        ),
    };
    counter!(TOKENS_VERIFIED, "result" => result).increment(1);
}

/// One authorization decided (gRPC Authorize and AuthZEN): `allow` or `deny`.
pub fn decided(decision: i32) {
    let decision = match log::AccessDecision::try_from(decision) {
        Ok(log::AccessDecision::Allow) => "allow",
        Ok(log::AccessDecision::Deny) => "deny",
        _ => "unspecified",
    };
    counter!(DECISIONS, "decision" => decision).increment(1);
}

/// One argon2 hash computed.
pub fn argon2_hashed() {
    counter!(ARGON2_HASHES).increment(1);
}

/// One secret check refused because the argon2 queue was full.
pub fn argon2_rejected() {
    counter!(ARGON2_REJECTED).increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_known_methods_of_known_services_are_labels() {
        assert_eq!(
            rpc_labels("warrant.v1.TokenService", "Issue"),
            ("warrant.v1.TokenService", "Issue")
        );
        assert_eq!(
            rpc_labels("warrant.v1.TokenService", "NoSuchMethod"),
            ("warrant.v1.TokenService", OTHER)
        );
        assert_eq!(rpc_labels("evil.Service-1234", "Issue"), (OTHER, OTHER));
        assert_eq!(
            rpc_labels("grpc.health.v1.Health", "Check"),
            ("grpc.health.v1.Health", "Check")
        );
        assert_eq!(
            rpc_labels("warrant.raft.v1.RaftService", "AppendEntries"),
            ("warrant.raft.v1.RaftService", "AppendEntries")
        );
    }

    #[test]
    fn reasons_are_rows_or_credential_codes_else_other() {
        assert_eq!(
            reason_label(Some("CREDENTIAL_INVALID")),
            "CREDENTIAL_INVALID"
        );
        assert_eq!(reason_label(Some("ASSERTION_EXPIRED")), "ASSERTION_EXPIRED");
        assert_eq!(reason_label(Some("alice@example.com")), OTHER);
        assert_eq!(reason_label(Some("ASSERTION_alice")), OTHER);
        assert_eq!(
            reason_label(Some(&format!("ASSERTION_{}", "X".repeat(60)))),
            OTHER
        );
        assert_eq!(reason_label(None), NO_REASON);
    }
}
