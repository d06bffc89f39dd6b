//! The Raft log on RocksDB.
//!
//! Column families: `logs` maps a big-endian `u64` index to a postcard-encoded [`Entry`]; `meta`
//! holds the vote, the last purged log id and the committed log id.
//!
//! Durability: `append` writes one synced `WriteBatch` and only then tells openraft the entries
//! are flushed; the vote is written synced before `save_vote` returns; `purge` persists the last
//! purged log id in the same synced batch that deletes the entries. The committed log id is
//! written without sync because openraft treats it as a hint (it re-learns commit from the
//! leader). The `ack_before_fsync` canary of a chaos build breaks the first rule on purpose
//! (`write_appended`).

use std::{fmt::Debug, ops::RangeBounds, path::Path, sync::Arc};

use openraft::{
    LogState, OptionalSend, RaftLogReader,
    storage::{LogFlushed, RaftLogStorage},
};
use rocksdb::{DB, Direction, IteratorMode, WriteBatch, WriteOptions};
use serde::{Serialize, de::DeserializeOwned};

use crate::{
    error::StartError,
    limits::APPEND_ENTRIES_BYTES_MAX,
    storage_memory::{ColumnFamilyRole, StorageMemory, StorageUsage},
    types::{Entry, LogId, StorageError, StorageIOError, TypeConfig, Vote, entry_bytes_max},
};

const CF_LOGS: &str = "logs";
const CF_META: &str = "meta";
const KEY_VOTE: &[u8] = b"vote";
const KEY_LAST_PURGED: &[u8] = b"last_purged";
const KEY_COMMITTED: &[u8] = b"committed";

/// The RocksDB-backed Raft log. Cheap to clone: clones share one database.
#[derive(Clone)]
pub struct LogStore {
    db: Arc<DB>,
}

impl LogStore {
    /// Syncs the write-ahead log: at shutdown, after Raft stopped.
    pub(crate) fn flush(&self) -> Result<(), rocksdb::Error> {
        // What the canary wrote without a WAL is durable only in SST files.
        #[cfg(feature = "chaos")]
        if crate::chaos::ack_before_fsync() {
            crate::chaos::flush_memtables(&self.db, &[CF_LOGS, CF_META])?;
        }
        self.db.flush_wal(true)
    }

    /// Opens (or creates) the log database in `path`, within the node's storage memory budget.
    pub fn open(path: &Path, memory: &StorageMemory) -> Result<Self, StartError> {
        let cfs = memory.descriptors(&[
            (CF_LOGS, ColumnFamilyRole::Log),
            (CF_META, ColumnFamilyRole::Small),
        ]);
        // RocksDB would create the directory 0755 less the umask.
        crate::private_fs::create_private_dir_all(path).map_err(|e| StartError::OpenLog {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        let db = DB::open_cf_descriptors(&memory.db_options(), path, cfs).map_err(|e| {
            StartError::OpenLog {
                path: path.display().to_string(),
                reason: e.to_string(),
            }
        })?;
        let db = Arc::new(db);
        #[cfg(feature = "chaos")]
        if crate::chaos::ack_before_fsync() {
            crate::chaos::spawn_memtable_flusher(
                "chaos-log-flush",
                Arc::downgrade(&db),
                Arc::clone,
                &[CF_LOGS, CF_META],
            );
        }
        Ok(LogStore { db })
    }

    /// What RocksDB reports this database holds in memory (and on disk).
    pub fn storage_usage(&self) -> Result<StorageUsage, String> {
        crate::storage_memory::usage(&self.db, &[CF_LOGS, CF_META])
    }

    fn logs(&self) -> &rocksdb::ColumnFamily {
        // Invariant: both column families are created in `open`.
        self.db
            .cf_handle(CF_LOGS)
            .expect("logs column family exists")
    }

    fn meta(&self) -> &rocksdb::ColumnFamily {
        self.db
            .cf_handle(CF_META)
            .expect("meta column family exists")
    }

    fn read_meta<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, StorageError> {
        let bytes = self
            .db
            .get_cf(self.meta(), key)
            .map_err(|e| StorageIOError::read(&e))?;
        match bytes {
            None => Ok(None),
            Some(bytes) => postcard::from_bytes(&bytes)
                .map(Some)
                .map_err(|e| StorageIOError::read(&e).into()),
        }
    }

    fn write_meta<T: Serialize>(
        &self,
        key: &[u8],
        value: &T,
        sync: bool,
    ) -> Result<(), StorageError> {
        let bytes = postcard::to_allocvec(value).map_err(|e| StorageIOError::write(&e))?;
        let mut write_options = WriteOptions::default();
        write_options.set_sync(sync);
        self.db
            .put_cf_opt(self.meta(), key, bytes, &write_options)
            .map_err(|e| StorageIOError::write(&e).into())
    }

    fn last_entry_log_id(&self) -> Result<Option<LogId>, StorageError> {
        let mut iter = self.db.iterator_cf(self.logs(), IteratorMode::End);
        match iter.next() {
            None => Ok(None),
            Some(item) => {
                let (_, value) = item.map_err(|e| StorageIOError::read_logs(&e))?;
                let entry: Entry =
                    postcard::from_bytes(&value).map_err(|e| StorageIOError::read_logs(&e))?;
                Ok(Some(entry.log_id))
            }
        }
    }

    /// Writes appended entries: synced, so they survive a crash before openraft hears of them.
    fn write_appended(&self, batch: WriteBatch) -> Result<(), rocksdb::Error> {
        crash_point!(crate::chaos::LOG_APPEND_BEFORE_FSYNC);
        #[cfg(feature = "chaos")]
        if crate::chaos::ack_before_fsync() {
            // Planted bug (`ack_before_fsync`): the entries are acknowledged while they live
            // only in a memtable; a SIGKILL before the next flush loses them.
            return self
                .db
                .write_opt(batch, &crate::chaos::unlogged_write_options());
        }
        self.write_synced(batch)?;
        crash_point!(crate::chaos::LOG_APPEND_AFTER_FSYNC);
        Ok(())
    }

    fn write_synced(&self, batch: WriteBatch) -> Result<(), rocksdb::Error> {
        let mut write_options = WriteOptions::default();
        write_options.set_sync(true);
        let started = std::time::Instant::now();
        let written = self.db.write_opt(batch, &write_options);
        crate::metrics::fsync_finished(started.elapsed());
        written
    }
}

fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

fn start_index(range: &impl RangeBounds<u64>) -> u64 {
    match range.start_bound() {
        std::ops::Bound::Included(start) => *start,
        std::ops::Bound::Excluded(start) => start.saturating_add(1),
        std::ops::Bound::Unbounded => 0,
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let start = start_index(&range);
        // Exclusive end; `None` means unbounded.
        let end = match range.end_bound() {
            std::ops::Bound::Included(end) => Some(end.saturating_add(1)),
            std::ops::Bound::Excluded(end) => Some(*end),
            std::ops::Bound::Unbounded => None,
        };
        self.read_entries(start, end, usize::MAX).await
    }

    /// What one AppendEntries may carry: entries from `start` within
    /// [`APPEND_ENTRIES_BYTES_MAX`], and always the first. openraft reads a lagging follower's
    /// entries through this, up to `max_payload_entries` (256 full batches) at a time, and
    /// would otherwise hold them all in memory for the peer client to refuse.
    async fn limited_get_log_entries(
        &mut self,
        start: u64,
        end: u64,
    ) -> Result<Vec<Entry>, StorageError> {
        self.read_entries(start, Some(end), APPEND_ENTRIES_BYTES_MAX)
            .await
    }
}

impl LogStore {
    /// The entries from `start` to `end` (exclusive; `None` for the last), stopping before the
    /// first that would take them past `bytes_max` ([`entry_bytes_max`]), unless it is the
    /// first.
    async fn read_entries(
        &self,
        start: u64,
        end: Option<u64>,
        bytes_max: usize,
    ) -> Result<Vec<Entry>, StorageError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || {
            let mode = IteratorMode::From(&index_key(start), Direction::Forward);
            let mut entries = Vec::new();
            let mut n_bytes = 0usize;
            for item in store.db.iterator_cf(store.logs(), mode) {
                let (key, value) = item.map_err(|e| StorageIOError::read_logs(&e))?;
                let index = u64::from_be_bytes(key.as_ref().try_into().map_err(|_| {
                    StorageIOError::read_logs(&std::io::Error::other("log key is not 8 bytes"))
                })?);
                if end.is_some_and(|end| end <= index) {
                    break;
                }
                let entry: Entry =
                    postcard::from_bytes(&value).map_err(|e| StorageIOError::read_logs(&e))?;
                n_bytes = n_bytes.saturating_add(entry_bytes_max(&entry));
                if bytes_max < n_bytes && !entries.is_empty() {
                    break;
                }
                entries.push(entry);
            }
            Ok(entries)
        })
        .await
        .map_err(|e| StorageError::from(StorageIOError::read_logs(&e)))?
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged_log_id: Option<LogId> = self.read_meta(KEY_LAST_PURGED)?;
        let last_log_id = self.last_entry_log_id()?.or(last_purged_log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let store = self.clone();
        let vote = *vote;
        let saved = tokio::task::spawn_blocking(move || store.write_meta(KEY_VOTE, &vote, true))
            .await
            .map_err(|e| StorageError::from(StorageIOError::write_vote(&e)))?;
        crash_point!(crate::chaos::VOTE_SAVED);
        saved
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        self.read_meta(KEY_VOTE)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        self.write_meta(KEY_COMMITTED, &committed, false)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        let committed = self.read_meta::<Option<LogId>>(KEY_COMMITTED)?.flatten();
        #[cfg(feature = "chaos")]
        if crate::chaos::ack_before_fsync() {
            return self.committed_within_log(committed);
        }
        Ok(committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut batch = WriteBatch::default();
        for entry in entries {
            let bytes =
                postcard::to_allocvec(&entry).map_err(|e| StorageIOError::write_logs(&e))?;
            batch.put_cf(self.logs(), index_key(entry.log_id.index), bytes);
        }
        let store = self.clone();
        // The synced write is the fsync: openraft may count these entries toward a quorum only
        // once they survive a crash, so the callback fires after it returns.
        let result = tokio::task::spawn_blocking(move || store.write_appended(batch))
            .await
            .map_err(|e| StorageError::from(StorageIOError::write_logs(&e)))?;
        match result {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
                Err(StorageIOError::write_logs(&e).into())
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(self.logs(), index_key(log_id.index), index_key(u64::MAX));
        batch.delete_cf(self.logs(), index_key(u64::MAX));
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.write_synced(batch))
            .await
            .map_err(|e| StorageError::from(StorageIOError::write_logs(&e)))?
            .map_err(|e| StorageIOError::write_logs(&e).into())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let mut batch = WriteBatch::default();
        let bytes = postcard::to_allocvec(&log_id).map_err(|e| StorageIOError::write_logs(&e))?;
        batch.put_cf(self.meta(), KEY_LAST_PURGED, bytes);
        batch.delete_range_cf(
            self.logs(),
            index_key(0),
            index_key(log_id.index.saturating_add(1)),
        );
        let store = self.clone();
        let purged = tokio::task::spawn_blocking(move || store.write_synced(batch))
            .await
            .map_err(|e| StorageError::from(StorageIOError::write_logs(&e)))?
            .map_err(|e| StorageIOError::write_logs(&e).into());
        crash_point!(crate::chaos::PURGED);
        purged
    }
}

#[cfg(feature = "chaos")]
impl LogStore {
    /// Under `ack_before_fsync`, the committed hint (written through the WAL, so it survives a
    /// kill) can name entries the kill took from the log. openraft re-applies up to it at start
    /// and would fail on every restart for want of them, so the node would never come up to
    /// show the writes it lost: the hint is cut to the last entry the log still holds.
    fn committed_within_log(
        &self,
        committed: Option<LogId>,
    ) -> Result<Option<LogId>, StorageError> {
        let last_purged: Option<LogId> = self.read_meta(KEY_LAST_PURGED)?;
        let last = self.last_entry_log_id()?.or(last_purged);
        Ok(match (committed, last) {
            (Some(committed), Some(last)) if last.index < committed.index => Some(last),
            (Some(_), None) => None,
            (committed, _) => committed,
        })
    }
}

impl LogStore {
    /// The last committed index this node recorded, 0 if none. A hint for status reports.
    pub fn committed_index(&self) -> u64 {
        match self.read_meta::<Option<LogId>>(KEY_COMMITTED) {
            Ok(committed) => committed.flatten().map(|l| l.index).unwrap_or(0),
            Err(_) => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, EntryPayload};

    use super::*;
    use crate::{proposer::BATCH_BYTES_MAX, types::BatchPayload};

    fn open(dir: &Path) -> LogStore {
        let memory = StorageMemory::new(crate::STORAGE_CACHE_MIB_DEFAULT).expect("budget");
        LogStore::open(dir, &memory).expect("open the log")
    }

    /// Writes entries `1..` with batches of `sizes` bytes, as `append` stores them.
    fn put_entries(store: &LogStore, sizes: &[usize]) {
        for (i, n_bytes) in sizes.iter().enumerate() {
            let index = i as u64 + 1;
            let entry = Entry {
                log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
                payload: EntryPayload::Normal(BatchPayload(vec![7; *n_bytes])),
            };
            let bytes = postcard::to_allocvec(&entry).expect("encode");
            store
                .db
                .put_cf(store.logs(), index_key(index), bytes)
                .expect("put");
        }
    }

    #[tokio::test]
    async fn a_limited_read_stops_at_what_one_append_entries_carries() {
        let dir = tempfile::TempDir::new().expect("temp dir");
        let mut store = open(dir.path());
        put_entries(&store, &[BATCH_BYTES_MAX; 10]);
        let limited = store.limited_get_log_entries(1, 11).await.expect("read");
        let n_bytes: usize = limited.iter().map(entry_bytes_max).sum();
        assert_eq!(limited.len(), 3, "{n_bytes} bytes");
        assert!(n_bytes <= APPEND_ENTRIES_BYTES_MAX);
        assert_eq!(limited[0].log_id.index, 1);
        let all = store.try_get_log_entries(1..11).await.expect("read");
        assert_eq!(all.len(), 10, "an unlimited read is not cut");
    }

    #[cfg(feature = "chaos")]
    #[test]
    fn the_canary_cuts_the_committed_hint_to_the_log_it_kept() {
        let dir = tempfile::TempDir::new().expect("temp dir");
        let store = open(dir.path());
        let log_id = |index| LogId::new(CommittedLeaderId::new(1, 1), index);
        let within = |committed| store.committed_within_log(committed).expect("read");
        assert_eq!(
            within(Some(log_id(5))),
            None,
            "an empty log holds nothing committed"
        );
        put_entries(&store, &[16; 3]);
        assert_eq!(within(Some(log_id(5))), Some(log_id(3)));
        assert_eq!(within(Some(log_id(2))), Some(log_id(2)));
        assert_eq!(within(None), None);
        store
            .write_meta(KEY_LAST_PURGED, &log_id(9), true)
            .expect("purged");
        store
            .db
            .delete_range_cf(store.logs(), index_key(0), index_key(10))
            .expect("delete");
        assert_eq!(within(Some(log_id(12))), Some(log_id(9)), "up to the purge");
    }

    #[tokio::test]
    async fn a_limited_read_returns_an_entry_larger_than_the_bound_alone() {
        let dir = tempfile::TempDir::new().expect("temp dir");
        let mut store = open(dir.path());
        put_entries(&store, &[2 * APPEND_ENTRIES_BYTES_MAX, 1024, 1024]);
        let limited = store.limited_get_log_entries(1, 4).await.expect("read");
        assert_eq!(limited.len(), 1);
        let rest = store.limited_get_log_entries(2, 4).await.expect("read");
        assert_eq!(rest.len(), 2);
    }
}
