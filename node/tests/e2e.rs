//! End to end against the real `warrant` binary: register, issue, verify, revoke, SIGKILL,
//! restart on the same data dir, and check that nothing acknowledged was lost or changed.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;

use support::{AgentCredential, Node, invalid_reason_name};
use warrant_proto::{
    api::{self, TokenInvalidReason},
    log::event::Kind,
};

const AUDIENCE: &str = "https://calendar.example/mcp";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_and_the_audit_log_survive_sigkill() {
    let mut node = Node::start().await;

    // Principals.
    let human = node.register_human("alice").await;
    assert_eq!(human.human.as_ref().unwrap().human_id, "alice");
    let agent = AgentCredential::new("alice-assistant");
    let registered = node
        .register_agent(&agent.agent_id, "alice", &agent.secret)
        .await;
    assert_eq!(registered.agent.as_ref().unwrap().owner_human_id, "alice");
    assert_eq!(registered.seq, human.seq + 1);
    let service = node
        .register_service("calendar", AUDIENCE, &["read_events", "create_event"])
        .await;
    assert_eq!(service.service.as_ref().unwrap().audience, AUDIENCE);
    assert_eq!(service.seq, registered.seq + 1);

    // The agent issues a token for itself; the admin verifies it.
    let issued = node.issue(&agent, AUDIENCE, &["read_events"]).await;
    assert_eq!(issued.seq, service.seq + 1);
    assert_eq!(issued.token_type, "Bearer");
    assert!(issued.issued_at_unix_s < issued.expires_at_unix_s);
    let verified = node.verify(&issued.access_token, AUDIENCE).await;
    assert!(
        verified.active,
        "a fresh token is inactive: {} {}",
        invalid_reason_name(verified.reason),
        verified.reason_message
    );
    assert_eq!(verified.agent_id, agent.agent_id);
    assert_eq!(verified.subject, agent.agent_id);
    assert_eq!(verified.owner_human_id, "alice");
    assert_eq!(verified.scopes, vec!["read_events".to_string()]);
    assert_eq!(verified.audience, AUDIENCE);
    assert_eq!(verified.jti, issued.jti);
    assert_eq!(verified.issued_at_unix_s, issued.issued_at_unix_s);
    assert_eq!(verified.expires_at_unix_s, issued.expires_at_unix_s);
    assert!(issued.seq <= verified.applied_seq);

    // Revoke by jti; the token is then inactive with reason REVOKED.
    let revoked = node
        .tokens()
        .revoke(node.admin(api::RevokeRequest {
            jti: issued.jti.clone(),
            reason: "e2e".into(),
            ..Default::default()
        }))
        .await
        .expect("Revoke")
        .into_inner();
    assert!(revoked.changed);
    assert_eq!(revoked.seq, issued.seq + 1);
    assert_revoked(&node, &issued.access_token).await;

    // What was acknowledged before the crash.
    let events_before = node.all_events().await;
    let digest_before = node.digest().await;
    let n = u64::try_from(events_before.len()).unwrap();
    assert_dense(&events_before);
    assert_eq!(n, revoked.seq, "the revoke was the last event");
    assert_eq!(digest_before.applied_seq, n);
    let kinds: Vec<&str> = events_before.iter().map(kind_name).collect();
    assert_eq!(
        kinds,
        [
            "SigningKeyPublished",
            "HumanRegistered",
            "AgentRegistered",
            "ServiceRegistered",
            "TokenIssued",
            "TokenRevoked"
        ]
    );
    match &events_before.last().unwrap().kind {
        Some(Kind::TokenRevoked(event)) => assert_eq!(event.jti, issued.jti),
        other => panic!("the last event is not the revocation: {other:?}"),
    }

    // SIGKILL, restart on the same data dir.
    let pid_before = node.pid().unwrap();
    node.restart().await;
    assert_ne!(
        node.pid().unwrap(),
        pid_before,
        "restart must start a new process"
    );

    // Still revoked; nothing lost, nothing changed, nothing added.
    assert_revoked(&node, &issued.access_token).await;
    let events_after = node.all_events().await;
    assert_eq!(
        events_after, events_before,
        "the audit log changed across SIGKILL + restart"
    );
    let digest_after = node.digest().await;
    assert_eq!(
        digest_after.sha256_hex, digest_before.sha256_hex,
        "the state changed across SIGKILL + restart"
    );
    assert_eq!(digest_after.applied_seq, n);

    // The next write gets exactly the next seq.
    let bob = node.register_human("bob").await;
    assert_eq!(bob.seq, n + 1);
    let events = node.all_events().await;
    assert_eq!(events.len(), events_before.len() + 1);
    assert_eq!(&events[..events_before.len()], &events_before[..]);
    assert_dense(&events);
    match &events.last().unwrap().kind {
        Some(Kind::HumanRegistered(event)) => assert_eq!(event.human_id, "bob"),
        other => panic!("the new event is not bob's registration: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_retries_replay_the_first_outcome() {
    let node = Node::start().await;

    // RegisterHuman retried with the same key and the same request: same seq, no new event.
    let request = api::RegisterHumanRequest {
        idempotency_key: "register-carol-1".into(),
        human_id: "carol".into(),
        display_name: "Carol".into(),
        email: "carol@example.com".into(),
        ..Default::default()
    };
    let first = node
        .identity()
        .register_human(node.admin(request.clone()))
        .await
        .expect("RegisterHuman")
        .into_inner();
    let digest = state_of(&node).await;
    let events = node.all_events().await;
    let retried = node
        .identity()
        .register_human(node.admin(request))
        .await
        .expect("RegisterHuman retry")
        .into_inner();
    assert_eq!(retried.seq, first.seq);
    assert_eq!(retried.human, first.human);
    assert_eq!(node.all_events().await, events, "the retry added an event");
    assert_eq!(state_of(&node).await, digest, "the retry changed the state");

    // Issue retried with the same key: the identical token (same jti, same signed bytes).
    let agent = AgentCredential::new("carol-agent");
    node.register_agent(&agent.agent_id, "carol", &agent.secret)
        .await;
    node.register_service("mail", "https://mail.example/mcp", &["send", "read"])
        .await;
    let issue = api::IssueRequest {
        idempotency_key: "issue-carol-1".into(),
        audience: "https://mail.example/mcp".into(),
        scopes: vec!["read".into()],
        ttl_seconds: 300,
        ..Default::default()
    };
    let first = node
        .tokens()
        .issue(agent.request(issue.clone()))
        .await
        .expect("Issue")
        .into_inner();
    let digest = state_of(&node).await;
    let events = node.all_events().await;
    let retried = node
        .tokens()
        .issue(agent.request(issue.clone()))
        .await
        .expect("Issue retry")
        .into_inner();
    assert_eq!(
        retried, first,
        "a retried Issue must return the identical reply and token"
    );
    assert_eq!(node.all_events().await, events, "the retry added an event");
    assert_eq!(state_of(&node).await, digest, "the retry changed the state");
    let issued_events = events
        .iter()
        .filter(|e| matches!(e.kind, Some(Kind::TokenIssued(_))))
        .count();
    assert_eq!(issued_events, 1);

    // A different key is a different issuance.
    let other = node
        .tokens()
        .issue(agent.request(api::IssueRequest {
            idempotency_key: "issue-carol-2".into(),
            ..issue
        }))
        .await
        .expect("Issue with a new key")
        .into_inner();
    assert_ne!(other.jti, first.jti);
    assert_eq!(other.seq, first.seq + 1);
    let jtis: BTreeSet<String> = node
        .all_events()
        .await
        .into_iter()
        .filter_map(|e| match e.kind {
            Some(Kind::TokenIssued(t)) => Some(t.jti),
            _ => None,
        })
        .collect();
    assert_eq!(jtis, BTreeSet::from([first.jti.clone(), other.jti.clone()]));
    // Both verify.
    for token in [&first.access_token, &other.access_token] {
        let verified = node.verify(token, "https://mail.example/mcp").await;
        assert!(
            verified.active,
            "{}: {}",
            invalid_reason_name(verified.reason),
            verified.reason_message
        );
    }
}

/// The state digest and the applied seq. (The applied Raft index is left out: a replayed retry
/// still goes through the log as an entry, it just adds no event and changes no row.)
async fn state_of(node: &Node) -> (String, u64) {
    let digest = node.digest().await;
    (digest.sha256_hex, digest.applied_seq)
}

async fn assert_revoked(node: &Node, token: &str) {
    let verified = node.verify(token, AUDIENCE).await;
    assert!(!verified.active, "a revoked token verified as active");
    assert_eq!(
        invalid_reason_name(verified.reason),
        TokenInvalidReason::Revoked.as_str_name(),
        "{}",
        verified.reason_message
    );
    assert!(
        verified.subject.is_empty() && verified.scopes.is_empty(),
        "an inactive reply leaks claims: {verified:?}"
    );
}

/// Seqs are exactly 1..=n, in order.
fn assert_dense(events: &[warrant_proto::log::Event]) {
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    let expected: Vec<u64> = (1..=u64::try_from(events.len()).unwrap()).collect();
    assert_eq!(seqs, expected, "event seqs are not dense from 1");
}

fn kind_name(event: &warrant_proto::log::Event) -> &'static str {
    match &event.kind {
        Some(Kind::HumanRegistered(_)) => "HumanRegistered",
        Some(Kind::AgentRegistered(_)) => "AgentRegistered",
        Some(Kind::ServiceRegistered(_)) => "ServiceRegistered",
        Some(Kind::TokenIssued(_)) => "TokenIssued",
        Some(Kind::TokenRevoked(_)) => "TokenRevoked",
        Some(Kind::SigningKeyPublished(_)) => "SigningKeyPublished",
        Some(_) => "Other",
        None => "None",
    }
}
