//! `audit-bench` end to end at a tiny size: the workload is accepted, the fixture reopens, every
//! read and proof runs and verifies, both apply comparisons add the same events, and the report
//! names every size and operation. It checks that the benchmark works, never how fast.

use warrant_bench::audit::{self, RunSpec, fixture, lookups};

const EVENTS: u64 = 2_000;
const LOOKUPS: u64 = 20;

#[test]
fn a_tiny_run_measures_everything_and_reports_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let spec = RunSpec {
        sizes: vec![EVENTS],
        lookups: LOOKUPS,
        seed: 3,
        dir: dir.path().to_path_buf(),
        keep: true,
        storage_cache_mib: 16,
        memory_throughput_events: EVENTS,
        rocksdb_throughput_events: EVENTS,
    };
    let results = audit::run(&spec).expect("the run");
    let size = &results.sizes[0];
    assert!(EVENTS <= size.manifest.events, "{:?}", size.manifest);
    assert_eq!(size.manifest.rejected, 0);
    assert_eq!(size.ops.len(), 10, "{:?}", size.ops);
    for op in &size.ops {
        assert_eq!(op.count, LOOKUPS, "{op:?}");
        assert!(op.p50_ns <= op.p99_ns && op.p99_ns <= op.max_ns, "{op:?}");
    }
    let current = results.current_reads.as_ref().expect("current reads");
    assert_eq!(current.audited.len(), 3);
    assert_eq!(current.unaudited.len(), 3);
    for t in &results.throughput {
        assert!(EVENTS <= t.events && 0.0 < t.ratio, "{t:?}");
    }
    let markdown = results.markdown("bench/results/x.json");
    for name in [
        lookups::AGENT_AS_OF,
        lookups::ACCESS_AS_OF,
        lookups::INCLUSION_VERIFY,
    ] {
        assert!(markdown.contains(name), "{name} missing from\n{markdown}");
    }
    // The kept fixture is reused, not loaded again.
    let reopened = fixture::open_or_load(
        &dir.path().join(format!("fixture-{EVENTS}")),
        fixture::Spec {
            seed: 3,
            target_events: EVENTS,
            storage_cache_mib: 16,
            progress: false,
        },
    )
    .expect("reopen");
    // serde_json may read a float back one ulp away: compare the counts.
    let counts = |m: &fixture::Manifest| (m.seed, m.events, m.batches, m.commands, m.disk_bytes);
    assert_eq!(counts(&reopened.manifest), counts(&size.manifest));
}
