//! `audit-bench`: issue 11's benchmark in one command. Loads fixtures of 10⁴ to 10⁷ events
//! through the state machine's write path, measures as-of reads, EffectiveAccess, seq_at_time
//! and Merkle proofs against the current reads and a raw RocksDB get, compares apply with the
//! tree and history against `apply_batch_unaudited` in the same run, then prints the
//! BENCHMARKS.md section and writes `bench/results/<date>-audit.json`.
//!
//! ```sh
//! cargo run --release -p warrant-bench --bin audit-bench
//! cargo run --release -p warrant-bench --bin audit-bench -- --sizes 10000,100000 --tag quick
//! ```
//!
//! Fixtures go to `/tmp/warrant-audit-bench/fixture-<events>/` (about 400 bytes per event) and
//! are removed once measured unless `--keep`; a load refuses to start, or stops, rather than
//! leave less than 6 GiB free.

use std::path::PathBuf;

use clap::Parser;
use warrant_bench::audit::{self, RunSpec};

#[derive(Parser)]
#[command(about = "As-of reads, proofs and apply throughput over audit fixtures")]
struct Args {
    /// Fixture sizes in events, comma separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "10000,100000,1000000,10000000"
    )]
    sizes: Vec<u64>,
    /// Timed calls per operation and size (after as many warm-up calls).
    #[arg(long, default_value_t = 10_000)]
    lookups: u64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Where fixtures are made (`fixture-<events>/`, reused when complete for the same seed).
    #[arg(long, default_value = "/tmp/warrant-audit-bench")]
    dir: PathBuf,
    /// Keep the fixtures after measuring them.
    #[arg(long)]
    keep: bool,
    /// The state machine's storage memory budget, as a node's `storage_cache_mib`.
    #[arg(long, default_value_t = 256)]
    storage_cache_mib: u64,
    /// Events of the in-memory apply comparison (0: skip).
    #[arg(long, default_value_t = 100_000)]
    memory_throughput_events: u64,
    /// Events of the RocksDB apply comparison (0: skip).
    #[arg(long, default_value_t = 1_000_000)]
    rocksdb_throughput_events: u64,
    /// Where the results JSON goes.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/results"))]
    out_dir: PathBuf,
    /// Appended to the JSON's name (`<date>-audit-<tag>.json`), so several runs of a day stay.
    #[arg(long)]
    tag: Option<String>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if cfg!(debug_assertions) {
        eprintln!("warning: a debug build; figures for BENCHMARKS.md come from --release");
    }
    anyhow::ensure!(
        args.out_dir.is_dir(),
        "the results directory {} does not exist",
        args.out_dir.display()
    );
    let spec = RunSpec {
        sizes: args.sizes,
        lookups: args.lookups,
        seed: args.seed,
        dir: args.dir,
        keep: args.keep,
        storage_cache_mib: args.storage_cache_mib,
        memory_throughput_events: args.memory_throughput_events,
        rocksdb_throughput_events: args.rocksdb_throughput_events,
    };
    let results = audit::run(&spec)?;
    let json = results.write_json(&args.out_dir, args.tag.as_deref())?;
    let link = format!(
        "bench/results/{}",
        json.file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
    );
    println!("{}", results.markdown(&link));
    eprintln!("wrote {}", json.display());
    Ok(())
}
