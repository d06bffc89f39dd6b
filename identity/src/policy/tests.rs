//! The schema, validation with positions, and evaluation.

#![allow(clippy::unwrap_used)]

use warrant_proto::{
    log::{self, CallerAttribute, PolicyAttribute, PolicyAttributeType, caller_attribute::Value},
    state::{AgentRow, DelegationRow, HumanRow, ServiceRow},
};

use super::*;

fn attribute(name: &str, ty: PolicyAttributeType) -> PolicyAttribute {
    PolicyAttribute {
        name: name.to_owned(),
        r#type: ty as i32,
    }
}

fn attributes() -> Vec<PolicyAttribute> {
    vec![
        attribute("amount", PolicyAttributeType::Long),
        attribute("currency", PolicyAttributeType::String),
        attribute("urgent", PolicyAttributeType::Bool),
    ]
}

fn error(line: u32, column: u32, policy_id: &str, message: &str) -> log::PolicyError {
    log::PolicyError {
        line,
        column,
        policy_id: policy_id.to_owned(),
        message: message.to_owned(),
    }
}

/// Validates `text` with [`attributes`] and returns its errors as (line, column, policy id).
fn positions(text: &str) -> Vec<(u32, u32, String)> {
    validate(text, &attributes())
        .unwrap_err()
        .into_iter()
        .map(|it| (it.line, it.column, it.policy_id))
        .collect()
}

// The schema.

#[test]
fn the_schema_validates_a_policy_using_every_entity_type_and_context_field() {
    let text = r#"
@id("everything")
forbid(principal is Agent in Human::"alice", action == Action::"call", resource is Tool in Service::"fx")
when {
  principal.kind == "research" &&
  resource.name == "transfer" &&
  context.chain.contains(principal) &&
  context.depth > 1 &&
  context.task like "*payments*" &&
  context.scopes.contains("transfer") &&
  context.time > 0 &&
  (context has human && context.human.email like "*@example.com") &&
  (context has delegation && context.delegation.depth < 3 && context.delegation.task != "") &&
  (context has attributes.amount && context.attributes.amount > 10000) &&
  (context.attributes has currency && context.attributes.currency == "EUR") &&
  (context.attributes has urgent && context.attributes.urgent)
};
forbid(principal, action == Action::"delegate", resource)
when { context has grantee && context.grantee.kind == "research" && principal is Human && principal.email != "" };
forbid(principal, action == Action::"issue", resource)
when { resource in Service::"fx" && Device::"laptop" == Device::"laptop" };
forbid(principal, action, resource) unless { Delegation::"d1" == Delegation::"d1" };
"#;
    assert_eq!(
        validate(text, &attributes()),
        Ok(ValidatedPolicy {
            policy_ids: vec![
                "everything".to_owned(),
                "policy1".to_owned(),
                "policy2".to_owned(),
                "policy3".to_owned()
            ]
        })
    );
}

#[test]
fn the_schema_text_lists_the_declared_attributes_in_name_order() {
    let text = schema_text(&attributes());
    let amount = text.find("\"amount\"?: Long").unwrap();
    let currency = text.find("\"currency\"?: String").unwrap();
    let urgent = text.find("\"urgent\"?: Bool").unwrap();
    assert!(amount < currency && currency < urgent, "{text}");
    let mut reversed = attributes();
    reversed.reverse();
    assert_eq!(schema_text(&reversed), text);
    assert!(schema_text(&[]).contains("type CallerAttributes = {\n};"));
}

// Validation.

#[test]
fn a_syntax_error_has_its_position() {
    let text = "permit(principal, action, resource);\n\nforbid(principal, action resource);\n";
    let errors = validate(text, &[]).unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!((errors[0].line, errors[0].column), (3, 26), "{errors:?}");
    assert_eq!(errors[0].policy_id, "");
}

#[test]
fn type_errors_have_positions_sorted_by_position() {
    let text = concat!(
        "permit(principal, action, resource);\n",
        "@id(\"wrong-type\")\n",
        "forbid(principal, action, resource) when { context.attributes has amount && ",
        "context.attributes.amount == \"ten\" };\n",
        "@id(\"unknown-attribute\")\n",
        "forbid(principal, action, resource) when { principal.colour == \"red\" };\n",
        "forbid(principal, action, resource) when {   Robot::\"r\" == Robot::\"r\" };\n",
    );
    let errors = validate(text, &attributes()).unwrap_err();
    let positions: Vec<(u32, u32, &str)> = errors
        .iter()
        .map(|it| (it.line, it.column, it.policy_id.as_str()))
        .collect();
    assert_eq!(
        positions,
        [
            (3, 77, "wrong-type"),
            // Agent and Human have no colour: one error for each type the principal may be.
            (5, 44, "unknown-attribute"),
            (5, 44, "unknown-attribute"),
            (6, 46, "policy3"),
            (6, 60, "policy3"),
        ],
        "{errors:#?}"
    );
    // The message does not repeat the policy id, which has its own field.
    assert!(
        errors
            .iter()
            .all(|it| !it.message.starts_with("for policy")),
        "{errors:#?}"
    );
    assert!(errors[0].message.contains("not compatible"), "{errors:#?}");
    assert!(errors[3].message.contains("Robot"), "{errors:#?}");
}

#[test]
fn an_undeclared_attribute_is_an_error_at_its_access() {
    // "colour" is not declared: the attributes record has no such field. (Testing it with
    // `has` is allowed: it is simply false.)
    assert_eq!(
        positions(
            "forbid(principal, action, resource)\n  when { context.attributes.colour == \"red\" };"
        ),
        vec![(2, 10, "policy0".to_owned()); 3],
    );
    let messages: Vec<String> = validate(
        "forbid(principal, action, resource)\n  when { context.attributes.colour == \"red\" };",
        &attributes(),
    )
    .unwrap_err()
    .into_iter()
    .map(|it| it.message)
    .collect();
    // One per action: the context is checked for each action the policy may apply to.
    assert_eq!(
        messages,
        [
            "attribute `attributes.colour` in context for Action::\"call\" not found",
            "attribute `attributes.colour` in context for Action::\"delegate\" not found",
            "attribute `attributes.colour` in context for Action::\"issue\" not found",
        ]
    );
    assert!(
        validate(
            "forbid(principal, action, resource) when { context.attributes has colour };",
            &attributes()
        )
        .is_ok()
    );
}

#[test]
fn ids_come_from_annotations_and_must_be_unique_and_not_reserved() {
    let text = concat!(
        "@id(\"a\") forbid(principal, action, resource);\n",
        "// a comment; with a semicolon\n",
        "@id(\"x;y\") @id2(\"b\") forbid(principal, action, resource);\n",
        "permit(principal, action, resource);\n",
    );
    assert_eq!(
        validate(text, &[]).unwrap().policy_ids,
        ["a", "policy2", "x;y"]
    );
    let text = concat!(
        "@id(\"a\") forbid(principal, action, resource);\n",
        "  @id(\"a\") permit(principal, action, resource);\n",
        "@id(\"warrant.delegation\") permit(principal, action, resource);\n",
        "@id(\"policy4\") permit(principal, action, resource);\n",
        "permit(principal, action, resource);\n",
        "@id(\"\") permit(principal, action, resource);\n",
    );
    assert_eq!(
        validate(text, &[]).unwrap_err(),
        [
            error(
                2,
                3,
                "a",
                "the policy repeats the id a of the policy at line 1, column 1; allowed: unique ids"
            ),
            error(
                3,
                1,
                "warrant.delegation",
                "the policy uses the reserved id warrant.delegation; allowed: any other id"
            ),
            error(
                5,
                1,
                "policy4",
                "the policy repeats the id policy4 of the policy at line 4, column 1; allowed: \
                 unique ids"
            ),
            error(
                6,
                1,
                "",
                "the policy has an empty @id; allowed: a non-empty id"
            ),
        ]
    );
}

#[test]
fn a_template_is_refused() {
    assert_eq!(
        positions("permit(principal == ?principal, action, resource);"),
        [(1, 1, "policy0".to_owned())]
    );
}

#[test]
fn size_count_and_attribute_limits_are_errors() {
    let too_long = " ".repeat(crate::limits::POLICY_TEXT_BYTES_MAX + 1);
    assert_eq!(
        validate(&too_long, &[]).unwrap_err(),
        [error(
            0,
            0,
            "",
            "the text is 262145 bytes long; allowed: at most 262144 bytes"
        )]
    );
    let count = crate::limits::POLICIES_PER_SET_MAX + 1;
    let many = "forbid(principal, action, resource);\n".repeat(count);
    assert_eq!(
        validate(&many, &[]).unwrap_err(),
        [error(
            1025,
            1,
            "",
            "the text defines 1025 policies; allowed: at most 1024"
        )]
    );
    let twice = [
        attribute("amount", PolicyAttributeType::Long),
        attribute("amount", PolicyAttributeType::String),
    ];
    assert_eq!(
        validate("", &twice).unwrap_err(),
        [error(
            0,
            0,
            "",
            "attributes[1].name repeats amount; allowed: attribute names unique within the \
             version"
        )]
    );
    let bad_name = [attribute("1st", PolicyAttributeType::Long)];
    assert!(validate("", &bad_name).is_err());
    let untyped = [attribute("a", PolicyAttributeType::Unspecified)];
    assert!(validate("", &untyped).is_err());
}

#[test]
fn errors_are_cut_at_the_limit() {
    let text = "forbid(principal, action, resource) when { resource.nope };\n".repeat(100);
    let errors = validate(&text, &[]).unwrap_err();
    assert_eq!(errors.len(), crate::limits::POLICY_ERRORS_MAX);
    assert_eq!(
        errors.last().unwrap().message,
        "and 37 more errors not shown; allowed: at most 64 entries"
    );
    assert_eq!(errors[62].line, 63);
}

#[test]
fn the_empty_text_is_valid() {
    assert_eq!(validate("", &[]).unwrap().policy_ids, Vec::<String>::new());
}

// Evaluation.

struct World {
    alice: HumanRow,
    bot: AgentRow,
    fx: ServiceRow,
    d1: DelegationRow,
    scopes: Vec<String>,
}

fn world() -> World {
    World {
        alice: HumanRow {
            human_id: "alice".to_owned(),
            email: "alice@example.com".to_owned(),
            ..HumanRow::default()
        },
        bot: AgentRow {
            agent_id: "bot".to_owned(),
            owner_human_id: "alice".to_owned(),
            kind: "assistant".to_owned(),
            ..AgentRow::default()
        },
        fx: ServiceRow {
            service_id: "fx-mcp".to_owned(),
            audience: "https://fx.example".to_owned(),
            ..ServiceRow::default()
        },
        d1: DelegationRow {
            created: Some(log::DelegationCreated {
                delegation_id: "d1".to_owned(),
                depth: 1,
                task: "pay invoices".to_owned(),
                agent_chain: vec!["bot".to_owned()],
                ..log::DelegationCreated::default()
            }),
            ..DelegationRow::default()
        },
        scopes: vec!["convert".to_owned(), "transfer".to_owned()],
    }
}

fn call<'a>(
    world: &'a World,
    tool: &'a str,
    attributes: &'a [CallerAttribute],
) -> PolicyRequest<'a> {
    PolicyRequest {
        action: PolicyAction::Call,
        principal: PolicyPrincipal::Agent(&world.bot),
        on_behalf_of: Some(&world.alice),
        agent_chain: std::slice::from_ref(&world.bot),
        delegation: Some(&world.d1),
        service: &world.fx,
        tool,
        task: "pay invoices",
        scopes: &world.scopes,
        time_unix_s: 1_700_000_000,
        attributes,
        grantee: None,
    }
}

fn amount(value: i64) -> Vec<CallerAttribute> {
    vec![CallerAttribute {
        name: "amount".to_owned(),
        value: Some(Value::LongValue(value)),
    }]
}

const AMOUNT_LIMIT: &str = r#"@id("amount-limit")
forbid(principal, action == Action::"call", resource == Tool::"fx-mcp/convert")
when { context.attributes has amount && context.attributes.amount > 10000 };
"#;

fn compile(text: &str, attributes: &[PolicyAttribute]) -> CompiledPolicy {
    validate(text, attributes).unwrap();
    CompiledPolicy::compile(text, attributes)
}

fn allowed_by(ids: &[&str]) -> PolicyVerdict {
    PolicyVerdict {
        allowed: true,
        determining_policy_ids: ids.iter().map(|it| (*it).to_owned()).collect(),
        errors: Vec::new(),
    }
}

fn denied_by(ids: &[&str]) -> PolicyVerdict {
    PolicyVerdict {
        allowed: false,
        ..allowed_by(ids)
    }
}

#[test]
fn a_forbid_on_an_attribute_narrows_the_delegation() {
    let world = world();
    let policy = compile(AMOUNT_LIMIT, &attributes());
    assert_eq!(
        policy.evaluate(&call(&world, "convert", &amount(20_000))),
        denied_by(&["amount-limit"])
    );
    assert_eq!(
        policy.evaluate(&call(&world, "convert", &amount(50))),
        allowed_by(&[BUILT_IN_POLICY_ID])
    );
    // Without the attribute the forbid does not apply; another tool is not named by it.
    assert_eq!(
        policy.evaluate(&call(&world, "convert", &[])),
        allowed_by(&[BUILT_IN_POLICY_ID])
    );
    assert_eq!(
        policy.evaluate(&call(&world, "transfer", &amount(20_000))),
        allowed_by(&[BUILT_IN_POLICY_ID])
    );
}

#[test]
fn the_empty_set_allows_what_the_delegation_grants() {
    let world = world();
    assert_eq!(
        compile("", &[]).evaluate(&call(&world, "convert", &[])),
        allowed_by(&[BUILT_IN_POLICY_ID])
    );
}

#[test]
fn entities_and_context_carry_the_rows() {
    let world = world();
    let text = r#"
@id("by-owner") forbid(principal is Agent in Human::"alice", action, resource) when { principal.kind == "assistant" };
@id("by-email") forbid(principal, action, resource) when { context has human && context.human.email == "alice@example.com" };
@id("by-chain") forbid(principal, action, resource) when { context.chain.contains(Agent::"bot") };
@id("by-delegation") forbid(principal, action, resource) when { context has delegation && context.delegation == Delegation::"d1" && context.delegation.task == "pay invoices" && context.depth == 1 };
@id("by-service") forbid(principal, action, resource) when { resource in Service::"fx-mcp" && resource.name == "convert" };
@id("by-scopes") forbid(principal, action, resource) when { context.scopes.containsAll(["convert", "transfer"]) && context.time == 1700000000 && context.task == "pay invoices" };
@id("by-other") forbid(principal, action, resource) when { context.chain.contains(Agent::"other") };
"#;
    assert_eq!(
        compile(text, &[]).evaluate(&call(&world, "convert", &[])),
        denied_by(&[
            "by-chain",
            "by-delegation",
            "by-email",
            "by-owner",
            "by-scopes",
            "by-service"
        ])
    );
}

#[test]
fn a_delegation_names_its_grantee_and_a_human_principal() {
    let world = world();
    let research = AgentRow {
        agent_id: "researcher".to_owned(),
        kind: "research".to_owned(),
        owner_human_id: "alice".to_owned(),
        ..AgentRow::default()
    };
    let text = r#"@id("no-research-payments")
forbid(principal, action == Action::"delegate", resource == Tool::"fx-mcp/transfer")
when { context has grantee && context.grantee.kind == "research" };
"#;
    let policy = compile(text, &[]);
    let delegate = |grantee| PolicyRequest {
        action: PolicyAction::Delegate,
        principal: PolicyPrincipal::Human(&world.alice),
        on_behalf_of: Some(&world.alice),
        agent_chain: &[],
        delegation: None,
        grantee: Some(grantee),
        ..call(&world, "transfer", &[])
    };
    assert_eq!(
        policy.evaluate(&delegate(&research)),
        denied_by(&["no-research-payments"])
    );
    assert_eq!(
        policy.evaluate(&delegate(&world.bot)),
        allowed_by(&[BUILT_IN_POLICY_ID])
    );
}

#[test]
fn a_mistyped_attribute_fails_closed() {
    let world = world();
    let policy = compile(AMOUNT_LIMIT, &attributes());
    let wrong = [CallerAttribute {
        name: "amount".to_owned(),
        value: Some(Value::StringValue("20000".to_owned())),
    }];
    assert_eq!(
        policy.evaluate(&call(&world, "convert", &wrong)),
        PolicyVerdict {
            allowed: false,
            determining_policy_ids: Vec::new(),
            errors: vec![
                "warrant.request: caller attribute amount is declared POLICY_ATTRIBUTE_TYPE_LONG \
                 but the call gives a string"
                    .to_owned()
            ],
        }
    );
    // An undeclared attribute is not passed on, so it cannot fail anything.
    let undeclared = [CallerAttribute {
        name: "colour".to_owned(),
        value: Some(Value::StringValue("red".to_owned())),
    }];
    assert!(
        policy
            .evaluate(&call(&world, "convert", &undeclared))
            .allowed
    );
}

#[test]
fn an_evaluation_error_denies() {
    let world = world();
    // Overflow is a run-time error strict validation cannot rule out.
    let text = r#"@id("overflows")
forbid(principal, action, resource)
when { context.attributes has amount && context.attributes.amount * 2 > 0 };
"#;
    let verdict =
        compile(text, &attributes()).evaluate(&call(&world, "convert", &amount(i64::MAX)));
    assert!(!verdict.allowed, "{verdict:?}");
    assert_eq!(verdict.errors.len(), 1, "{verdict:?}");
    assert!(verdict.errors[0].starts_with("overflows: "), "{verdict:?}");
}

#[test]
fn a_principal_the_action_does_not_take_fails_closed() {
    let world = world();
    let request = PolicyRequest {
        principal: PolicyPrincipal::Human(&world.alice),
        ..call(&world, "convert", &[])
    };
    let verdict = compile("", &[]).evaluate(&request);
    assert!(!verdict.allowed, "{verdict:?}");
    assert!(
        verdict.errors[0].starts_with("warrant.request: "),
        "{verdict:?}"
    );
}

#[test]
fn a_broken_version_fails_closed() {
    let world = world();
    let verdict = CompiledPolicy::compile("permit(", &[]).evaluate(&call(&world, "convert", &[]));
    assert!(!verdict.allowed, "{verdict:?}");
    assert!(
        verdict.errors[0].starts_with("warrant.delegation: the stored text no longer compiles"),
        "{verdict:?}"
    );
}

#[test]
fn the_cache_returns_the_same_set_for_the_same_content() {
    let first = compiled(AMOUNT_LIMIT, &attributes());
    let second = compiled(AMOUNT_LIMIT, &attributes());
    assert!(Arc::ptr_eq(&first, &second));
    let other = compiled(AMOUNT_LIMIT, &[]);
    assert!(!Arc::ptr_eq(&first, &other));
}

/// The example in the README's "Access decisions" section, byte for byte, is a valid version
/// with `amount` declared.
#[test]
fn the_readme_example_validates() {
    const README_EXAMPLE: &str = r#"@id("no-large-conversions")
forbid(principal, action == Action::"call", resource == Tool::"fx-mcp/convert")
when { context.attributes has amount && context.attributes.amount > 10000 };

@id("research-agents-keep-out-of-payments")
forbid(principal, action == Action::"delegate", resource in Service::"payments")
when { principal is Agent && principal.kind == "research" };
"#;
    // The README indents it inside a list item: compare trimmed lines.
    let readme: Vec<&str> = include_str!("../../../README.md")
        .lines()
        .map(str::trim)
        .collect();
    let example: Vec<&str> = README_EXAMPLE.lines().map(str::trim).collect();
    assert!(
        readme
            .windows(example.len())
            .any(|it| it == example.as_slice()),
        "the README's example changed: update this test with it"
    );
    assert_eq!(
        validate(
            README_EXAMPLE,
            &[attribute("amount", PolicyAttributeType::Long)]
        ),
        Ok(ValidatedPolicy {
            policy_ids: vec![
                "no-large-conversions".to_owned(),
                "research-agents-keep-out-of-payments".to_owned()
            ]
        })
    );
}
