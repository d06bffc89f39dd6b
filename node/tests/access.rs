//! Access decisions on a real 3-node cluster of `warrant` processes: issue 10's "Must show" list,
//! one test per item. The seed scenario (alice's assistant on fx-mcp, under policy versions 1 and
//! 2), the kill switch, a budget under concurrent calls, bad policies, denials as audit facts and
//! the behaviour with no policy published. Requests are spread over the nodes on purpose, and
//! every receipt is read back from the log.

mod support;

use std::{
    collections::BTreeSet,
    time::{Duration, Instant},
};

use prost::Message;
use support::{
    AgentCredential, Node, basic_auth,
    cluster::Cluster,
    error_reason,
    fx::{
        self, ASSISTANT, CONVERT, FX_SERVICE, FX_TOOLS, FxWorld, RECORD_WAIT_MAX, TRANSFER, amount,
        amount_declared, authorize_request, decision_name, deny_reason_name, publish_and_activate,
    },
    invalid_reason_name, now_unix_s, with_auth,
};
use tonic::{Code, Status};
use tonic_types::StatusExt;
use warrant_proto::{
    api::{self, AuditMode, TokenInvalidReason},
    log::{self, AccessDecision as D, AccessDenyReason as R, event::Kind},
};

/// Version 1: no transfers at all.
const V1: &str = r#"@id("no-transfers")
forbid(principal, action == Action::"call", resource == Tool::"fx-mcp/transfer");
"#;
/// Version 2: version 1, and no conversion above 10,000.
const V2: &str = r#"@id("no-transfers")
forbid(principal, action == Action::"call", resource == Tool::"fx-mcp/transfer");

@id("no-big-converts")
forbid(principal, action == Action::"call", resource == Tool::"fx-mcp/convert")
when { context.attributes has amount && context.attributes.amount > 10000 };
"#;
/// The built-in policy every evaluation adds: what the delegation grants is permitted.
const BUILT_IN: &str = "warrant.delegation";
/// How far the batch stamp of a SYNC receipt may be from the test's clock (one machine).
const CLOCK_SLACK_MS: u64 = 5_000;

/// A 3-node cluster whose humans may log in with a local password (alice logs in).
async fn start_cluster() -> Cluster {
    let mut extra = toml::Table::new();
    extra.insert("allow_local_passwords".into(), true.into());
    Cluster::start_with(3, extra).await
}

/// What a receipt must say, beyond the facts of the token it was about.
#[derive(Clone, Copy, Debug)]
struct Want<'a> {
    decision: D,
    deny_reason: R,
    policy_version: u32,
    tool: &'a str,
    /// Exactly these determining policies, or `None` when the design leaves them open.
    determining: Option<&'a [&'a str]>,
}

impl<'a> Want<'a> {
    /// ALLOW under `policy_version`. Under an active version Cedar's reason is the built-in
    /// permit; with none active the design does not say whether Cedar runs, so it is open.
    fn allow(tool: &'a str, policy_version: u32) -> Want<'a> {
        Want {
            decision: D::Allow,
            deny_reason: R::Unspecified,
            policy_version,
            tool,
            determining: (0 < policy_version).then_some(&[BUILT_IN][..]),
        }
    }

    fn deny(tool: &'a str, policy_version: u32, reason: R, determining: &'a [&'a str]) -> Want<'a> {
        Want {
            decision: D::Deny,
            deny_reason: reason,
            policy_version,
            tool,
            determining: Some(determining),
        }
    }
}

/// The token a call presents, and what every receipt about it must name.
struct Subject<'a> {
    world: &'a FxWorld,
    token: &'a api::IssueResponse,
    grant: &'a api::Delegation,
}

/// The gateway Authorizes `tool` SYNC under `key` through `node`; the reply must be `want`.
async fn call_sync(
    node: &Node,
    subject: &Subject<'_>,
    key: &str,
    attributes: Vec<log::CallerAttribute>,
    want: Want<'_>,
) -> api::AuthorizeResponse {
    let request = authorize_request(
        key,
        &subject.token.access_token,
        want.tool,
        attributes,
        AuditMode::Sync,
    );
    let started_ms = now_unix_ms();
    let reply = subject
        .world
        .authorize(node, request)
        .await
        .unwrap_or_else(|status| {
            panic!(
                "Authorize {key} through node {}: {status:?}",
                node.node_id()
            )
        });
    check_sync_reply(key, node.node_id(), &reply, started_ms);
    check_receipt(key, subject, want, &reply);
    reply
}

/// A SYNC reply: committed before the reply, decided at its own log position.
fn check_sync_reply(key: &str, node_id: u64, reply: &api::AuthorizeResponse, started_ms: u64) {
    let receipt = reply
        .decision
        .as_ref()
        .unwrap_or_else(|| panic!("{key}: a reply without its receipt: {reply:?}"));
    assert_eq!(reply.audit, AuditMode::Sync as i32, "{key}: {reply:?}");
    assert!(
        !reply.receipt_pending,
        "{key}: a SYNC receipt is pending: {reply:?}"
    );
    assert!(
        0 < reply.receipt_seq,
        "{key}: a SYNC receipt has no seq: {reply:?}"
    );
    assert_eq!(
        reply.allowed,
        receipt.decision == D::Allow as i32,
        "{key}: `allowed` disagrees with the receipt: {reply:?}"
    );
    assert_eq!(
        receipt.decision_id, key,
        "{key}: the SYNC decision id is its key"
    );
    assert_eq!(
        receipt.mode,
        log::AccessMode::Sync as i32,
        "{key}: {receipt:?}"
    );
    assert_eq!(
        receipt.decided_at_seq,
        reply.receipt_seq - 1,
        "{key}: a SYNC decision is made at the seq before its receipt"
    );
    assert_eq!(receipt.serving_node_id, node_id, "{key}: the serving node");
    let now_ms = now_unix_ms();
    assert!(
        started_ms.saturating_sub(CLOCK_SLACK_MS) <= receipt.decided_at_unix_ms
            && receipt.decided_at_unix_ms <= now_ms + CLOCK_SLACK_MS,
        "{key}: decided at {} ms, the call ran from {started_ms} to {now_ms} ms",
        receipt.decided_at_unix_ms
    );
}

/// The receipt names the token's principal, human, chain, grant and task, and decides `want`.
fn check_receipt(key: &str, subject: &Subject<'_>, want: Want<'_>, reply: &api::AuthorizeResponse) {
    let receipt = reply.decision.as_ref().expect("checked by the caller");
    assert_eq!(
        (
            decision_name(receipt.decision),
            deny_reason_name(receipt.deny_reason)
        ),
        (
            want.decision.as_str_name().to_string(),
            want.deny_reason.as_str_name().to_string()
        ),
        "{key}: {} (determining {:?}, errors {:?})",
        receipt.message,
        receipt.determining_policy_ids,
        receipt.evaluation_errors
    );
    assert_eq!(
        receipt.policy_version, want.policy_version,
        "{key}: the version it was decided under"
    );
    if let Some(determining) = want.determining {
        assert_eq!(
            receipt.determining_policy_ids,
            fx::strings(determining),
            "{key}: determining policies"
        );
    }
    assert!(
        receipt.evaluation_errors.is_empty(),
        "{key}: {:?}",
        receipt.evaluation_errors
    );
    if want.decision == D::Deny {
        assert!(!receipt.message.is_empty(), "{key}: a DENY says why");
    }
    assert_eq!(
        receipt.principal_kind,
        log::PrincipalKind::Agent as i32,
        "{key}: {receipt:?}"
    );
    assert_eq!(receipt.principal_id, ASSISTANT, "{key}: the principal");
    assert_eq!(
        receipt.on_behalf_of_human_id,
        fx::ALICE,
        "{key}: on behalf of"
    );
    assert_eq!(
        receipt.agent_chain,
        vec![ASSISTANT.to_string()],
        "{key}: the chain"
    );
    assert_eq!(
        (receipt.service_id.as_str(), receipt.tool.as_str()),
        (FX_SERVICE, want.tool),
        "{key}"
    );
    assert_eq!(
        receipt.token_jti, subject.token.jti,
        "{key}: the token's jti"
    );
    assert_eq!(
        receipt.delegation_id, subject.grant.delegation_id,
        "{key}: the grant"
    );
    assert_eq!(receipt.task, fx::TASK, "{key}: the task");
    assert_eq!(
        receipt.attributes_digest.len(),
        32,
        "{key}: a SHA-256 of the attributes"
    );
    assert_eq!(
        receipt.requested_by.as_ref(),
        Some(&subject.world.gateway_actor()),
        "{key}: requested by the gateway"
    );
}

fn now_unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_millis() as u64
}

// ---------------------------------------------------------------------------------------------
// The seed's scenario
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_scenario_every_receipt_carries_its_version_and_every_node_lists_them_alike() {
    let cluster = start_cluster().await;
    let (n1, n2, n3) = (cluster.node(1), cluster.node(2), cluster.node(3));
    let world = FxWorld::register(n1).await;
    let grant = world.delegate(n2, FX_TOOLS, None).await;
    let token = world.issue(n3, &grant.delegation_id, FX_TOOLS).await;
    let subject = Subject {
        world: &world,
        token: &token,
        grant: &grant,
    };
    // No version active yet: the delegation decides.
    let mut replies =
        vec![call_sync(n1, &subject, "seed-0", vec![], Want::allow(CONVERT, 0)).await];
    replies.extend(seed_under_v1(&cluster, &subject).await);
    replies.extend(seed_under_v2(&cluster, &subject).await);

    let digest = |i: usize| {
        replies[i]
            .decision
            .as_ref()
            .map(|r| r.attributes_digest.clone())
    };
    assert_eq!(
        digest(1),
        digest(2),
        "the digest of no attributes is one value"
    );
    assert_ne!(
        digest(3),
        digest(4),
        "amounts 20,000 and 50 have different digests"
    );
    assert_eq!(
        digest(4),
        digest(5),
        "the digest covers the attributes, not the tool"
    );
    assert_trail_everywhere(&cluster, &replies).await;
}

/// Version 1 (no transfers) active: convert is allowed, transfer denied by the policy.
async fn seed_under_v1(cluster: &Cluster, subject: &Subject<'_>) -> Vec<api::AuthorizeResponse> {
    let (n2, n3) = (cluster.node(2), cluster.node(3));
    let v1 = publish_and_activate(n2, V1, vec![]).await;
    assert_eq!(
        (v1.version, v1.policy_ids.clone()),
        (1, fx::strings(&["no-transfers"]))
    );
    let no_transfers = &["no-transfers"][..];
    vec![
        call_sync(n2, subject, "seed-1", vec![], Want::allow(CONVERT, 1)).await,
        call_sync(
            n3,
            subject,
            "seed-2",
            vec![],
            Want::deny(TRANSFER, 1, R::PolicyForbidden, no_transfers),
        )
        .await,
    ]
}

/// Version 2 (also no conversion above 10,000) active: 20,000 is denied, 50 allowed, and
/// transfers stay denied.
async fn seed_under_v2(cluster: &Cluster, subject: &Subject<'_>) -> Vec<api::AuthorizeResponse> {
    let (n1, n2, n3) = (cluster.node(1), cluster.node(2), cluster.node(3));
    let v2 = publish_and_activate(n3, V2, vec![amount_declared()]).await;
    assert_eq!(v2.version, 2);
    assert_eq!(
        v2.policy_ids,
        fx::strings(&["no-big-converts", "no-transfers"]),
        "in id order"
    );
    let no_big = &["no-big-converts"][..];
    let no_transfers = &["no-transfers"][..];
    vec![
        call_sync(
            n1,
            subject,
            "seed-3",
            vec![amount(20_000)],
            Want::deny(CONVERT, 2, R::PolicyForbidden, no_big),
        )
        .await,
        call_sync(
            n2,
            subject,
            "seed-4",
            vec![amount(50)],
            Want::allow(CONVERT, 2),
        )
        .await,
        call_sync(
            n3,
            subject,
            "seed-5",
            vec![amount(50)],
            Want::deny(TRANSFER, 2, R::PolicyForbidden, no_transfers),
        )
        .await,
    ]
}

/// Every node lists the same receipts in the same order (byte for byte); they are the replies'
/// receipts, each at its reply's seq; each names the version the last activation before it made
/// active; and each was logged as the gateway's.
async fn assert_trail_everywhere(cluster: &Cluster, replies: &[api::AuthorizeResponse]) {
    let mut trails = Vec::new();
    for node in cluster.live() {
        let events = node.all_events().await;
        let encoded: Vec<(u64, Vec<u8>)> = events
            .iter()
            .filter(|e| matches!(e.kind, Some(Kind::AccessDecided(_))))
            .map(|e| (e.seq, e.encode_to_vec()))
            .collect();
        trails.push((node.node_id(), events, encoded));
    }
    assert_eq!(trails.len(), 3, "every node answered");
    let (first_id, events, first) = &trails[0];
    for (node_id, _, encoded) in &trails[1..] {
        assert_eq!(
            encoded.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(),
            first.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(),
            "node {node_id} lists receipts at other seqs than node {first_id}"
        );
        assert!(
            encoded == first,
            "node {node_id}'s receipts differ from node {first_id}'s"
        );
    }
    let logged = fx::receipts(events);
    let replied: Vec<(u64, log::AccessDecided)> = replies
        .iter()
        .map(|r| (r.receipt_seq, r.decision.clone().expect("a receipt")))
        .collect();
    assert_eq!(
        logged, replied,
        "the log's receipts are the replies', in order"
    );
    for (seq, receipt) in &logged {
        let active = events
            .iter()
            .rev()
            .filter(|e| e.seq < *seq)
            .find_map(|e| match &e.kind {
                Some(Kind::PolicyActivated(a)) => Some(a.version),
                _ => None,
            })
            .unwrap_or(0);
        assert_eq!(
            receipt.policy_version, active,
            "the receipt at seq {seq} names v{}, but v{active} was active there",
            receipt.policy_version
        );
        let event = events
            .iter()
            .find(|e| e.seq == *seq)
            .expect("the receipt's event");
        assert_eq!(
            event.actor, receipt.requested_by,
            "seq {seq}: the event's actor is the caller"
        );
        assert_eq!(event.idempotency_key, receipt.decision_id, "seq {seq}");
    }
    let digests = cluster.digests().await;
    assert!(
        digests.windows(2).all(|w| w[0].1 == w[1].1),
        "digests differ: {digests:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// The kill switch
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_switch_on_node_1_denies_linearizable_authorize_on_nodes_2_and_3_with_receipts() {
    let cluster = start_cluster().await;
    let (n1, n2, n3) = (cluster.node(1), cluster.node(2), cluster.node(3));
    let world = FxWorld::register(n1).await;
    let grant = world.delegate(n1, &[CONVERT], None).await;
    let token = world.issue(n1, &grant.delegation_id, &[CONVERT]).await;
    let asynchronous =
        || authorize_request("", &token.access_token, CONVERT, vec![], AuditMode::Async);

    // The control: before the switch, an ASYNC LINEARIZABLE call on node 2 is allowed.
    let before = world
        .authorize(n2, asynchronous())
        .await
        .expect("ASYNC Authorize before the switch");
    check_async_reply("before the switch", 2, &before);
    assert!(before.allowed, "before the switch: {before:?}");

    let disabled = n1
        .tokens()
        .revoke(n1.admin(api::RevokeRequest {
            agent_id: ASSISTANT.to_string(),
            reason: "kill switch".to_string(),
            ..Default::default()
        }))
        .await
        .expect("the admin disables the assistant through node 1")
        .into_inner();
    assert!(disabled.changed, "the disable added an event");

    let mut pending = vec![before];
    let mut committed = Vec::new();
    for node in [n2, n3] {
        let id = node.node_id();
        let reply = world
            .authorize(node, asynchronous())
            .await
            .expect("ASYNC Authorize after the switch");
        check_async_reply(&format!("ASYNC on node {id}"), id, &reply);
        check_killed(&format!("ASYNC on node {id}"), &reply, disabled.seq);
        pending.push(reply);
        let key = format!("killed-{id}");
        let request =
            authorize_request(&key, &token.access_token, CONVERT, vec![], AuditMode::Sync);
        let started_ms = now_unix_ms();
        let reply = world
            .authorize(node, request)
            .await
            .expect("SYNC Authorize after the switch");
        check_sync_reply(&key, id, &reply, started_ms);
        check_killed(&key, &reply, disabled.seq);
        assert!(
            disabled.seq < reply.receipt_seq,
            "{key}: receipt before the disable"
        );
        committed.push(reply);
    }
    assert_async_receipts_logged(n1, &pending).await;
    let events = n1.all_events().await;
    for reply in &committed {
        let logged = events
            .iter()
            .find(|e| e.seq == reply.receipt_seq)
            .map(|e| &e.kind);
        assert_eq!(
            logged,
            Some(&reply.decision.clone().map(Kind::AccessDecided)),
            "the SYNC deny's receipt is the event at its seq"
        );
    }
    let digests = cluster.digests().await;
    assert!(
        digests.windows(2).all(|w| w[0].1 == w[1].1),
        "digests differ: {digests:?}"
    );
}

/// An ASYNC reply: decided on `node_id` at its applied seq, the receipt queued.
fn check_async_reply(what: &str, node_id: u64, reply: &api::AuthorizeResponse) {
    let receipt = reply
        .decision
        .as_ref()
        .unwrap_or_else(|| panic!("{what}: a reply without its receipt: {reply:?}"));
    assert_eq!(reply.audit, AuditMode::Async as i32, "{what}: {reply:?}");
    assert!(
        reply.receipt_pending,
        "{what}: an ASYNC receipt is pending: {reply:?}"
    );
    assert_eq!(reply.receipt_seq, 0, "{what}: no seq while pending");
    assert_eq!(
        reply.allowed,
        receipt.decision == D::Allow as i32,
        "{what}: {reply:?}"
    );
    assert_eq!(receipt.mode, log::AccessMode::Async as i32, "{what}");
    assert_eq!(receipt.serving_node_id, node_id, "{what}: the serving node");
    assert!(
        !receipt.decision_id.is_empty(),
        "{what}: the node names its decision"
    );
}

/// DENY TOKEN_INVALID / AGENT_DISABLED, decided after the disable at `disabled_seq`.
fn check_killed(what: &str, reply: &api::AuthorizeResponse, disabled_seq: u64) {
    let receipt = reply.decision.as_ref().expect("checked before");
    assert!(
        !reply.allowed,
        "{what}: a disabled agent's call was allowed: {reply:?}"
    );
    assert_eq!(
        (
            deny_reason_name(receipt.deny_reason),
            invalid_reason_name(receipt.token_invalid_reason as i32)
        ),
        (
            R::TokenInvalid.as_str_name().to_string(),
            TokenInvalidReason::AgentDisabled.as_str_name().to_string()
        ),
        "{what}: {}",
        receipt.message
    );
    assert!(
        disabled_seq <= receipt.decided_at_seq,
        "{what}: decided at seq {}, before the disable at {disabled_seq} (LINEARIZABLE)",
        receipt.decided_at_seq
    );
    // The denial names whose token it was: the agent, the human it acts for, the token.
    assert_eq!(
        (
            receipt.principal_id.as_str(),
            receipt.on_behalf_of_human_id.as_str()
        ),
        (ASSISTANT, fx::ALICE),
        "{what}: the receipt names the disabled agent and its human: {receipt:?}"
    );
    assert!(
        !receipt.token_jti.is_empty(),
        "{what}: the receipt names the token: {receipt:?}"
    );
}

/// Waits (bounded) until `node` lists every pending reply's receipt, then checks each was
/// recorded as decided, by the node that decided it.
async fn assert_async_receipts_logged(node: &Node, pending: &[api::AuthorizeResponse]) {
    let ids: BTreeSet<String> = pending
        .iter()
        .map(|r| r.decision.as_ref().expect("a receipt").decision_id.clone())
        .collect();
    assert_eq!(
        ids.len(),
        pending.len(),
        "every ASYNC decision has its own id"
    );
    let events = fx::wait_for_events(node, RECORD_WAIT_MAX, "the ASYNC receipts", |events| {
        let logged: BTreeSet<String> = fx::receipts(events)
            .into_iter()
            .map(|(_, r)| r.decision_id)
            .collect();
        ids.is_subset(&logged)
    })
    .await;
    for reply in pending {
        let receipt = reply.decision.as_ref().expect("a receipt");
        let matching: Vec<&log::Event> = events
            .iter()
            .filter(|e| matches!(&e.kind, Some(Kind::AccessDecided(r)) if r.decision_id == receipt.decision_id))
            .collect();
        assert_eq!(
            matching.len(),
            1,
            "receipt {} is logged once",
            receipt.decision_id
        );
        let event = matching[0];
        assert_eq!(
            event.kind,
            Some(Kind::AccessDecided(receipt.clone())),
            "an ASYNC receipt is recorded as decided"
        );
        assert_eq!(
            event.actor.as_ref().map(|a| (a.kind, a.id.clone())),
            Some((
                log::PrincipalKind::Node as i32,
                receipt.serving_node_id.to_string()
            )),
            "receipt {} is recorded by the node that decided it",
            receipt.decision_id
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Budget
// ---------------------------------------------------------------------------------------------

/// SYNC calls in the budget test, and the budget they share.
const BUDGET_CALLS: usize = 6;
const BUDGET_TOTAL: u64 = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_of_three_allows_exactly_three_of_six_concurrent_calls_over_three_nodes() {
    let cluster = start_cluster().await;
    let world = FxWorld::register(cluster.node(1)).await;
    let budget = log::CallBudget {
        total: BUDGET_TOTAL,
        tools: vec![],
    };
    let grant = world
        .delegate(cluster.node(2), &[CONVERT], Some(budget.clone()))
        .await;
    assert_eq!(
        grant.budget.as_ref(),
        Some(&budget),
        "the grant carries its budget"
    );
    let token = world
        .issue(cluster.node(3), &grant.delegation_id, &[CONVERT])
        .await;

    let replies = concurrent_budget_calls(&cluster, &world, &token.access_token).await;
    let outcomes: Vec<(String, String)> = replies
        .iter()
        .map(|(_, r)| {
            let receipt = r.decision.as_ref().expect("a receipt");
            (
                decision_name(receipt.decision),
                deny_reason_name(receipt.deny_reason),
            )
        })
        .collect();
    let allow = (
        D::Allow.as_str_name().to_string(),
        R::Unspecified.as_str_name().to_string(),
    );
    let exhausted = (
        D::Deny.as_str_name().to_string(),
        R::BudgetExhausted.as_str_name().to_string(),
    );
    let want: Vec<(String, String)> = (0..BUDGET_CALLS)
        .map(|i| {
            if (i as u64) < BUDGET_TOTAL {
                allow.clone()
            } else {
                exhausted.clone()
            }
        })
        .collect();
    assert_eq!(
        outcomes, want,
        "in log order, the first three are allowed and the rest exhausted"
    );
    let seqs: BTreeSet<u64> = replies.iter().map(|(_, r)| r.receipt_seq).collect();
    assert_eq!(seqs.len(), BUDGET_CALLS, "each call has its own receipt");
    assert_budget_spent_everywhere(&cluster, &grant.delegation_id, BUDGET_TOTAL).await;
    check_spent_budget(&cluster, &world, &token.access_token, &replies[0]).await;
    assert_budget_spent_everywhere(&cluster, &grant.delegation_id, BUDGET_TOTAL).await;
}

/// [`BUDGET_CALLS`] SYNC Authorize calls at once, round robin over the nodes: (key, reply), in
/// receipt order.
async fn concurrent_budget_calls(
    cluster: &Cluster,
    world: &FxWorld,
    token: &str,
) -> Vec<(String, api::AuthorizeResponse)> {
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..BUDGET_CALLS {
        let node_id = (i % 3) as u64 + 1;
        let channel = cluster.node(node_id).channel();
        let key = format!("budget-{i}");
        let request = authorize_request(&key, token, CONVERT, vec![], AuditMode::Sync);
        let authorization = world.gateway.auth();
        calls.spawn(async move {
            let reply = fx::authz(channel)
                .authorize(with_auth(Some(&authorization), request))
                .await;
            (key, node_id, reply.map(tonic::Response::into_inner))
        });
    }
    let mut replies = Vec::new();
    while let Some(joined) = calls.join_next().await {
        let (key, node_id, reply) = joined.expect("an Authorize task panicked");
        let reply =
            reply.unwrap_or_else(|status| panic!("{key} through node {node_id}: {status:?}"));
        check_sync_reply(&key, node_id, &reply, 0);
        replies.push((key, reply));
    }
    replies.sort_by_key(|(_, reply)| reply.receipt_seq);
    replies
}

/// Once the budget is spent: a retry of the allowed call `first`, through another node, is the
/// same decision (and spends nothing); ASYNC on the budgeted grant is decided SYNC, exhausted.
async fn check_spent_budget(
    cluster: &Cluster,
    world: &FxWorld,
    token: &str,
    (key, first): &(String, api::AuthorizeResponse),
) {
    let retry = world
        .authorize(
            cluster.node(3),
            authorize_request(key, token, CONVERT, vec![], AuditMode::Sync),
        )
        .await
        .expect("the retry of an allowed call");
    assert_eq!(
        (retry.receipt_seq, &retry.decision),
        (first.receipt_seq, &first.decision),
        "{key}'s retry"
    );
    let upgraded = world
        .authorize(
            cluster.node(1),
            authorize_request("", token, CONVERT, vec![], AuditMode::Async),
        )
        .await
        .expect("ASYNC Authorize on a budgeted grant");
    assert_eq!(
        upgraded.audit,
        AuditMode::Sync as i32,
        "ASYNC on a budget is decided SYNC: {upgraded:?}"
    );
    assert!(
        !upgraded.receipt_pending && 0 < upgraded.receipt_seq,
        "{upgraded:?}"
    );
    let receipt = upgraded.decision.as_ref().expect("a receipt");
    assert_eq!(
        deny_reason_name(receipt.deny_reason),
        R::BudgetExhausted.as_str_name()
    );
}

/// GetDelegation LINEARIZABLE on every node reports `spent` units of the grant's budget.
async fn assert_budget_spent_everywhere(cluster: &Cluster, delegation_id: &str, spent: u64) {
    for node in cluster.live() {
        let delegation = fx::delegations(node)
            .get_delegation(node.admin(api::GetDelegationRequest {
                delegation_id: delegation_id.to_string(),
                read: Some(support::linearizable()),
            }))
            .await
            .expect("GetDelegation")
            .into_inner();
        assert_eq!(
            delegation.budget_spent.as_ref().map(|b| b.total),
            Some(spent),
            "node {}: {:?}",
            node.node_id(),
            delegation.budget_spent
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Bad policies
// ---------------------------------------------------------------------------------------------

/// A policy text with one planted error, and where Cedar reports it (1-based; the start of
/// Cedar's source span, as cedar-policy 4.14.1 gives it for this text).
struct Planted {
    name: &'static str,
    text: &'static str,
    line: u32,
    column: u32,
    /// The policy the error is in, when it parses far enough to have one.
    policy_id: Option<&'static str>,
}

const PLANTED: &[Planted] = &[
    Planted {
        name: "a syntax error (an operator without its operand)",
        text: "@id(\"big\")\nforbid(principal, action == Action::\"call\", resource)\nwhen { context.attributes.amount > };\n",
        line: 3,
        column: 36,
        policy_id: None,
    },
    Planted {
        name: "an unknown attribute (colour is not declared)",
        text: "@id(\"colour\")\nforbid(principal, action == Action::\"call\", resource)\nwhen { context.attributes.colour == \"red\" };\n",
        line: 3,
        column: 8,
        policy_id: Some("colour"),
    },
    Planted {
        name: "a wrong type (a Long compared with a String)",
        text: "@id(\"big\")\nforbid(principal, action == Action::\"call\", resource)\nwhen { context.attributes has amount && context.attributes.amount > \"10000\" };\n",
        line: 3,
        column: 69,
        policy_id: Some("big"),
    },
    Planted {
        name: "an unknown entity type (Robot)",
        text: "@id(\"robots\")\nforbid(principal == Robot::\"r2\", action == Action::\"call\", resource);\n",
        line: 2,
        column: 21,
        policy_id: Some("robots"),
    },
];

/// The node's limits the cases probe: identity::limits::POLICIES_PER_SET_MAX,
const POLICIES_PER_SET_MAX: usize = 1024;
/// identity::limits::POLICY_TEXT_BYTES_MAX.
const POLICY_TEXT_BYTES_MAX: usize = 256 * 1024;
const ONE_MIB: usize = 1024 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_policies_are_refused_with_reason_and_position_and_change_nothing() {
    let cluster = start_cluster().await;
    for (i, planted) in PLANTED.iter().enumerate() {
        let node = cluster.node(i as u64 % 3 + 1);
        let before = converged_digest(&cluster).await;
        check_planted_validate(node, planted).await;
        let refused = publish(node, planted.text).await;
        let status = assert_status(
            refused,
            Code::InvalidArgument,
            &["POLICY_INVALID"],
            planted.name,
        );
        let violations = status
            .get_details_bad_request()
            .map(|b| b.field_violations)
            .unwrap_or_default();
        let at = format!("line {}, column {}:", planted.line, planted.column);
        assert!(
            violations
                .iter()
                .any(|v| v.field == "text" && v.description.starts_with(&at)),
            "{}: no BadRequest violation of `text` at {at:?}: {violations:?}",
            planted.name
        );
        assert_unchanged(&cluster, &before, planted.name).await;
    }
    check_size_limits(&cluster).await;
    check_unknown_versions(&cluster).await;

    // The control: a valid text is published, as version 1 (no refusal took a number), with one
    // PolicyPublished event.
    let before = converged_digest(&cluster).await;
    let published = publish(cluster.node(2), V1)
        .await
        .expect("Publish a valid text");
    assert_eq!(
        published.version, 1,
        "the refused texts took no version number"
    );
    let after = converged_digest(&cluster).await;
    assert_eq!(
        after.applied_seq,
        before.applied_seq + 1,
        "one event for a publication"
    );
    let events = cluster.node(3).all_events().await;
    assert!(
        matches!(events.last().and_then(|e| e.kind.as_ref()), Some(Kind::PolicyPublished(p)) if p.version == 1 && p.text == V1),
        "the last event is v1's publication: {:?}",
        events.last()
    );
}

/// Validate (the dry run) reports exactly the planted error, at its position.
async fn check_planted_validate(node: &Node, planted: &Planted) {
    let validated = fx::policies(node)
        .validate(node.admin(api::ValidatePolicyRequest {
            text: planted.text.to_string(),
            attributes: vec![amount_declared()],
        }))
        .await
        .unwrap_or_else(|status| panic!("Validate {}: {status:?}", planted.name))
        .into_inner();
    assert!(!validated.valid, "{}: valid", planted.name);
    let positions: Vec<(u32, u32)> = validated
        .errors
        .iter()
        .map(|e| (e.line, e.column))
        .collect();
    assert_eq!(
        positions,
        vec![(planted.line, planted.column)],
        "{}: {:?}",
        planted.name,
        validated.errors
    );
    let error = &validated.errors[0];
    assert!(
        !error.message.is_empty(),
        "{}: an error says what is wrong",
        planted.name
    );
    if let Some(policy_id) = planted.policy_id {
        assert_eq!(error.policy_id, policy_id, "{}: {error:?}", planted.name);
    }
}

/// A 1 MiB text, and one policy over the count limit, are refused; exactly the limit is valid.
async fn check_size_limits(cluster: &Cluster) {
    let node = cluster.node(3);
    let filler = "// padding, to make the text one mebibyte long\n";
    let mut huge = V1.to_string();
    while huge.len() < ONE_MIB {
        huge.push_str(filler);
    }
    let before = converged_digest(cluster).await;
    // PolicyService decodes requests up to the text limit plus 64 KiB: beyond, the transport
    // refuses the message before anything reads it, naming its limit.
    let status = assert_status(
        publish(node, &huge).await,
        Code::ResourceExhausted,
        &["REQUEST_TOO_LARGE"],
        "a 1 MiB policy",
    );
    assert!(
        !status.message().is_empty(),
        "a 1 MiB policy: the status says why"
    );
    assert_unchanged(cluster, &before, "a 1 MiB policy").await;
    // Just over the text limit, it reaches the edge's own check: a field too long, naming it.
    let mut over = V1.to_string();
    while over.len() <= POLICY_TEXT_BYTES_MAX {
        over.push_str(filler);
    }
    let status = assert_status(
        publish(node, &over).await,
        Code::InvalidArgument,
        &["FIELD_TOO_LONG"],
        "a policy just over 256 KiB",
    );
    assert!(
        status.message().contains("at most 262144 bytes"),
        "a policy just over 256 KiB: the message names the limit: {}",
        status.message()
    );
    assert_unchanged(cluster, &before, "a policy over the limit").await;

    let policies = |n: usize| "permit(principal, action, resource);\n".repeat(n);
    let at_limit = fx::policies(node)
        .validate(node.admin(api::ValidatePolicyRequest {
            text: policies(POLICIES_PER_SET_MAX),
            attributes: vec![],
        }))
        .await
        .expect("Validate exactly the policy-count limit")
        .into_inner();
    assert!(
        at_limit.valid,
        "{POLICIES_PER_SET_MAX} policies: {:?}",
        at_limit.errors.first()
    );
    assert_eq!(at_limit.policy_ids.len(), POLICIES_PER_SET_MAX);
    let status = assert_status(
        publish(node, &policies(POLICIES_PER_SET_MAX + 1)).await,
        Code::InvalidArgument,
        &["POLICY_INVALID"],
        "one policy over the count limit",
    );
    let violations = status
        .get_details_bad_request()
        .map(|b| b.field_violations)
        .unwrap_or_default();
    let limit = POLICIES_PER_SET_MAX.to_string();
    assert!(
        status.message().contains(&limit)
            || violations.iter().any(|v| v.description.contains(&limit)),
        "the refusal names the limit {limit}: {} {violations:?}",
        status.message()
    );
    assert_unchanged(cluster, &before, "one policy over the count limit").await;
}

/// Activating or shadowing a version never published is NOT_FOUND; if apply made the refusal,
/// its one trace is a CommandRejected event.
async fn check_unknown_versions(cluster: &Cluster) {
    let node = cluster.node(1);
    let before = converged_digest(cluster).await;
    let activated = fx::policies(node)
        .activate(node.admin(api::ActivatePolicyRequest {
            version: 99,
            ..Default::default()
        }))
        .await;
    assert_status(
        activated,
        Code::NotFound,
        &["POLICY_VERSION_NOT_FOUND"],
        "activating v99",
    );
    let before = assert_unchanged_or_rejected(
        cluster,
        &before,
        "activate_policy",
        log::RejectReason::PolicyVersionNotFound,
    )
    .await;
    let shadowed = fx::policies(node)
        .set_shadow(node.admin(api::SetShadowPolicyRequest {
            version: 99,
            ..Default::default()
        }))
        .await;
    assert_status(
        shadowed,
        Code::NotFound,
        &["POLICY_VERSION_NOT_FOUND"],
        "shadowing v99",
    );
    assert_unchanged_or_rejected(
        cluster,
        &before,
        "set_shadow_policy",
        log::RejectReason::PolicyVersionNotFound,
    )
    .await;
}

async fn publish(node: &Node, text: &str) -> Result<api::PublishPolicyResponse, Status> {
    fx::policies(node)
        .publish(node.admin(api::PublishPolicyRequest {
            text: text.to_string(),
            description: "a test policy".to_string(),
            attributes: vec![amount_declared()],
            ..Default::default()
        }))
        .await
        .map(tonic::Response::into_inner)
}

/// The call failed with `code` and one of `reasons` in its ErrorInfo; the status.
fn assert_status<T: std::fmt::Debug>(
    result: Result<T, Status>,
    code: Code,
    reasons: &[&str],
    what: &str,
) -> Status {
    let status = match result {
        Ok(reply) => panic!("{what} was accepted: {reply:?}"),
        Err(status) => status,
    };
    let reason = error_reason(&status);
    assert!(
        status.code() == code && reasons.contains(&reason.as_str()),
        "{what}: want {code:?} with one of {reasons:?}, got {:?} {reason:?}: {}",
        status.code(),
        status.message()
    );
    status
}

/// Every node's digest once converged, all equal: one of them.
async fn converged_digest(cluster: &Cluster) -> api::DigestResponse {
    let digests = cluster.digests().await;
    assert!(
        digests.windows(2).all(|w| w[0].1 == w[1].1),
        "digests differ: {digests:?}"
    );
    digests[0].1.clone()
}

async fn assert_unchanged(cluster: &Cluster, before: &api::DigestResponse, what: &str) {
    let after = converged_digest(cluster).await;
    assert_eq!(
        (&after.sha256_hex, after.applied_seq),
        (&before.sha256_hex, before.applied_seq),
        "{what} changed the state"
    );
}

/// The state is unchanged, or exactly one event was added and it is a CommandRejected of
/// `command_kind` with `reason`. The digest after.
async fn assert_unchanged_or_rejected(
    cluster: &Cluster,
    before: &api::DigestResponse,
    command_kind: &str,
    reason: log::RejectReason,
) -> api::DigestResponse {
    let after = converged_digest(cluster).await;
    if after.applied_seq == before.applied_seq {
        assert_eq!(
            after.sha256_hex, before.sha256_hex,
            "{command_kind}: the state changed without an event"
        );
        return after;
    }
    assert_eq!(
        after.applied_seq,
        before.applied_seq + 1,
        "{command_kind}: more than one event"
    );
    let events = cluster.node(2).all_events().await;
    let added: Vec<&log::Event> = events
        .iter()
        .filter(|e| before.applied_seq < e.seq)
        .collect();
    assert!(
        matches!(added[..], [event] if matches!(&event.kind, Some(Kind::CommandRejected(r)) if r.command_kind == command_kind && r.reason == reason as i32)),
        "{command_kind}: the one event added is not its CommandRejected {}: {added:?}",
        reason.as_str_name()
    );
    after
}

// ---------------------------------------------------------------------------------------------
// Denials as audit facts
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_command_is_one_command_rejected_event_and_its_retry_adds_none() {
    let cluster = start_cluster().await;
    let (n1, n2, n3) = (cluster.node(1), cluster.node(2), cluster.node(3));
    let world = FxWorld::register(n1).await;
    let helper = AgentCredential::new("alice-helper");
    n1.register_agent(&helper.agent_id, fx::ALICE, &helper.secret)
        .await;
    let root = world.delegate(n1, &[CONVERT], None).await;
    // The assistant grants its helper more than it holds.
    let widening = api::CreateDelegationRequest {
        idempotency_key: "widen-1".to_string(),
        parent_delegation_id: root.delegation_id.clone(),
        grantee_agent_id: helper.agent_id.clone(),
        scopes: fx::strings(FX_TOOLS),
        audiences: vec![fx::FX_AUDIENCE.to_string()],
        expires_at_unix_s: now_unix_s() + 600,
        ..Default::default()
    };
    let before = converged_digest(&cluster).await;
    let first = fx::delegations(n2)
        .create_delegation(world.assistant.request(widening.clone()))
        .await;
    let first = assert_status(
        first,
        Code::FailedPrecondition,
        &["SCOPE_EXCEEDS_PARENT"],
        "a widening child grant",
    );
    let after = converged_digest(&cluster).await;
    assert_eq!(
        after.applied_seq,
        before.applied_seq + 1,
        "the refusal is one event"
    );
    assert_one_rejection_everywhere(&cluster, "widen-1", after.applied_seq).await;

    // The retry, through another node: the same refusal, and nothing more in the log.
    let retry = fx::delegations(n3)
        .create_delegation(world.assistant.request(widening))
        .await;
    let retry = assert_status(
        retry,
        Code::FailedPrecondition,
        &["SCOPE_EXCEEDS_PARENT"],
        "the retry",
    );
    assert_eq!(
        retry.message(),
        first.message(),
        "the retry returns the same refusal"
    );
    let again = converged_digest(&cluster).await;
    assert_eq!(
        (&again.sha256_hex, again.applied_seq),
        (&after.sha256_hex, after.applied_seq),
        "the retry added an event"
    );
    assert_one_rejection_everywhere(&cluster, "widen-1", after.applied_seq).await;
}

/// Every node lists exactly one CommandRejected under `key`, at `seq`: the assistant's refused
/// create_delegation, SCOPE_EXCEEDS_PARENT.
async fn assert_one_rejection_everywhere(cluster: &Cluster, key: &str, seq: u64) {
    for node in cluster.live() {
        let id = node.node_id();
        let rejected = rejections(&node.all_events().await, key);
        assert_eq!(
            rejected.len(),
            1,
            "node {id}: one CommandRejected under {key}: {rejected:?}"
        );
        let (at, actor, rejection) = &rejected[0];
        assert_eq!(*at, seq, "node {id}");
        assert_eq!(
            actor.as_ref().map(|a| (a.kind, a.id.as_str())),
            Some((log::PrincipalKind::Agent as i32, ASSISTANT)),
            "node {id}: the actor is the authenticated caller"
        );
        assert_eq!(rejection.command_kind, "create_delegation", "node {id}");
        assert_eq!(
            rejection.reason,
            log::RejectReason::ScopeExceedsParent as i32,
            "node {id}: {rejection:?}"
        );
        assert!(
            !rejection.message.is_empty(),
            "node {id}: the rejection says why"
        );
    }
}

/// The CommandRejected events under idempotency key `key`: (seq, actor, event).
fn rejections(
    events: &[log::Event],
    key: &str,
) -> Vec<(u64, Option<log::Actor>, log::CommandRejected)> {
    events
        .iter()
        .filter(|e| e.idempotency_key == key)
        .filter_map(|e| match &e.kind {
            Some(Kind::CommandRejected(r)) => Some((e.seq, e.actor.clone(), r.clone())),
            _ => None,
        })
        .collect()
}

/// Wrong-secret attempts in the flood, and how many are in flight at once.
const WRONG_SECRET_ATTEMPTS: usize = 1000;
const ATTEMPTS_IN_FLIGHT: usize = 4;
/// The documented aggregation: a node flushes every AUTH_FAILURE_FLUSH_INTERVAL, at most
/// AUTH_FAILURES_PER_RECORD_MAX entries per flush (api's limits).
const AUTH_FAILURE_FLUSH_INTERVAL: Duration = Duration::from_secs(10);
const AUTH_FAILURES_PER_RECORD_MAX: usize = 64;
/// How long the test waits for every attempt to be counted: three flushes and slack.
const FLUSH_WAIT_MAX: Duration = Duration::from_secs(40);
/// The claimed id the aggregator folds overflowing keys into.
const OTHER: &str = "(other)";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_wrong_secrets_add_at_most_the_documented_aggregate_events() {
    let cluster = Cluster::start(3).await;
    let n1 = cluster.node(1);
    n1.register_human("victim-owner").await;
    let victim = AgentCredential::new("victim");
    n1.register_agent(&victim.agent_id, "victim-owner", &victim.secret)
        .await;
    let started = Instant::now();
    flood_wrong_secrets(&cluster, &victim.agent_id).await;

    let deadline = tokio::time::Instant::now() + FLUSH_WAIT_MAX;
    let mut failures = auth_failures(&n1.all_events().await, &victim.agent_id);
    while counted(&failures) < WRONG_SECRET_ATTEMPTS as u64
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(support::READY_POLL_INTERVAL).await;
        failures = auth_failures(&n1.all_events().await, &victim.agent_id);
    }
    let elapsed = started.elapsed();
    let total = counted(&failures);
    assert!(
        0 < total,
        "no AuthFailures event within {FLUSH_WAIT_MAX:?} of the flood"
    );
    assert!(
        total <= WRONG_SECRET_ATTEMPTS as u64,
        "the aggregates count {total} failures of {WRONG_SECRET_ATTEMPTS} attempts"
    );
    // Each node flushes at most once per interval in the time the test ran.
    let flushes = (elapsed.as_secs() / AUTH_FAILURE_FLUSH_INTERVAL.as_secs() + 1) as usize;
    let documented = 3 * AUTH_FAILURES_PER_RECORD_MAX * flushes;
    assert!(
        failures.len() <= documented,
        "{} AuthFailures events in {elapsed:?}; documented at most {documented}",
        failures.len()
    );
    // Aggregated per (claimed principal, reason): one entry per key per flush per node.
    let reasons: BTreeSet<&str> = failures.iter().map(|(_, f)| f.reason.as_str()).collect();
    let per_key = 3 * reasons.len() * flushes;
    assert!(
        failures.len() <= per_key,
        "{} events for {} reasons {reasons:?} in {flushes} flushes on 3 nodes: not aggregated",
        failures.len(),
        reasons.len()
    );
    for (actor, failure) in &failures {
        assert!(
            0 < failure.count && failure.first_unix_ms <= failure.last_unix_ms,
            "{failure:?}"
        );
        assert!((1..=3).contains(&failure.node_id), "{failure:?}");
        assert_eq!(
            actor.as_ref().map(|a| (a.kind, a.id.clone())),
            Some((log::PrincipalKind::Node as i32, failure.node_id.to_string())),
            "recorded by the node that saw them: {failure:?}"
        );
        if failure.claimed_id == victim.agent_id {
            assert_eq!(
                failure.claimed_kind,
                log::PrincipalKind::Agent as i32,
                "{failure:?}"
            );
        }
    }
}

/// [`WRONG_SECRET_ATTEMPTS`] Issue calls as `agent_id` with a wrong secret, round robin over the
/// nodes; each must be refused as unauthenticated or rate limited.
async fn flood_wrong_secrets(cluster: &Cluster, agent_id: &str) {
    let authorization = basic_auth(agent_id, "not-the-secret");
    let channels: Vec<_> = cluster.live().map(Node::channel).collect();
    let mut attempts = tokio::task::JoinSet::new();
    let mut refusals = Vec::new();
    for i in 0..WRONG_SECRET_ATTEMPTS {
        if ATTEMPTS_IN_FLIGHT <= attempts.len() {
            refusals.push(
                attempts
                    .join_next()
                    .await
                    .expect("a running attempt")
                    .expect("an attempt panicked"),
            );
        }
        let mut tokens = api::token_service_client::TokenServiceClient::new(
            channels[i % channels.len()].clone(),
        );
        let request = with_auth(
            Some(&authorization),
            api::IssueRequest {
                audience: "https://nowhere.example/mcp".to_string(),
                scopes: vec!["read".to_string()],
                ..Default::default()
            },
        );
        attempts.spawn(async move { tokens.issue(request).await.map(drop) });
    }
    while let Some(done) = attempts.join_next().await {
        refusals.push(done.expect("an attempt panicked"));
    }
    for refusal in refusals {
        let status = refusal.expect_err("a wrong secret was accepted");
        let reason = error_reason(&status);
        assert!(
            status.code() == Code::Unauthenticated
                || (status.code() == Code::ResourceExhausted
                    && ["AUTH_RATE_LIMITED", "AUTH_BUSY"].contains(&reason.as_str())),
            "a wrong secret got {:?} {reason:?}: {}",
            status.code(),
            status.message()
        );
    }
}

/// The AuthFailures events about `claimed_id` (or folded into "(other)"): (actor, aggregate).
fn auth_failures(
    events: &[log::Event],
    claimed_id: &str,
) -> Vec<(Option<log::Actor>, log::AuthFailures)> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            Some(Kind::AuthFailuresRecorded(f))
                if f.claimed_id == claimed_id || f.claimed_id == OTHER =>
            {
                Some((e.actor.clone(), f.clone()))
            }
            _ => None,
        })
        .collect()
}

fn counted(failures: &[(Option<log::Actor>, log::AuthFailures)]) -> u64 {
    failures.iter().map(|(_, f)| f.count).sum()
}

// ---------------------------------------------------------------------------------------------
// No policy published
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_policy_published_the_delegation_scopes_decide() {
    let cluster = start_cluster().await;
    let (n1, n2, n3) = (cluster.node(1), cluster.node(2), cluster.node(3));
    let world = FxWorld::register(n1).await;
    let grant = world.delegate(n2, &[CONVERT], None).await;
    let token = world.issue(n3, &grant.delegation_id, &[CONVERT]).await;
    let listed = fx::policies(n1)
        .list(n1.admin(api::ListPoliciesRequest {
            read: Some(support::linearizable()),
            ..Default::default()
        }))
        .await
        .expect("ListPolicies")
        .into_inner();
    assert!(
        listed.versions.is_empty() && listed.active_version == 0 && listed.shadow_version == 0,
        "a fresh cluster has no policy: {listed:?}"
    );
    let subject = Subject {
        world: &world,
        token: &token,
        grant: &grant,
    };
    let in_scope = call_sync(
        n2,
        &subject,
        "scoped-convert",
        vec![],
        Want::allow(CONVERT, 0),
    )
    .await;
    assert!(in_scope.allowed);
    let out_of_scope = Want::deny(TRANSFER, 0, R::ToolNotInScope, &[]);
    let refused = call_sync(n3, &subject, "scoped-transfer", vec![], out_of_scope).await;
    assert!(!refused.allowed);
    // The serving node decides ASYNC by the same rule.
    let request = authorize_request("", &token.access_token, TRANSFER, vec![], AuditMode::Async);
    let asynchronous = world.authorize(n1, request).await.expect("ASYNC Authorize");
    check_async_reply("ASYNC transfer", 1, &asynchronous);
    let receipt = asynchronous.decision.as_ref().expect("a receipt");
    assert_eq!(
        (
            deny_reason_name(receipt.deny_reason),
            receipt.policy_version
        ),
        (R::ToolNotInScope.as_str_name().to_string(), 0),
        "{}",
        receipt.message
    );
    assert_async_receipts_logged(n2, &[asynchronous]).await;
}
