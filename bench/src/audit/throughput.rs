//! Apply throughput with the tree and history (`identity::apply_batch`) against today's apply
//! without them (`identity::apply::apply_batch_unaudited`), in the same run over the same
//! batches: in memory (apply alone), and into RocksDB through the state machine's write path
//! (decode, apply, one synced `WriteBatch` per call). The two sides take turns call by call,
//! the first of each pair alternating, so drift on the machine falls on both alike.

use std::{path::Path, time::Instant};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use warrant_identity::{InMemoryState, apply::apply_batch_unaudited, apply_batch};

use super::{
    disk,
    fixture::{self, Loader, Spec},
    lookups::{self, OpResult},
    workload::Workload,
};

/// One comparison: the same events applied both ways.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Throughput {
    /// `in memory` or `RocksDB`.
    pub store: String,
    pub events: u64,
    pub audited_s: f64,
    pub unaudited_s: f64,
    pub audited_events_per_s: f64,
    pub unaudited_events_per_s: f64,
    /// Audited throughput over unaudited: the goal is ≥ 0.8.
    pub ratio: f64,
}

impl Throughput {
    fn new(store: &str, events: u64, audited_s: f64, unaudited_s: f64) -> Self {
        Throughput {
            store: store.to_string(),
            events,
            audited_s,
            unaudited_s,
            audited_events_per_s: events as f64 / audited_s,
            unaudited_events_per_s: events as f64 / unaudited_s,
            ratio: unaudited_s / audited_s,
        }
    }
}

/// The current-state reads on both stores of the RocksDB comparison, which hold the same
/// projection rows; the audited one holds the tree and every version besides.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CurrentReads {
    pub events: u64,
    /// Each store's SST files when read (RocksDB may still be compacting what the load wrote).
    pub audited_sst_bytes: u64,
    pub unaudited_sst_bytes: u64,
    pub audited: Vec<OpResult>,
    pub unaudited: Vec<OpResult>,
}

/// `apply_batch` (timed) then committing its writes (untimed), one batch.
fn timed_apply(
    state: &mut InMemoryState,
    batch: &warrant_proto::log::Batch,
    index: u64,
    apply: warrant_raft::storage::ApplyFn,
) -> anyhow::Result<(f64, usize)> {
    let start = Instant::now();
    let applied = apply(&*state, batch, index).context("apply")?;
    let seconds = start.elapsed().as_secs_f64();
    state.apply_writes(&applied.writes);
    Ok((seconds, applied.events.len()))
}

/// In memory: about `target_events` events of the fixture stream.
pub fn in_memory(seed: u64, target_events: u64) -> anyhow::Result<Throughput> {
    let mut workload = Workload::new(seed, target_events);
    let (mut audited, mut unaudited) = (InMemoryState::new(), InMemoryState::new());
    let (mut audited_s, mut unaudited_s) = (0.0, 0.0);
    let mut events = 0_u64;
    let mut index = 0_u64;
    while events < target_events {
        index += 1;
        let batch = workload.next_batch();
        let (a, b) = if index.is_multiple_of(2) {
            let a = timed_apply(&mut audited, &batch, index, apply_batch)?;
            (
                a,
                timed_apply(&mut unaudited, &batch, index, apply_batch_unaudited)?,
            )
        } else {
            let b = timed_apply(&mut unaudited, &batch, index, apply_batch_unaudited)?;
            (timed_apply(&mut audited, &batch, index, apply_batch)?, b)
        };
        anyhow::ensure!(
            a.1 == b.1,
            "batch {index}: the audited apply added {} events, the unaudited {}",
            a.1,
            b.1
        );
        audited_s += a.0;
        unaudited_s += b.0;
        events += a.1 as u64;
    }
    Ok(Throughput::new("in memory", events, audited_s, unaudited_s))
}

/// Into two fresh state machines under `dir` (removed after): about `target_events` events;
/// then `lookups` current-state reads of each (none when 0).
pub fn rocksdb(
    dir: &Path,
    seed: u64,
    target_events: u64,
    cache_mib: u64,
    lookups: u64,
) -> anyhow::Result<(Throughput, Option<CurrentReads>)> {
    let (dir_a, dir_b) = (dir.join("audited"), dir.join("unaudited"));
    for d in [&dir_a, &dir_b] {
        if d.exists() {
            std::fs::remove_dir_all(d).with_context(|| format!("empty {}", d.display()))?;
        }
        std::fs::create_dir_all(d).with_context(|| format!("create {}", d.display()))?;
    }
    disk::ensure_room(dir, 2 * target_events)?;
    let result = compare_stores(&dir_a, &dir_b, seed, target_events, cache_mib, lookups);
    for d in [&dir_a, &dir_b] {
        std::fs::remove_dir_all(d).with_context(|| format!("remove {}", d.display()))?;
    }
    result
}

fn compare_stores(
    dir_a: &Path,
    dir_b: &Path,
    seed: u64,
    target_events: u64,
    cache_mib: u64,
    lookups: u64,
) -> anyhow::Result<(Throughput, Option<CurrentReads>)> {
    let store_a = fixture::open_store(dir_a, cache_mib)?;
    let store_b = fixture::open_store(dir_b, cache_mib)?;
    let spec = Spec {
        seed,
        target_events,
        storage_cache_mib: cache_mib,
        progress: false,
    };
    let mut a = Loader::new(&store_a, spec, apply_batch);
    let mut b = Loader::new(&store_b, spec, apply_batch_unaudited);
    let (mut audited_s, mut unaudited_s) = (0.0, 0.0);
    while a.last_seq < target_events {
        // One stream feeds both: the same batches, made once.
        let batches = a.next_batches();
        let time = |loader: &mut Loader<'_>| {
            let start = Instant::now();
            loader.apply(&batches)?;
            anyhow::Ok(start.elapsed().as_secs_f64())
        };
        if a.calls.is_multiple_of(2) {
            audited_s += time(&mut a)?;
            unaudited_s += time(&mut b)?;
        } else {
            unaudited_s += time(&mut b)?;
            audited_s += time(&mut a)?;
        }
        if a.calls.is_multiple_of(32) {
            disk::ensure_floor(dir_a)?;
        }
    }
    a.check_rejections()?;
    b.check_rejections()?;
    anyhow::ensure!(
        a.last_seq == b.last_seq,
        "the audited store holds {} events, the unaudited {}",
        a.last_seq,
        b.last_seq
    );
    let throughput = Throughput::new("RocksDB", a.last_seq, audited_s, unaudited_s);
    if lookups == 0 {
        return Ok((throughput, None));
    }
    let (world, last_ms) = (a.workload.world(), a.last_time_ms());
    let sst_bytes = |store: &warrant_raft::storage::StateMachineStore| {
        store
            .storage_usage()
            .map(|usage| usage.sst_file_bytes)
            .map_err(anyhow::Error::msg)
    };
    let current = CurrentReads {
        events: a.last_seq,
        audited_sst_bytes: sst_bytes(&store_a)?,
        unaudited_sst_bytes: sst_bytes(&store_b)?,
        audited: lookups::measure_current(&store_a.reader(), world, last_ms, lookups, seed)?,
        unaudited: lookups::measure_current(&store_b.reader(), world, last_ms, lookups, seed)?,
    };
    Ok((throughput, Some(current)))
}
