//! Idempotency (retries replay, a reused key is refused) and batches (commands see earlier
//! writes, seqs are dense, the batch limit).

use super::*;

// Idempotency.

#[test]
fn a_retry_replays_the_first_outcome() {
    let mut replica = Replica::world();
    let command = issue("j1", "bot", &["send"]).by(agent_actor("bot"));
    let (first, _) = check_accepted(&mut replica, command.clone());
    // Later events must not change what the replay says.
    check_accepted(&mut replica, register_human("zed"));
    let digest_before = replica.digest();
    let seq_before = replica.seq();
    let applied = replica.apply(T1 + 5_000, vec![command]);
    assert_eq!(
        accepted_of(&applied.outcomes[0]),
        Accepted {
            replayed: true,
            ..first
        }
    );
    assert_eq!(applied.events, []);
    assert!(applied.writes.is_empty());
    assert_eq!(replica.seq(), seq_before);
    assert_eq!(replica.digest(), digest_before);
}

#[test]
fn a_retry_in_the_same_batch_replays() {
    let mut replica = Replica::new();
    let command = register_human("alice");
    let applied = replica.apply(T1, vec![command.clone(), command]);
    let first = accepted_of(&applied.outcomes[0]);
    assert_eq!(
        accepted_of(&applied.outcomes[1]),
        Accepted {
            replayed: true,
            ..first
        }
    );
    assert_eq!(applied.events.len(), 1);
}

#[test]
fn reusing_a_key_for_another_request_is_rejected() {
    let first = register_human("zed");
    let mut replica = Replica::world();
    check_accepted(&mut replica, first.clone());
    let cases = [
        // Same key, same body, different digest: a different request as far as the API node knows.
        first.clone().digest(&[9; 32]),
        // Same key, different body.
        register_human("zoe").key(&first.idempotency_key),
    ];
    for command in cases {
        check_refused(
            replica.clone(),
            command,
            RejectReason::IdempotencyKeyReused,
            &format!(
                "idempotency key {} was already used by this actor for a different request; \
                 allowed: a new key per request",
                first.idempotency_key
            ),
        );
    }
}

#[test]
fn keys_are_scoped_by_actor() {
    let mut replica = Replica::world();
    let by_root = register_human("zed").key("shared");
    check_accepted(&mut replica, by_root.clone());
    // Another admin using the same key is a different request, not a replay or a reuse.
    let by_other = Command {
        actor: Some(Actor {
            id: "other-admin".to_owned(),
            ..admin()
        }),
        ..register_human("zoe")
    }
    .key("shared");
    check_accepted(&mut replica, by_other);
    // Another principal kind is another actor too.
    let by_node = signing_key("k7", 1).by(node(1)).key("shared");
    check_accepted(&mut replica, by_node);
}

/// A refusal is kept under its key like an acceptance: the same request with the same key
/// replays it even once it would now be accepted, and a new key decides anew.
#[test]
fn a_refused_command_keeps_its_refusal() {
    let mut replica = Replica::world();
    let early = agent("bot2", "zed").by(admin());
    let applied = replica.apply(T1, vec![early.clone()]);
    assert_eq!(reason_of(&applied.outcomes[0]), RejectReason::HumanNotFound);
    check_accepted(&mut replica, register_human("zed"));
    let retried = replica.apply(T1, vec![early.clone()]);
    assert_eq!(retried.outcomes, applied.outcomes);
    assert!(retried.events.is_empty() && retried.writes.is_empty());
    check_accepted(&mut replica, early.key("later"));
}

// Batches.

#[test]
fn commands_see_earlier_writes_of_their_batch() {
    let mut replica = Replica::new();
    let applied = replica.apply(
        T1,
        vec![
            register_human("alice"),
            agent("bot", "alice").by(admin()),
            service("mail", MAIL, &["send"]).by(admin()),
            signing_key("k1", 1).by(node(1)),
            issue("j1", "bot", &["send"]).by(agent_actor("bot")),
            revoke("j1").by(agent_actor("bot")),
            // Same id, new key: sees the human registered three commands up.
            register_human("alice").key("again"),
        ],
    );
    let seqs: Vec<u64> = applied.outcomes[..6]
        .iter()
        .map(|it| accepted_of(it).seq)
        .collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5, 6]);
    assert_eq!(reason_of(&applied.outcomes[6]), RejectReason::AlreadyExists);
    assert!(query::token(&replica.state, "j1").unwrap().unwrap().revoked);
}

#[test]
fn seqs_are_dense_across_batches() {
    let mut replica = Replica::new();
    let batches = vec![
        vec![register_human("a"), register_human(""), register_human("b")],
        vec![],
        vec![register_human("a").key("x"), register_human("c")],
        vec![
            register_human("d"),
            register_human("d").key("y"),
            register_human("e"),
        ],
    ];
    let mut all_events = Vec::new();
    for (idx, commands) in batches.into_iter().enumerate() {
        let time_unix_ms = T0 + idx as u64;
        let n_commands = commands.len();
        let applied = replica.apply(time_unix_ms, commands);
        assert_eq!(applied.outcomes.len(), n_commands);
        for event in &applied.events {
            assert_eq!(event.time_unix_ms, time_unix_ms);
            assert_eq!(event.log_index, replica.log_index);
            let outcome = &applied.outcomes[event.batch_position as usize];
            // A refused command's event is its CommandRejected record.
            match &event.kind {
                Some(EventKind::CommandRejected(recorded)) => {
                    assert_eq!(reason_of(outcome) as i32, recorded.reason);
                }
                _ => assert_eq!(accepted_of(outcome).seq, event.seq),
            }
        }
        all_events.extend(applied.events);
    }
    let seqs: Vec<u64> = all_events.iter().map(|it| it.seq).collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5, 6, 7, 8]);
    let positions: Vec<(u64, u32)> = all_events
        .iter()
        .map(|it| (it.log_index, it.batch_position))
        .collect();
    assert_eq!(
        positions,
        [
            (1, 0),
            (1, 1),
            (1, 2),
            (3, 0),
            (3, 1),
            (4, 0),
            (4, 1),
            (4, 2)
        ]
    );
    assert_eq!(replica.seq(), 8);
    assert_eq!(query::events(&replica.state, 1, 100).unwrap(), all_events);
}

/// Commands refused before any handler (here, by the envelope) are no audit fact: nobody
/// authenticated.
#[test]
fn a_batch_of_envelope_rejections_writes_nothing() {
    let mut replica = Replica::world();
    let seq_before = replica.seq();
    let applied = replica.apply(
        T1,
        vec![register_human("zed").digest(&[1; 3]), Command::default()],
    );
    assert_eq!(
        reason_of(&applied.outcomes[0]),
        RejectReason::InvalidCommand
    );
    assert!(applied.writes.is_empty());
    assert_eq!(replica.seq(), seq_before);
}

#[test]
fn commands_past_the_batch_limit_are_rejected() {
    let n_commands = limits::COMMANDS_PER_BATCH_MAX + 2;
    let commands: Vec<Command> = (0..n_commands)
        .map(|idx| register_human(&format!("h{idx}")))
        .collect();
    let mut replica = Replica::new();
    let applied = replica.apply(T1, commands);
    assert_eq!(applied.outcomes.len(), n_commands);
    assert_eq!(applied.events.len(), limits::COMMANDS_PER_BATCH_MAX);
    assert_eq!(
        accepted_of(&applied.outcomes[limits::COMMANDS_PER_BATCH_MAX - 1]).seq,
        4096
    );
    assert_eq!(
        applied.outcomes[limits::COMMANDS_PER_BATCH_MAX],
        rejected(
            RejectReason::InvalidCommand,
            "command 4096 is past the batch limit; allowed: at most 4096 commands per batch"
                .to_owned()
        )
    );
    assert_eq!(
        reason_of(&applied.outcomes[n_commands - 1]),
        RejectReason::InvalidCommand
    );
    assert_eq!(query::human(&replica.state, "h4096").unwrap(), None);
}
