//! Interoperability: a token issued by the real binary verifies in PyJWT, an independent
//! implementation, using only the node's published JWKS. The test installs PyJWT (with
//! `cryptography` for EdDSA) from PyPI into its own temporary directory.

#![allow(clippy::unwrap_used)]

mod support;

use std::{path::Path, process::Command};

use serde_json::Value;
use support::{Node, install_pyjwt, now_unix_s, tamper_signature, with_auth};
use warrant_proto::api::{
    self, delegation_service_client::DelegationServiceClient,
    session_service_client::SessionServiceClient,
};

const AUDIENCE: &str = "https://calendar.example/mcp";
const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/interop/verify_with_pyjwt.py"
);

/// Verifies `token` with PyJWT from `jwks` alone, asserting it accepts it as an RFC 9068 access
/// token, and returns the claims PyJWT decoded.
fn pyjwt_claims(pythonpath: &Path, work: &Path, jwks: &str, token: &str, issuer: &str) -> Value {
    let (ok, stdout, stderr) = pyjwt_verify(pythonpath, work, jwks, token, issuer);
    assert!(ok, "PyJWT rejected a Warrant token: {stderr}");
    let verified: Value = serde_json::from_str(stdout.trim()).expect("verifier prints JSON");
    assert_eq!(verified["typ"], "at+jwt");
    verified["claims"].clone()
}

/// Runs the PyJWT verifier; returns its exit success and stdout.
fn pyjwt_verify(
    pythonpath: &Path,
    work: &Path,
    jwks: &str,
    token: &str,
    issuer: &str,
) -> (bool, String, String) {
    let jwks_path = work.join("jwks.json");
    let token_path = work.join("token.txt");
    std::fs::write(&jwks_path, jwks).unwrap();
    std::fs::write(&token_path, token).unwrap();
    let output = Command::new("python3")
        .arg(SCRIPT)
        .arg(&jwks_path)
        .arg(&token_path)
        .arg(AUDIENCE)
        .arg(issuer)
        .env("PYTHONPATH", pythonpath)
        .output()
        .expect("run python3");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warrant_token_verifies_in_pyjwt_from_the_jwks_alone() {
    let work = tempfile::tempdir().unwrap();
    let pythonpath = work.path().join("site");
    install_pyjwt(&pythonpath);

    let node = Node::start().await;
    let issued = node
        .issue_calendar_token(AUDIENCE, &["read_events", "create_event"])
        .await;
    let (status, jwks) = node.http_get("/.well-known/jwks.json");
    assert_eq!(status, 200, "JWKS: {jwks}");

    let claims = &pyjwt_claims(
        &pythonpath,
        work.path(),
        &jwks,
        &issued.access_token,
        node.issuer(),
    );
    assert_eq!(claims["sub"], "alice-assistant");
    assert_eq!(claims["client_id"], "alice-assistant");
    assert_eq!(claims["aud"], AUDIENCE);
    assert_eq!(claims["scope"], "read_events create_event");
    assert_eq!(claims["jti"], issued.jti.as_str());

    // PyJWT must also refuse what Warrant refuses: a wrong issuer, and a tampered signature.
    let (ok, _, _) = pyjwt_verify(
        &pythonpath,
        work.path(),
        &jwks,
        &issued.access_token,
        "https://evil.example",
    );
    assert!(!ok, "PyJWT accepted a token for the wrong issuer");
    let tampered = tamper_signature(&issued.access_token);
    let (ok, _, _) = pyjwt_verify(&pythonpath, work.path(), &jwks, &tampered, node.issuer());
    assert!(!ok, "PyJWT accepted a tampered token");
}

/// A delegated token (human H → agent A → sub-agent B, B issuing under the child delegation)
/// verifies in PyJWT from the JWKS alone, and carries H as `sub` and the RFC 8693 `act` chain
/// B → A, nested, as PyJWT reads it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delegated_token_verifies_in_pyjwt_with_its_act_chain() {
    let work = tempfile::tempdir().expect("temp dir");
    let pythonpath = work.path().join("site");
    install_pyjwt(&pythonpath);

    let mut extra = toml::Table::new();
    extra.insert("allow_local_passwords".into(), true.into());
    let node = Node::start_with(extra).await;
    let password = hex::encode(rand::random::<[u8; 16]>());
    node.identity()
        .register_human(node.admin(api::RegisterHumanRequest {
            human_id: "hanna".into(),
            display_name: "Hanna".into(),
            email: "hanna@example.com".into(),
            password: password.clone(),
            ..Default::default()
        }))
        .await
        .expect("RegisterHuman with a password");
    let planner = support::AgentCredential::new("planner");
    let researcher = support::AgentCredential::new("researcher");
    for agent in [&planner, &researcher] {
        node.register_agent(&agent.agent_id, "hanna", &agent.secret)
            .await;
    }
    node.register_service("calendar", AUDIENCE, &["read_events", "create_event"])
        .await;

    let session = SessionServiceClient::new(node.channel())
        .start_session(api::StartSessionRequest {
            human_id: "hanna".into(),
            password,
            ..Default::default()
        })
        .await
        .expect("StartSession with a password")
        .into_inner();
    let as_hanna = format!("Bearer {}", session.access_token);
    let now = now_unix_s();
    let mut delegations = DelegationServiceClient::new(node.channel());
    let root = delegations
        .create_delegation(with_auth(
            Some(&as_hanna),
            api::CreateDelegationRequest {
                grantee_agent_id: planner.agent_id.clone(),
                scopes: vec!["read_events".into(), "create_event".into()],
                audiences: vec![AUDIENCE.into()],
                task: "plan the offsite".into(),
                expires_at_unix_s: now + 3600,
                max_depth: 2,
                ..Default::default()
            },
        ))
        .await
        .expect("Hanna delegates to the planner")
        .into_inner()
        .delegation
        .expect("the root delegation");
    let child = delegations
        .create_delegation(planner.request(api::CreateDelegationRequest {
            parent_delegation_id: root.delegation_id.clone(),
            grantee_agent_id: researcher.agent_id.clone(),
            scopes: vec!["read_events".into()],
            audiences: vec![AUDIENCE.into()],
            expires_at_unix_s: now + 1800,
            ..Default::default()
        }))
        .await
        .expect("the planner delegates to the researcher")
        .into_inner()
        .delegation
        .expect("the child delegation");
    let issued = node
        .tokens()
        .issue(researcher.request(api::IssueRequest {
            audience: AUDIENCE.into(),
            scopes: vec!["read_events".into()],
            delegation_id: child.delegation_id.clone(),
            ..Default::default()
        }))
        .await
        .expect("the researcher issues under the child delegation")
        .into_inner();
    let verified = node.verify(&issued.access_token, AUDIENCE).await;
    assert!(verified.active, "Warrant: {}", verified.reason_message);
    assert_eq!(verified.subject, "hanna");
    assert_eq!(verified.actor_chain, ["researcher", "planner"]);

    let (status, jwks) = node.http_get("/.well-known/jwks.json");
    assert_eq!(status, 200, "JWKS: {jwks}");
    let claims = &pyjwt_claims(
        &pythonpath,
        work.path(),
        &jwks,
        &issued.access_token,
        node.issuer(),
    );
    assert_eq!(claims["sub"], "hanna", "{claims}");
    assert_eq!(
        claims["act"],
        serde_json::json!({"sub": "researcher", "act": {"sub": "planner"}}),
        "{claims}"
    );
    assert_eq!(claims["client_id"], "researcher", "{claims}");
    assert_eq!(claims["aud"], AUDIENCE);
    assert_eq!(claims["scope"], "read_events");
    assert_eq!(claims["delegation_id"], child.delegation_id.as_str());
    assert_eq!(claims["jti"], issued.jti.as_str());
}
