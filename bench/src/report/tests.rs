//! The report from synthetic results: rows, ratios, the section and its replacement, plots.

use super::{
    machine::Machine,
    markdown::{self, BEGIN, END},
    results::{MemoryRecord, Results, RunRecord, RunSetup, Target},
    table,
};
use crate::{
    anchors::{Anchors, FsyncRate},
    failover::FailoverResult,
    load::{Latency, RunResult},
    procs::ProcMemory,
};

fn run(repeat: usize, scenario: &str, target: Target, concurrency: usize, rate: f64) -> RunRecord {
    RunRecord {
        repeat,
        scenario: scenario.to_string(),
        target,
        result: RunResult {
            label: scenario.to_string(),
            arrival: "closed".to_string(),
            concurrency,
            connections: concurrency.min(8),
            ops: (rate * 2.0) as u64,
            errors: repeat as u64,
            first_error: None,
            seconds: 2.0,
            per_second: rate,
            latency_us: Latency {
                mean: 1000.0,
                p50: 900.0 + repeat as f64 * 100.0,
                p90: 2000.0,
                p99: 4000.0,
                p999: 5000.0,
                max: 6000.0,
            },
            cdf_us: vec![[0.0, 500.0], [0.5, 900.0], [0.99, 4000.0], [1.0, 6000.0]],
            late: 0,
            missed: 0,
        },
    }
}

fn anchors(sign: f64, verify: f64) -> Anchors {
    Anchors {
        ed25519_sign_per_s: sign,
        ed25519_verify_per_s: verify,
        fsync: FsyncRate {
            per_s: 4000.0,
            p50_us: 210.0,
            p99_us: 600.0,
        },
    }
}

/// Two repeats: issue-self at 1000 and 3000/s (median 2000), etcd at 500 and 1500 (median
/// 1000), health at 10000 both times, sign at 100000 and 140000 (median 120000).
fn results() -> Results {
    let mut runs = Vec::new();
    for (repeat, (issue, etcd)) in [(1000.0, 500.0), (3000.0, 1500.0)].into_iter().enumerate() {
        runs.push(run(repeat, "issue-self", Target::Leader, 64, issue));
        runs.push(run(repeat, "issue-self", Target::Follower, 64, issue / 2.0));
        runs.push(run(repeat, "etcd-put", Target::Leader, 64, etcd));
        runs.push(run(repeat, "health", Target::Leader, 64, 10_000.0));
        runs.push(run(repeat, "register", Target::Leader, 1, 300.0));
    }
    Results {
        date: "2026-12-01".to_string(),
        started_unix_s: 0,
        elapsed_s: 100.0,
        machine: Machine {
            cpu_model: "Test CPU".into(),
            cores: 2,
            ram_gib: 24.0,
            kernel: "6.1".into(),
            os: "Debian".into(),
            rustc: "rustc 1.95.0".into(),
            data_disk: "ext4 on /dev/vda".into(),
        },
        setup: RunSetup {
            mode: "quick".into(),
            concurrencies: vec![1, 64],
            repeats: 2,
            warmup_s: 0.5,
            measure_s: 2.0,
            warrant_binary: "target/release/warrant".into(),
            etcd_version: "3.4.23".into(),
        },
        anchors: vec![anchors(100_000.0, 30_000.0), anchors(140_000.0, 40_000.0)],
        runs,
        reach: None,
        failovers: vec![FailoverResult {
            killed: 1,
            new_leader: 2,
            to_new_leader_ms: 1500.0,
            to_first_write_ms: 1700.0,
            acknowledged: 900,
            failed: 4,
            lost: 0,
            lost_examples: vec![],
        }],
        memory: vec![MemoryRecord {
            repeat: 0,
            process: "warrant leader".into(),
            after: "load runs".into(),
            events: 12_345,
            memory: Some(ProcMemory {
                rss_kib: 51_200,
                hwm_kib: 102_400,
            }),
        }],
    }
}

#[test]
fn rows_carry_the_median_range_and_ratios_of_the_inputs() {
    let results = results();
    let rows = table::rows(&results);
    let issue = rows
        .iter()
        .find(|r| r.scenario == "issue-self" && r.target == Target::Leader)
        .expect("an issue-self row");
    assert_eq!(issue.per_second.median, 2000.0);
    assert_eq!(
        (issue.per_second.min, issue.per_second.max),
        (1000.0, 3000.0)
    );
    assert_eq!(issue.p50_us, 950.0);
    assert_eq!(issue.errors, 1);
    assert_eq!(issue.vs_etcd, Some(2000.0 / 1000.0));
    assert_eq!(issue.vs_health, Some(2000.0 / 10_000.0));
    assert_eq!(issue.vs_in_process, Some(2000.0 / 120_000.0));
    // The follower is set against etcd's leader figure at the same concurrency.
    let follower = rows
        .iter()
        .find(|r| r.scenario == "issue-self" && r.target == Target::Follower)
        .expect("a follower row");
    assert_eq!(follower.vs_etcd, Some(1000.0 / 1000.0));
    // No etcd run at concurrency 1: no ratio, rather than a wrong one.
    let register = rows.iter().find(|r| r.scenario == "register").expect("row");
    assert_eq!((register.vs_etcd, register.vs_in_process), (None, None));
    // The anchors are not set against themselves.
    let etcd = rows.iter().find(|r| r.scenario == "etcd-put").expect("row");
    assert_eq!((etcd.vs_etcd, etcd.vs_health), (None, None));
    // Report order: the scenario list, then target.
    let order: Vec<(&str, Target)> = rows
        .iter()
        .map(|r| (r.scenario.as_str(), r.target))
        .collect();
    assert_eq!(
        order,
        [
            ("issue-self", Target::Leader),
            ("issue-self", Target::Follower),
            ("register", Target::Leader),
            ("health", Target::Leader),
            ("etcd-put", Target::Leader)
        ]
    );
}

#[test]
fn the_median_run_is_the_middle_rate() {
    let results = results();
    let middle = table::median_run(&results, "issue-self", Target::Leader, 64).expect("runs");
    // Two repeats: the lower middle one.
    assert_eq!(middle.result.per_second, 1000.0);
    assert!(table::median_run(&results, "issue-self", Target::Leader, 16).is_none());
}

#[test]
fn the_section_shows_the_computed_ratios() {
    let results = results();
    let links = markdown::PlotLinks {
        throughput: "bench/results/t.svg".into(),
        cdf: Some("bench/results/c.svg".into()),
    };
    let section = markdown::render(&results, &links, "bench/results/x.json");
    // issue-self leader at 64: 2,000/s (1,000–3,000), 2.0× etcd, 0.2× health, 0.0167× sign.
    assert!(
        section.contains(
            "| 64 | leader | 2,000 (1,000–3,000) | 0.950 | 4.00 | 1 | 2.00× | 0.200× | 0.0167× |"
        ),
        "{section}"
    );
    assert!(section.contains("Test CPU"), "{section}");
    assert!(section.contains("120,000/s (100,000–140,000)"), "{section}");
    assert!(
        section.contains("| 1 | 1 → 2 | 1500 | 1700 | 900 | 4 | 0 |"),
        "{section}"
    );
    assert!(
        section.contains("lost over all failovers: **0**"),
        "{section}"
    );
    assert!(
        section.contains("| load runs | warrant leader | 12345 | 50.0 | 100 |"),
        "{section}"
    );
    assert!(section.contains("](bench/results/c.svg)"), "{section}");
    assert!(!section.contains(BEGIN) && !section.contains(END));
}

#[test]
fn replacing_the_section_keeps_the_rest_and_is_idempotent() {
    let doc = "# Benchmarks\n\nOlder tables.\n";
    let once = markdown::replace_section(doc, "new section\n");
    assert_eq!(
        once,
        format!("# Benchmarks\n\nOlder tables.\n\n{BEGIN}\nnew section\n{END}\n")
    );
    assert_eq!(markdown::replace_section(&once, "new section\n"), once);
    let edited = format!("{once}\n## Later heading\n");
    let replaced = markdown::replace_section(&edited, "newer");
    assert_eq!(replaced.matches(BEGIN).count(), 1);
    assert!(replaced.contains(&format!("{BEGIN}\nnewer\n{END}\n\n## Later heading")));
    assert!(!replaced.contains("new section"));
    assert!(replaced.starts_with("# Benchmarks\n\nOlder tables.\n"));
}

#[test]
fn numbers_keep_three_significant_figures() {
    assert_eq!(markdown::number(123_456.0), "123,000");
    assert_eq!(markdown::number(4116.0), "4,120");
    assert_eq!(markdown::number(151.0), "151");
    assert_eq!(markdown::number(15.24), "15.2");
    assert_eq!(markdown::number(1.5), "1.50");
    assert_eq!(markdown::number(0.0385), "0.0385");
    assert_eq!(markdown::number(0.0), "0");
    assert_eq!(markdown::number(f64::NAN), "—");
}

#[test]
fn write_puts_json_plots_and_section_in_place() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out_dir = dir.path().join("bench/results");
    let doc = dir.path().join("BENCHMARKS.md");
    std::fs::write(&doc, "# Benchmarks\n").expect("write doc");
    let results = results();
    let written = super::write(&results, &out_dir, &doc).expect("writes");
    assert_eq!(written.json, out_dir.join("2026-12-01-quick.json"));
    let back = Results::read_json(&written.json).expect("reads back");
    assert_eq!(back.runs.len(), results.runs.len());
    let svg = std::fs::read_to_string(&written.throughput_svg).expect("svg");
    assert!(
        svg.starts_with("<svg") && svg.contains("issue-self (leader)"),
        "{svg}"
    );
    let cdf = std::fs::read_to_string(written.cdf_svg.expect("runs at 64")).expect("svg");
    assert!(cdf.contains("etcd-put"));
    let text = std::fs::read_to_string(&doc).expect("doc");
    assert!(
        text.contains("](bench/results/2026-12-01-quick-throughput.svg)"),
        "{text}"
    );
    // A second write replaces the section rather than adding one.
    super::write(&results, &out_dir, &doc).expect("writes again");
    let again = std::fs::read_to_string(&doc).expect("doc");
    assert_eq!(again, text);
}

#[test]
fn authorize_rows_are_set_against_their_baselines_at_the_same_target() {
    let mut results = results();
    results.runs = vec![
        run(0, "verify-local", Target::Leader, 16, 8000.0),
        run(0, "verify-local", Target::Follower, 16, 6000.0),
        run(0, "authorize-async", Target::Leader, 16, 4000.0),
        run(0, "authorize-async", Target::Follower, 16, 4500.0),
        run(0, "authorize-sync", Target::Leader, 16, 1000.0),
    ];
    let rows = table::rows(&results);
    let ratio = |scenario: &str, target: Target| {
        rows.iter()
            .find(|r| r.scenario == scenario && r.target == target)
            .map(|r| r.vs_baseline)
            .expect("a row")
    };
    assert_eq!(ratio("authorize-async", Target::Leader), Some(0.5));
    assert_eq!(ratio("authorize-async", Target::Follower), Some(0.75));
    assert_eq!(ratio("authorize-sync", Target::Leader), Some(0.25));
    assert_eq!(
        ratio("verify-local", Target::Leader),
        None,
        "no baseline of its own"
    );
    let links = markdown::PlotLinks {
        throughput: "t.svg".into(),
        cdf: None,
    };
    let section = markdown::render(&results, &links, "x.json");
    assert!(section.contains("| ÷ verify-local |"), "{section}");
    assert!(section.contains("| ÷ authorize-async |"), "{section}");
    assert!(
        section.contains("| 16 | follower | 4,500 | 0.900 | 4.00 | 0 | — | — | 0.129× | 0.750× |"),
        "{section}"
    );
}
