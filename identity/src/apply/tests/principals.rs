//! Registering and updating humans, agents and services.

use super::*;

// RegisterHuman.

#[test]
fn register_human_accepts() {
    let mut replica = Replica::new();
    let (accepted, event) = check_accepted(&mut replica, register_human("alice"));
    assert_eq!(
        accepted,
        Accepted {
            seq: 1,
            replayed: false,
            token_issued: None,
            changed: true,
            ..Default::default()
        }
    );
    assert_eq!(
        event.kind,
        Some(EventKind::HumanRegistered(log::HumanRegistered {
            human_id: "alice".to_owned(),
            display_name: "alice Example".to_owned(),
            email: "alice@example.com".to_owned(),
            ..Default::default()
        }))
    );
    let row = query::human(&replica.state, "alice").unwrap().unwrap();
    assert_eq!(
        row,
        HumanRow {
            human_id: "alice".to_owned(),
            display_name: "alice Example".to_owned(),
            email: "alice@example.com".to_owned(),
            status: Status::Active as i32,
            created_seq: 1,
            created_unix_ms: T1,
            ..Default::default()
        }
    );
}

#[test]
fn register_human_allows_empty_optional_text() {
    let command = log::RegisterHuman {
        display_name: String::new(),
        email: String::new(),
        ..human("zed")
    };
    check_accepted(&mut Replica::new(), command.by(admin()));
}

#[test]
fn register_human_rejections() {
    use RejectReason::*;
    let id_rule = "1 to 64 ASCII letters, digits, '.', '_' or '-', starting with a letter or digit";
    let cases: Vec<(Command, RejectReason, String)> = vec![
        (register_human(""), InvalidCommand, format!("human_id is empty; allowed: {id_rule}")),
        (register_human("a\0b"), InvalidCommand, format!("human_id contains '\\0' at byte 1; allowed: {id_rule}")),
        (register_human(&"h".repeat(65)), InvalidCommand, format!("human_id is 65 bytes long; allowed: {id_rule}")),
        (
            log::RegisterHuman { display_name: "Zed\u{1b}[31m".to_owned(), ..human("zed") }.by(admin()),
            InvalidCommand,
            "display_name contains '\\u{1b}' at byte 3; allowed: up to 256 bytes of text without control characters".to_owned(),
        ),
        (
            log::RegisterHuman { display_name: "z".repeat(257), ..human("zed") }.by(admin()),
            InvalidCommand,
            "display_name is 257 bytes long; allowed: up to 256 bytes of text without control characters".to_owned(),
        ),
        (
            log::RegisterHuman { email: format!("{}@x", "z".repeat(253)), ..human("zed") }.by(admin()),
            InvalidCommand,
            "email is 255 bytes long; allowed: up to 254 bytes of text without control characters".to_owned(),
        ),
        (
            log::RegisterHuman { email: "zed@x\r\n".to_owned(), ..human("zed") }.by(admin()),
            InvalidCommand,
            "email contains '\\r' at byte 5; allowed: up to 254 bytes of text without control characters".to_owned(),
        ),
        (
            // A different request for an existing id: not a retry, so not a replay.
            log::RegisterHuman { display_name: "Alice Again".to_owned(), ..human("alice") }.by(admin()),
            AlreadyExists,
            "human alice already exists".to_owned(),
        ),
    ];
    for (command, reason, message) in cases {
        check_rejected(Replica::world(), command, reason, &message);
    }
}

// RegisterHumans.

const UPSTREAM: &str = "https://hr.example";

/// Subject `subject` of [`UPSTREAM`].
fn upstream(subject: &str) -> log::FederatedIdentity {
    log::FederatedIdentity {
        issuer: UPSTREAM.to_owned(),
        subject: subject.to_owned(),
    }
}

/// Three humans with every field a human can carry: plain, federated, with a password.
fn three_humans() -> Vec<log::RegisterHuman> {
    vec![
        human("ann"),
        log::RegisterHuman {
            federated: Some(upstream("ben-1")),
            ..human("ben")
        },
        log::RegisterHuman {
            password_argon2id: PHC.to_owned(),
            ..human("cat")
        },
    ]
}

/// Every row but events and idempotency rows: the projection reads are answered from.
fn projection(replica: &Replica) -> Vec<(Vec<u8>, Vec<u8>)> {
    let rows = replica.state.scan(b"", b"", usize::MAX).unwrap();
    rows.into_iter()
        .filter(|(key, _)| crate::audit::history::is_versioned(key))
        .collect()
}

#[test]
fn an_import_writes_what_single_registrations_write() {
    let bodies = three_humans();
    let mut singly = Replica::world();
    let mut at_once = singly.clone();
    let seq_before = singly.seq();
    let one_by_one = singly.apply(T1, bodies.iter().map(|it| it.clone().by(admin())).collect());
    let import = log::RegisterHumans { humans: bodies }.by(admin());
    let imported = at_once.apply(T1, vec![import.clone()]);

    assert_eq!(
        imported.outcomes,
        [accepted(Accepted {
            seq: seq_before + 3,
            changed: true,
            ..Default::default()
        })]
    );
    assert_eq!(at_once.seq(), seq_before + 3);
    assert_eq!(one_by_one.events.len(), 3, "{:?}", one_by_one.outcomes);
    assert_eq!(imported.events.len(), 3);
    for (idx, (single, event)) in one_by_one.events.iter().zip(&imported.events).enumerate() {
        // One command: one idempotency key and one batch position for all its events.
        assert_eq!(event.idempotency_key, import.idempotency_key, "event {idx}");
        assert_eq!(event.batch_position, 0, "event {idx}");
        // Otherwise the same bytes, seqs included: the singles ran from the same seq.
        let as_single = log::Event {
            idempotency_key: single.idempotency_key.clone(),
            batch_position: single.batch_position,
            ..event.clone()
        };
        assert_eq!(
            as_single.encode_to_vec(),
            single.encode_to_vec(),
            "event {idx}"
        );
    }
    assert_eq!(
        query::events(&at_once.state, seq_before + 1, 10).unwrap(),
        imported.events
    );
    // The same rows: humans (created at their own event's seq), the upstream identity's index.
    assert_eq!(projection(&at_once), projection(&singly));
    // Its versions are the command's, at its last seq: as of any seq before, none is there.
    let versions = keys::versions_of(&keys::human("ben"));
    let ben_versions = at_once.state.scan(&versions, b"", 10).unwrap();
    assert_eq!(ben_versions.len(), 1);
    assert_eq!(
        ben_versions[0].0,
        keys::version(&keys::human("ben"), seq_before + 3)
    );
    let ben = query::human(&at_once.state, "ben").unwrap().unwrap();
    assert_eq!(ben.created_seq, seq_before + 2);
    assert_eq!(
        at_once
            .state
            .get(&keys::federated(UPSTREAM, "ben-1"))
            .unwrap(),
        Some(b"ben".to_vec())
    );
}

#[test]
fn an_import_is_one_command_among_others() {
    let mut replica = Replica::world();
    let seq_before = replica.seq();
    // Later commands in the batch see the imported humans, and take the seqs after theirs.
    let applied = replica.apply(
        T1,
        vec![
            log::RegisterHumans {
                humans: vec![human("ann"), human("ben")],
            }
            .by(admin()),
            agent("ann-bot", "ann").by(admin()),
            register_human("ben"),
        ],
    );
    assert_eq!(accepted_of(&applied.outcomes[0]).seq, seq_before + 2);
    assert_eq!(accepted_of(&applied.outcomes[1]).seq, seq_before + 3);
    assert_eq!(reason_of(&applied.outcomes[2]), RejectReason::AlreadyExists);
    let seqs: Vec<(u64, u32)> = applied
        .events
        .iter()
        .map(|it| (it.seq, it.batch_position))
        .collect();
    assert_eq!(
        seqs,
        [
            (seq_before + 1, 0),
            (seq_before + 2, 0),
            (seq_before + 3, 1),
            // The refused registration is on the record too.
            (seq_before + 4, 2)
        ]
    );
}

#[test]
fn an_import_retried_replays_and_a_reused_key_is_refused() {
    let mut replica = Replica::world();
    let import = log::RegisterHumans {
        humans: three_humans(),
    }
    .by(admin());
    let applied = replica.apply(T1, vec![import.clone()]);
    let first = accepted_of(&applied.outcomes[0]);
    let digest_before = replica.digest();
    let retried = replica.apply(T1 + 1_000, vec![import.clone()]);
    assert_eq!(
        accepted_of(&retried.outcomes[0]),
        Accepted {
            replayed: true,
            ..first
        }
    );
    assert_eq!(retried.events, []);
    assert_eq!(replica.digest(), digest_before);
    let other = log::RegisterHumans {
        humans: vec![human("dan")],
    }
    .by(admin())
    .key(&import.idempotency_key);
    check_refused(
        replica,
        other,
        RejectReason::IdempotencyKeyReused,
        &format!(
            "idempotency key {} was already used by this actor for a different request; \
             allowed: a new key per request",
            import.idempotency_key
        ),
    );
}

#[test]
fn an_import_with_one_bad_human_registers_none_of_them() {
    use RejectReason::*;
    let import =
        |bodies: Vec<log::RegisterHuman>| log::RegisterHumans { humans: bodies }.by(admin());
    let with = |idx: usize, change: fn(&mut log::RegisterHuman)| {
        let mut bodies = three_humans();
        change(&mut bodies[idx]);
        import(bodies)
    };
    let many = |count: usize| import((0..count).map(|idx| human(&format!("h{idx}"))).collect());
    let cases: Vec<(Command, RejectReason, String)> = vec![
        (
            with(2, |it| it.email = format!("{}@x", "z".repeat(253))),
            InvalidCommand,
            "humans[2].email is 255 bytes long; allowed: up to 254 bytes of text without control characters".to_owned(),
        ),
        (
            with(1, |it| it.human_id = String::new()),
            InvalidCommand,
            "humans[1].human_id is empty; allowed: 1 to 64 ASCII letters, digits, '.', '_' or '-', starting with a letter or digit".to_owned(),
        ),
        (
            with(2, |it| it.human_id = "ann".to_owned()),
            InvalidCommand,
            "humans[2].human_id repeats humans[0].human_id ann; allowed: human ids unique within the request".to_owned(),
        ),
        (
            with(2, |it| it.federated = Some(upstream("ben-1"))),
            InvalidCommand,
            format!(
                "humans[2].federated repeats humans[1].federated (subject ben-1 of issuer {UPSTREAM}); allowed: each upstream identity once within the request"
            ),
        ),
        (
            with(1, |it| it.human_id = "alice".to_owned()),
            AlreadyExists,
            "humans[1]: human alice already exists".to_owned(),
        ),
        (
            with(2, |it| it.federated = Some(upstream("taken"))),
            FederatedIdentityTaken,
            format!("humans[2]: subject taken of issuer {UPSTREAM} already names human fay"),
        ),
        (import(Vec::new()), InvalidCommand, "humans has 0 entries; allowed: 1 to 1000 humans".to_owned()),
        (many(1001), InvalidCommand, "humans has 1001 entries; allowed: 1 to 1000 humans".to_owned()),
        (
            log::RegisterHumans { humans: three_humans() }.by(human_actor("alice")),
            PermissionDenied,
            "only an admin may register humans".to_owned(),
        ),
        (
            log::RegisterHumans { humans: three_humans() }.by(agent_actor("bot")),
            PermissionDenied,
            "only an admin may register humans".to_owned(),
        ),
    ];
    let mut base = Replica::world();
    base.set_up([log::RegisterHuman {
        federated: Some(upstream("taken")),
        ..human("fay")
    }
    .by(admin())]);
    for (command, reason, message) in cases {
        check_rejected(base.clone(), command, reason, &message);
    }
    // The limit itself is accepted.
    let mut replica = base.clone();
    let applied = replica.apply(T1, vec![many(1000)]);
    assert_eq!(applied.events.len(), 1000, "{:?}", applied.outcomes);
}

// RegisterAgent.

#[test]
fn register_agent_accepts_and_keeps_hashes_out_of_the_event() {
    let mut replica = Replica::new();
    check_accepted(&mut replica, register_human("alice"));
    let command = log::RegisterAgent {
        credentials: vec![credential("c1"), credential("c2")],
        ..agent("bot", "alice")
    };
    let (_, event) = check_accepted(&mut replica, command.by(admin()));
    assert_eq!(
        event.kind,
        Some(EventKind::AgentRegistered(log::AgentRegistered {
            agent_id: "bot".to_owned(),
            owner_human_id: "alice".to_owned(),
            kind: "mcp-client".to_owned(),
            description: "reads mail".to_owned(),
            credential_ids: vec!["c1".to_owned(), "c2".to_owned()],
        }))
    );
    let event_bytes = event.encode_to_vec();
    assert!(
        !event_bytes.windows(ARGON2ID.len()).any(|it| it == ARGON2ID),
        "hash leaked into the event"
    );

    let row = query::agent(&replica.state, "bot").unwrap().unwrap();
    assert_eq!(row.status, Status::Active as i32);
    assert_eq!(row.owner_human_id, "alice");
    assert_eq!(row.credentials, vec![credential("c1"), credential("c2")]);
    assert_eq!(row.created_seq, 2);
    assert_eq!(row.created_unix_ms, T1);
    let owned = query::list_agents(&replica.state, Some("alice"), "", 10).unwrap();
    assert_eq!(owned, [row]);
}

const ARGON2ID: &[u8] = b"$argon2id$";

#[test]
fn register_agent_rejections() {
    use RejectReason::*;
    let id_rule = "1 to 64 ASCII letters, digits, '.', '_' or '-', starting with a letter or digit";
    let phc_rule =
        "an argon2id PHC string starting with '$argon2id$', up to 512 printable ASCII characters";
    let with = |change: fn(&mut log::RegisterAgent)| {
        let mut body = agent("bot2", "alice");
        change(&mut body);
        body.by(admin())
    };
    let cases: Vec<(Command, RejectReason, String)> = vec![
        (with(|it| it.agent_id = "-bot".to_owned()), InvalidCommand, format!("agent_id starts with '-'; allowed: {id_rule}")),
        (with(|it| it.owner_human_id = String::new()), InvalidCommand, format!("owner_human_id is empty; allowed: {id_rule}")),
        (with(|it| it.kind = String::new()), InvalidCommand, format!("kind is empty; allowed: {id_rule}")),
        (with(|it| it.kind = "mcp client".to_owned()), InvalidCommand, format!("kind contains ' ' at byte 3; allowed: {id_rule}")),
        (
            with(|it| it.description = "d".repeat(1025)),
            InvalidCommand,
            "description is 1025 bytes long; allowed: up to 1024 bytes of text without control characters".to_owned(),
        ),
        (
            with(|it| it.credentials = (0..9).map(|idx| credential(&format!("c{idx}"))).collect()),
            InvalidCommand,
            "credentials has 9 entries; allowed: at most 8".to_owned(),
        ),
        (
            with(|it| it.credentials = vec![credential("c1"), credential("c2"), credential("c1")]),
            InvalidCommand,
            "credentials[2].credential_id repeats c1; allowed: credential ids unique within the agent".to_owned(),
        ),
        (
            with(|it| it.credentials = vec![credential("c 1")]),
            InvalidCommand,
            format!("credentials[0].credential_id contains ' ' at byte 1; allowed: {id_rule}"),
        ),
        (
            with(|it| it.credentials = vec![Credential { kind: None, ..credential("c1") }]),
            InvalidCommand,
            "credentials[0].kind is missing; allowed: client_secret_argon2id or ed25519_public_key".to_owned(),
        ),
        (
            with(|it| it.credentials = vec![Credential {
                kind: Some(CredentialKind::ClientSecretArgon2id("hunter2".to_owned())),
                ..credential("c1")
            }]),
            InvalidCommand,
            format!("credentials[0].client_secret_argon2id does not start with '$argon2id$'; allowed: {phc_rule}"),
        ),
        (
            with(|it| it.credentials = vec![Credential {
                kind: Some(CredentialKind::ClientSecretArgon2id(format!("{PHC}{}", "a".repeat(512)))),
                ..credential("c1")
            }]),
            InvalidCommand,
            format!("credentials[0].client_secret_argon2id is {} bytes long; allowed: {phc_rule}", PHC.len() + 512),
        ),
        (with(|it| it.owner_human_id = "nobody".to_owned()), HumanNotFound, "owner human nobody does not exist".to_owned()),
        (with(|it| it.owner_human_id = "dora".to_owned()), HumanNotFound, "owner human dora is not active".to_owned()),
        (
            log::RegisterAgent { description: "another".to_owned(), ..agent("bot", "alice") }.by(admin()),
            AlreadyExists,
            "agent bot already exists".to_owned(),
        ),
    ];
    for (command, reason, message) in cases {
        let mut replica = Replica::world();
        let disabled = HumanRow {
            human_id: "dora".to_owned(),
            status: Status::Disabled as i32,
            ..HumanRow::default()
        };
        replica.put_row(keys::human("dora"), &disabled);
        check_rejected(replica, command, reason, &message);
    }
}

#[test]
fn register_agent_allows_no_credentials() {
    let mut replica = Replica::world();
    let command = log::RegisterAgent {
        credentials: Vec::new(),
        ..agent("bot2", "alice")
    };
    check_accepted(&mut replica, command.by(admin()));
}

// RegisterService.

#[test]
fn register_service_accepts() {
    let mut replica = Replica::new();
    let (_, event) = check_accepted(
        &mut replica,
        service("mail", MAIL, &["send", "read"]).by(admin()),
    );
    let body = service("mail", MAIL, &["send", "read"]);
    assert_eq!(
        event.kind,
        Some(EventKind::ServiceRegistered(log::ServiceRegistered {
            service_id: "mail".to_owned(),
            audience: MAIL.to_owned(),
            tools: body.tools.clone(),
        }))
    );
    let row = query::service_by_audience(&replica.state, MAIL)
        .unwrap()
        .unwrap();
    assert_eq!(
        row,
        ServiceRow {
            service_id: "mail".to_owned(),
            audience: MAIL.to_owned(),
            tools: body.tools,
            status: Status::Active as i32,
            created_seq: 1,
            created_unix_ms: T1,
        }
    );
    assert_eq!(query::service(&replica.state, "mail").unwrap(), Some(row));
}

#[test]
fn register_service_rejections() {
    use RejectReason::*;
    let id_rule = "1 to 64 ASCII letters, digits, '.', '_' or '-', starting with a letter or digit";
    let audience_rule = "1 to 256 printable ASCII characters ('!' to '~', no spaces)";
    let many: Vec<String> = (0..257).map(|idx| format!("t{idx}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let cases: Vec<(Command, RejectReason, String)> = vec![
        (service("", "https://x", &[]).by(admin()), InvalidCommand, format!("service_id is empty; allowed: {id_rule}")),
        (service("x", "", &[]).by(admin()), InvalidCommand, format!("audience is empty; allowed: {audience_rule}")),
        (service("x", "https://x y", &[]).by(admin()), InvalidCommand, format!("audience contains ' ' at byte 9; allowed: {audience_rule}")),
        (
            service("x", &format!("https://{}", "x".repeat(249)), &[]).by(admin()),
            InvalidCommand,
            format!("audience is 257 bytes long; allowed: {audience_rule}"),
        ),
        (service("x", "https://x", &many).by(admin()), InvalidCommand, "tools has 257 entries; allowed: at most 256".to_owned()),
        (
            service("x", "https://x", &["a", "b", "a"]).by(admin()),
            InvalidCommand,
            "tools[2].name repeats a; allowed: tool names unique within the service".to_owned(),
        ),
        (service("x", "https://x", &["a", "b/c"]).by(admin()), InvalidCommand, format!("tools[1].name contains '/' at byte 1; allowed: {id_rule}")),
        (
            log::RegisterService {
                tools: vec![Tool { name: "a".to_owned(), description: "bad\u{0}".to_owned() }],
                ..service("x", "https://x", &[])
            }
            .by(admin()),
            InvalidCommand,
            "tools[0].description contains '\\0' at byte 3; allowed: up to 1024 bytes of text without control characters".to_owned(),
        ),
        (service("mail", "https://other", &[]).by(admin()), AlreadyExists, "service mail already exists".to_owned()),
        (service("mail2", MAIL, &[]).by(admin()), AudienceTaken, format!("audience {MAIL} already names service mail")),
    ];
    for (command, reason, message) in cases {
        check_rejected(Replica::world(), command, reason, &message);
    }
}

// Updates.

#[test]
fn an_agent_is_updated_by_its_owner_only() {
    let update = log::UpdateAgent {
        agent_id: "bot".to_owned(),
        kind: "assistant".to_owned(),
        description: "schedules meetings".to_owned(),
    };
    let mut base = Replica::world();
    base.set_up([register_human("hana")]);
    for actor in [human_actor("alice"), admin()] {
        let mut replica = base.clone();
        let (_, event) = check_accepted(&mut replica, update.clone().by(actor));
        assert_eq!(
            event.kind,
            Some(EventKind::AgentUpdated(log::AgentUpdated {
                agent_id: "bot".to_owned(),
                kind: "assistant".to_owned(),
                description: "schedules meetings".to_owned(),
            }))
        );
        let row = query::agent(&replica.state, "bot")
            .expect("the store reads")
            .expect("bot exists");
        assert_eq!(
            (row.kind.as_str(), row.description.as_str()),
            ("assistant", "schedules meetings")
        );
        // The same values again change nothing.
        check_unchanged(&mut replica, update.clone().by(admin()).key("again"));
    }
    use RejectReason::*;
    let cases = [
        (
            update.clone().by(human_actor("hana")),
            PermissionDenied,
            "only an admin or human alice may update this agent",
        ),
        (
            update.clone().by(agent_actor("bot")),
            PermissionDenied,
            "only an admin or human alice may update this agent",
        ),
        (
            log::UpdateAgent {
                agent_id: "ghost".to_owned(),
                ..update.clone()
            }
            .by(admin()),
            AgentNotFound,
            "agent ghost does not exist",
        ),
    ];
    for (command, reason, message) in cases {
        check_rejected(base.clone(), command, reason, message);
    }
}

#[test]
fn humans_devices_and_services_are_updated_by_whoever_may() {
    let mut replica = session_world();
    let human_update = log::UpdateHuman {
        human_id: "alice".to_owned(),
        display_name: "Alice A.".to_owned(),
        email: "alice@example.org".to_owned(),
    };
    let (_, event) = check_accepted(&mut replica, human_update.clone().by(human_actor("alice")));
    assert_eq!(
        event.kind,
        Some(EventKind::HumanUpdated(log::HumanUpdated {
            human_id: "alice".to_owned(),
            display_name: "Alice A.".to_owned(),
            email: "alice@example.org".to_owned(),
        }))
    );
    check_rejected(
        replica.clone(),
        log::UpdateHuman {
            display_name: "Mallory".to_owned(),
            ..human_update
        }
        .by(human_actor("hana")),
        RejectReason::PermissionDenied,
        "only an admin or human alice may update this human",
    );
    let device_update = log::UpdateDevice {
        device_id: "laptop".to_owned(),
        name: "work laptop".to_owned(),
        platform: "macos".to_owned(),
    };
    check_accepted(&mut replica, device_update.clone().by(human_actor("alice")));
    check_rejected(
        replica.clone(),
        device_update.by(human_actor("hana")),
        RejectReason::PermissionDenied,
        "only an admin or human alice may update this device",
    );
    let service_update = log::UpdateService {
        service_id: "mail".to_owned(),
        tools: service("mail", MAIL, &["send", "read", "archive"]).tools,
    };
    let (_, event) = check_accepted(&mut replica, service_update.clone().by(admin()));
    assert_eq!(
        event.kind,
        Some(EventKind::ServiceUpdated(log::ServiceUpdated {
            service_id: "mail".to_owned(),
            tools: service_update.tools.clone(),
        }))
    );
    check_rejected(
        replica,
        service_update.by(human_actor("alice")),
        RejectReason::PermissionDenied,
        "only an admin may update services",
    );
}
