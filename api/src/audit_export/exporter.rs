//! The leader's export loop: read the events after what was exported, send them, and once the
//! collector acknowledged them, commit the new progress through Raft.
//!
//! Every node runs one; only the leader sends. A node that becomes leader (a new term) first
//! takes a linearizable read barrier, so it starts from the last progress any earlier leader
//! committed. Every batch sent holds an event other than progress and is followed by its
//! progress. Events that are only progress are held back until the next other event and then
//! sent with it (sending them alone would call for a progress of their own, forever): so what
//! was sent is always what is committed as sent, but for the batch in flight, and a new leader,
//! after a stop or an unannounced change, sends nothing twice unless it took over during that
//! one batch.

use prost::Message;
use sha2::{Digest, Sha256};
use warrant_identity::{StateError, StateRead, keys, query};
use warrant_proto::log;
use warrant_raft::{RaftNode, ReadConsistency};

use super::{
    AUDIT_EXPORT_BATCH_BYTES_MAX,
    collector::Collector,
    records::{StoredEvent, export_request},
};
use crate::keys::commands::node_actor;

/// What one step did, which decides how long the loop pauses.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Step {
    /// Not the leader, or nothing new to send.
    Idle,
    /// A batch was acknowledged; `full` when more may be waiting.
    Sent { full: bool },
    /// The collector or the cluster failed: try again after a backoff.
    Failed,
}

/// This node's view while it leads: what it sent and what is committed as progress.
#[derive(Clone, Copy, Debug)]
struct Lead {
    term: u64,
    /// The last seq the collector acknowledged from this node in this term.
    sent: u64,
    /// The last progress this node knows is committed; below `sent` only when committing it
    /// failed, until the next try.
    persisted: u64,
}

pub(super) struct Exporter {
    node: RaftNode,
    collector: Collector,
    batch_max: usize,
    lead: Option<Lead>,
}

impl Exporter {
    pub(super) fn new(node: RaftNode, collector: Collector, batch_max: usize) -> Self {
        Self {
            node,
            collector,
            batch_max,
            lead: None,
        }
    }

    /// Sends the next batch if this node leads.
    pub(super) async fn step(&mut self) -> Step {
        let status = self.node.status();
        let leads = status.role == "LEADER" && status.leader_id == Some(self.node.node_id());
        if !leads {
            self.flush().await;
            return Step::Idle;
        }
        let lead = match self.lead {
            Some(lead) if lead.term == status.term => lead,
            _ => match self.take_lead(status.term).await {
                Ok(lead) => lead,
                Err(error) => {
                    tracing::warn!(%error, "audit export: no read barrier as the new leader");
                    return Step::Failed;
                }
            },
        };
        self.lead = Some(lead);
        let batch = match read_batch(&self.node.reader(), lead.sent, self.batch_max) {
            Ok(batch) if batch.iter().all(StoredEvent::is_progress) => {
                // Nothing but progress (or nothing): held back until the next other event.
                if lead.persisted < lead.sent {
                    self.persist(lead.sent).await;
                }
                return Step::Idle;
            }
            Ok(batch) => batch,
            Err(error) => {
                tracing::error!(%error, "audit export: reading the events failed");
                return Step::Failed;
            }
        };
        self.send(lead, &batch).await
    }

    /// Sends `batch`; after the acknowledgement, commits its progress.
    async fn send(&mut self, mut lead: Lead, batch: &[StoredEvent]) -> Step {
        let (Some(first), Some(last)) = (batch.first(), batch.last()) else {
            return Step::Idle;
        };
        let request = export_request(self.node.node_id(), batch);
        if let Err(error) = self.collector.export(request).await {
            tracing::warn!(
                %error,
                first_seq = first.event.seq,
                last_seq = last.event.seq,
                "audit export: the collector did not acknowledge; sending again later"
            );
            return Step::Failed;
        }
        lead.sent = last.event.seq;
        self.lead = Some(lead);
        self.persist(last.event.seq).await;
        Step::Sent {
            full: batch.len() == self.batch_max,
        }
    }

    /// The lead of `term`, starting from the progress committed before it.
    async fn take_lead(&self, term: u64) -> Result<Lead, String> {
        self.node
            .read_barrier(ReadConsistency::Linearizable)
            .await
            .map_err(|e| e.to_string())?;
        let persisted = query::audit_exported(&self.node.reader()).map_err(|e| e.to_string())?;
        tracing::info!(
            term,
            exported_through = persisted,
            "audit export: leading; resuming after the committed progress"
        );
        Ok(Lead {
            term,
            sent: persisted,
            persisted,
        })
    }

    /// Proposes `through_seq` as the progress. A refusal means another exporter moved it (a
    /// leader change in between): the next step starts over from the committed progress.
    async fn persist(&mut self, through_seq: u64) {
        let command = progress_command(self.node.node_id(), through_seq);
        match self.node.propose(command).await.map(|it| it.outcome.result) {
            Ok(Some(log::outcome::Result::Accepted(_))) => {
                if let Some(lead) = &mut self.lead {
                    lead.persisted = lead.persisted.max(through_seq);
                }
            }
            Ok(refused) => {
                tracing::warn!(
                    through_seq,
                    outcome = ?refused,
                    "audit export: progress refused; starting over from the committed progress"
                );
                self.lead = None;
            }
            Err(error) => tracing::warn!(
                through_seq,
                %error,
                "audit export: progress not committed; trying again at the next step"
            ),
        }
    }

    /// Commits the progress of what was sent if that failed before, then gives up the lead:
    /// when stopping, or after losing the lead.
    pub(super) async fn flush(&mut self) {
        if let Some(lead) = self.lead
            && lead.persisted < lead.sent
        {
            self.persist(lead.sent).await;
        }
        self.lead = None;
    }
}

/// The command recording that every event through `through_seq` was acknowledged. Its key
/// names the seq, so a retry after an unknown outcome replays instead of adding an event.
pub fn progress_command(node_id: u64, through_seq: u64) -> log::Command {
    let kind = log::RecordAuditExportProgress {
        through_seq,
        node_id,
    };
    log::Command {
        idempotency_key: format!("audit-export-{through_seq}"),
        request_digest: Sha256::digest(kind.encode_to_vec()).to_vec(),
        actor: Some(node_actor(node_id)),
        assertion: None,
        credential: None,
        kind: Some(log::command::Kind::RecordAuditExportProgress(kind)),
    }
}

/// The events after `after`, at most `batch_max` of them and about
/// [`AUDIT_EXPORT_BATCH_BYTES_MAX`] stored bytes (always at least one), with their stored
/// bytes. Corrupt when a seq is missing or a row is under another seq.
pub fn read_batch(
    state: &dyn StateRead,
    after: u64,
    batch_max: usize,
) -> Result<Vec<StoredEvent>, StateError> {
    let rows = state.scan(keys::EVENT_PREFIX, &keys::event(after + 1), batch_max)?;
    let mut batch = Vec::with_capacity(rows.len());
    let mut bytes = 0;
    for (expected, (key, record)) in (after + 1..).zip(rows) {
        if !batch.is_empty() && AUDIT_EXPORT_BATCH_BYTES_MAX < bytes + record.len() {
            break;
        }
        let event = log::Event::decode(record.as_slice())
            .map_err(|e| StateError::corrupt(&key, format!("event does not decode: {e}")))?;
        if keys::event_seq(&key) != Some(expected) || event.seq != expected {
            return Err(StateError::corrupt(
                &key,
                format!("expected event {expected}, found event {}", event.seq),
            ));
        }
        bytes += record.len();
        batch.push(StoredEvent { event, record });
    }
    Ok(batch)
}
