//! A node's RocksDB memory is bounded by its `storage_cache_mib` budget, not by its history.
//!
//! The log store and the state machine are opened with one small budget; the state machine then
//! holds several times the budget of history (so it reached disk in several flushes), is read
//! back whole, built into a snapshot (the read-only checkpoint open) and installed into a second
//! store on the same budget (the bulk-load open). After each step, RocksDB's own accounting must
//! stay within the budget: one shared cache of the budget's capacity, its usage (blocks and the
//! memtables charged to it) within that plus what is pinned, the memtables of every database
//! within it, and next to
//! nothing in table readers outside it.

mod support;

use openraft::{RaftSnapshotBuilder, storage::RaftStateMachine};
use tempfile::TempDir;
use warrant_identity::state_digest;
use warrant_raft::{
    STORAGE_CACHE_MIB_MIN,
    storage::{Entry, LogStore, StateMachineStore, StorageMemory, StorageUsage},
};

/// The smallest budget a node accepts: the easiest one to overrun.
const BUDGET_MIB: u64 = STORAGE_CACHE_MIB_MIN;
/// The history written is at least this many budgets of SST files.
const HISTORY_BUDGETS_MIN: u64 = 4;
/// Registrations per entry, like a full group-commit batch.
const COMMANDS_PER_ENTRY: usize = 1000;
/// Characters of a registration's display name (the most the model allows is 256): drawn
/// from 64 symbols, so they do not compress and the history grows fast.
const NAME_CHARS: usize = 240;
/// Entries applied at most while waiting for the history to reach its size: a bound on the
/// loop, far above what the size needs (each entry adds about 0.5 MiB of SST files).
const ENTRIES_MAX: u64 = 1000;
/// Table readers' memory outside the cache, summed over a database's files. With index and
/// filter blocks in the cache a reader keeps only its bookkeeping: measured 7–36 KiB for this
/// history; with them outside it (`set_cache_index_and_filter_blocks(false)`), 314–352 KiB.
const TABLE_READER_BYTES_MAX: u64 = 64 * 1024;
/// The cache may pass its capacity by what is pinned and cannot be evicted (level-0 index and
/// filter blocks, the memtables' reservation, blocks under a live iterator): RocksDB's LRU cache
/// is not strict, because a strict one fails reads instead. Allowed: 1/16 of the budget
/// (measured: at most ~1 %).
const CACHE_PINNED_SHARE_DIVISOR: u64 = 16;

/// Entry `index`: [`COMMANDS_PER_ENTRY`] registrations with badly compressing names.
fn entry(index: u64) -> Entry {
    let first = (index as usize - 1) * COMMANDS_PER_ENTRY;
    support::registrations_entry(index, first..first + COMMANDS_PER_ENTRY, name)
}

/// A display name of [`NAME_CHARS`] characters that compresses badly, the same for the same
/// `i` (splitmix64).
fn name(i: usize) -> String {
    const SYMBOLS: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+-";
    let mut state = i as u64;
    (0..NAME_CHARS)
        .map(|_| {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            char::from(SYMBOLS[((z ^ (z >> 31)) % 64) as usize])
        })
        .collect()
}

/// Checks RocksDB's accounting of every database on `memory` against the budget, after `step`.
fn assert_within_budget(memory: &StorageMemory, step: &str, databases: &[StorageUsage]) {
    let budget = memory.budget_bytes();
    for usage in databases {
        assert_eq!(
            usage.cache_capacity_bytes, budget,
            "{step}: every database uses the one cache of the budget: {usage:?}"
        );
        assert!(
            usage.cache_usage_bytes <= budget + budget / CACHE_PINNED_SHARE_DIVISOR,
            "{step}: the cache holds more than the budget of {budget} and its pinned share: {usage:?}"
        );
        assert!(
            usage.table_reader_bytes <= TABLE_READER_BYTES_MAX,
            "{step}: index or filter blocks are held outside the cache: {usage:?}"
        );
    }
    let memtables: u64 = databases.iter().map(|u| u.memtable_bytes).sum();
    assert!(
        memtables <= budget,
        "{step}: memtables hold {memtables} bytes, over the budget of {budget}: {databases:?}"
    );
}

fn usage_of(log: &LogStore, state: &StateMachineStore) -> [StorageUsage; 2] {
    [
        log.storage_usage().expect("log store usage"),
        state.storage_usage().expect("state machine usage"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rocksdb_memory_stays_within_the_budget_as_history_grows() {
    let leader_dir = TempDir::new().expect("temp dir");
    let follower_dir = TempDir::new().expect("temp dir");
    let memory = StorageMemory::new(BUDGET_MIB).expect("budget");
    let log = LogStore::open(&leader_dir.path().join("raft-log"), &memory).expect("open log");
    let mut leader = StateMachineStore::open(leader_dir.path(), &memory).expect("open state");

    let history_bytes = HISTORY_BUDGETS_MIN * memory.budget_bytes();
    let mut index = 0;
    loop {
        index += 1;
        assert!(
            index <= ENTRIES_MAX,
            "{ENTRIES_MAX} entries did not make {history_bytes} bytes of SST files"
        );
        leader.apply(vec![entry(index)]).await.expect("apply");
        let usage = usage_of(&log, &leader);
        assert_within_budget(&memory, &format!("apply {index}"), &usage);
        if usage[1].sst_file_bytes >= history_bytes {
            break;
        }
    }
    let written = leader.storage_usage().expect("usage");
    println!("{index} entries of {COMMANDS_PER_ENTRY} registrations: {written:?}");

    // A full scan pulls every data block through the cache.
    let digest = state_digest(&leader.reader()).expect("digest");
    assert_within_budget(&memory, "full read", &usage_of(&log, &leader));

    let snapshot = leader
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .expect("build snapshot");
    assert_within_budget(&memory, "snapshot build", &usage_of(&log, &leader));

    let mut follower = StateMachineStore::open(follower_dir.path(), &memory).expect("open");
    follower
        .install_snapshot(&snapshot.meta, snapshot.snapshot)
        .await
        .expect("install snapshot");
    assert_eq!(
        state_digest(&follower.reader()).expect("digest"),
        digest,
        "the installed state differs from the leader's"
    );
    let installed = follower.storage_usage().expect("usage");
    assert!(
        installed.sst_file_bytes >= history_bytes / 2,
        "the install loaded the history: {installed:?}"
    );
    let [log_usage, leader_usage] = usage_of(&log, &leader);
    assert_within_budget(
        &memory,
        "snapshot install",
        &[log_usage, leader_usage, installed],
    );
}
