//! Changing an agent's credentials.

use super::*;

// ChangeCredentials.

#[test]
fn change_credentials_adds_a_key_without_its_bytes_in_the_event() {
    let mut replica = Replica::world();
    let command = log::ChangeCredentials {
        agent_id: "bot".to_owned(),
        add: vec![ed25519("c2", 32)],
        remove: Vec::new(),
    };
    let (_, event) = check_accepted(&mut replica, command.by(admin()));
    assert_eq!(
        event.kind,
        Some(EventKind::CredentialsChanged(log::CredentialsChanged {
            agent_id: "bot".to_owned(),
            added_ids: strings(&["c2"]),
            removed_ids: Vec::new(),
        }))
    );
    let event_bytes = event.encode_to_vec();
    assert!(
        !event_bytes.windows(32).any(|it| it == [0xee; 32]),
        "key leaked into the event"
    );
    let row = query::agent(&replica.state, "bot")
        .expect("the store reads")
        .expect("bot exists");
    assert_eq!(row.credentials, [credential("c1"), ed25519("c2", 32)]);
}

#[test]
fn an_agent_or_its_owner_rotates_its_credentials() {
    for actor in [agent_actor("bot"), human_actor("alice")] {
        let mut replica = Replica::world();
        // Add and remove in one step: never a moment with neither or both.
        let rotation = log::ChangeCredentials {
            agent_id: "bot".to_owned(),
            add: vec![ed25519("c2", 32)],
            remove: strings(&["c1"]),
        };
        let (_, event) = check_accepted(&mut replica, rotation.by(actor));
        assert_eq!(
            event.kind,
            Some(EventKind::CredentialsChanged(log::CredentialsChanged {
                agent_id: "bot".to_owned(),
                added_ids: strings(&["c2"]),
                removed_ids: strings(&["c1"]),
            }))
        );
        let row = query::agent(&replica.state, "bot")
            .expect("the store reads")
            .expect("bot exists");
        assert_eq!(row.credentials, [ed25519("c2", 32)]);
    }
}

#[test]
fn change_credentials_rejections() {
    use RejectReason::*;
    let change = |add: Vec<Credential>, remove: &[&str]| log::ChangeCredentials {
        agent_id: "bot".to_owned(),
        add,
        remove: strings(remove),
    };
    let bot = || agent_actor("bot");
    let many = |from: usize, to: usize| -> Vec<Credential> {
        (from..to)
            .map(|idx| ed25519(&format!("c{idx}"), 32))
            .collect()
    };
    let denied = "only an admin, human alice or agent bot itself may change its credentials";
    let cases: Vec<(Command, RejectReason, String)> = vec![
        (change(vec![], &["c9"]).by(bot()), CredentialNotFound, "agent bot has no credential c9".to_owned()),
        (change(vec![], &["c1", "c1"]).by(bot()), CredentialNotFound, "agent bot has no credential c1".to_owned()),
        (change(vec![ed25519("c1", 32)], &[]).by(bot()), AlreadyExists, "agent bot already has credential c1".to_owned()),
        (change(vec![ed25519("c2", 32), credential("c2")], &[]).by(bot()), AlreadyExists, "agent bot already has credential c2".to_owned()),
        (change(vec![ed25519("c2", 31)], &[]).by(bot()), InvalidCommand, "add[0].ed25519_public_key is 31 bytes long; allowed: exactly 32 bytes (an Ed25519 public key)".to_owned()),
        (change(vec![ed25519("c2", 33)], &[]).by(bot()), InvalidCommand, "add[0].ed25519_public_key is 33 bytes long; allowed: exactly 32 bytes (an Ed25519 public key)".to_owned()),
        // bot holds c1: eight more would make nine.
        (change(many(2, 10), &[]).by(bot()), InvalidCommand, "add would leave 9 credentials; allowed: at most 8 per agent".to_owned()),
        (change(many(2, 11), &[]).by(bot()), InvalidCommand, "add has 9 entries; allowed: at most 8".to_owned()),
        (change(vec![], &[]).by(bot()), InvalidCommand, "add and remove are both empty; allowed: at least one credential to add or remove".to_owned()),
        (change(vec![], &["c 1"]).by(bot()), InvalidCommand, "remove[0] contains ' ' at byte 1; allowed: 1 to 64 ASCII letters, digits, '.', '_' or '-', starting with a letter or digit".to_owned()),
        (change(vec![ed25519("c2", 32)], &["c1"]).by(agent_actor("bot2")), PermissionDenied, denied.to_owned()),
        (change(vec![ed25519("c2", 32)], &["c1"]).by(human_actor("hana")), PermissionDenied, denied.to_owned()),
        (log::ChangeCredentials { agent_id: "ghost".to_owned(), ..change(vec![], &["c1"]) }.by(admin()), AgentNotFound, "agent ghost does not exist".to_owned()),
    ];
    for (command, reason, message) in cases {
        check_rejected(Replica::world(), command, reason, &message);
    }
    // Up to the cap is fine.
    let mut replica = Replica::world();
    check_accepted(&mut replica, change(many(2, 9), &[]).by(bot()));
}

/// The edge authenticates an agent against its node's applied state, which may lag behind a
/// disable. Apply decides against committed state: a disabled agent (or one whose owner is
/// disabled) cannot change its own credentials, while an admin or the owner still may.
#[test]
fn a_disabled_agent_cannot_change_its_own_credentials() {
    use RejectReason::*;
    let rotation = || log::ChangeCredentials {
        agent_id: "bot".to_owned(),
        add: vec![ed25519("c2", 32)],
        remove: strings(&["c1"]),
    };
    let disable = |entity, id: &str| set_status(entity, id, true).by(admin());
    let cases = [
        (
            disable(log::EntityKind::Agent, "bot"),
            "agent bot is disabled",
        ),
        (
            disable(log::EntityKind::Human, "alice"),
            "agent bot's owner: human alice is disabled",
        ),
    ];
    for (disabled, message) in cases {
        let mut replica = Replica::world();
        replica.set_up([disabled]);
        check_rejected(
            replica,
            rotation().by(agent_actor("bot")),
            AgentDisabled,
            message,
        );
    }
    // The same rotation by the admin, or by the owner of a disabled agent, is accepted.
    for actor in [admin(), human_actor("alice")] {
        let mut replica = Replica::world();
        replica.set_up([disable(log::EntityKind::Agent, "bot")]);
        check_accepted(&mut replica, rotation().by(actor));
    }
}
