//! Creating and revoking delegations: root grants and narrower children.

use super::*;

// CreateDelegation.

#[test]
fn a_human_grants_a_root_delegation() {
    let mut replica = Replica::world();
    replica.set_up([
        register_human("hana"),
        service("cal", CAL, &["view"]).by(admin()),
    ]);
    // Scopes may come from any granted audience's service.
    let grant = log::CreateDelegation {
        scopes: strings(&["send", "view"]),
        audiences: strings(&[MAIL, CAL]),
        ..d1()
    };
    let (accepted, event) = check_accepted(&mut replica, grant.by(human_actor("hana")));
    let created = log::DelegationCreated {
        delegation_id: "d1".to_owned(),
        parent_delegation_id: String::new(),
        root_human_id: "hana".to_owned(),
        grantor_kind: PrincipalKind::Human as i32,
        grantor_id: "hana".to_owned(),
        grantee_agent_id: "bot".to_owned(),
        scopes: strings(&["send", "view"]),
        audiences: strings(&[MAIL, CAL]),
        task: "triage inbox".to_owned(),
        expires_at_unix_s: D1_EXPIRES,
        max_depth: 3,
        depth: 1,
        agent_chain: strings(&["bot"]),
        budget: None,
    };
    assert_eq!(accepted.delegation_created.as_ref(), Some(&created));
    assert_eq!(
        event.kind,
        Some(EventKind::DelegationCreated(created.clone()))
    );
    let row = DelegationRow {
        created: Some(created),
        created_seq: accepted.seq,
        ..Default::default()
    };
    assert_eq!(
        query::delegations_to(&replica.state, "bot", 10).expect("the store reads"),
        [row]
    );
}

#[test]
fn an_admin_grants_a_root_delegation_only_for_a_named_human() {
    let mut replica = Replica::world();
    replica.set_up([register_human("hana")]);
    let for_hana = log::CreateDelegation {
        grantor_human_id: "hana".to_owned(),
        ..d1()
    };
    let (accepted, _) = check_accepted(&mut replica.clone(), for_hana.by(admin()));
    let created = accepted.delegation_created.expect("the grant is returned");
    assert_eq!(
        (
            created.root_human_id.as_str(),
            created.grantor_kind,
            created.grantor_id.as_str(),
            created.depth,
        ),
        ("hana", PrincipalKind::Human as i32, "hana", 1)
    );
    check_rejected(
        replica,
        d1().by(admin()),
        RejectReason::InvalidCommand,
        "grantor_human_id is empty; allowed: the human an admin makes the grant for",
    );
}

#[test]
fn root_delegation_rejections() {
    use RejectReason::*;
    let mut base = Replica::world();
    base.set_up([
        register_human("hana"),
        register_human("dora"),
        set_status(log::EntityKind::Human, "dora", true).by(admin()),
        d1().by(human_actor("hana")),
    ]);
    let hana = human_actor("hana");
    let with = |change: fn(&mut log::CreateDelegation)| {
        let mut body = log::CreateDelegation {
            delegation_id: "d9".to_owned(),
            ..d1()
        };
        change(&mut body);
        body.by(human_actor("hana"))
    };
    let agent_root = "a delegation without a parent is granted by a human (or an admin for one); \
                      an agent delegates onward only under a delegation it holds \
                      (parent_delegation_id)";
    let cases: Vec<(Command, RejectReason, String)> = vec![
        (
            with(|it| it.grantor_human_id = "alice".to_owned()),
            PermissionDenied,
            "human hana may grant only as themself, not as alice".to_owned(),
        ),
        (
            d1().by(agent_actor("bot")),
            PermissionDenied,
            agent_root.to_owned(),
        ),
        (d1().by(node(1)), PermissionDenied, agent_root.to_owned()),
        (
            with(|it| it.scopes = strings(&["send", "view"])),
            ScopeNotAllowed,
            "scope view is not a tool of any granted audience's service; allowed: read send"
                .to_owned(),
        ),
        (
            with(|it| it.audiences = strings(&["https://nowhere"])),
            ServiceNotFound,
            "no service has audience https://nowhere".to_owned(),
        ),
        (
            with(|it| it.audiences = Vec::new()),
            InvalidCommand,
            "audiences has 0 entries; allowed: 1 to 16 service audiences".to_owned(),
        ),
        (
            with(|it| it.audiences = strings(&[MAIL, MAIL])),
            InvalidCommand,
            format!("audiences[1] repeats {MAIL}; allowed: unique audiences"),
        ),
        (
            with(|it| it.grantee_agent_id = "ghost".to_owned()),
            AgentNotFound,
            "agent ghost does not exist".to_owned(),
        ),
        (
            d1().by(human_actor("dora")),
            HumanDisabled,
            "human dora is disabled".to_owned(),
        ),
        (
            log::CreateDelegation {
                grantor_human_id: "ghost".to_owned(),
                ..d1()
            }
            .by(admin()),
            HumanNotFound,
            "human ghost does not exist".to_owned(),
        ),
        (
            log::CreateDelegation {
                task: "another".to_owned(),
                ..d1()
            }
            .by(hana),
            AlreadyExists,
            "delegation d1 already exists".to_owned(),
        ),
    ];
    for (command, reason, message) in cases {
        check_rejected(base.clone(), command, reason, &message);
    }
}

#[test]
fn an_agent_grants_a_narrower_child_that_inherits_the_task() {
    let mut replica = Replica::world();
    replica.set_up([
        register_human("hana"),
        agent("sub", "alice").by(admin()),
        d1().by(human_actor("hana")),
    ]);
    let (accepted, event) = check_accepted(&mut replica, d2().by(agent_actor("bot")));
    let created = log::DelegationCreated {
        delegation_id: "d2".to_owned(),
        parent_delegation_id: "d1".to_owned(),
        root_human_id: "hana".to_owned(),
        grantor_kind: PrincipalKind::Agent as i32,
        grantor_id: "bot".to_owned(),
        grantee_agent_id: "sub".to_owned(),
        scopes: strings(&["read"]),
        audiences: strings(&[MAIL]),
        task: "triage inbox".to_owned(),
        expires_at_unix_s: D2_EXPIRES,
        max_depth: 2,
        depth: 2,
        agent_chain: strings(&["bot", "sub"]),
        budget: None,
    };
    assert_eq!(accepted.delegation_created.as_ref(), Some(&created));
    assert_eq!(event.kind, Some(EventKind::DelegationCreated(created)));
    // A task of its own replaces the inherited one.
    let own_task = log::CreateDelegation {
        delegation_id: "d3".to_owned(),
        task: "summarize only".to_owned(),
        ..d2()
    };
    let (accepted, _) = check_accepted(&mut replica, own_task.by(agent_actor("bot")));
    let created = accepted.delegation_created.expect("the grant is returned");
    assert_eq!(created.task, "summarize only");
}

#[test]
fn child_delegation_bounds_are_inclusive() {
    // Everything at the parent's limit: its expiry, its max_depth, all its scopes and audiences.
    let mut replica = delegation_world();
    let at_limit = log::CreateDelegation {
        delegation_id: "d3".to_owned(),
        grantee_agent_id: "other".to_owned(),
        scopes: strings(&["send", "read"]),
        expires_at_unix_s: D1_EXPIRES,
        max_depth: 3,
        ..d2()
    };
    let (accepted, _) = check_accepted(&mut replica, at_limit.by(agent_actor("bot")));
    let created = accepted.delegation_created.expect("the grant is returned");
    assert_eq!((created.depth, created.max_depth), (2, 3));
    // The deepest grant its max_depth allows.
    let deepest = log::CreateDelegation {
        delegation_id: "d4".to_owned(),
        parent_delegation_id: "d2".to_owned(),
        grantee_agent_id: "other".to_owned(),
        ..d2()
    };
    let mut replica = delegation_world();
    check_rejected(
        replica.clone(),
        deepest.clone().by(agent_actor("sub")),
        RejectReason::DelegationDepthExceeded,
        "the chain would be 3 agents deep; allowed: at most 2 under delegation d2",
    );
    let roomy = log::CreateDelegation {
        delegation_id: "d2b".to_owned(),
        max_depth: 3,
        ..d2()
    };
    check_accepted(&mut replica, roomy.by(agent_actor("bot")));
    let deepest = log::CreateDelegation {
        parent_delegation_id: "d2b".to_owned(),
        max_depth: 3,
        ..deepest
    };
    let (accepted, _) = check_accepted(&mut replica, deepest.by(agent_actor("sub")));
    let created = accepted.delegation_created.expect("the grant is returned");
    assert_eq!(created.depth, 3);
    assert_eq!(created.agent_chain, strings(&["bot", "sub", "other"]));
    // A root grant for the longest lifetime and the deepest chain allowed.
    let longest = log::CreateDelegation {
        delegation_id: "d5".to_owned(),
        expires_at_unix_s: NOW_S + limits::DELEGATION_TTL_SECONDS_MAX,
        max_depth: limits::DELEGATION_DEPTH_MAX,
        ..d1()
    };
    check_accepted(&mut replica, longest.by(human_actor("hana")));
}

#[test]
fn child_delegation_rejections() {
    use RejectReason::*;
    let base = delegation_world();
    let next_seq = base.seq() + 1;
    let under = |parent: &str, grantee: &str| log::CreateDelegation {
        delegation_id: "d3".to_owned(),
        parent_delegation_id: parent.to_owned(),
        grantee_agent_id: grantee.to_owned(),
        ..d2()
    };
    let bot = || agent_actor("bot");
    let expiry_rule = format!(
        "allowed: a time after now and at most 2592000 s ahead (up to {})",
        NOW_S + limits::DELEGATION_TTL_SECONDS_MAX
    );
    let revoke_d1 = || revoke_delegation("d1").by(human_actor("hana"));
    let brief = log::CreateDelegation {
        delegation_id: "brief".to_owned(),
        expires_at_unix_s: T0_S + 60,
        ..d1()
    };
    let cases: Vec<(Vec<Command>, Command, RejectReason, String)> = vec![
        (
            vec![],
            log::CreateDelegation {
                scopes: strings(&["read", "view"]),
                ..under("d1", "other")
            }
            .by(bot()),
            ScopeExceedsParent,
            "scope view is not in parent delegation d1; allowed: a subset of send read".to_owned(),
        ),
        (
            vec![],
            log::CreateDelegation {
                audiences: strings(&[MAIL, CAL]),
                ..under("d1", "other")
            }
            .by(bot()),
            AudienceExceedsParent,
            format!("audience {CAL} is not in parent delegation d1; allowed: a subset of {MAIL}"),
        ),
        (
            vec![],
            log::CreateDelegation {
                expires_at_unix_s: D1_EXPIRES + 1,
                ..under("d1", "other")
            }
            .by(bot()),
            ExpiryExceedsParent,
            format!(
                "expiry {} is after parent delegation d1's {D1_EXPIRES}; allowed: at most {D1_EXPIRES}",
                D1_EXPIRES + 1
            ),
        ),
        (
            vec![],
            under("d2", "other").by(agent_actor("sub")),
            DelegationDepthExceeded,
            "the chain would be 3 agents deep; allowed: at most 2 under delegation d2".to_owned(),
        ),
        (
            vec![],
            log::CreateDelegation {
                max_depth: 4,
                ..under("d1", "other")
            }
            .by(bot()),
            DelegationDepthExceeded,
            "max_depth 4 is above the parent's 3; allowed: 2 to 3".to_owned(),
        ),
        (
            vec![],
            log::CreateDelegation {
                max_depth: 1,
                ..under("d1", "other")
            }
            .by(bot()),
            InvalidCommand,
            "max_depth is 1 but this grant is at depth 2; allowed: 2 to 3".to_owned(),
        ),
        (
            vec![],
            under("d2", "bot").by(agent_actor("sub")),
            DelegationCycle,
            "agent bot is already in the chain bot -> sub; allowed: an agent not yet in it"
                .to_owned(),
        ),
        (
            vec![],
            under("d1", "bot").by(bot()),
            DelegationCycle,
            "agent bot is already in the chain bot; allowed: an agent not yet in it".to_owned(),
        ),
        (
            vec![],
            under("d1", "other").by(agent_actor("other")),
            PermissionDenied,
            "only agent bot, which holds delegation d1, may delegate under it".to_owned(),
        ),
        (
            vec![],
            under("d1", "other").by(agent_actor("sub")),
            PermissionDenied,
            "only agent bot, which holds delegation d1, may delegate under it".to_owned(),
        ),
        (
            vec![],
            under("d1", "other").by(human_actor("hana")),
            PermissionDenied,
            "only agent bot, which holds delegation d1, may delegate under it".to_owned(),
        ),
        (
            vec![],
            under("d1", "other").by(admin()),
            PermissionDenied,
            "only agent bot, which holds delegation d1, may delegate under it".to_owned(),
        ),
        (
            vec![revoke_d1()],
            under("d1", "other").by(bot()),
            DelegationInactive,
            format!("delegation d1 was revoked at seq {next_seq}"),
        ),
        // Revoking the root reaches every grant below it.
        (
            vec![revoke_d1()],
            under("d2", "other").by(agent_actor("sub")),
            DelegationInactive,
            format!("delegation d1 was revoked at seq {next_seq}"),
        ),
        (
            vec![brief.by(human_actor("hana"))],
            under("brief", "other").by(bot()),
            DelegationInactive,
            format!("delegation brief expired at {}", T0_S + 60),
        ),
        (
            vec![set_status(log::EntityKind::Agent, "bot", true).by(admin())],
            under("d2", "other").by(agent_actor("sub")),
            DelegationInactive,
            "agent bot is disabled".to_owned(),
        ),
        (
            vec![set_status(log::EntityKind::Human, "hana", true).by(admin())],
            under("d1", "other").by(bot()),
            DelegationInactive,
            "human hana is disabled".to_owned(),
        ),
        (
            vec![],
            under("nope", "other").by(bot()),
            DelegationNotFound,
            "delegation nope does not exist".to_owned(),
        ),
        (
            vec![],
            log::CreateDelegation {
                expires_at_unix_s: NOW_S,
                ..under("d1", "other")
            }
            .by(bot()),
            InvalidCommand,
            format!("expires_at_unix_s is {NOW_S} (now {NOW_S}); {expiry_rule}"),
        ),
        (
            vec![],
            log::CreateDelegation {
                expires_at_unix_s: T0_S,
                ..under("d1", "other")
            }
            .by(bot()),
            InvalidCommand,
            format!("expires_at_unix_s is {T0_S} (now {NOW_S}); {expiry_rule}"),
        ),
        (
            vec![],
            log::CreateDelegation {
                expires_at_unix_s: NOW_S + limits::DELEGATION_TTL_SECONDS_MAX + 1,
                ..under("d1", "other")
            }
            .by(bot()),
            InvalidCommand,
            format!(
                "expires_at_unix_s is {} (now {NOW_S}); {expiry_rule}",
                NOW_S + limits::DELEGATION_TTL_SECONDS_MAX + 1
            ),
        ),
        (
            vec![],
            log::CreateDelegation {
                max_depth: 0,
                ..under("d1", "other")
            }
            .by(bot()),
            InvalidCommand,
            "max_depth is 0; allowed: 1 to 8".to_owned(),
        ),
        (
            vec![],
            log::CreateDelegation {
                max_depth: 9,
                ..under("d1", "other")
            }
            .by(bot()),
            InvalidCommand,
            "max_depth is 9; allowed: 1 to 8".to_owned(),
        ),
        (
            vec![set_status(log::EntityKind::Agent, "other", true).by(admin())],
            under("d1", "other").by(bot()),
            AgentDisabled,
            "agent other is disabled".to_owned(),
        ),
        (
            vec![],
            log::CreateDelegation {
                delegation_id: "d2".to_owned(),
                ..under("d1", "other")
            }
            .by(bot()),
            AlreadyExists,
            "delegation d2 already exists".to_owned(),
        ),
    ];
    for (set_up, command, reason, message) in cases {
        let mut replica = base.clone();
        replica.set_up(set_up);
        check_rejected(replica, command, reason, &message);
    }
}

#[test]
fn revoke_delegation_by_anyone_above_it_or_its_grantee() {
    let actors = [
        admin(),
        human_actor("hana"),
        agent_actor("bot"),
        agent_actor("sub"),
    ];
    for actor in actors {
        let mut replica = delegation_world();
        let (accepted, event) =
            check_accepted(&mut replica, revoke_delegation("d2").by(actor.clone()));
        assert_eq!(
            event.kind,
            Some(EventKind::DelegationRevoked(log::DelegationRevoked {
                delegation_id: "d2".to_owned(),
                reason: "task done".to_owned(),
            }))
        );
        let row = query::delegation(&replica.state, "d2")
            .expect("the store reads")
            .expect("d2 exists");
        assert_eq!(
            (row.revoked, row.revoked_seq, row.revoke_reason.as_str()),
            (true, accepted.seq, "task done")
        );
        check_unchanged(
            &mut replica,
            revoke_delegation("d2").by(admin()).key("again"),
        );
    }
    use RejectReason::*;
    let cases = [
        (
            revoke_delegation("d1").by(agent_actor("sub")),
            PermissionDenied,
            "only an admin, human hana or an agent in the chain bot may revoke delegation d1",
        ),
        (
            revoke_delegation("d2").by(human_actor("alice")),
            PermissionDenied,
            "only an admin, human hana or an agent in the chain bot -> sub may revoke delegation d2",
        ),
        (
            revoke_delegation("d2").by(agent_actor("other")),
            PermissionDenied,
            "only an admin, human hana or an agent in the chain bot -> sub may revoke delegation d2",
        ),
        (
            revoke_delegation("nope").by(admin()),
            DelegationNotFound,
            "delegation nope does not exist",
        ),
    ];
    for (command, reason, message) in cases {
        check_rejected(delegation_world(), command, reason, message);
    }
}
