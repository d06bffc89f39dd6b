//! Client assertions: each authenticates one command, and is forgotten after its retention.

use super::*;

// Client assertions.

#[test]
fn an_assertion_authenticates_one_command() {
    let mut replica = Replica::world();
    replica.set_up([agent("bot2", "alice").by(admin())]);
    let bot = || agent_actor("bot");
    check_accepted(
        &mut replica,
        issue("j1", "bot", &["send"])
            .by(bot())
            .spending("bot", "a-1", NOW_S + 60),
    );
    assert!(query::assertion_spent(&replica.state, "bot", "a-1").expect("the store reads"));
    check_refused(
        replica.clone(),
        issue("j2", "bot", &["send"])
            .by(bot())
            .spending("bot", "a-1", NOW_S + 60),
        RejectReason::AssertionReplayed,
        "client assertion a-1 of agent bot was already used; allowed: a new one (new jti) per \
         request",
    );
    // A new jti is a new assertion, and so is the same jti of another agent.
    check_accepted(
        &mut replica,
        issue("j2", "bot", &["send"])
            .by(bot())
            .spending("bot", "a-2", NOW_S + 60),
    );
    check_accepted(
        &mut replica,
        issue("j3", "bot2", &["send"])
            .by(agent_actor("bot2"))
            .spending("bot2", "a-1", NOW_S + 60),
    );
}

#[test]
fn spent_assertions_are_forgotten_after_their_retention_and_refused_from_then_on() {
    let mut replica = Replica::world();
    let bot = || agent_actor("bot");
    check_accepted(
        &mut replica,
        issue("j1", "bot", &["send"])
            .by(bot())
            .spending("bot", "a-1", NOW_S + 60),
    );
    let expires = NOW_S + 60;
    let by_expiry = keys::assertion_by_expiry(expires, "bot", "a-1");
    assert!(replica.state.get(&by_expiry).expect("reads").is_some());

    // Up to the end of the retention the assertion is remembered, whatever the batch holds.
    let last_remembered_ms = (expires + limits::ASSERTION_RETENTION_S) * 1000;
    let applied = replica.apply(last_remembered_ms, vec![]);
    assert!(applied.writes.is_empty(), "{:?}", applied.writes);
    // One second later it is forgotten: both rows go, and no event is written.
    let applied = replica.apply(last_remembered_ms + 1000, vec![]);
    assert!(applied.events.is_empty());
    assert_eq!(
        applied.writes.ops.keys().cloned().collect::<Vec<_>>(),
        vec![keys::assertion("bot", "a-1"), by_expiry.clone()]
    );
    assert!(applied.writes.ops.values().all(Option::is_none));
    replica.state.apply_writes(&applied.writes);
    assert!(!query::assertion_spent(&replica.state, "bot", "a-1").expect("reads"));

    // And from then on apply itself refuses it: the replay it can no longer see is refused as
    // too old, with no event.
    let stale = issue("j2", "bot", &["send"])
        .by(bot())
        .spending("bot", "a-1", NOW_S + 60);
    let seq_before = replica.seq();
    let applied = replica.apply(last_remembered_ms + 2000, vec![stale]);
    let Some(OutcomeResult::Rejected(rejected)) = &applied.outcomes[0].result else {
        panic!("a stale assertion was accepted: {:?}", applied.outcomes);
    };
    assert_eq!(rejected.reason, RejectReason::AssertionExpired as i32);
    assert!(applied.events.is_empty());
    assert_eq!(replica.seq(), seq_before);
}

#[test]
fn pruning_is_bounded_per_batch_and_oldest_first() {
    let mut replica = Replica::world();
    let count = limits::ASSERTIONS_PRUNED_PER_BATCH_MAX + 6;
    // Spend `count` assertions directly, as accepted no-ops would, with distinct expiries.
    let mut writes = WriteSet::new();
    for idx in 0..count as u64 {
        let jti = format!("a-{idx:03}");
        writes.put(
            keys::assertion("bot", &jti),
            (NOW_S + idx).to_be_bytes().to_vec(),
        );
        writes.put(
            keys::assertion_by_expiry(NOW_S + idx, "bot", &jti),
            Vec::new(),
        );
    }
    replica.state.apply_writes(&writes);
    let far_future_ms = (NOW_S + 10 * limits::ASSERTION_RETENTION_S) * 1000;
    let applied = replica.apply(far_future_ms, vec![]);
    let forgotten: Vec<Vec<u8>> = applied
        .writes
        .ops
        .keys()
        .filter(|key| key.starts_with(keys::ASSERTION_PREFIX))
        .cloned()
        .collect();
    assert_eq!(forgotten.len(), limits::ASSERTIONS_PRUNED_PER_BATCH_MAX);
    assert_eq!(forgotten.first(), Some(&keys::assertion("bot", "a-000")));
    replica.state.apply_writes(&applied.writes);
    let applied = replica.apply(far_future_ms, vec![]);
    assert_eq!(applied.writes.len(), 2 * 6, "the rest go in the next batch");
}

#[test]
fn an_assertion_replayed_within_a_batch_is_refused() {
    let mut replica = Replica::world();
    let bot = || agent_actor("bot");
    let applied = replica.apply(
        T1,
        vec![
            issue("j1", "bot", &["send"])
                .by(bot())
                .spending("bot", "a-1", NOW_S + 60),
            issue("j2", "bot", &["send"])
                .by(bot())
                .spending("bot", "a-1", NOW_S + 60),
        ],
    );
    accepted_of(&applied.outcomes[0]);
    assert_eq!(
        applied.outcomes[1],
        rejected(
            RejectReason::AssertionReplayed,
            "client assertion a-1 of agent bot was already used; allowed: a new one (new jti) \
             per request"
                .to_owned()
        )
    );
    let positions: Vec<u32> = applied.events.iter().map(|it| it.batch_position).collect();
    assert_eq!(positions, [0]);
    assert_eq!(
        query::token(&replica.state, "j2").expect("the store reads"),
        None
    );
}

/// The caller authenticated with the assertion before its handler refused the command: the
/// refusal is on the record, so the assertion is spent like an accepted command's.
#[test]
fn a_command_its_handler_refuses_spends_its_assertion() {
    let mut replica = Replica::world();
    let bot = || agent_actor("bot");
    let refused = issue("j1", "bot", &["delete"])
        .by(bot())
        .spending("bot", "a-1", NOW_S + 60);
    check_rejected(
        replica.clone(),
        refused.clone(),
        RejectReason::ScopeNotAllowed,
        "scope delete is not a tool of service mail; allowed: read, send",
    );
    replica.apply(T1, vec![refused]);
    assert!(query::assertion_spent(&replica.state, "bot", "a-1").expect("the store reads"));
    check_refused(
        replica,
        issue("j1", "bot", &["send"])
            .by(bot())
            .spending("bot", "a-1", NOW_S + 60),
        RejectReason::AssertionReplayed,
        "client assertion a-1 of agent bot was already used; allowed: a new one (new jti) per \
         request",
    );
}

#[test]
fn an_assertion_must_name_the_acting_agent() {
    let rule = "allowed: the agent or human that is the actor";
    let cases = [
        (
            issue("j1", "bot", &["send"])
                .by(agent_actor("bot"))
                .spending("bot2", "a-1", NOW_S + 60),
            format!("assertion.principal_id is bot2 but the actor is bot; {rule}"),
        ),
        (
            register_human("zed").spending("bot", "a-1", NOW_S + 60),
            format!("assertion.principal_id is bot but the actor is root; {rule}"),
        ),
        // An id equal to the assertion's is not enough: the actor must be an agent or a human.
        (
            revoke("j1")
                .by(Actor {
                    kind: PrincipalKind::Service as i32,
                    id: "bot".to_owned(),
                    on_behalf_of: vec![],
                })
                .spending("bot", "a-1", NOW_S + 60),
            format!("assertion.principal_id is bot but the actor is bot; {rule}"),
        ),
        (
            issue("j1", "bot", &["send"])
                .by(agent_actor("bot"))
                .spending("bot", "", NOW_S + 60),
            "assertion.jti is empty; allowed: 1 to 128 printable ASCII characters ('!' to '~', \
             no spaces)"
                .to_owned(),
        ),
    ];
    for (command, message) in cases {
        check_refused(
            Replica::world(),
            command,
            RejectReason::InvalidCommand,
            &message,
        );
    }
}

#[test]
fn a_retry_with_its_assertion_replays_the_first_outcome() {
    let mut replica = Replica::world();
    let command = issue("j1", "bot", &["send"])
        .by(agent_actor("bot"))
        .spending("bot", "a-1", NOW_S + 60);
    let (first, _) = check_accepted(&mut replica, command.clone());
    for batch in [vec![command.clone()], vec![command.clone(), command]] {
        let digest_before = replica.digest();
        let applied = replica.apply(T1 + 1_000, batch);
        for outcome in &applied.outcomes {
            assert_eq!(
                accepted_of(outcome),
                Accepted {
                    replayed: true,
                    ..first.clone()
                }
            );
        }
        assert_eq!(applied.events, []);
        assert!(applied.writes.is_empty());
        assert_eq!(replica.digest(), digest_before);
    }
}

#[test]
fn a_retry_of_an_accepted_no_op_with_its_assertion_is_not_refused() {
    let mut replica = Replica::world();
    replica.set_up([
        issue("j1", "bot", &["send"]).by(agent_actor("bot")),
        revoke("j1").by(admin()),
    ]);
    // Revoking a revoked token is accepted without a change...
    let command = revoke("j1")
        .by(agent_actor("bot"))
        .spending("bot", "a-1", NOW_S + 60);
    let applied = replica.apply(T1, vec![command.clone()]);
    let first = accepted_of(&applied.outcomes[0]);
    assert!(!first.changed);
    // ...and so must its retry be, rather than refused as a replayed assertion.
    let applied = replica.apply(T1 + 1_000, vec![command]);
    let retried = accepted_of(&applied.outcomes[0]);
    assert_eq!((retried.seq, retried.changed), (first.seq, false));
}
