//! A run's result, as reports and plots read it.

use serde::{Deserialize, Serialize};

use super::recorder::Recorder;

/// Quantiles of the CDF a report plots: every percent up to p90, then the tail.
const CDF_TAIL: &[f64] = &[0.90, 0.95, 0.98, 0.99, 0.995, 0.999, 0.9995, 0.9999, 1.0];
/// The evenly spaced part of the CDF: quantiles 0.00, 0.01, … below 0.90.
const CDF_EVEN_STEPS: u32 = 90;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunResult {
    pub label: String,
    /// `"closed"` or `"open@<rate>/s"`.
    pub arrival: String,
    pub concurrency: usize,
    pub connections: usize,
    /// Calls that succeeded in the measured stretch.
    pub ops: u64,
    /// Calls that failed in the measured stretch (not in the latencies).
    pub errors: u64,
    pub first_error: Option<String>,
    /// From the start of the measured stretch until it ended or its last call finished,
    /// whichever was later.
    pub seconds: f64,
    /// `ops / seconds`.
    pub per_second: f64,
    pub latency_us: Latency,
    /// (quantile 0..1, microseconds), about 100 points, for plots.
    pub cdf_us: Vec<[f64; 2]>,
    /// Open loop: arrivals that started later than their intended time (all workers busy), and
    /// were charged for the wait. Always 0 for a closed loop.
    pub late: u64,
    /// Open loop: arrivals due in the measured stretch that never started before it ended. More
    /// than 0 means the rate was beyond what the system sustained; the latencies then are a lower
    /// bound. Always 0 for a closed loop.
    pub missed: u64,
}

/// Latency summary in microseconds.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Latency {
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Latency {
    pub fn of(recorder: &Recorder) -> Latency {
        let histogram = recorder.histogram();
        if histogram.is_empty() {
            return Latency::default();
        }
        let at = |q: f64| histogram.value_at_quantile(q) as f64;
        Latency {
            mean: histogram.mean(),
            p50: at(0.5),
            p90: at(0.9),
            p99: at(0.99),
            p999: at(0.999),
            max: histogram.max() as f64,
        }
    }
}

/// The latency CDF as (quantile, microseconds) points; empty when nothing succeeded.
pub fn cdf(recorder: &Recorder) -> Vec<[f64; 2]> {
    let histogram = recorder.histogram();
    if histogram.is_empty() {
        return Vec::new();
    }
    (0..CDF_EVEN_STEPS)
        .map(|step| f64::from(step) / 100.0)
        .chain(CDF_TAIL.iter().copied())
        .map(|q| [q, histogram.value_at_quantile(q) as f64])
        .collect()
}
