//! Load runs folded over repeats into report rows: the median and range of each figure, and
//! the ratios to the anchors measured in the same run.

use std::collections::BTreeMap;

use super::{
    results::{Results, RunRecord, Target},
    stats::Spread,
};
use crate::plan::{self, InProcess};

/// One scenario at one target and concurrency, over the repeats.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub scenario: String,
    pub target: Target,
    pub concurrency: usize,
    pub per_second: Spread,
    /// The median over repeats of each repeat's p50 and p99.
    pub p50_us: f64,
    pub p99_us: f64,
    /// Failed calls, summed over repeats.
    pub errors: u64,
    /// Median rate ÷ etcd Put's median rate at the same concurrency.
    pub vs_etcd: Option<f64>,
    /// Median rate ÷ the health check's median rate at the same concurrency.
    pub vs_health: Option<f64>,
    /// Median rate ÷ the in-process Ed25519 rate on one core (median over repeats).
    pub vs_in_process: Option<f64>,
    /// Median rate ÷ the scenario's [`plan::Scenario::baseline`] median rate at the same target
    /// and concurrency.
    pub vs_baseline: Option<f64>,
}

/// The rows of every scenario, in [`plan::SCENARIOS`] order (unknown scenarios last), then by
/// target and concurrency.
pub fn rows(results: &Results) -> Vec<Row> {
    let mut groups: BTreeMap<(usize, String, Target, usize), Vec<&RunRecord>> = BTreeMap::new();
    for run in &results.runs {
        let order = plan::SCENARIOS
            .iter()
            .position(|s| s.name == run.scenario)
            .unwrap_or(usize::MAX);
        groups
            .entry((
                order,
                run.scenario.clone(),
                run.target,
                run.result.concurrency,
            ))
            .or_default()
            .push(run);
    }
    let median_rate_at = |scenario: &str, at: Target, concurrency: usize| {
        groups
            .iter()
            .find(|((_, name, target, c), _)| {
                name == scenario && *target == at && *c == concurrency
            })
            .and_then(|(_, runs)| Spread::of(runs.iter().map(|r| r.result.per_second)))
            .map(|s| s.median)
    };
    let median_rate =
        |scenario: &str, concurrency: usize| median_rate_at(scenario, Target::Leader, concurrency);
    let sign = Spread::of(results.anchors.iter().map(|a| a.ed25519_sign_per_s));
    let verify = Spread::of(results.anchors.iter().map(|a| a.ed25519_verify_per_s));
    let mut rows = Vec::new();
    for ((_, name, target, concurrency), runs) in &groups {
        let Some(per_second) = Spread::of(runs.iter().map(|r| r.result.per_second)) else {
            continue;
        };
        let scenario = plan::scenario(name);
        let compared = scenario.is_some_and(|s| s.compared);
        let ratio = |base: Option<f64>| {
            base.filter(|b| compared && 0.0 < *b)
                .map(|b| per_second.median / b)
        };
        let in_process = match scenario.map(|s| s.in_process) {
            Some(InProcess::Sign) => sign.map(|s| s.median),
            Some(InProcess::Verify) => verify.map(|s| s.median),
            _ => None,
        };
        let median_of = |f: fn(&RunRecord) -> f64| {
            Spread::of(runs.iter().map(|r| f(r))).map_or(f64::NAN, |s| s.median)
        };
        rows.push(Row {
            scenario: name.clone(),
            target: *target,
            concurrency: *concurrency,
            per_second,
            p50_us: median_of(|r| r.result.latency_us.p50),
            p99_us: median_of(|r| r.result.latency_us.p99),
            errors: runs.iter().map(|r| r.result.errors).sum(),
            vs_etcd: ratio(median_rate(plan::ETCD_PUT, *concurrency)),
            vs_health: ratio(median_rate(plan::HEALTH, *concurrency)),
            vs_in_process: in_process
                .filter(|b| 0.0 < *b)
                .map(|b| per_second.median / b),
            vs_baseline: scenario
                .and_then(|s| s.baseline)
                .and_then(|baseline| median_rate_at(baseline, *target, *concurrency))
                .filter(|b| 0.0 < *b)
                .map(|b| per_second.median / b),
        });
    }
    rows
}

/// The run of `scenario` at `target` and `concurrency` whose rate is the median over repeats
/// (the lower middle one for an even count): the one whose CDF is plotted.
pub fn median_run<'r>(
    results: &'r Results,
    scenario: &str,
    target: Target,
    concurrency: usize,
) -> Option<&'r RunRecord> {
    let mut runs: Vec<&RunRecord> = results
        .runs
        .iter()
        .filter(|r| {
            r.scenario == scenario && r.target == target && r.result.concurrency == concurrency
        })
        .collect();
    runs.sort_by(|a, b| a.result.per_second.total_cmp(&b.result.per_second));
    let middle = runs.len().checked_sub(1)? / 2;
    runs.get(middle).copied()
}
