//! `Watch`: the events from a seq on, live.
//!
//! One task per stream follows the node's applied position (`RaftNode::applied_watch`, which
//! changes after every apply and snapshot install: no polling) and sends each run of new events
//! as messages of at most [`WATCH_EVENTS_PER_MESSAGE_MAX`] consecutive events, through a channel
//! of [`WATCH_BUFFER_MESSAGES`]: when the client reads slowly the task waits for room before it
//! reads further, so what a stream holds is bounded whatever the write rate. The task ends when
//! the client goes away (the channel closes) and gives its slot back (`slots`). Each message
//! starts where the last ended, so a client that resumes with `from_seq` = the last seq it
//! received + 1 sees no gap and no duplicate.

use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Request, Response, Status};
use warrant_identity::{StateError, StateRead, keys, query};
use warrant_proto::api;
use warrant_raft::AppliedPosition;

use super::slots;
use crate::{
    context::Context,
    error::{ApiError, Reason},
    limits::{WATCH_BUFFER_MESSAGES, WATCH_EVENTS_PER_MESSAGE_MAX},
    storage::storage,
};

pub type WatchStream =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<api::WatchResponse, Status>> + Send>>;

type Sender = mpsc::Sender<Result<api::WatchResponse, Status>>;

pub(super) async fn watch(
    context: &Context,
    request: Request<api::WatchRequest>,
) -> Result<Response<WatchStream>, Status> {
    context.auditor(request.metadata()).await?;
    let slot = slots::take(&context.audit_streams)?;
    let applied = context.node.applied_watch();
    let next = match request.into_inner().from_seq {
        0 => applied.borrow().seq + 1,
        from_seq => from_seq,
    };
    let (tx, rx) = mpsc::channel(WATCH_BUFFER_MESSAGES);
    let node = context.node.clone();
    tokio::spawn(async move {
        follow(move || node.reader(), applied, next, tx).await;
        drop(slot);
    });
    Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
}

/// Sends the events from `next` on as they are applied, until the client goes away, the node
/// stops, or the state cannot be read (the last two end the stream with an error).
async fn follow<R: StateRead>(
    read: impl Fn() -> R,
    mut applied: watch::Receiver<AppliedPosition>,
    mut next: u64,
    tx: Sender,
) {
    loop {
        match wait_applied(&mut applied, next, &tx).await {
            Wait::Ready => {}
            Wait::ClientGone => return,
            Wait::Stopped => {
                let stopped = ApiError::new(
                    Code::Unavailable,
                    Reason::NodeStopped,
                    "the node is stopping; resume on another node from the last seq received + 1",
                );
                let _ = tx.send(Err(stopped.into())).await;
                return;
            }
        }
        let message = match message_from(&read(), next) {
            Ok(message) => message,
            Err(e) => {
                let _ = tx.send(Err(storage(e).into())).await;
                return;
            }
        };
        let Some(last) = message.events.last() else {
            return;
        };
        next = last.seq + 1;
        // Waits for room: a slow client holds the reader here.
        if tx.send(Ok(message)).await.is_err() {
            return;
        }
    }
}

/// What waiting for the next event came to.
#[derive(Debug, PartialEq, Eq)]
enum Wait {
    /// The node applied `next`.
    Ready,
    ClientGone,
    /// The state machine is gone.
    Stopped,
}

/// Waits until the node has applied the event at `next`, or the client went away.
async fn wait_applied(
    applied: &mut watch::Receiver<AppliedPosition>,
    next: u64,
    tx: &Sender,
) -> Wait {
    loop {
        if applied.borrow_and_update().seq >= next {
            return Wait::Ready;
        }
        tokio::select! {
            _ = tx.closed() => return Wait::ClientGone,
            changed = applied.changed() => {
                if changed.is_err() {
                    return Wait::Stopped;
                }
            }
        }
    }
}

/// The next message: up to [`WATCH_EVENTS_PER_MESSAGE_MAX`] consecutive events from `next`,
/// which the node has applied. A missing event is a corrupt store, never skipped.
fn message_from(state: &dyn StateRead, next: u64) -> Result<api::WatchResponse, StateError> {
    let mut events = query::events(state, next, WATCH_EVENTS_PER_MESSAGE_MAX)?;
    let consecutive = events
        .iter()
        .zip(next..)
        .take_while(|(event, seq)| event.seq == *seq)
        .count();
    if consecutive == 0 {
        let found = events.first().map(|e| e.seq);
        return Err(StateError::corrupt(
            &keys::event(next),
            format!("event {next} is applied but not stored (next stored: {found:?})"),
        ));
    }
    events.truncate(consecutive);
    Ok(api::WatchResponse {
        events,
        applied_seq: query::applied_seq(state)?,
    })
}

#[cfg(test)]
mod tests {
    use std::{
        sync::{Arc, Mutex},
        time::Duration,
    };

    use warrant_identity::InMemoryState;
    use warrant_proto::log;

    use super::*;

    /// Events are stored as they are applied, with the last seq.
    fn append(state: &mut warrant_identity::InMemoryState, seqs: std::ops::RangeInclusive<u64>) {
        use prost::Message;
        let mut writes = warrant_identity::WriteSet::new();
        let last = *seqs.end();
        for seq in seqs {
            let event = log::Event {
                seq,
                kind: Some(log::event::Kind::TokenRevoked(log::TokenRevoked::default())),
                ..Default::default()
            };
            writes.put(keys::event(seq), event.encode_to_vec());
        }
        writes.put(keys::LAST_SEQ.to_vec(), last.to_be_bytes().to_vec());
        state.apply_writes(&writes);
    }

    /// How long a test waits for what must happen; never a sleep to hope.
    const WAIT_MAX: Duration = Duration::from_secs(10);

    struct Node {
        state: Arc<Mutex<InMemoryState>>,
        applied: watch::Sender<AppliedPosition>,
    }

    impl Node {
        fn new() -> Node {
            Node {
                state: Arc::new(Mutex::new(InMemoryState::new())),
                applied: watch::channel(AppliedPosition::default()).0,
            }
        }

        fn apply(&self, seqs: std::ops::RangeInclusive<u64>) {
            let last = *seqs.end();
            append(&mut self.state.lock().expect("lock"), seqs);
            self.applied.send_replace(AppliedPosition {
                log_index: last,
                seq: last,
            });
        }

        fn watch(
            &self,
            from: u64,
        ) -> (
            mpsc::Receiver<Result<api::WatchResponse, Status>>,
            tokio::task::JoinHandle<()>,
        ) {
            let (tx, rx) = mpsc::channel(WATCH_BUFFER_MESSAGES);
            let state = self.state.clone();
            let read = move || state.lock().expect("lock").clone();
            let task = tokio::spawn(follow(read, self.applied.subscribe(), from, tx));
            (rx, task)
        }
    }

    async fn next_seqs(rx: &mut mpsc::Receiver<Result<api::WatchResponse, Status>>) -> Vec<u64> {
        let message = tokio::time::timeout(WAIT_MAX, rx.recv())
            .await
            .expect("a message in time")
            .expect("open")
            .expect("ok");
        message.events.iter().map(|e| e.seq).collect()
    }

    #[tokio::test]
    async fn a_watcher_gets_what_is_applied_in_bounded_consecutive_messages() {
        let node = Node::new();
        let backlog = WATCH_EVENTS_PER_MESSAGE_MAX as u64 + 10;
        node.apply(1..=backlog);
        let (mut rx, task) = node.watch(1);
        let first = next_seqs(&mut rx).await;
        assert_eq!(
            first,
            (1..=WATCH_EVENTS_PER_MESSAGE_MAX as u64).collect::<Vec<_>>()
        );
        let second = next_seqs(&mut rx).await;
        assert_eq!(
            second,
            (WATCH_EVENTS_PER_MESSAGE_MAX as u64 + 1..=backlog).collect::<Vec<_>>()
        );
        // Live: what is applied later arrives, and nothing twice.
        node.apply(backlog + 1..=backlog + 3);
        assert_eq!(
            next_seqs(&mut rx).await,
            vec![backlog + 1, backlog + 2, backlog + 3]
        );
        drop(rx);
        // The client went away: the task ends, even while waiting for events.
        tokio::time::timeout(WAIT_MAX, task)
            .await
            .expect("ends")
            .expect("no panic");
    }

    #[tokio::test]
    async fn resuming_from_the_last_seq_plus_one_is_gapless() {
        let node = Node::new();
        node.apply(1..=5);
        let (mut rx, task) = node.watch(1);
        assert_eq!(next_seqs(&mut rx).await, vec![1, 2, 3, 4, 5]);
        drop(rx);
        tokio::time::timeout(WAIT_MAX, task)
            .await
            .expect("ends")
            .expect("no panic");
        node.apply(6..=8);
        let (mut rx, _task) = node.watch(6);
        assert_eq!(next_seqs(&mut rx).await, vec![6, 7, 8]);
    }

    #[tokio::test]
    async fn a_slow_client_holds_the_reader_back_within_the_buffer() {
        let node = Node::new();
        let total = WATCH_EVENTS_PER_MESSAGE_MAX as u64 * (WATCH_BUFFER_MESSAGES as u64 + 4);
        node.apply(1..=total);
        let (mut rx, _task) = node.watch(1);
        // The buffer fills and the task waits for room instead of reading on.
        let full = tokio::time::timeout(WAIT_MAX, async {
            while rx.len() < WATCH_BUFFER_MESSAGES {
                tokio::task::yield_now().await;
            }
        })
        .await;
        assert!(full.is_ok(), "the buffer fills");
        assert_eq!(
            rx.len(),
            WATCH_BUFFER_MESSAGES,
            "never more than the buffer"
        );
        let mut seen = Vec::new();
        while (seen.len() as u64) < total {
            seen.extend(next_seqs(&mut rx).await);
        }
        assert_eq!(seen, (1..=total).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn a_stopped_node_ends_the_stream_with_unavailable() {
        let node = Node::new();
        let (mut rx, task) = node.watch(1);
        drop(node);
        let ended = tokio::time::timeout(WAIT_MAX, rx.recv())
            .await
            .expect("in time")
            .expect("an error message");
        assert_eq!(ended.expect_err("stopped").code(), Code::Unavailable);
        tokio::time::timeout(WAIT_MAX, task)
            .await
            .expect("ends")
            .expect("no panic");
    }

    #[test]
    fn a_missing_applied_event_is_corruption() {
        let mut state = InMemoryState::new();
        append(&mut state, 3..=4);
        assert!(message_from(&state, 1).is_err());
        let message = message_from(&state, 3).expect("stored");
        assert_eq!(message.applied_seq, 4);
        assert_eq!(message.events.len(), 2);
    }
}
