//! The snapshot file format.
//!
//! A snapshot is one file, written and read as a stream so that neither side ever holds it whole
//! in memory:
//!
//! ```text
//! magic            8 bytes  "WRNTSNP1"
//! meta length      u32 BE
//! meta             postcard(SnapshotMeta)
//! rows             repeated: tag u8 (1..=2), key length u32 BE, key, value length u32 BE, value
//! end              tag u8 = 0
//! checksum         32 bytes: SHA-256 over every preceding byte
//! ```
//!
//! A file whose checksum does not match is refused before anything is installed from it.

use std::{
    fs::{self, File},
    io::{self, BufReader, BufWriter, Read, Write},
    path::{Path, PathBuf},
};

use sha2::{Digest, Sha256};

use crate::types::SnapshotMeta;

const MAGIC: &[u8; 8] = b"WRNTSNP1";
/// A snapshot's metadata is a log id and a membership: small. Anything bigger is corrupt.
pub const META_LEN_MAX: u32 = 1024 * 1024;
/// The longest key the state machine writes is well under this.
pub const KEY_LEN_MAX: u32 = 64 * 1024;
/// The largest row the state machine writes is well under this.
pub const VALUE_LEN_MAX: u32 = 16 * 1024 * 1024;

/// Which column family a row belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowFamily {
    /// The identity model's rows (events and projections).
    State = 1,
    /// The state machine's own bookkeeping: applied log id, membership.
    Raft = 2,
}

/// One row of a snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotRow {
    pub family: RowFamily,
    pub key: Vec<u8>,
    pub value: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum SnapshotFileError {
    #[error("snapshot io: {0}")]
    Io(#[from] io::Error),
    #[error("snapshot is corrupt: {0}")]
    Corrupt(String),
}

fn corrupt(what: impl Into<String>) -> SnapshotFileError {
    SnapshotFileError::Corrupt(what.into())
}

/// Writes a snapshot to `<path>.tmp`, then fsyncs and renames it into place on [`finish`].
///
/// [`finish`]: SnapshotWriter::finish
pub struct SnapshotWriter {
    out: BufWriter<File>,
    hasher: Sha256,
    tmp_path: PathBuf,
    path: PathBuf,
    n_rows: u64,
}

impl SnapshotWriter {
    pub fn create(path: &Path, meta: &SnapshotMeta) -> Result<Self, SnapshotFileError> {
        let tmp_path = path.with_extension("tmp");
        let file = crate::private_fs::create_private_file(&tmp_path)?;
        let mut writer = SnapshotWriter {
            out: BufWriter::with_capacity(1 << 20, file),
            hasher: Sha256::new(),
            tmp_path,
            path: path.to_path_buf(),
            n_rows: 0,
        };
        let meta_bytes =
            postcard::to_allocvec(meta).map_err(|e| corrupt(format!("encode meta: {e}")))?;
        let meta_len = u32::try_from(meta_bytes.len()).map_err(|_| corrupt("meta too large"))?;
        writer.write_all(MAGIC)?;
        writer.write_all(&meta_len.to_be_bytes())?;
        writer.write_all(&meta_bytes)?;
        Ok(writer)
    }

    pub fn write_row(
        &mut self,
        family: RowFamily,
        key: &[u8],
        value: &[u8],
    ) -> Result<(), SnapshotFileError> {
        let key_len = u32::try_from(key.len())
            .ok()
            .filter(|n| *n <= KEY_LEN_MAX)
            .ok_or_else(|| corrupt("key too long"))?;
        let value_len = u32::try_from(value.len())
            .ok()
            .filter(|n| *n <= VALUE_LEN_MAX)
            .ok_or_else(|| corrupt("value too long"))?;
        self.write_all(&[family as u8])?;
        self.write_all(&key_len.to_be_bytes())?;
        self.write_all(key)?;
        self.write_all(&value_len.to_be_bytes())?;
        self.write_all(value)?;
        self.n_rows += 1;
        Ok(())
    }

    /// Seals the file: end marker, checksum, fsync, rename, fsync of the directory.
    pub fn finish(mut self) -> Result<u64, SnapshotFileError> {
        self.write_all(&[0])?;
        let checksum = self.hasher.clone().finalize();
        self.out.write_all(&checksum)?;
        let file = self.out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        drop(file);
        fs::rename(&self.tmp_path, &self.path)?;
        sync_parent_dir(&self.path)?;
        Ok(self.n_rows)
    }

    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.hasher.update(bytes);
        self.out.write_all(bytes)
    }
}

/// Reads a snapshot file row by row. The checksum is checked when the end marker is reached;
/// callers must not make what they read visible before [`SnapshotReader::next_row`] returned
/// `Ok(None)`.
pub struct SnapshotReader {
    input: BufReader<File>,
    hasher: Sha256,
    meta: SnapshotMeta,
    finished: bool,
}

impl SnapshotReader {
    pub fn open(path: &Path) -> Result<Self, SnapshotFileError> {
        let file = File::open(path)?;
        let mut reader = SnapshotReader {
            input: BufReader::with_capacity(1 << 20, file),
            hasher: Sha256::new(),
            meta: SnapshotMeta::default(),
            finished: false,
        };
        let mut magic = [0u8; 8];
        reader.read_exact(&mut magic)?;
        if &magic != MAGIC {
            return Err(corrupt("bad magic: not a Warrant snapshot"));
        }
        let meta_len = reader.read_u32()?;
        if meta_len > META_LEN_MAX {
            return Err(corrupt(format!(
                "meta length {meta_len} exceeds {META_LEN_MAX}"
            )));
        }
        let meta_bytes = reader.read_vec(meta_len)?;
        reader.meta =
            postcard::from_bytes(&meta_bytes).map_err(|e| corrupt(format!("decode meta: {e}")))?;
        Ok(reader)
    }

    pub fn meta(&self) -> &SnapshotMeta {
        &self.meta
    }

    /// The next row, or `None` at the end once the checksum has been verified.
    pub fn next_row(&mut self) -> Result<Option<SnapshotRow>, SnapshotFileError> {
        if self.finished {
            return Ok(None);
        }
        let mut tag = [0u8; 1];
        self.read_exact(&mut tag)?;
        let family = match tag[0] {
            0 => {
                let expected = self.hasher.clone().finalize();
                let mut checksum = [0u8; 32];
                self.input.read_exact(&mut checksum)?;
                if checksum[..] != expected[..] {
                    return Err(corrupt("checksum mismatch"));
                }
                let mut rest = [0u8; 1];
                if self.input.read(&mut rest)? != 0 {
                    return Err(corrupt("trailing bytes after checksum"));
                }
                self.finished = true;
                return Ok(None);
            }
            1 => RowFamily::State,
            2 => RowFamily::Raft,
            other => return Err(corrupt(format!("unknown row tag {other}"))),
        };
        let key_len = self.read_u32()?;
        if key_len > KEY_LEN_MAX {
            return Err(corrupt(format!(
                "key length {key_len} exceeds {KEY_LEN_MAX}"
            )));
        }
        let key = self.read_vec(key_len)?;
        let value_len = self.read_u32()?;
        if value_len > VALUE_LEN_MAX {
            return Err(corrupt(format!(
                "value length {value_len} exceeds {VALUE_LEN_MAX}"
            )));
        }
        let value = self.read_vec(value_len)?;
        Ok(Some(SnapshotRow { family, key, value }))
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), SnapshotFileError> {
        self.input.read_exact(buf).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => corrupt("truncated"),
            _ => SnapshotFileError::Io(e),
        })?;
        self.hasher.update(&*buf);
        Ok(())
    }

    fn read_u32(&mut self) -> Result<u32, SnapshotFileError> {
        let mut bytes = [0u8; 4];
        self.read_exact(&mut bytes)?;
        Ok(u32::from_be_bytes(bytes))
    }

    fn read_vec(&mut self, len: u32) -> Result<Vec<u8>, SnapshotFileError> {
        let mut bytes = vec![0u8; len as usize];
        self.read_exact(&mut bytes)?;
        Ok(bytes)
    }
}

/// Reads a snapshot end to end, checking its checksum, and returns its metadata.
pub fn verify(path: &Path) -> Result<SnapshotMeta, SnapshotFileError> {
    let mut reader = SnapshotReader::open(path)?;
    while reader.next_row()?.is_some() {}
    Ok(reader.meta().clone())
}

/// Makes a rename or file creation in `path`'s directory durable.
pub fn sync_parent_dir(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(dir) => File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}
