use std::sync::{Arc, Mutex};

use super::*;

/// Records every attempt; refuses to answer (an unknown outcome) the first `failures` of them.
#[derive(Clone, Default)]
struct FakeRecorder {
    attempts: Arc<Mutex<Vec<log::Command>>>,
    failures: Arc<Mutex<usize>>,
}

impl FakeRecorder {
    fn failing(failures: usize) -> Self {
        let recorder = FakeRecorder::default();
        *recorder.failures.lock().expect("lock") = failures;
        recorder
    }

    fn attempts(&self) -> Vec<log::Command> {
        self.attempts.lock().expect("lock").clone()
    }

    /// The receipts of the attempts that were accepted, in commit order.
    fn committed(&self) -> Vec<String> {
        let accepted_from = *self.failures.lock().expect("lock");
        assert_eq!(accepted_from, 0, "every failure was spent");
        let mut seen_keys = std::collections::BTreeSet::new();
        let mut ids = Vec::new();
        for command in self.attempts() {
            // A retried batch is the same command: count it once, as apply would.
            if !seen_keys.insert(command.idempotency_key.clone()) {
                continue;
            }
            let Some(log::command::Kind::RecordAccessDecisions(record)) = command.kind else {
                panic!("not a receipt record: {command:?}");
            };
            ids.extend(record.decisions.into_iter().map(|it| it.decision_id));
        }
        ids
    }
}

impl Recorder for FakeRecorder {
    fn record(
        &self,
        command: log::Command,
    ) -> impl Future<Output = Result<log::Outcome, String>> + Send {
        self.attempts.lock().expect("lock").push(command);
        let mut failures = self.failures.lock().expect("lock");
        let result = if *failures > 0 {
            *failures -= 1;
            Err("outcome unknown".to_string())
        } else {
            Ok(log::Outcome {
                result: Some(log::outcome::Result::Accepted(log::Accepted::default())),
            })
        };
        std::future::ready(result)
    }
}

fn receipt(i: usize) -> log::AccessDecided {
    log::AccessDecided {
        decision_id: format!("d-{i:05}"),
        ..Default::default()
    }
}

fn ids(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| receipt(i).decision_id).collect()
}

#[tokio::test]
async fn a_full_queue_pushes_back_and_never_drops_a_receipt() {
    let (queue, drain) = queue_with(4, Duration::from_millis(20));
    for i in 0..4 {
        queue.reserve().await.expect("room").push(receipt(i));
    }
    // Full: the caller waited its bound, and is refused before deciding anything.
    let refused = queue.reserve().await.err().expect("the queue is full");
    assert_eq!(refused.reason, Reason::ReceiptQueueFull);
    assert_eq!(refused.code, Code::ResourceExhausted);

    // The drain's first two attempts have unknown outcomes: it retries until committed.
    let recorder = FakeRecorder::failing(2);
    let (stop_tx, stop_rx) = watch::channel(false);
    let task = tokio::spawn(drain.run(recorder.clone(), 7, stop_rx));
    // Room comes back once the drain takes the batch.
    let waiting = Arc::new(ReceiptQueue {
        sender: queue.sender.clone(),
        wait_max: Duration::from_secs(10),
    });
    waiting
        .reserve()
        .await
        .expect("room once drained")
        .push(receipt(4));
    // Stopping finishes the batch being retried and commits what is queued behind it.
    stop_tx.send(true).expect("drain running");
    task.await.expect("drain stopped");

    assert_eq!(recorder.committed(), ids(0..5));
    let attempts = recorder.attempts();
    assert_eq!(
        attempts[0].idempotency_key, attempts[1].idempotency_key,
        "a retry is the same command"
    );
    assert_eq!(attempts[0].request_digest, attempts[2].request_digest);
    let actor = attempts[0].actor.clone().expect("actor");
    assert_eq!(
        (actor.kind, actor.id.as_str()),
        (log::PrincipalKind::Node as i32, "7")
    );
}

#[tokio::test]
async fn batches_are_bounded_by_count_and_bytes() {
    let (queue, mut drain) = queue_with(1000, Duration::from_millis(20));
    for i in 0..600 {
        queue.reserve().await.expect("room").push(receipt(i));
    }
    let sizes: Vec<usize> = [
        drain.next_batch().await,
        drain.next_batch().await,
        drain.next_batch().await,
    ]
    .into_iter()
    .map(|batch| batch.expect("queued").len())
    .collect();
    assert_eq!(sizes, vec![256, 256, 88]);

    let big = |i: usize| log::AccessDecided {
        message: "m".repeat(100 * 1024),
        ..receipt(i)
    };
    for i in 0..7 {
        queue.reserve().await.expect("room").push(big(i));
    }
    let first = drain.next_batch().await.expect("queued");
    assert_eq!(
        first.len(),
        5,
        "five 100 KiB receipts fit 512 KiB, six do not"
    );
    let second = drain.next_batch().await.expect("queued");
    assert_eq!(
        second
            .iter()
            .map(|it| it.decision_id.clone())
            .collect::<Vec<_>>(),
        ids(5..7),
        "the receipt that did not fit starts the next batch, in order"
    );
}

#[tokio::test]
async fn stopping_commits_what_is_queued_and_counts_what_is_left() {
    let (queue, mut drain) = queue_with(16, Duration::from_millis(20));
    for i in 0..3 {
        queue.reserve().await.expect("room").push(receipt(i));
    }
    let recorder = FakeRecorder::default();
    let left = drain.finish(&recorder, 1, Duration::from_secs(10)).await;
    assert_eq!(left, 0);
    assert_eq!(recorder.committed(), ids(0..3));
    // Closed: a new ASYNC call is told the node is stopping.
    let refused = queue.reserve().await.err().expect("closed");
    assert_eq!(refused.reason, Reason::NodeStopped);

    // A recorder that never answers: the bound ends the drain and what is left is counted.
    let (queue, mut drain) = queue_with(16, Duration::from_millis(20));
    for i in 0..3 {
        queue.reserve().await.expect("room").push(receipt(i));
    }
    let never = FakeRecorder::failing(usize::MAX);
    let left = drain.finish(&never, 1, Duration::from_millis(100)).await;
    assert_eq!(left, 3);
}
