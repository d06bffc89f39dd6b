//! The backup file format: what `warrant snapshot save` writes and `status` and `restore` read.
//!
//! A backup is a snapshot of one applied index, cut into blocks that each carry a checksum of
//! their own, so that a corrupt file is refused naming the byte offset of the first bad block
//! (a whole-file checksum can only say "somewhere"). All integers are big-endian.
//!
//! ```text
//! header (152 bytes)
//!   magic           8   "WRNTBAK1"
//!   version         u32 1
//!   block bytes     u32 the largest block payload in this file (at most 1 MiB)
//!   index           u64 the applied log index the backup is consistent at
//!   term            u64 the term of that log entry
//!   leader          u64 the node id that led that term (with term and index: the log id)
//!   last seq        u64 the seq of the last event applied
//!   events          u64 the number of events (the Merkle tree's size)
//!   state digest    32  SHA-256 of the projected state (what ClusterService.Digest returns)
//!   merkle root     32  the RFC 9162 root of the audit tree at `events` leaves
//!   header checksum 32  SHA-256 over the 120 bytes above
//! blocks, repeated
//!   length          u32 1..=block bytes
//!   payload         length bytes of the row stream
//!   checksum        32  SHA-256(block offset u64 || length u32 || payload)
//! end
//!   length          u32 0
//!   rows            u64 the number of rows in the row stream
//!   checksum        32  SHA-256(end offset u64 || 0 u32 || rows u64)
//! ```
//!
//! The row stream, split across block payloads wherever the cut falls: rows `tag u8 (1 state,
//! 2 raft), key length u32, key, value length u32, value`, then tag 0. Each block checksum
//! covers the block's own offset, so a block moved, repeated or dropped is refused too; nothing
//! may follow the end block. The whole file's SHA-256 (what `sha256sum` prints) is what the
//! node announces before it streams the file, and what `status` reports as its checksum.

use std::io::{self, Read, Write};

use sha2::{Digest, Sha256};

use crate::snapshot::{KEY_LEN_MAX, RowFamily, SnapshotRow, VALUE_LEN_MAX};

pub const BACKUP_MAGIC: &[u8; 8] = b"WRNTBAK1";
pub const BACKUP_FORMAT_VERSION: u32 = 1;
/// The largest block payload: the unit a corruption is located to, and what a reader holds in
/// memory at once. 1 MiB keeps the checksum overhead at 32 bytes per MiB.
pub const BACKUP_BLOCK_BYTES_MAX: u32 = 1024 * 1024;
/// The header's length, checksum included.
pub const BACKUP_HEADER_LEN: u64 = 152;
const HEADER_BODY_LEN: usize = 120;
const CHECKSUM_LEN: usize = 32;

/// What a backup holds, as its header says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupSummary {
    pub index: u64,
    pub term: u64,
    /// The node that led `term`: with `term` and `index`, the applied log id.
    pub leader_node_id: u64,
    pub last_seq: u64,
    pub events: u64,
    pub state_digest: [u8; 32],
    pub merkle_root: [u8; 32],
}

/// What reading a whole backup found, besides its header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupVerified {
    pub rows: u64,
    /// The file's length in bytes.
    pub size: u64,
    /// SHA-256 of the whole file.
    pub sha256: [u8; 32],
}

#[derive(Debug, thiserror::Error)]
pub enum BackupFileError {
    #[error("backup io: {0}")]
    Io(#[from] io::Error),
    /// The file is damaged (or not a backup): `offset` is where the bad header or block starts.
    #[error("backup file is corrupt at byte offset {offset}: {what}")]
    Corrupt { offset: u64, what: String },
    /// A row too large for the format: the writer refuses it.
    #[error("backup row refused: {0}")]
    RowTooLarge(String),
}

fn corrupt(offset: u64, what: impl Into<String>) -> BackupFileError {
    BackupFileError::Corrupt {
        offset,
        what: what.into(),
    }
}

impl BackupSummary {
    /// The header bytes, checksum included.
    pub fn encode_header(&self, block_bytes: u32) -> Vec<u8> {
        let mut out = Vec::with_capacity(BACKUP_HEADER_LEN as usize);
        out.extend_from_slice(BACKUP_MAGIC);
        out.extend_from_slice(&BACKUP_FORMAT_VERSION.to_be_bytes());
        out.extend_from_slice(&block_bytes.to_be_bytes());
        for n in [
            self.index,
            self.term,
            self.leader_node_id,
            self.last_seq,
            self.events,
        ] {
            out.extend_from_slice(&n.to_be_bytes());
        }
        out.extend_from_slice(&self.state_digest);
        out.extend_from_slice(&self.merkle_root);
        let checksum = Sha256::digest(&out);
        out.extend_from_slice(&checksum);
        out
    }

    /// Parses and checks a header; returns it with the file's block size.
    pub fn decode_header(bytes: &[u8]) -> Result<(BackupSummary, u32), BackupFileError> {
        let bad = |what: &str| corrupt(0, format!("header: {what}"));
        if bytes.len() != BACKUP_HEADER_LEN as usize {
            return Err(bad("truncated"));
        }
        if &bytes[..8] != BACKUP_MAGIC {
            return Err(bad("bad magic: not a Warrant backup file"));
        }
        let (body, checksum) = bytes.split_at(HEADER_BODY_LEN);
        if Sha256::digest(body)[..] != checksum[..] {
            return Err(bad("checksum mismatch"));
        }
        let u32_at = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().expect("4"));
        let u64_at = |at: usize| u64::from_be_bytes(bytes[at..at + 8].try_into().expect("8"));
        let version = u32_at(8);
        if version != BACKUP_FORMAT_VERSION {
            return Err(bad(&format!(
                "format version {version}; this build reads version {BACKUP_FORMAT_VERSION}"
            )));
        }
        let block_bytes = u32_at(12);
        if block_bytes == 0 || block_bytes > BACKUP_BLOCK_BYTES_MAX {
            return Err(bad(&format!(
                "block size {block_bytes}; allowed: 1 to {BACKUP_BLOCK_BYTES_MAX}"
            )));
        }
        let summary = BackupSummary {
            index: u64_at(16),
            term: u64_at(24),
            leader_node_id: u64_at(32),
            last_seq: u64_at(40),
            events: u64_at(48),
            state_digest: bytes[56..88].try_into().expect("32"),
            merkle_root: bytes[88..120].try_into().expect("32"),
        };
        Ok((summary, block_bytes))
    }
}

/// Counts and hashes what passes through it.
struct Hashing<T> {
    inner: T,
    hasher: Sha256,
    bytes: u64,
}

impl<T> Hashing<T> {
    fn new(inner: T) -> Self {
        Hashing {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

fn block_checksum(offset: u64, payload: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(offset.to_be_bytes());
    hasher.update((payload.len() as u32).to_be_bytes());
    hasher.update(payload);
    hasher.finalize().into()
}

fn end_checksum(offset: u64, rows: u64) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(offset.to_be_bytes());
    hasher.update(0u32.to_be_bytes());
    hasher.update(rows.to_be_bytes());
    hasher.finalize().into()
}

/// Writes a backup as a stream: the header, then rows, cut into checksummed blocks.
pub struct BackupWriter<W: Write> {
    out: Hashing<W>,
    block: Vec<u8>,
    block_bytes: usize,
    rows: u64,
}

impl<W: Write> BackupWriter<W> {
    pub fn new(out: W, summary: &BackupSummary) -> Result<Self, BackupFileError> {
        Self::with_block_bytes(out, summary, BACKUP_BLOCK_BYTES_MAX)
    }

    /// A writer with blocks of at most `block_bytes` (tests cut small files into many blocks).
    pub fn with_block_bytes(
        out: W,
        summary: &BackupSummary,
        block_bytes: u32,
    ) -> Result<Self, BackupFileError> {
        let block_bytes = block_bytes.clamp(1, BACKUP_BLOCK_BYTES_MAX);
        let mut out = Hashing::new(out);
        out.write_all(&summary.encode_header(block_bytes))?;
        Ok(BackupWriter {
            out,
            block: Vec::with_capacity(block_bytes as usize),
            block_bytes: block_bytes as usize,
            rows: 0,
        })
    }

    pub fn write_row(
        &mut self,
        family: RowFamily,
        key: &[u8],
        value: &[u8],
    ) -> Result<(), BackupFileError> {
        let key_len = u32::try_from(key.len())
            .ok()
            .filter(|n| *n <= KEY_LEN_MAX)
            .ok_or_else(|| BackupFileError::RowTooLarge(format!("key of {} bytes", key.len())))?;
        let value_len = u32::try_from(value.len())
            .ok()
            .filter(|n| *n <= VALUE_LEN_MAX)
            .ok_or_else(|| {
                BackupFileError::RowTooLarge(format!("value of {} bytes", value.len()))
            })?;
        self.put(&[family as u8])?;
        self.put(&key_len.to_be_bytes())?;
        self.put(key)?;
        self.put(&value_len.to_be_bytes())?;
        self.put(value)?;
        self.rows += 1;
        Ok(())
    }

    /// Ends the row stream, writes the last block and the end block. Returns the output, the
    /// file's size and its SHA-256.
    pub fn finish(mut self) -> Result<(W, u64, [u8; 32]), BackupFileError> {
        self.put(&[0])?;
        self.flush_block()?;
        let offset = self.out.bytes;
        self.out.write_all(&0u32.to_be_bytes())?;
        self.out.write_all(&self.rows.to_be_bytes())?;
        self.out.write_all(&end_checksum(offset, self.rows))?;
        self.out.flush()?;
        let sha256 = self.out.hasher.clone().finalize().into();
        Ok((self.out.inner, self.out.bytes, sha256))
    }

    fn put(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            let room = self.block_bytes - self.block.len();
            let (now, rest) = bytes.split_at(room.min(bytes.len()));
            self.block.extend_from_slice(now);
            bytes = rest;
            if self.block.len() == self.block_bytes {
                self.flush_block()?;
            }
        }
        Ok(())
    }

    fn flush_block(&mut self) -> io::Result<()> {
        if self.block.is_empty() {
            return Ok(());
        }
        let offset = self.out.bytes;
        let len = self.block.len() as u32;
        self.out.write_all(&len.to_be_bytes())?;
        self.out.write_all(&self.block)?;
        self.out.write_all(&block_checksum(offset, &self.block))?;
        self.block.clear();
        Ok(())
    }
}

/// Reads a backup row by row. Every block is checked before any byte of it is used; the end
/// block and the absence of trailing bytes are checked by [`BackupReader::finish`].
pub struct BackupReader<R: Read> {
    input: Hashing<R>,
    summary: BackupSummary,
    block_bytes: u32,
    block: Vec<u8>,
    /// The next unread byte of `block`.
    pos: usize,
    /// Where `block` starts in the file.
    block_offset: u64,
    rows: u64,
    rows_ended: bool,
}

impl<R: Read> BackupReader<R> {
    pub fn open(input: R) -> Result<Self, BackupFileError> {
        let mut input = Hashing::new(input);
        let mut header = vec![0u8; BACKUP_HEADER_LEN as usize];
        read_full(&mut input, &mut header, 0, "header")?;
        let (summary, block_bytes) = BackupSummary::decode_header(&header)?;
        Ok(BackupReader {
            input,
            summary,
            block_bytes,
            block: Vec::new(),
            pos: 0,
            block_offset: BACKUP_HEADER_LEN,
            rows: 0,
            rows_ended: false,
        })
    }

    pub fn summary(&self) -> &BackupSummary {
        &self.summary
    }

    /// The next row, or `None` once the row stream has ended.
    pub fn next_row(&mut self) -> Result<Option<SnapshotRow>, BackupFileError> {
        if self.rows_ended {
            return Ok(None);
        }
        let tag = self.take(1)?[0];
        let family = match tag {
            0 => {
                self.rows_ended = true;
                return Ok(None);
            }
            1 => RowFamily::State,
            2 => RowFamily::Raft,
            other => return Err(self.bad(format!("unknown row tag {other}"))),
        };
        let key_len = self.take_u32()?;
        if key_len > KEY_LEN_MAX {
            return Err(self.bad(format!("key length {key_len} exceeds {KEY_LEN_MAX}")));
        }
        let key = self.take(key_len as usize)?;
        let value_len = self.take_u32()?;
        if value_len > VALUE_LEN_MAX {
            return Err(self.bad(format!("value length {value_len} exceeds {VALUE_LEN_MAX}")));
        }
        let value = self.take(value_len as usize)?;
        self.rows += 1;
        Ok(Some(SnapshotRow { family, key, value }))
    }

    /// Reads the rest of the rows (if any), the end block and checks that nothing follows.
    pub fn finish(mut self) -> Result<BackupVerified, BackupFileError> {
        while self.next_row()?.is_some() {}
        if self.pos != self.block.len() {
            return Err(self.bad("bytes after the end of the row stream"));
        }
        let offset = self.block_offset + self.framed_len();
        let len = self.read_u32_at(offset)?;
        if len != 0 {
            return Err(corrupt(offset, "a block after the end of the row stream"));
        }
        let mut rest = [0u8; 8 + CHECKSUM_LEN];
        read_full(&mut self.input, &mut rest, offset, "end block")?;
        let rows = u64::from_be_bytes(rest[..8].try_into().expect("8"));
        if rest[8..] != end_checksum(offset, rows) {
            return Err(corrupt(offset, "end block checksum mismatch"));
        }
        if rows != self.rows {
            return Err(corrupt(
                offset,
                format!(
                    "the end block counts {rows} rows; the file holds {}",
                    self.rows
                ),
            ));
        }
        let mut extra = [0u8; 1];
        if self.input.read(&mut extra)? != 0 {
            return Err(corrupt(offset + 12 + CHECKSUM_LEN as u64, "trailing bytes"));
        }
        Ok(BackupVerified {
            rows,
            size: self.input.bytes,
            sha256: self.input.hasher.clone().finalize().into(),
        })
    }

    fn bad(&self, what: impl Into<String>) -> BackupFileError {
        corrupt(self.block_offset, what)
    }

    /// The current block's length on disk: length field, payload, checksum.
    fn framed_len(&self) -> u64 {
        if self.block.is_empty() {
            0
        } else {
            4 + self.block.len() as u64 + CHECKSUM_LEN as u64
        }
    }

    fn take_u32(&mut self) -> Result<u32, BackupFileError> {
        let bytes = self.take(4)?;
        Ok(u32::from_be_bytes(bytes.try_into().expect("4")))
    }

    /// `n` bytes of the row stream, loading (and checking) blocks as needed.
    fn take(&mut self, n: usize) -> Result<Vec<u8>, BackupFileError> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            if self.pos == self.block.len() {
                self.next_block()?;
            }
            let want = (n - out.len()).min(self.block.len() - self.pos);
            out.extend_from_slice(&self.block[self.pos..self.pos + want]);
            self.pos += want;
        }
        Ok(out)
    }

    fn next_block(&mut self) -> Result<(), BackupFileError> {
        let offset = self.block_offset + self.framed_len();
        let len = self.read_u32_at(offset)?;
        if len == 0 {
            return Err(corrupt(
                offset,
                "the end block comes before the row stream ends",
            ));
        }
        if len > self.block_bytes {
            return Err(corrupt(
                offset,
                format!(
                    "block length {len} exceeds the file's block size {}",
                    self.block_bytes
                ),
            ));
        }
        let mut payload = vec![0u8; len as usize];
        read_full(&mut self.input, &mut payload, offset, "block")?;
        let mut checksum = [0u8; CHECKSUM_LEN];
        read_full(&mut self.input, &mut checksum, offset, "block checksum")?;
        if checksum != block_checksum(offset, &payload) {
            return Err(corrupt(offset, "block checksum mismatch"));
        }
        self.block = payload;
        self.pos = 0;
        self.block_offset = offset;
        Ok(())
    }

    fn read_u32_at(&mut self, offset: u64) -> Result<u32, BackupFileError> {
        let mut bytes = [0u8; 4];
        read_full(&mut self.input, &mut bytes, offset, "block length")?;
        Ok(u32::from_be_bytes(bytes))
    }
}

/// Fills `buf`, or reports the file truncated in the part that starts at `offset`.
fn read_full<R: Read>(
    input: &mut R,
    buf: &mut [u8],
    offset: u64,
    part: &str,
) -> Result<(), BackupFileError> {
    input.read_exact(buf).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => corrupt(offset, format!("{part}: the file is truncated")),
        _ => BackupFileError::Io(e),
    })
}

/// Reads a whole backup, checking every block. Returns its header and what the read found.
pub fn verify<R: Read>(input: R) -> Result<(BackupSummary, BackupVerified), BackupFileError> {
    let reader = BackupReader::open(input)?;
    let summary = reader.summary().clone();
    Ok((summary, reader.finish()?))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn summary() -> BackupSummary {
        BackupSummary {
            index: 0x0102,
            term: 3,
            leader_node_id: 2,
            last_seq: 77,
            events: 77,
            state_digest: [0xd1; 32],
            merkle_root: [0x7e; 32],
        }
    }

    fn rows() -> Vec<SnapshotRow> {
        (0..200u32)
            .map(|i| SnapshotRow {
                family: if i % 7 == 0 {
                    RowFamily::Raft
                } else {
                    RowFamily::State
                },
                key: format!("key-{i:05}").into_bytes(),
                value: vec![(i % 251) as u8; (i as usize * 13) % 300],
            })
            .collect()
    }

    fn write(block_bytes: u32) -> Vec<u8> {
        let mut writer =
            BackupWriter::with_block_bytes(Vec::new(), &summary(), block_bytes).unwrap();
        for row in rows() {
            writer.write_row(row.family, &row.key, &row.value).unwrap();
        }
        let (bytes, size, sha256) = writer.finish().unwrap();
        assert_eq!(size, bytes.len() as u64);
        assert_eq!(sha256[..], Sha256::digest(&bytes)[..]);
        bytes
    }

    /// The offsets of every block (and of the end block), walking the length fields.
    fn block_offsets(bytes: &[u8]) -> Vec<u64> {
        let mut offsets = Vec::new();
        let mut at = BACKUP_HEADER_LEN as usize;
        loop {
            offsets.push(at as u64);
            let len = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
            if len == 0 {
                return offsets;
            }
            at += 4 + len + CHECKSUM_LEN;
        }
    }

    /// Frozen bytes: the header layout is the file format; files written today must read the
    /// same in every later version.
    #[test]
    fn the_header_bytes_are_frozen() {
        let header = summary().encode_header(BACKUP_BLOCK_BYTES_MAX);
        let expected_body = [
            b"WRNTBAK1".as_slice(),
            &[0, 0, 0, 1],
            &[0, 0x10, 0, 0],
            &[0, 0, 0, 0, 0, 0, 0x01, 0x02],
            &[0, 0, 0, 0, 0, 0, 0, 3],
            &[0, 0, 0, 0, 0, 0, 0, 2],
            &[0, 0, 0, 0, 0, 0, 0, 77],
            &[0, 0, 0, 0, 0, 0, 0, 77],
            &[0xd1; 32],
            &[0x7e; 32],
        ]
        .concat();
        assert_eq!(header.len() as u64, BACKUP_HEADER_LEN);
        assert_eq!(&header[..HEADER_BODY_LEN], expected_body.as_slice());
        assert_eq!(
            hex::encode(&header[HEADER_BODY_LEN..]),
            hex::encode(Sha256::digest(&expected_body))
        );
        assert_eq!(
            BackupSummary::decode_header(&header).unwrap(),
            (summary(), BACKUP_BLOCK_BYTES_MAX)
        );
    }

    #[test]
    fn rows_round_trip_across_block_boundaries() {
        for block_bytes in [1, 7, 100, BACKUP_BLOCK_BYTES_MAX] {
            let bytes = write(block_bytes);
            let mut reader = BackupReader::open(bytes.as_slice()).unwrap();
            assert_eq!(reader.summary(), &summary());
            let mut read = Vec::new();
            while let Some(row) = reader.next_row().unwrap() {
                read.push(row);
            }
            assert_eq!(read, rows(), "block size {block_bytes}");
            let verified = reader.finish().unwrap();
            assert_eq!(verified.rows, rows().len() as u64);
            assert_eq!(verified.size, bytes.len() as u64);
        }
    }

    /// Every single flipped byte is refused, and the offset named is the start of the header
    /// or block that holds it.
    #[test]
    fn a_flipped_byte_is_refused_at_its_block() {
        let bytes = write(512);
        let offsets = block_offsets(&bytes);
        assert!(offsets.len() > 10, "many blocks: {}", offsets.len());
        for at in (0..bytes.len()).step_by(37) {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x40;
            let expected = if (at as u64) < BACKUP_HEADER_LEN {
                0
            } else {
                *offsets.iter().rev().find(|o| **o <= at as u64).unwrap()
            };
            match verify(damaged.as_slice()) {
                Err(BackupFileError::Corrupt { offset, .. }) => {
                    assert_eq!(offset, expected, "byte {at}")
                }
                other => panic!("byte {at}: {other:?}"),
            }
        }
    }

    #[test]
    fn truncated_and_extended_files_are_refused() {
        let bytes = write(512);
        for len in [
            0,
            10,
            BACKUP_HEADER_LEN as usize,
            bytes.len() / 2,
            bytes.len() - 1,
        ] {
            assert!(
                matches!(verify(&bytes[..len]), Err(BackupFileError::Corrupt { .. })),
                "truncated to {len}"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(
            verify(longer.as_slice()),
            Err(BackupFileError::Corrupt { .. })
        ));
        // A block dropped: the next one's checksum binds its own offset.
        let offsets = block_offsets(&bytes);
        let (one, two) = (offsets[1] as usize, offsets[2] as usize);
        let dropped = [&bytes[..one], &bytes[two..]].concat();
        match verify(dropped.as_slice()) {
            Err(BackupFileError::Corrupt { offset, .. }) => assert_eq!(offset, one as u64),
            other => panic!("{other:?}"),
        }
    }
}
