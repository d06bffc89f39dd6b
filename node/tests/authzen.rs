//! The OpenID AuthZEN Authorization API 1.0 on the HTTP port of a real 3-node cluster, spoken by
//! a plain HTTP/1.1 client over TLS: the spec's example request shapes (a single evaluation; a
//! batch with top-level defaults and per-item overrides; the three evaluation semantics) mapped
//! onto Authorize, and answered in the spec's shapes; the metadata document naming both
//! endpoints. Every evaluation is a receipt in the log.
//!
//! The mapping (Warrant's profile of AuthZEN): the subject carries the presented access token in
//! `properties.token`; the resource is `{type: "tool", id: <tool>, properties: {service:
//! <service id>}}` (or id `<service id>/<tool>`); the action is `call`; the context's members are
//! the caller attributes. The caller authenticates with `Authorization` as on gRPC.

mod support;

use serde_json::{Value, json};
use support::{
    cluster::Cluster,
    fx::{
        self, CONVERT, FX_SERVICE, FX_TOOLS, FxWorld, RECORD_WAIT_MAX, TRANSFER, amount_declared,
    },
    tamper_signature,
};
use warrant_proto::log::{self, AccessDecision};

const EVALUATION: &str = "/access/v1/evaluation";
const EVALUATIONS: &str = "/access/v1/evaluations";
const METADATA: &str = "/.well-known/authzen-configuration";
/// The policies in force: no transfers, and no conversion above 10,000.
const POLICY: &str = r#"@id("no-transfers")
forbid(principal, action == Action::"call", resource == Tool::"fx-mcp/transfer");

@id("no-big-converts")
forbid(principal, action == Action::"call", resource == Tool::"fx-mcp/convert")
when { context.attributes has amount && context.attributes.amount > 10000 };
"#;

/// A 3-node cluster with the fx world, a grant of both tools, the assistant's token for them,
/// and [`POLICY`] active.
struct Setup {
    cluster: Cluster,
    world: FxWorld,
    token: String,
}

async fn setup() -> Setup {
    let mut extra = toml::Table::new();
    extra.insert("allow_local_passwords".into(), true.into());
    let cluster = Cluster::start_with(3, extra).await;
    let world = FxWorld::register(cluster.node(1)).await;
    let grant = world.delegate(cluster.node(2), FX_TOOLS, None).await;
    let token = world
        .issue(cluster.node(3), &grant.delegation_id, FX_TOOLS)
        .await
        .access_token;
    fx::publish_and_activate(cluster.node(1), POLICY, vec![amount_declared()]).await;
    Setup {
        cluster,
        world,
        token,
    }
}

fn subject(token: &str) -> Value {
    json!({"type": "agent", "id": fx::ASSISTANT, "properties": {"token": token}})
}

fn tool(name: &str) -> Value {
    json!({"type": "tool", "id": name, "properties": {"service": FX_SERVICE}})
}

fn call() -> Value {
    json!({"name": "call"})
}

impl Setup {
    /// POSTs `body` to `path` on node `node_id` as the gateway: (status, head, body as JSON).
    fn post(
        &self,
        node_id: u64,
        path: &str,
        headers: &[(&str, &str)],
        body: &Value,
    ) -> (u16, String, Value) {
        let node = self.cluster.node(node_id);
        let (status, head, text) =
            node.http_post_json(path, Some(&self.world.gateway.auth()), headers, body);
        let parsed = serde_json::from_str(&text).unwrap_or_else(|e| {
            panic!("POST {path} on node {node_id} answered {status} with non-JSON ({e}): {text:?}")
        });
        (status, head, parsed)
    }

    /// POSTs one evaluation, which must answer 200 in the spec's shape: the decision object.
    fn evaluate(&self, node_id: u64, body: &Value) -> Value {
        let (status, head, decision) = self.post(node_id, EVALUATION, &[], body);
        assert_eq!(status, 200, "POST {EVALUATION}: {decision}");
        assert_json(&head, EVALUATION);
        assert_decision_shape(&decision, EVALUATION);
        decision
    }

    /// POSTs a batch, which must answer 200 with `{"evaluations": [decision, ...]}`: the decisions.
    fn evaluate_all(&self, node_id: u64, body: &Value) -> Vec<Value> {
        let (status, head, reply) = self.post(node_id, EVALUATIONS, &[], body);
        assert_eq!(status, 200, "POST {EVALUATIONS}: {reply}");
        assert_json(&head, EVALUATIONS);
        let evaluations = reply["evaluations"]
            .as_array()
            .unwrap_or_else(|| panic!("no `evaluations` array in {reply}"))
            .clone();
        for decision in &evaluations {
            assert_decision_shape(decision, EVALUATIONS);
        }
        evaluations
    }
}

/// The response head says JSON.
fn assert_json(head: &str, what: &str) {
    assert!(
        head.lines().any(|line| line
            .to_ascii_lowercase()
            .starts_with("content-type: application/json")),
        "{what}: not application/json:\n{head}"
    );
}

/// AuthZEN's Decision: a boolean `decision`, and (Warrant's) context naming the receipt.
fn assert_decision_shape(decision: &Value, what: &str) {
    assert!(
        decision["decision"].is_boolean(),
        "{what}: `decision` is not a boolean: {decision}"
    );
    let context = &decision["context"];
    assert!(context.is_object(), "{what}: no context object: {decision}");
    assert!(
        context["id"].as_str().is_some_and(|id| !id.is_empty()),
        "{what}: the context names no decision id: {decision}"
    );
    assert!(
        context["policy_version"].is_u64(),
        "{what}: no policy_version: {decision}"
    );
    if decision["decision"] == json!(false) {
        assert!(
            context["reason_admin"].is_object(),
            "{what}: a deny without reason_admin: {decision}"
        );
    }
}

fn decisions(evaluations: &[Value]) -> Vec<bool> {
    evaluations
        .iter()
        .map(|e| e["decision"].as_bool().expect("checked shape"))
        .collect()
}

/// Every decision is a receipt in the log (SYNC: at its `receipt_seq`) with the same verdict.
async fn assert_receipts(setup: &Setup, answered: &[&Value]) {
    let events = setup.cluster.node(2).all_events().await;
    let receipts = fx::receipts(&events);
    for decision in answered {
        let id = decision["context"]["id"].as_str().expect("checked shape");
        let logged: Vec<&(u64, log::AccessDecided)> = receipts
            .iter()
            .filter(|(_, r)| r.decision_id == id)
            .collect();
        assert_eq!(logged.len(), 1, "decision {id} is one receipt: {decision}");
        let (seq, receipt) = logged[0];
        assert_eq!(
            decision["context"]["receipt_seq"].as_u64(),
            Some(*seq),
            "decision {id}: the receipt's seq"
        );
        assert_eq!(
            receipt.decision == AccessDecision::Allow as i32,
            decision["decision"] == json!(true),
            "decision {id}: the receipt says {}",
            fx::decision_name(receipt.decision)
        );
        assert_eq!(
            decision["context"]["policy_version"].as_u64(),
            Some(u64::from(receipt.policy_version)),
            "decision {id}"
        );
    }
}

/// How many receipts the log holds now.
async fn receipt_count(setup: &Setup) -> usize {
    fx::receipts(&setup.cluster.node(1).all_events().await).len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_evaluations_answer_the_spec_shape_and_are_receipts() {
    let s = setup().await;
    let small = s.evaluate(
        2,
        &json!({"subject": subject(&s.token), "resource": tool(CONVERT), "action": call(),
                "context": {"amount": 50, "time": "1985-10-26T01:22-07:00"}}),
    );
    assert_eq!(small["decision"], json!(true), "convert 50: {small}");
    assert_eq!(small["context"]["policy_version"], json!(1), "{small}");
    let large = s.evaluate(
        3,
        &json!({"subject": subject(&s.token), "resource": tool(CONVERT), "action": call(),
                "context": {"amount": 20000}}),
    );
    assert_eq!(large["decision"], json!(false), "convert 20,000: {large}");
    // The resource named "<service>/<tool>", without properties.
    let qualified = s.evaluate(
        1,
        &json!({"subject": subject(&s.token), "resource": {"type": "tool", "id": format!("{FX_SERVICE}/{TRANSFER}")},
                "action": call()}),
    );
    assert_eq!(qualified["decision"], json!(false), "transfer: {qualified}");
    assert_receipts(&s, &[&small, &large, &qualified]).await;

    // ASYNC on request: the decision now, its receipt committed after the reply.
    let (status, _, pending) = s.post(
        2,
        EVALUATION,
        &[("x-warrant-audit", "async")],
        &json!({"subject": subject(&s.token), "resource": tool(CONVERT), "action": call()}),
    );
    assert_eq!(
        (status, &pending["decision"]),
        (200, &json!(true)),
        "ASYNC: {pending}"
    );
    let id = pending["context"]["id"]
        .as_str()
        .expect("a decision id")
        .to_string();
    fx::wait_for_events(
        s.cluster.node(3),
        RECORD_WAIT_MAX,
        "the ASYNC receipt",
        |events| {
            fx::receipts(events)
                .iter()
                .any(|(_, r)| r.decision_id == id)
        },
    )
    .await;

    // Refusals decide nothing: no credential is 401, a context value AuthZEN cannot carry as an
    // attribute (a float) is 400.
    let before = receipt_count(&s).await;
    let body = json!({"subject": subject(&s.token), "resource": tool(CONVERT), "action": call()});
    let (status, _, _) = s
        .cluster
        .node(1)
        .http_post_json(EVALUATION, None, &[], &body);
    assert_eq!(status, 401, "an evaluation without a credential");
    let float = json!({"subject": subject(&s.token), "resource": tool(CONVERT), "action": call(),
                       "context": {"amount": 1.5}});
    let gateway = s.world.gateway.auth();
    let (status, _, refused) =
        s.cluster
            .node(2)
            .http_post_json(EVALUATION, Some(&gateway), &[], &float);
    assert_eq!(status, 400, "a float attribute: {refused}");
    assert_eq!(
        receipt_count(&s).await,
        before,
        "a refused evaluation left a receipt"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_apply_defaults_overrides_and_the_three_semantics() {
    let s = setup().await;
    let before = receipt_count(&s).await;
    // Top-level subject, action and context are defaults; an item's own key replaces its default.
    let batch = s.evaluate_all(
        1,
        &json!({
            "subject": subject(&s.token),
            "action": call(),
            "context": {"amount": 50},
            "evaluations": [
                {"resource": tool(CONVERT)},
                {"resource": tool(TRANSFER)},
                {"resource": tool(CONVERT), "context": {"amount": 20000}},
                {"resource": tool(CONVERT), "subject": subject(&tamper_signature(&s.token))},
                {"resource": tool(CONVERT)}
            ]
        }),
    );
    assert_eq!(
        decisions(&batch),
        vec![true, false, false, false, true],
        "defaults and overrides: {batch:?}"
    );
    assert_receipts(&s, &batch.iter().collect::<Vec<_>>()).await;
    assert_eq!(
        receipt_count(&s).await,
        before + 5,
        "one receipt per evaluation"
    );

    let three = |first: &str, second: &str, third: &str, semantic: &str| {
        json!({
            "subject": subject(&s.token),
            "action": call(),
            "options": {"evaluations_semantic": semantic},
            "evaluations": [{"resource": tool(first)}, {"resource": tool(second)}, {"resource": tool(third)}]
        })
    };
    let cases = [
        (
            "execute_all",
            (CONVERT, TRANSFER, CONVERT),
            vec![true, false, true],
        ),
        (
            "deny_on_first_deny",
            (CONVERT, TRANSFER, CONVERT),
            vec![true, false],
        ),
        (
            "permit_on_first_permit",
            (TRANSFER, CONVERT, TRANSFER),
            vec![false, true],
        ),
    ];
    for (node_id, (semantic, (a, b, c), want)) in (1..=3).zip(cases) {
        let before = receipt_count(&s).await;
        let answered = s.evaluate_all(node_id, &three(a, b, c, semantic));
        assert_eq!(decisions(&answered), want, "{semantic}: {answered:?}");
        assert_receipts(&s, &answered.iter().collect::<Vec<_>>()).await;
        assert_eq!(
            receipt_count(&s).await,
            before + want.len(),
            "{semantic}: a receipt for each evaluation made, none for those short-circuited"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metadata_document_names_both_endpoints() {
    let cluster = Cluster::start(3).await;
    for node in cluster.live() {
        let (status, head, body) = node.http_get_with_head(METADATA);
        assert_eq!(status, 200, "node {}: {body}", node.node_id());
        assert_json(&head, METADATA);
        let metadata: Value = serde_json::from_str(&body).expect("the metadata is JSON");
        // As with the OAuth metadata, the PDP is named by the cluster's issuer URL.
        let pdp = node.issuer().trim_end_matches('/');
        assert_eq!(
            metadata["policy_decision_point"],
            json!(pdp),
            "node {}: {metadata}",
            node.node_id()
        );
        assert_eq!(
            metadata["access_evaluation_endpoint"],
            json!(format!("{pdp}{EVALUATION}")),
            "{metadata}"
        );
        assert_eq!(
            metadata["access_evaluations_endpoint"],
            json!(format!("{pdp}{EVALUATIONS}")),
            "{metadata}"
        );
        for absent in [
            "search_subject_endpoint",
            "search_resource_endpoint",
            "search_action_endpoint",
        ] {
            assert!(
                metadata.get(absent).is_none(),
                "{absent} is named but not served: {metadata}"
            );
        }
    }
}
