//! Tokens: issuing (plain and under a delegation), exchanging (RFC 8693) and revoking.

use super::*;

// IssueToken.

#[test]
fn issue_token_derives_claims_from_the_batch_stamp() {
    let mut replica = Replica::world();
    let seq_before = replica.seq();
    let (accepted, event) = check_accepted(
        &mut replica,
        issue("j1", "bot", &["send"]).by(agent_actor("bot")),
    );
    let claims = log::TokenIssued {
        jti: "j1".to_owned(),
        subject: "bot".to_owned(),
        agent_id: "bot".to_owned(),
        audience: MAIL.to_owned(),
        scopes: vec!["send".to_owned()],
        subject_kind: log::PrincipalKind::Agent as i32,
        // T1 is 1_700_000_123_456 ms: seconds round down.
        issued_at_unix_s: 1_700_000_123,
        expires_at_unix_s: 1_700_000_723,
        key_id: "k1".to_owned(),
        ..Default::default()
    };
    assert_eq!(
        accepted,
        Accepted {
            seq: seq_before + 1,
            replayed: false,
            token_issued: Some(claims.clone()),
            changed: true,
            ..Default::default()
        }
    );
    assert_eq!(event.kind, Some(EventKind::TokenIssued(claims.clone())));
    let row = query::token(&replica.state, "j1").unwrap().unwrap();
    assert_eq!(
        row,
        TokenRow {
            issued: Some(claims),
            issued_seq: seq_before + 1,
            revoked: false,
            revoked_seq: 0,
            revoke_reason: String::new()
        }
    );
}

#[test]
fn issue_token_ttl_bounds_are_inclusive() {
    let mut replica = Replica::world();
    for (jti, ttl_seconds) in [("j1", 1), ("j2", TOKEN_TTL_SECONDS_MAX)] {
        let command = log::IssueToken {
            ttl_seconds,
            ..issue(jti, "bot", &["send", "read"])
        };
        let (accepted, _) = check_accepted(&mut replica, command.by(agent_actor("bot")));
        let claims = accepted.token_issued.unwrap();
        assert_eq!(
            claims.expires_at_unix_s - claims.issued_at_unix_s,
            u64::from(ttl_seconds)
        );
    }
}

#[test]
fn issue_token_rejections() {
    use RejectReason::*;
    let with = |change: fn(&mut log::IssueToken)| {
        let mut body = issue("j9", "bot", &["send"]);
        change(&mut body);
        body.by(agent_actor("bot"))
    };
    let tools_rule = "1 to 64 tool names";
    let cases: Vec<(Command, RejectReason, String)> = vec![
        (with(|it| it.jti = String::new()), InvalidCommand, "jti is empty; allowed: 1 to 64 ASCII letters, digits, '.', '_' or '-'".to_owned()),
        (with(|it| it.jti = "j/9".to_owned()), InvalidCommand, "jti contains '/' at byte 1; allowed: 1 to 64 ASCII letters, digits, '.', '_' or '-'".to_owned()),
        (with(|it| it.audience = "has space".to_owned()), InvalidCommand, "audience contains ' ' at byte 3; allowed: 1 to 256 printable ASCII characters ('!' to '~', no spaces)".to_owned()),
        (with(|it| it.scopes = Vec::new()), InvalidCommand, format!("scopes has 0 entries; allowed: {tools_rule}")),
        (with(|it| it.scopes = vec!["send".to_owned(); 65]), InvalidCommand, format!("scopes has 65 entries; allowed: {tools_rule}")),
        (with(|it| it.scopes = vec!["send".to_owned(), "send".to_owned()]), InvalidCommand, "scopes[1] repeats send; allowed: unique scopes".to_owned()),
        (with(|it| it.scopes = vec!["mail:send".to_owned()]), InvalidCommand, "scopes[0] contains ':' at byte 4; allowed: 1 to 64 ASCII letters, digits, '.', '_' or '-', starting with a letter or digit".to_owned()),
        (with(|it| it.ttl_seconds = 0), InvalidCommand, "ttl_seconds is 0; allowed: 1 to 86400".to_owned()),
        (with(|it| it.ttl_seconds = 86_401), InvalidCommand, "ttl_seconds is 86401; allowed: 1 to 86400".to_owned()),
        (with(|it| it.key_id = String::new()), InvalidCommand, "key_id is empty; allowed: 1 to 128 printable ASCII characters ('!' to '~', no spaces)".to_owned()),
        (issue("j9", "bot", &["send"]).by(admin()), PermissionDenied, "only agent bot itself may ask for its tokens".to_owned()),
        (issue("j9", "bot", &["send"]).by(agent_actor("bot2")), PermissionDenied, "only agent bot itself may ask for its tokens".to_owned()),
        (issue("j9", "bot", &["send"]).by(human_actor("bot")), PermissionDenied, "only agent bot itself may ask for its tokens".to_owned()),
        (issue("j9", "ghost", &["send"]).by(agent_actor("ghost")), AgentNotFound, "agent ghost does not exist".to_owned()),
        (issue("j9", "sleepy", &["send"]).by(agent_actor("sleepy")), AgentDisabled, "agent sleepy is disabled".to_owned()),
        (with(|it| it.audience = "https://nowhere".to_owned()), ServiceNotFound, "no service has audience https://nowhere".to_owned()),
        (
            with(|it| it.scopes = vec!["send".to_owned(), "delete".to_owned()]),
            ScopeNotAllowed,
            "scope delete is not a tool of service mail; allowed: read, send".to_owned(),
        ),
        (with(|it| it.key_id = "k2".to_owned()), SigningKeyNotFound, "signing key k2 is not published".to_owned()),
        (with(|it| it.jti = "j1".to_owned()), AlreadyExists, "token j1 already exists".to_owned()),
    ];
    for (command, reason, message) in cases {
        let mut replica = Replica::world();
        check_accepted(
            &mut replica,
            issue("j1", "bot", &["read"]).by(agent_actor("bot")),
        );
        let disabled = AgentRow {
            agent_id: "sleepy".to_owned(),
            owner_human_id: "alice".to_owned(),
            status: Status::Disabled as i32,
            ..AgentRow::default()
        };
        replica.put_row(keys::agent("sleepy"), &disabled);
        check_rejected(replica, command, reason, &message);
    }
}

#[test]
fn scope_not_allowed_lists_a_bounded_number_of_tools() {
    let names: Vec<String> = (0..40).map(|idx| format!("tool{idx:02}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut replica = Replica::world();
    check_accepted(
        &mut replica,
        service("big", "https://big", &names).by(admin()),
    );
    check_accepted(
        &mut replica,
        service("empty", "https://empty", &[]).by(admin()),
    );
    let shown: Vec<&str> = names[..16].to_vec();
    let cases = [
        (
            "https://big",
            format!(
                "scope send is not a tool of service big; allowed: {} and 24 more",
                shown.join(", ")
            ),
        ),
        (
            "https://empty",
            "scope send is not a tool of service empty; allowed: none: the service has no tools"
                .to_owned(),
        ),
    ];
    for (audience, message) in cases {
        let command = log::IssueToken {
            audience: audience.to_owned(),
            ..issue("j9", "bot", &["send"])
        };
        check_rejected(
            replica.clone(),
            command.by(agent_actor("bot")),
            RejectReason::ScopeNotAllowed,
            &message,
        );
    }
}

// RevokeToken.

/// The world plus token j1, issued to bot.
fn world_with_token() -> Replica {
    let mut replica = Replica::world();
    check_accepted(
        &mut replica,
        issue("j1", "bot", &["send"]).by(agent_actor("bot")),
    );
    replica
}

#[test]
fn revoke_token_by_admin_or_holder() {
    for actor in [admin(), agent_actor("bot")] {
        let mut replica = world_with_token();
        let (accepted, event) = check_accepted(&mut replica, revoke("j1").by(actor.clone()));
        assert_eq!(
            event.kind,
            Some(EventKind::TokenRevoked(log::TokenRevoked {
                jti: "j1".to_owned(),
                reason: "leaked".to_owned()
            }))
        );
        let row = query::token(&replica.state, "j1").unwrap().unwrap();
        assert!(row.revoked);
        assert_eq!(row.revoked_seq, accepted.seq);
        assert_eq!(row.revoke_reason, "leaked");
        assert_eq!(row.issued.unwrap().jti, "j1");
    }
}

#[test]
fn revoking_a_revoked_token_changes_nothing_and_stores_no_key() {
    let mut replica = world_with_token();
    check_accepted(&mut replica, revoke("j1").by(admin()));
    let again = log::RevokeToken {
        reason: "still leaked".to_owned(),
        ..revoke("j1")
    }
    .by(admin());
    check_unchanged(&mut replica, again.clone());
    // No idempotency row was stored for the no-op, so the key is free for another request.
    let other = revoke("j1")
        .by(admin())
        .key(&again.idempotency_key)
        .digest(&[7; 32]);
    check_unchanged(&mut replica, other);
}

#[test]
fn revoke_token_rejections() {
    use RejectReason::*;
    let cases: Vec<(Command, RejectReason, String)> = vec![
        (revoke("").by(admin()), InvalidCommand, "jti is empty; allowed: 1 to 64 ASCII letters, digits, '.', '_' or '-'".to_owned()),
        (
            log::RevokeToken { reason: "r".repeat(513), ..revoke("j1") }.by(admin()),
            InvalidCommand,
            "reason is 513 bytes long; allowed: up to 512 bytes of text without control characters".to_owned(),
        ),
        (
            log::RevokeToken { reason: "a\u{2028}\u{85}".to_owned(), ..revoke("j1") }.by(admin()),
            InvalidCommand,
            "reason contains '\\u{85}' at byte 4; allowed: up to 512 bytes of text without control characters".to_owned(),
        ),
        (revoke("j2").by(admin()), TokenNotFound, "token j2 does not exist".to_owned()),
        (revoke("j1").by(agent_actor("bot2")), PermissionDenied, "only an admin, agent bot or the human it acts for may revoke token j1".to_owned()),
        (revoke("j1").by(human_actor("alice")), PermissionDenied, "only an admin, agent bot or the human it acts for may revoke token j1".to_owned()),
        (revoke("j1").by(node(1)), PermissionDenied, "only an admin, agent bot or the human it acts for may revoke token j1".to_owned()),
    ];
    for (command, reason, message) in cases {
        check_rejected(world_with_token(), command, reason, &message);
    }
}

// IssueToken under a delegation.

#[test]
fn a_sub_agent_issues_for_the_root_human() {
    // The token lives at most as long as the delegation.
    for (ttl_seconds, expires_at_unix_s) in
        [(600, NOW_S + 600), (TOKEN_TTL_SECONDS_MAX, D2_EXPIRES)]
    {
        let mut replica = delegation_world();
        let command = log::IssueToken {
            ttl_seconds,
            ..delegated("j2", "sub", "d2", &["read"])
        };
        let (accepted, event) = check_accepted(&mut replica, command.by(agent_actor("sub")));
        let claims = log::TokenIssued {
            jti: "j2".to_owned(),
            subject: "hana".to_owned(),
            agent_id: "sub".to_owned(),
            audience: MAIL.to_owned(),
            scopes: strings(&["read"]),
            issued_at_unix_s: NOW_S,
            expires_at_unix_s,
            key_id: "k1".to_owned(),
            session_id: String::new(),
            delegation_id: "d2".to_owned(),
            actor_chain: strings(&["sub", "bot"]),
            task: "triage inbox".to_owned(),
            subject_jti: String::new(),
            subject_kind: PrincipalKind::Human as i32,
        };
        assert_eq!(accepted.token_issued.as_ref(), Some(&claims));
        assert_eq!(event.kind, Some(EventKind::TokenIssued(claims.clone())));
        assert_eq!(replica.token_row("j2").issued, Some(claims));
    }
    // The root grantee issues under its own grant: a chain of one.
    let mut replica = delegation_world();
    let (accepted, _) = check_accepted(
        &mut replica,
        delegated("j1", "bot", "d1", &["send"]).by(agent_actor("bot")),
    );
    let claims = accepted.token_issued.expect("claims are returned");
    assert_eq!(
        (
            claims.subject.as_str(),
            claims.actor_chain,
            claims.expires_at_unix_s
        ),
        ("hana", strings(&["bot"]), NOW_S + 600)
    );
}

#[test]
fn issue_under_delegation_rejections() {
    use RejectReason::*;
    let base = delegation_world();
    let next_seq = base.seq() + 1;
    let sub = || agent_actor("sub");
    let j2 = |scopes: &[&str]| delegated("j2", "sub", "d2", scopes).by(agent_actor("sub"));
    let cases: Vec<(Vec<Command>, Command, RejectReason, String)> = vec![
        // send is a tool of mail, so only the delegation refuses it.
        (
            vec![],
            j2(&["send"]),
            ScopeNotDelegated,
            "scope send is not in delegation d2; allowed: read".to_owned(),
        ),
        (
            vec![],
            log::IssueToken {
                audience: CAL.to_owned(),
                ..delegated("j2", "sub", "d2", &["view"])
            }
            .by(sub()),
            AudienceNotDelegated,
            format!("audience {CAL} is not in delegation d2; allowed: {MAIL}"),
        ),
        (
            vec![],
            delegated("j2", "bot", "d2", &["read"]).by(agent_actor("bot")),
            PermissionDenied,
            "delegation d2 is granted to agent sub, not bot".to_owned(),
        ),
        (
            vec![],
            delegated("j2", "sub", "d1", &["read"]).by(sub()),
            PermissionDenied,
            "delegation d1 is granted to agent bot, not sub".to_owned(),
        ),
        (
            vec![],
            delegated("j2", "sub", "nope", &["read"]).by(sub()),
            DelegationNotFound,
            "delegation nope does not exist".to_owned(),
        ),
        // The cascade: revoking the root stops the child.
        (
            vec![revoke_delegation("d1").by(human_actor("hana"))],
            j2(&["read"]),
            DelegationInactive,
            format!("delegation d1 was revoked at seq {next_seq}"),
        ),
        (
            vec![revoke_delegation("d2").by(agent_actor("bot"))],
            j2(&["read"]),
            DelegationInactive,
            format!("delegation d2 was revoked at seq {next_seq}"),
        ),
        // The kill switch on the middle of the chain.
        (
            vec![set_status(log::EntityKind::Agent, "bot", true).by(admin())],
            j2(&["read"]),
            DelegationInactive,
            "agent bot is disabled".to_owned(),
        ),
        (
            vec![set_status(log::EntityKind::Human, "hana", true).by(admin())],
            j2(&["read"]),
            DelegationInactive,
            "human hana is disabled".to_owned(),
        ),
        // Offboarding the agents' owner stops the agent itself first.
        (
            vec![set_status(log::EntityKind::Human, "alice", true).by(admin())],
            j2(&["read"]),
            AgentDisabled,
            "agent sub's owner: human alice is disabled".to_owned(),
        ),
    ];
    for (set_up, command, reason, message) in cases {
        let mut replica = base.clone();
        replica.set_up(set_up);
        check_rejected(replica, command, reason, &message);
    }
}

#[test]
fn a_delegated_token_lapses_with_any_link_of_its_chain() {
    use LapseKind::*;
    let mut base = delegation_world();
    base.set_up([
        agent_session("as1", "sub").by(agent_actor("sub")),
        log::IssueToken {
            session_id: "as1".to_owned(),
            ..delegated("j2", "sub", "d2", &["read"])
        }
        .by(agent_actor("sub")),
    ]);
    let next_seq = base.seq() + 1;
    let cases: Vec<(Vec<Command>, Result<(), Lapse>)> = vec![
        (vec![], Ok(())),
        (
            vec![revoke_delegation("d1").by(human_actor("hana"))],
            lapse(
                DelegationRevoked,
                format!("delegation d1 was revoked at seq {next_seq}"),
            ),
        ),
        (
            vec![revoke_delegation("d2").by(agent_actor("sub"))],
            lapse(
                DelegationRevoked,
                format!("delegation d2 was revoked at seq {next_seq}"),
            ),
        ),
        (
            vec![set_status(log::EntityKind::Human, "hana", true).by(admin())],
            lapse(HumanDisabled, "human hana is disabled"),
        ),
        (
            vec![end_session("as1").by(agent_actor("sub"))],
            lapse(SessionEnded, format!("session as1 ended at seq {next_seq}")),
        ),
        (
            vec![set_status(log::EntityKind::Agent, "bot", true).by(admin())],
            lapse(AgentDisabled, "agent bot is disabled"),
        ),
        (
            vec![set_status(log::EntityKind::Agent, "sub", true).by(admin())],
            lapse(AgentDisabled, "agent sub is disabled"),
        ),
        (
            vec![revoke("j2").by(human_actor("hana"))],
            lapse(
                TokenRevoked,
                format!("the token was revoked at seq {next_seq}"),
            ),
        ),
    ];
    for (set_up, expected) in cases {
        let mut replica = base.clone();
        let context = format!("{set_up:?}");
        replica.set_up(set_up);
        assert_eq!(token_validity(&replica, "j2"), expected, "after {context}");
    }
    // The chain also lapses when a link expires.
    let row = base.token_row("j2");
    assert_eq!(
        validity::token(&base.state, &row, D2_EXPIRES).expect("the store reads"),
        lapse(
            SessionEnded,
            format!("session as1 expired at {}", T0_S + 3_600)
        )
    );
}

// Token exchange (RFC 8693).

#[test]
fn exchange_a_human_session_token_down_a_delegation_chain() {
    let mut replica = delegation_world();
    let (accepted, event) = check_accepted(
        &mut replica,
        human_session("hs1", "hana", "hj").by(human_actor("hana")),
    );
    let session_token = log::TokenIssued {
        jti: "hj".to_owned(),
        subject: "hana".to_owned(),
        subject_kind: PrincipalKind::Human as i32,
        audience: ISSUER.to_owned(),
        issued_at_unix_s: NOW_S,
        expires_at_unix_s: NOW_S + 3_600,
        key_id: "k1".to_owned(),
        session_id: "hs1".to_owned(),
        ..Default::default()
    };
    let started = log::SessionStarted {
        session_id: "hs1".to_owned(),
        principal_kind: PrincipalKind::Human as i32,
        principal_id: "hana".to_owned(),
        device_id: String::new(),
        auth_method: log::AuthMethod::LocalPassword as i32,
        expires_at_unix_s: NOW_S + 3_600,
        federated: None,
        token: Some(session_token.clone()),
    };
    assert_eq!(accepted.token_issued.as_ref(), Some(&session_token));
    assert_eq!(accepted.session_started.as_ref(), Some(&started));
    assert_eq!(event.kind, Some(EventKind::SessionStarted(started)));
    assert_eq!(replica.token_row("hj").issued, Some(session_token));
    assert_eq!(token_validity(&replica, "hj"), Ok(()));

    // bot exchanges hana's session token under her grant d1.
    let (accepted, _) = check_accepted(
        &mut replica,
        exchange("x1", "bot", "d1", "hj").by(agent_actor("bot")),
    );
    let x1 = log::TokenIssued {
        jti: "x1".to_owned(),
        subject: "hana".to_owned(),
        agent_id: "bot".to_owned(),
        audience: MAIL.to_owned(),
        scopes: strings(&["read"]),
        issued_at_unix_s: NOW_S,
        expires_at_unix_s: NOW_S + 600,
        key_id: "k1".to_owned(),
        session_id: "hs1".to_owned(),
        delegation_id: "d1".to_owned(),
        actor_chain: strings(&["bot"]),
        task: "triage inbox".to_owned(),
        subject_jti: "hj".to_owned(),
        subject_kind: PrincipalKind::Human as i32,
    };
    assert_eq!(accepted.token_issued, Some(x1.clone()));

    // sub exchanges bot's token under the grant bot made it.
    let (accepted, _) = check_accepted(
        &mut replica,
        exchange("x2", "sub", "d2", "x1").by(agent_actor("sub")),
    );
    let x2 = log::TokenIssued {
        jti: "x2".to_owned(),
        agent_id: "sub".to_owned(),
        delegation_id: "d2".to_owned(),
        actor_chain: strings(&["sub", "bot"]),
        subject_jti: "x1".to_owned(),
        ..x1
    };
    assert_eq!(accepted.token_issued, Some(x2));

    // Logging out ends every token exchanged from the session.
    let (ended, _) = check_accepted(&mut replica, end_session("hs1").by(human_actor("hana")));
    for jti in ["hj", "x1", "x2"] {
        assert_eq!(
            token_validity(&replica, jti),
            lapse(
                LapseKind::SessionEnded,
                format!("session hs1 ended at seq {}", ended.seq)
            ),
            "{jti}"
        );
    }
}

#[test]
fn an_exchange_never_exceeds_the_subject_token() {
    // A session shorter than the requested token: the exchanged token ends with it.
    let mut replica = delegation_world();
    let short = log::StartSession {
        ttl_seconds: 60,
        ..human_session("hs1", "hana", "hj")
    };
    check_accepted(&mut replica, short.by(human_actor("hana")));
    let (accepted, _) = check_accepted(
        &mut replica,
        exchange("x1", "bot", "d1", "hj").by(agent_actor("bot")),
    );
    let claims = accepted.token_issued.expect("claims are returned");
    assert_eq!(claims.expires_at_unix_s, NOW_S + 60);
}

#[test]
fn token_exchange_rejections() {
    use RejectReason::*;
    let mut base = delegation_world();
    base.set_up([
        // alice's own grant to bot: not a continuation of hana's session.
        log::CreateDelegation {
            delegation_id: "da".to_owned(),
            ..d1()
        }
        .by(human_actor("alice")),
        human_session("hs1", "hana", "hj").by(human_actor("hana")),
        log::StartSession {
            ttl_seconds: 60,
            ..human_session("hs2", "hana", "hj2")
        }
        .by(human_actor("hana")),
    ]);
    let next_seq = base.seq() + 1;
    let no_link = |delegation_id: &str, subject_jti: &str| {
        format!(
            "delegation {delegation_id} does not continue from subject token {subject_jti}: \
             allowed: a root delegation from the session's human, or a delegation granted under \
             the subject token's own delegation by its agent"
        )
    };
    let bot = || agent_actor("bot");
    let cases: Vec<(Vec<Command>, Command, RejectReason, String)> = vec![
        (vec![], exchange("x1", "bot", "da", "hj").by(bot()), SubjectTokenInactive, no_link("da", "hj")),
        // A human's session token goes to a root grantee only, not down a child.
        (vec![], exchange("x1", "sub", "d2", "hj").by(agent_actor("sub")), SubjectTokenInactive, no_link("d2", "hj")),
        (vec![end_session("hs1").by(human_actor("hana"))], exchange("x1", "bot", "d1", "hj").by(bot()), SubjectTokenInactive, format!("subject token hj: session hs1 ended at seq {next_seq}")),
        (vec![revoke("hj").by(human_actor("hana"))], exchange("x1", "bot", "d1", "hj").by(bot()), SubjectTokenInactive, format!("subject token hj: the token was revoked at seq {next_seq}")),
        (vec![], exchange("x1", "bot", "d1", "nope").by(bot()), SubjectTokenInactive, "subject token nope was never issued".to_owned()),
        (vec![], exchange("x1", "bot", "d1", "hj2").by(bot()), SubjectTokenInactive, format!("subject token hj2 expired at {}", T0_S + 60)),
        // bot's own token (no delegation) carries no authority to pass on.
        (
            vec![issue("j1", "bot", &["read"]).by(bot())],
            exchange("x1", "sub", "d2", "j1").by(agent_actor("sub")),
            SubjectTokenInactive,
            no_link("d2", "j1"),
        ),
        (vec![], log::IssueToken { delegation_id: String::new(), ..exchange("x1", "bot", "d1", "hj") }.by(bot()), InvalidCommand, "delegation_id is empty in a token exchange; allowed: the delegation the actor acts under".to_owned()),
        (
            vec![],
            log::IssueToken { session_id: "hs1".to_owned(), ..exchange("x1", "bot", "d1", "hj") }.by(bot()),
            InvalidCommand,
            "session_id is set in a token exchange; allowed: empty: an exchanged token keeps the subject token's session".to_owned(),
        ),
    ];
    for (set_up, command, reason, message) in cases {
        let mut replica = base.clone();
        replica.set_up(set_up);
        check_rejected(replica, command, reason, &message);
    }
}
