//! The state machine: committed batches applied through `warrant_identity::apply_batch`.
//!
//! Layout on disk, under the node's `sm/` directory:
//! - `CURRENT` names the live generation (`gen-<n>`), replaced by write-temp + rename + fsync;
//! - `gen-<n>/` is a RocksDB with two column families: `state` (the identity model's rows:
//!   events and projections) and `raft` (the applied log id, the membership and the last batch
//!   stamp);
//! - snapshots live beside it in `snapshots/`.
//!
//! Every `apply` call writes all of its rows plus the applied log id in one synced `WriteBatch`,
//! so the applied index is atomic with the data and a restart never applies an entry twice.
//! Installing a snapshot builds a new generation and switches `CURRENT` only once it is
//! complete, so a crash mid-install leaves the old state intact.

use std::{
    fs,
    io::Write,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex, RwLock,
        atomic::{AtomicU64, Ordering},
    },
};

use openraft::{
    CommittedLeaderId, EntryPayload, OptionalSend, RaftSnapshotBuilder, storage::RaftStateMachine,
};
use prost::Message;
use rocksdb::{
    ColumnFamilyDescriptor, DB, Direction, IteratorMode, ReadOptions, WriteBatch, WriteOptions,
};
use tokio::sync::watch;
use warrant_identity::{AppliedBatch, Overlay, StateError, StateRead};
use warrant_proto::log;

use crate::{
    apply_trace::ApplyTraces,
    private_fs::{create_private_dir_all, create_private_file, make_private},
    snapshot::{self, RowFamily, SnapshotReader, SnapshotWriter},
    storage_memory::{ColumnFamilyRole, StorageMemory, StorageUsage},
    types::{
        AppliedPosition, BatchPayload, BatchResponse, Entry, LogId, Snapshot, SnapshotFile,
        SnapshotMeta, StorageError, StorageIOError, StoredMembership, TypeConfig,
    },
};

pub(crate) const CF_STATE: &str = "state";
pub(crate) const CF_RAFT: &str = "raft";
pub(crate) const KEY_APPLIED: &[u8] = b"applied";
pub(crate) const KEY_MEMBERSHIP: &[u8] = b"membership";
const KEY_LAST_BATCH_TIME: &[u8] = b"last_batch_time_ms";
/// Rows per `WriteBatch` when loading a snapshot into a fresh generation: bounds memory while
/// installing snapshots of millions of events.
const INSTALL_ROWS_PER_WRITE_MAX: usize = 4096;
/// Row bytes loaded between memtable flushes while installing a snapshot. The load runs without
/// a WAL, so memtables would otherwise grow to RocksDB's write-buffer limits (128 MiB per column
/// family by default) however small the memory budget.
const INSTALL_BYTES_PER_FLUSH_MAX: usize = 16 * 1024 * 1024;
/// Complete snapshot files are `snap-<snapshot id>.snap`. Only the current one is kept: older
/// ones are deleted once a newer one is durable.
const SNAPSHOT_FILE_PREFIX: &str = "snap-";
/// The thread a snapshot is built on. openraft builds at most one snapshot at a time per node
/// (it ignores a trigger while a build runs), so this is at most one thread.
const SNAPSHOT_BUILD_THREAD: &str = "snapshot-build";
/// Snapshot files still being received from a peer.
pub(crate) const INCOMING_FILE_PREFIX: &str = "incoming-";

/// The RocksDB-backed state machine. Cheap to clone.
#[derive(Clone)]
pub struct StateMachineStore {
    shared: Arc<Shared>,
}

struct Shared {
    sm_dir: PathBuf,
    snapshot_dir: PathBuf,
    /// RocksDB checkpoints a snapshot is built from; each lives only while its snapshot builds.
    checkpoint_dir: PathBuf,
    /// The node's storage memory budget: every generation and checkpoint is opened within it.
    memory: StorageMemory,
    db: RwLock<Arc<DB>>,
    current_snapshot: Mutex<Option<SnapshotMeta>>,
    applied: watch::Sender<AppliedPosition>,
    snapshot_counter: AtomicU64,
    /// The leader's traced batches in flight, so their apply joins their trace.
    traces: ApplyTraces,
}

/// A read handle on the applied state, for the API layer's queries.
///
/// Each read sees whole batches: rows of one `apply` call become visible together.
#[derive(Clone)]
pub struct StateReader {
    db: Arc<DB>,
}

impl StateReader {
    /// A reader over `db`: a generation, or a checkpoint opened read-only.
    pub(crate) fn over(db: Arc<DB>) -> Self {
        StateReader { db }
    }
}

impl StateMachineStore {
    /// Opens the state machine under `data_dir` (`sm/` and `snapshots/`), within the node's
    /// storage memory budget.
    pub fn open(data_dir: &Path, memory: &StorageMemory) -> Result<Self, StorageError> {
        let sm_dir = data_dir.join("sm");
        let snapshot_dir = data_dir.join("snapshots");
        let checkpoint_dir = data_dir.join("checkpoints");
        // A checkpoint left by a crash mid-build is useless: the build restarts from a new one.
        let _ = fs::remove_dir_all(&checkpoint_dir);
        for dir in [&sm_dir, &snapshot_dir, &checkpoint_dir] {
            create_private_dir_all(dir).map_err(|e| StorageIOError::read_state_machine(&e))?;
        }
        let generation =
            read_current_generation(&sm_dir).map_err(|e| StorageIOError::read_state_machine(&e))?;
        let generation = match generation {
            Some(generation) => generation,
            None => {
                write_current_generation(&sm_dir, 1)
                    .map_err(|e| StorageIOError::write_state_machine(&e))?;
                1
            }
        };
        remove_stale_generations(&sm_dir, generation);
        let db = open_generation(&sm_dir, generation, memory)
            .map_err(|e| StorageIOError::read_state_machine(&e))?;
        let db = Arc::new(db);
        remove_unfinished_snapshot_files(&snapshot_dir);
        let current_snapshot = latest_snapshot(&snapshot_dir);
        let position = applied_position(&db)?;
        let (applied, _) = watch::channel(position);
        let store = StateMachineStore {
            shared: Arc::new(Shared {
                sm_dir,
                snapshot_dir,
                checkpoint_dir,
                memory: memory.clone(),
                db: RwLock::new(db),
                current_snapshot: Mutex::new(current_snapshot),
                applied,
                snapshot_counter: AtomicU64::new(0),
                traces: ApplyTraces::default(),
            }),
        };
        #[cfg(feature = "chaos")]
        if crate::chaos::ack_before_fsync() {
            crate::chaos::spawn_memtable_flusher(
                "chaos-sm-flush",
                Arc::downgrade(&store.shared),
                |shared| shared.db.read().unwrap_or_else(|e| e.into_inner()).clone(),
                &[CF_STATE, CF_RAFT],
            );
        }
        Ok(store)
    }

    /// What RocksDB reports the live generation holds in memory (and on disk).
    pub fn storage_usage(&self) -> Result<StorageUsage, String> {
        crate::storage_memory::usage(&self.db(), &[CF_STATE, CF_RAFT])
    }

    /// A reader over the current applied state.
    pub fn reader(&self) -> StateReader {
        StateReader { db: self.db() }
    }

    /// Watches the applied position: it changes after every `apply` and snapshot install.
    pub fn applied_watch(&self) -> watch::Receiver<AppliedPosition> {
        self.shared.applied.subscribe()
    }

    /// The stamp of the last applied batch; the proposer never stamps below it.
    pub fn last_batch_time_ms(&self) -> Result<u64, StorageError> {
        let db = self.db();
        let bytes = db
            .get_cf(raft_cf(&db), KEY_LAST_BATCH_TIME)
            .map_err(|e| StorageIOError::read_state_machine(&e))?;
        Ok(bytes
            .and_then(|b| b.as_slice().try_into().ok())
            .map(u64::from_be_bytes)
            .unwrap_or(0))
    }

    /// Where snapshot files live; the peer server receives incoming snapshots here.
    pub(crate) fn traces(&self) -> &ApplyTraces {
        &self.shared.traces
    }

    pub(crate) fn snapshot_dir(&self) -> &Path {
        &self.shared.snapshot_dir
    }

    /// Syncs the write-ahead log: at shutdown, after Raft stopped.
    pub(crate) fn flush(&self) -> Result<(), rocksdb::Error> {
        // What the canary wrote without a WAL is durable only in SST files.
        #[cfg(feature = "chaos")]
        if crate::chaos::ack_before_fsync() {
            crate::chaos::flush_memtables(&self.db(), &[CF_STATE, CF_RAFT])?;
        }
        self.db().flush_wal(true)
    }

    fn db(&self) -> Arc<DB> {
        // A poisoned lock means a panic while swapping handles; the handle itself is still valid.
        self.shared
            .db
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn next_snapshot_id(&self, last_log_id: Option<LogId>) -> String {
        let counter = self.shared.snapshot_counter.fetch_add(1, Ordering::Relaxed);
        let (term, index) = last_log_id
            .map(|l| (l.leader_id.term, l.index))
            .unwrap_or((0, 0));
        format!("{index:020}-{term}-{counter}-{}", std::process::id())
    }

    fn set_current_snapshot(&self, meta: SnapshotMeta) {
        let keep = snapshot_path(&self.shared.snapshot_dir, &meta.snapshot_id);
        *self
            .shared
            .current_snapshot
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(meta);
        // Older snapshots are superseded only once the new one is durable (it is, here).
        if let Ok(entries) = fs::read_dir(&self.shared.snapshot_dir) {
            for entry in entries.flatten() {
                let path = entry.path();
                let is_snapshot = entry
                    .file_name()
                    .to_string_lossy()
                    .starts_with(SNAPSHOT_FILE_PREFIX);
                if is_snapshot && path != keep {
                    let _ = fs::remove_file(path);
                }
            }
        }
    }

    fn publish_position(&self, db: &Arc<DB>) -> Result<(), StorageError> {
        let position = applied_position(db)?;
        self.shared.applied.send_replace(position);
        Ok(())
    }

    /// Takes a RocksDB checkpoint of the live generation: hard links to its SST files, so it is
    /// cheap, and a consistent view of one applied position, because it runs on the state
    /// machine worker between applies.
    pub(crate) fn checkpoint(&self) -> Result<PathBuf, String> {
        let counter = self.shared.snapshot_counter.fetch_add(1, Ordering::Relaxed);
        let path = self
            .shared
            .checkpoint_dir
            .join(format!("checkpoint-{}-{counter}", std::process::id()));
        let db = self.db();
        rocksdb::checkpoint::Checkpoint::new(&db)
            .and_then(|checkpoint| checkpoint.create_checkpoint(&path))
            .map_err(|e| format!("create checkpoint {}: {e}", path.display()))?;
        Ok(path)
    }

    /// Streams a checkpoint's rows into a snapshot file, then deletes the checkpoint.
    fn build_snapshot_blocking(&self, checkpoint: &Path) -> Result<Snapshot, StorageError> {
        let started = std::time::Instant::now();
        let result = self.write_snapshot_from(checkpoint);
        if result.is_ok() {
            crate::metrics::snapshot_built(started.elapsed());
        }
        if let Err(e) = fs::remove_dir_all(checkpoint) {
            tracing::warn!(path = %checkpoint.display(), error = %e, "could not remove a snapshot checkpoint");
        }
        result
    }

    /// Opens a checkpoint (see [`StateMachineStore::checkpoint`]) read-only.
    pub(crate) fn open_checkpoint(&self, checkpoint: &Path) -> Result<DB, StorageError> {
        let memory = &self.shared.memory;
        DB::open_cf_descriptors_read_only(
            &memory.db_options(),
            checkpoint,
            generation_cfs(memory),
            false,
        )
        .map_err(|e| StorageIOError::read_state_machine(&e).into())
    }

    fn write_snapshot_from(&self, checkpoint: &Path) -> Result<Snapshot, StorageError> {
        let db = self.open_checkpoint(checkpoint)?;
        let get = |key: &[u8]| {
            db.get_cf(raft_cf(&db), key)
                .map_err(|e| StorageIOError::read_state_machine(&e))
        };
        let last_applied: Option<LogId> = decode_opt(get(KEY_APPLIED)?)?.flatten();
        let last_membership: StoredMembership =
            decode_opt(get(KEY_MEMBERSHIP)?)?.unwrap_or_default();
        let snapshot_id = self.next_snapshot_id(last_applied);
        let meta = SnapshotMeta {
            last_log_id: last_applied,
            last_membership,
            snapshot_id,
        };
        let path = snapshot_path(&self.shared.snapshot_dir, &meta.snapshot_id);
        let write_err = |e: snapshot::SnapshotFileError| {
            StorageIOError::write_snapshot(Some(meta.signature()), &e)
        };
        let mut writer = SnapshotWriter::create(&path, &meta).map_err(write_err)?;
        for (family, cf_name) in [(RowFamily::State, CF_STATE), (RowFamily::Raft, CF_RAFT)] {
            let cf = db.cf_handle(cf_name).expect("column family exists");
            let mut read_options = ReadOptions::default();
            // A one-pass scan: keep it out of the block cache.
            read_options.fill_cache(false);
            for item in db.iterator_cf_opt(cf, read_options, IteratorMode::Start) {
                let (key, value) = item.map_err(|e| StorageIOError::read_state_machine(&e))?;
                writer.write_row(family, &key, &value).map_err(write_err)?;
            }
        }
        let n_rows = writer.finish().map_err(write_err)?;
        self.set_current_snapshot(meta.clone());
        tracing::info!(snapshot_id = %meta.snapshot_id, rows = n_rows, "built snapshot");
        Ok(Snapshot {
            meta,
            snapshot: Box::new(SnapshotFile { path }),
        })
    }

    /// Installs a snapshot file: verifies it, keeps it as the current snapshot, loads it into a
    /// new generation and switches to that generation.
    fn install_snapshot_blocking(
        &self,
        meta: &SnapshotMeta,
        source: &Path,
    ) -> Result<(), StorageError> {
        let started = std::time::Instant::now();
        // Refuse a corrupt or mismatched file before touching anything.
        verify_snapshot_file(meta, source)?;
        let kept = self.keep_snapshot_file(meta, source)?;
        let old_generation = read_current_generation(&self.shared.sm_dir)
            .map_err(|e| StorageIOError::read_state_machine(&e))?
            .unwrap_or(1);
        let new_generation = old_generation + 1;
        let (new_db, n_rows) = load_generation(&self.shared, new_generation, meta, &kept)?;
        write_current_generation(&self.shared.sm_dir, new_generation)
            .map_err(|e| StorageIOError::write_state_machine(&e))?;
        let new_db = Arc::new(new_db);
        let old_db = std::mem::replace(
            &mut *self.shared.db.write().unwrap_or_else(|e| e.into_inner()),
            new_db.clone(),
        );
        drop(old_db);
        remove_stale_generations(&self.shared.sm_dir, new_generation);
        self.set_current_snapshot(meta.clone());
        self.publish_position(&new_db)?;
        tracing::info!(snapshot_id = %meta.snapshot_id, rows = n_rows, "installed snapshot");
        crate::metrics::snapshot_installed(started.elapsed());
        Ok(())
    }

    /// Keeps a durable copy of `source` as our current snapshot file, so we can serve it to
    /// others, and returns its path.
    fn keep_snapshot_file(
        &self,
        meta: &SnapshotMeta,
        source: &Path,
    ) -> Result<PathBuf, StorageError> {
        let kept = snapshot_path(&self.shared.snapshot_dir, &meta.snapshot_id);
        let write_err =
            |e: std::io::Error| StorageIOError::write_snapshot(Some(meta.signature()), &e);
        let received_here = source.parent() == Some(self.shared.snapshot_dir.as_path())
            && source
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(INCOMING_FILE_PREFIX));
        if received_here {
            // A file the peer server received (and fsynced) into our own directory: move it.
            fs::rename(source, &kept).map_err(write_err)?;
            snapshot::sync_parent_dir(&kept).map_err(write_err)?;
        } else if source != kept {
            let tmp = kept.with_extension("tmp");
            fs::copy(source, &tmp).map_err(write_err)?;
            // A copy takes its source's mode.
            make_private(&tmp).map_err(write_err)?;
            fs::File::open(&tmp)
                .and_then(|f| f.sync_all())
                .map_err(write_err)?;
            fs::rename(&tmp, &kept).map_err(write_err)?;
            snapshot::sync_parent_dir(&kept).map_err(write_err)?;
        }
        Ok(kept)
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = CheckpointSnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let db = self.db();
        let get = |key: &[u8]| {
            db.get_cf(raft_cf(&db), key)
                .map_err(|e| StorageIOError::read_state_machine(&e))
        };
        let applied: Option<LogId> = decode_opt(get(KEY_APPLIED)?)?.flatten();
        let membership: StoredMembership = decode_opt(get(KEY_MEMBERSHIP)?)?.unwrap_or_default();
        Ok((applied, membership))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<BatchResponse>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        let db = self.db();
        let store = self.clone();
        let span = self.shared.traces.apply_span(&entries);
        tokio::task::spawn_blocking(move || {
            let _span = span.enter();
            let started = std::time::Instant::now();
            let responses = apply_entries(&db, entries)?;
            store.publish_position(&db)?;
            crate::metrics::applied(started.elapsed());
            Ok(responses)
        })
        .await
        .map_err(|e| StorageError::from(StorageIOError::write_state_machine(&e)))?
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        // Creating a checkpoint flushes the memtables and fsyncs: hundreds of milliseconds of
        // blocking I/O, which on a runtime worker stalls every task queued there (heartbeats
        // included). On the blocking pool, awaited here, it still runs between two applies: the
        // state machine worker waits for it, so the checkpoint is one applied position.
        let store = self.clone();
        let checkpoint = tokio::task::spawn_blocking(move || store.checkpoint())
            .await
            .unwrap_or_else(|e| Err(format!("checkpoint task: {e}")));
        CheckpointSnapshotBuilder {
            store: self.clone(),
            checkpoint,
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<SnapshotFile>, StorageError> {
        let counter = self.shared.snapshot_counter.fetch_add(1, Ordering::Relaxed);
        let path = self.shared.snapshot_dir.join(format!(
            "{INCOMING_FILE_PREFIX}{}-{counter}.partial",
            std::process::id()
        ));
        Ok(Box::new(SnapshotFile { path }))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<SnapshotFile>,
    ) -> Result<(), StorageError> {
        let store = self.clone();
        let meta = meta.clone();
        let installed = tokio::task::spawn_blocking(move || {
            store.install_snapshot_blocking(&meta, &snapshot.path)
        })
        .await
        .map_err(|e| StorageError::from(StorageIOError::write_state_machine(&e)))?;
        crash_point!(crate::chaos::SNAPSHOT_INSTALLED);
        installed
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        let meta = self
            .shared
            .current_snapshot
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        Ok(meta.map(|meta| {
            let path = snapshot_path(&self.shared.snapshot_dir, &meta.snapshot_id);
            Snapshot {
                meta,
                snapshot: Box::new(SnapshotFile { path }),
            }
        }))
    }
}

/// Builds one snapshot from the checkpoint taken when openraft asked for a builder.
pub struct CheckpointSnapshotBuilder {
    store: StateMachineStore,
    checkpoint: Result<PathBuf, String>,
}

impl RaftSnapshotBuilder<TypeConfig> for CheckpointSnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        let checkpoint = self.checkpoint.clone().map_err(|e| {
            StorageError::from(StorageIOError::read_state_machine(&std::io::Error::other(
                e,
            )))
        })?;
        let store = self.store.clone();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        // A thread of its own, not the blocking pool: a build scans the whole state for seconds
        // and must never hold a thread that log appends and applies wait for.
        std::thread::Builder::new()
            .name(SNAPSHOT_BUILD_THREAD.to_string())
            .spawn(move || {
                let built = store.build_snapshot_blocking(&checkpoint);
                // The store (and its database handle) goes before the result is sent: a caller
                // that drops the state machine once the build returns must find it closed, or
                // reopening it finds RocksDB's lock still held.
                drop(store);
                let _ = done_tx.send(built);
            })
            .map_err(|e| StorageIOError::write_state_machine(&e))?;
        let built = done_rx.await.map_err(|_| {
            let e = std::io::Error::other("the snapshot build thread ended without a result");
            StorageError::from(StorageIOError::write_state_machine(&e))
        })?;
        crash_point!(crate::chaos::SNAPSHOT_BUILT);
        built
    }
}

/// What decides one batch: `warrant_identity::apply_batch` in a node; benchmarks may pass
/// another with the same contract (see [`StateMachineStore::apply_batches_with`]).
pub type ApplyFn = fn(&dyn StateRead, &log::Batch, u64) -> Result<AppliedBatch, StateError>;

/// The term and leader of the entries [`StateMachineStore::apply_batches_with`] makes.
const BULK_APPLY_LEADER: (u64, u64) = (1, 1);

impl StateMachineStore {
    /// Applies `batches` as the normal entries at log indexes `first_index`, `first_index + 1`,
    /// … (term 1, leader 1), through the path [`RaftStateMachine::apply`] takes: decoded from
    /// their payload, decided by `apply` against the live state through one overlay, and written
    /// with the applied log id in one synced `WriteBatch`. Returns one response per batch.
    ///
    /// For benchmarks and fixture generators (`bench`'s `audit-fixture`, `audit-bench`), which
    /// load millions of events without a Raft node, and compare apply functions on the same
    /// write path. A node never calls it: openraft drives `apply`.
    pub fn apply_batches_with(
        &self,
        first_index: u64,
        batches: &[log::Batch],
        apply: ApplyFn,
    ) -> Result<Vec<BatchResponse>, StorageError> {
        let (term, leader) = BULK_APPLY_LEADER;
        let entries = (first_index..)
            .zip(batches)
            .map(|(index, batch)| Entry {
                log_id: LogId::new(CommittedLeaderId::new(term, leader), index),
                payload: EntryPayload::Normal(BatchPayload(batch.encode_to_vec())),
            })
            .collect();
        let db = self.db();
        let responses = apply_entries_with(&db, entries, apply)?;
        self.publish_position(&db)?;
        Ok(responses)
    }
}

/// Applies committed entries in one synced `WriteBatch`. Later entries see earlier entries'
/// writes through an overlay, exactly as if each had been written on its own.
fn apply_entries(db: &Arc<DB>, entries: Vec<Entry>) -> Result<Vec<BatchResponse>, StorageError> {
    let responses = apply_entries_with(db, entries, warrant_identity::apply_batch)?;
    // Between apply commit and reply: the write is durable, its outcome not yet returned.
    crash_point!(crate::chaos::APPLY_AFTER_COMMIT);
    Ok(responses)
}

/// [`apply_entries`] with `apply` deciding each batch.
fn apply_entries_with(
    db: &Arc<DB>,
    entries: Vec<Entry>,
    apply: ApplyFn,
) -> Result<Vec<BatchResponse>, StorageError> {
    let base = StateReader { db: db.clone() };
    let mut overlay = Overlay::new(&base);
    let mut responses = Vec::with_capacity(entries.len());
    let mut last_applied = None;
    let mut membership = None;
    let mut last_batch_time_ms = None;
    for entry in entries {
        last_applied = Some(entry.log_id);
        match entry.payload {
            EntryPayload::Blank => responses.push(BatchResponse::default()),
            EntryPayload::Membership(m) => {
                membership = Some(StoredMembership::new(Some(entry.log_id), m));
                responses.push(BatchResponse::default());
            }
            EntryPayload::Normal(payload) => {
                // Every replica decodes the same bytes, so a payload that fails to decode is
                // rejected identically everywhere: it yields no outcomes rather than stopping
                // the node.
                let batch = match log::Batch::decode(payload.0.as_slice()) {
                    Ok(batch) => batch,
                    Err(e) => {
                        tracing::warn!(index = entry.log_id.index, error = %e, "undecodable batch in the log; applied as empty");
                        responses
                            .push(BatchResponse(log::BatchOutcomes::default().encode_to_vec()));
                        continue;
                    }
                };
                let applied = apply(&overlay, &batch, entry.log_id.index)
                    .map_err(|e| StorageIOError::apply(entry.log_id, &e))?;
                overlay.write(applied.writes);
                last_batch_time_ms = Some(batch.time_unix_ms);
                responses.push(BatchResponse(
                    log::BatchOutcomes {
                        outcomes: applied.outcomes,
                    }
                    .encode_to_vec(),
                ));
            }
        }
    }
    let mut batch = WriteBatch::default();
    let state = state_cf(db);
    for (key, value) in overlay.into_writes().ops {
        match value {
            Some(value) => batch.put_cf(state, key, value),
            None => batch.delete_cf(state, key),
        }
    }
    let raft = raft_cf(db);
    if let Some(last_applied) = last_applied {
        batch.put_cf(raft, KEY_APPLIED, encode(&Some(last_applied))?);
    }
    if let Some(membership) = membership {
        batch.put_cf(raft, KEY_MEMBERSHIP, encode(&membership)?);
    }
    if let Some(time) = last_batch_time_ms {
        batch.put_cf(raft, KEY_LAST_BATCH_TIME, time.to_be_bytes());
    }
    crash_point!(crate::chaos::APPLY_BEFORE_COMMIT);
    db.write_opt(batch, &apply_write_options())
        .map_err(|e| StorageIOError::write_state_machine(&e))?;
    Ok(responses)
}

/// An apply is synced: its outcome goes back to the client once it returns.
fn apply_write_options() -> WriteOptions {
    #[cfg(feature = "chaos")]
    if crate::chaos::ack_before_fsync() {
        // Planted bug (`ack_before_fsync`): applies are acknowledged from a memtable too.
        // Were they durable, the leader (which applied every acknowledged write) would win
        // the election after a kill of every node about half the time and hand its state to
        // the others in a snapshot, hiding the entries their logs lost.
        return crate::chaos::unlogged_write_options();
    }
    let mut write_options = WriteOptions::default();
    write_options.set_sync(true);
    write_options
}

impl StateReader {
    /// Runs `read` over one consistent view of the state, given the log index applied in that
    /// view. A plain reader's reads each see the state of their own instant, so a walk of the
    /// whole state under writes (the digest) could mix batches, and an applied index read
    /// beside it could be a later one: whatever claims "this is the state at index N" reads
    /// through here.
    pub fn consistent<R>(
        &self,
        read: impl FnOnce(&dyn StateRead, u64) -> R,
    ) -> Result<R, StateError> {
        let snapshot = self.db.snapshot();
        let view = StateView {
            db: &self.db,
            snapshot: &snapshot,
        };
        let applied = view.applied_log_index()?;
        Ok(read(&view, applied))
    }
}

/// The state as of one RocksDB snapshot: every read sees the same whole batches.
struct StateView<'a> {
    db: &'a DB,
    snapshot: &'a rocksdb::Snapshot<'a>,
}

impl StateView<'_> {
    fn options(&self) -> ReadOptions {
        let mut options = ReadOptions::default();
        options.set_snapshot(self.snapshot);
        options
    }

    fn applied_log_index(&self) -> Result<u64, StateError> {
        let bytes = self
            .db
            .get_cf_opt(raft_cf(self.db), KEY_APPLIED, &self.options())
            .map_err(|e| StateError::Storage(e.to_string()))?;
        let applied: Option<LogId> = decode_opt(bytes)
            .map_err(|e| StateError::Storage(e.to_string()))?
            .flatten();
        Ok(applied.map(|log_id| log_id.index).unwrap_or(0))
    }
}

impl StateRead for StateReader {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        get_row(&self.db, ReadOptions::default(), key)
    }

    fn scan(
        &self,
        prefix: &[u8],
        start: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StateError> {
        scan_rows(&self.db, ReadOptions::default(), prefix, start, limit)
    }

    fn last_before(
        &self,
        prefix: &[u8],
        end: &[u8],
    ) -> Result<Option<(Vec<u8>, Vec<u8>)>, StateError> {
        last_row_before(&self.db, ReadOptions::default(), prefix, end)
    }
}

impl StateRead for StateView<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        get_row(self.db, self.options(), key)
    }

    fn scan(
        &self,
        prefix: &[u8],
        start: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StateError> {
        scan_rows(self.db, self.options(), prefix, start, limit)
    }

    fn last_before(
        &self,
        prefix: &[u8],
        end: &[u8],
    ) -> Result<Option<(Vec<u8>, Vec<u8>)>, StateError> {
        last_row_before(self.db, self.options(), prefix, end)
    }
}

fn get_row(db: &DB, options: ReadOptions, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
    db.get_cf_opt(state_cf(db), key, &options)
        .map_err(|e| StateError::Storage(e.to_string()))
}

#[allow(clippy::type_complexity)]
fn scan_rows(
    db: &DB,
    options: ReadOptions,
    prefix: &[u8],
    start: &[u8],
    limit: usize,
) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StateError> {
    let from = if start > prefix { start } else { prefix };
    let mut rows = Vec::new();
    let mode = IteratorMode::From(from, Direction::Forward);
    for item in db.iterator_cf_opt(state_cf(db), options, mode) {
        if limit <= rows.len() {
            break;
        }
        let (key, value) = item.map_err(|e| StateError::Storage(e.to_string()))?;
        if !key.starts_with(prefix) {
            break;
        }
        rows.push((key.into_vec(), value.into_vec()));
    }
    Ok(rows)
}

#[allow(clippy::type_complexity)]
fn last_row_before(
    db: &DB,
    mut options: ReadOptions,
    prefix: &[u8],
    end: &[u8],
) -> Result<Option<(Vec<u8>, Vec<u8>)>, StateError> {
    let Some(upper) = warrant_identity::state::last_before_end(prefix, end) else {
        return Ok(None);
    };
    // Bounding the iterator to [prefix, upper) makes seek_to_last one reverse seek to the row
    // wanted: RocksDB positions it on the last key below the exclusive upper bound.
    options.set_iterate_lower_bound(prefix.to_vec());
    if let Some(upper) = upper {
        options.set_iterate_upper_bound(upper);
    }
    let mut iter = db.raw_iterator_cf_opt(state_cf(db), options);
    iter.seek_to_last();
    iter.status()
        .map_err(|e| StateError::Storage(e.to_string()))?;
    match (iter.key(), iter.value()) {
        (Some(key), Some(value)) if key.starts_with(prefix) && key < end => {
            Ok(Some((key.to_vec(), value.to_vec())))
        }
        (Some(key), Some(_)) => Err(StateError::Storage(format!(
            "reverse seek under {} before {} returned {}",
            warrant_identity::keys::display(prefix),
            warrant_identity::keys::display(end),
            warrant_identity::keys::display(key)
        ))),
        _ => Ok(None),
    }
}

pub(crate) fn state_cf(db: &DB) -> &rocksdb::ColumnFamily {
    // Invariant: both column families are created when a generation is opened.
    db.cf_handle(CF_STATE).expect("state column family exists")
}

pub(crate) fn raft_cf(db: &DB) -> &rocksdb::ColumnFamily {
    db.cf_handle(CF_RAFT).expect("raft column family exists")
}

pub(crate) fn encode<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, StorageError> {
    postcard::to_allocvec(value).map_err(|e| StorageIOError::write_state_machine(&e).into())
}

pub(crate) fn decode_opt<T: serde::de::DeserializeOwned>(
    bytes: Option<Vec<u8>>,
) -> Result<Option<T>, StorageError> {
    match bytes {
        None => Ok(None),
        Some(bytes) => postcard::from_bytes(&bytes)
            .map(Some)
            .map_err(|e| StorageIOError::read_state_machine(&e).into()),
    }
}

fn applied_position(db: &Arc<DB>) -> Result<AppliedPosition, StorageError> {
    let bytes = db
        .get_cf(raft_cf(db), KEY_APPLIED)
        .map_err(|e| StorageIOError::read_state_machine(&e))?;
    let applied: Option<LogId> = decode_opt(bytes)?.flatten();
    let seq = warrant_identity::query::applied_seq(&StateReader { db: db.clone() })
        .map_err(|e| StorageIOError::read_state_machine(&e))?;
    Ok(AppliedPosition {
        log_index: applied.map(|l| l.index).unwrap_or(0),
        seq,
    })
}

/// Reads a snapshot file end to end, checking its checksum, and refuses it unless it holds what
/// `meta` announced.
fn verify_snapshot_file(meta: &SnapshotMeta, source: &Path) -> Result<(), StorageError> {
    let file_meta = snapshot::verify(source)
        .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &e))?;
    if file_meta.last_log_id != meta.last_log_id
        || file_meta.last_membership != meta.last_membership
    {
        let e =
            std::io::Error::other("snapshot file metadata does not match the announced metadata");
        return Err(StorageIOError::read_snapshot(Some(meta.signature()), &e).into());
    }
    Ok(())
}

/// Builds generation `generation` from the snapshot file `kept`, flushed to SST files, and
/// returns it with the number of rows loaded. A leftover directory of that generation (from an
/// install that crashed) is removed first.
fn load_generation(
    shared: &Shared,
    generation: u64,
    meta: &SnapshotMeta,
    kept: &Path,
) -> Result<(DB, usize), StorageError> {
    let _ = fs::remove_dir_all(generation_dir(&shared.sm_dir, generation));
    let db = open_generation(&shared.sm_dir, generation, &shared.memory)
        .map_err(|e| StorageIOError::write_state_machine(&e))?;
    let reader = SnapshotReader::open(kept)
        .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &e))?;
    let n_rows = load_rows(&db, reader, meta)?;
    // The WAL was off for the bulk load: flush memtables to SST files before switching.
    flush_all(&db)?;
    Ok((db, n_rows))
}

/// Writes every row of `reader` into `db` without a WAL, in batches of at most
/// [`INSTALL_ROWS_PER_WRITE_MAX`] rows, flushing memtables every
/// [`INSTALL_BYTES_PER_FLUSH_MAX`] bytes. Returns the number of rows.
fn load_rows(
    db: &DB,
    mut reader: SnapshotReader,
    meta: &SnapshotMeta,
) -> Result<usize, StorageError> {
    let read_err =
        |e: snapshot::SnapshotFileError| StorageIOError::read_snapshot(Some(meta.signature()), &e);
    let write_err = |e: rocksdb::Error| StorageIOError::write_state_machine(&e);
    let mut batch = WriteBatch::default();
    let mut n_rows = 0usize;
    let mut bytes_since_flush = 0usize;
    let mut write_options = WriteOptions::default();
    write_options.disable_wal(true);
    while let Some(snapshot::SnapshotRow { family, key, value }) =
        reader.next_row().map_err(read_err)?
    {
        let cf = match family {
            RowFamily::State => state_cf(db),
            RowFamily::Raft => raft_cf(db),
        };
        bytes_since_flush += key.len() + value.len();
        batch.put_cf(cf, key, value);
        n_rows += 1;
        if n_rows.is_multiple_of(INSTALL_ROWS_PER_WRITE_MAX) {
            db.write_opt(std::mem::take(&mut batch), &write_options)
                .map_err(write_err)?;
        }
        if bytes_since_flush >= INSTALL_BYTES_PER_FLUSH_MAX {
            db.write_opt(std::mem::take(&mut batch), &write_options)
                .map_err(write_err)?;
            flush_all(db)?;
            bytes_since_flush = 0;
        }
    }
    db.write_opt(batch, &write_options).map_err(write_err)?;
    Ok(n_rows)
}

/// Flushes both column families' memtables to SST files and waits for it.
fn flush_all(db: &DB) -> Result<(), StorageError> {
    for cf in [CF_STATE, CF_RAFT] {
        db.flush_cf(db.cf_handle(cf).expect("column family exists"))
            .map_err(|e| StorageIOError::write_state_machine(&e))?;
    }
    Ok(())
}

fn generation_dir(sm_dir: &Path, generation: u64) -> PathBuf {
    sm_dir.join(format!("gen-{generation}"))
}

fn snapshot_path(snapshot_dir: &Path, snapshot_id: &str) -> PathBuf {
    snapshot_dir.join(format!("{SNAPSHOT_FILE_PREFIX}{snapshot_id}.snap"))
}

fn open_generation(sm_dir: &Path, generation: u64, memory: &StorageMemory) -> std::io::Result<DB> {
    let path = generation_dir(sm_dir, generation);
    // RocksDB would create the directory 0755 less the umask.
    create_private_dir_all(&path)?;
    DB::open_cf_descriptors(&memory.db_options(), path, generation_cfs(memory))
        .map_err(|e| std::io::Error::other(e.to_string()))
}

/// A generation's column families, with their options under the memory budget.
fn generation_cfs(memory: &StorageMemory) -> Vec<ColumnFamilyDescriptor> {
    memory.descriptors(&[
        (CF_STATE, ColumnFamilyRole::State),
        (CF_RAFT, ColumnFamilyRole::Small),
    ])
}

fn read_current_generation(sm_dir: &Path) -> std::io::Result<Option<u64>> {
    match fs::read_to_string(sm_dir.join("CURRENT")) {
        Ok(text) => text
            .trim()
            .strip_prefix("gen-")
            .and_then(|n| n.parse().ok())
            .map(Some)
            .ok_or_else(|| std::io::Error::other(format!("sm/CURRENT is corrupt: {text:?}"))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn write_current_generation(sm_dir: &Path, generation: u64) -> std::io::Result<()> {
    let tmp = sm_dir.join("CURRENT.tmp");
    let mut file = create_private_file(&tmp)?;
    file.write_all(format!("gen-{generation}\n").as_bytes())?;
    file.sync_all()?;
    drop(file);
    let current = sm_dir.join("CURRENT");
    fs::rename(&tmp, &current)?;
    snapshot::sync_parent_dir(&current)
}

/// Deletes generations other than the live one: leftovers of an install that crashed before
/// switching, or of the generation an install replaced.
fn remove_stale_generations(sm_dir: &Path, live: u64) {
    let Ok(entries) = fs::read_dir(sm_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(generation) = name
            .strip_prefix("gen-")
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        if generation != live {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// Whether `name` is a complete snapshot file's name (not a partial, temporary or incoming one).
fn is_complete_snapshot_name(name: &str) -> bool {
    name.starts_with(SNAPSHOT_FILE_PREFIX) && name.ends_with(".snap")
}

/// Deletes what a crash left in `snapshot_dir`: temporary files of a snapshot being written or
/// copied, and incoming files of a snapshot being received. Run at open, before anything writes
/// there.
fn remove_unfinished_snapshot_files(snapshot_dir: &Path) {
    let Ok(entries) = fs::read_dir(snapshot_dir) else {
        return;
    };
    for entry in entries.flatten() {
        if !is_complete_snapshot_name(&entry.file_name().to_string_lossy()) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// The newest complete snapshot file in `snapshot_dir`, if any.
fn latest_snapshot(snapshot_dir: &Path) -> Option<SnapshotMeta> {
    let entries = fs::read_dir(snapshot_dir).ok()?;
    let mut best: Option<SnapshotMeta> = None;
    for entry in entries.flatten() {
        if !is_complete_snapshot_name(&entry.file_name().to_string_lossy()) {
            continue;
        }
        let Ok(reader) = SnapshotReader::open(&entry.path()) else {
            continue;
        };
        let meta = reader.meta().clone();
        let newer = best
            .as_ref()
            .is_none_or(|b| meta.last_log_id > b.last_log_id);
        if newer {
            best = Some(meta);
        }
    }
    best
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use warrant_identity::{InMemoryState, WriteSet};

    use super::*;

    /// Every key of up to three bytes over an alphabet that holds the edge cases: NUL, a
    /// plain byte and 0xff (the prefix with no successor).
    fn small_keys() -> Vec<Vec<u8>> {
        let mut keys = vec![Vec::new()];
        let mut last = vec![Vec::new()];
        for _ in 0..3 {
            last = last
                .iter()
                .flat_map(|key: &Vec<u8>| {
                    [0u8, b'a', 0xff].map(|byte| [key.as_slice(), &[byte]].concat())
                })
                .collect();
            keys.extend(last.iter().cloned());
        }
        keys
    }

    /// The RocksDB reverse seek finds what the reference store finds, for every prefix and end
    /// over a store holding every other small key.
    #[test]
    fn last_before_matches_the_in_memory_store() {
        let dir = tempfile::TempDir::new().unwrap();
        let memory = StorageMemory::new(crate::storage_memory::STORAGE_CACHE_MIB_MIN).unwrap();
        let db = Arc::new(open_generation(dir.path(), 1, &memory).unwrap());
        let keys = small_keys();
        let mut writes = WriteSet::new();
        for (idx, key) in keys.iter().enumerate().filter(|(idx, _)| idx % 2 == 1) {
            db.put_cf(state_cf(&db), key, idx.to_be_bytes()).unwrap();
            writes.put(key.clone(), idx.to_be_bytes().to_vec());
        }
        let mut reference = InMemoryState::new();
        reference.apply_writes(&writes);
        let reader = StateReader { db: db.clone() };
        let mut found = 0;
        for prefix in &keys {
            for end in &keys {
                let expected = reference.last_before(prefix, end).unwrap();
                found += usize::from(expected.is_some());
                assert_eq!(
                    reader.last_before(prefix, end).unwrap(),
                    expected,
                    "prefix {prefix:?}, end {end:?}"
                );
            }
        }
        assert!(found > 100, "the cases must find rows too: {found}");
    }
}
