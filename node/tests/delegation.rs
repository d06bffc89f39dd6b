//! Delegation chains, RFC 8693 token exchange, sessions and kill switches across a real 3-node
//! cluster of `warrant` processes on loopback. Requests are spread over the nodes on purpose:
//! followers forward writes, and every verdict is read LINEARIZABLE on every node.

mod support;

use std::time::{SystemTime, UNIX_EPOCH};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use support::{AgentCredential, Node, cluster::Cluster, error_reason, invalid_reason_name};
use tonic::{Code, Status, transport::Channel};
use warrant_proto::api::{
    self, TokenInvalidReason, delegation_service_client::DelegationServiceClient,
    session_service_client::SessionServiceClient,
};

const CALENDAR: &str = "https://calendar.example/mcp";
const CALENDAR_TOOLS: &[&str] = &["read_events", "create_event", "delete_event"];
const MAIL: &str = "https://mail.example/mcp";
const HUMAN: &str = "hana";
const TOKEN_EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
/// Lifetime of the root grant, and of the child grant below it.
const ROOT_TTL_S: u64 = 3600;
const CHILD_TTL_S: u64 = 1800;

/// A 3-node cluster whose humans may log in with a local password.
async fn start_cluster() -> Cluster {
    let mut extra = toml::Table::new();
    extra.insert("allow_local_passwords".into(), true.into());
    Cluster::start_with(3, extra).await
}

/// Registers `human_id` with a fresh password (as the admin, through `node`) and returns it.
async fn register_human_with_password(node: &Node, human_id: &str) -> String {
    let password = hex::encode(rand::random::<[u8; 16]>());
    node.identity()
        .register_human(node.admin(api::RegisterHumanRequest {
            human_id: human_id.to_string(),
            display_name: format!("Human {human_id}"),
            email: format!("{human_id}@example.com"),
            password: password.clone(),
            ..Default::default()
        }))
        .await
        .expect("RegisterHuman with a password");
    password
}

/// Registers agents owned by `owner`, each with its own random secret.
async fn register_agents(node: &Node, owner: &str, agent_ids: &[&str]) -> Vec<AgentCredential> {
    let mut agents = Vec::new();
    for agent_id in agent_ids {
        let agent = AgentCredential::new(agent_id);
        node.register_agent(&agent.agent_id, owner, &agent.secret)
            .await;
        agents.push(agent);
    }
    agents
}

fn sessions(node: &Node) -> SessionServiceClient<Channel> {
    SessionServiceClient::new(node.channel())
}

fn delegations(node: &Node) -> DelegationServiceClient<Channel> {
    DelegationServiceClient::new(node.channel())
}

/// A human logs in with a password (no metadata).
async fn login(node: &Node, human_id: &str, password: &str) -> api::StartSessionResponse {
    let session = sessions(node)
        .start_session(api::StartSessionRequest {
            human_id: human_id.to_string(),
            password: password.to_string(),
            ..Default::default()
        })
        .await
        .expect("password login")
        .into_inner();
    assert_eq!(session.principal_id, human_id);
    assert!(
        !session.access_token.is_empty(),
        "a human session has a token"
    );
    session
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn now_unix_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs()
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|it| it.to_string()).collect()
}

fn grant(
    parent_delegation_id: &str,
    grantee: &str,
    scopes: &[&str],
    audiences: &[&str],
    expires_at_unix_s: u64,
) -> api::CreateDelegationRequest {
    api::CreateDelegationRequest {
        parent_delegation_id: parent_delegation_id.to_string(),
        grantee_agent_id: grantee.to_string(),
        scopes: strings(scopes),
        audiences: strings(audiences),
        expires_at_unix_s,
        ..Default::default()
    }
}

/// Creates a delegation through `node` with the `authorization` credential.
async fn delegate(
    node: &Node,
    authorization: &str,
    request: api::CreateDelegationRequest,
) -> Result<api::Delegation, Status> {
    let reply = delegations(node)
        .create_delegation(support::with_auth(Some(authorization), request))
        .await?
        .into_inner();
    Ok(reply.delegation.expect("an accepted grant is returned"))
}

/// The agent issues a token for `scopes` on the calendar under `delegation_id` (or for itself
/// when empty), tied to `session_id` when set.
async fn issue(
    node: &Node,
    agent: &AgentCredential,
    delegation_id: &str,
    session_id: &str,
) -> Result<api::IssueResponse, Status> {
    let request = api::IssueRequest {
        audience: CALENDAR.to_string(),
        scopes: strings(&["read_events"]),
        ttl_seconds: 600,
        delegation_id: delegation_id.to_string(),
        session_id: session_id.to_string(),
        ..Default::default()
    };
    Ok(node
        .tokens()
        .issue(agent.request(request))
        .await?
        .into_inner())
}

/// RFC 8693: `actor` (authenticated by its Basic credential) exchanges `subject_token` for a
/// read_events token on the calendar.
async fn exchange(
    node: &Node,
    actor: &AgentCredential,
    subject_token: &str,
) -> Result<api::IssueResponse, Status> {
    let request = api::ExchangeRequest {
        grant_type: TOKEN_EXCHANGE_GRANT.to_string(),
        subject_token: subject_token.to_string(),
        subject_token_type: ACCESS_TOKEN_TYPE.to_string(),
        resource: CALENDAR.to_string(),
        scope: "read_events".to_string(),
        ..Default::default()
    };
    Ok(node
        .tokens()
        .exchange(actor.request(request))
        .await?
        .into_inner())
}

/// The JWT's payload (its base64url middle segment) as JSON.
fn jwt_payload(token: &str) -> Value {
    let mut segments = token.split('.');
    let payload = match (segments.next(), segments.next(), segments.next()) {
        (Some(_), Some(payload), Some(_)) => payload,
        _ => panic!("not a compact JWS: {token}"),
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(payload)
        .expect("the payload is base64url");
    serde_json::from_slice(&bytes).expect("the payload is JSON")
}

/// Verifies `token` as the admin for the calendar audience, LINEARIZABLE, on every node.
async fn verify_everywhere(cluster: &Cluster, token: &str) -> Vec<(u64, api::VerifyResponse)> {
    let mut replies = Vec::new();
    for node in cluster.live() {
        replies.push((node.node_id(), node.verify(token, CALENDAR).await));
    }
    assert_eq!(replies.len(), 3, "every node answered");
    replies
}

/// `token` verifies inactive with `reason` on every node, LINEARIZABLE.
async fn assert_inactive_everywhere(
    cluster: &Cluster,
    token: &str,
    reason: TokenInvalidReason,
    what: &str,
) {
    for (node_id, verified) in verify_everywhere(cluster, token).await {
        assert!(!verified.active, "{what} is still active on node {node_id}");
        assert_eq!(
            invalid_reason_name(verified.reason),
            reason.as_str_name(),
            "{what} on node {node_id}: {}",
            verified.reason_message
        );
    }
}

/// The call failed with `code` and ErrorInfo `reason`.
fn assert_refused<T: std::fmt::Debug>(
    result: Result<T, Status>,
    code: Code,
    reason: &str,
    what: &str,
) {
    let status = match result {
        Ok(reply) => panic!("{what} was accepted: {reply:?}"),
        Err(status) => status,
    };
    assert_eq!(status.code(), code, "{what}: {status:?}");
    assert_eq!(error_reason(&status), reason, "{what}: {status:?}");
}

/// Every live node has converged on the same state digest.
async fn assert_digests_equal(cluster: &Cluster) {
    let digests = cluster.digests().await;
    assert_eq!(digests.len(), 3);
    assert!(
        digests.windows(2).all(|w| w[0].1 == w[1].1),
        "digests differ: {digests:?}"
    );
}

/// H logs in and delegates to A; A delegates a narrower part to B. Returns the session, the root
/// grant and the child grant.
async fn chain_h_a_b(
    cluster: &Cluster,
    password: &str,
    a: &AgentCredential,
    b: &AgentCredential,
) -> (api::StartSessionResponse, api::Delegation, api::Delegation) {
    let (n1, n2) = (cluster.node(1), cluster.node(2));
    let session = login(n1, HUMAN, password).await;
    let now = now_unix_s();
    let root = delegate(
        n1,
        &bearer(&session.access_token),
        api::CreateDelegationRequest {
            task: "plan".to_string(),
            max_depth: 2,
            ..grant(
                "",
                &a.agent_id,
                &["read_events", "create_event"],
                &[CALENDAR],
                now + ROOT_TTL_S,
            )
        },
    )
    .await
    .expect("H delegates to A through node 1");
    assert_eq!(root.root_human_id, HUMAN);
    assert_eq!(root.grantor_id, HUMAN);
    assert_eq!(root.depth, 1);
    assert_eq!(root.max_depth, 2);
    assert_eq!(root.agent_chain, vec![a.agent_id.clone()]);

    // max_depth left at zero: the child takes its parent's cap.
    let child = delegate(
        n2,
        &a.auth(),
        grant(
            &root.delegation_id,
            &b.agent_id,
            &["read_events"],
            &[CALENDAR],
            now + CHILD_TTL_S,
        ),
    )
    .await
    .expect("A delegates to B through node 2");
    assert_eq!(child.parent_delegation_id, root.delegation_id);
    assert_eq!(child.root_human_id, HUMAN);
    assert_eq!(child.grantor_id, a.agent_id);
    assert_eq!(child.depth, 2);
    assert_eq!(child.max_depth, 2, "a child inherits its parent's cap");
    assert_eq!(
        child.agent_chain,
        vec![a.agent_id.clone(), b.agent_id.clone()]
    );
    assert_eq!(
        child.task, "plan",
        "a sub-agent inherits its grantor's task"
    );
    (session, root, child)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_hop_chain_and_cascading_revocation() {
    let cluster = start_cluster().await;
    let (n1, n2, n3) = (cluster.node(1), cluster.node(2), cluster.node(3));
    n1.register_service("calendar", CALENDAR, CALENDAR_TOOLS)
        .await;
    let password = register_human_with_password(n1, HUMAN).await;
    let agents = register_agents(n1, HUMAN, &["agent-a", "agent-b"]).await;
    let (a, b) = (&agents[0], &agents[1]);
    let (session, root, child) = chain_h_a_b(&cluster, &password, a, b).await;

    // B issues under the child grant through node 3: a token for H, acted on by B for A.
    let issued = issue(n3, b, &child.delegation_id, "")
        .await
        .expect("B issues under the child delegation through node 3");
    let claims = jwt_payload(&issued.access_token);
    assert_eq!(claims["sub"], json!(HUMAN));
    assert_eq!(
        claims["act"],
        json!({"sub": b.agent_id, "act": {"sub": a.agent_id}})
    );
    assert_eq!(claims["aud"], json!(CALENDAR));
    assert_eq!(claims["scope"], json!("read_events"));
    assert_eq!(claims["client_id"], json!(b.agent_id));
    assert_eq!(claims["delegation_id"], json!(child.delegation_id));
    assert_eq!(claims["jti"], json!(issued.jti));
    for (node_id, verified) in verify_everywhere(&cluster, &issued.access_token).await {
        assert!(
            verified.active,
            "B's token on node {node_id}: {}",
            verified.reason_message
        );
        assert_eq!(verified.human_id, HUMAN, "node {node_id}");
        assert_eq!(verified.subject, HUMAN, "node {node_id}");
        assert_eq!(verified.agent_id, b.agent_id, "node {node_id}");
        assert_eq!(
            verified.actor_chain,
            vec![b.agent_id.clone(), a.agent_id.clone()],
            "node {node_id}"
        );
        assert_eq!(
            verified.delegation_id, child.delegation_id,
            "node {node_id}"
        );
        assert_eq!(verified.task, "plan", "node {node_id}");
        assert_eq!(verified.scopes, strings(&["read_events"]), "node {node_id}");
    }

    // RFC 8693: A exchanges H's session token for a token that acts for H...
    let exchanged_a = exchange(n2, a, &session.access_token)
        .await
        .expect("A exchanges H's session token through node 2");
    assert_eq!(exchanged_a.issued_token_type, ACCESS_TOKEN_TYPE);
    assert_eq!(exchanged_a.scope, "read_events");
    let claims = jwt_payload(&exchanged_a.access_token);
    assert_eq!(claims["sub"], json!(HUMAN));
    assert_eq!(claims["act"], json!({"sub": a.agent_id}));
    assert_eq!(claims["aud"], json!(CALENDAR));
    assert_eq!(claims["client_id"], json!(a.agent_id));
    assert_eq!(claims["delegation_id"], json!(root.delegation_id));
    assert_eq!(claims["sid"], json!(session.session_id));
    // ...and B exchanges A's exchanged token, through another node, for the next hop.
    let exchanged_b = exchange(n3, b, &exchanged_a.access_token)
        .await
        .expect("B exchanges A's exchanged token through node 3");
    let claims = jwt_payload(&exchanged_b.access_token);
    assert_eq!(claims["sub"], json!(HUMAN));
    assert_eq!(
        claims["act"],
        json!({"sub": b.agent_id, "act": {"sub": a.agent_id}})
    );
    assert_eq!(claims["client_id"], json!(b.agent_id));
    assert_eq!(claims["delegation_id"], json!(child.delegation_id));
    for (node_id, verified) in verify_everywhere(&cluster, &exchanged_b.access_token).await {
        assert!(
            verified.active,
            "B's exchanged token on node {node_id}: {}",
            verified.reason_message
        );
        assert_eq!(
            verified.actor_chain,
            vec![b.agent_id.clone(), a.agent_id.clone()],
            "node {node_id}"
        );
        assert_eq!(verified.human_id, HUMAN, "node {node_id}");
    }

    // H revokes the root grant: everything below it stops verifying, on every node.
    let revoked = n1
        .tokens()
        .revoke(support::with_auth(
            Some(&bearer(&session.access_token)),
            api::RevokeRequest {
                delegation_id: root.delegation_id.clone(),
                reason: "plan cancelled".to_string(),
                ..Default::default()
            },
        ))
        .await
        .expect("H revokes the root delegation")
        .into_inner();
    assert!(revoked.changed, "the revocation added an event");
    assert_inactive_everywhere(
        &cluster,
        &issued.access_token,
        TokenInvalidReason::DelegationRevoked,
        "B's issued token",
    )
    .await;
    assert_inactive_everywhere(
        &cluster,
        &exchanged_b.access_token,
        TokenInvalidReason::DelegationRevoked,
        "B's exchanged token",
    )
    .await;
    assert_inactive_everywhere(
        &cluster,
        &exchanged_a.access_token,
        TokenInvalidReason::DelegationRevoked,
        "A's exchanged token",
    )
    .await;
    // The child grant itself is cut off: B can no longer issue under it.
    assert_refused(
        issue(n2, b, &child.delegation_id, "").await,
        Code::FailedPrecondition,
        "DELEGATION_INACTIVE",
        "an issuance under a child of a revoked delegation",
    );

    assert_digests_equal(&cluster).await;
}

/// Sends a grant that attenuation must refuse through `node`, and checks that it was refused
/// with FAILED_PRECONDITION and `reason`, in apply (the command reached the log), and that the
/// only event it added is the one CommandRejected naming that reason.
async fn assert_refused_with_one_rejection_event(
    cluster: &Cluster,
    node: &Node,
    authorization: &str,
    request: api::CreateDelegationRequest,
    reason: &str,
) {
    let leader = cluster.node(cluster.leader().await);
    let before = leader.digest().await;
    let result = delegate(node, authorization, request).await;
    assert_refused(
        result,
        Code::FailedPrecondition,
        reason,
        &format!("a grant through node {}", node.node_id()),
    );
    let leader = cluster.node(cluster.leader().await);
    let after = leader.digest().await;
    assert!(
        before.applied_index < after.applied_index,
        "{reason}: the grant was refused before reaching the log ({before:?} -> {after:?})"
    );
    // Apply's refusal is an audit fact: one CommandRejected with the reason, and no grant.
    let events = leader.events_after(before.applied_seq).await;
    support::only_refusal_facts(&events, Some(reason))
        .unwrap_or_else(|problem| panic!("{reason}: {problem}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attenuation_violations_are_refused_and_recorded_as_rejections() {
    let cluster = start_cluster().await;
    let (n1, n2, n3) = (cluster.node(1), cluster.node(2), cluster.node(3));
    n1.register_service("calendar", CALENDAR, CALENDAR_TOOLS)
        .await;
    n1.register_service("mail", MAIL, &["read_events", "send_mail"])
        .await;
    let password = register_human_with_password(n1, HUMAN).await;
    let agents = register_agents(n1, HUMAN, &["agent-a", "agent-b", "agent-c"]).await;
    let (a, b, c) = (&agents[0], &agents[1], &agents[2]);
    let (_session, root, child) = chain_h_a_b(&cluster, &password, a, b).await;
    let now = now_unix_s();

    // A grants B a scope the root grant lacks.
    assert_refused_with_one_rejection_event(
        &cluster,
        n3,
        &a.auth(),
        grant(
            &root.delegation_id,
            &b.agent_id,
            &["read_events", "delete_event"],
            &[CALENDAR],
            now + CHILD_TTL_S,
        ),
        "SCOPE_EXCEEDS_PARENT",
    )
    .await;
    // A grants B a lifetime past the root grant's.
    assert_refused_with_one_rejection_event(
        &cluster,
        n1,
        &a.auth(),
        grant(
            &root.delegation_id,
            &b.agent_id,
            &["read_events"],
            &[CALENDAR],
            root.expires_at_unix_s + 60,
        ),
        "EXPIRY_EXCEEDS_PARENT",
    )
    .await;
    // B grants back to A, already in the chain.
    assert_refused_with_one_rejection_event(
        &cluster,
        n2,
        &b.auth(),
        grant(
            &child.delegation_id,
            &a.agent_id,
            &["read_events"],
            &[CALENDAR],
            now + 600,
        ),
        "DELEGATION_CYCLE",
    )
    .await;
    // B grants C a third hop under a chain capped at two.
    assert_refused_with_one_rejection_event(
        &cluster,
        n3,
        &b.auth(),
        grant(
            &child.delegation_id,
            &c.agent_id,
            &["read_events"],
            &[CALENDAR],
            now + 600,
        ),
        "DELEGATION_DEPTH_EXCEEDED",
    )
    .await;
    // A grants B an audience the root grant does not cover (a registered service's).
    assert_refused_with_one_rejection_event(
        &cluster,
        n1,
        &a.auth(),
        grant(
            &root.delegation_id,
            &b.agent_id,
            &["read_events"],
            &[CALENDAR, MAIL],
            now + CHILD_TTL_S,
        ),
        "AUDIENCE_EXCEEDS_PARENT",
    )
    .await;

    // The control: a grant within every bound is accepted, and adds exactly one event.
    let leader = cluster.node(cluster.leader().await);
    let before = leader.digest().await;
    let narrower = delegate(
        n2,
        &a.auth(),
        grant(
            &root.delegation_id,
            &c.agent_id,
            &["create_event"],
            &[CALENDAR],
            now + 600,
        ),
    )
    .await
    .expect("a narrower grant from A to C");
    assert_eq!(narrower.depth, 2);
    let after = cluster.node(cluster.leader().await).digest().await;
    assert_eq!(after.applied_seq, before.applied_seq + 1);
    assert_ne!(after.sha256_hex, before.sha256_hex);

    assert_digests_equal(&cluster).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_and_kill_switches() {
    let cluster = start_cluster().await;
    let (n1, n2, n3) = (cluster.node(1), cluster.node(2), cluster.node(3));
    n1.register_service("calendar", CALENDAR, CALENDAR_TOOLS)
        .await;
    let password = register_human_with_password(n1, HUMAN).await;
    let agents = register_agents(n1, HUMAN, &["agent-a", "agent-k"]).await;
    let (a, k) = (&agents[0], &agents[1]);

    // An agent session: a token tied to it stops verifying when it ends.
    let agent_session = sessions(n1)
        .start_session(a.request(api::StartSessionRequest::default()))
        .await
        .expect("A starts a session with its own credential")
        .into_inner();
    assert_eq!(agent_session.principal_id, a.agent_id);
    let in_session = issue(n2, a, "", &agent_session.session_id)
        .await
        .expect("A issues in its session through node 2");
    let verified = n3.verify(&in_session.access_token, CALENDAR).await;
    assert!(verified.active, "{}", verified.reason_message);
    assert_eq!(verified.session_id, agent_session.session_id);
    let ended = sessions(n1)
        .end_session(a.request(api::EndSessionRequest {
            session_id: agent_session.session_id.clone(),
            reason: "done".to_string(),
            ..Default::default()
        }))
        .await
        .expect("A ends its session through node 1")
        .into_inner();
    assert!(ended.changed);
    let verified = n2.verify(&in_session.access_token, CALENDAR).await;
    assert!(!verified.active, "a token of an ended session verified");
    assert_eq!(
        invalid_reason_name(verified.reason),
        TokenInvalidReason::SessionEnded.as_str_name(),
        "{}",
        verified.reason_message
    );

    // A token exchanged from H's session token ends with H's session.
    let human_session = login(n2, HUMAN, &password).await;
    let as_human = bearer(&human_session.access_token);
    let root = delegate(
        n2,
        &as_human,
        api::CreateDelegationRequest {
            task: "schedule".to_string(),
            ..grant(
                "",
                &a.agent_id,
                &["read_events"],
                &[CALENDAR],
                now_unix_s() + ROOT_TTL_S,
            )
        },
    )
    .await
    .expect("H delegates to A through node 2");
    let exchanged = exchange(n3, a, &human_session.access_token)
        .await
        .expect("A exchanges H's session token through node 3");
    let verified = n1.verify(&exchanged.access_token, CALENDAR).await;
    assert!(verified.active, "{}", verified.reason_message);
    assert_eq!(verified.session_id, human_session.session_id);
    assert_eq!(verified.delegation_id, root.delegation_id);
    sessions(n1)
        .end_session(support::with_auth(
            Some(&as_human),
            api::EndSessionRequest {
                session_id: human_session.session_id.clone(),
                reason: "logout".to_string(),
                ..Default::default()
            },
        ))
        .await
        .expect("H logs out through node 1");
    assert_inactive_everywhere(
        &cluster,
        &exchanged.access_token,
        TokenInvalidReason::SessionEnded,
        "a token exchanged from an ended session",
    )
    .await;

    // The agent kill switch: K's tokens stop verifying and K can no longer issue.
    let killed_token = issue(n1, k, "", "").await.expect("K issues for itself");
    assert!(n3.verify(&killed_token.access_token, CALENDAR).await.active);
    let disabled = n2
        .tokens()
        .revoke(n2.admin(api::RevokeRequest {
            agent_id: k.agent_id.clone(),
            reason: "kill switch".to_string(),
            ..Default::default()
        }))
        .await
        .expect("the admin disables K through node 2")
        .into_inner();
    assert!(disabled.changed);
    assert_inactive_everywhere(
        &cluster,
        &killed_token.access_token,
        TokenInvalidReason::AgentDisabled,
        "a disabled agent's token",
    )
    .await;
    // Every node has applied the disable (the LINEARIZABLE reads above): the credential check
    // itself refuses K.
    assert_refused(
        issue(n3, k, "", "").await,
        Code::PermissionDenied,
        "AGENT_DISABLED",
        "an issuance by a disabled agent",
    );

    // Offboarding H: the token A holds under H's grant stops verifying everywhere, and so does
    // A's own token (its owner is gone).
    let delegated = issue(n1, a, &root.delegation_id, "")
        .await
        .expect("A issues under H's grant");
    let own = issue(n3, a, "", "").await.expect("A issues for itself");
    for token in [&delegated, &own] {
        assert!(n2.verify(&token.access_token, CALENDAR).await.active);
    }
    let offboarded = n3
        .tokens()
        .revoke(n3.admin(api::RevokeRequest {
            human_id: HUMAN.to_string(),
            reason: "offboarded".to_string(),
            ..Default::default()
        }))
        .await
        .expect("the admin disables H through node 3")
        .into_inner();
    assert!(offboarded.changed);
    let observed = verify_everywhere(&cluster, &delegated.access_token).await;
    for (node_id, verified) in &observed {
        assert!(
            !verified.active,
            "the delegated token is active on node {node_id}"
        );
        assert!(
            [
                TokenInvalidReason::HumanDisabled as i32,
                TokenInvalidReason::DelegationRevoked as i32
            ]
            .contains(&verified.reason),
            "node {node_id}: {}",
            invalid_reason_name(verified.reason)
        );
    }
    // The check walks the agent (whose owner is disabled) before the grant: HUMAN_DISABLED, the
    // same on every node.
    for (node_id, verified) in &observed {
        assert_eq!(
            invalid_reason_name(verified.reason),
            TokenInvalidReason::HumanDisabled.as_str_name(),
            "node {node_id}: {}",
            verified.reason_message
        );
    }
    assert_inactive_everywhere(
        &cluster,
        &own.access_token,
        TokenInvalidReason::HumanDisabled,
        "the offboarded human's agent's own token",
    )
    .await;

    assert_digests_equal(&cluster).await;
}
