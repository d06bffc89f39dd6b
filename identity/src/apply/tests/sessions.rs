//! Starting and ending sessions, local and federated.

use super::*;

// Sessions.

#[test]
fn an_agent_session_starts_and_ends_once() {
    let mut replica = session_world();
    let (started_outcome, event) = check_accepted(
        &mut replica,
        agent_session("s1", "bot").by(agent_actor("bot")),
    );
    let started = log::SessionStarted {
        session_id: "s1".to_owned(),
        principal_kind: PrincipalKind::Agent as i32,
        principal_id: "bot".to_owned(),
        device_id: String::new(),
        auth_method: log::AuthMethod::ClientSecret as i32,
        expires_at_unix_s: NOW_S + 3_600,
        federated: None,
        token: None,
    };
    assert_eq!(started_outcome.session_started.as_ref(), Some(&started));
    assert_eq!(started_outcome.token_issued, None);
    assert_eq!(event.kind, Some(EventKind::SessionStarted(started.clone())));
    let (ended, event) = check_accepted(&mut replica, end_session("s1").by(agent_actor("bot")));
    assert_eq!(
        event.kind,
        Some(EventKind::SessionEnded(log::SessionEnded {
            session_id: "s1".to_owned(),
            reason: "logout".to_owned(),
        }))
    );
    assert_eq!(
        query::session(&replica.state, "s1").expect("the store reads"),
        Some(SessionRow {
            started: Some(started),
            started_seq: started_outcome.seq,
            ended: true,
            ended_seq: ended.seq,
            end_reason: "logout".to_owned(),
        })
    );
    // Ending it again, by anyone allowed to, changes nothing.
    for actor in [agent_actor("bot"), human_actor("alice"), admin()] {
        let again = log::EndSession {
            reason: "again".to_owned(),
            ..end_session("s1")
        };
        check_unchanged(&mut replica, again.by(actor));
    }
}

#[test]
fn a_human_session_on_a_device_issues_its_session_token() {
    let mut replica = session_world();
    let command = log::StartSession {
        device_id: "laptop".to_owned(),
        ..human_session("hs1", "alice", "hj")
    };
    let (accepted, _) = check_accepted(&mut replica, command.by(human_actor("alice")));
    let started = accepted.session_started.expect("the session is returned");
    assert_eq!(started.device_id, "laptop");
    let token = started.token.expect("a human session has a token");
    assert_eq!(accepted.token_issued.as_ref(), Some(&token));
    assert_eq!(
        replica.token_row("hj"),
        TokenRow {
            issued: Some(token),
            issued_seq: accepted.seq,
            ..Default::default()
        }
    );
    let key = query::signing_key(&replica.state, "k1")
        .expect("the store reads")
        .expect("k1 is published");
    assert_eq!(key.last_token_expires_at_unix_s, NOW_S + 3_600);
    // Disabling the device ends what was started on it.
    check_accepted(
        &mut replica,
        set_status(log::EntityKind::Device, "laptop", true).by(human_actor("alice")),
    );
    assert_eq!(
        token_validity(&replica, "hj"),
        lapse(
            LapseKind::DeviceDisabled,
            "session hs1's device laptop is disabled"
        )
    );
}

#[test]
fn a_bound_agent_starts_its_sessions_on_its_device() {
    let mut replica = session_world();
    let (_, event) = check_accepted(&mut replica, bind("bot", "laptop").by(human_actor("alice")));
    assert_eq!(
        event.kind,
        Some(EventKind::AgentDeviceBound(log::AgentDeviceBound {
            agent_id: "bot".to_owned(),
            device_id: "laptop".to_owned(),
        }))
    );
    check_unchanged(&mut replica, bind("bot", "laptop").by(admin()));
    let (accepted, _) = check_accepted(
        &mut replica,
        agent_session("s1", "bot").by(agent_actor("bot")),
    );
    let started = accepted.session_started.expect("the session is returned");
    assert_eq!(started.device_id, "laptop");
    // Unbinding frees the agent from the device.
    let (_, event) = check_accepted(&mut replica, bind("bot", "").by(admin()));
    assert_eq!(
        event.kind,
        Some(EventKind::AgentDeviceBound(log::AgentDeviceBound {
            agent_id: "bot".to_owned(),
            device_id: String::new(),
        }))
    );
    let (accepted, _) = check_accepted(
        &mut replica,
        agent_session("s2", "bot").by(agent_actor("bot")),
    );
    let started = accepted.session_started.expect("the session is returned");
    assert_eq!(started.device_id, "");
}

#[test]
fn start_session_rejections() {
    use RejectReason::*;
    let alice = || human_actor("alice");
    let bot = || agent_actor("bot");
    let on = |device_id: &str, session: log::StartSession| log::StartSession {
        device_id: device_id.to_owned(),
        ..session
    };
    let bind_laptop = || bind("bot", "laptop").by(human_actor("alice"));
    let cases: Vec<(Vec<Command>, Command, RejectReason, String)> = vec![
        (vec![], on("phone", human_session("hs1", "alice", "hj")).by(alice()), PermissionDenied, "device phone belongs to human hana".to_owned()),
        (vec![], on("phone", agent_session("s1", "bot")).by(bot()), PermissionDenied, "device phone belongs to human hana".to_owned()),
        (vec![], on("tablet", human_session("hs1", "alice", "hj")).by(alice()), DeviceDisabled, "device tablet is disabled".to_owned()),
        (vec![], on("ghost", agent_session("s1", "bot")).by(bot()), DeviceNotFound, "device ghost does not exist".to_owned()),
        (
            vec![bind_laptop(), set_status(log::EntityKind::Device, "laptop", true).by(admin())],
            agent_session("s1", "bot").by(bot()),
            DeviceDisabled,
            "agent bot's device laptop is disabled".to_owned(),
        ),
        (vec![bind_laptop()], on("phone", agent_session("s1", "bot")).by(bot()), PermissionDenied, "agent bot is bound to device laptop, not phone".to_owned()),
        // A session is started by its own principal only.
        (vec![], agent_session("s1", "bot").by(agent_actor("bot2")), PermissionDenied, "only bot itself may start its session".to_owned()),
        (vec![], agent_session("s1", "bot").by(alice()), PermissionDenied, "only bot itself may start its session".to_owned()),
        (vec![], agent_session("s1", "bot").by(admin()), PermissionDenied, "only bot itself may start its session".to_owned()),
        (vec![], human_session("hs1", "alice", "hj").by(human_actor("hana")), PermissionDenied, "only alice itself may start its session".to_owned()),
        (vec![], human_session("hs1", "alice", "hj").by(agent_actor("alice")), PermissionDenied, "only alice itself may start its session".to_owned()),
        (
            vec![],
            log::StartSession { auth_method: log::AuthMethod::ClientSecret as i32, ..human_session("hs1", "alice", "hj") }.by(alice()),
            InvalidCommand,
            "auth_method is 1 for principal kind 2; allowed: a human with OIDC_ID_TOKEN or LOCAL_PASSWORD, or an agent with CLIENT_SECRET or PRIVATE_KEY_JWT".to_owned(),
        ),
        (vec![], log::StartSession { ttl_seconds: 0, ..agent_session("s1", "bot") }.by(bot()), InvalidCommand, "ttl_seconds is 0; allowed: 1 to 604800".to_owned()),
        (vec![set_status(log::EntityKind::Agent, "bot", true).by(admin())], agent_session("s1", "bot").by(bot()), AgentDisabled, "agent bot is disabled".to_owned()),
        (vec![set_status(log::EntityKind::Human, "alice", true).by(admin())], human_session("hs1", "alice", "hj").by(alice()), HumanDisabled, "human alice is disabled".to_owned()),
        (vec![agent_session("s1", "bot").by(bot())], log::StartSession { ttl_seconds: 60, ..agent_session("s1", "bot") }.by(bot()), AlreadyExists, "session s1 already exists".to_owned()),
    ];
    for (set_up, command, reason, message) in cases {
        let mut replica = session_world();
        replica.set_up(set_up);
        check_rejected(replica, command, reason, &message);
    }
}

#[test]
fn end_session_rejections() {
    use RejectReason::*;
    let mut base = session_world();
    base.set_up([agent_session("s1", "bot").by(agent_actor("bot"))]);
    let cases = [
        (
            end_session("s1").by(agent_actor("bot2")),
            PermissionDenied,
            "only an admin or bot may end session s1",
        ),
        (
            end_session("s1").by(human_actor("hana")),
            PermissionDenied,
            "only an admin or bot may end session s1",
        ),
        (
            end_session("nope").by(admin()),
            SessionNotFound,
            "session nope does not exist",
        ),
    ];
    for (command, reason, message) in cases {
        check_rejected(base.clone(), command, reason, message);
    }
}

const IDP: &str = "https://idp.example";

fn federated(subject: &str) -> log::FederatedIdentity {
    log::FederatedIdentity {
        issuer: IDP.to_owned(),
        subject: subject.to_owned(),
    }
}

/// hana, registered as subject 123 of the upstream issuer, logs in with its id_token.
fn oidc_session(subject: Option<&str>) -> Command {
    log::StartSession {
        auth_method: log::AuthMethod::OidcIdToken as i32,
        federated: subject.map(federated),
        ..human_session("hs1", "hana", "hj")
    }
    .by(human_actor("hana"))
}

#[test]
fn a_federated_human_logs_in_with_its_upstream_identity() {
    let mut base = Replica::world();
    let hana = log::RegisterHuman {
        federated: Some(federated("123")),
        ..human("hana")
    };
    base.set_up([hana.by(admin())]);
    let mut replica = base.clone();
    let (accepted, _) = check_accepted(&mut replica, oidc_session(Some("123")));
    let started = accepted.session_started.expect("the session is returned");
    assert_eq!(started.federated, Some(federated("123")));
    use RejectReason::*;
    let cases = [
        (
            oidc_session(Some("999")),
            PermissionDenied,
            format!("human hana is not subject 999 of issuer {IDP}"),
        ),
        (
            oidc_session(None),
            InvalidCommand,
            "federated is missing; allowed: the issuer and subject of the verified id_token"
                .to_owned(),
        ),
        (
            oidc_session(Some("")),
            InvalidCommand,
            "federated.subject is empty; allowed: 1 to 255 printable ASCII characters ('!' to \
             '~', no spaces)"
                .to_owned(),
        ),
    ];
    for (command, reason, message) in cases {
        check_rejected(base.clone(), command, reason, &message);
    }
}

#[test]
fn a_session_records_only_a_verified_upstream_identity() {
    // Neither a password login nor an agent's secret says anything about an upstream identity;
    // one the command carries anyway, never validated, must not reach the audit log.
    let unverified = Some(log::FederatedIdentity {
        issuer: "https://evil.example".to_owned(),
        subject: "not checked\n".to_owned(),
    });
    let commands = [
        log::StartSession {
            federated: unverified.clone(),
            ..human_session("hs1", "alice", "hj")
        }
        .by(human_actor("alice")),
        log::StartSession {
            federated: unverified,
            ..agent_session("s1", "bot")
        }
        .by(agent_actor("bot")),
    ];
    for command in commands {
        let mut replica = Replica::world();
        let applied = replica.apply(T1, vec![command]);
        match &applied.outcomes[0].result {
            Some(OutcomeResult::Accepted(accepted)) => {
                let started = accepted.session_started.as_ref().expect("a session");
                assert_eq!(started.federated, None);
            }
            _ => assert_eq!(
                reason_of(&applied.outcomes[0]),
                RejectReason::InvalidCommand
            ),
        }
    }
}
