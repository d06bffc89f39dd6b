//! The argon2 pool: a few threads of its own, a bounded queue, and a deadline per caller.
//!
//! Argon2 is slow on purpose, so secret checks must not run on tokio's blocking pool, which
//! Raft's log appends and apply also use: a flood of wrong secrets would starve them. Here a
//! check either gets a place in a short queue or is refused at once, its caller waits at most a
//! deadline, and a check all of whose callers have given up is dropped before it starts.
//!
//! Identical checks in flight (the same stored hash, the same secret digest) are folded into one
//! computation: a herd of clients presenting the same correct secret after a restart, or after
//! the cache forgot it, costs one hash.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, AtomicUsize, Ordering},
        mpsc::{self, Receiver, SyncSender, TrySendError},
    },
    time::Duration,
};

use argon2::{Argon2, PasswordHash, PasswordVerifier};
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

/// The pool's size and patience.
#[derive(Clone, Copy, Debug)]
pub struct PoolConfig {
    pub threads: usize,
    pub queue_max: usize,
    pub wait_max: Duration,
}

/// Why a check was not answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// The queue was full; nothing was queued.
    #[error("{queue_max} checks are already waiting; allowed: at most {queue_max}")]
    Busy { queue_max: usize },
    /// The check did not finish within the caller's deadline.
    #[error("the check did not finish in time; allowed: {} ms", wait_max.as_millis())]
    TimedOut { wait_max: Duration },
    /// The pool's threads are gone (a panic in argon2); it cannot answer.
    #[error("the argon2 pool has stopped")]
    Stopped,
}

/// What one check compares: the stored PHC string and the presented secret's digest.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct CheckKey {
    phc: String,
    secret_sha256: [u8; 32],
}

struct Job {
    key: CheckKey,
    secret: String,
}

/// What the callers and the threads share.
#[derive(Default)]
struct Shared {
    /// The callers waiting on each check that is queued or running.
    waiting: Mutex<HashMap<CheckKey, Vec<oneshot::Sender<bool>>>>,
    hashes_computed: HashCounter,
    /// Checks in the queue, not yet taken by a thread (the channel does not say).
    queued: AtomicUsize,
}

/// How many argon2 hashes a pool has computed since it started: a handle that outlives the
/// borrow of the pool, for tests and (later) metrics.
#[derive(Clone, Debug, Default)]
pub struct HashCounter(Arc<AtomicU64>);

impl HashCounter {
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    fn add_one(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

pub struct HashPool {
    jobs: SyncSender<Job>,
    shared: Arc<Shared>,
    config: PoolConfig,
}

impl HashPool {
    /// Starts `config.threads` (at least one) argon2 threads; they stop when the pool is dropped.
    pub fn new(config: PoolConfig) -> HashPool {
        assert!(0 < config.queue_max, "an argon2 queue needs a place");
        let (jobs, queue) = mpsc::sync_channel(config.queue_max);
        let queue = Arc::new(Mutex::new(queue));
        let shared = Arc::new(Shared::default());
        for idx in 0..config.threads.max(1) {
            let (queue, shared) = (queue.clone(), shared.clone());
            std::thread::Builder::new()
                .name(format!("argon2-{idx}"))
                .spawn(move || work(&queue, &shared))
                .expect("spawn an argon2 thread");
        }
        HashPool {
            jobs,
            shared,
            config,
        }
    }

    /// Whether `secret` matches the argon2id PHC string `phc`: one hash, shared with any identical
    /// check in flight, or a refusal when the pool is full or the deadline passes.
    pub async fn verify(&self, secret: &str, phc: &str) -> Result<bool, PoolError> {
        self.verify_within(secret, phc, self.config.wait_max).await
    }

    async fn verify_within(
        &self,
        secret: &str,
        phc: &str,
        wait_max: Duration,
    ) -> Result<bool, PoolError> {
        let key = CheckKey {
            phc: phc.to_string(),
            secret_sha256: Sha256::digest(secret.as_bytes()).into(),
        };
        let (answer, answered) = oneshot::channel();
        {
            let mut waiting = lock(&self.shared.waiting);
            if let Some(waiters) = waiting.get_mut(&key) {
                waiters.push(answer);
            } else {
                let job = Job {
                    key: key.clone(),
                    secret: secret.to_string(),
                };
                // Queued under the lock, so no thread can finish the check before it is listed.
                // Counted before it is sent, so a thread that takes it at once never counts
                // below zero.
                self.shared.queued.fetch_add(1, Ordering::Relaxed);
                let sent = self.jobs.try_send(job);
                if sent.is_err() {
                    self.shared.queued.fetch_sub(1, Ordering::Relaxed);
                }
                match sent {
                    Ok(()) => {}
                    Err(TrySendError::Full(_)) => {
                        crate::metrics::argon2_rejected();
                        return Err(PoolError::Busy {
                            queue_max: self.config.queue_max,
                        });
                    }
                    Err(TrySendError::Disconnected(_)) => return Err(PoolError::Stopped),
                }
                waiting.insert(key, vec![answer]);
            }
        }
        match tokio::time::timeout(wait_max, answered).await {
            Ok(Ok(matched)) => Ok(matched),
            Ok(Err(_)) => Err(PoolError::Stopped),
            Err(_) => Err(PoolError::TimedOut { wait_max }),
        }
    }

    /// How many argon2 hashes the pool has computed since it started.
    pub fn hashes_computed(&self) -> u64 {
        self.shared.hashes_computed.get()
    }

    /// Checks queued and not yet started: with [`HashPool::queue_capacity`], how saturated the
    /// pool is.
    pub fn queue_depth(&self) -> usize {
        self.shared.queued.load(Ordering::Relaxed)
    }

    /// The most checks the queue holds; beyond it checks are refused at once.
    pub fn queue_capacity(&self) -> usize {
        self.config.queue_max
    }

    /// The pool's hash counter, to read later.
    pub fn hash_counter(&self) -> HashCounter {
        self.shared.hashes_computed.clone()
    }
}

/// One argon2 thread: takes checks off the queue until the pool is dropped.
fn work(queue: &Mutex<Receiver<Job>>, shared: &Shared) {
    loop {
        let Ok(job) = lock(queue).recv() else {
            return;
        };
        shared.queued.fetch_sub(1, Ordering::Relaxed);
        if abandoned(shared, &job.key) {
            continue;
        }
        let matched = verify_secret(&job.secret, &job.key.phc);
        shared.hashes_computed.add_one();
        crate::metrics::argon2_hashed();
        let waiters = lock(&shared.waiting).remove(&job.key).unwrap_or_default();
        for waiter in waiters {
            // A caller that gave up meanwhile has dropped its receiver: nothing to tell it.
            let _ = waiter.send(matched);
        }
    }
}

/// Whether every caller of a queued check has given up; if so it is unlisted, unstarted.
fn abandoned(shared: &Shared, key: &CheckKey) -> bool {
    let mut waiting = lock(&shared.waiting);
    let gone = waiting
        .get(key)
        .is_none_or(|waiters| waiters.iter().all(oneshot::Sender::is_closed));
    if gone {
        waiting.remove(key);
    }
    gone
}

/// Whether `secret` matches the argon2id PHC string: one hash, slow by design.
fn verify_secret(secret: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(hash) => Argon2::default()
            .verify_password(secret.as_bytes(), &hash)
            .is_ok(),
        Err(_) => false,
    }
}

/// A lock whose holder never panics mid-update (the updates are single inserts and removes).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::auth::hash_secret;

    const SECRET: &str = "correct-horse-battery-staple";

    fn pool(threads: usize, queue_max: usize, wait_max: Duration) -> HashPool {
        HashPool::new(PoolConfig {
            threads,
            queue_max,
            wait_max,
        })
    }

    /// Waits, bounded, until the pool has computed `n` hashes.
    async fn computed(pool: &HashPool, n: u64) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while pool.hashes_computed() < n {
            assert!(
                Instant::now() < deadline,
                "{} of {n} hashes",
                pool.hashes_computed()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn a_check_is_one_hash_right_or_wrong() {
        let phc = hash_secret(SECRET).expect("hash");
        let pool = pool(1, 4, Duration::from_secs(30));
        assert_eq!(pool.verify(SECRET, &phc).await, Ok(true));
        assert_eq!(
            pool.verify("wrong-wrong-wrong-wrong-wrong", &phc).await,
            Ok(false)
        );
        assert_eq!(pool.hashes_computed(), 2);
    }

    #[tokio::test]
    async fn identical_checks_in_flight_are_one_hash() {
        let phc = hash_secret(SECRET).expect("hash");
        let pool = pool(1, 4, Duration::from_secs(30));
        let herd: Vec<_> = (0..16).map(|_| pool.verify(SECRET, &phc)).collect();
        let answers = futures::future::join_all(herd).await;
        assert!(answers.iter().all(|it| *it == Ok(true)), "{answers:?}");
        assert_eq!(pool.hashes_computed(), 1);
        // A different secret against the same hash is its own check.
        assert_eq!(
            pool.verify("another-secret-another-secret", &phc).await,
            Ok(false)
        );
        assert_eq!(pool.hashes_computed(), 2);
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once_without_hashing() {
        let phc = hash_secret(SECRET).expect("hash");
        let pool = pool(1, 1, Duration::from_secs(30));
        // Distinct secrets, so nothing folds: one runs, one waits, the rest find the queue full.
        let secrets: Vec<String> = (0..8).map(|idx| format!("{SECRET}-{idx}")).collect();
        let checks: Vec<_> = secrets.iter().map(|it| pool.verify(it, &phc)).collect();
        let answers = futures::future::join_all(checks).await;
        let busy = answers
            .iter()
            .filter(|it| **it == Err(PoolError::Busy { queue_max: 1 }))
            .count();
        let answered = answers.iter().filter(|it| **it == Ok(false)).count();
        assert_eq!(busy + answered, 8, "{answers:?}");
        assert!(6 <= busy, "{answers:?}");
        assert_eq!(pool.hashes_computed(), answered as u64);
    }

    #[tokio::test]
    async fn a_caller_past_its_deadline_is_refused_and_its_check_is_dropped_unstarted() {
        let phc = hash_secret(SECRET).expect("hash");
        let pool = pool(1, 4, Duration::from_secs(30));
        // The first check holds the only thread; the second waits behind it past its deadline.
        let (first, second) = tokio::join!(
            pool.verify(SECRET, &phc),
            pool.verify_within(
                "impatient-impatient-impatient",
                &phc,
                Duration::from_micros(1)
            ),
        );
        assert_eq!(first, Ok(true));
        assert_eq!(
            second,
            Err(PoolError::TimedOut {
                wait_max: Duration::from_micros(1)
            })
        );
        assert_eq!(
            second.expect_err("timed out").to_string(),
            "the check did not finish in time; allowed: 0 ms"
        );
        // The thread has moved on past the abandoned check: a third is answered, and only the
        // first and third were hashed.
        assert_eq!(pool.verify(SECRET, &phc).await, Ok(true));
        computed(&pool, 2).await;
        assert_eq!(pool.hashes_computed(), 2);
    }
}
