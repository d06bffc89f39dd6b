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
    // Every write of the batch: two humans, two events, two idempotency rows, the meta row.
    assert_eq!(applied.writes.len(), 7);
    assert_eq!(replica.state.len(), 7);
}
