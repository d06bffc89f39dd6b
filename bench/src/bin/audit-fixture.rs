//! `audit-fixture`: loads one audit fixture (the seeded workload of `warrant_bench::audit`)
//! into a state machine data dir through the state machine's write path, and keeps it.
//! `audit-bench --dir` reuses it when seed and size match.
//!
//! ```sh
//! cargo run --release -p warrant-bench --bin audit-fixture -- --events 10000000
//! ```

use std::path::PathBuf;

use clap::Parser;
use warrant_bench::audit::fixture::{self, Spec};

#[derive(Parser)]
#[command(about = "Writes N events through apply into a RocksDB state machine")]
struct Args {
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The data dir; default: /tmp/warrant-audit-bench/fixture-<events>, where audit-bench
    /// looks.
    #[arg(long)]
    dir: Option<PathBuf>,
    #[arg(long, default_value_t = 256)]
    storage_cache_mib: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = args.dir.unwrap_or_else(|| {
        PathBuf::from(format!("/tmp/warrant-audit-bench/fixture-{}", args.events))
    });
    let spec = Spec {
        seed: args.seed,
        target_events: args.events,
        storage_cache_mib: args.storage_cache_mib,
        progress: true,
    };
    let loaded = fixture::load(&dir, spec, warrant_identity::apply_batch, "audited")?;
    println!("{}", serde_json::to_string_pretty(&loaded.manifest)?);
    eprintln!(
        "kept in {}; remove it with: rm -r {}",
        dir.display(),
        dir.display()
    );
    Ok(())
}
