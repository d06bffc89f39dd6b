//! The signer's rules over an in-memory store whose tree is appended as apply appends it
//! (`tree::append`), with the record on disk: tamper cases 3, 4, 5 and 11 at the signer.

use std::sync::Arc;

use prost::Message;
use warrant_identity::{
    InMemoryState, StateRead, WriteSet,
    audit::{merkle, tree},
    keys,
};
use warrant_proto::log;
use warrant_token::{
    NodeSigningKey,
    note::{self, NoteError},
};

use super::{
    anchor,
    key::AuditKey,
    record::{self, RecordError},
    rules::{Refusal, SignerState},
    signer::{Core, StepError},
};

const ISSUER: &str = "https://warrant.example/";

fn audit_key() -> Arc<AuditKey> {
    let key = NodeSigningKey::generate_ephemeral().expect("key");
    Arc::new(AuditKey::new(key, ISSUER, 1).expect("names"))
}

/// The record of event `seq`; `variant` changes its bytes (another history).
fn event_record(seq: u64, variant: u64) -> Vec<u8> {
    log::Event {
        seq,
        time_unix_ms: 1_000 + seq,
        idempotency_key: format!("k-{seq}-{variant}"),
        ..Default::default()
    }
    .encode_to_vec()
}

/// Appends events up to `to` as apply does: records, tree rows and the last seq in one write.
fn grow(state: &mut InMemoryState, to: u64, variant: impl Fn(u64) -> u64) {
    let size = tree::size(state).expect("size");
    let records: Vec<Vec<u8>> = (size + 1..=to)
        .map(|seq| event_record(seq, variant(seq)))
        .collect();
    let mut writes = WriteSet::new();
    for (seq, record) in (size + 1..).zip(&records) {
        writes.put(keys::event(seq), record.clone());
    }
    let refs: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
    let after = tree::append(state, &mut writes, size, &refs).expect("append");
    assert_eq!(after, to);
    writes.put(keys::LAST_SEQ.to_vec(), to.to_be_bytes().to_vec());
    state.apply_writes(&writes);
}

fn store(size: u64) -> InMemoryState {
    let mut state = InMemoryState::new();
    grow(&mut state, size, |_| 0);
    state
}

fn open(dir: &tempfile::TempDir, key: &Arc<AuditKey>) -> Core {
    Core::open(key.clone(), record::record_path(dir.path())).expect("open")
}

/// Steps until caught up (or refused).
fn catch_up(core: &Core, state: &dyn StateRead) -> Result<(), StepError> {
    while !core.step(state)? {}
    Ok(())
}

/// A store of `size` events and a signer (with its directory and key) that verified it.
fn verified_store(size: u64) -> (tempfile::TempDir, Arc<AuditKey>, InMemoryState, Core) {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = audit_key();
    let state = store(size);
    let core = open(&dir, &key);
    catch_up(&core, &state).expect("verified");
    (dir, key, state, core)
}

/// Flips the bits `mask` of byte `byte` of the stored row `row`, as a bad disk would.
fn flip_stored(state: &mut InMemoryState, row: Vec<u8>, byte: usize, mask: u8) {
    let mut bad = state.get(&row).expect("read").expect("a stored row");
    bad[byte] ^= mask;
    let mut writes = WriteSet::new();
    writes.put(row, bad);
    state.apply_writes(&writes);
}

fn refusal(error: StepError) -> Refusal {
    match error {
        StepError::Refused(refusal) => refusal,
        other => panic!("expected a refusal, got {other}"),
    }
}

#[test]
fn a_signature_is_persisted_and_read_back_strictly() {
    let (dir, key, state, core) = verified_store(10);
    assert_eq!(core.state(), SignerState::Ready);
    let (signed, new) = core.sign(&state, 10, 1).expect("signed");
    assert!(new);
    assert_eq!(signed.tree_size, 10);
    assert_eq!(signed.root, tree::root(&state, 10).expect("root"));
    let opened = open_note(&signed.note, &key).expect("opens");
    assert_eq!((opened.size, opened.root), (10, signed.root));
    assert_eq!(opened.origin, "warrant.example/audit");
    // Round trip: the record read at start is the one written.
    let path = record::record_path(dir.path());
    assert_eq!(
        record::read(&path, &key).expect("read"),
        Some(signed.clone())
    );
    // Signing again at the same size signs nothing new: the record is served.
    let (again, new) = core.sign(&state, 10, 2).expect("kept");
    assert!(!new);
    assert_eq!(again, signed);
}

#[test]
fn a_corrupt_record_is_refused_with_its_path() {
    let (dir, key, state, core) = verified_store(4);
    core.sign(&state, 4, 1).expect("signed");
    let path = record::record_path(dir.path());
    let good = std::fs::read(&path).expect("record");
    let mut flipped_note = log_record(&good);
    flipped_note.note = flipped_note.note.replacen("\n4\n", "\n5\n", 1);
    let mut wrong_root = log_record(&good);
    wrong_root.root_hash[0] ^= 1;
    let mut short_frontier = log_record(&good);
    short_frontier.frontier.clear();
    let cases: Vec<Vec<u8>> = vec![
        b"\xff\xff\xff not a record".to_vec(),
        good[..good.len() / 2].to_vec(),
        flipped_note.encode_to_vec(),
        wrong_root.encode_to_vec(),
        short_frontier.encode_to_vec(),
    ];
    for bytes in cases {
        std::fs::write(&path, &bytes).expect("write");
        let error = Core::open(key.clone(), path.clone())
            .err()
            .expect("refused");
        assert!(matches!(error, RecordError::Corrupt { .. }), "{error}");
        assert!(
            error.to_string().contains(&path.display().to_string()),
            "{error}"
        );
    }
    // Another node's key did not sign it.
    std::fs::write(&path, &good).expect("write");
    let error = Core::open(audit_key(), path.clone())
        .err()
        .expect("refused");
    assert!(error.to_string().contains("signed-checkpoint"), "{error}");
}

fn log_record(bytes: &[u8]) -> warrant_proto::state::SignedCheckpointRecord {
    warrant_proto::state::SignedCheckpointRecord::decode(bytes).expect("decode")
}

#[test]
fn never_a_smaller_size_nor_another_root_at_a_signed_size() {
    let (dir, key, mut state, core) = verified_store(8);
    core.sign(&state, 8, 1).expect("signed at 8");
    grow(&mut state, 12, |_| 0);
    let (signed, _) = core.sign(&state, 12, 2).expect("signed at 12");
    assert_eq!(signed.tree_size, 12);
    // A barrier that confirmed a smaller size (a stale caller) still signs the verified 12,
    // never 8 again, and never below the record.
    let (kept, new) = core.sign(&state, 9, 3).expect("kept");
    assert_eq!((kept.tree_size, new), (12, false));

    // The same size with another history (a data dir swapped for a fork): at start the stored
    // tree is checked against the record, and the first differing frontier subtree is named.
    let forked = {
        let mut forked = InMemoryState::new();
        grow(&mut forked, 12, |seq| u64::from(seq >= 10));
        forked
    };
    let restarted = open(&dir, &key);
    let error = catch_up(&restarted, &forked).expect_err("refused");
    // 12 = 8 + 4: leaves 0..8 agree, the subtree of leaves 8..12 differs.
    assert!(matches!(refusal(error), Refusal::Corrupt { index: 8, .. }));
    assert!(matches!(
        restarted.state(),
        SignerState::Corrupt { index: 8, .. }
    ));
    assert!(restarted.sign(&forked, 12, 4).is_err());
}

/// Tamper case 5: the tail truncated while the node was down. The tree is smaller than the
/// record: Rollback, no signature and no proof, until the node caught up; then it signs on.
#[test]
fn a_truncated_tail_is_a_rollback_until_caught_up() {
    let (dir, key, state, core) = verified_store(10);
    let (signed, _) = core.sign(&state, 10, 1).expect("signed");

    let mut truncated = store(6);
    let restarted = open(&dir, &key);
    let error = catch_up(&restarted, &truncated).expect_err("refused");
    let rollback = Refusal::Rollback {
        signed_size: 10,
        tree_size: 6,
    };
    assert_eq!(refusal(error), rollback);
    assert_eq!(
        restarted.state(),
        SignerState::Rollback {
            signed_size: 10,
            tree_size: 6
        }
    );
    assert_eq!(
        refusal(restarted.sign(&truncated, 6, 2).expect_err("no")),
        rollback
    );
    let proof = restarted.prove(&truncated, 6, true, |state, verified| {
        anchor::inclusion(state, verified, 0, 6)
    });
    assert_eq!(
        proof.err().map(|e| e.reason),
        Some(crate::error::Reason::AuditRollback)
    );
    // Still short: still a rollback.
    grow(&mut truncated, 9, |_| 0);
    assert!(restarted.step(&truncated).is_err());
    // Caught up (the same committed events, re-fetched from the leader): ready, and the
    // checkpoint at the signed size is the one signed.
    grow(&mut truncated, 10, |_| 0);
    catch_up(&restarted, &truncated).expect("verified");
    assert_eq!(restarted.state(), SignerState::Ready);
    assert_eq!(restarted.sign(&truncated, 10, 3).expect("kept").0, signed);
    grow(&mut truncated, 11, |_| 0);
    assert_eq!(
        restarted
            .sign(&truncated, 11, 4)
            .expect("signed")
            .0
            .tree_size,
        11
    );
}

/// Tamper case 11: the whole data dir (record included) rolled back to an earlier copy. The
/// record no longer knows the larger size signed; what stops a smaller signature is the
/// barrier: it confirms the size committed (at least every size any node signed), and the
/// signer refuses until its tree covers it. Here the barrier is a number.
#[test]
fn a_rolled_back_data_dir_signs_nothing_below_the_confirmed_size() {
    let key = audit_key();
    let newer = tempfile::tempdir().expect("tempdir");
    let live = store(20);
    let core = open(&newer, &key);
    catch_up(&core, &live).expect("verified");
    let (signed_before, _) = core.sign(&live, 20, 1).expect("signed at 20");

    // The earlier copy: 12 events and a record at 12.
    let older = tempfile::tempdir().expect("tempdir");
    let mut copy = store(12);
    let old = open(&older, &key);
    catch_up(&old, &copy).expect("verified");
    old.sign(&copy, 12, 1).expect("signed at 12");
    // Restarted from the copy: the barrier confirms 20 (committed before the rollback).
    let restarted = open(&older, &key);
    catch_up(&restarted, &copy).expect("verified");
    assert_eq!(
        refusal(restarted.sign(&copy, 20, 2).expect_err("behind")),
        Refusal::Behind {
            verified: 12,
            confirmed: 20
        }
    );
    assert_eq!(
        record::read(&record::record_path(older.path()), &key)
            .expect("read")
            .map(|s| s.tree_size),
        Some(12),
        "nothing was written"
    );
    // Once it applied the committed entries it signs what it signed before, byte for byte:
    // the body has no timestamp and Ed25519 is deterministic.
    grow(&mut copy, 20, |_| 0);
    let (signed_after, _) = restarted.sign(&copy, 20, 3).expect("signed at 20");
    assert_eq!(signed_after.note, signed_before.note);
}

/// Tamper case 1 at the signer: a flipped record byte past the record is found before the next
/// signature, with its index, and the signer stays corrupt.
#[test]
fn a_flipped_leaf_after_the_record_is_corrupt_forever() {
    let (_dir, _key, mut state, core) = verified_store(8);
    core.sign(&state, 8, 1).expect("signed");
    grow(&mut state, 16, |_| 0);
    let mut writes = WriteSet::new();
    let mut record = event_record(13, 0);
    record[0] ^= 0x01;
    writes.put(keys::event(13), record);
    state.apply_writes(&writes);
    let error = core.sign(&state, 16, 2).expect_err("refused");
    assert!(matches!(refusal(error), Refusal::Corrupt { index: 12, .. }));
    // Restored or not, a corrupt signer stays corrupt until the node is re-created.
    assert!(matches!(
        refusal(core.step(&store(16)).expect_err("still")),
        Refusal::Corrupt { index: 12, .. }
    ));
}

/// The row of the cached interior node at `level`, `index`.
fn node_key(level: u8, index: u64) -> Vec<u8> {
    keys::tree_node(level, index)
}

/// Tamper case 4: a corrupted cached interior node. Node (1, 3) covers leaves 6 and 7; it is a
/// right child, so no root reads it, only proofs: the audit path of leaf 4 holds it. The proof
/// is verified against the verified root first, so it is refused with the leaf, never sent.
#[test]
fn a_corrupted_cached_node_refuses_the_proofs_that_use_it() {
    let (_dir, _key, mut state, core) = verified_store(16);
    let good = core
        .prove(&state, 16, true, |s, v| anchor::inclusion(s, v, 4, 16))
        .expect("proof");
    merkle::verify_inclusion(4, 16, &good.leaf, &good.path, &good.root).expect("verifies");

    let row = node_key(1, 3);
    flip_stored(&mut state, row, 0, 0x01);
    let error = core
        .prove(&state, 16, true, |s, v| anchor::inclusion(s, v, 4, 16))
        .err()
        .expect("refused");
    assert_eq!(error.reason, crate::error::Reason::AuditTreeCorrupt);
    assert!(
        error.metadata.contains(&("index", "4".to_string())),
        "{error:?}"
    );
    // The node is corrupt now: no proof and no checkpoint.
    assert!(matches!(
        core.state(),
        SignerState::Corrupt { index: 4, .. }
    ));
    assert!(core.sign(&state, 16, 2).is_err());
}

/// A consistency proof through a corrupted node is refused too, and proofs of every size on
/// a healthy tree verify (the anchoring never refuses a good tree).
#[test]
fn proofs_at_every_size_verify_and_a_bad_node_refuses_consistency() {
    let (_dir, _key, mut state, core) = verified_store(13);
    for size in 1..=13u64 {
        for index in 0..size {
            let proof = core
                .prove(&state, size, true, move |s, v| {
                    anchor::inclusion(s, v, index, size)
                })
                .expect("inclusion");
            merkle::verify_inclusion(index, size, &proof.leaf, &proof.path, &proof.root)
                .expect("verifies");
        }
        for old in 0..=size {
            core.prove(&state, size, true, move |s, v| {
                anchor::consistency(s, v, old, size)
            })
            .expect("consistency");
        }
    }
    let out_of_range = core.prove(&state, 13, true, |s, v| anchor::consistency(s, v, 9, 5));
    assert_eq!(
        out_of_range.err().map(|e| e.reason),
        Some(crate::error::Reason::TreeSizeOutOfRange)
    );
    // Leaves 8..12 form node (2, 2); the consistency proof from 10 to 13 needs node (1, 5).
    let row = node_key(1, 5);
    flip_stored(&mut state, row, 31, 0x80);
    let error = core
        .prove(&state, 13, true, |s, v| anchor::consistency(s, v, 10, 13))
        .err()
        .expect("refused");
    assert_eq!(error.reason, crate::error::Reason::AuditTreeCorrupt);
}

/// Tamper cases 2 and 4 before a signature: a flipped stored leaf hash, or a cached interior
/// node, among the leaves appended since the record is found with the leaf that completes it.
#[test]
fn a_flipped_stored_row_after_the_record_is_found_before_signing() {
    for (row, bad_index) in [
        (node_key(0, 9), 9),
        (node_key(1, 5), 11),
        (node_key(3, 1), 15),
    ] {
        let (dir, key, mut state, core) = verified_store(8);
        core.sign(&state, 8, 1).expect("signed");
        grow(&mut state, 16, |_| 0);
        flip_stored(&mut state, row, 7, 0x10);
        let error = core.sign(&state, 16, 2).expect_err("refused");
        assert!(
            matches!(refusal(error), Refusal::Corrupt { index, .. } if index == bad_index),
            "{bad_index}"
        );
        let path = record::record_path(dir.path());
        assert_eq!(
            record::read(&path, &key)
                .expect("read")
                .map(|s| s.tree_size),
            Some(8),
            "nothing signed past the fault"
        );
    }
}

/// What a monitor does with a served note: open it with the pinned verifier key.
fn open_note(text: &str, key: &AuditKey) -> Result<note::Checkpoint, NoteError> {
    let pinned = note::parse_verifier_key(key.verifier_key())?;
    let opened = note::open(text, &[pinned])?;
    note::parse_checkpoint(&opened.body)
}

/// Tamper case 3: a served checkpoint with a flipped signature byte, or a swapped key id, is
/// refused by a reader holding the pinned verifier key; so is another node's signature.
#[test]
fn a_flipped_signature_or_a_swapped_key_id_is_refused() {
    use base64::{Engine, engine::general_purpose::STANDARD};

    let (_dir, key, state, core) = verified_store(5);
    let (signed, _) = core.sign(&state, 5, 1).expect("signed");
    open_note(&signed.note, &key).expect("the served note opens");
    let (head, blob) = signed.note.trim_end().rsplit_once(' ').expect("signature");
    let blob = STANDARD.decode(blob).expect("base64");
    let with = |blob: &[u8]| format!("{head} {}\n", STANDARD.encode(blob));
    let mut flipped = blob.clone();
    flipped[20] ^= 0x01;
    assert!(matches!(
        open_note(&with(&flipped), &key),
        Err(NoteError::BadSignature { .. })
    ));
    let mut swapped = blob.clone();
    swapped[0] ^= 0x01;
    assert!(matches!(
        open_note(&with(&swapped), &key),
        Err(NoteError::NoKnownSignature { .. })
    ));
    let other = audit_key();
    assert!(open_note(&signed.note, &other).is_err());
    // The same size signed by another node of the cluster: byte-identical body, so the
    // notes merge and each node's key opens the merged note.
    let other_dir = tempfile::tempdir().expect("tempdir");
    let other_node = Arc::new(
        AuditKey::new(
            NodeSigningKey::generate_ephemeral().expect("key"),
            ISSUER,
            2,
        )
        .expect("names"),
    );
    let other_core = open(&other_dir, &other_node);
    catch_up(&other_core, &state).expect("verified");
    let (other_signed, _) = other_core.sign(&state, 5, 1).expect("signed");
    let merged = note::merge(&[&signed.note, &other_signed.note]).expect("same body");
    assert_eq!(
        open_note(&merged, &key).expect("node 1"),
        open_note(&merged, &other_node).expect("node 2")
    );
}
