//! The envelope: kind, idempotency key, request digest and actor, checked in order; and the
//! caller's credential, which must still be held when the command applies.

use super::*;

// The envelope.

#[test]
fn envelope_rejections() {
    let valid = register_human("zed");
    let id_rule = "1 to 128 printable ASCII characters ('!' to '~', no spaces)";
    let cases: Vec<(Command, String)> = vec![
        (
            Command {
                kind: None,
                ..valid.clone()
            },
            "kind is missing; allowed: one of the command kinds of warrant.log.v1.Command"
                .to_owned(),
        ),
        (
            valid.clone().key(""),
            format!("idempotency_key is empty; allowed: {id_rule}"),
        ),
        (
            valid.clone().key("a b"),
            format!("idempotency_key contains ' ' at byte 1; allowed: {id_rule}"),
        ),
        (
            valid.clone().key(&"k".repeat(129)),
            format!("idempotency_key is 129 bytes long; allowed: {id_rule}"),
        ),
        (
            valid.clone().digest(&[0; 31]),
            "request_digest is 31 bytes long; allowed: exactly 32 bytes (SHA-256)".to_owned(),
        ),
        (
            valid.clone().digest(&[]),
            "request_digest is 0 bytes long; allowed: exactly 32 bytes (SHA-256)".to_owned(),
        ),
        (
            Command {
                actor: None,
                ..valid.clone()
            },
            "actor is missing; allowed: the principal that asked".to_owned(),
        ),
        (
            Command {
                actor: Some(Actor { kind: 0, ..admin() }),
                ..valid.clone()
            },
            "actor.kind is 0; allowed: admin, human, agent, service, node or operator".to_owned(),
        ),
        (
            Command {
                actor: Some(Actor {
                    kind: 99,
                    ..admin()
                }),
                ..valid.clone()
            },
            "actor.kind is 99; allowed: admin, human, agent, service, node or operator".to_owned(),
        ),
        (
            Command {
                actor: Some(Actor {
                    id: String::new(),
                    ..admin()
                }),
                ..valid.clone()
            },
            "actor.id is empty; allowed: 1 to 256 bytes of text without control characters"
                .to_owned(),
        ),
        (
            Command {
                actor: Some(Actor {
                    id: "ro\0ot".to_owned(),
                    ..admin()
                }),
                ..valid.clone()
            },
            "actor.id contains '\\0' at byte 2; allowed: 1 to 256 bytes of text without control \
             characters"
                .to_owned(),
        ),
        (
            Command {
                actor: Some(Actor {
                    on_behalf_of: vec!["h".to_owned(); 17],
                    ..admin()
                }),
                ..valid.clone()
            },
            "actor.on_behalf_of has 17 entries; allowed: at most 16".to_owned(),
        ),
        (
            Command {
                actor: Some(Actor {
                    on_behalf_of: vec!["h".to_owned(), "\n".to_owned()],
                    ..admin()
                }),
                ..valid.clone()
            },
            "actor.on_behalf_of[1] contains '\\n' at byte 0; allowed: 1 to 256 bytes of text \
             without control characters"
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
fn envelope_checks_run_in_order() {
    // Everything is wrong at once; the kind is reported first, then the key, the digest, the
    // actor.
    let broken = Command {
        idempotency_key: String::new(),
        request_digest: Vec::new(),
        actor: None,
        kind: None,
        ..Default::default()
    };
    let with_kind = Command {
        kind: register_human("zed").kind,
        ..broken.clone()
    };
    let with_key = with_kind.clone().key("k");
    let with_digest = with_key.clone().digest(&[0; 32]);
    let cases = [
        (broken, "kind is missing"),
        (with_kind, "idempotency_key is empty"),
        (with_key, "request_digest is 0 bytes long"),
        (with_digest, "actor is missing"),
    ];
    for (command, prefix) in cases {
        let applied = apply_batch(
            &InMemoryState::new(),
            &Batch {
                time_unix_ms: T1,
                commands: vec![command],
            },
            1,
        )
        .unwrap();
        let Some(OutcomeResult::Rejected(rejected)) = &applied.outcomes[0].result else {
            panic!("expected a rejection: {:?}", applied.outcomes);
        };
        assert!(
            rejected.message.starts_with(prefix),
            "{} should start with {prefix}",
            rejected.message
        );
    }
}

/// A command carries the credential its caller was authenticated with; apply refuses it once
/// that credential is gone, so a node that has not applied a logout or a credential removal yet
/// cannot let the old credential act.
#[test]
fn a_command_is_refused_once_its_credential_is_gone() {
    use log::caller_credential::Kind;
    let with = |command: Command, kind: Kind| Command {
        credential: Some(log::CallerCredential { kind: Some(kind) }),
        ..command
    };
    let mut replica = Replica::world();
    check_accepted(
        &mut replica,
        human_session("hs1", "alice", "hj1").by(human_actor("alice")),
    );
    let grant_as_alice = || {
        with(
            update_human_command().by(human_actor("alice")),
            Kind::SessionId("hs1".to_owned()),
        )
    };
    check_accepted(&mut replica, grant_as_alice());
    check_accepted(&mut replica, end_session("hs1").by(human_actor("alice")));
    check_refused(
        replica.clone(),
        with(
            log::UpdateHuman {
                human_id: "alice".to_owned(),
                display_name: "Alice again".to_owned(),
                email: String::new(),
            }
            .by(human_actor("alice")),
            Kind::SessionId("hs1".to_owned()),
        ),
        RejectReason::CredentialRevoked,
        "the session that authenticated this command is no longer in force: session hs1 ended \
         at seq 7",
    );

    // An agent's credential: accepted while held, refused once removed.
    let issue_with_secret = |jti: &str| {
        with(
            issue(jti, "bot", &["send"]).by(agent_actor("bot")),
            Kind::CredentialId("c1".to_owned()),
        )
    };
    check_accepted(&mut replica, issue_with_secret("j1"));
    check_accepted(
        &mut replica,
        log::ChangeCredentials {
            agent_id: "bot".to_owned(),
            add: vec![],
            remove: vec!["c1".to_owned()],
        }
        .by(admin()),
    );
    check_refused(
        replica.clone(),
        issue_with_secret("j2"),
        RejectReason::CredentialRevoked,
        "credential c1 of agent bot was removed; allowed: a credential the agent holds",
    );
    // A credential that does not fit the actor is malformed.
    check_refused(
        replica,
        with(
            issue("j3", "bot", &["send"]).by(agent_actor("bot")),
            Kind::SessionId("hs1".to_owned()),
        ),
        RejectReason::InvalidCommand,
        "credential does not fit the actor; allowed: a session id for a human actor, a \
         credential id for an agent actor",
    );
}

fn update_human_command() -> log::UpdateHuman {
    log::UpdateHuman {
        human_id: "alice".to_owned(),
        display_name: "Alice L.".to_owned(),
        email: String::new(),
    }
}
