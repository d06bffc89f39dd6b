//! The storage memory budget: the RocksDB options every database of a node is opened with.
//!
//! One number, `storage_cache_mib`, bounds what RocksDB holds in memory for both databases (the
//! Raft log and the state machine's live generation, plus a checkpoint being read for a snapshot
//! and a generation being loaded from one). With RocksDB's defaults each column family had up to
//! two 64 MiB memtables and its own 8 MiB block cache, and kept every SST file's index and filter
//! blocks outside any cache, so memory grew with the history. Here:
//!
//! - one LRU block cache of the budget is shared by every column family of every database;
//! - index and filter blocks are cached in it (charged to the budget, evictable), with those of
//!   level-0 files pinned, because every read consults all of them;
//! - memtables are charged to the same cache by one `WriteBufferManager`, which asks for a flush
//!   once they hold [`MEMTABLE_SHARE_DIVISOR`]⁻¹ of the budget; each column family also has a
//!   fixed cap (`write_buffer_size` × [`MEMTABLES_PER_CF_MAX`]).
//!
//! What stays outside the budget: RocksDB's fixed per-file and per-database bookkeeping (table
//! reader stubs, the manifest, iterators' pinned blocks while they run) and the process's own
//! heap.

use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamilyDescriptor, DB, DEFAULT_COLUMN_FAMILY_NAME, Options,
    WriteBufferManager,
};

/// The default budget: the working set of a state of about a million events (its index and
/// filter blocks, which live in the cache, and the hot rows) fits. Below the working set every
/// point read re-reads and re-parses index and filter blocks, and the write buffer manager
/// flushes small memtables early. Measured importing 10⁶ events into one node (debug build,
/// 211 MiB snapshot): 25 s at 256 MiB and at 1 GiB, 107 s at 128 MiB, 278 s at 64 MiB. Size it
/// to about the state's size on disk (`snapshots/*.snap`).
pub const STORAGE_CACHE_MIB_DEFAULT: u64 = 256;
/// The smallest budget accepted: memtables get half of it, 4 MiB, still room for one full Raft
/// entry's rows (under ~3 MiB, see [`STATE_MEMTABLE_BYTES`]) before a flush is asked for.
pub const STORAGE_CACHE_MIB_MIN: u64 = 8;
/// The largest budget accepted, 64 GiB: beyond any machine this runs on; a typo of a few
/// digits is refused rather than letting the cache grow into swap.
pub const STORAGE_CACHE_MIB_MAX: u64 = 65_536;

const MIB: usize = 1024 * 1024;

/// Memtables may hold 1/2 of the budget before the write buffer manager asks for a flush; the
/// other half is left to data, index and filter blocks. The log and the state are written at
/// the same rate and read mostly at their tails, which the memtables serve.
const MEMTABLE_SHARE_DIVISOR: usize = 2;

/// The `logs` column family's memtable. An entry carries at most 1 MiB of commands (the
/// proposer's bound), and an append writes a few entries at once, so 8 MiB holds several
/// appends; the entries behind a snapshot are purged, so the log's data stays small and a
/// larger memtable would only delay the flush of entries nobody reads again.
const LOG_MEMTABLE_BYTES: usize = 8 * MIB;

/// The `state` column family's memtable. One 1,024-command, ≤ 1 MiB entry writes an event that
/// embeds each command, its projection rows and its outcome: under ~3 MiB. 16 MiB holds about
/// five such applies before a flush, so flushes write SST files of a useful size.
const STATE_MEMTABLE_BYTES: usize = 16 * MIB;

/// The small column families (`meta`: vote, last purged and committed ids; `raft`: applied id,
/// membership, last batch stamp; and RocksDB's `default`, unused): a few keys rewritten on every
/// append or apply, under 100 bytes each, so 1 MiB holds ~10k rewrites before a flush.
const SMALL_MEMTABLE_BYTES: usize = MIB;

/// Memtables per column family: the one being written and one being flushed. More would only
/// let writes run further ahead of a slow disk, holding memory meanwhile.
const MEMTABLES_PER_CF_MAX: i32 = 2;

/// SST data block size. An index holds one entry per block, so 16 KiB blocks keep the index a
/// quarter of the 4 KiB default's, which matters as the history grows; an uncached point
/// lookup reads 16 KiB, usually from the page cache.
const BLOCK_BYTES: usize = 16 * 1024;

/// Bloom filter bits per key for the point-lookup column families (about a 1 % false-positive
/// rate): apply and the API read rows by exact key, mostly ones that exist, but idempotency
/// and "already registered" checks ask for keys that do not, and those skip every SST file.
/// The `logs` family is read by range (`try_get_log_entries`), where a filter does not help.
const BLOOM_BITS_PER_KEY: f64 = 10.0;

/// RocksDB background threads (flushes and compactions) per database. Two cores are shared by
/// three nodes in tests, and the default cluster runs on small machines.
const BACKGROUND_JOBS_MAX: i32 = 2;

/// What a column family holds, which decides its memtable size and whether it has a filter.
#[derive(Clone, Copy, Debug)]
pub(crate) enum ColumnFamilyRole {
    /// The Raft log's entries: written at the tail, read by range, purged from the head.
    Log,
    /// The identity model's rows: read by key and by prefix scan.
    State,
    /// A handful of keys rewritten often (`meta`, `raft`, `default`).
    Small,
}

/// The budget, and the cache and write buffer manager every database of one node shares. Cheap
/// to clone: clones share the same cache.
#[derive(Clone)]
pub struct StorageMemory {
    cache: Cache,
    write_buffers: WriteBufferManager,
    budget_bytes: usize,
}

impl StorageMemory {
    /// A budget of `cache_mib` MiB, refused outside
    /// [`STORAGE_CACHE_MIB_MIN`]..=[`STORAGE_CACHE_MIB_MAX`].
    pub fn new(cache_mib: u64) -> Result<Self, String> {
        if !(STORAGE_CACHE_MIB_MIN..=STORAGE_CACHE_MIB_MAX).contains(&cache_mib) {
            return Err(format!(
                "storage_cache_mib is {cache_mib}; allowed: {STORAGE_CACHE_MIB_MIN} to {STORAGE_CACHE_MIB_MAX}"
            ));
        }
        let budget_bytes = usize::try_from(cache_mib)
            .ok()
            .and_then(|mib| mib.checked_mul(MIB))
            .ok_or_else(|| format!("storage_cache_mib {cache_mib} does not fit this machine"))?;
        let cache = Cache::new_lru_cache(budget_bytes);
        // No write stalls: a stalled writer across two databases waits for a flush of the other,
        // and the per-family caps already bound the worst case.
        let write_buffers = WriteBufferManager::new_write_buffer_manager_with_cache(
            budget_bytes / MEMTABLE_SHARE_DIVISOR,
            false,
            cache.clone(),
        );
        Ok(StorageMemory {
            cache,
            write_buffers,
            budget_bytes,
        })
    }

    /// The budget in bytes: the shared cache's capacity.
    pub fn budget_bytes(&self) -> u64 {
        self.budget_bytes as u64
    }

    /// The bytes memtables may hold before the write buffer manager asks for a flush.
    pub fn memtable_limit_bytes(&self) -> u64 {
        (self.budget_bytes / MEMTABLE_SHARE_DIVISOR) as u64
    }

    /// Options for opening a database: the database-wide settings, and those of its `default`
    /// column family (which Warrant does not use).
    pub(crate) fn db_options(&self) -> Options {
        let mut options = self.cf_options(ColumnFamilyRole::Small);
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        options.set_max_background_jobs(BACKGROUND_JOBS_MAX);
        options.set_write_buffer_manager(&self.write_buffers);
        options
    }

    /// The descriptors to open a database's `families` with, plus RocksDB's `default` family,
    /// which the `rocksdb` crate would otherwise open with default options (its own 32 MiB
    /// cache, uncached index blocks).
    pub(crate) fn descriptors(
        &self,
        families: &[(&str, ColumnFamilyRole)],
    ) -> Vec<ColumnFamilyDescriptor> {
        let default = (DEFAULT_COLUMN_FAMILY_NAME, ColumnFamilyRole::Small);
        families
            .iter()
            .chain([&default])
            .map(|(name, role)| ColumnFamilyDescriptor::new(*name, self.cf_options(*role)))
            .collect()
    }

    /// Options for one column family of `role`.
    fn cf_options(&self, role: ColumnFamilyRole) -> Options {
        let mut table = BlockBasedOptions::default();
        table.set_block_cache(&self.cache);
        table.set_block_size(BLOCK_BYTES);
        table.set_cache_index_and_filter_blocks(true);
        table.set_pin_l0_filter_and_index_blocks_in_cache(true);
        let memtable_bytes = match role {
            ColumnFamilyRole::Log => LOG_MEMTABLE_BYTES,
            ColumnFamilyRole::State => STATE_MEMTABLE_BYTES,
            ColumnFamilyRole::Small => SMALL_MEMTABLE_BYTES,
        };
        if matches!(role, ColumnFamilyRole::State | ColumnFamilyRole::Small) {
            table.set_bloom_filter(BLOOM_BITS_PER_KEY, false);
        }
        let mut options = Options::default();
        options.set_block_based_table_factory(&table);
        options.set_write_buffer_size(memtable_bytes);
        options.set_max_write_buffer_number(MEMTABLES_PER_CF_MAX);
        options
    }
}

/// What RocksDB reports one database holds, summed over its column families.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StorageUsage {
    /// The shared cache's capacity (`rocksdb.block-cache-capacity`).
    pub cache_capacity_bytes: u64,
    /// Everything charged to the shared cache, by every database using it: data, index and
    /// filter blocks and the memtables' reservations (`rocksdb.block-cache-usage`).
    pub cache_usage_bytes: u64,
    /// This database's memtables, active and immutable (`rocksdb.cur-size-all-mem-tables`).
    pub memtable_bytes: u64,
    /// This database's table readers outside the cache (`rocksdb.estimate-table-readers-mem`):
    /// index and filter blocks would be here if they were not cached.
    pub table_reader_bytes: u64,
    /// This database's SST files on disk (`rocksdb.total-sst-files-size`); not memory.
    pub sst_file_bytes: u64,
}

/// Reads [`StorageUsage`] of `db`, whose column families are `cf_names`.
pub(crate) fn usage(db: &DB, cf_names: &[&str]) -> Result<StorageUsage, String> {
    let int = |value: Result<Option<u64>, rocksdb::Error>, name: &str| {
        value
            .map_err(|e| format!("read {name}: {e}"))
            .map(|v| v.unwrap_or(0))
    };
    let mut usage = StorageUsage {
        cache_capacity_bytes: int(
            db.property_int_value("rocksdb.block-cache-capacity"),
            "block-cache-capacity",
        )?,
        cache_usage_bytes: int(
            db.property_int_value("rocksdb.block-cache-usage"),
            "block-cache-usage",
        )?,
        ..StorageUsage::default()
    };
    for name in cf_names {
        let cf = db
            .cf_handle(name)
            .ok_or_else(|| format!("no column family {name}"))?;
        let cf_int = |property: &str| {
            int(
                db.property_int_value_cf(cf, format!("rocksdb.{property}").as_str()),
                property,
            )
        };
        usage.memtable_bytes += cf_int("cur-size-all-mem-tables")?;
        usage.table_reader_bytes += cf_int("estimate-table-readers-mem")?;
        usage.sst_file_bytes += cf_int("total-sst-files-size")?;
    }
    Ok(usage)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_outside_the_bounds_are_refused_naming_the_key() {
        for mib in [0, STORAGE_CACHE_MIB_MIN - 1, STORAGE_CACHE_MIB_MAX + 1] {
            let error = StorageMemory::new(mib).err().expect("refused");
            assert!(error.contains("storage_cache_mib"), "{error}");
        }
        let memory = StorageMemory::new(STORAGE_CACHE_MIB_MIN).expect("the minimum is accepted");
        assert_eq!(memory.budget_bytes(), STORAGE_CACHE_MIB_MIN * MIB as u64);
    }
}
