//! Shared read-index rounds: concurrent LINEARIZABLE reads share one leadership check.
//!
//! A round is one confirmation that this node's view is current (on the leader, a heartbeat
//! quorum through openraft's `get_read_log_id`; on a follower, one `ReadIndex` RPC to the
//! leader). Like etcd's linearizable read loop, a read never joins a round that is already in
//! flight: that round may have fixed its read index before the read's write was acknowledged,
//! so its answer could be stale for that read. A read waits for the *next* round, which starts
//! only after it arrived, and every read waiting for that round gets its result, error or
//! index. At most one round is in flight per batcher, so K concurrent reads cost at most two
//! rounds instead of K.
//!
//! The round runs in its own task, so a caller that gives up (its deadline passed, its request
//! was cancelled) never abandons the round for the others; retrying is each caller's business.

use std::{future::Future, pin::Pin, sync::Arc, sync::Mutex};

use tokio::sync::oneshot;

use crate::error::ReadError;

/// Reads waiting for a read index, in the round in flight and the next one together. Each
/// waiter is a small channel, so memory is not the concern; the bound keeps a node that cannot
/// confirm its leadership from collecting reads without limit while every one of them would
/// wait out `read_wait_max`. It matches the proposal queue (`QUEUE_LEN_MAX`): a node accepts
/// as many reads waiting as commands waiting for a batch.
pub const READ_INDEX_WAITERS_MAX: usize = 16_384;

/// One round's answer: the read index, or why it could not be confirmed.
pub type RoundResult = Result<u64, ReadError>;
/// A round in progress.
pub type RoundFuture = Pin<Box<dyn Future<Output = RoundResult> + Send>>;
/// Starts a round. Called once per round, never while another round of this batcher runs.
pub type RoundFn = Box<dyn Fn() -> RoundFuture + Send + Sync>;

/// Why a read got no index from the batcher.
#[derive(Debug)]
pub enum WaitError {
    /// [`READ_INDEX_WAITERS_MAX`] (or the batcher's own bound) reads are already waiting.
    Full { waiters_max: usize },
    /// The round this read waited for failed; every waiter of that round gets the same error.
    Round(ReadError),
}

/// Shares read-index rounds between concurrent callers. Cheap to clone.
#[derive(Clone)]
pub struct ReadIndexBatcher {
    shared: Arc<Shared>,
}

struct Shared {
    round: RoundFn,
    waiters_max: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Whether a task is running rounds. It runs them back to back while reads keep waiting.
    running: bool,
    /// Waiters of the round in flight (they were taken out of `next` when it started).
    in_flight: usize,
    /// Waiters of the next round: they all arrived after the round in flight started.
    next: Vec<oneshot::Sender<RoundResult>>,
}

impl ReadIndexBatcher {
    pub fn new(round: RoundFn) -> Self {
        Self::with_waiters_max(round, READ_INDEX_WAITERS_MAX)
    }

    pub fn with_waiters_max(round: RoundFn, waiters_max: usize) -> Self {
        ReadIndexBatcher {
            shared: Arc::new(Shared {
                round,
                waiters_max,
                state: Mutex::new(State::default()),
            }),
        }
    }

    /// The read index of the first round that starts after this call. Must run inside a tokio
    /// runtime (a round runs in a task of its own).
    pub async fn read_index(&self) -> Result<u64, WaitError> {
        let (tx, rx) = oneshot::channel();
        let start_runner = {
            let mut state = self.shared.lock();
            if state.in_flight + state.next.len() >= self.shared.waiters_max {
                return Err(WaitError::Full {
                    waiters_max: self.shared.waiters_max,
                });
            }
            state.next.push(tx);
            !std::mem::replace(&mut state.running, true)
        };
        if start_runner {
            tokio::spawn(run_rounds(self.shared.clone()));
        }
        match rx.await {
            Ok(result) => result.map_err(WaitError::Round),
            // The runner went away without answering: it panicked (see `Runner`'s drop).
            Err(_) => Err(WaitError::Round(ReadError::Stopped(
                "the read index round ended without an answer".to_string(),
            ))),
        }
    }

    /// Reads waiting for a round that has not started yet.
    #[cfg(test)]
    fn waiting_next(&self) -> usize {
        self.shared.lock().next.len()
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is a counter and a list of channels; a panic elsewhere leaves it usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Runs rounds while reads wait for one, then stops; the next read starts a new runner.
async fn run_rounds(shared: Arc<Shared>) {
    let runner = Runner(shared);
    loop {
        let waiters = {
            let mut state = runner.0.lock();
            if state.next.is_empty() {
                state.running = false;
                state.in_flight = 0;
                return;
            }
            state.in_flight = state.next.len();
            std::mem::take(&mut state.next)
        };
        // Every waiter taken above arrived before this round starts.
        let result = (runner.0.round)().await;
        for waiter in waiters {
            // A waiter that gave up has dropped its receiver; the others still get the answer.
            let _ = waiter.send(result.clone());
        }
    }
}

/// Resets the batcher if a round panics, so later reads start afresh instead of waiting for a
/// runner that is gone. The waiters of the lost rounds see their channel closed.
struct Runner(Arc<Shared>);

impl Drop for Runner {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let mut state = self.0.lock();
            state.running = false;
            state.in_flight = 0;
            state.next.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use tokio::sync::mpsc;

    use super::*;

    /// A round the test answers by hand: the batcher's round function reports each round it
    /// starts (with its number, from 1) and waits for the test's answer.
    struct Rounds {
        started: mpsc::UnboundedReceiver<(u64, oneshot::Sender<RoundResult>)>,
    }

    impl Rounds {
        fn batcher(waiters_max: usize) -> (ReadIndexBatcher, Rounds) {
            let (started_tx, started) = mpsc::unbounded_channel();
            let count = Arc::new(AtomicU64::new(0));
            let round: RoundFn = Box::new(move || {
                let n = count.fetch_add(1, Ordering::SeqCst) + 1;
                let (answer_tx, answer_rx) = oneshot::channel();
                let sent = started_tx.send((n, answer_tx));
                Box::pin(async move {
                    assert!(sent.is_ok(), "the test stopped listening");
                    answer_rx.await.unwrap_or_else(|_| {
                        Err(ReadError::Stopped("test dropped the round".to_string()))
                    })
                })
            });
            (
                ReadIndexBatcher::with_waiters_max(round, waiters_max),
                Rounds { started },
            )
        }

        async fn next_round(&mut self) -> (u64, oneshot::Sender<RoundResult>) {
            self.started.recv().await.expect("the batcher is alive")
        }

        fn no_round_started(&mut self) -> bool {
            self.started.try_recv().is_err()
        }
    }

    fn spawn_read(batcher: &ReadIndexBatcher) -> tokio::task::JoinHandle<Result<u64, WaitError>> {
        let batcher = batcher.clone();
        tokio::spawn(async move { batcher.read_index().await })
    }

    /// Lets spawned reads run until `n` of them wait for the next round. Bounded: the reads
    /// need a few polls, not thousands.
    async fn until_waiting(batcher: &ReadIndexBatcher, n: usize) {
        for _ in 0..10_000 {
            if batcher.waiting_next() == n {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!(
            "expected {n} reads waiting, found {}",
            batcher.waiting_next()
        );
    }

    #[tokio::test]
    async fn a_read_arriving_during_a_round_gets_the_next_round() {
        let (batcher, mut rounds) = Rounds::batcher(READ_INDEX_WAITERS_MAX);
        let early = spawn_read(&batcher);
        let (n, answer_first) = rounds.next_round().await;
        assert_eq!(n, 1);
        // Round 1 is in flight: this read must not share its answer.
        let late = spawn_read(&batcher);
        until_waiting(&batcher, 1).await;
        answer_first.send(Ok(10)).expect("round 1 waits");
        assert_eq!(early.await.expect("task").expect("index"), 10);
        let (n, answer_second) = rounds.next_round().await;
        assert_eq!(n, 2, "the late read started a round of its own");
        answer_second.send(Ok(11)).expect("round 2 waits");
        assert_eq!(late.await.expect("task").expect("index"), 11);
    }

    #[tokio::test]
    async fn concurrent_waiters_share_one_round() {
        const READS: usize = 50;
        let (batcher, mut rounds) = Rounds::batcher(READ_INDEX_WAITERS_MAX);
        let first = spawn_read(&batcher);
        let (_, answer_first) = rounds.next_round().await;
        let reads: Vec<_> = (0..READS).map(|_| spawn_read(&batcher)).collect();
        until_waiting(&batcher, READS).await;
        answer_first.send(Ok(1)).expect("round 1 waits");
        assert_eq!(first.await.expect("task").expect("index"), 1);
        let (n, answer_shared) = rounds.next_round().await;
        assert_eq!(n, 2);
        answer_shared.send(Ok(7)).expect("round 2 waits");
        for read in reads {
            assert_eq!(read.await.expect("task").expect("index"), 7);
        }
        assert!(rounds.no_round_started(), "{READS} reads needed one round");
    }

    #[tokio::test]
    async fn an_error_reaches_every_waiter_and_the_next_round_is_fresh() {
        let (batcher, mut rounds) = Rounds::batcher(READ_INDEX_WAITERS_MAX);
        let first = spawn_read(&batcher);
        let (_, answer_first) = rounds.next_round().await;
        let reads: Vec<_> = (0..3).map(|_| spawn_read(&batcher)).collect();
        until_waiting(&batcher, 3).await;
        answer_first.send(Ok(1)).expect("round 1 waits");
        first.await.expect("task").expect("index");
        let (_, answer_failing) = rounds.next_round().await;
        answer_failing
            .send(Err(ReadError::NoQuorum("two voters down".to_string())))
            .expect("round 2 waits");
        for read in reads {
            match read.await.expect("task") {
                Err(WaitError::Round(ReadError::NoQuorum(why))) => {
                    assert_eq!(why, "two voters down")
                }
                other => panic!("expected the round's error, got {other:?}"),
            }
        }
        // The failure is not remembered: a later read gets a new round and its answer.
        let retry = spawn_read(&batcher);
        let (n, answer_retry) = rounds.next_round().await;
        assert_eq!(n, 3);
        answer_retry.send(Ok(42)).expect("round 3 waits");
        assert_eq!(retry.await.expect("task").expect("index"), 42);
    }

    #[tokio::test]
    async fn reads_beyond_the_waiter_bound_are_refused() {
        let (batcher, mut rounds) = Rounds::batcher(3);
        let in_flight = spawn_read(&batcher);
        let (_, answer_first) = rounds.next_round().await;
        let waiting: Vec<_> = (0..2).map(|_| spawn_read(&batcher)).collect();
        until_waiting(&batcher, 2).await;
        // One read in the round in flight and two waiting for the next: the bound of 3.
        match batcher.read_index().await {
            Err(WaitError::Full { waiters_max }) => assert_eq!(waiters_max, 3),
            other => panic!("expected Full, got {other:?}"),
        }
        assert_eq!(batcher.waiting_next(), 2, "the refused read left no waiter");
        answer_first.send(Ok(1)).expect("round 1 waits");
        in_flight.await.expect("task").expect("index");
        let (_, answer_second) = rounds.next_round().await;
        // Round 2 holds two waiters; one more fits again.
        let admitted = spawn_read(&batcher);
        until_waiting(&batcher, 1).await;
        answer_second.send(Ok(2)).expect("round 2 waits");
        for read in waiting {
            assert_eq!(read.await.expect("task").expect("index"), 2);
        }
        let (_, answer_third) = rounds.next_round().await;
        answer_third.send(Ok(3)).expect("round 3 waits");
        assert_eq!(admitted.await.expect("task").expect("index"), 3);
    }

    #[tokio::test]
    async fn a_panicking_round_fails_its_waiters_and_later_reads_start_afresh() {
        let count = Arc::new(AtomicU64::new(0));
        let counter = count.clone();
        let round: RoundFn = Box::new(move || {
            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
            Box::pin(async move {
                assert_ne!(n, 1, "round 1 panics");
                Ok(n)
            })
        });
        let batcher = ReadIndexBatcher::new(round);
        match batcher.read_index().await {
            Err(WaitError::Round(ReadError::Stopped(_))) => {}
            other => panic!("expected Stopped, got {other:?}"),
        }
        assert_eq!(batcher.read_index().await.expect("index"), 2);
        assert_eq!(count.load(Ordering::SeqCst), 2);
    }
}
