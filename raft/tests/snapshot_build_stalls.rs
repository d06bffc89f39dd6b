//! What a snapshot build does to the rest of a node: how late the tokio runtime runs a timer
//! (heartbeats are timers and RPCs on the same runtime) and how long a small synced write, like
//! a log append, takes while one or more state machines build snapshots.
//!
//! A measurement, not a check: run it with
//! `cargo test --workspace --release --test snapshot_build_stalls -- --ignored --nocapture`
//! (`PROBE_ROWS`, `PROBE_NODES` set the state size and how many nodes build at once). It
//! asserts only that the builds succeed.

use std::{
    io::Write,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

mod support;

use openraft::{RaftSnapshotBuilder, storage::RaftStateMachine};
use tempfile::TempDir;
use warrant_raft::{
    STORAGE_CACHE_MIB_DEFAULT,
    storage::{StateMachineStore, StorageMemory},
};

const COMMANDS_PER_ENTRY: usize = 1000;
const TICK: Duration = Duration::from_millis(2);
const FSYNC_EVERY: Duration = Duration::from_millis(10);

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The worst lateness of a `TICK` timer, and of a small synced write, over a window.
#[derive(Default)]
struct Worst {
    tick_late_us: AtomicU64,
    fsync_us: AtomicU64,
}

impl Worst {
    fn take(&self) -> (u64, u64) {
        (
            self.tick_late_us.swap(0, Ordering::SeqCst) / 1000,
            self.fsync_us.swap(0, Ordering::SeqCst) / 1000,
        )
    }
}

fn spawn_probes(dir: &std::path::Path, worst: Arc<Worst>, stop: Arc<AtomicBool>) {
    let ticks = (worst.clone(), stop.clone());
    tokio::spawn(async move {
        while !ticks.1.load(Ordering::SeqCst) {
            let start = Instant::now();
            tokio::time::sleep(TICK).await;
            let late = start.elapsed().saturating_sub(TICK).as_micros() as u64;
            ticks.0.tick_late_us.fetch_max(late, Ordering::SeqCst);
        }
    });
    let path = dir.join("fake-log");
    tokio::spawn(async move {
        let file = Arc::new(std::fs::File::create(path).expect("fake log"));
        while !stop.load(Ordering::SeqCst) {
            let file = file.clone();
            let start = Instant::now();
            tokio::task::spawn_blocking(move || {
                (&*file).write_all(&[1u8; 512]).expect("write");
                file.sync_data().expect("sync");
            })
            .await
            .expect("join");
            let took = start.elapsed().as_micros() as u64;
            worst.fsync_us.fetch_max(took, Ordering::SeqCst);
            tokio::time::sleep(FSYNC_EVERY).await;
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement; run by hand with --ignored --nocapture"]
async fn measure_stalls_during_snapshot_builds() {
    let rows = env_usize("PROBE_ROWS", 200_000);
    let nodes = env_usize("PROBE_NODES", 3);
    let dirs: Vec<TempDir> = (0..nodes)
        .map(|_| TempDir::new_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir"))
        .collect();
    let mut stores = Vec::new();
    let filled = Instant::now();
    for dir in &dirs {
        let memory = StorageMemory::new(STORAGE_CACHE_MIB_DEFAULT).expect("default budget");
        let mut store = StateMachineStore::open(dir.path(), &memory).expect("open");
        for (n, first) in (0..rows).step_by(COMMANDS_PER_ENTRY).enumerate() {
            store
                .apply(vec![support::registrations_entry(
                    n as u64 + 1,
                    first..first + COMMANDS_PER_ENTRY,
                    |i| format!("Human number {i} with a longer display name"),
                )])
                .await
                .expect("apply");
        }
        stores.push(store);
    }
    println!(
        "{nodes} state machines of {rows} registrations each, filled in {} ms",
        filled.elapsed().as_millis()
    );

    let worst = Arc::new(Worst::default());
    let stop = Arc::new(AtomicBool::new(false));
    spawn_probes(dirs[0].path(), worst.clone(), stop.clone());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (tick, fsync) = worst.take();
    println!("idle 2 s: worst timer lateness {tick} ms, worst synced write {fsync} ms");

    let started = Instant::now();
    let builds = stores.into_iter().map(|mut store| async move {
        let begin = Instant::now();
        let mut builder = store.get_snapshot_builder().await;
        let builder_ms = begin.elapsed().as_millis();
        builder.build_snapshot().await.expect("build");
        (builder_ms, begin.elapsed().as_millis())
    });
    let handles: Vec<_> = builds.map(tokio::spawn).collect();
    for handle in handles {
        let (builder_ms, total_ms) = handle.await.expect("join");
        println!("  get_snapshot_builder {builder_ms} ms, whole build {total_ms} ms");
    }
    let (tick, fsync) = worst.take();
    println!(
        "{nodes} builds at once, {} ms: worst timer lateness {tick} ms, worst synced write {fsync} ms",
        started.elapsed().as_millis()
    );
    stop.store(true, Ordering::SeqCst);
}
