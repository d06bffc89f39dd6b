//! Disabling and enabling, and what it does to what was issued before.

use super::*;

// SetStatus.

#[test]
fn an_agent_is_disabled_and_enabled_again() {
    let mut replica = Replica::world();
    let status_changed = |disabled: bool| {
        Some(EventKind::StatusChanged(log::StatusChanged {
            entity: log::EntityKind::Agent as i32,
            id: "bot".to_owned(),
            disabled,
            reason: "offboarding".to_owned(),
        }))
    };
    let (accepted, event) = check_accepted(
        &mut replica,
        set_status(log::EntityKind::Agent, "bot", true).by(admin()),
    );
    assert!(accepted.changed);
    assert_eq!(event.kind, status_changed(true));
    check_unchanged(
        &mut replica,
        set_status(log::EntityKind::Agent, "bot", true).by(human_actor("alice")),
    );
    check_rejected(
        replica.clone(),
        issue("j1", "bot", &["send"]).by(agent_actor("bot")),
        RejectReason::AgentDisabled,
        "agent bot is disabled",
    );
    // Its owner turns it back on.
    let (_, event) = check_accepted(
        &mut replica,
        set_status(log::EntityKind::Agent, "bot", false).by(human_actor("alice")),
    );
    assert_eq!(event.kind, status_changed(false));
    check_unchanged(
        &mut replica,
        set_status(log::EntityKind::Agent, "bot", false).by(admin()),
    );
    check_accepted(
        &mut replica,
        issue("j1", "bot", &["send"]).by(agent_actor("bot")),
    );
}

#[test]
fn set_status_rejections() {
    use RejectReason::*;
    let mut base = Replica::world();
    base.set_up([register_human("hana")]);
    let agent_rule = "only an admin or human alice may disable or enable this agent";
    let cases = [
        (
            set_status(log::EntityKind::Agent, "bot", true).by(human_actor("hana")),
            PermissionDenied,
            agent_rule,
        ),
        (
            set_status(log::EntityKind::Agent, "bot", true).by(agent_actor("bot")),
            PermissionDenied,
            agent_rule,
        ),
        (
            set_status(log::EntityKind::Human, "alice", true).by(human_actor("alice")),
            PermissionDenied,
            "only an admin may disable or enable humans",
        ),
        (
            set_status(log::EntityKind::Service, "mail", true).by(human_actor("alice")),
            PermissionDenied,
            "only an admin may disable or enable services",
        ),
        (
            set_status(log::EntityKind::Agent, "ghost", true).by(admin()),
            AgentNotFound,
            "agent ghost does not exist",
        ),
        (
            set_status(log::EntityKind::Human, "ghost", true).by(admin()),
            HumanNotFound,
            "human ghost does not exist",
        ),
        (
            set_status(log::EntityKind::Unspecified, "bot", true).by(admin()),
            InvalidCommand,
            "entity is 0; allowed: human, agent, service, device or operator",
        ),
    ];
    for (command, reason, message) in cases {
        check_rejected(base.clone(), command, reason, message);
    }
}

/// The kill switch is permanent for what existed when it was thrown: re-enabling an agent, a
/// human or a device does not revive the tokens, delegations or sessions issued before.
#[test]
fn re_enabling_does_not_revive_what_was_revoked() {
    let mut replica = Replica::world();
    check_accepted(
        &mut replica,
        issue("j1", "bot", &["send"]).by(agent_actor("bot")),
    );
    let before = replica.token_row("j1");
    assert_eq!(
        validity::token(&replica.state, &before, NOW_S).expect("reads"),
        Ok(())
    );
    for (entity, id) in [
        (log::EntityKind::Agent, "bot"),
        (log::EntityKind::Human, "alice"),
    ] {
        let mut replica = replica.clone();
        check_accepted(&mut replica, set_status(entity, id, true).by(admin()));
        check_accepted(&mut replica, set_status(entity, id, false).by(admin()));
        let lapse = validity::token(&replica.state, &before, NOW_S)
            .expect("reads")
            .expect_err("a token from before the kill switch stays revoked");
        let expected = match entity {
            log::EntityKind::Agent => LapseKind::AgentDisabled,
            _ => LapseKind::HumanDisabled,
        };
        assert_eq!(lapse.kind, expected, "{id}: {}", lapse.message);
        assert!(lapse.message.contains("enabled again"), "{}", lapse.message);
        // What is issued after the re-enable is in force.
        check_accepted(
            &mut replica,
            issue("j2", "bot", &["send"]).by(agent_actor("bot")),
        );
        let after = replica.token_row("j2");
        assert_eq!(
            validity::token(&replica.state, &after, NOW_S).expect("reads"),
            Ok(()),
            "{id}"
        );
    }
}
