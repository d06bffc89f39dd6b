//! The audit stream: every committed event, in seq order, as one OTLP log record, sent by the
//! leader to an OpenTelemetry collector (`[audit_export]`, off unless configured). Operators
//! route it from there into their SIEM, Kafka, ClickHouse or object storage.
//!
//! **Resumable.** The collector's acknowledgement is followed by a `RecordAuditExportProgress`
//! committed through Raft, so the exporter of whichever node leads next (after a restart or a
//! leader change) continues after the last acknowledged seq. The progress is itself an event,
//! exported like any other, so the receiver sees every seq, gapless; progress events are held
//! back until the next other event and sent with it (see `exporter`), so the last one or two
//! events of an idle log, always progress, arrive with the next write.
//!
//! **Delivery.** Exactly once across graceful stops and leader changes; at least once when the
//! lead moves (a crash, or an unannounced election) while a batch is between its
//! acknowledgement and the commit of its progress: the next leader sends that batch again.
//! Receivers deduplicate by `warrant.seq`. A collector that is down is retried with a bounded
//! backoff; it never holds up anything else on the node.

mod collector;
mod exporter;
pub mod records;

use std::{path::PathBuf, time::Duration};

use tokio::sync::watch;
use warrant_raft::RaftNode;

pub use self::collector::{Collector, CollectorError, ExportError};
use self::exporter::{Exporter, Step};
pub use self::exporter::{progress_command, read_batch};

/// Events per export request by default: a few hundred records is what OTLP receivers batch.
pub const AUDIT_EXPORT_BATCH_DEFAULT: usize = 512;
/// The most events one request may carry (`batch_max`): bounds the memory of one batch and
/// stays within the events one store scan reads.
pub const AUDIT_EXPORT_BATCH_MAX: usize = 4096;
/// Stored event bytes per request, about: with base64 and attributes a request stays well under
/// the 4 MiB a gRPC receiver accepts by default. A single larger event still goes alone.
pub const AUDIT_EXPORT_BATCH_BYTES_MAX: usize = 1024 * 1024;
/// How often an idle exporter looks for new events or a change of leader, by default.
pub const AUDIT_EXPORT_INTERVAL_DEFAULT: Duration = Duration::from_millis(1000);
/// The shortest and longest `interval_ms` allowed: polling faster than 10 ms costs a status
/// read per tick for nothing; slower than a minute leaves the SIEM too far behind.
pub const AUDIT_EXPORT_INTERVAL_MIN: Duration = Duration::from_millis(10);
pub const AUDIT_EXPORT_INTERVAL_MAX: Duration = Duration::from_secs(60);
/// How long one export may take before it counts as failed (and is sent again).
pub const AUDIT_EXPORT_RPC_TIMEOUT: Duration = Duration::from_secs(5);
/// How long connecting to the collector may take.
pub const AUDIT_EXPORT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// The first and the longest pause after a failed export: a collector that is down is asked
/// again at most this often, and one that is back is found within this bound.
pub const AUDIT_EXPORT_RETRY_MIN: Duration = Duration::from_millis(100);
pub const AUDIT_EXPORT_RETRY_MAX: Duration = Duration::from_secs(5);
/// How long a stopping node waits for its in-flight batch and its last progress: longer than
/// one export, so an acknowledged batch gets its progress.
pub const AUDIT_EXPORT_STOP_MAX: Duration = Duration::from_secs(8);
/// The largest CA file read for an https collector.
pub const AUDIT_EXPORT_CA_BYTES_MAX: u64 = 1024 * 1024;

/// `[audit_export]`, resolved: where to send and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditExportConfig {
    /// `http://host:port` or `https://host:port` of an OTLP/gRPC logs receiver.
    pub endpoint: String,
    /// The CA (PEM) an https collector's certificate must chain to.
    pub ca_file: Option<PathBuf>,
    /// Events per request, 1 to [`AUDIT_EXPORT_BATCH_MAX`].
    pub batch_max: usize,
    /// The idle poll interval.
    pub interval: Duration,
}

/// Exports as node `node` until `stop`: then finishes the batch in flight and commits its
/// progress, within [`AUDIT_EXPORT_STOP_MAX`].
pub async fn run(
    config: AuditExportConfig,
    collector: Collector,
    node: RaftNode,
    mut stop: watch::Receiver<bool>,
) {
    let mut exporter = Exporter::new(node, collector, config.batch_max);
    let mut backoff = AUDIT_EXPORT_RETRY_MIN;
    while !*stop.borrow() {
        let step = tokio::select! {
            step = exporter.step() => step,
            () = stopped_then_waited(&mut stop) => {
                tracing::warn!("audit export: stopped with a batch in flight; the next leader sends it again");
                return;
            }
        };
        let pause = match step {
            Step::Sent { full: true } => Duration::ZERO,
            Step::Sent { full: false } | Step::Idle => config.interval,
            Step::Failed => backoff,
        };
        backoff = match step {
            Step::Failed => (backoff * 2).min(AUDIT_EXPORT_RETRY_MAX),
            _ => AUDIT_EXPORT_RETRY_MIN,
        };
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            _ = stop.wait_for(|stop| *stop) => break,
        }
    }
    if tokio::time::timeout(AUDIT_EXPORT_STOP_MAX, exporter.flush())
        .await
        .is_err()
    {
        tracing::warn!("audit export: the last progress was not committed before stopping");
    }
}

/// Resolves [`AUDIT_EXPORT_STOP_MAX`] after `stop` is set (or its sender is gone).
async fn stopped_then_waited(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
    tokio::time::sleep(AUDIT_EXPORT_STOP_MAX).await;
}

#[cfg(test)]
mod tests;
