//! The history apply records (versions at each command's last seq, the time index) and what it
//! answers: every query as of a seq, and effective access at each step of an agent's life.
//!
//! These replicas record the history without the tree, so they test the history alone.

use super::*;
use crate::{
    audit::history::{self, AsOf},
    effective::{self, EffectiveAccess},
};

/// The world of [`Replica::world`], recording the history and not the tree.
fn history_world() -> Replica {
    let mut replica = Replica::new().recording(AuditRecords::HISTORY);
    replica.set_up([
        register_human("alice"),
        agent("bot", "alice").by(admin()),
        service("mail", MAIL, &["send", "read"]).by(admin()),
        signing_key("k1", 1).by(node(1)),
    ]);
    replica
}

fn version_keys(writes: &WriteSet) -> Vec<Vec<u8>> {
    writes
        .ops
        .keys()
        .filter(|key| key.starts_with(keys::VERSION_PREFIX))
        .cloned()
        .collect()
}

#[test]
fn versions_are_written_at_each_commands_last_seq() {
    let mut replica = history_world();
    let seq = replica.seq();
    // RegisterHumans adds two events, at seq + 1 and seq + 2: its rows are versioned at the
    // second. The refused registration after it writes no projection row, so no version.
    let applied = replica.apply(
        T1,
        vec![
            humans(&["h1", "h2"]).by(admin()),
            register_human("h1"),
            register_human("h3"),
        ],
    );
    assert_eq!(applied.events.len(), 4, "{:?}", applied.outcomes);
    let h1 = replica.state.get(&keys::human("h1")).unwrap().unwrap();
    let mut expected = vec![
        keys::version(&keys::human("h1"), seq + 2),
        keys::version(&keys::human("h2"), seq + 2),
        keys::version(&keys::human("h3"), seq + 4),
    ];
    expected.sort();
    assert_eq!(version_keys(&applied.writes), expected);
    assert_eq!(
        applied.writes.ops[&expected[0]],
        Some([&[1u8][..], &h1].concat())
    );
    assert_eq!(
        applied.writes.ops[&keys::version_time(T1)],
        Some((seq + 4).to_be_bytes().to_vec())
    );
    // A batch that adds no event adds no time index entry.
    let applied = replica.apply(T1 + 1, vec![register_human("h1")]);
    assert!(applied.writes.is_empty(), "{:?}", applied.writes);

    // Today's apply writes neither versions nor the time index, and otherwise the same rows.
    let mut plain = history_world().recording(AuditRecords::NONE);
    let mut audited = history_world();
    let commands = vec![humans(&["h1", "h2"]).by(admin())];
    let plain_writes = plain.apply(T1, commands.clone()).writes;
    let mut audited_writes = audited.apply(T1, commands).writes;
    audited_writes
        .ops
        .retain(|key, _| !key.starts_with(keys::VERSION_PREFIX) && !key.starts_with(b"vt\0"));
    assert_eq!(plain_writes, audited_writes);
}

#[test]
fn a_deleted_row_reads_as_absent_from_its_deletion_on() {
    let mut replica = history_world();
    let published = replica.seq();
    let retire = retire("k1").by(node(1));
    check_accepted(&mut replica, retire);
    let retired = replica.seq();
    let in_force = keys::signing_key_in_force("k1");
    assert_eq!(
        replica
            .state
            .get(&keys::version(&in_force, retired))
            .unwrap(),
        Some(vec![0])
    );
    let at = |seq| query::unretired_signing_keys(&AsOf::new(&replica.state, seq), 10).unwrap();
    assert_eq!(at(published).len(), 1);
    assert_eq!(at(retired), []);
    assert_eq!(at(0), []);
}

#[test]
fn reads_as_of_a_seq_see_that_seq_only() {
    let mut replica = history_world();
    let before = replica.seq();
    replica.set_up([agent("bot2", "alice").by(admin())]);
    let after = replica.seq();
    let state = &replica.state;
    let ids = |seq| -> Vec<String> {
        query::list_agents(&AsOf::new(state, seq), Some("alice"), "", 10)
            .unwrap()
            .into_iter()
            .map(|it| it.agent_id)
            .collect()
    };
    assert_eq!(ids(before), ["bot"]);
    assert_eq!(ids(after), ["bot", "bot2"]);
    assert_eq!(ids(u64::MAX), ["bot", "bot2"]);
    assert_eq!(ids(0), Vec::<String>::new());
    let as_of = AsOf::new(state, before);
    assert_eq!(query::applied_seq(&as_of).unwrap(), before);
    assert_eq!(
        query::applied_seq(&AsOf::new(state, u64::MAX)).unwrap(),
        after
    );
    let events = query::events(&as_of, 0, 100).unwrap();
    assert_eq!(events.last().map(|it| it.seq), Some(before));
    assert_eq!(query::agent(&as_of, "bot2").unwrap(), None);
    assert!(
        query::agent(&AsOf::new(state, after), "bot2")
            .unwrap()
            .is_some()
    );
}

/// One step of the agent's life: the point after it and what effective access said then.
struct Step {
    seq: u64,
    time_unix_ms: u64,
    answer: EffectiveAccess,
}

/// Applies `command` at `time_unix_ms` and records the answer right after it.
fn step(replica: &mut Replica, time_unix_ms: u64, command: Command) -> Step {
    let applied = replica.apply(time_unix_ms, vec![command]);
    assert_eq!(applied.events.len(), 1, "{:?}", applied.outcomes);
    assert!(
        !matches!(applied.events[0].kind, Some(EventKind::CommandRejected(_))),
        "{:?}",
        applied.outcomes
    );
    let answer = effective::effective_access(
        &replica.state,
        "helper",
        Some("alice"),
        time_unix_ms / 1000,
        10,
    )
    .unwrap()
    .expect("helper is registered");
    Step {
        seq: replica.seq(),
        time_unix_ms,
        answer,
    }
}

#[test]
fn effective_access_as_of_each_step_of_an_agents_life() {
    let mut replica = history_world();
    replica.set_up([
        device("laptop", "alice").by(human_actor("alice")),
        human_session("hs1", "alice", "t-alice").by(human_actor("alice")),
    ]);
    let before = replica.seq();
    let at = |n: u64| T0 + n * 60_000;
    let grant = log::CreateDelegation {
        delegation_id: "dh".to_owned(),
        grantee_agent_id: "helper".to_owned(),
        scopes: strings(&["send"]),
        audiences: strings(&[MAIL]),
        task: "send the report".to_owned(),
        expires_at_unix_s: T0_S + 86_400,
        max_depth: 1,
        ..d1()
    };
    let rotation = log::ChangeCredentials {
        agent_id: "helper".to_owned(),
        add: vec![ed25519("c2", 32)],
        remove: strings(&["c1"]),
    };
    let steps = [
        step(&mut replica, at(1), agent("helper", "alice").by(admin())),
        step(&mut replica, at(2), grant.by(human_actor("alice"))),
        step(
            &mut replica,
            at(3),
            agent_session("as1", "helper").by(agent_actor("helper")),
        ),
        step(&mut replica, at(4), rotation.by(admin())),
        step(
            &mut replica,
            at(5),
            revoke_delegation("dh").by(human_actor("alice")),
        ),
        step(
            &mut replica,
            at(6),
            set_status(log::EntityKind::Agent, "helper", true).by(admin()),
        ),
    ];
    // What each step changed, as it was answered then.
    let [registered, delegated, session, rotated, revoked, disabled] = &steps;
    assert_eq!(registered.answer.delegations, []);
    assert_eq!(delegated.answer.delegations.len(), 1);
    assert_eq!(delegated.answer.delegations[0].lapse, None);
    assert_eq!(delegated.answer.delegations[0].chain.len(), 1);
    assert_eq!(session.answer.agent_sessions.len(), 1);
    assert_eq!(session.answer.owner_sessions.len(), 1);
    assert_eq!(session.answer.owner_devices.len(), 1);
    let credential_ids = |step: &Step| -> Vec<String> {
        let credentials = &step.answer.agent.credentials;
        credentials
            .iter()
            .map(|it| it.credential_id.clone())
            .collect()
    };
    assert_eq!(credential_ids(session), ["c1"]);
    assert_eq!(credential_ids(rotated), ["c2"]);
    let revocation = revoked.answer.delegations[0]
        .lapse
        .as_ref()
        .map(|it| it.kind);
    assert_eq!(revocation, Some(LapseKind::DelegationRevoked));
    assert_eq!(revoked.answer.agent_lapse, None);
    let disabling = disabled.answer.agent_lapse.as_ref().map(|it| it.kind);
    assert_eq!(disabling, Some(LapseKind::AgentDisabled));
    assert!(steps.iter().all(|it| !it.answer.truncated));

    // As of each step, from the final state, by seq and by time.
    let state = &replica.state;
    for step in &steps {
        let as_of = AsOf::new(state, step.seq);
        let now_s = step.time_unix_ms / 1000;
        let answer = effective::effective_access(&as_of, "helper", Some("alice"), now_s, 10);
        assert_eq!(
            answer.unwrap().as_ref(),
            Some(&step.answer),
            "at {}",
            step.seq
        );
        // Between this step and the next one, the time maps to this step's seq.
        for time in [step.time_unix_ms, step.time_unix_ms + 30_000] {
            assert_eq!(history::seq_at_time(state, time).unwrap(), step.seq);
        }
    }
    let as_of = AsOf::new(state, before);
    assert_eq!(
        effective::effective_access(&as_of, "helper", None, NOW_S, 10).unwrap(),
        None
    );
    assert_eq!(history::seq_at_time(state, T0 - 1).unwrap(), 0);
    // Delegations from another human are not the answer for alice.
    let as_of = AsOf::new(state, delegated.seq);
    let for_hana = effective::effective_access(&as_of, "helper", Some("hana"), NOW_S, 10);
    assert_eq!(for_hana.unwrap().unwrap().delegations, []);
}

#[test]
fn sessions_and_devices_are_indexed_by_principal_and_owner() {
    let mut replica = history_world();
    replica.set_up([
        register_human("bot"),
        device("laptop", "alice").by(human_actor("alice")),
        device("phone", "alice").by(human_actor("alice")),
        device("desk", "bot").by(human_actor("bot")),
        agent_session("s2", "bot").by(agent_actor("bot")),
        agent_session("s1", "bot").by(agent_actor("bot")),
        human_session("s3", "bot", "t-bot").by(human_actor("bot")),
    ]);
    let state = &replica.state;
    let session_ids = |kind: PrincipalKind, id: &str, limit: usize| -> Vec<String> {
        query::sessions_of(state, kind as i32, id, limit)
            .unwrap()
            .into_iter()
            .map(|it| it.started.unwrap().session_id)
            .collect()
    };
    // The human bot and the agent bot share an id, not their sessions.
    assert_eq!(session_ids(PrincipalKind::Agent, "bot", 10), ["s1", "s2"]);
    assert_eq!(session_ids(PrincipalKind::Agent, "bot", 1), ["s1"]);
    assert_eq!(session_ids(PrincipalKind::Human, "bot", 10), ["s3"]);
    assert_eq!(
        session_ids(PrincipalKind::Human, "alice", 10),
        Vec::<String>::new()
    );
    let device_ids = |owner: &str| -> Vec<String> {
        query::devices_of(state, owner, 10)
            .unwrap()
            .into_iter()
            .map(|it| it.device_id)
            .collect()
    };
    assert_eq!(device_ids("alice"), ["laptop", "phone"]);
    assert_eq!(device_ids("bot"), ["desk"]);
    // Effective access cuts its lists at the limit, and says so.
    let answer = effective::effective_access(state, "bot", None, NOW_S, 1)
        .unwrap()
        .unwrap();
    assert_eq!(answer.agent_sessions.len(), 1);
    assert_eq!(answer.owner_devices.len(), 1);
    assert!(answer.truncated);
}

#[test]
fn a_delegation_comes_with_its_chain_root_first() {
    let mut replica = history_world();
    replica.set_up([
        register_human("hana"),
        agent("sub", "alice").by(admin()),
        d1().by(human_actor("hana")),
        d2().by(agent_actor("bot")),
    ]);
    let state = &replica.state;
    let answer = effective::effective_access(state, "sub", Some("hana"), T0_S, 10)
        .unwrap()
        .unwrap();
    let [held] = answer.delegations.as_slice() else {
        panic!("{:?}", answer.delegations);
    };
    let ids: Vec<&str> = held
        .chain
        .iter()
        .map(|it| it.created.as_ref().unwrap().delegation_id.as_str())
        .collect();
    assert_eq!(ids, ["d1", "d2"]);
    assert_eq!(held.delegation(), held.chain.last());
    assert_eq!(held.lapse, None);
    // Past d2's expiry, with the lapse's own message.
    let later = effective::effective_access(state, "sub", None, D2_EXPIRES, 10)
        .unwrap()
        .unwrap();
    assert_eq!(
        later.delegations[0].lapse,
        Some(Lapse {
            kind: LapseKind::DelegationExpired,
            message: format!("delegation d2 expired at {D2_EXPIRES}"),
        })
    );
    // The root human asked about is alice: hana's chain is not hers.
    let for_alice = effective::effective_access(state, "sub", Some("alice"), T0_S, 10);
    assert_eq!(for_alice.unwrap().unwrap().delegations, []);
    assert_eq!(
        effective::effective_access(state, "nobody", None, T0_S, 10).unwrap(),
        None
    );
}
