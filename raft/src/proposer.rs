//! Group commit: concurrent commands share one Raft entry.
//!
//! openraft 0.9 fsyncs once per `client_write`, so throughput comes from putting many commands
//! in one entry. The proposer drains whatever commands are queued (up to a count and a byte
//! limit), stamps the batch with the leader's clock (never below the last applied stamp, and
//! never far ahead of what its monotonic clock vouches for: [`crate::stamp`]), and
//! hands it to Raft in order. At most [`BATCHES_IN_FLIGHT_MAX`] batches are outstanding: while
//! one is being fsynced and replicated the next one fills up, so the batch size follows the load
//! without any timer.
//!
//! A batch holds its slot until its outcome is back or the leadership it was proposed under
//! ends, whichever comes first; its callers wait for the outcome at most
//! [`PROPOSE_WAIT_MAX`]. openraft 0.9.25 can leave a former leader's write unanswered for good:
//! when a snapshot past the node's last entry catches it up, the entries it appended as leader
//! are purged without their responders being told (openraft#1761, fixed in 0.10). A slot held
//! until the outcome would stay taken, and once the node led again it would commit nothing.

use std::{
    sync::{Arc, atomic::AtomicU64},
    time::{Instant, SystemTime, UNIX_EPOCH},
};

use openraft::{Vote, error::ClientWriteError, raft::ClientWriteResult};
use prost::Message;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot, watch};
use tracing::Instrument as _;
use warrant_proto::log;

use crate::{
    error::ProposeError,
    limits::{PROPOSE_WAIT_MAX, QUEUE_LEN_MAX},
    stamp::Stamper,
    state_machine::StateMachineStore,
    types::{BatchPayload, MemberNode, NodeId, Raft, TypeConfig},
};

/// Commands per Raft entry.
pub const BATCH_COMMANDS_MAX: usize = 1024;
/// Encoded bytes of commands per Raft entry, unless the entry holds one command: a command
/// alone is never refused for its size here (the API bounds requests far below this). With the
/// batch's stamp, an entry stays within `limits::APPEND_ENTRIES_BYTES_MAX`, so any entry can be
/// replicated.
pub const BATCH_BYTES_MAX: usize = 1024 * 1024;
/// Batches handed to Raft and not yet answered.
pub const BATCHES_IN_FLIGHT_MAX: usize = 2;

/// A committed command's result.
#[derive(Clone, Debug)]
pub struct Proposal {
    pub outcome: log::Outcome,
    /// The Raft log index of the entry that carried the command.
    pub log_index: u64,
    /// The batch's stamp: the time apply saw.
    pub batch_time_ms: u64,
}

struct Pending {
    command: log::Command,
    reply: oneshot::Sender<Result<Proposal, ProposeError>>,
    /// The proposing caller's span: its batch's replication wait is traced under it.
    span: tracing::Span,
}

// Every batch in flight can be traced through its apply.
const _: () = assert!(BATCHES_IN_FLIGHT_MAX <= crate::apply_trace::TRACED_BATCHES_MAX);

/// The handle API code proposes through. Cheap to clone.
#[derive(Clone)]
pub struct Proposer {
    queue: mpsc::Sender<Pending>,
}

impl Proposer {
    /// Starts the proposer; `stamps_bounded` counts batches whose stamp was bounded because
    /// the wall clock was too far ahead.
    pub(crate) fn spawn(raft: Raft, sm: StateMachineStore, stamps_bounded: Arc<AtomicU64>) -> Self {
        let (queue, receiver) = mpsc::channel(QUEUE_LEN_MAX);
        tokio::spawn(run(raft, sm, receiver, Stamper::new(stamps_bounded)));
        Proposer { queue }
    }

    /// The queue's depth, for the metrics sampler, without keeping the queue open.
    pub(crate) fn queue_probe(&self) -> crate::metrics::QueueProbe {
        let queue = self.queue.downgrade();
        crate::metrics::QueueProbe::new(move || {
            queue
                .upgrade()
                .map(|queue| queue.max_capacity() - queue.capacity())
                .unwrap_or(0)
        })
    }

    /// Proposes one command and waits until it is committed and applied on this node.
    pub async fn propose(&self, command: log::Command) -> Result<Proposal, ProposeError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .try_send(Pending {
                command,
                reply,
                span: tracing::Span::current(),
            })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => ProposeError::Overloaded {
                    queue_len_max: QUEUE_LEN_MAX,
                },
                mpsc::error::TrySendError::Closed(_) => {
                    ProposeError::Stopped("proposer stopped".to_string())
                }
            })?;
        answer
            .await
            .map_err(|_| ProposeError::Indeterminate("proposer dropped the command".to_string()))?
    }
}

async fn run(
    raft: Raft,
    sm: StateMachineStore,
    mut receiver: mpsc::Receiver<Pending>,
    mut stamper: Stamper,
) {
    let in_flight = Arc::new(Semaphore::new(BATCHES_IN_FLIGHT_MAX));
    // A command that would have taken its batch past `BATCH_BYTES_MAX` starts the next one.
    let mut carried: Option<Pending> = None;
    loop {
        let first = match carried.take() {
            Some(first) => first,
            None => match receiver.recv().await {
                Some(first) => first,
                None => break,
            },
        };
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            break;
        };
        let (pending, next) = fill_batch(first, &mut receiver);
        carried = next;
        crate::metrics::batch_proposed(pending.len());
        // The stamp never goes backwards, not even across a leader change to a node whose clock
        // is behind: it is at least the last stamp this node applied. Nor far forwards.
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let applied_stamp_ms = sm.last_batch_time_ms().unwrap_or(0);
        let stamp_ms = stamper.next(now_ms, Instant::now(), applied_stamp_ms);
        let span = replication_wait_span(&pending);
        let (commands, replies): (Vec<_>, Vec<_>) =
            pending.into_iter().map(|p| (p.command, p.reply)).unzip();
        let batch = log::Batch {
            time_unix_ms: stamp_ms,
            commands,
        };
        let payload = batch.encode_to_vec();
        let traced = sm.traces().register(&payload, &span);
        let mut metrics = raft.metrics();
        let proposed_under = metrics.borrow().vote;
        let receiver_of_result = match raft
            .client_write_ff(BatchPayload(payload))
            .instrument(span.clone())
            .await
        {
            Ok(receiver_of_result) => receiver_of_result,
            Err(fatal) => {
                fail_all(replies, || ProposeError::Stopped(fatal.to_string()));
                break;
            }
        };
        let answered = async move {
            let slot = BatchSlot {
                _permit: permit,
                _traced: traced,
            };
            let outcome = wait_for_outcome(receiver_of_result, slot, &mut metrics, proposed_under);
            answer_outcome(replies, outcome.await, stamp_ms);
        };
        tokio::spawn(answered.instrument(span));
    }
    tracing::info!("proposer stopped");
}

/// Tells a batch's callers its outcome (`None`: none came within [`PROPOSE_WAIT_MAX`]).
fn answer_outcome<E>(
    replies: Vec<oneshot::Sender<Result<Proposal, ProposeError>>>,
    outcome: Option<Result<ClientWriteResult<TypeConfig>, E>>,
    stamp_ms: u64,
) {
    match outcome {
        None => fail_all(replies, || {
            ProposeError::Indeterminate(format!(
                "no outcome from Raft within {} ms; retry with the same idempotency key",
                PROPOSE_WAIT_MAX.as_millis()
            ))
        }),
        Some(Ok(Ok(response))) => {
            tracing::Span::current().record("log_index", response.log_id.index);
            answer_all(replies, &response.data.0, response.log_id.index, stamp_ms)
        }
        Some(Ok(Err(ClientWriteError::ForwardToLeader(forward)))) => {
            fail_all(replies, || ProposeError::NotLeader {
                leader_id: forward.leader_id,
                leader_addr: forward.leader_node.as_ref().map(|n| n.addr.clone()),
            })
        }
        Some(Ok(Err(e))) => fail_all(replies, || ProposeError::Indeterminate(e.to_string())),
        Some(Err(_)) => fail_all(replies, || {
            ProposeError::Indeterminate("raft dropped the write".to_string())
        }),
    }
}

/// What a batch in flight holds: one of the [`BATCHES_IN_FLIGHT_MAX`] slots, and its apply trace.
struct BatchSlot {
    _permit: OwnedSemaphorePermit,
    _traced: Option<crate::apply_trace::Registered>,
}

type RaftMetricsReceiver = watch::Receiver<openraft::RaftMetrics<NodeId, MemberNode>>;

/// The batch's outcome, or `None` after [`PROPOSE_WAIT_MAX`]. `slot` is given back as soon as
/// the outcome is in or the leadership under `proposed_under` has ended: a batch that leadership
/// no longer carries must not keep the next leadership's batches out (see the module comment).
/// Its outcome is still waited for: a former leader's entry can commit under the next leader,
/// and openraft then answers here.
async fn wait_for_outcome<Outcome>(
    outcome: impl Future<Output = Outcome>,
    slot: BatchSlot,
    metrics: &mut RaftMetricsReceiver,
    proposed_under: Vote<NodeId>,
) -> Option<Outcome> {
    let deadline = tokio::time::sleep(PROPOSE_WAIT_MAX);
    tokio::pin!(outcome, deadline);
    let mut slot = Some(slot);
    loop {
        tokio::select! {
            result = &mut outcome => return Some(result),
            () = &mut deadline => return None,
            () = leadership_ended(metrics, proposed_under), if slot.is_some() => slot = None,
        }
    }
}

/// Returns once this node no longer leads under `vote` (or Raft has stopped).
async fn leadership_ended(metrics: &mut RaftMetricsReceiver, vote: Vote<NodeId>) {
    let _stopped = metrics
        .wait_for(|m| m.vote != vote || m.current_leader != Some(m.id))
        .await;
}

/// The span of one batch from its hand-over to Raft until its outcome is back (appended,
/// replicated to a quorum, committed and applied here): a child of the first command's span,
/// following from the others'.
fn replication_wait_span(pending: &[Pending]) -> tracing::Span {
    let Some(first) = pending.first() else {
        return tracing::Span::none();
    };
    let span = tracing::info_span!(
        parent: &first.span,
        "raft.replication_wait",
        commands = pending.len(),
        log_index = tracing::field::Empty,
    );
    for other in &pending[1..] {
        span.follows_from(&other.span);
    }
    span
}

/// `first` and the commands queued behind it, up to [`BATCH_COMMANDS_MAX`] and
/// [`BATCH_BYTES_MAX`]; and the command that did not fit, if one was taken from the queue.
fn fill_batch(
    first: Pending,
    receiver: &mut mpsc::Receiver<Pending>,
) -> (Vec<Pending>, Option<Pending>) {
    let mut n_bytes = batch_bytes(&first.command);
    let mut pending = vec![first];
    while pending.len() < BATCH_COMMANDS_MAX {
        let Ok(next) = receiver.try_recv() else { break };
        let next_bytes = batch_bytes(&next.command);
        if BATCH_BYTES_MAX < n_bytes + next_bytes {
            return (pending, Some(next));
        }
        n_bytes += next_bytes;
        pending.push(next);
    }
    (pending, None)
}

/// What `command` adds to its batch's encoding: the command, its field tag and its length.
fn batch_bytes(command: &log::Command) -> usize {
    let len = command.encoded_len();
    1 + prost::length_delimiter_len(len) + len
}

fn answer_all(
    replies: Vec<oneshot::Sender<Result<Proposal, ProposeError>>>,
    response: &[u8],
    log_index: u64,
    batch_time_ms: u64,
) {
    let outcomes = match log::BatchOutcomes::decode(response) {
        Ok(decoded) if decoded.outcomes.len() == replies.len() => decoded.outcomes,
        other => {
            // Invariant: apply returns one outcome per command. Breaking it is a bug, reported
            // to every waiting caller rather than guessed around.
            tracing::error!(log_index, decoded = ?other.map(|d| d.outcomes.len()), expected = replies.len(), "outcome count mismatch");
            fail_all(replies, || {
                ProposeError::Indeterminate("outcome count mismatch".to_string())
            });
            return;
        }
    };
    for (reply, outcome) in replies.into_iter().zip(outcomes) {
        // A caller that gave up (deadline) no longer listens; its command still committed.
        let _ = reply.send(Ok(Proposal {
            outcome,
            log_index,
            batch_time_ms,
        }));
    }
}

fn fail_all(
    replies: Vec<oneshot::Sender<Result<Proposal, ProposeError>>>,
    error: impl Fn() -> ProposeError,
) {
    for reply in replies {
        let _ = reply.send(Err(error()));
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use openraft::RaftMetrics;

    use super::*;

    const WAIT_MAX: Duration = Duration::from_secs(10);
    /// Scheduler turns given to the waiting task (on the current-thread runtime each runs it
    /// until it waits again): far more than it needs to see a metrics change.
    const TURNS: usize = 10;

    type Metrics = RaftMetrics<NodeId, MemberNode>;
    /// How a leadership ends, and the metrics change that says so.
    type Ending = (&'static str, fn(&mut Metrics));

    fn leading(id: NodeId, term: u64) -> Metrics {
        let mut metrics = RaftMetrics::new_initial(id);
        metrics.vote = Vote::new_committed(term, id);
        metrics.current_leader = Some(id);
        metrics
    }

    struct Waiting {
        slots: Arc<Semaphore>,
        metrics: watch::Sender<Metrics>,
        outcome: oneshot::Sender<u32>,
        task: tokio::task::JoinHandle<Option<Result<u32, oneshot::error::RecvError>>>,
    }

    /// A batch proposed by node 1 leading in term 2, waiting for its outcome in a slot of one.
    fn waiting() -> Waiting {
        let slots = Arc::new(Semaphore::new(1));
        let slot = BatchSlot {
            _permit: slots.clone().try_acquire_owned().expect("a free slot"),
            _traced: None,
        };
        let (metrics, mut receiver) = watch::channel(leading(1, 2));
        let proposed_under = receiver.borrow().vote;
        let (outcome, outcome_receiver) = oneshot::channel();
        let task = tokio::spawn(async move {
            wait_for_outcome(outcome_receiver, slot, &mut receiver, proposed_under).await
        });
        Waiting {
            slots,
            metrics,
            outcome,
            task,
        }
    }

    async fn give_turns() {
        for _ in 0..TURNS {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn the_slot_is_given_back_when_the_leadership_ends_and_the_outcome_still_awaited() {
        let endings: [Ending; 3] = [
            ("a vote for a higher term", |m| {
                m.vote = Vote::new(3, 2);
                m.current_leader = None;
            }),
            ("another leader", |m| {
                m.vote = Vote::new_committed(3, 2);
                m.current_leader = Some(2);
            }),
            ("no leader known", |m| m.current_leader = None),
        ];
        for (ending, change) in endings {
            let waiting = waiting();
            waiting.metrics.send_modify(change);
            let slot = tokio::time::timeout(WAIT_MAX, waiting.slots.clone().acquire_owned())
                .await
                .unwrap_or_else(|_| panic!("{ending}: the slot was kept"));
            drop(slot);
            give_turns().await;
            assert!(
                !waiting.task.is_finished(),
                "{ending}: stopped waiting for the outcome"
            );
            waiting.outcome.send(7).expect("still listening");
            let answer = waiting.task.await.expect("the task");
            assert!(matches!(answer, Some(Ok(7))), "{ending}: {answer:?}");
        }
    }

    #[tokio::test]
    async fn the_slot_is_given_back_when_raft_stops() {
        let waiting = waiting();
        drop(waiting.metrics);
        let slot = tokio::time::timeout(WAIT_MAX, waiting.slots.clone().acquire_owned()).await;
        assert!(slot.is_ok(), "the slot was kept after Raft stopped");
    }

    #[tokio::test]
    async fn the_slot_is_kept_while_the_leadership_lasts() {
        let waiting = waiting();
        waiting.metrics.send_modify(|m| m.current_term = 2);
        give_turns().await;
        assert_eq!(
            waiting.slots.available_permits(),
            0,
            "the slot was given back"
        );
        waiting.outcome.send(7).expect("still listening");
        let answer = waiting.task.await.expect("the task");
        assert!(matches!(answer, Some(Ok(7))), "{answer:?}");
        assert_eq!(
            waiting.slots.available_permits(),
            1,
            "the slot was not given back"
        );
    }
}
