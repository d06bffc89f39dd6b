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
