//! The offline verifier of an audit export (`warrant audit verify FILE`). It streams the JSON
//! Lines file once, a line at a time (never the whole file in memory): every line's seq follows
//! the previous one, every leaf hash is recomputed from the record bytes, and the leaves fold
//! into an RFC 9162 compact range. The last line's checkpoint must be signed by a pinned key and
//! name the root of the leaves; an older trusted checkpoint must be the file's root at its
//! size. The first failure stops the walk and names the seq it was found at; a root that
//! differs from the checkpoint cannot name a seq offline (`audit_bisect` finds it against a
//! live node).

use std::io::{BufRead, Read as _, Write};

use base64::{Engine as _, engine::general_purpose::STANDARD};
use indicatif::ProgressBar;
use prost::Message as _;
use serde::{Deserialize, Serialize};
use warrant_identity::audit::merkle::{self, CompactRange, Hash};
use warrant_proto::log;

use warrant_token::note::{self, Checkpoint, NoteError, VerifierKey};

/// The longest line read. An event record is bounded by the request limits (a policy text,
/// 256 KiB, is the largest field); its base64 and its JSON view together stay well below this.
pub const EXPORT_LINE_BYTES_MAX: usize = 4 * 1024 * 1024;

/// A checkpoint note read strictly (C2SP signed-note around a C2SP tlog-checkpoint body) but
/// whose signatures are not checked yet: the walk reports a size mismatch before a signature
/// failure, and the trusted checkpoint is read before the file is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointNote {
    /// The whole note, kept to check its signatures with [`note::open`].
    pub text: String,
    pub checkpoint: Checkpoint,
}

/// Reads `text` as a checkpoint note; its signatures are checked by [`signed_by_pinned`].
pub fn read_checkpoint(text: &str) -> Result<CheckpointNote, NoteError> {
    let parsed = note::parse(text)?;
    Ok(CheckpointNote {
        checkpoint: note::parse_checkpoint(&parsed.body)?,
        text: text.to_string(),
    })
}

/// What went wrong first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// A line that is not an export line (not JSON, a field missing or ill-formed, too long).
    LineMalformed,
    /// A seq is missing: the line at this position holds a later one.
    SeqGap,
    /// A seq already read appears again.
    Duplicate,
    /// The seq expected here comes right after: two lines swapped.
    OutOfOrder,
    /// The leaf hash recomputed from the record is not the line's leaf hash.
    LeafMismatch,
    /// The record bytes are not base64 of a `warrant.log.v1.Event`.
    RecordUndecodable,
    /// The record decodes, but to another seq or time than its line says.
    RecordDisagrees,
    /// The line's `event` (the JSON view a reader reads) is not its record decoded.
    EventViewMismatch,
    /// The file ends without its checkpoint line.
    CheckpointMissing,
    CheckpointMalformed,
    /// The checkpoint's size is not the number of events in the file.
    CheckpointSizeMismatch,
    /// The root of the file's leaves is not the signed checkpoint's root.
    RootMismatch,
    /// A signature by a pinned key does not verify.
    SignatureInvalid,
    /// No pinned key signed the checkpoint.
    NoPinnedKeySigned,
    /// The trusted (older) checkpoint is not the file's root at its size: a fork.
    TrustedNotConsistent,
    /// The trusted checkpoint is larger than the file: the log was rolled back.
    TrustedLarger,
}

/// The first failure, with the seq it was found at when one can be named.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Failure {
    pub kind: FailureKind,
    pub seq: Option<u64>,
    pub detail: String,
}

impl Failure {
    fn at(kind: FailureKind, seq: u64, detail: impl Into<String>) -> Failure {
        Failure {
            kind,
            seq: Some(seq),
            detail: detail.into(),
        }
    }

    fn unplaced(kind: FailureKind, detail: impl Into<String>) -> Failure {
        Failure {
            kind,
            seq: None,
            detail: detail.into(),
        }
    }
}

/// The outcome of a verification.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Report {
    pub ok: bool,
    /// Events read and checked.
    pub events: u64,
    /// The tree size the file's checkpoint signs (0 when it was not reached).
    pub tree_size: u64,
    /// The root of the leaves read, base64.
    pub root: String,
    pub origin: String,
    /// The pinned keys whose signatures verified.
    pub signers: Vec<String>,
    /// The size of the trusted checkpoint checked against the file, if one was given.
    pub trusted_size: Option<u64>,
    pub failure: Option<Failure>,
}

/// What to verify against.
pub struct Inputs<'a> {
    pub pinned: &'a [VerifierKey],
    pub trusted: Option<&'a CheckpointNote>,
}

/// One line of an export file: an event, or the closing checkpoint.
#[derive(Deserialize)]
struct Line {
    #[serde(default, deserialize_with = "number")]
    seq: Option<u64>,
    #[serde(default, deserialize_with = "number")]
    time_unix_ms: Option<u64>,
    leaf_hash: Option<String>,
    record: Option<String>,
    /// The record decoded to JSON: only a view, but a reader trusts it, so it is checked too.
    event: Option<serde_json::Value>,
    checkpoint: Option<String>,
    #[serde(default, deserialize_with = "number")]
    tree_size: Option<u64>,
}

/// A u64 written as a JSON number or, as proto3 JSON writes 64-bit integers, a string.
fn number<'de, D: serde::Deserializer<'de>>(de: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Num {
        N(u64),
        S(String),
    }
    match Option::<Num>::deserialize(de)? {
        None => Ok(None),
        Some(Num::N(n)) => Ok(Some(n)),
        Some(Num::S(s)) => s.parse().map(Some).map_err(serde::de::Error::custom),
    }
}

/// The walk's state: the next seq expected and the leaves folded so far.
struct Walk<'a, 'w> {
    inputs: &'a Inputs<'a>,
    expected: u64,
    range: CompactRange,
    leaves: Option<&'w mut dyn Write>,
}

/// Verifies the export read from `reader`; `progress` advances by the bytes read, and every
/// leaf hash read is written to `leaves` (32 bytes each) when given, for `audit_bisect`.
pub fn verify<R: BufRead>(
    mut reader: R,
    inputs: &Inputs<'_>,
    progress: &ProgressBar,
    leaves: Option<&mut dyn Write>,
) -> Report {
    let mut walk = Walk {
        inputs,
        expected: 1,
        range: CompactRange::new(),
        leaves,
    };
    let mut lines = LineReader::new(&mut reader, progress);
    let outcome = walk.run(&mut lines);
    walk.report(outcome)
}

impl Walk<'_, '_> {
    fn run<R: BufRead>(
        &mut self,
        lines: &mut LineReader<'_, R>,
    ) -> Result<(CheckpointNote, Vec<String>), Failure> {
        self.check_trusted_at(0)?;
        loop {
            let Some(line) = lines.next(self.expected)? else {
                return Err(Failure::at(
                    FailureKind::CheckpointMissing,
                    self.expected,
                    "the file ends without its checkpoint line (truncated?)",
                ));
            };
            if let Some(note) = &line.checkpoint {
                let done = self.finish(note, line.tree_size)?;
                if lines.next(self.expected)?.is_some() {
                    return Err(Failure::at(
                        FailureKind::LineMalformed,
                        self.expected,
                        "a line follows the checkpoint line",
                    ));
                }
                return Ok(done);
            }
            self.check_order(&line, lines)?;
            self.check_event(&line)?;
        }
    }

    /// The line at position `expected` must hold seq `expected`.
    fn check_order<R: BufRead>(
        &self,
        line: &Line,
        lines: &mut LineReader<'_, R>,
    ) -> Result<(), Failure> {
        let expected = self.expected;
        let seq = line.seq.ok_or_else(|| {
            Failure::at(FailureKind::LineMalformed, expected, "the line has no seq")
        })?;
        if seq == expected {
            return Ok(());
        }
        if seq < expected {
            return Err(Failure::at(
                FailureKind::Duplicate,
                expected,
                format!("seq {seq} appears again where seq {expected} belongs"),
            ));
        }
        // One line of lookahead tells a swap from a deletion.
        let next = lines.next(expected)?;
        if next.and_then(|n| n.seq) == Some(expected) {
            return Err(Failure::at(
                FailureKind::OutOfOrder,
                expected,
                format!("seq {seq} comes before seq {expected}"),
            ));
        }
        Err(Failure::at(
            FailureKind::SeqGap,
            expected,
            format!("seq {expected} is missing: the next line holds seq {seq}"),
        ))
    }

    /// The record hashes to the line's leaf and decodes to the line's seq and time.
    fn check_event(&mut self, line: &Line) -> Result<(), Failure> {
        let seq = self.expected;
        let (Some(record), Some(stored), Some(time)) =
            (&line.record, &line.leaf_hash, line.time_unix_ms)
        else {
            return Err(Failure::at(
                FailureKind::LineMalformed,
                seq,
                "the line lacks record, leaf_hash or time_unix_ms",
            ));
        };
        let record = STANDARD.decode(record).map_err(|_| {
            Failure::at(
                FailureKind::RecordUndecodable,
                seq,
                "the record is not base64",
            )
        })?;
        let stored: Hash = STANDARD
            .decode(stored)
            .ok()
            .and_then(|h| h.try_into().ok())
            .ok_or_else(|| {
                Failure::at(
                    FailureKind::LineMalformed,
                    seq,
                    "leaf_hash is not base64 of 32 bytes",
                )
            })?;
        let leaf = merkle::leaf_hash(&record);
        if leaf != stored {
            return Err(Failure::at(
                FailureKind::LeafMismatch,
                seq,
                format!(
                    "the record hashes to leaf {}, the line says {}",
                    STANDARD.encode(leaf),
                    STANDARD.encode(stored)
                ),
            ));
        }
        let event = log::Event::decode(record.as_slice()).map_err(|e| {
            Failure::at(
                FailureKind::RecordUndecodable,
                seq,
                format!("the record is not a warrant.log.v1.Event: {e}"),
            )
        })?;
        if event.seq != seq || event.time_unix_ms != time {
            return Err(Failure::at(
                FailureKind::RecordDisagrees,
                seq,
                format!(
                    "the record is seq {} at {} ms; its line says seq {seq} at {time} ms",
                    event.seq, event.time_unix_ms
                ),
            ));
        }
        check_view(seq, &event, line.event.as_ref())?;
        self.push(leaf)?;
        self.expected += 1;
        self.check_trusted_at(seq)
    }

    fn push(&mut self, leaf: Hash) -> Result<(), Failure> {
        self.range.push(leaf).map_err(|e| {
            Failure::at(
                FailureKind::LineMalformed,
                self.expected,
                format!("fold the leaf into the tree: {e}"),
            )
        })?;
        if let Some(sink) = self.leaves.as_mut() {
            sink.write_all(&leaf).map_err(|e| {
                Failure::unplaced(
                    FailureKind::LineMalformed,
                    format!("cannot keep the leaves for bisection: {e}"),
                )
            })?;
        }
        Ok(())
    }

    /// At the trusted checkpoint's size, the file's root must be its root.
    fn check_trusted_at(&self, size: u64) -> Result<(), Failure> {
        let Some(trusted) = self.inputs.trusted.map(|t| &t.checkpoint) else {
            return Ok(());
        };
        if trusted.size != size {
            return Ok(());
        }
        let root = self.range.root();
        if root != trusted.root {
            return Err(Failure::at(
                FailureKind::TrustedNotConsistent,
                size,
                format!(
                    "the file's root at size {size} is {}; the trusted checkpoint says {}: \
                     the log was rewritten (a fork)",
                    STANDARD.encode(root),
                    STANDARD.encode(trusted.root)
                ),
            ));
        }
        Ok(())
    }

    /// The closing line: its checkpoint signs the file's size and root with a pinned key.
    fn finish(
        &self,
        note: &str,
        tree_size: Option<u64>,
    ) -> Result<(CheckpointNote, Vec<String>), Failure> {
        let events = self.expected - 1;
        let note = read_checkpoint(note)
            .map_err(|why| Failure::unplaced(FailureKind::CheckpointMalformed, why.to_string()))?;
        let signed = &note.checkpoint;
        if tree_size.is_some_and(|size| size != signed.size) {
            return Err(Failure::unplaced(
                FailureKind::CheckpointMalformed,
                "the line's tree_size is not its note's",
            ));
        }
        if signed.size != events {
            return Err(Failure::at(
                FailureKind::CheckpointSizeMismatch,
                events.min(signed.size) + 1,
                format!(
                    "the checkpoint signs {} events; the file holds {events}",
                    signed.size
                ),
            ));
        }
        let signers = signed_by_pinned(&note, self.inputs.pinned, "the file's checkpoint")?;
        if let Some(trusted) = self.inputs.trusted {
            check_trusted_note(trusted, &note)?;
        }
        let root = self.range.root();
        if root != signed.root {
            return Err(Failure::unplaced(
                FailureKind::RootMismatch,
                format!(
                    "the root of the file's {events} leaves is {}; the signed checkpoint says {}. \
                     Every line is well formed, so a line was forged or changed with its leaf \
                     hash; no index can be named offline (give --endpoint to localise it)",
                    STANDARD.encode(root),
                    STANDARD.encode(signed.root)
                ),
            ));
        }
        Ok((note, signers))
    }

    fn report(&self, outcome: Result<(CheckpointNote, Vec<String>), Failure>) -> Report {
        let (tree_size, origin, signers, failure) = match outcome {
            Ok((note, signers)) => (note.checkpoint.size, note.checkpoint.origin, signers, None),
            Err(failure) => (0, String::new(), Vec::new(), Some(failure)),
        };
        Report {
            ok: failure.is_none(),
            events: self.expected - 1,
            tree_size,
            root: STANDARD.encode(self.range.root()),
            origin,
            signers,
            trusted_size: self.inputs.trusted.map(|t| t.checkpoint.size),
            failure,
        }
    }
}

/// The line's JSON view of the event, when it has one, says what the record says.
fn check_view(
    seq: u64,
    event: &log::Event,
    view: Option<&serde_json::Value>,
) -> Result<(), Failure> {
    let Some(view) = view else {
        return Ok(());
    };
    match crate::audit_json::event_from_json(view) {
        Ok(viewed) if viewed == *event => Ok(()),
        Ok(_) => Err(Failure::at(
            FailureKind::EventViewMismatch,
            seq,
            "the line's event JSON differs from its record decoded",
        )),
        Err(e) => Err(Failure::at(
            FailureKind::EventViewMismatch,
            seq,
            format!("the line's event JSON is not a warrant.log.v1.Event: {e:#}"),
        )),
    }
}

/// The trusted checkpoint is of this log and not larger than the file.
fn check_trusted_note(trusted: &CheckpointNote, note: &CheckpointNote) -> Result<(), Failure> {
    let (trusted, note) = (&trusted.checkpoint, &note.checkpoint);
    if trusted.origin != note.origin {
        return Err(Failure::unplaced(
            FailureKind::TrustedNotConsistent,
            format!(
                "the trusted checkpoint is of log {:?}, the file of {:?}",
                trusted.origin, note.origin
            ),
        ));
    }
    if trusted.size > note.size {
        return Err(Failure::at(
            FailureKind::TrustedLarger,
            note.size + 1,
            format!(
                "the trusted checkpoint has {} events, the file only {}: the log was rolled \
                 back (or this export is older than the checkpoint)",
                trusted.size, note.size
            ),
        ));
    }
    Ok(())
}

/// The names of the pinned keys that signed `note`, or why none did. Signature lines by other
/// keys are skipped, as signed-note verifiers do; a line by a pinned key (name and key id)
/// must verify.
pub fn signed_by_pinned(
    note: &CheckpointNote,
    pinned: &[VerifierKey],
    what: &str,
) -> Result<Vec<String>, Failure> {
    match note::open(&note.text, pinned) {
        Ok(opened) => Ok(opened
            .verified
            .iter()
            .map(|key| key.name().to_string())
            .collect()),
        Err(NoteError::BadSignature { key }) => Err(Failure::unplaced(
            FailureKind::SignatureInvalid,
            format!("{what}: the signature by {key} does not verify"),
        )),
        Err(NoteError::NoKnownSignature { signers }) => Err(Failure::unplaced(
            FailureKind::NoPinnedKeySigned,
            format!(
                "{what} is signed by {} and by no pinned key (a key name and key id given with \
                 --key)",
                signers.join(", ")
            ),
        )),
        // `read_checkpoint` parsed the note already; any other refusal is of its form.
        Err(malformed) => Err(Failure::unplaced(
            FailureKind::CheckpointMalformed,
            format!("{what}: {malformed}"),
        )),
    }
}

/// Reads bounded lines, one of lookahead at most, advancing the progress bar.
struct LineReader<'a, R> {
    reader: &'a mut R,
    progress: &'a ProgressBar,
    buf: Vec<u8>,
    line_no: u64,
}

impl<'a, R: BufRead> LineReader<'a, R> {
    fn new(reader: &'a mut R, progress: &'a ProgressBar) -> Self {
        LineReader {
            reader,
            progress,
            buf: Vec::new(),
            line_no: 0,
        }
    }

    /// The next non-empty line, parsed; None at the end. `position` names failures.
    fn next(&mut self, position: u64) -> Result<Option<Line>, Failure> {
        loop {
            self.buf.clear();
            let limit = EXPORT_LINE_BYTES_MAX as u64 + 1;
            let read = self
                .reader
                .by_ref()
                .take(limit)
                .read_until(b'\n', &mut self.buf)
                .map_err(|e| {
                    Failure::at(
                        FailureKind::LineMalformed,
                        position,
                        format!("read the file: {e}"),
                    )
                })?;
            if read == 0 {
                return Ok(None);
            }
            self.line_no += 1;
            self.progress.inc(read as u64);
            if self.buf.len() > EXPORT_LINE_BYTES_MAX {
                return Err(Failure::at(
                    FailureKind::LineMalformed,
                    position,
                    format!(
                        "line {} is over {EXPORT_LINE_BYTES_MAX} bytes",
                        self.line_no
                    ),
                ));
            }
            if self.buf.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            return serde_json::from_slice(&self.buf).map(Some).map_err(|e| {
                Failure::at(
                    FailureKind::LineMalformed,
                    position,
                    format!("line {} is not an export line: {e}", self.line_no),
                )
            });
        }
    }
}

#[cfg(test)]
mod tests;
