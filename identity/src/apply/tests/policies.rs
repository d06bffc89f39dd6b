//! Access policy versions (publish, activate, roll back, shadow) and issuance under the active
//! version.

use sha2::Digest;
use warrant_proto::{
    log::command::Kind as CommandKind,
    state::{PolicyActivationRow, PolicyVersionRow},
};

use super::*;
use crate::{limits, policy};

const PAY: &str = "https://pay.example";

/// "Agents of kind research may not delegate payments tools", and no agent may be given a
/// token for sending mail on hana's behalf.
const RULES: &str = r#"@id("no-research-payments")
forbid(principal, action == Action::"delegate", resource in Service::"payments")
when { context has grantee && context.grantee.kind == "research" };

@id("no-mail-for-hana")
forbid(principal, action == Action::"issue", resource == Tool::"mail/send")
when { context has human && context.human == Human::"hana" };
"#;

fn publish_body(text: &str, description: &str) -> log::PublishPolicy {
    log::PublishPolicy {
        text: text.to_owned(),
        description: description.to_owned(),
        attributes: Vec::new(),
    }
}

fn publish(text: &str) -> Command {
    command(
        admin(),
        Some(CommandKind::PublishPolicy(publish_body(text, ""))),
    )
}

/// Activating `version`, under its own idempotency key `key`.
fn activate(version: u32, key: &str) -> Command {
    command(
        admin(),
        Some(CommandKind::ActivatePolicy(log::ActivatePolicy { version })),
    )
    .key(key)
}

fn rollback(key: &str) -> Command {
    command(
        admin(),
        Some(CommandKind::RollbackPolicy(log::RollbackPolicy {})),
    )
    .key(key)
}

fn shadow(version: u32, key: &str) -> Command {
    command(
        admin(),
        Some(CommandKind::SetShadowPolicy(log::SetShadowPolicy {
            version,
        })),
    )
    .key(key)
}

fn activation(replica: &Replica) -> PolicyActivationRow {
    query::policy_activation(&replica.state).unwrap()
}

/// Applies `command` and checks it is refused as POLICY_INVALID with errors at `positions`
/// (line, column, policy id), and that no policy row was written.
fn check_invalid(mut replica: Replica, command: Command, positions: &[(u32, u32, &str)]) {
    let before = activation(&replica);
    let applied = replica.apply(T1, vec![command]);
    let Some(OutcomeResult::Rejected(rejected)) = &applied.outcomes[0].result else {
        panic!("expected a rejection, got {:?}", applied.outcomes);
    };
    assert_eq!(
        rejected.reason,
        RejectReason::PolicyInvalid as i32,
        "{rejected:?}"
    );
    let actual: Vec<(u32, u32, &str)> = rejected
        .policy_errors
        .iter()
        .map(|it| (it.line, it.column, it.policy_id.as_str()))
        .collect();
    assert_eq!(actual, positions, "{rejected:#?}");
    let first = &rejected.policy_errors[0];
    assert!(
        rejected.message.contains(&format!(
            "line {}, column {}: {}",
            first.line, first.column, first.message
        )),
        "{rejected:?}"
    );
    let policy_rows = applied.writes.ops.keys().filter(|key| {
        key.starts_with(keys::POLICY_VERSION_PREFIX) || key.as_slice() == keys::POLICY_ACTIVATION
    });
    assert_eq!(policy_rows.count(), 0);
    assert_eq!(activation(&replica), before);
}

// PublishPolicy.

#[test]
fn publishing_numbers_versions_and_stores_the_full_text() {
    let mut replica = Replica::world();
    let (accepted, event) = check_accepted(&mut replica, publish(RULES));
    assert_eq!(accepted.policy_version, 1);
    let published = log::PolicyPublished {
        version: 1,
        text: RULES.to_owned(),
        description: String::new(),
        attributes: Vec::new(),
        text_sha256: sha2::Sha256::digest(RULES.as_bytes()).to_vec(),
        policy_ids: strings(&["no-mail-for-hana", "no-research-payments"]),
    };
    assert_eq!(
        event.kind,
        Some(EventKind::PolicyPublished(published.clone()))
    );
    assert_eq!(
        query::policy_version(&replica.state, 1).unwrap(),
        Some(PolicyVersionRow {
            published: Some(published),
            published_seq: accepted.seq,
            published_unix_ms: T1,
        })
    );
    // Published is not active.
    assert_eq!(
        activation(&replica),
        PolicyActivationRow {
            latest_version: 1,
            ..Default::default()
        }
    );
    assert!(policy::active(&replica.state).unwrap().is_none());

    let again = command(
        admin(),
        Some(CommandKind::PublishPolicy(publish_body(
            RULES,
            "the same, again",
        ))),
    );
    let (accepted, _) = check_accepted(&mut replica, again);
    assert_eq!(accepted.policy_version, 2);
    let listed: Vec<u32> = query::list_policy_versions(&replica.state, 0, 10)
        .unwrap()
        .iter()
        .map(|it| it.published.as_ref().unwrap().version)
        .collect();
    assert_eq!(listed, [1, 2]);
    let after_first = query::list_policy_versions(&replica.state, 1, 10).unwrap();
    assert_eq!(after_first.len(), 1);
    assert!(
        query::list_policy_versions(&replica.state, u32::MAX, 10)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn only_an_admin_publishes_activates_and_marks_shadow() {
    let mut replica = Replica::world();
    replica.set_up([publish(RULES)]);
    let bodies = [
        (
            CommandKind::PublishPolicy(publish_body(RULES, "")),
            "publish a policy version",
        ),
        (
            CommandKind::ActivatePolicy(log::ActivatePolicy { version: 1 }),
            "activate a policy version",
        ),
        (
            CommandKind::RollbackPolicy(log::RollbackPolicy {}),
            "roll back the policy version",
        ),
        (
            CommandKind::SetShadowPolicy(log::SetShadowPolicy { version: 1 }),
            "mark a policy version shadow",
        ),
    ];
    for (body, what) in bodies {
        check_rejected(
            replica.clone(),
            command(human_actor("alice"), Some(body)),
            RejectReason::PermissionDenied,
            &format!("only an admin may {what}"),
        );
    }
}

#[test]
fn an_invalid_text_is_refused_with_every_position() {
    let replica = Replica::world();
    check_invalid(
        replica.clone(),
        publish("permit(principal, action, resource);\nforbid(principal action, resource);"),
        &[(2, 18, "")],
    );
    let schema_errors = concat!(
        "@id(\"unknown-attribute\")\n",
        "forbid(principal, action == Action::\"call\", resource) when { principal.colour == \"red\" };\n",
        "@id(\"wrong-type\")\n",
        "forbid(principal, action, resource) when { context.depth == \"deep\" };\n",
        "@id(\"unknown-entity-type\")\n",
        "forbid(principal, action, resource) when { resource in Printer::\"p\" };\n",
    );
    check_invalid(
        replica.clone(),
        publish(schema_errors),
        &[
            (2, 62, "unknown-attribute"),
            (4, 44, "wrong-type"),
            (6, 56, "unknown-entity-type"),
        ],
    );
    check_invalid(
        replica,
        publish("@id(\"warrant.delegation\") forbid(principal, action, resource);"),
        &[(1, 1, "warrant.delegation")],
    );
}

#[test]
fn size_and_count_limits_are_refused_as_invalid() {
    let replica = Replica::world();
    let mebibyte = format!(
        "forbid(principal, action, resource);{}",
        " ".repeat(1024 * 1024)
    );
    check_invalid(replica.clone(), publish(&mebibyte), &[(0, 0, "")]);
    let too_many =
        "forbid(principal, action, resource);\n".repeat(limits::POLICIES_PER_SET_MAX + 1);
    check_invalid(replica.clone(), publish(&too_many), &[(1025, 1, "")]);
    // At the limit, it is accepted.
    let at_limit = "forbid(principal, action, resource);\n".repeat(limits::POLICIES_PER_SET_MAX);
    let (accepted, _) = check_accepted(&mut replica.clone(), publish(&at_limit));
    assert_eq!(accepted.policy_version, 1);
    // Field rules of the declaration are INVALID_COMMAND, like every other field.
    let twice = log::PublishPolicy {
        attributes: vec![
            log::PolicyAttribute {
                name: "amount".to_owned(),
                r#type: log::PolicyAttributeType::Long as i32,
            };
            2
        ],
        ..publish_body("", "")
    };
    check_rejected(
        replica,
        command(admin(), Some(CommandKind::PublishPolicy(twice))),
        RejectReason::InvalidCommand,
        "attributes[1].name repeats amount; allowed: attribute names unique within the version",
    );
}

#[test]
fn publishing_is_deterministic() {
    let text =
        format!("{RULES}\nforbid(principal, action, resource) when {{ principal.colour == 1 }};\n");
    for text in [RULES.to_owned(), text] {
        let applied: Vec<AppliedBatch> = (0..2)
            .map(|_| Replica::world().apply(T1, vec![publish(&text)]))
            .collect();
        assert_eq!(applied[0], applied[1]);
        let bytes: Vec<Vec<u8>> = applied
            .iter()
            .map(|it| it.outcomes[0].encode_to_vec())
            .collect();
        assert_eq!(bytes[0], bytes[1]);
    }
}

// ActivatePolicy, RollbackPolicy, SetShadowPolicy.

#[test]
fn activation_and_rollback() {
    let mut replica = Replica::world();
    replica.set_up([
        publish(RULES),
        command(
            admin(),
            Some(CommandKind::PublishPolicy(publish_body(RULES, "v2"))),
        ),
    ]);
    check_rejected(
        replica.clone(),
        activate(3, "a3"),
        RejectReason::PolicyVersionNotFound,
        "policy version 3 was never published; allowed: versions 1 to 2",
    );
    check_rejected(
        replica.clone(),
        activate(0, "a0"),
        RejectReason::InvalidCommand,
        "version is 0; allowed: a published version, numbered from 1",
    );
    check_rejected(
        replica.clone(),
        rollback("r0"),
        RejectReason::PolicyNoPreviousVersion,
        "no policy version is active; allowed: a rollback after an activation replaced a version",
    );

    let (accepted, event) = check_accepted(&mut replica, activate(1, "a1"));
    assert_eq!(accepted.policy_version, 1);
    let activated = |version, previous_version, rollback| {
        Some(EventKind::PolicyActivated(log::PolicyActivated {
            version,
            previous_version,
            rollback,
        }))
    };
    assert_eq!(event.kind, activated(1, 0, false));
    assert_eq!(policy::active(&replica.state).unwrap().unwrap().0, 1);
    // Activating the active version again changes nothing.
    check_unchanged(&mut replica, activate(1, "a1-again"));

    let (_, event) = check_accepted(&mut replica, activate(2, "a2"));
    assert_eq!(event.kind, activated(2, 1, false));
    let (seq, row) = (replica.seq(), activation(&replica));
    assert_eq!(
        row,
        PolicyActivationRow {
            active_version: 2,
            shadow_version: 0,
            previous_versions: vec![1],
            latest_version: 2,
            activated_seq: seq,
        }
    );

    let (accepted, event) = check_accepted(&mut replica, rollback("r1"));
    assert_eq!(accepted.policy_version, 1);
    assert_eq!(event.kind, activated(1, 2, true));
    assert_eq!(activation(&replica).previous_versions, Vec::<u32>::new());
    check_rejected(
        replica,
        rollback("r2"),
        RejectReason::PolicyNoPreviousVersion,
        "no version was active before version 1; allowed: a rollback after an activation \
         replaced a version",
    );
}

#[test]
fn rollback_history_is_bounded() {
    let mut replica = Replica::world();
    replica.set_up([
        publish(RULES),
        command(
            admin(),
            Some(CommandKind::PublishPolicy(publish_body(RULES, "v2"))),
        ),
    ]);
    let switches = limits::POLICY_ROLLBACK_DEPTH_MAX + 10;
    for idx in 0..switches {
        let version = 1 + (idx % 2) as u32;
        replica.set_up([activate(version, &format!("a{idx}"))]);
    }
    let row = activation(&replica);
    assert_eq!(
        row.previous_versions.len(),
        limits::POLICY_ROLLBACK_DEPTH_MAX
    );
    // The last activation was of version 2 (odd count of switches ends on an even index).
    assert_eq!(row.active_version, 1 + ((switches - 1) % 2) as u32);
}

#[test]
fn shadow_is_marked_replaced_and_cleared() {
    let mut replica = Replica::world();
    replica.set_up([publish(RULES)]);
    check_rejected(
        replica.clone(),
        shadow(7, "s7"),
        RejectReason::PolicyVersionNotFound,
        "policy version 7 was never published; allowed: version 1",
    );
    // Clearing when none is marked changes nothing.
    check_unchanged(&mut replica, shadow(0, "s0-first"));
    let (accepted, event) = check_accepted(&mut replica, shadow(1, "s1"));
    assert_eq!(accepted.policy_version, 1);
    assert_eq!(
        event.kind,
        Some(EventKind::ShadowPolicySet(log::ShadowPolicySet {
            version: 1,
            previous_version: 0,
        }))
    );
    assert_eq!(policy::shadow(&replica.state).unwrap().unwrap().0, 1);
    // Shadow is not active.
    assert!(policy::active(&replica.state).unwrap().is_none());
    check_unchanged(&mut replica, shadow(1, "s1-again"));
    let (_, event) = check_accepted(&mut replica, shadow(0, "s0"));
    assert_eq!(
        event.kind,
        Some(EventKind::ShadowPolicySet(log::ShadowPolicySet {
            version: 0,
            previous_version: 1,
        }))
    );
    assert!(policy::shadow(&replica.state).unwrap().is_none());
}

#[test]
fn an_activation_naming_an_unpublished_version_is_a_corrupt_store() {
    let mut replica = Replica::world();
    replica.put_row(
        keys::POLICY_ACTIVATION.to_vec(),
        &PolicyActivationRow {
            active_version: 3,
            ..Default::default()
        },
    );
    let error = policy::active(&replica.state).unwrap_err();
    assert_eq!(
        error.to_string(),
        "corrupt row pa: names policy version 3, which was never published"
    );
}

// Issuance under the active version.

/// The world plus human hana, service payments (transfer, refund), agents researcher (kind
/// research) and helper, and hana's grant d1 to bot over mail and payments.
fn payments_world() -> Replica {
    let mut replica = Replica::world();
    replica.set_up([
        register_human("hana"),
        service("payments", PAY, &["transfer", "refund"]).by(admin()),
        log::RegisterAgent {
            kind: "research".to_owned(),
            ..agent("researcher", "alice")
        }
        .by(admin()),
        agent("helper", "alice").by(admin()),
        log::CreateDelegation {
            scopes: strings(&["send", "read", "transfer", "refund"]),
            audiences: strings(&[MAIL, PAY]),
            ..d1()
        }
        .by(human_actor("hana")),
    ]);
    replica
}

/// hana's grant of payments `scopes` to `grantee`.
fn payments_grant(delegation_id: &str, grantee: &str, scopes: &[&str]) -> log::CreateDelegation {
    log::CreateDelegation {
        delegation_id: delegation_id.to_owned(),
        grantee_agent_id: grantee.to_owned(),
        scopes: strings(scopes),
        audiences: strings(&[PAY]),
        ..d1()
    }
}

/// bot's grant under d1 of payments `scopes` to `grantee`.
fn child_grant(delegation_id: &str, grantee: &str, scopes: &[&str]) -> log::CreateDelegation {
    log::CreateDelegation {
        parent_delegation_id: "d1".to_owned(),
        max_depth: 2,
        expires_at_unix_s: D2_EXPIRES,
        ..payments_grant(delegation_id, grantee, scopes)
    }
}

/// The issuance commands [`RULES`] refuses, once active.
fn refused_by_rules() -> Vec<(Command, &'static str)> {
    vec![
        (
            log::CreateDelegation {
                audiences: strings(&[MAIL, PAY]),
                ..payments_grant("d-r", "researcher", &["read", "transfer"])
            }
            .by(human_actor("hana")),
            "policy version 1 forbids action delegate on tool payments/transfer: \
             no-research-payments",
        ),
        (
            child_grant("d-rc", "researcher", &["refund"]).by(agent_actor("bot")),
            "policy version 1 forbids action delegate on tool payments/refund: \
             no-research-payments",
        ),
        (
            delegated("j-send", "bot", "d1", &["read", "send"]).by(agent_actor("bot")),
            "policy version 1 forbids action issue on tool mail/send: no-mail-for-hana",
        ),
    ]
}

#[test]
fn the_active_version_forbids_issuance_and_delegation() {
    let mut replica = payments_world();
    replica.set_up([publish(RULES), activate(1, "a1")]);
    for (command, message) in refused_by_rules() {
        check_rejected(
            replica.clone(),
            command,
            RejectReason::PolicyForbidden,
            message,
        );
    }
    // What no policy forbids goes through: another agent, another tool, a token for itself.
    check_accepted(
        &mut replica,
        payments_grant("d-h", "helper", &["transfer"]).by(human_actor("hana")),
    );
    check_accepted(
        &mut replica,
        child_grant("d-hc", "helper", &["refund"]).by(agent_actor("bot")),
    );
    check_accepted(
        &mut replica,
        delegated("j-read", "bot", "d1", &["read"]).by(agent_actor("bot")),
    );
    check_accepted(
        &mut replica,
        issue("j-own", "bot", &["send"]).by(agent_actor("bot")),
    );
}

#[test]
fn an_exchange_is_an_issuance_too() {
    let mut replica = payments_world();
    replica.set_up([
        publish(RULES),
        activate(1, "a1"),
        human_session("hs1", "hana", "hj").by(human_actor("hana")),
    ]);
    let send = log::IssueToken {
        scopes: strings(&["send"]),
        ..exchange("x1", "bot", "d1", "hj")
    };
    check_rejected(
        replica.clone(),
        send.by(agent_actor("bot")),
        RejectReason::PolicyForbidden,
        "policy version 1 forbids action issue on tool mail/send: no-mail-for-hana",
    );
    check_accepted(
        &mut replica,
        exchange("x2", "bot", "d1", "hj").by(agent_actor("bot")),
    );
}

#[test]
fn without_an_active_version_the_delegation_decides() {
    // Published, and marked shadow, but not active: nothing is enforced.
    let mut published = payments_world();
    published.set_up([publish(RULES), shadow(1, "s1")]);
    // Active, then rolled back to nothing active? A rollback needs a previous version; activate
    // an empty set instead, which forbids nothing.
    let mut replaced = payments_world();
    replaced.set_up([
        publish(RULES),
        activate(1, "a1"),
        command(
            admin(),
            Some(CommandKind::PublishPolicy(publish_body("", "empty"))),
        ),
        activate(2, "a2"),
    ]);
    for mut replica in [payments_world(), published, replaced] {
        for (command, _) in refused_by_rules() {
            check_accepted(&mut replica, command);
        }
    }
}

#[test]
fn a_rollback_restores_the_earlier_rules() {
    let mut replica = payments_world();
    replica.set_up([
        command(
            admin(),
            Some(CommandKind::PublishPolicy(publish_body("", "empty"))),
        ),
        publish(RULES),
        activate(2, "a2"),
        activate(1, "a1"),
    ]);
    let (command, _) = refused_by_rules().remove(0);
    check_accepted(&mut replica.clone(), command.clone());
    replica.set_up([rollback("r1")]);
    check_rejected(
        replica,
        command,
        RejectReason::PolicyForbidden,
        "policy version 2 forbids action delegate on tool payments/transfer: \
         no-research-payments",
    );
}

#[test]
fn a_policy_that_fails_to_evaluate_refuses_issuance() {
    let mut replica = payments_world();
    // The batch stamp cubed overflows a Long: a run-time error strict validation allows.
    let overflowing = r#"@id("overflows")
forbid(principal, action == Action::"issue", resource)
when { context.time * context.time * context.time > 0 };
"#;
    replica.set_up([publish(overflowing), activate(1, "a1")]);
    let applied = replica.apply(
        T1,
        vec![issue("j1", "bot", &["send"]).by(agent_actor("bot"))],
    );
    let Some(OutcomeResult::Rejected(rejected)) = &applied.outcomes[0].result else {
        panic!("expected a rejection, got {:?}", applied.outcomes);
    };
    assert_eq!(
        rejected.reason,
        RejectReason::PolicyError as i32,
        "{rejected:?}"
    );
    assert!(
        rejected.message.starts_with(
            "policy version 1 could not be evaluated for action issue on tool mail/send, so it \
             is refused (fail closed): overflows: "
        ),
        "{rejected:?}"
    );
    // The refusal is an audit fact: one CommandRejected event, no token.
    let [event] = applied.events.as_slice() else {
        panic!(
            "expected one CommandRejected event, got {:?}",
            applied.events
        );
    };
    assert!(
        matches!(&event.kind, Some(EventKind::CommandRejected(it)) if it.reason == RejectReason::PolicyError as i32),
        "{event:?}"
    );
}
