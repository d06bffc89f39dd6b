//! Corrupt rows are errors, not outcomes; and the meta row.

use super::*;

// Corrupt state.

#[test]
fn corrupt_rows_are_errors_not_outcomes() {
    let cases: Vec<(Vec<u8>, Vec<u8>, Command)> = vec![
        (
            keys::human("alice"),
            vec![0xff; 3],
            agent("bot2", "alice").by(admin()),
        ),
        (
            keys::LAST_SEQ.to_vec(),
            vec![1, 2, 3],
            register_human("zed"),
        ),
        (
            keys::LAST_SEQ.to_vec(),
            u64::MAX.to_be_bytes().to_vec(),
            register_human("zed"),
        ),
        (
            keys::idempotency(PrincipalKind::Admin as i32, "root", "k"),
            IdempotencyRow {
                request_digest: vec![0; 32],
                outcome: None,
            }
            .encode_to_vec(),
            register_human("zed").key("k").digest(&[0; 32]),
        ),
    ];
    for (key, value, command) in cases {
        let mut replica = Replica::world();
        let mut writes = WriteSet::new();
        writes.put(key, value);
        replica.state.apply_writes(&writes);
        let batch = Batch {
            time_unix_ms: T1,
            commands: vec![command],
        };
        let result = apply_batch(&replica.state, &batch, 99);
        assert!(
            matches!(result, Err(StateError::Corrupt { .. })),
            "{result:?}"
        );
    }
}

#[test]
fn the_meta_row_tracks_the_last_seq() {
    let mut replica = Replica::new();
    let applied = replica.apply(T1, vec![register_human("a"), register_human("b")]);
    assert_eq!(
        applied.writes.ops.get(keys::LAST_SEQ),
        Some(&Some(2u64.to_be_bytes().to_vec()))
    );
    // Every write of the batch: two humans and a version of each, two events, two idempotency
    // rows, the meta row and the time index; then the tree's rows.
    let not_tree = |key: &&Vec<u8>| !is_tree_row(key);
    assert_eq!(applied.writes.ops.keys().filter(not_tree).count(), 10);
    assert_eq!(
        applied.writes.ops.get(&keys::version(&keys::human("a"), 1)),
        Some(&Some(
            [
                &[1u8][..],
                &replica.state.get(&keys::human("a")).unwrap().unwrap()
            ]
            .concat()
        ))
    );
    assert!(applied.writes.ops.keys().any(|key| is_tree_row(key)));
    assert_eq!(replica.state.len(), applied.writes.len());
}

#[test]
fn a_tree_out_of_step_with_the_log_is_corrupt() {
    let mut replica = Replica::world();
    let mut writes = WriteSet::new();
    // The tree one leaf short: only a torn write (or tampering) could leave it so.
    let seq = replica.seq();
    writes.put(b"m\0tree_size".to_vec(), (seq - 1).to_be_bytes().to_vec());
    replica.state.apply_writes(&writes);
    let batch = Batch {
        time_unix_ms: T1,
        commands: vec![register_human("zed")],
    };
    let error = apply_batch(&replica.state, &batch, 99).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "corrupt row m\\x00last_seq: the log holds {seq} events and the Merkle tree {} \
             leaves; they are written together, so the store is corrupt",
            seq - 1
        )
    );
    // Without the tree (today's apply) the same state applies.
    assert!(apply_batch_unaudited(&replica.state, &batch, 99).is_ok());
}
