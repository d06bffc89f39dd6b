//! Loading a fixture: the [`Workload`](super::workload::Workload) stream applied through the
//! state machine's own write path (`StateMachineStore::apply_batches_with`: decode, apply,
//! one synced RocksDB `WriteBatch` per call) into a data dir, until the log holds the target
//! number of events.
//!
//! A loaded fixture keeps a manifest (`fixture.json`) beside the state machine, written last,
//! so a directory without one is an interrupted load and is loaded again from scratch.

use std::{
    io::IsTerminal as _,
    path::{Path, PathBuf},
    time::Instant,
};

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};
use prost::Message as _;
use serde::{Deserialize, Serialize};
use warrant_proto::log::{self, outcome::Result as OutcomeResult};
use warrant_raft::storage::{ApplyFn, StateMachineStore, StorageMemory};

use super::{
    disk,
    workload::{Workload, World, batch_time_ms},
};

/// Batches (Raft entries) per `apply` call: openraft hands the state machine the entries
/// committed since the last call, a few at a time under load.
pub const ENTRIES_PER_APPLY: usize = 4;
/// Refused commands tolerated per million before a load fails: the stream is built to be
/// accepted, so more means the workload and the model disagree.
const REJECTED_PER_MILLION_MAX: u64 = 100;
/// The manifest's file name inside a fixture directory.
const MANIFEST: &str = "fixture.json";
/// The free space checked every this many apply calls.
const DISK_CHECK_EVERY_CALLS: u64 = 32;

/// What a loaded fixture holds and what loading it cost.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub seed: u64,
    pub target_events: u64,
    /// The last seq: the tree size.
    pub events: u64,
    pub batches: u64,
    pub commands: u64,
    pub rejected: u64,
    pub world: World,
    pub first_time_ms: u64,
    pub last_time_ms: u64,
    pub load_seconds: f64,
    pub events_per_s: f64,
    /// The data dir's size on disk once loaded (RocksDB may still be compacting).
    pub disk_bytes: u64,
    pub storage_cache_mib: u64,
    /// `audited` (identity::apply_batch) or `unaudited` (apply_batch_unaudited).
    pub apply: String,
}

/// An open fixture.
pub struct Fixture {
    pub dir: PathBuf,
    pub store: StateMachineStore,
    pub manifest: Manifest,
}

/// How to load one fixture.
#[derive(Clone, Copy, Debug)]
pub struct Spec {
    pub seed: u64,
    pub target_events: u64,
    pub storage_cache_mib: u64,
    /// Show a progress bar.
    pub progress: bool,
}

/// Opens the fixture in `dir` if a complete one for `spec` is there, or loads it afresh.
pub fn open_or_load(dir: &Path, spec: Spec) -> anyhow::Result<Fixture> {
    if let Some(manifest) = read_manifest(dir)?
        && manifest.seed == spec.seed
        && manifest.target_events == spec.target_events
        && manifest.apply == "audited"
    {
        let store = open_store(dir, spec.storage_cache_mib)?;
        eprintln!(
            "reusing the fixture in {} ({} events)",
            dir.display(),
            manifest.events
        );
        return Ok(Fixture {
            dir: dir.to_path_buf(),
            store,
            manifest,
        });
    }
    load(dir, spec, warrant_identity::apply_batch, "audited")
}

/// Loads a fresh fixture into `dir` (emptied first) with `apply` deciding each batch.
pub fn load(dir: &Path, spec: Spec, apply: ApplyFn, apply_name: &str) -> anyhow::Result<Fixture> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("empty {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    disk::ensure_room(dir, spec.target_events)?;
    let store = open_store(dir, spec.storage_cache_mib)?;
    let mut loader = Loader::new(&store, spec, apply);
    let started = Instant::now();
    let bar = progress_bar(spec);
    let mut logged_tenths = 0;
    while loader.last_seq < spec.target_events {
        loader.step()?;
        bar.set_position(loader.last_seq.min(spec.target_events));
        log_tenth(spec, &mut logged_tenths, loader.last_seq, started);
        if loader.calls.is_multiple_of(DISK_CHECK_EVERY_CALLS) {
            disk::ensure_floor(dir)?;
        }
    }
    bar.finish_and_clear();
    let load_seconds = started.elapsed().as_secs_f64();
    loader.check_rejections()?;
    let manifest = Manifest {
        seed: spec.seed,
        target_events: spec.target_events,
        events: loader.last_seq,
        batches: loader.next_index - 1,
        commands: loader.commands,
        rejected: loader.rejected,
        world: loader.workload.world(),
        first_time_ms: batch_time_ms(0),
        last_time_ms: loader.last_time_ms(),
        load_seconds,
        events_per_s: loader.last_seq as f64 / load_seconds,
        disk_bytes: disk::size_of(dir)?,
        storage_cache_mib: spec.storage_cache_mib,
        apply: apply_name.to_string(),
    };
    let path = dir.join(MANIFEST);
    std::fs::write(&path, serde_json::to_vec_pretty(&manifest)?)
        .with_context(|| format!("write {}", path.display()))?;
    Ok(Fixture {
        dir: dir.to_path_buf(),
        store,
        manifest,
    })
}

/// The state machine of the data dir `dir`, within a `cache_mib` storage budget.
pub fn open_store(dir: &Path, cache_mib: u64) -> anyhow::Result<StateMachineStore> {
    let memory = StorageMemory::new(cache_mib).map_err(anyhow::Error::msg)?;
    StateMachineStore::open(dir, &memory)
        .map_err(|e| anyhow::format_err!("open the state machine in {}: {e}", dir.display()))
}

fn read_manifest(dir: &Path) -> anyhow::Result<Option<Manifest>> {
    let path = dir.join(MANIFEST);
    match std::fs::read(&path) {
        Ok(bytes) => Ok(Some(
            serde_json::from_slice(&bytes).with_context(|| format!("parse {}", path.display()))?,
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("read {}", path.display())),
    }
}

/// Without a terminal (the bar is hidden then), one line per tenth of the load.
fn log_tenth(spec: Spec, logged: &mut u64, events: u64, started: Instant) {
    if !spec.progress || std::io::stderr().is_terminal() {
        return;
    }
    let tenths = (events.saturating_mul(10) / spec.target_events.max(1)).min(10);
    if *logged < tenths {
        *logged = tenths;
        let seconds = started.elapsed().as_secs_f64();
        eprintln!(
            "  loaded {events} of {} events in {seconds:.0} s ({:.0}/s)",
            spec.target_events,
            events as f64 / seconds
        );
    }
}

fn progress_bar(spec: Spec) -> ProgressBar {
    if !spec.progress {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(spec.target_events);
    if let Ok(style) = ProgressStyle::with_template(
        "{msg} [{elapsed_precise}] {wide_bar} {pos}/{len} events ({per_sec}, eta {eta})",
    ) {
        bar.set_style(style);
    }
    bar.set_message(format!("loading {} events", spec.target_events));
    bar
}

/// Feeds the workload into a store, [`ENTRIES_PER_APPLY`] batches per call.
pub struct Loader<'s> {
    store: &'s StateMachineStore,
    apply: ApplyFn,
    pub workload: Workload,
    /// The log index of the next entry.
    next_index: u64,
    pub last_seq: u64,
    pub calls: u64,
    pub commands: u64,
    pub rejected: u64,
    first_rejection: Option<String>,
}

impl<'s> Loader<'s> {
    pub fn new(store: &'s StateMachineStore, spec: Spec, apply: ApplyFn) -> Self {
        Loader {
            store,
            apply,
            workload: Workload::new(spec.seed, spec.target_events),
            next_index: 1,
            last_seq: 0,
            calls: 0,
            commands: 0,
            rejected: 0,
            first_rejection: None,
        }
    }

    /// The stamp of the last batch applied.
    pub fn last_time_ms(&self) -> u64 {
        batch_time_ms(self.next_index.saturating_sub(2))
    }

    /// The next apply call's batches (not yet applied).
    pub fn next_batches(&mut self) -> Vec<log::Batch> {
        (0..ENTRIES_PER_APPLY)
            .map(|_| self.workload.next_batch())
            .collect()
    }

    /// Makes and applies one call's batches.
    pub fn step(&mut self) -> anyhow::Result<()> {
        let batches = self.next_batches();
        self.apply(&batches)
    }

    /// Applies `batches` in one call, counting what was refused.
    pub fn apply(&mut self, batches: &[log::Batch]) -> anyhow::Result<()> {
        let responses = self
            .store
            .apply_batches_with(self.next_index, batches, self.apply)
            .map_err(|e| anyhow::format_err!("apply at log index {}: {e}", self.next_index))?;
        self.next_index += batches.len() as u64;
        self.calls += 1;
        for response in responses {
            let outcomes = log::BatchOutcomes::decode(response.0.as_slice())
                .context("decode the batch outcomes")?;
            for outcome in outcomes.outcomes {
                self.commands += 1;
                if !matches!(outcome.result, Some(OutcomeResult::Accepted(_))) {
                    self.rejected += 1;
                    if self.first_rejection.is_none() {
                        self.first_rejection = Some(format!("{:?}", outcome.result));
                    }
                }
            }
        }
        // Refused commands add events too (`CommandRejected`): the store says where the log is.
        self.last_seq = warrant_identity::query::applied_seq(&self.store.reader())
            .context("read the last seq")?;
        Ok(())
    }

    /// Fails when apply refused more than a trace of the stream.
    pub fn check_rejections(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.rejected * 1_000_000 <= self.commands * REJECTED_PER_MILLION_MAX,
            "apply refused {} of {} commands (at most {REJECTED_PER_MILLION_MAX} per million \
             allowed); the first: {}",
            self.rejected,
            self.commands,
            self.first_rejection.as_deref().unwrap_or("none")
        );
        Ok(())
    }
}
