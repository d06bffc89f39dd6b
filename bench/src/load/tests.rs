//! The runner on paused tokio time: fake operations with exact delays, so every count and
//! latency below follows from the schedule alone, whatever the machine's speed.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use futures::future::BoxFuture;
use tonic::transport::{Channel, Endpoint};

use super::{Arrival, LoadSpec, Operation, RunResult, run};

/// Sleeps `ok_delay` and succeeds, except every `fail_every`-th call of a worker (n % fail_every
/// == fail_every - 1), which sleeps `err_delay` and fails. Counts every call, recorded or not.
struct Fake {
    ok_delay: Duration,
    err_delay: Duration,
    fail_every: u64,
    calls: AtomicU64,
}

impl Fake {
    fn fixed(delay: Duration) -> Arc<Fake> {
        Arc::new(Fake {
            ok_delay: delay,
            err_delay: delay,
            fail_every: 0,
            calls: AtomicU64::new(0),
        })
    }
}

impl Operation for Fake {
    fn call(
        &self,
        _channel: &Channel,
        _worker: usize,
        n: u64,
    ) -> BoxFuture<'static, Result<(), tonic::Status>> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let fails = self.fail_every > 0 && n % self.fail_every == self.fail_every - 1;
        let delay = if fails { self.err_delay } else { self.ok_delay };
        Box::pin(async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            if fails {
                Err(tonic::Status::unavailable(format!(
                    "fake failure at call {n}"
                )))
            } else {
                Ok(())
            }
        })
    }
}

/// A channel that never connects: the fake operations do not use it.
fn unused_channel() -> Vec<Channel> {
    vec![Endpoint::from_static("http://127.0.0.1:9").connect_lazy()]
}

fn spec(concurrency: usize, warmup_ms: u64, measure_ms: u64, arrival: Arrival) -> LoadSpec {
    LoadSpec {
        concurrency,
        connections: 1,
        warmup: Duration::from_millis(warmup_ms),
        measure: Duration::from_millis(measure_ms),
        arrival,
    }
}

async fn run_fake(fake: &Arc<Fake>, spec: &LoadSpec) -> RunResult {
    let op: Arc<dyn Operation> = fake.clone();
    run("fake", &unused_channel(), op, spec).await
}

/// `value` is `expected_us` within the histogram's 0.1 % resolution.
fn assert_about(what: &str, value: f64, expected_us: f64) {
    assert!(
        (value - expected_us).abs() <= expected_us * 0.002 + 1.0,
        "{what}: {value} µs, expected about {expected_us} µs"
    );
}

#[tokio::test(start_paused = true)]
async fn closed_loop_counts_exact_ops_and_leaves_out_the_warmup() {
    let fake = Fake::fixed(Duration::from_millis(10));
    let result = run_fake(&fake, &spec(4, 200, 1000, Arrival::Closed)).await;
    // Each worker starts calls at 0, 10, …, 1190 ms: 120 calls, of which those starting in
    // [200, 1200) ms — 100 — are measured.
    assert_eq!(fake.calls.load(Ordering::Relaxed), 4 * 120);
    assert_eq!(result.ops, 4 * 100);
    assert_eq!(result.errors, 0);
    assert_eq!(result.first_error, None);
    assert_eq!(result.arrival, "closed");
    assert_eq!(result.seconds, 1.0);
    assert_eq!(result.per_second, 400.0);
    assert_about("p50", result.latency_us.p50, 10_000.0);
    assert_about("max", result.latency_us.max, 10_000.0);
    assert_eq!((result.late, result.missed), (0, 0));
    let quantiles: Vec<f64> = result.cdf_us.iter().map(|point| point[0]).collect();
    assert!(quantiles.len() >= 90, "{} CDF points", quantiles.len());
    assert!(quantiles.windows(2).all(|w| w[0] < w[1]), "{quantiles:?}");
    assert_eq!(quantiles.last(), Some(&1.0));
}

#[tokio::test(start_paused = true)]
async fn errors_are_counted_and_not_timed() {
    // Every second call fails after 50 ms; successes take 10 ms.
    let fake = Arc::new(Fake {
        ok_delay: Duration::from_millis(10),
        err_delay: Duration::from_millis(50),
        fail_every: 2,
        calls: AtomicU64::new(0),
    });
    let result = run_fake(&fake, &spec(1, 0, 600, Arrival::Closed)).await;
    // Successes start at 0, 60, …, 540 ms; failures at 10, 70, …, 550 ms.
    assert_eq!(result.ops, 10);
    assert_eq!(result.errors, 10);
    assert_about("max", result.latency_us.max, 10_000.0);
    let first = result.first_error.expect("the first error is kept");
    assert!(
        first.contains("Unavailable") && first.contains("fake failure at call 1"),
        "{first}"
    );
}

#[tokio::test(start_paused = true)]
async fn open_loop_within_capacity_is_on_time() {
    let fake = Fake::fixed(Duration::from_millis(10));
    let open = Arrival::Open { per_second: 50.0 };
    let result = run_fake(&fake, &spec(4, 500, 1000, open)).await;
    // 25 arrivals in the warm-up run but are not recorded; 50 are due in the measured second.
    assert_eq!(fake.calls.load(Ordering::Relaxed), 75);
    assert_eq!(result.ops, 50);
    assert_eq!(result.arrival, "open@50/s");
    assert_eq!((result.late, result.missed), (0, 0));
    assert_about("p50", result.latency_us.p50, 10_000.0);
    assert_about("max", result.latency_us.max, 10_000.0);
}

#[tokio::test(start_paused = true)]
async fn open_loop_beyond_capacity_charges_the_wait_from_the_intended_start() {
    // One request in flight at a time, 10 ms each: capacity is 100/s, the rate is 200/s.
    let fake = Fake::fixed(Duration::from_millis(10));
    let open = Arrival::Open { per_second: 200.0 };
    let result = run_fake(&fake, &spec(1, 0, 1000, open)).await;
    // Arrival k is due at 5k ms and starts at 10k ms: it waited 5k ms, then took 10 ms. Those
    // starting before 1000 ms (k < 100) run; the other 100 due arrivals never start.
    assert_eq!(result.ops, 100);
    assert_eq!(result.missed, 100);
    assert_eq!(result.late, 99, "every arrival but the first started late");
    assert_about("max", result.latency_us.max, 505_000.0);
    // The median waited ~250 ms: twenty-five times the 10 ms a closed loop would report.
    assert!(
        (250_000.0..=262_000.0).contains(&result.latency_us.p50),
        "p50 {} µs",
        result.latency_us.p50
    );
    assert!(result.latency_us.p99 > result.latency_us.p50);
}

#[tokio::test(start_paused = true)]
async fn closed_loop_on_the_same_operation_reports_the_service_time_only() {
    // The contrast to the test above: without a schedule, the same stall is invisible.
    let fake = Fake::fixed(Duration::from_millis(10));
    let result = run_fake(&fake, &spec(1, 0, 1000, Arrival::Closed)).await;
    assert_eq!(result.ops, 100);
    assert_about("max", result.latency_us.max, 10_000.0);
}

#[tokio::test(start_paused = true)]
async fn open_loop_keeps_rates_above_the_timer_tick() {
    // 5000/s is five arrivals per 1 ms timer tick; two workers with instant calls keep up.
    let fake = Fake::fixed(Duration::ZERO);
    let open = Arrival::Open { per_second: 5000.0 };
    let result = run_fake(&fake, &spec(2, 0, 1000, open)).await;
    assert_eq!(result.ops, 5000);
    assert_eq!((result.late, result.missed), (0, 0));
}
