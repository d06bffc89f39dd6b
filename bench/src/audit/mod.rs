//! Issue 11's benchmark: the auditor's log over fixtures of 10⁴ to 10⁷ events.
//!
//! - [`workload`]: the seeded command stream (humans, agents, delegations, tokens,
//!   revocations, rotations, disables, sessions, access receipts).
//! - [`fixture`]: loads it into a state machine data dir through the state machine's write path
//!   (`audit-fixture`); [`disk`]: the free-space guards.
//! - [`lookups`]: as-of reads, EffectiveAccess, seq_at_time, proofs, against the current reads
//!   and a raw RocksDB get in the same run.
//! - [`throughput`]: apply with the tree and history against `apply_batch_unaudited`.
//! - [`report`]: JSON and the BENCHMARKS.md section.
//!
//! Dependencies run one way: `run → {fixture, lookups, throughput, report}`,
//! `fixture → {workload, disk}`.

pub mod disk;
pub mod fixture;
pub mod lookups;
pub mod report;
pub mod throughput;
pub mod workload;

use std::{
    path::{Path, PathBuf},
    time::Instant,
};

use sha2::{Digest as _, Sha256};

use self::report::{AuditResults, SizeResult};

/// How many SHA-256 of 65 bytes the anchor times.
const SHA_ANCHOR_ROUNDS: u32 = 1_000_000;

/// What one `audit-bench` run measures.
#[derive(Clone, Debug)]
pub struct RunSpec {
    pub sizes: Vec<u64>,
    pub lookups: u64,
    pub seed: u64,
    pub dir: PathBuf,
    pub keep: bool,
    pub storage_cache_mib: u64,
    /// Events of each apply comparison; 0 skips it.
    pub memory_throughput_events: u64,
    pub rocksdb_throughput_events: u64,
}

/// Runs everything `spec` asks, fixtures one size at a time (each removed after unless
/// `keep`), and returns the results.
pub fn run(spec: &RunSpec) -> anyhow::Result<AuditResults> {
    std::fs::create_dir_all(&spec.dir)?;
    let machine = crate::report::machine::Machine::detect(&spec.dir);
    let sha256_65b_ns = sha256_anchor();
    eprintln!("anchor: SHA-256 of 65 bytes {sha256_65b_ns:.0} ns");
    let mut throughput = Vec::new();
    let mut current_reads = None;
    if 0 < spec.memory_throughput_events {
        eprintln!(
            "apply in memory, {} events, both ways",
            spec.memory_throughput_events
        );
        throughput.push(throughput::in_memory(
            spec.seed,
            spec.memory_throughput_events,
        )?);
    }
    if 0 < spec.rocksdb_throughput_events {
        eprintln!(
            "apply into RocksDB, {} events, both ways",
            spec.rocksdb_throughput_events
        );
        let (measured, reads) = throughput::rocksdb(
            &spec.dir.join("throughput"),
            spec.seed,
            spec.rocksdb_throughput_events,
            spec.storage_cache_mib,
            spec.lookups,
        )?;
        throughput.push(measured);
        current_reads = reads;
    }
    let mut sizes = Vec::new();
    for &target_events in &spec.sizes {
        let dir = spec.dir.join(format!("fixture-{target_events}"));
        let measured = measure_size(spec, &dir, target_events);
        // Removed whether or not the size measured: a failed 10⁷ load leaves gigabytes.
        if !spec.keep && dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        sizes.push(measured?);
    }
    Ok(AuditResults {
        date: crate::report::results::utc_date(unix_now_s()),
        build: if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
        .to_string(),
        current_reads,
        machine,
        seed: spec.seed,
        lookups: spec.lookups,
        storage_cache_mib: spec.storage_cache_mib,
        sha256_65b_ns,
        throughput,
        sizes,
    })
}

/// Loads (or reuses) the fixture of `target_events` in `dir` and measures its reads.
fn measure_size(spec: &RunSpec, dir: &Path, target_events: u64) -> anyhow::Result<SizeResult> {
    let fixture_spec = fixture::Spec {
        seed: spec.seed,
        target_events,
        storage_cache_mib: spec.storage_cache_mib,
        progress: true,
    };
    let fixture = fixture::open_or_load(dir, fixture_spec)?;
    let m = &fixture.manifest;
    eprintln!(
        "fixture {target_events}: {} events in {:.1} s ({:.0}/s), {} MiB on disk",
        m.events,
        m.load_seconds,
        m.events_per_s,
        m.disk_bytes >> 20
    );
    let ops = lookups::measure(&fixture, spec.lookups, spec.seed)?;
    Ok(SizeResult {
        manifest: fixture.manifest.clone(),
        ops,
    })
}

fn unix_now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// ns per SHA-256 of 65 bytes (0x01 ‖ two hashes: one interior node), sha2 as the tree uses it.
pub fn sha256_anchor() -> f64 {
    let mut input = [0x5a_u8; 65];
    input[0] = 0x01;
    let start = Instant::now();
    for round in 0..SHA_ANCHOR_ROUNDS {
        input[1] = round as u8;
        let digest = Sha256::digest(std::hint::black_box(&input));
        std::hint::black_box(digest);
    }
    start.elapsed().as_secs_f64() * 1e9 / f64::from(SHA_ANCHOR_ROUNDS)
}
