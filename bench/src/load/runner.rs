//! The closed and open loops.
//!
//! Both share one timeline: a warm-up, whose calls run but are not recorded, then the measured
//! stretch. A call belongs to the stretch its (intended) start falls in.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::{task::JoinSet, time::Instant};
use tonic::transport::Channel;

use super::{
    recorder::Recorder,
    report::{Latency, RunResult, cdf},
    spec::{Arrival, LoadSpec, Operation},
};

/// How far past its intended time an open-loop arrival may start and still count as on time.
/// Tokio's timer wakes sleepers on a 1 ms tick, so up to this much lateness is the generator's
/// own timer, not a busy server; such an arrival is timed from its actual start. Any later and
/// every worker was busy: the arrival counts as late and is timed from its intended start.
pub const LATE_TOLERANCE: Duration = Duration::from_millis(1);
/// How early an open-loop arrival may start. Tokio's timer has a 1 ms tick and wakes a sleeper
/// on the first tick at or after its deadline, so a worker sleeping until the exact intended time
/// would wake up to a tick late, and at rates above 1000/s each worker would manage one arrival
/// per tick. Instead a worker sleeps only until this much before the intended time, and an
/// arrival due sooner than this starts at once: arrivals are released with 1 ms resolution, and
/// the rate over any longer stretch is exact.
pub const EARLY_RELEASE: Duration = Duration::from_millis(1);
/// Most workers one run may start: each is a task holding a request in flight.
pub const CONCURRENCY_MAX: usize = 100_000;

/// When the measured stretch begins and ends.
#[derive(Clone, Copy, Debug)]
struct Window {
    start: Instant,
    end: Instant,
}

impl Window {
    fn contains(&self, at: Instant) -> bool {
        self.start <= at && at < self.end
    }
}

/// Runs `op` per `spec` over `channels` (worker i uses channels[i % len]); warm-up calls are not
/// recorded.
///
/// # Panics
/// When `channels` is empty, `spec.concurrency` is 0 or above [`CONCURRENCY_MAX`], or an open
/// loop's rate is not a positive finite number: each is a mistake of the caller's, not a result.
pub async fn run(
    label: &str,
    channels: &[Channel],
    op: Arc<dyn Operation>,
    spec: &LoadSpec,
) -> RunResult {
    assert!(
        !channels.is_empty(),
        "a load run needs at least one channel"
    );
    assert!(
        (1..=CONCURRENCY_MAX).contains(&spec.concurrency),
        "concurrency {} is outside 1 to {CONCURRENCY_MAX}",
        spec.concurrency
    );
    let begin = Instant::now();
    let window = Window {
        start: begin + spec.warmup,
        end: begin + spec.warmup + spec.measure,
    };
    let schedule = match spec.arrival {
        Arrival::Closed => None,
        Arrival::Open { per_second } => Some(Arc::new(Schedule::new(begin, per_second))),
    };
    let mut workers = JoinSet::new();
    for worker in 0..spec.concurrency {
        let channel = channels[worker % channels.len()].clone();
        let op = Arc::clone(&op);
        match &schedule {
            None => workers.spawn(closed_worker(channel, op, worker, window)),
            Some(schedule) => {
                let schedule = Arc::clone(schedule);
                workers.spawn(open_worker(channel, op, worker, window, schedule))
            }
        };
    }
    let mut total = Recorder::new();
    while let Some(joined) = workers.join_next().await {
        total.merge(joined.expect("a load worker panicked"));
    }
    let missed = schedule.map_or(0, |schedule| {
        schedule
            .due_in(window)
            .saturating_sub(total.ops + total.errors)
    });
    result(label, spec, window, &total, missed)
}

fn result(
    label: &str,
    spec: &LoadSpec,
    window: Window,
    total: &Recorder,
    missed: u64,
) -> RunResult {
    let until = total
        .last_done
        .map_or(window.end, |done| done.max(window.end));
    let seconds = until.duration_since(window.start).as_secs_f64();
    RunResult {
        label: label.to_string(),
        arrival: spec.arrival.label(),
        concurrency: spec.concurrency,
        connections: spec.connections,
        ops: total.ops,
        errors: total.errors,
        first_error: total.first_error().map(str::to_string),
        seconds,
        per_second: if seconds > 0.0 {
            total.ops as f64 / seconds
        } else {
            0.0
        },
        latency_us: Latency::of(total),
        cdf_us: cdf(total),
        late: total.late,
        missed,
    }
}

/// Back-to-back calls until the measured stretch ends.
async fn closed_worker(
    channel: Channel,
    op: Arc<dyn Operation>,
    worker: usize,
    window: Window,
) -> Recorder {
    let mut recorder = Recorder::new();
    for n in 0.. {
        let started = Instant::now();
        if started >= window.end {
            break;
        }
        let result = op.call(&channel, worker, n).await;
        if window.contains(started) {
            recorder.record(result, started, Instant::now());
        }
    }
    recorder
}

/// Takes the next due arrival, waits for its time, calls; until arrivals fall past the measured
/// stretch, or the stretch has ended with arrivals still waiting (those are `missed`).
async fn open_worker(
    channel: Channel,
    op: Arc<dyn Operation>,
    worker: usize,
    window: Window,
    schedule: Arc<Schedule>,
) -> Recorder {
    let mut recorder = Recorder::new();
    for n in 0.. {
        let intended = schedule.at(schedule.claim());
        if intended >= window.end || Instant::now() >= window.end {
            break;
        }
        if let Some(wake) = intended.checked_sub(EARLY_RELEASE) {
            tokio::time::sleep_until(wake).await;
        }
        let started = Instant::now();
        let late = started.saturating_duration_since(intended) > LATE_TOLERANCE;
        let result = op.call(&channel, worker, n).await;
        if window.contains(intended) {
            recorder.late += u64::from(late);
            // Late: charged for the wait. Otherwise timed from its actual start, which may be
            // up to EARLY_RELEASE before the intended one.
            let from = if late { intended } else { started };
            recorder.record(result, from, Instant::now());
        }
    }
    recorder
}

/// The open loop's timeline: arrival `k` is due `k / rate` seconds after the start. Workers
/// claim arrivals in order from one counter.
#[derive(Debug)]
struct Schedule {
    begin: Instant,
    nanos_per_arrival: f64,
    next: AtomicU64,
}

impl Schedule {
    fn new(begin: Instant, per_second: f64) -> Schedule {
        assert!(
            per_second.is_finite() && per_second > 0.0,
            "an open loop's rate must be a positive number, not {per_second}"
        );
        Schedule {
            begin,
            nanos_per_arrival: 1e9 / per_second,
            next: AtomicU64::new(0),
        }
    }

    /// The next arrival nobody has taken.
    fn claim(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    /// When arrival `k` is due.
    fn at(&self, k: u64) -> Instant {
        self.begin + Duration::from_nanos((k as f64 * self.nanos_per_arrival) as u64)
    }

    /// The first arrival due at or after `at`.
    fn first_at_or_after(&self, at: Instant) -> u64 {
        let offset = at.duration_since(self.begin).as_nanos() as f64;
        let mut k = (offset / self.nanos_per_arrival).floor() as u64;
        // The float estimate can be one off either way; step to the exact boundary.
        k = k.saturating_sub(1);
        while self.at(k) < at {
            k += 1;
        }
        k
    }

    /// How many arrivals are due inside `window`.
    fn due_in(&self, window: Window) -> u64 {
        self.first_at_or_after(window.end) - self.first_at_or_after(window.start)
    }
}
