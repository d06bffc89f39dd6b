//! `Export`: the log as JSON Lines, in seq order.
//!
//! One line per event, `{"seq":N,"time_unix_ms":T,"leaf_hash":"<base64>","record":"<base64>",
//! "event":{...}}`: the record is the exact bytes stored under `keys::event(seq)` (the bytes the
//! leaf hashes), `leaf_hash` the stored leaf row (not recomputed: a verifier recomputes it and
//! so catches a flipped stored hash), `event` the record decoded through the public descriptors
//! alone (`records`). Then one last line, `final_line`: the checkpoint at the last seq
//! exported. The stream reads [`EXPORT_EVENTS_PER_PAGE`] records at a time and sends chunks of
//! whole lines of at most [`EXPORT_CHUNK_BYTES`] (a longer line goes alone) through a channel of
//! [`EXPORT_BUFFER_CHUNKS`], so an export of any length holds one page and a few chunks; it
//! holds a `slots` slot, like `Watch`, until it ends or the client goes away.

use base64::{Engine, engine::general_purpose::STANDARD};
use prost::Message;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Request, Response, Status};
use warrant_identity::{
    StateRead,
    audit::{
        merkle::Hash,
        tree::{self, TreeError},
    },
    keys,
};
use warrant_proto::{api, log};
use warrant_raft::StateReader;

use super::{records, slots};
use crate::{
    context::Context,
    error::{ApiError, Reason},
    limits::{EXPORT_BUFFER_CHUNKS, EXPORT_CHUNK_BYTES, EXPORT_EVENTS_PER_PAGE},
    storage::storage,
    validate,
};

pub type ExportStream =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<api::ExportChunk, Status>> + Send>>;

type Sender = mpsc::Sender<Result<api::ExportChunk, Status>>;

pub(super) async fn export(
    context: &Context,
    request: Request<api::ExportRequest>,
) -> Result<Response<ExportStream>, Status> {
    context.auditor(request.metadata()).await?;
    let request = request.into_inner();
    let consistency = validate::read_consistency(request.read.as_ref())?;
    let slot = slots::take(&context.audit_streams)?;
    let reader = context.read(consistency).await?;
    let tree_size = tree::size(&reader).map_err(storage)?;
    let requested = export_range(request.from_seq, request.to_seq, tree_size)?;
    // The checkpoint comes first: an export that cannot end with one does not start. Its size
    // is where the export ends.
    let (last_line, signed_size) = final_line(context, request.to_seq, requested.last).await?;
    let range = SeqRange {
        last: signed_size,
        ..requested
    };
    let (tx, rx) = mpsc::channel(EXPORT_BUFFER_CHUNKS);
    tokio::spawn(async move {
        if let Err(e) = stream(&reader, range, last_line, &tx).await {
            let _ = tx.send(Err(e.into())).await;
        }
        drop(slot);
    });
    Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
}

/// The export's last line, `{"checkpoint":"<note>","verifier_key":"<vkey>","tree_size":N}`,
/// and N, where the export ends: a checkpoint this node signed (`context.checkpoints`) at the
/// last seq exported. With no `to_seq`, the latest checkpoint of at least `size` leaves, signed
/// now if needed (so the export runs to it); with one, a checkpoint at exactly `to_seq`, or
/// SEQ_OUT_OF_RANGE naming the size this node can sign (a file verifies against a checkpoint at
/// its last seq, and a node signs no size below one it signed). The signer's refusals
/// (AUDIT_ROLLBACK, AUDIT_TREE_CORRUPT, CHECKPOINT_UNAVAILABLE) are the export's.
async fn final_line(context: &Context, to_seq: u64, size: u64) -> Result<(Vec<u8>, u64), ApiError> {
    let checkpoint = context.checkpoints.checkpoint_at_least(size).await?;
    if to_seq != 0 && checkpoint.tree_size != to_seq {
        return Err(ApiError::new(
            Code::OutOfRange,
            Reason::SeqOutOfRange,
            format!(
                "this node's checkpoint is at {}, not to_seq {to_seq}; allowed: to_seq 0 (export \
                 to the checkpoint) or {}",
                checkpoint.tree_size, checkpoint.tree_size
            ),
        )
        .with("field", "to_seq")
        .with("tree_size", checkpoint.tree_size.to_string()));
    }
    let line = checkpoint_line(
        &checkpoint.note,
        &checkpoint.verifier_key,
        checkpoint.tree_size,
    );
    Ok((line, checkpoint.tree_size))
}

/// The last line, from a note and its verifier key.
fn checkpoint_line(note: &str, verifier_key: &str, tree_size: u64) -> Vec<u8> {
    let mut line = serde_json::json!({
        "checkpoint": note,
        "verifier_key": verifier_key,
        "tree_size": tree_size,
    })
    .to_string()
    .into_bytes();
    line.push(b'\n');
    line
}

/// The seqs exported: `first..=last`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct SeqRange {
    first: u64,
    last: u64,
}

/// The range a request names against a tree of `tree_size` leaves: from_seq 0 is 1, to_seq 0
/// the tree size; a bound past the tree or a reversed range is SEQ_OUT_OF_RANGE. An empty tree
/// exports only the last line.
fn export_range(from_seq: u64, to_seq: u64, tree_size: u64) -> Result<SeqRange, ApiError> {
    let first = from_seq.max(1);
    let last = match to_seq {
        0 => tree_size,
        to_seq => to_seq,
    };
    let out_of_range = |field: &str, message: String| {
        ApiError::new(Code::OutOfRange, Reason::SeqOutOfRange, message)
            .with("field", field)
            .with("tree_size", tree_size.to_string())
    };
    if tree_size < last {
        return Err(out_of_range(
            "to_seq",
            format!(
                "to_seq {last} is past this node's tree size {tree_size}; allowed: 0 (the tree \
                 size) or 1 to {tree_size}"
            ),
        ));
    }
    if last < first && !(from_seq == 0 && last == 0) {
        return Err(out_of_range(
            "from_seq",
            format!("from_seq {first} is after the last seq exported, {last}"),
        ));
    }
    Ok(SeqRange { first, last })
}

/// Streams the lines of `range`, then `last_line`.
async fn stream(
    reader: &StateReader,
    range: SeqRange,
    last_line: Vec<u8>,
    tx: &Sender,
) -> Result<(), ApiError> {
    let mut chunks = Chunks::default();
    let mut next = range.first;
    while next <= range.last {
        let left = usize::try_from(range.last - next + 1).unwrap_or(usize::MAX);
        let rows = reader
            .scan(
                keys::EVENT_PREFIX,
                &keys::event(next),
                left.min(EXPORT_EVENTS_PER_PAGE),
            )
            .map_err(storage)?;
        if rows.is_empty() {
            return Err(missing(next));
        }
        for (key, record) in rows {
            if keys::event_seq(&key) != Some(next) {
                return Err(missing(next));
            }
            let leaf = tree::leaf(reader, next - 1).map_err(tree_error)?;
            let line = event_line(next, &record, &leaf)?;
            if let Some(chunk) = chunks.push(line)
                && tx.send(Ok(chunk)).await.is_err()
            {
                return Ok(());
            }
            next += 1;
        }
    }
    for chunk in chunks.push(last_line).into_iter().chain(chunks.finish()) {
        if tx.send(Ok(chunk)).await.is_err() {
            return Ok(());
        }
    }
    Ok(())
}

fn missing(seq: u64) -> ApiError {
    ApiError::new(
        Code::DataLoss,
        Reason::AuditTreeCorrupt,
        format!("event {seq} is in the tree but not stored"),
    )
    .with("index", (seq - 1).to_string())
}

/// A tree read's failure as the caller sees it.
fn tree_error(error: TreeError) -> ApiError {
    match error {
        TreeError::OutOfRange(e) => {
            ApiError::new(Code::OutOfRange, Reason::SeqOutOfRange, e.to_string())
        }
        TreeError::Corrupt(why) => ApiError::new(
            Code::DataLoss,
            Reason::AuditTreeCorrupt,
            format!("this node's stored tree is corrupt: {why}"),
        ),
        TreeError::State(e) => storage(e),
    }
}

/// One event's line, ending in a newline.
fn event_line(seq: u64, record: &[u8], leaf: &Hash) -> Result<Vec<u8>, ApiError> {
    let event = log::Event::decode(record).map_err(|e| {
        ApiError::internal(format!(
            "the stored record of event {seq} does not decode: {e}"
        ))
    })?;
    if event.seq != seq {
        return Err(ApiError::internal(format!(
            "the record stored as event {seq} names seq {}",
            event.seq
        )));
    }
    let mut line = format!(
        "{{\"seq\":{seq},\"time_unix_ms\":{},\"leaf_hash\":\"{}\",\"record\":\"{}\",\"event\":",
        event.time_unix_ms,
        STANDARD.encode(leaf),
        STANDARD.encode(record)
    )
    .into_bytes();
    records::write_event_json(record, &mut line)?;
    line.extend_from_slice(b"}\n");
    Ok(line)
}

/// Whole lines gathered into chunks of at most [`EXPORT_CHUNK_BYTES`].
#[derive(Debug, Default)]
struct Chunks {
    pending: Vec<u8>,
}

impl Chunks {
    /// Adds a line; returns the chunk it no longer fits into, if any.
    fn push(&mut self, line: Vec<u8>) -> Option<api::ExportChunk> {
        if !self.pending.is_empty() && EXPORT_CHUNK_BYTES < self.pending.len() + line.len() {
            let full = std::mem::replace(&mut self.pending, line);
            return Some(api::ExportChunk { jsonl: full });
        }
        self.pending.extend_from_slice(&line);
        None
    }

    /// What is left, if anything.
    fn finish(&mut self) -> Option<api::ExportChunk> {
        (!self.pending.is_empty()).then(|| api::ExportChunk {
            jsonl: std::mem::take(&mut self.pending),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_holds_the_seq_time_stored_hash_exact_record_and_decoded_event() {
        let event = log::Event {
            seq: 7,
            time_unix_ms: 1_700_000_000_000,
            kind: Some(log::event::Kind::TokenRevoked(log::TokenRevoked {
                jti: "j1".to_string(),
                reason: "lost".to_string(),
            })),
            ..Default::default()
        };
        let record = event.encode_to_vec();
        let leaf = [7u8; 32];
        let line = event_line(7, &record, &leaf).expect("line");
        assert_eq!(line.last(), Some(&b'\n'));
        assert_eq!(line.iter().filter(|b| **b == b'\n').count(), 1, "one line");
        let json: serde_json::Value = serde_json::from_slice(&line).expect("JSON");
        assert_eq!(json["seq"], 7);
        assert_eq!(json["time_unix_ms"], 1_700_000_000_000u64);
        assert_eq!(json["leaf_hash"], STANDARD.encode(leaf));
        let back = STANDARD
            .decode(json["record"].as_str().expect("string"))
            .expect("base64");
        assert_eq!(back, record, "the exact stored bytes");
        assert_eq!(json["event"]["token_revoked"]["jti"], "j1");
        let keys: Vec<&str> = line
            .split(|b| *b == b',')
            .filter_map(|part| std::str::from_utf8(part).ok())
            .take(4)
            .collect();
        assert!(keys[0].starts_with("{\"seq\":"), "seq first: {keys:?}");
        // A record stored under another seq is refused, never exported.
        assert!(event_line(8, &record, &leaf).is_err());
    }

    #[test]
    fn chunks_hold_whole_lines_within_the_bound() {
        let mut chunks = Chunks::default();
        let line = |n: usize| {
            let mut line = vec![b'x'; n - 1];
            line.push(b'\n');
            line
        };
        let third = EXPORT_CHUNK_BYTES / 3;
        let mut sent = Vec::new();
        for _ in 0..7 {
            sent.extend(chunks.push(line(third)));
        }
        sent.extend(chunks.push(line(EXPORT_CHUNK_BYTES * 2)));
        sent.extend(chunks.push(line(10)));
        sent.extend(chunks.finish());
        let sizes: Vec<usize> = sent.iter().map(|c| c.jsonl.len()).collect();
        assert_eq!(
            sizes,
            vec![3 * third, 3 * third, third, EXPORT_CHUNK_BYTES * 2, 10],
            "a line longer than a chunk goes alone"
        );
        for chunk in &sent {
            assert_eq!(chunk.jsonl.last(), Some(&b'\n'), "whole lines only");
        }
        assert!(chunks.finish().is_none());
    }

    #[test]
    fn the_range_defaults_to_the_whole_tree_and_refuses_what_is_past_it() {
        assert_eq!(
            export_range(0, 0, 10).expect("all"),
            SeqRange { first: 1, last: 10 }
        );
        assert_eq!(
            export_range(4, 6, 10).expect("part"),
            SeqRange { first: 4, last: 6 }
        );
        assert_eq!(
            export_range(0, 0, 0).expect("empty tree"),
            SeqRange { first: 1, last: 0 }
        );
        for (from, to) in [(0, 11), (11, 0), (7, 6), (1, 11)] {
            let refused = export_range(from, to, 10).expect_err("out of range");
            assert_eq!(
                (refused.code, refused.reason),
                (Code::OutOfRange, Reason::SeqOutOfRange),
                "{from}..{to}"
            );
        }
    }

    #[test]
    fn the_last_line_is_one_json_object() {
        let line = checkpoint_line("warrant.example/audit\n3\nabc=\n\n— k x\n", "k+1+2", 3);
        assert_eq!(line.iter().filter(|b| **b == b'\n').count(), 1);
        let json: serde_json::Value = serde_json::from_slice(&line).expect("JSON");
        assert_eq!(json["tree_size"], 3);
        assert!(
            json["checkpoint"]
                .as_str()
                .expect("note")
                .starts_with("warrant.example")
        );
    }
}
