//! The spec's examples (OpenID AuthZEN Authorization API 1.0, §6–7 and the HTTPS binding) as
//! test data: as published (they carry no token and name no tool, so each is a precise 400),
//! and adapted to Warrant's vocabulary (a token in the subject, a tool resource, the `call`
//! action), which map onto Authorize as the spec's merging rules say.

use serde_json::{Value, json};
use warrant_proto::{api, log};

use super::*;

/// §6.1 "Example Request".
fn spec_evaluation() -> Value {
    json!({
      "subject": { "type": "user", "id": "alice@acmecorp.com" },
      "resource": { "type": "account", "id": "123" },
      "action": { "name": "can_read", "properties": { "method": "GET" } },
      "context": { "time": "1985-10-26T01:22-07:00" }
    })
}

/// §7.1: three requests, no default values.
fn spec_evaluations_no_defaults() -> Value {
    let item = |doc: &str| {
        json!({
          "subject": { "type": "user", "id": "alice@acmecorp.com" },
          "action": { "name": "can_read" },
          "resource": { "type": "document", "id": doc },
          "context": { "time": "2024-05-31T15:22-07:00" }
        })
    };
    json!({ "evaluations": [item("boxcarring.md"), item("subject-search.md"), item("resource-search.md")] })
}

/// §7.1.1: a default subject and context.
fn spec_evaluations_defaults() -> Value {
    let item = |doc: &str| json!({ "action": { "name": "can_read" }, "resource": { "type": "document", "id": doc } });
    json!({
      "subject": { "type": "user", "id": "alice@acmecorp.com" },
      "context": { "time": "2024-05-31T15:22-07:00" },
      "evaluations": [item("boxcarring.md"), item("subject-search.md"), item("resource-search.md")]
    })
}

/// §7.1.1 (and the HTTPS binding's example): a default action the third item overrides.
fn spec_evaluations_override() -> Value {
    json!({
      "subject": { "type": "user", "id": "alice@acmecorp.com" },
      "context": { "time": "2024-05-31T15:22-07:00" },
      "action": { "name": "can_read" },
      "evaluations": [
        { "resource": { "type": "document", "id": "boxcarring.md" } },
        { "resource": { "type": "document", "id": "subject-search.md" } },
        { "action": { "name": "can_edit" }, "resource": { "type": "document", "id": "resource-search.md" } }
      ]
    })
}

/// §7.1.2.1: three documents read under `semantic`.
fn spec_semantic(semantic: &str) -> Value {
    let item = |id: &str| json!({ "resource": { "type": "document", "id": id } });
    json!({
      "subject": { "type": "user", "id": "alice@example.com" },
      "action": { "name": "read" },
      "options": { "evaluations_semantic": semantic },
      "evaluations": [item("1"), item("2"), item("3")]
    })
}

/// §7.1.2: the `options` example (its own key is spelled `evaluation_semantics`, which is not
/// the semantic option, so the default applies).
fn spec_options() -> Value {
    json!({
      "evaluations": [{ "resource": { "type": "doc", "id": "1" }, "subject": { "type": "doc", "id": "2" } }],
      "options": { "evaluation_semantics": "execute_all", "another_option": "value" }
    })
}

/// A spec example in Warrant's vocabulary: each subject carries a token (`tok-<id>`), each
/// resource is a tool of `fx-mcp` named by the resource's id, each action is `call` unless
/// `keep_actions` (so an override of the default action shows).
fn adapt(mut example: Value, keep_actions: bool) -> Value {
    fn entity(value: &mut Value, keep_actions: bool) {
        let Value::Object(object) = value else { return };
        if let Some(subject) = object.get_mut("subject") {
            let id = subject["id"].as_str().unwrap_or_default().to_owned();
            subject["properties"] = json!({ "token": format!("tok-{id}") });
        }
        if let Some(resource) = object.get_mut("resource") {
            resource["type"] = json!("tool");
            resource["properties"] = json!({ "service": "fx-mcp" });
        }
        if !keep_actions && let Some(action) = object.get_mut("action") {
            action["name"] = json!("call");
        }
    }
    entity(&mut example, keep_actions);
    if let Some(Value::Array(items)) = example.get_mut("evaluations") {
        for item in items {
            entity(item, keep_actions);
        }
    }
    example
}

fn bytes(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).expect("JSON")
}

fn request(
    token: &str,
    tool: &str,
    attributes: Vec<log::CallerAttribute>,
) -> api::AuthorizeRequest {
    api::AuthorizeRequest {
        token: token.to_owned(),
        service_id: "fx-mcp".to_owned(),
        tool: tool.to_owned(),
        attributes,
        audit: api::AuditMode::Sync as i32,
        ..Default::default()
    }
}

fn string(name: &str, value: &str) -> log::CallerAttribute {
    log::CallerAttribute {
        name: name.to_owned(),
        value: Some(log::caller_attribute::Value::StringValue(value.to_owned())),
    }
}

fn refused(code: &'static str, message: &str) -> BadRequest {
    BadRequest {
        code,
        message: message.to_owned(),
    }
}

const SYNC: api::AuditMode = api::AuditMode::Sync;

#[test]
fn the_spec_examples_as_published_are_refused_with_the_field_that_is_missing() {
    let token_required = |path: &str| {
        refused(
            "invalid_request",
            &format!(
                "{path}subject.properties.token is required: the access token the agent presented"
            ),
        )
    };
    assert_eq!(
        parse_evaluation(&bytes(&spec_evaluation()), SYNC),
        Err(token_required(""))
    );
    for example in [
        spec_evaluations_no_defaults(),
        spec_evaluations_defaults(),
        spec_evaluations_override(),
        spec_semantic("execute_all"),
        spec_options(),
    ] {
        assert_eq!(
            parse_evaluations(&bytes(&example), SYNC),
            Err(token_required("evaluations[0].")),
            "{example}"
        );
    }
}

#[test]
fn the_spec_evaluation_example_maps_onto_one_authorize() {
    let example = adapt(spec_evaluation(), false);
    let expected = request(
        "tok-alice@acmecorp.com",
        "123",
        vec![string("time", "1985-10-26T01:22-07:00")],
    );
    assert_eq!(
        parse_evaluation(&bytes(&example), SYNC),
        Ok(expected.clone())
    );
    // Sent to /evaluations without an `evaluations` array it is the same single evaluation.
    assert_eq!(
        parse_evaluations(&bytes(&example), api::AuditMode::Async),
        Ok(Evaluations {
            requests: vec![api::AuthorizeRequest {
                audit: api::AuditMode::Async as i32,
                ..expected
            }],
            semantic: Semantic::ExecuteAll,
            boxcarred: false,
        })
    );
    // Its action as published is refused by name.
    assert_eq!(
        parse_evaluation(&bytes(&adapt(spec_evaluation(), true)), SYNC),
        Err(refused(
            "unsupported_action",
            "action.name \"can_read\" is not supported; allowed: \"call\""
        ))
    );
}

#[test]
fn the_spec_evaluations_examples_merge_defaults_into_each_item() {
    let time = || vec![string("time", "2024-05-31T15:22-07:00")];
    let tok = "tok-alice@acmecorp.com";
    let three = || Evaluations {
        requests: ["boxcarring.md", "subject-search.md", "resource-search.md"]
            .map(|doc| request(tok, doc, time()))
            .to_vec(),
        semantic: Semantic::ExecuteAll,
        boxcarred: true,
    };
    for example in [
        spec_evaluations_no_defaults(),
        spec_evaluations_defaults(),
        spec_evaluations_override(),
    ] {
        assert_eq!(
            parse_evaluations(&bytes(&adapt(example.clone(), false)), SYNC),
            Ok(three()),
            "{example}"
        );
    }
    // With the actions as published, the third item's own action replaces the default.
    assert_eq!(
        parse_evaluations(&bytes(&adapt(spec_evaluations_override(), true)), SYNC),
        Err(refused(
            "unsupported_action",
            "evaluations[0].action.name \"can_read\" is not supported; allowed: \"call\""
        ))
    );
    let mut override_only = adapt(spec_evaluations_override(), false);
    override_only["evaluations"][2]["action"]["name"] = json!("can_edit");
    assert_eq!(
        parse_evaluations(&bytes(&override_only), SYNC),
        Err(refused(
            "unsupported_action",
            "evaluations[2].action.name \"can_edit\" is not supported; allowed: \"call\""
        ))
    );
    // The options example: an item's own subject, and the misspelt option ignored.
    let options = parse_evaluations(&bytes(&adapt(spec_options(), false)), SYNC);
    let options = options.map_err(|e| e.message);
    assert_eq!(
        options
            .as_ref()
            .map(|o| (o.semantic, o.requests.len(), o.requests[0].token.as_str())),
        Err(&"evaluations[0].action is required".to_owned())
    );
}

#[test]
fn the_spec_semantics_examples_parse_and_stop_where_the_spec_shows() {
    let semantics = [
        ("execute_all", Semantic::ExecuteAll, 3),
        ("deny_on_first_deny", Semantic::DenyOnFirstDeny, 2),
        ("permit_on_first_permit", Semantic::PermitOnFirstPermit, 1),
    ];
    for (name, semantic, results) in semantics {
        let parsed = parse_evaluations(&bytes(&adapt(spec_semantic(name), false)), SYNC)
            .expect("adapted example parses");
        assert_eq!(parsed.semantic, semantic);
        assert_eq!(
            parsed
                .requests
                .iter()
                .map(|r| r.tool.as_str())
                .collect::<Vec<_>>(),
            ["1", "2", "3"]
        );
        // The spec's responses: document 2 is denied, 1 and 3 permitted.
        let decide = |request: api::AuthorizeRequest| async move {
            Ok(api::AuthorizeResponse {
                allowed: request.tool != "2",
                ..Default::default()
            })
        };
        let decisions: Vec<Value> = block_on(run(parsed.requests, parsed.semantic, decide))
            .into_iter()
            .map(|result| result["decision"].clone())
            .collect();
        let expected = [json!(true), json!(false), json!(true)];
        assert_eq!(decisions, expected[..results], "{name}");
    }
}

fn block_on<T>(future: impl Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime")
        .block_on(future)
}

#[test]
fn an_evaluation_that_fails_is_closed_and_counts_as_a_deny() {
    let requests = vec![request("t", "a", vec![]), request("t", "b", vec![])];
    let decide = |_| async {
        Err(ApiError::new(
            Code::ResourceExhausted,
            crate::Reason::FieldInvalid,
            "queue full",
        ))
    };
    let results = block_on(run(requests, Semantic::DenyOnFirstDeny, decide));
    assert_eq!(
        results,
        vec![json!({
            "decision": false,
            "context": { "error": { "status": 429, "message": "queue full", "warrant_reason": "FIELD_INVALID" } }
        })]
    );
}

#[test]
fn responses_have_the_spec_shape() {
    let allowed = api::AuthorizeResponse {
        decision: Some(log::AccessDecided {
            decision_id: "d-1".to_owned(),
            decision: log::AccessDecision::Allow as i32,
            policy_version: 2,
            determining_policy_ids: vec!["warrant.delegation".to_owned()],
            ..Default::default()
        }),
        receipt_seq: 41,
        allowed: true,
        ..Default::default()
    };
    assert_eq!(
        decision_json(&allowed),
        json!({
            "decision": true,
            "context": {
                "id": "d-1",
                "receipt_seq": 41,
                "receipt_pending": false,
                "policy_version": 2,
                "determining_policies": ["warrant.delegation"],
            }
        })
    );
    let denied = api::AuthorizeResponse {
        decision: Some(log::AccessDecided {
            decision_id: "d-2".to_owned(),
            decision: log::AccessDecision::Deny as i32,
            deny_reason: log::AccessDenyReason::PolicyForbidden as i32,
            message: "forbidden by no-transfer".to_owned(),
            policy_version: 1,
            determining_policy_ids: vec!["no-transfer".to_owned()],
            ..Default::default()
        }),
        receipt_pending: true,
        ..Default::default()
    };
    let denied = decision_json(&denied);
    assert_eq!(denied["decision"], json!(false));
    // A Reason Object: `id`, and `reason_admin` a Reason Field (language tag → string).
    assert_eq!(denied["context"]["id"], json!("d-2"));
    assert_eq!(
        denied["context"]["reason_admin"],
        json!({ "en": "POLICY_FORBIDDEN: forbidden by no-transfer" })
    );
    assert_eq!(denied["context"]["deny_reason"], json!("POLICY_FORBIDDEN"));
    assert_eq!(denied["context"]["receipt_pending"], json!(true));
    assert_eq!(
        configuration("https://warrant.example/"),
        json!({
            "policy_decision_point": "https://warrant.example",
            "access_evaluation_endpoint": "https://warrant.example/access/v1/evaluation",
            "access_evaluations_endpoint": "https://warrant.example/access/v1/evaluations",
        })
    );
}

#[test]
fn bad_input_is_a_400_naming_the_field() {
    let base = || adapt(spec_evaluation(), false);
    let with = |pointer: &str, value: Value| {
        let mut example = base();
        *example.pointer_mut(pointer).expect("a field") = value;
        parse_evaluation(&bytes(&example), SYNC)
    };
    let cases = [
        (
            with("/context/time", json!(1.5)),
            "unsupported_context_value",
            "context.time is a number that is not a 64-bit integer; allowed: a string, a 64-bit integer or a boolean",
        ),
        (
            with("/context/time", json!(null)),
            "unsupported_context_value",
            "context.time is null; allowed: a string, a 64-bit integer or a boolean",
        ),
        (
            with("/context/time", json!([1])),
            "unsupported_context_value",
            "context.time is an array; allowed: a string, a 64-bit integer or a boolean",
        ),
        (
            with("/context", json!("x")),
            "invalid_request",
            "context must be an object",
        ),
        (
            with("/resource/type", json!("account")),
            "unsupported_resource_type",
            "resource.type \"account\" is not supported; allowed: \"tool\"",
        ),
        (
            with("/resource/properties", json!({})),
            "invalid_request",
            "resource names no service: give resource.properties.service, or an id of the form <service_id>/<tool>",
        ),
        (
            with("/resource/properties/service", json!(7)),
            "invalid_request",
            "resource.properties.service must be a string",
        ),
        (
            with("/subject/properties/token", json!("")),
            "invalid_request",
            "subject.properties.token is empty",
        ),
        (
            with("/subject/id", json!(3)),
            "invalid_request",
            "subject.id must be a string",
        ),
        (
            with("/subject", json!(null)),
            "invalid_request",
            "subject must be an object",
        ),
        (
            with("/action/name", json!(null)),
            "invalid_request",
            "action.name must be a string",
        ),
    ];
    for (result, code, message) in cases {
        assert_eq!(result, Err(refused(code, message)));
    }
}

#[test]
fn the_service_may_be_in_the_id_and_context_values_keep_their_type() {
    let base = || adapt(spec_evaluation(), false);
    let mut in_id = base();
    in_id["resource"] = json!({ "type": "tool", "id": "fx-mcp/convert" });
    assert_eq!(
        parse_evaluation(&bytes(&in_id), SYNC).map(|r| (r.service_id, r.tool)),
        Ok(("fx-mcp".to_owned(), "convert".to_owned()))
    );
    // Integers and booleans are attributes too, in name order.
    let mut typed = base();
    typed["context"] = json!({ "amount": 20000, "approved": true });
    assert_eq!(
        parse_evaluation(&bytes(&typed), SYNC).map(|r| r.attributes),
        Ok(vec![
            log::CallerAttribute {
                name: "amount".to_owned(),
                value: Some(log::caller_attribute::Value::LongValue(20000))
            },
            log::CallerAttribute {
                name: "approved".to_owned(),
                value: Some(log::caller_attribute::Value::BoolValue(true))
            },
        ])
    );
}

#[test]
fn bodies_and_batches_are_bounded() {
    assert_eq!(
        parse_evaluation(b"[1]", SYNC),
        Err(refused(
            "invalid_request",
            "the request body must be a JSON object"
        ))
    );
    assert_eq!(
        parse_evaluation(b"{", SYNC).map_err(|e| e.code),
        Err("invalid_request")
    );
    let big = vec![b' '; crate::limits::REQUEST_BYTES_MAX + 1];
    assert_eq!(
        parse_evaluation(&big, SYNC),
        Err(refused(
            "request_too_large",
            "the request body is 65537 bytes; allowed: at most 65536"
        ))
    );
    let mut many = adapt(spec_semantic("execute_all"), false);
    let item = many["evaluations"][0].clone();
    many["evaluations"] = Value::Array(vec![item; AUTHZEN_EVALUATIONS_MAX + 1]);
    assert_eq!(
        parse_evaluations(&bytes(&many), SYNC),
        Err(refused(
            "too_many_evaluations",
            "evaluations holds 65 items; allowed: at most 64"
        ))
    );
    let mut semantic = adapt(spec_semantic("execute_all"), false);
    semantic["options"]["evaluations_semantic"] = json!("first_wins");
    assert_eq!(
        parse_evaluations(&bytes(&semantic), SYNC),
        Err(refused(
            "invalid_request",
            "options.evaluations_semantic \"first_wins\" is not supported; allowed: execute_all, deny_on_first_deny, permit_on_first_permit"
        ))
    );
    let mut context = adapt(spec_evaluation(), false);
    context["context"] = Value::Object(
        (0..=AUTHZEN_CONTEXT_MEMBERS_MAX)
            .map(|i| (format!("a{i}"), json!(i)))
            .collect(),
    );
    assert_eq!(
        parse_evaluation(&bytes(&context), SYNC),
        Err(refused(
            "invalid_request",
            "context holds 33 members; allowed: at most 32"
        ))
    );
    let mut headers = HeaderMap::new();
    assert_eq!(audit_mode(&headers), Ok(api::AuditMode::Sync));
    headers.insert(AUDIT_HEADER, HeaderValue::from_static("ASYNC"));
    assert_eq!(audit_mode(&headers), Ok(api::AuditMode::Async));
    headers.insert(AUDIT_HEADER, HeaderValue::from_static("later"));
    assert_eq!(
        audit_mode(&headers),
        Err(refused(
            "invalid_request",
            "x-warrant-audit must be \"sync\" or \"async\""
        ))
    );
}
