//! Named operators and their roles; the bootstrap admin's retirement.

use super::*;

/// Applies `command`, which must be refused for `reason` (and, when given, with a message that
/// contains `message`), changing nothing.
fn check_refused(mut replica: Replica, command: Command, reason: RejectReason, message: &str) {
    let digest_before = replica.digest();
    let context = format!("{command:?}");
    let applied = replica.apply(T1, vec![command]);
    let Some(log::outcome::Result::Rejected(rejection)) = &applied.outcomes[0].result else {
        panic!("accepted: {context}");
    };
    assert_eq!(rejection.reason, reason as i32, "{context}: {rejection:?}");
    assert!(
        rejection.message.contains(message),
        "{context}: {rejection:?}"
    );
    assert!(
        applied.events.is_empty() && applied.writes.is_empty(),
        "{context}"
    );
    assert_eq!(replica.digest(), digest_before);
}

fn operator(id: &str) -> Actor {
    actor(PrincipalKind::Operator, id)
}

fn register_operator(id: &str, role: log::OperatorRole) -> log::RegisterOperator {
    log::RegisterOperator {
        operator_id: id.to_owned(),
        role: role as i32,
        display_name: format!("Operator {id}"),
    }
}

/// A world with operators root (admin), ops (operator) and audit (auditor), registered by the
/// bootstrap admin (root) and then by root.
fn operated_world() -> Replica {
    let mut replica = Replica::world();
    check_accepted(
        &mut replica,
        register_operator("root", log::OperatorRole::Admin).by(admin()),
    );
    for (id, role) in [
        ("ops", log::OperatorRole::Operator),
        ("audit", log::OperatorRole::Auditor),
    ] {
        check_accepted(
            &mut replica,
            register_operator(id, role).by(operator("root")),
        );
    }
    replica
}

#[test]
fn the_bootstrap_admin_registers_the_first_operator_and_then_acts_no_more() {
    let mut replica = Replica::world();
    let (_, event) = check_accepted(
        &mut replica,
        register_operator("root", log::OperatorRole::Admin).by(admin()),
    );
    assert_eq!(
        event.kind,
        Some(EventKind::OperatorRegistered(log::OperatorRegistered {
            operator_id: "root".to_owned(),
            role: log::OperatorRole::Admin as i32,
            display_name: "Operator root".to_owned(),
        }))
    );
    let refused = "the bootstrap admin token only registers the first operator";
    for command in [
        human("mallory").by(admin()),
        register_operator("second", log::OperatorRole::Admin).by(admin()),
    ] {
        check_refused(
            replica.clone(),
            command,
            RejectReason::PermissionDenied,
            refused,
        );
    }
    // The operator acts, and its events name it.
    let (_, event) = check_accepted(&mut replica, human("carol").by(operator("root")));
    assert_eq!(event.actor, Some(operator("root")));
}

#[test]
fn each_role_does_what_it_may_and_nothing_else() {
    let replica = operated_world();
    let denied = |who: &str| {
        check_refused(
            replica.clone(),
            human("mallory").by(operator(who)),
            RejectReason::PermissionDenied,
            "only an admin may register humans",
        );
    };
    denied("ops");
    denied("audit");
    let mut with_token = replica.clone();
    check_accepted(
        &mut with_token,
        issue("t1", "bot", &["read"]).by(agent_actor("bot")),
    );
    check_refused(
        with_token,
        log::RevokeToken {
            jti: "t1".to_owned(),
            reason: "audit".to_owned(),
        }
        .by(operator("audit")),
        RejectReason::PermissionDenied,
        "",
    );
    check_refused(
        replica.clone(),
        register_operator("x", log::OperatorRole::Admin).by(operator("ops")),
        RejectReason::PermissionDenied,
        "only an admin may register operators",
    );
}

#[test]
fn an_operator_cannot_publish_keys_for_a_node() {
    let replica = operated_world();
    for who in ["root", "ops"] {
        check_refused(
            replica.clone(),
            log::PublishSigningKey {
                node_id: 2,
                ..signing_key("k9", 9)
            }
            .by(operator(who)),
            RejectReason::PermissionDenied,
            "",
        );
    }
}

#[test]
fn unknown_and_disabled_operators_act_as_no_one() {
    let mut replica = operated_world();
    check_refused(
        replica.clone(),
        human("x").by(operator("ghost")),
        RejectReason::PermissionDenied,
        "no operator ghost is registered",
    );
    check_accepted(
        &mut replica,
        log::SetStatus {
            entity: log::EntityKind::Operator as i32,
            id: "root".to_owned(),
            disabled: true,
            reason: "left".to_owned(),
        }
        .by(operator("root")),
    );
    check_refused(
        replica,
        human("x").by(operator("root")),
        RejectReason::CredentialRevoked,
        "operator root is disabled",
    );
}

#[test]
fn operator_ids_are_dns_labels_and_roles_are_named() {
    let replica = Replica::world();
    for (id, role) in [
        ("Root", log::OperatorRole::Admin),
        ("-root", log::OperatorRole::Admin),
        ("root-", log::OperatorRole::Admin),
        ("ro.ot", log::OperatorRole::Admin),
        ("root", log::OperatorRole::Unspecified),
    ] {
        check_refused(
            replica.clone(),
            register_operator(id, role).by(admin()),
            RejectReason::InvalidCommand,
            "",
        );
    }
}
