//! The largest checkpoint this node signed, kept in `<data dir>/audit/signed-checkpoint`
//! (`warrant.state.v1.SignedCheckpointRecord`), outside the state machine: a snapshot install
//! or a rolled-back state cannot lower it. It is written (temp file, fsync, rename, fsync of
//! the directory) before its note is served, and read strictly at start: a record that does
//! not decode, whose frontier does not give its root, or whose note this node's key did not
//! sign for that size and root, stops the node with the file's name.

use std::{
    fs,
    path::{Path, PathBuf},
};

use prost::Message;
use warrant_identity::audit::merkle::{CompactRange, Hash};
use warrant_proto::state::SignedCheckpointRecord;

use warrant_token::note;

use super::key::AuditKey;

/// The directory of the record, in the data directory.
pub const RECORD_DIR: &str = "audit";
/// The record's file name.
pub const RECORD_FILE: &str = "signed-checkpoint";
/// The largest record read: a note (at most `NOTE_BYTES_MAX`) and 64 frontier hashes.
pub const RECORD_BYTES_MAX: u64 = 2 * note::NOTE_BYTES_MAX as u64;

/// A checkpoint this node signed, as it is kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signed {
    /// The note exactly as served.
    pub note: String,
    pub tree_size: u64,
    pub root: Hash,
    /// The tree at `tree_size`, recomputed from the leaves: later leaves are verified from here.
    pub frontier: CompactRange,
    pub signed_at_unix_ms: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("read the signed checkpoint record {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("write the signed checkpoint record {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "the signed checkpoint record {path} is corrupt ({what}); the node will not sign over \
         it: restore it from a backup of this node, or re-create the node from a healthy member"
    )]
    Corrupt { path: String, what: String },
}

/// Where the record of the node with data directory `data_dir` is.
pub fn record_path(data_dir: &Path) -> PathBuf {
    data_dir.join(RECORD_DIR).join(RECORD_FILE)
}

/// The record at `path`: `None` when this node never signed. Strict: anything else than a
/// record this node's `key` signed is an error naming the file.
pub fn read(path: &Path, key: &AuditKey) -> Result<Option<Signed>, RecordError> {
    let path_text = path.display().to_string();
    let corrupt = |what: String| RecordError::Corrupt {
        path: path_text.clone(),
        what,
    };
    let bytes = match fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(RecordError::Read {
                path: path_text,
                source,
            });
        }
        Ok(meta) if RECORD_BYTES_MAX < meta.len() => {
            return Err(corrupt(format!(
                "{} bytes; allowed: at most {RECORD_BYTES_MAX}",
                meta.len()
            )));
        }
        Ok(_) => fs::read(path).map_err(|source| RecordError::Read {
            path: path_text.clone(),
            source,
        })?,
    };
    let record = SignedCheckpointRecord::decode(bytes.as_slice())
        .map_err(|e| corrupt(format!("not a SignedCheckpointRecord: {e}")))?;
    from_record(record, key).map(Some).map_err(corrupt)
}

/// Checks a decoded record against itself and the key.
fn from_record(record: SignedCheckpointRecord, key: &AuditKey) -> Result<Signed, String> {
    let root = Hash::try_from(record.root_hash.as_slice())
        .map_err(|_| format!("root_hash has {} bytes", record.root_hash.len()))?;
    let mut hashes = Vec::with_capacity(record.frontier.len());
    for hash in &record.frontier {
        hashes.push(
            Hash::try_from(hash.as_slice())
                .map_err(|_| format!("a frontier hash has {} bytes", hash.len()))?,
        );
    }
    if record.tree_size == 0 {
        return Err("tree_size is 0; the empty tree is never signed".to_string());
    }
    let frontier =
        CompactRange::from_parts(record.tree_size, hashes).map_err(|e| format!("frontier: {e}"))?;
    if frontier.root() != root {
        return Err("the frontier does not give root_hash".to_string());
    }
    let opened = note::open(&record.note, std::slice::from_ref(key.verifier()))
        .map_err(|e| format!("note, with this node's audit key: {e}"))?;
    let body = note::parse_checkpoint(&opened.body).map_err(|e| format!("note: {e}"))?;
    if body.origin != key.origin()
        || body.size != record.tree_size
        || body.root != root
        || !body.extensions.is_empty()
    {
        return Err(format!(
            "the note says {} at size {}, the record {} at size {}",
            body.origin,
            body.size,
            key.origin(),
            record.tree_size
        ));
    }
    Ok(Signed {
        note: record.note,
        tree_size: record.tree_size,
        root,
        frontier,
        signed_at_unix_ms: record.signed_at_unix_ms,
    })
}

/// Makes `signed` the record at `path`, durably, before anyone sees its note.
pub fn write(path: &Path, signed: &Signed) -> Result<(), RecordError> {
    let record = SignedCheckpointRecord {
        note: signed.note.clone(),
        tree_size: signed.tree_size,
        root_hash: signed.root.to_vec(),
        frontier: signed
            .frontier
            .hashes()
            .iter()
            .map(|h| h.to_vec())
            .collect(),
        signed_at_unix_ms: signed.signed_at_unix_ms,
    };
    write_durably(path, &record.encode_to_vec()).map_err(|source| RecordError::Write {
        path: path.display().to_string(),
        source,
    })
}

/// The record's directory (0700), then the record through `signing_key::write_private`: after a
/// crash the record is the old one or the new one, never a mix.
fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| std::io::Error::other("the record path has no directory"))?;
    warrant_raft::create_private_dir_all(dir)?;
    warrant_token::signing_key::write_private(path, bytes)
}
