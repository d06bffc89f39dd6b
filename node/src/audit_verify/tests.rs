//! Each tamper case on a generated export: the verifier reports it, at the first bad seq when
//! one can be named.

use base64::{Engine as _, engine::general_purpose::STANDARD};
use indicatif::ProgressBar;
use prost::Message as _;
use warrant_identity::audit::merkle;
use warrant_proto::log;

use warrant_token::{
    NodeSigningKey,
    note::{self, VerifierKey},
};

use super::{FailureKind, Inputs, Report, read_checkpoint, verify};

const ORIGIN: &str = "warrant.test/audit";
const EVENTS: u64 = 10;

/// A node's checkpoint signer: a fresh Ed25519 key under a key name.
struct TestSigner {
    name: String,
    key: NodeSigningKey,
}

impl TestSigner {
    fn new(name: &str) -> TestSigner {
        TestSigner {
            name: name.to_string(),
            key: NodeSigningKey::generate_ephemeral().expect("a fresh key"),
        }
    }

    /// A checkpoint note of `origin`, `size` and `root`, signed by this key.
    fn checkpoint(&self, origin: &str, size: u64, root: &[u8; 32]) -> String {
        let body = note::checkpoint_body(origin, size, root).expect("a checkpoint body");
        note::sign(&body, &self.name, &self.key).expect("a signed note")
    }
}

fn record(seq: u64, who: &str) -> Vec<u8> {
    log::Event {
        seq,
        time_unix_ms: 1_700_000_000_000 + seq,
        kind: Some(log::event::Kind::HumanRegistered(log::HumanRegistered {
            human_id: format!("{who}-{seq}"),
            ..Default::default()
        })),
        ..Default::default()
    }
    .encode_to_vec()
}

fn line(seq: u64, record: &[u8], leaf: &[u8; 32]) -> String {
    let mut line = serde_json::json!({
        "seq": seq,
        "time_unix_ms": 1_700_000_000_000 + seq,
        "leaf_hash": STANDARD.encode(leaf),
        "record": STANDARD.encode(record),
    });
    if let Ok(event) = log::Event::decode(record) {
        line["event"] = crate::audit_json::event_json(&event).expect("an event as JSON");
    }
    line.to_string()
}

/// An export of `records` (seq = position + 1) with a checkpoint `signer` signed over them.
fn export(records: &[Vec<u8>], signer: &TestSigner) -> Vec<String> {
    let leaves: Vec<_> = records.iter().map(|r| merkle::leaf_hash(r)).collect();
    let mut lines: Vec<String> = records
        .iter()
        .zip(&leaves)
        .enumerate()
        .map(|(i, (r, l))| line(i as u64 + 1, r, l))
        .collect();
    lines.push(checkpoint_line(&checkpoint(records, signer)));
    lines
}

fn checkpoint(records: &[Vec<u8>], signer: &TestSigner) -> String {
    let leaves: Vec<_> = records.iter().map(|r| merkle::leaf_hash(r)).collect();
    signer.checkpoint(ORIGIN, records.len() as u64, &merkle::root_of(&leaves))
}

fn checkpoint_line(note: &str) -> String {
    let size = read_checkpoint(note).expect("a note").checkpoint.size;
    serde_json::json!({"checkpoint": note, "verifier_key": "", "tree_size": size}).to_string()
}

fn history(who: &str, n: u64) -> Vec<Vec<u8>> {
    (1..=n).map(|seq| record(seq, who)).collect()
}

fn key(signer: &TestSigner) -> VerifierKey {
    // Through its text, as `--key` gives it.
    let text = note::verifier_key(&signer.name, signer.key.public_key()).expect("a key name");
    note::parse_verifier_key(&text).expect("a key")
}

fn run(lines: &[String], pinned: &[VerifierKey], trusted: Option<&str>) -> Report {
    let text = lines.join("\n") + "\n";
    let trusted = trusted.map(|t| read_checkpoint(t).expect("a trusted note"));
    let inputs = Inputs {
        pinned,
        trusted: trusted.as_ref(),
    };
    verify(text.as_bytes(), &inputs, &ProgressBar::hidden(), None)
}

fn assert_fails(report: &Report, kind: FailureKind, seq: Option<u64>) {
    let failure = report.failure.as_ref().expect("a failure");
    assert!(!report.ok);
    assert_eq!((failure.kind, failure.seq), (kind, seq), "{failure:?}");
}

/// Sets the JSON field `field` of `line` to `value`.
fn with_field(line: &str, field: &str, value: serde_json::Value) -> String {
    let mut json: serde_json::Value = serde_json::from_str(line).expect("JSON");
    json[field] = value;
    json.to_string()
}

#[test]
fn an_untampered_export_verifies() {
    let signer = TestSigner::new("warrant.test/audit#node-1");
    let records = history("h", EVENTS);
    let older = checkpoint(&records[..4], &signer);
    let report = run(&export(&records, &signer), &[key(&signer)], Some(&older));
    assert!(report.ok, "{:?}", report.failure);
    assert_eq!(report.tree_size, EVENTS);
    assert_eq!(report.signers, vec![signer.name.clone()]);
    assert_eq!(report.trusted_size, Some(4));
}

#[test]
fn a_flipped_payload_byte_fails_at_its_seq() {
    let signer = TestSigner::new("k");
    let records = history("h", EVENTS);
    let mut lines = export(&records, &signer);
    let mut flipped = records[4].clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 0x01;
    lines[4] = with_field(&lines[4], "record", STANDARD.encode(&flipped).into());
    assert_fails(
        &run(&lines, &[key(&signer)], None),
        FailureKind::LeafMismatch,
        Some(5),
    );
}

#[test]
fn a_flipped_stored_leaf_hash_fails_at_its_seq() {
    let signer = TestSigner::new("k");
    let mut lines = export(&history("h", EVENTS), &signer);
    let mut leaf = merkle::leaf_hash(&record(4, "h"));
    leaf[0] ^= 0x80;
    lines[3] = with_field(&lines[3], "leaf_hash", STANDARD.encode(leaf).into());
    assert_fails(
        &run(&lines, &[key(&signer)], None),
        FailureKind::LeafMismatch,
        Some(4),
    );
}

#[test]
fn a_flipped_signature_or_a_swapped_key_id_is_refused() {
    let signer = TestSigner::new("k");
    let records = history("h", EVENTS);
    let note = checkpoint(&records, &signer);
    let (body, signature) = note.split_once("\n\n").expect("a note");
    let (prefix, b64) = signature.trim_end().rsplit_once(' ').expect("a signature");
    let mut bytes = STANDARD.decode(b64).expect("base64");

    let mut flipped = bytes.clone();
    flipped[10] ^= 0x01;
    let flipped = format!("{body}\n\n{prefix} {}\n", STANDARD.encode(flipped));
    let mut lines = export(&records, &signer);
    *lines.last_mut().expect("lines") = checkpoint_line(&flipped);
    assert_fails(
        &run(&lines, &[key(&signer)], None),
        FailureKind::SignatureInvalid,
        None,
    );

    bytes[0] ^= 0x01;
    let swapped = format!("{body}\n\n{prefix} {}\n", STANDARD.encode(bytes));
    *lines.last_mut().expect("lines") = checkpoint_line(&swapped);
    assert_fails(
        &run(&lines, &[key(&signer)], None),
        FailureKind::NoPinnedKeySigned,
        None,
    );
    // And a checkpoint signed by a key nobody pinned.
    let stranger = TestSigner::new("k");
    let lines = export(&records, &stranger);
    assert_fails(
        &run(&lines, &[key(&signer)], None),
        FailureKind::NoPinnedKeySigned,
        None,
    );
}

#[test]
fn a_malformed_checkpoint_note_is_refused_before_its_signatures() {
    let signer = TestSigner::new("k");
    let records = history("h", EVENTS);
    let genuine = checkpoint(&records, &signer);
    let (body, signature) = genuine.split_once("\n\n").expect("a note");
    let malformed = [
        // A hyphen for the em dash: not a signature line.
        format!("{body}\n\n{}", signature.replacen('\u{2014}', "-", 1)),
        // A leading zero in the tree size, validly signed: refused for its form all the same.
        note::sign(
            &format!(
                "{}\n",
                body.replacen(&format!("\n{EVENTS}\n"), &format!("\n0{EVENTS}\n"), 1)
            ),
            &signer.name,
            &signer.key,
        )
        .expect("a signed note"),
        // No signature at all.
        format!("{body}\n\n"),
    ];
    for bad in malformed {
        let mut lines = export(&records, &signer);
        *lines.last_mut().expect("lines") =
            serde_json::json!({ "checkpoint": bad, "tree_size": EVENTS }).to_string();
        assert_fails(
            &run(&lines, &[key(&signer)], None),
            FailureKind::CheckpointMalformed,
            None,
        );
    }
}

#[test]
fn a_deleted_middle_line_is_a_gap_at_its_seq() {
    let signer = TestSigner::new("k");
    let mut lines = export(&history("h", EVENTS), &signer);
    lines.remove(5);
    assert_fails(
        &run(&lines, &[key(&signer)], None),
        FailureKind::SeqGap,
        Some(6),
    );
}

#[test]
fn two_swapped_lines_are_out_of_order_at_the_first() {
    let signer = TestSigner::new("k");
    let mut lines = export(&history("h", EVENTS), &signer);
    lines.swap(3, 4);
    assert_fails(
        &run(&lines, &[key(&signer)], None),
        FailureKind::OutOfOrder,
        Some(4),
    );
}

#[test]
fn a_duplicated_line_is_reported_where_it_repeats() {
    let signer = TestSigner::new("k");
    let mut lines = export(&history("h", EVENTS), &signer);
    let copy = lines[6].clone();
    lines.insert(7, copy);
    assert_fails(
        &run(&lines, &[key(&signer)], None),
        FailureKind::Duplicate,
        Some(8),
    );
}

#[test]
fn a_forged_line_with_every_hash_recomputed_breaks_the_signed_root() {
    let signer = TestSigner::new("k");
    let records = history("h", EVENTS);
    let genuine = export(&records, &signer);
    // Replaced in place, seq kept, leaf re-hashed: every line checks, the root does not.
    let mut forged = records.clone();
    forged[4] = record(5, "mallory");
    let mut lines = export(&forged, &signer);
    *lines.last_mut().expect("lines") = genuine.last().expect("lines").clone();
    assert_fails(
        &run(&lines, &[key(&signer)], None),
        FailureKind::RootMismatch,
        None,
    );
    // Inserted, the later lines renumbered and re-hashed: the signed size no longer matches.
    let mut inserted = vec![];
    for seq in 1..=EVENTS + 1 {
        let who = if seq == 5 { "mallory" } else { "h" };
        inserted.push(record(seq, who));
    }
    let mut lines = export(&inserted, &signer);
    *lines.last_mut().expect("lines") = genuine.last().expect("lines").clone();
    assert_fails(
        &run(&lines, &[key(&signer)], None),
        FailureKind::CheckpointSizeMismatch,
        Some(EVENTS + 1),
    );
}

#[test]
fn history_re_signed_with_the_key_is_a_fork_against_an_older_checkpoint() {
    let signer = TestSigner::new("k");
    let records = history("h", EVENTS);
    let older = checkpoint(&records[..6], &signer);
    let mut rewritten = records.clone();
    rewritten[2] = record(3, "mallory");
    let lines = export(&rewritten, &signer);
    // Without the older checkpoint the rewrite is self-consistent…
    assert!(run(&lines, &[key(&signer)], None).ok);
    // …with it, the file's root at 6 is not the one signed then.
    assert_fails(
        &run(&lines, &[key(&signer)], Some(&older)),
        FailureKind::TrustedNotConsistent,
        Some(6),
    );
}

#[test]
fn a_trusted_checkpoint_larger_than_the_file_is_a_rollback() {
    let signer = TestSigner::new("k");
    let records = history("h", EVENTS + 2);
    let newer = checkpoint(&records, &signer);
    let lines = export(&records[..EVENTS as usize], &signer);
    assert_fails(
        &run(&lines, &[key(&signer)], Some(&newer)),
        FailureKind::TrustedLarger,
        Some(EVENTS + 1),
    );
}

#[test]
fn a_truncated_file_or_a_bad_record_is_reported() {
    let signer = TestSigner::new("k");
    let mut lines = export(&history("h", EVENTS), &signer);
    lines.pop();
    assert_fails(
        &run(&lines, &[key(&signer)], None),
        FailureKind::CheckpointMissing,
        Some(EVENTS + 1),
    );
    let mut lines = export(&history("h", EVENTS), &signer);
    let garbage = [0xFF_u8; 3];
    lines[2] = line(3, &garbage, &merkle::leaf_hash(&garbage));
    assert_fails(
        &run(&lines, &[key(&signer)], None),
        FailureKind::RecordUndecodable,
        Some(3),
    );
    // A line's seq edited to hide a deletion: the record still says its own seq.
    let mut lines = export(&history("h", EVENTS), &signer);
    lines.remove(2);
    lines[2] = with_field(&lines[2], "seq", 3.into());
    assert_fails(
        &run(&lines, &[key(&signer)], None),
        FailureKind::RecordDisagrees,
        Some(3),
    );
}

#[test]
fn an_edited_json_view_of_an_event_fails_at_its_seq() {
    let signer = TestSigner::new("k");
    let mut lines = export(&history("h", EVENTS), &signer);
    let mut line: serde_json::Value = serde_json::from_str(&lines[5]).expect("JSON");
    assert_eq!(line["event"]["human_registered"]["human_id"], "h-6");
    assert_eq!(
        line["event"]["seq"], "6",
        "proto3 JSON writes 64-bit integers as strings"
    );
    line["event"]["human_registered"]["human_id"] = "mallory".into();
    lines[5] = line.to_string();
    assert_fails(
        &run(&lines, &[key(&signer)], None),
        FailureKind::EventViewMismatch,
        Some(6),
    );
    // A line without the view checks on its record alone.
    let mut lines = export(&history("h", EVENTS), &signer);
    let mut line: serde_json::Value = serde_json::from_str(&lines[2]).expect("JSON");
    line.as_object_mut().expect("an object").remove("event");
    lines[2] = line.to_string();
    assert!(run(&lines, &[key(&signer)], None).ok);
}
