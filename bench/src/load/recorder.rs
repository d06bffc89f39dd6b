//! What one worker measured. Each worker owns its recorder, so recording takes no lock; the
//! runner merges them once the run is over.

use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::time::Instant;

/// The longest latency the histogram resolves, in microseconds (one hour); longer ones are
/// recorded as this. Calls carry a deadline far below it ([`crate::load::connect::RPC_TIMEOUT`]),
/// and open-loop backlogs past an hour mean the run is meaningless anyway.
pub const LATENCY_US_MAX: u64 = 3_600_000_000;
/// Significant decimal digits the histogram keeps: 0.1 % relative error.
pub const SIGNIFICANT_DIGITS: u8 = 3;

/// Successes as latencies, failures as a count and the first failure's text.
#[derive(Debug)]
pub struct Recorder {
    histogram: Histogram<u64>,
    /// Calls that succeeded (and were timed).
    pub ops: u64,
    /// Calls that failed (not timed).
    pub errors: u64,
    /// The earliest failure: when, and what it said.
    first_error: Option<(Instant, String)>,
    /// Open loop: arrivals that started later than their intended time allowed.
    pub late: u64,
    /// When the last recorded call finished.
    pub last_done: Option<Instant>,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new()
    }
}

impl Recorder {
    pub fn new() -> Recorder {
        let histogram = Histogram::new_with_bounds(1, LATENCY_US_MAX, SIGNIFICANT_DIGITS)
            .expect("the histogram bounds are valid constants");
        Recorder {
            histogram,
            ops: 0,
            errors: 0,
            first_error: None,
            late: 0,
            last_done: None,
        }
    }

    /// Records one call's outcome: on success its latency from `from` to `done`.
    pub fn record(&mut self, result: Result<(), tonic::Status>, from: Instant, done: Instant) {
        self.last_done = Some(self.last_done.map_or(done, |last| last.max(done)));
        match result {
            Ok(()) => {
                self.ops += 1;
                self.histogram
                    .saturating_record(micros(done.saturating_duration_since(from)));
            }
            Err(status) => {
                self.errors += 1;
                if self.first_error.is_none() {
                    self.first_error = Some((done, status_text(&status)));
                }
            }
        }
    }

    /// Folds `other` into this one.
    pub fn merge(&mut self, other: Recorder) {
        self.histogram
            .add(&other.histogram)
            .expect("recorders share the same bounds");
        self.ops += other.ops;
        self.errors += other.errors;
        self.late += other.late;
        self.last_done = match (self.last_done, other.last_done) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        self.first_error = match (self.first_error.take(), other.first_error) {
            (Some(a), Some(b)) => Some(if b.0 < a.0 { b } else { a }),
            (a, b) => a.or(b),
        };
    }

    pub fn histogram(&self) -> &Histogram<u64> {
        &self.histogram
    }

    /// The earliest failure's text.
    pub fn first_error(&self) -> Option<&str> {
        self.first_error.as_ref().map(|(_, text)| text.as_str())
    }
}

/// Whole microseconds, at least 1 (the histogram's lowest value).
fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros())
        .unwrap_or(u64::MAX)
        .max(1)
}

/// A status as one line: its code and message.
fn status_text(status: &tonic::Status) -> String {
    format!("{:?}: {}", status.code(), status.message())
}
