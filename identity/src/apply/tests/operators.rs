//! Named operators and their roles; the bootstrap admin's retirement.

use super::*;

/// Applies `command`, which must be refused before any handler for `reason` (and, when given,
/// with a message that contains `message`), changing nothing: the caller did not authenticate.
fn refused_unrecorded(mut replica: Replica, command: Command, reason: RejectReason, message: &str) {
    let digest_before = replica.digest();
    let context = format!("{command:?}");
    let applied = replica.apply(T1, vec![command]);
    let rejection = rejection_of(&applied, &context);
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

/// Applies `command`, which its handler must refuse for `reason` (and, when given, with a message
/// that contains `message`): one `CommandRejected` event with that reason, and a retry adds
/// nothing.
fn denied_recorded(mut replica: Replica, command: Command, reason: RejectReason, message: &str) {
    let context = format!("{command:?}");
    let applied = replica.apply(T1, vec![command.clone()]);
    let rejection = rejection_of(&applied, &context);
    assert_eq!(rejection.reason, reason as i32, "{context}: {rejection:?}");
    assert!(
        rejection.message.contains(message),
        "{context}: {rejection:?}"
    );
    let [event] = applied.events.as_slice() else {
        panic!("{context}: expected one event, got {:?}", applied.events);
    };
    let Some(EventKind::CommandRejected(recorded)) = &event.kind else {
        panic!("{context}: expected CommandRejected, got {event:?}");
    };
    assert_eq!(
        (recorded.reason, &recorded.message),
        (rejection.reason, &rejection.message)
    );
    let retried = replica.apply(T1, vec![command]);
    assert_eq!(retried.outcomes, applied.outcomes, "{context}");
    assert!(
        retried.events.is_empty() && retried.writes.is_empty(),
        "{context}"
    );
}

fn rejection_of(applied: &AppliedBatch, context: &str) -> log::Rejected {
    let Some(log::outcome::Result::Rejected(rejection)) = &applied.outcomes[0].result else {
        panic!("accepted: {context}");
    };
    rejection.clone()
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
        refused_unrecorded(
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
        denied_recorded(
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
    denied_recorded(
        with_token,
        log::RevokeToken {
            jti: "t1".to_owned(),
            reason: "audit".to_owned(),
        }
        .by(operator("audit")),
        RejectReason::PermissionDenied,
        "",
    );
    denied_recorded(
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
        denied_recorded(
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
    refused_unrecorded(
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
    refused_unrecorded(
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
        denied_recorded(
            replica.clone(),
            register_operator(id, role).by(admin()),
            RejectReason::InvalidCommand,
            "",
        );
    }
}
