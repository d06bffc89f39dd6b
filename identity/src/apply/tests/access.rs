//! Access decisions: Authorize decided at its position (every guard's DENY, the ALLOW), budgets
//! spent by SYNC ALLOWs up the chain, retries, and the records only a node makes.

use warrant_proto::{
    api::TokenInvalidReason,
    log::{AccessDecision, AccessDenyReason, AccessMode, CallerAttribute, caller_attribute::Value},
};

use sha2::Digest as _;

use super::*;
use crate::access::{self, AccessRequest};

fn mail_service() -> Actor {
    actor(PrincipalKind::Service, "mail")
}

fn authorize(jti: &str, service_id: &str, tool: &str) -> log::Authorize {
    log::Authorize {
        token_jti: jti.to_owned(),
        service_id: service_id.to_owned(),
        tool: tool.to_owned(),
        serving_node_id: 1,
        ..Default::default()
    }
}

fn long(name: &str, value: i64) -> CallerAttribute {
    CallerAttribute {
        name: name.to_owned(),
        value: Some(Value::LongValue(value)),
    }
}

/// Applies an Authorize at `time_unix_ms`: it must be accepted with one AccessDecided event,
/// which the outcome returns; the receipt.
fn decide_at(replica: &mut Replica, time_unix_ms: u64, command: Command) -> log::AccessDecided {
    let seq_before = replica.seq();
    let applied = replica.apply(time_unix_ms, vec![command.clone()]);
    let accepted = accepted_of(&applied.outcomes[0]);
    let [event] = applied.events.as_slice() else {
        panic!("expected one event, got {:?}", applied.events);
    };
    let Some(EventKind::AccessDecided(receipt)) = &event.kind else {
        panic!("expected a receipt, got {event:?}");
    };
    assert_eq!(accepted.seq, seq_before + 1);
    assert_eq!(accepted.access_decided.as_ref(), Some(receipt));
    assert_eq!(receipt.decided_at_seq, seq_before);
    assert_eq!(receipt.decided_at_unix_ms, time_unix_ms);
    assert_eq!(receipt.decision_id, command.idempotency_key);
    assert_eq!(receipt.requested_by, command.actor);
    assert_eq!(receipt.mode, AccessMode::Sync as i32);
    receipt.clone()
}

fn decide(replica: &mut Replica, command: Command) -> log::AccessDecided {
    decide_at(replica, T1, command)
}

/// The receipt's verdict: the decision, the deny reason and the token-invalid number.
fn verdict(receipt: &log::AccessDecided) -> (AccessDecision, AccessDenyReason, u32) {
    (
        AccessDecision::try_from(receipt.decision).unwrap(),
        AccessDenyReason::try_from(receipt.deny_reason).unwrap(),
        receipt.token_invalid_reason,
    )
}

fn allowed() -> (AccessDecision, AccessDenyReason, u32) {
    (AccessDecision::Allow, AccessDenyReason::Unspecified, 0)
}

fn denied(reason: AccessDenyReason) -> (AccessDecision, AccessDenyReason, u32) {
    (AccessDecision::Deny, reason, 0)
}

fn token_invalid(reason: TokenInvalidReason) -> (AccessDecision, AccessDenyReason, u32) {
    (
        AccessDecision::Deny,
        AccessDenyReason::TokenInvalid,
        reason as u32,
    )
}

/// The world plus service cal (whose tools include send, so only the audience differs), bot's
/// token j1 for send on mail, and its token jr, revoked.
fn access_world() -> Replica {
    let mut replica = Replica::world();
    replica.set_up([
        service("cal", CAL, &["send", "view"]).by(admin()),
        issue("j1", "bot", &["send"]).by(agent_actor("bot")),
        issue("jr", "bot", &["send"]).by(agent_actor("bot")),
        revoke("jr").by(agent_actor("bot")),
    ]);
    replica
}

#[test]
fn a_call_within_the_token_is_allowed_and_the_receipt_names_it() {
    let mut replica = access_world();
    let attributes = vec![long("amount", 50)];
    let receipt = decide(
        &mut replica,
        log::Authorize {
            attributes: attributes.clone(),
            ..authorize("j1", "mail", "send")
        }
        .by(mail_service()),
    );
    assert_eq!(verdict(&receipt), allowed());
    assert_eq!(
        (
            receipt.principal_kind,
            receipt.principal_id.as_str(),
            receipt.on_behalf_of_human_id.as_str()
        ),
        (PrincipalKind::Agent as i32, "bot", "")
    );
    assert_eq!(
        (receipt.service_id.as_str(), receipt.tool.as_str()),
        ("mail", "send")
    );
    assert_eq!(receipt.token_jti, "j1");
    assert_eq!(receipt.determining_policy_ids, ["warrant.delegation"]);
    assert_eq!(receipt.policy_version, 0);
    assert_eq!(receipt.serving_node_id, 1);
    assert_eq!(receipt.shadow, None);
    assert_eq!(
        receipt.attributes_digest,
        access::attributes_digest(&attributes).to_vec()
    );
}

#[test]
fn every_guard_denies_in_order_and_each_denial_is_a_receipt() {
    use AccessDenyReason::*;
    let mut disabled_service = access_world();
    disabled_service.set_up([set_status(log::EntityKind::Service, "mail", true).by(admin())]);
    let mut disabled_agent = access_world();
    disabled_agent.set_up([set_status(log::EntityKind::Agent, "bot", true).by(admin())]);
    let cases = [
        (
            access_world(),
            log::Authorize {
                token_jti: String::new(),
                token_invalid_reason: TokenInvalidReason::BadSignature as u32,
                token_invalid_message: "the signature does not verify".to_owned(),
                ..authorize("", "mail", "send")
            },
            token_invalid(TokenInvalidReason::BadSignature),
            "the signature does not verify",
        ),
        (
            access_world(),
            authorize("j9", "mail", "send"),
            token_invalid(TokenInvalidReason::UnknownToken),
            "no issuance of jti j9 is in the log",
        ),
        (
            access_world(),
            authorize("jr", "mail", "send"),
            token_invalid(TokenInvalidReason::Revoked),
            "the token was revoked at seq 8",
        ),
        (
            disabled_agent,
            authorize("j1", "mail", "send"),
            token_invalid(TokenInvalidReason::AgentDisabled),
            "agent bot is disabled",
        ),
        (
            access_world(),
            authorize("j1", "nope", "send"),
            denied(ServiceNotFound),
            "service nope does not exist",
        ),
        (
            disabled_service,
            authorize("j1", "mail", "send"),
            denied(ServiceDisabled),
            "service mail is disabled",
        ),
        (
            access_world(),
            authorize("j1", "mail", "delete"),
            denied(ToolNotFound),
            "service mail has no tool delete",
        ),
        (
            access_world(),
            authorize("j1", "cal", "send"),
            denied(AudienceMismatch),
            "the token is for audience https://mail.example, not service cal's https://cal.example",
        ),
        (
            access_world(),
            authorize("j1", "mail", "read"),
            denied(ToolNotInScope),
            "tool read is not among the token's scopes send",
        ),
    ];
    for (mut replica, command, expected, message) in cases {
        let context = format!("{command:?}");
        let receipt = decide(&mut replica, command.by(mail_service()));
        assert_eq!(verdict(&receipt), expected, "{context}");
        assert_eq!(receipt.message, message, "{context}");
        assert!(receipt.determining_policy_ids.is_empty(), "{context}");
    }
}

/// The kill switch: a disabled agent's token is a DENY with the number Verify gives for it.
#[test]
fn a_disabled_agents_call_is_denied_with_verifys_reason() {
    let mut replica = access_world();
    replica.set_up([set_status(log::EntityKind::Agent, "bot", true).by(human_actor("alice"))]);
    let receipt = decide(
        &mut replica,
        authorize("j1", "mail", "send").by(mail_service()),
    );
    assert_eq!(receipt.token_invalid_reason, 14);
    assert_eq!(
        LapseKind::AgentDisabled.token_invalid_reason_number(),
        TokenInvalidReason::AgentDisabled as u32
    );
    // The receipt still names whose token it was.
    assert_eq!(receipt.principal_id, "bot");
}

#[test]
fn an_expired_token_is_denied_at_the_stamp() {
    let mut replica = access_world();
    // j1 was issued at T0 for 600 s.
    let receipt = decide_at(
        &mut replica,
        T0 + 600_000,
        authorize("j1", "mail", "send").by(mail_service()),
    );
    assert_eq!(
        verdict(&receipt),
        token_invalid(TokenInvalidReason::Expired)
    );
}

/// hana's grant d1 to bot with a budget of 3 calls (2 of read), bot's child d2 to sub with a
/// budget of 2, and tokens jb (bot under d1, send and read) and js (sub under d2, read).
fn budget_world() -> Replica {
    let mut replica = Replica::world();
    replica.set_up([
        register_human("hana"),
        agent("sub", "alice").by(admin()),
        log::CreateDelegation {
            budget: Some(log::CallBudget {
                total: 3,
                tools: vec![log::ToolBudget {
                    tool: "read".to_owned(),
                    limit: 2,
                }],
            }),
            ..d1()
        }
        .by(human_actor("hana")),
        log::CreateDelegation {
            budget: Some(log::CallBudget {
                total: 2,
                tools: vec![],
            }),
            ..d2()
        }
        .by(agent_actor("bot")),
        delegated("jb", "bot", "d1", &["send", "read"]).by(agent_actor("bot")),
        delegated("js", "sub", "d2", &["read"]).by(agent_actor("sub")),
    ]);
    replica
}

#[test]
fn a_budget_of_three_allows_exactly_three_calls() {
    let mut replica = budget_world();
    let mut verdicts = Vec::new();
    for call in 0..5 {
        // Each call is its own decision, with its own key.
        let command = authorize("jb", "mail", "send")
            .by(mail_service())
            .key(&format!("call-{call}"));
        let receipt = decide(&mut replica, command);
        verdicts.push(verdict(&receipt));
    }
    let exhausted = denied(AccessDenyReason::BudgetExhausted);
    assert_eq!(
        verdicts,
        [allowed(), allowed(), allowed(), exhausted, exhausted]
    );
    let usage = query::budget_usage(&replica.state, "d1").unwrap();
    assert_eq!(usage.spent, 3);
    // send is not limited on its own: no tool row for it.
    assert_eq!(usage.tools, []);
}

/// A child's ALLOW spends its own budget and every budget above it; the first exhausted one
/// denies, and a DENY spends nothing.
#[test]
fn a_childs_calls_count_against_its_parents_budget() {
    let mut replica = budget_world();
    let mut calls = 0;
    let mut call = |replica: &mut Replica, jti: &str, tool: &str| {
        calls += 1;
        let command = authorize(jti, "mail", tool)
            .by(mail_service())
            .key(&format!("call-{calls}"));
        verdict(&decide(replica, command))
    };
    let mut sub_reads = |replica: &mut Replica| call(replica, "js", "read");
    assert_eq!(sub_reads(&mut replica), allowed());
    assert_eq!(sub_reads(&mut replica), allowed());
    // d1's read limit (2) and d2's total (2) are both spent.
    assert_eq!(
        sub_reads(&mut replica),
        denied(AccessDenyReason::BudgetExhausted)
    );
    let d1 = query::budget_usage(&replica.state, "d1").unwrap();
    assert_eq!(d1.spent, 2);
    assert_eq!(
        d1.tools,
        [warrant_proto::state::ToolSpend {
            tool: "read".to_owned(),
            spent: 2
        }]
    );
    assert_eq!(query::budget_usage(&replica.state, "d2").unwrap().spent, 2);
    // d1's read limit is spent for every delegation below it, bot's own too; one unit of its
    // total is left, for a send.
    let mut bot = |replica: &mut Replica, tool: &str| call(replica, "jb", tool);
    assert_eq!(
        bot(&mut replica, "read"),
        denied(AccessDenyReason::BudgetExhausted)
    );
    assert_eq!(bot(&mut replica, "send"), allowed());
    assert_eq!(
        bot(&mut replica, "send"),
        denied(AccessDenyReason::BudgetExhausted)
    );
    assert_eq!(query::budget_usage(&replica.state, "d1").unwrap().spent, 3);
}

#[test]
fn a_decision_lists_the_budgets_above_it_root_first() {
    let replica = budget_world();
    let requested_by = mail_service();
    let request = AccessRequest {
        decision_id: "x",
        token_jti: "js",
        token_invalid_reason: 0,
        token_invalid_message: "",
        service_id: "mail",
        tool: "read",
        attributes: &[],
        serving_node_id: 2,
        requested_by: &requested_by,
        mode: AccessMode::Async,
    };
    let decided = access::decide(&replica.state, &request, T1, 42).unwrap();
    assert_eq!(decided.budgeted_delegations, ["d1", "d2"]);
    assert_eq!(decided.receipt.decided_at_seq, 42);
    assert_eq!(decided.receipt.mode, AccessMode::Async as i32);
    assert_eq!(decided.receipt.on_behalf_of_human_id, "hana");
    assert_eq!(decided.receipt.delegation_id, "d2");
    assert_eq!(decided.receipt.task, "triage inbox");
    assert_eq!(
        decided.receipt.agent_chain,
        replica.token_row("js").issued.unwrap().actor_chain
    );
    // Deciding reads; it spends nothing.
    assert_eq!(query::budget_usage(&replica.state, "d1").unwrap().spent, 0);
}

#[test]
fn a_child_budget_larger_than_its_parents_is_refused() {
    let mut replica = Replica::world();
    replica.set_up([
        register_human("hana"),
        agent("sub", "alice").by(admin()),
        log::CreateDelegation {
            budget: Some(log::CallBudget {
                total: 3,
                tools: vec![log::ToolBudget {
                    tool: "read".to_owned(),
                    limit: 2,
                }],
            }),
            ..d1()
        }
        .by(human_actor("hana")),
    ]);
    let child = |total: u64, read: u64| {
        log::CreateDelegation {
            budget: Some(log::CallBudget {
                total,
                tools: vec![log::ToolBudget {
                    tool: "read".to_owned(),
                    limit: read,
                }],
            }),
            ..d2()
        }
        .by(agent_actor("bot"))
    };
    check_rejected(
        replica.clone(),
        child(4, 1),
        RejectReason::BudgetExceedsParent,
        "budget total 4 is above parent delegation d1's 3; allowed: at most 3",
    );
    check_rejected(
        replica.clone(),
        child(3, 3),
        RejectReason::BudgetExceedsParent,
        "budget for tool read is 3, above parent delegation d1's 2; allowed: at most 2",
    );
    let (accepted, event) = check_accepted(&mut replica, child(3, 2));
    let Some(EventKind::DelegationCreated(created)) = event.kind else {
        panic!("{event:?}");
    };
    assert_eq!(
        created.budget,
        child(3, 2).kind.and_then(|kind| match kind {
            CommandKind::CreateDelegation(it) => it.budget,
            _ => None,
        })
    );
    assert_eq!(accepted.delegation_created, Some(created));
}

#[test]
fn budget_fields_are_checked() {
    let budget = |total: u64, tools: &[(&str, u64)]| log::CreateDelegation {
        budget: Some(log::CallBudget {
            total,
            tools: tools
                .iter()
                .map(|(tool, limit)| log::ToolBudget {
                    tool: (*tool).to_owned(),
                    limit: *limit,
                })
                .collect(),
        }),
        ..d1()
    };
    let cases = [
        (
            budget(limits::BUDGET_UNITS_MAX + 1, &[]),
            "budget.total is 1000000001; allowed: 0 (no total) or 1 to 1000000000",
        ),
        (
            budget(1, &[("view", 1)]),
            "budget.tools[0].tool is view, not one of the scopes; allowed: one of send read",
        ),
        (
            budget(1, &[("send", 1), ("read", 1)]),
            "budget.tools[1].tool is read after send; allowed: tools in name order, each once",
        ),
        (
            budget(1, &[("read", 0)]),
            "budget.tools[0].limit is 0; allowed: 1 to 1000000000",
        ),
    ];
    for (command, message) in cases {
        let mut replica = Replica::world();
        replica.set_up([register_human("hana")]);
        check_rejected(
            replica,
            command.by(human_actor("hana")),
            RejectReason::InvalidCommand,
            message,
        );
    }
}

#[test]
fn a_retried_authorize_replays_its_receipt_and_spends_nothing() {
    let mut replica = budget_world();
    let command = authorize("jb", "mail", "send").by(mail_service());
    let receipt = decide(&mut replica, command.clone());
    assert_eq!(verdict(&receipt), allowed());
    let digest = replica.digest();
    let retried = replica.apply(T1 + 1_000, vec![command]);
    let replayed = accepted_of(&retried.outcomes[0]);
    assert!(replayed.replayed);
    assert_eq!(replayed.access_decided, Some(receipt));
    assert_eq!(retried.events, []);
    assert_eq!(replica.digest(), digest);
    assert_eq!(query::budget_usage(&replica.state, "d1").unwrap().spent, 1);
}

#[test]
fn authorize_fields_are_checked_and_refusals_recorded() {
    let string = |name: &str, value: String| CallerAttribute {
        name: name.to_owned(),
        value: Some(Value::StringValue(value)),
    };
    let cases = [
        (
            vec![long("amount", 1), long("amount", 2)],
            "attributes[1].name repeats amount; allowed: attribute names unique within the request",
        ),
        (
            vec![long("1st", 1)],
            "attributes[0].name starts with '1'; allowed: 1 to 64 ASCII letters, digits or '_', \
             starting with a letter or '_'",
        ),
        (
            vec![string(
                "memo",
                "m".repeat(limits::ATTRIBUTE_STRING_LEN_MAX + 1),
            )],
            "attributes[0].string_value is 1025 bytes long; allowed: up to 1024 bytes of text \
             without control characters",
        ),
        (
            (0..=limits::CALLER_ATTRIBUTES_MAX)
                .map(|idx| long(&format!("a{idx}"), 1))
                .collect(),
            "attributes has 33 entries; allowed: at most 32",
        ),
        (
            vec![CallerAttribute {
                name: "amount".to_owned(),
                value: None,
            }],
            "attributes[0].value is missing; allowed: a string, long or bool value",
        ),
    ];
    for (attributes, message) in cases {
        check_rejected(
            access_world(),
            log::Authorize {
                attributes,
                ..authorize("j1", "mail", "send")
            }
            .by(mail_service()),
            RejectReason::InvalidCommand,
            message,
        );
    }
}

#[test]
fn the_attributes_digest_is_canonical() {
    let a = long("amount", 50);
    let b = CallerAttribute {
        name: "currency".to_owned(),
        value: Some(Value::StringValue("EUR".to_owned())),
    };
    let digest = access::attributes_digest(&[a.clone(), b.clone()]);
    assert_eq!(digest, access::attributes_digest(&[b.clone(), a.clone()]));
    // The framing of one long attribute, by hand.
    let mut framed = Vec::new();
    framed.extend_from_slice(&6u64.to_be_bytes());
    framed.extend_from_slice(b"amount");
    framed.push(2);
    framed.extend_from_slice(&50i64.to_be_bytes());
    let expected: [u8; 32] = sha2::Sha256::digest(&framed).into();
    assert_eq!(access::attributes_digest(&[a]), expected);
    // Types are part of the value: "50" is not 50.
    let as_string = CallerAttribute {
        name: "amount".to_owned(),
        value: Some(Value::StringValue("50".to_owned())),
    };
    assert_ne!(access::attributes_digest(&[as_string]), expected);
    let empty: [u8; 32] = sha2::Sha256::digest(b"").into();
    assert_eq!(access::attributes_digest(&[]), empty);
}

fn receipt(decision_id: &str, serving_node_id: u64) -> log::AccessDecided {
    log::AccessDecided {
        decision_id: decision_id.to_owned(),
        decision: AccessDecision::Allow as i32,
        principal_kind: PrincipalKind::Agent as i32,
        principal_id: "bot".to_owned(),
        service_id: "mail".to_owned(),
        tool: "send".to_owned(),
        token_jti: "j1".to_owned(),
        serving_node_id,
        decided_at_seq: 3,
        mode: AccessMode::Async as i32,
        ..Default::default()
    }
}

#[test]
fn a_node_records_its_async_receipts_as_they_are() {
    let mut replica = access_world();
    let seq_before = replica.seq();
    let receipts = vec![receipt("r1", 1), receipt("r2", 1)];
    let command = log::RecordAccessDecisions {
        decisions: receipts.clone(),
    }
    .by(node(1));
    let applied = replica.apply(T1, vec![command]);
    assert_eq!(accepted_of(&applied.outcomes[0]).seq, seq_before + 2);
    let recorded: Vec<_> = applied.events.iter().map(|it| it.kind.clone()).collect();
    assert_eq!(
        recorded,
        receipts
            .into_iter()
            .map(|it| Some(EventKind::AccessDecided(it)))
            .collect::<Vec<_>>()
    );
}

#[test]
fn only_a_node_records_and_only_its_own() {
    let receipts = || log::RecordAccessDecisions {
        decisions: vec![receipt("r1", 1)],
    };
    let failures = |node_id: u64| log::RecordAuthFailures {
        failures: vec![log::AuthFailures {
            claimed_kind: PrincipalKind::Agent as i32,
            claimed_id: "mallory".to_owned(),
            reason: "UNAUTHENTICATED".to_owned(),
            count: 1000,
            first_unix_ms: T0,
            last_unix_ms: T1,
            node_id,
        }],
    };
    let cases = [
        (
            receipts().by(agent_actor("bot")),
            "only a node may record access decisions",
        ),
        (
            receipts().by(admin()),
            "only a node may record access decisions",
        ),
        (
            receipts().by(node(2)),
            "receipt r1 was served by node 1; allowed: a node records only its own receipts",
        ),
        (
            failures(1).by(mail_service()),
            "only a node may record authentication failures",
        ),
        (
            failures(1).by(node(2)),
            "failures of mallory were seen by node 1; allowed: a node records only what it saw",
        ),
    ];
    for (command, message) in cases {
        check_rejected(
            access_world(),
            command,
            RejectReason::PermissionDenied,
            message,
        );
    }
}

#[test]
fn a_node_records_each_auth_failure_aggregate_as_one_event() {
    let mut replica = access_world();
    let entry = |claimed_id: &str| log::AuthFailures {
        claimed_kind: PrincipalKind::Agent as i32,
        claimed_id: claimed_id.to_owned(),
        reason: "UNAUTHENTICATED".to_owned(),
        count: 7,
        first_unix_ms: T0,
        last_unix_ms: T1,
        node_id: 1,
    };
    let applied = replica.apply(
        T1,
        vec![
            log::RecordAuthFailures {
                failures: vec![entry("mallory"), entry("(other)")],
            }
            .by(node(1)),
        ],
    );
    let recorded: Vec<_> = applied.events.iter().map(|it| it.kind.clone()).collect();
    assert_eq!(
        recorded,
        [
            Some(EventKind::AuthFailuresRecorded(entry("mallory"))),
            Some(EventKind::AuthFailuresRecorded(entry("(other)")))
        ]
    );
    let too_many = log::RecordAuthFailures {
        failures: vec![entry("x"); limits::AUTH_FAILURES_PER_RECORD_MAX + 1],
    };
    check_rejected(
        access_world(),
        too_many.by(node(1)),
        RejectReason::InvalidCommand,
        "failures has 65 entries; allowed: 1 to 64 entries",
    );
}

/// A refusal by an authenticated caller is an audit fact: one CommandRejected naming the command
/// kind, the actor and the reason; its retry replays it and adds nothing.
#[test]
fn a_refused_command_is_recorded_once() {
    let mut replica = access_world();
    let command = revoke_delegation("nope").by(human_actor("alice"));
    let seq_before = replica.seq();
    let applied = replica.apply(T1, vec![command.clone()]);
    assert_eq!(
        reason_of(&applied.outcomes[0]),
        RejectReason::DelegationNotFound
    );
    let [event] = applied.events.as_slice() else {
        panic!("{:?}", applied.events);
    };
    assert_eq!(event.seq, seq_before + 1);
    assert_eq!(event.actor, Some(human_actor("alice")));
    assert_eq!(
        event.kind,
        Some(EventKind::CommandRejected(log::CommandRejected {
            command_kind: "revoke_delegation".to_owned(),
            reason: RejectReason::DelegationNotFound as i32,
            message: "delegation nope does not exist".to_owned(),
        }))
    );
    let digest = replica.digest();
    let retried = replica.apply(T1 + 1_000, vec![command]);
    assert_eq!(retried.outcomes, applied.outcomes);
    assert_eq!(retried.events, []);
    assert_eq!(replica.digest(), digest);
}
