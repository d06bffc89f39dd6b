//! Backups: a copy of the whole state at one applied index, saved from a live node, and
//! restored offline into a new data directory as the first state of a new cluster.
//!
//! Save takes a RocksDB checkpoint of the live generation (hard links, consistent at one
//! applied index because every apply is one `WriteBatch`), computes the state digest, the
//! event count and the Merkle root from it, and writes it as a backup file
//! ([`crate::backup_file`]) under `<data_dir>/backups/`, which the API streams and deletes.
//! Nothing is held in memory beyond one block.
//!
//! Restore rewrites the backup into a snapshot file whose membership is the members given (like
//! etcd's `--initial-cluster`), installs it into a new data directory as openraft would install
//! a snapshot from a leader, recomputes digest and root from the installed state and compares
//! them with the backup's header, and records a vote in the backup's term. openraft then starts
//! from the snapshot (it purges the log up to the applied index at start), and the members
//! given elect a leader among themselves: no `cluster init`. Node-local keys (signing key,
//! audit key) are not in a backup: each restored node makes new ones at its first start.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs::{self, File},
    io::{BufReader, BufWriter},
    path::{Path, PathBuf},
    sync::Arc,
};

use openraft::{
    CommittedLeaderId, Membership,
    storage::{RaftLogStorage, RaftStateMachine},
};
use rocksdb::{DB, IteratorMode, ReadOptions};
use tokio::sync::OwnedSemaphorePermit;
use warrant_identity::audit::tree;

use crate::{
    backup_file::{BackupFileError, BackupReader, BackupSummary, BackupVerified, BackupWriter},
    log_store::LogStore,
    node::RaftNode,
    private_fs::{create_private_dir_all, create_private_file},
    snapshot::{RowFamily, SnapshotWriter},
    state_machine::{
        CF_RAFT, CF_STATE, INCOMING_FILE_PREFIX, KEY_APPLIED, KEY_MEMBERSHIP, StateMachineStore,
        StateReader, decode_opt, encode, raft_cf,
    },
    storage_memory::StorageMemory,
    types::{LogId, MemberNode, NodeId, SnapshotFile, SnapshotMeta, StoredMembership, Vote},
};

/// Where a node writes the backup it is saving, under its data dir.
pub const BACKUP_DIR: &str = "backups";
/// The most members a restore may name: a Raft group larger than this is not what Warrant runs
/// (the same bound as `InitCluster`).
pub const RESTORE_MEMBERS_MAX: usize = 7;
/// The thread a backup is written on: a save scans the whole state for seconds and must not
/// hold a thread of the blocking pool that applies and log appends wait for. At most one runs
/// per node (the node's backup slot).
const BACKUP_SAVE_THREAD: &str = "backup-save";
/// The log store's directory under a data dir, as `RaftNode::start` opens it.
const RAFT_LOG_DIR: &str = "raft-log";

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("a backup is already being saved on this node; at most one runs at a time")]
    Busy,
    #[error("this node has applied nothing yet: it has no state to back up")]
    NothingApplied,
    #[error(transparent)]
    File(#[from] BackupFileError),
    #[error("backup storage: {0}")]
    Storage(String),
    /// The restore's arguments: what was wrong and what is allowed.
    #[error("{0}")]
    Invalid(String),
    /// The restored state is not what the backup's header says it holds.
    #[error("the restored state does not match the backup: {0}")]
    Mismatch(String),
}

fn storage(e: impl std::fmt::Display) -> BackupError {
    BackupError::Storage(e.to_string())
}

/// A backup saved on this node, ready to stream. Its file is deleted, and the node's backup slot
/// freed, when this drops.
pub struct SavedBackup {
    pub summary: BackupSummary,
    pub size: u64,
    pub sha256: [u8; 32],
    path: PathBuf,
    _slot: OwnedSemaphorePermit,
}

impl SavedBackup {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for SavedBackup {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

impl RaftNode {
    /// Saves a backup of this node's applied state, at one applied index. Refused with
    /// [`BackupError::Busy`] while another save runs here.
    pub async fn save_backup(&self) -> Result<SavedBackup, BackupError> {
        let slot = self
            .backup_slot()
            .clone()
            .try_acquire_owned()
            .map_err(|_| BackupError::Busy)?;
        let store = self.state_machine().clone();
        let dir = self.data_dir().join(BACKUP_DIR);
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name(BACKUP_SAVE_THREAD.to_string())
            .spawn(move || {
                let saved = save_blocking(&store, &dir);
                drop(store);
                let _ = done_tx.send(saved);
            })
            .map_err(storage)?;
        let (summary, size, sha256, path) = done_rx
            .await
            .map_err(|_| storage("the backup thread ended without a result"))??;
        Ok(SavedBackup {
            summary,
            size,
            sha256,
            path,
            _slot: slot,
        })
    }
}

type Saved = (BackupSummary, u64, [u8; 32], PathBuf);

fn save_blocking(store: &StateMachineStore, dir: &Path) -> Result<Saved, BackupError> {
    // This save holds the node's only slot: whatever is in the directory is a crashed save's.
    let _ = fs::remove_dir_all(dir);
    create_private_dir_all(dir).map_err(storage)?;
    let checkpoint = store.checkpoint().map_err(BackupError::Storage)?;
    let result = write_from_checkpoint(store, &checkpoint, dir);
    if let Err(e) = fs::remove_dir_all(&checkpoint) {
        tracing::warn!(path = %checkpoint.display(), error = %e, "could not remove a backup checkpoint");
    }
    result
}

fn write_from_checkpoint(
    store: &StateMachineStore,
    checkpoint: &Path,
    dir: &Path,
) -> Result<Saved, BackupError> {
    let db = Arc::new(store.open_checkpoint(checkpoint).map_err(storage)?);
    let summary = summarize(&db)?;
    let path = dir.join(format!(
        "save-{}-{}.wbak",
        std::process::id(),
        summary.index
    ));
    let written = write_rows(&db, &summary, &path);
    match written {
        Ok((size, sha256)) => {
            tracing::info!(
                index = summary.index,
                events = summary.events,
                bytes = size,
                "saved a backup"
            );
            Ok((summary, size, sha256, path))
        }
        Err(e) => {
            let _ = fs::remove_file(&path);
            Err(e)
        }
    }
}

/// What the checkpoint holds: its applied log id, last seq, tree size and root, and digest.
fn summarize(db: &Arc<DB>) -> Result<BackupSummary, BackupError> {
    let applied = db.get_cf(raft_cf(db), KEY_APPLIED).map_err(storage)?;
    let applied: Option<LogId> = decode_opt(applied).map_err(storage)?.flatten();
    let applied = applied.ok_or(BackupError::NothingApplied)?;
    let reader = StateReader::over(db.clone());
    let last_seq = warrant_identity::query::applied_seq(&reader).map_err(storage)?;
    let events = tree::size(&reader).map_err(storage)?;
    let merkle_root = tree::root(&reader, events).map_err(storage)?;
    let state_digest = warrant_identity::state_digest(&reader).map_err(storage)?;
    Ok(BackupSummary {
        index: applied.index,
        term: applied.leader_id.term,
        leader_node_id: applied.leader_id.node_id,
        last_seq,
        events,
        state_digest,
        merkle_root,
    })
}

/// Writes every row of both column families into a backup file at `path`. Returns its size
/// and SHA-256.
fn write_rows(
    db: &DB,
    summary: &BackupSummary,
    path: &Path,
) -> Result<(u64, [u8; 32]), BackupError> {
    let file = create_private_file(path).map_err(storage)?;
    let mut writer = BackupWriter::new(BufWriter::with_capacity(1 << 20, file), summary)?;
    for (family, cf_name) in [(RowFamily::State, CF_STATE), (RowFamily::Raft, CF_RAFT)] {
        let cf = db
            .cf_handle(cf_name)
            .ok_or_else(|| storage(format!("the checkpoint has no {cf_name} column family")))?;
        let mut read_options = ReadOptions::default();
        // A one-pass scan: keep it out of the block cache.
        read_options.fill_cache(false);
        for item in db.iterator_cf_opt(cf, read_options, IteratorMode::Start) {
            let (key, value) = item.map_err(storage)?;
            writer.write_row(family, &key, &value)?;
        }
    }
    let (out, size, sha256) = writer.finish()?;
    out.into_inner().map_err(|e| storage(e.into_error()))?;
    Ok((size, sha256))
}

/// What a restore needs.
#[derive(Clone, Debug)]
pub struct RestoreRequest {
    pub backup: PathBuf,
    /// A directory that does not exist yet, or is empty.
    pub data_dir: PathBuf,
    pub node_id: NodeId,
    /// The voters of the restored cluster, this node among them.
    pub members: BTreeMap<NodeId, MemberNode>,
    /// The storage memory budget to open the stores with while restoring.
    pub storage_cache_mib: u64,
}

/// What a restore installed and checked.
#[derive(Clone, Debug)]
pub struct Restored {
    pub summary: BackupSummary,
    pub verified: BackupVerified,
    /// The digest recomputed from the restored state (equal to the header's).
    pub state_digest: [u8; 32],
    /// The Merkle root recomputed from the restored state (equal to the header's).
    pub merkle_root: [u8; 32],
}

/// Restores `request.backup` into `request.data_dir`, offline. On any failure the data dir is
/// left as it was found (absent or empty).
pub async fn restore(request: RestoreRequest) -> Result<Restored, BackupError> {
    check_members(&request)?;
    let created = prepare_data_dir(&request.data_dir)?;
    let result = restore_into(&request).await;
    if result.is_err() {
        clear_data_dir(&request.data_dir, created);
    }
    result
}

fn check_members(request: &RestoreRequest) -> Result<(), BackupError> {
    if request.members.is_empty() || request.members.len() > RESTORE_MEMBERS_MAX {
        return Err(BackupError::Invalid(format!(
            "{} members given; allowed: 1 to {RESTORE_MEMBERS_MAX}",
            request.members.len()
        )));
    }
    if !request.members.contains_key(&request.node_id) {
        return Err(BackupError::Invalid(format!(
            "the members do not include this node ({}); allowed: members that include --node-id",
            request.node_id
        )));
    }
    Ok(())
}

/// Creates the data dir, or accepts an empty one. Returns whether it was created.
fn prepare_data_dir(data_dir: &Path) -> Result<bool, BackupError> {
    match fs::read_dir(data_dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(BackupError::Invalid(format!(
                    "data dir {} is not empty; allowed: a new or empty directory (restore never \
                     overwrites a node's state)",
                    data_dir.display()
                )));
            }
            Ok(false)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            create_private_dir_all(data_dir).map_err(storage)?;
            Ok(true)
        }
        Err(e) => Err(storage(format!("read {}: {e}", data_dir.display()))),
    }
}

fn clear_data_dir(data_dir: &Path, created: bool) {
    if created {
        let _ = fs::remove_dir_all(data_dir);
        return;
    }
    if let Ok(entries) = fs::read_dir(data_dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            let _ = if path.is_dir() {
                fs::remove_dir_all(path)
            } else {
                fs::remove_file(path)
            };
        }
    }
}

async fn restore_into(request: &RestoreRequest) -> Result<Restored, BackupError> {
    let memory = StorageMemory::new(request.storage_cache_mib).map_err(BackupError::Invalid)?;
    let mut state_machine = StateMachineStore::open(&request.data_dir, &memory).map_err(storage)?;
    // Named as a received snapshot in the snapshot dir, so the install moves it into place.
    let staged = state_machine.snapshot_dir().join(format!(
        "{INCOMING_FILE_PREFIX}restore-{}.partial",
        std::process::id()
    ));
    let (backup, members, staged_path) = (
        request.backup.clone(),
        request.members.clone(),
        staged.clone(),
    );
    let (meta, summary, verified) =
        tokio::task::spawn_blocking(move || stage(&backup, &staged_path, members))
            .await
            .map_err(storage)??;
    state_machine
        .install_snapshot(&meta, Box::new(SnapshotFile { path: staged }))
        .await
        .map_err(storage)?;
    let (state_digest, merkle_root) = check_restored(&state_machine, &summary).await?;
    let mut log_store =
        LogStore::open(&request.data_dir.join(RAFT_LOG_DIR), &memory).map_err(storage)?;
    // The first election must be in a later term than the restored log's last entry: a vote in
    // its term makes every candidate ask for the next one.
    log_store
        .save_vote(&Vote::new(summary.term, request.node_id))
        .await
        .map_err(storage)?;
    log_store
        .save_committed(meta.last_log_id)
        .await
        .map_err(storage)?;
    Ok(Restored {
        summary,
        verified,
        state_digest,
        merkle_root,
    })
}

/// Rewrites the backup at `backup` into a snapshot file at `staged` whose membership is
/// `members` (all voters), checking every block. Returns the snapshot's metadata, the backup's
/// header and what the read found.
fn stage(
    backup: &Path,
    staged: &Path,
    members: BTreeMap<NodeId, MemberNode>,
) -> Result<(SnapshotMeta, BackupSummary, BackupVerified), BackupError> {
    let file =
        File::open(backup).map_err(|e| storage(format!("open {}: {e}", backup.display())))?;
    let mut reader = BackupReader::open(BufReader::with_capacity(1 << 20, file))?;
    let summary = reader.summary().clone();
    let log_id = LogId::new(
        CommittedLeaderId::new(summary.term, summary.leader_node_id),
        summary.index,
    );
    let voters: BTreeSet<NodeId> = members.keys().copied().collect();
    let membership = StoredMembership::new(Some(log_id), Membership::new(vec![voters], members));
    let meta = SnapshotMeta {
        last_log_id: Some(log_id),
        last_membership: membership.clone(),
        snapshot_id: format!("restored-{:020}-{}", summary.index, summary.term),
    };
    let membership_row = encode(&membership).map_err(storage)?;
    let snapshot_err = |e: crate::snapshot::SnapshotFileError| storage(e);
    let mut writer = SnapshotWriter::create(staged, &meta).map_err(snapshot_err)?;
    while let Some(row) = reader.next_row()? {
        let value = match (row.family, row.key.as_slice()) {
            (RowFamily::Raft, KEY_MEMBERSHIP) => continue,
            (RowFamily::Raft, KEY_APPLIED) => {
                let applied: Option<LogId> = decode_opt(Some(row.value.clone()))
                    .map_err(storage)?
                    .flatten();
                if applied != Some(log_id) {
                    return Err(BackupError::Mismatch(format!(
                        "the header says log id {log_id}, the rows say {applied:?}"
                    )));
                }
                row.value
            }
            _ => row.value,
        };
        writer
            .write_row(row.family, &row.key, &value)
            .map_err(snapshot_err)?;
    }
    writer
        .write_row(RowFamily::Raft, KEY_MEMBERSHIP, &membership_row)
        .map_err(snapshot_err)?;
    let verified = reader.finish()?;
    writer.finish().map_err(snapshot_err)?;
    Ok((meta, summary, verified))
}

/// Recomputes the digest, the last seq and the Merkle root from the installed state and
/// compares them with the backup's header.
async fn check_restored(
    state_machine: &StateMachineStore,
    summary: &BackupSummary,
) -> Result<([u8; 32], [u8; 32]), BackupError> {
    let reader = state_machine.reader();
    let expected = summary.clone();
    tokio::task::spawn_blocking(move || {
        let digest = warrant_identity::state_digest(&reader).map_err(storage)?;
        let last_seq = warrant_identity::query::applied_seq(&reader).map_err(storage)?;
        let events = tree::size(&reader).map_err(storage)?;
        let root = tree::root(&reader, events).map_err(storage)?;
        let mismatch = |what: &str, restored: String, header: String| {
            Err(BackupError::Mismatch(format!(
                "{what}: restored {restored}, header {header}"
            )))
        };
        if digest != expected.state_digest {
            return mismatch(
                "state digest",
                hex::encode(digest),
                hex::encode(expected.state_digest),
            );
        }
        if (last_seq, events) != (expected.last_seq, expected.events) {
            return mismatch(
                "last seq and events",
                format!("{last_seq}, {events}"),
                format!("{}, {}", expected.last_seq, expected.events),
            );
        }
        if root != expected.merkle_root {
            return mismatch(
                "merkle root",
                hex::encode(root),
                hex::encode(expected.merkle_root),
            );
        }
        Ok((digest, root))
    })
    .await
    .map_err(storage)?
}
