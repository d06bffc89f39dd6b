//! Marking a signing key compromised, against a real three-node cluster. Node 1 signs a token;
//! the admin marks node 1's key compromised through node 2 (`ClusterService.MarkKeyCompromised`).
//! From then on the token fails Verify on every node with SIGNING_KEY_COMPROMISED, the key is
//! gone from every node's JWKS, and node 1, which did not receive the call, rotates at its next
//! issuance, which succeeds with a new key. A node that receives the call for its own key
//! rotates at once (this one through `warrant key compromised`). Only the admin may mark a key,
//! and marking it again changes nothing.

mod support;

use support::{
    AgentCredential, Node, cluster::Cluster, error_reason, invalid_reason_name, jwt_header,
};
use warrant_proto::{api, log::event::Kind};

const AUD: &str = "https://calendar.example/mcp";

fn kid_of(token: &str) -> String {
    jwt_header(token)["kid"]
        .as_str()
        .expect("a kid")
        .to_string()
}

/// The kids `node` lists at `/.well-known/jwks.json`.
fn jwks_kids(node: &Node) -> Vec<String> {
    let (status, body) = node.http_get("/.well-known/jwks.json");
    assert_eq!(status, 200, "JWKS: {body}");
    let jwks: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    jwks["keys"]
        .as_array()
        .expect("a key list")
        .iter()
        .map(|key| key["kid"].as_str().expect("a kid").to_string())
        .collect()
}

async fn mark(node: &Node, key_id: &str) -> Result<api::MarkKeyCompromisedResponse, tonic::Status> {
    let request = api::MarkKeyCompromisedRequest {
        key_id: key_id.to_string(),
        reason: "key file found on a laptop".to_string(),
        idempotency_key: String::new(),
    };
    node.cluster()
        .mark_key_compromised(node.admin(request))
        .await
        .map(tonic::Response::into_inner)
}

/// Runs `warrant key compromised` against `node` and returns its output.
async fn mark_with_cli(node: &Node, admin_token: &str, key_id: &str) -> String {
    let args: Vec<String> = [
        "key",
        "compromised",
        "--endpoint",
        &node.addr(),
        "--key-id",
        key_id,
    ]
    .into_iter()
    .map(str::to_string)
    .chain(["--admin-token".to_string(), admin_token.to_string()])
    .collect();
    let output = tokio::task::spawn_blocking(move || {
        support::warrant_command()
            .args(&args)
            .arg("--ca")
            .arg(support::Certs::shared().ca_file())
            .output()
            .expect("run warrant key compromised")
    })
    .await
    .expect("join the CLI");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "warrant key compromised failed: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compromised_key_leaves_jwks_and_fails_every_token_it_signed() {
    let cluster = Cluster::start(3).await;
    let (n1, n2) = (cluster.node(1), cluster.node(2));
    n1.register_human("owner").await;
    n1.register_service("calendar", AUD, &["read_events"]).await;
    let agent = AgentCredential::new("bot");
    n1.register_agent(&agent.agent_id, "owner", &agent.secret)
        .await;
    let before = n1.issue(&agent, AUD, &["read_events"]).await;
    let compromised = kid_of(&before.access_token);
    assert!(n2.verify(&before.access_token, AUD).await.active);
    cluster.converged().await;
    for node in cluster.live() {
        assert!(jwks_kids(node).contains(&compromised));
    }

    // Only the admin may mark a key.
    let as_agent = api::MarkKeyCompromisedRequest {
        key_id: compromised.clone(),
        ..Default::default()
    };
    let refused = n2
        .cluster()
        .mark_key_compromised(agent.request(as_agent))
        .await
        .expect_err("an agent marks a key");
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");

    let marked = mark(n2, &compromised).await.expect("MarkKeyCompromised");
    assert!(marked.changed);
    assert_eq!(
        marked.new_key_id, "",
        "node 2 does not sign with node 1's key"
    );
    cluster.converged().await;
    for node in cluster.live() {
        let verified = node.verify(&before.access_token, AUD).await;
        assert!(!verified.active, "node {}", node.node_id());
        assert_eq!(
            invalid_reason_name(verified.reason),
            "TOKEN_INVALID_REASON_SIGNING_KEY_COMPROMISED",
            "node {}: {}",
            node.node_id(),
            verified.reason_message
        );
        assert!(
            !jwks_kids(node).contains(&compromised),
            "node {} still lists the key",
            node.node_id()
        );
    }

    // Node 1 meets the mark at its next issuance, rotates, and issues with the new key.
    let after = n1.issue(&agent, AUD, &["read_events"]).await;
    let rotated = kid_of(&after.access_token);
    assert_ne!(rotated, compromised);
    assert!(n2.verify(&after.access_token, AUD).await.active);
    assert!(jwks_kids(n1).contains(&rotated));

    // Marked again: nothing changes.
    let again = mark(n2, &compromised)
        .await
        .expect("MarkKeyCompromised again");
    assert!(!again.changed);

    // A node told about its own key rotates at once (told by `warrant key compromised`).
    let n2_token = n2.issue(&agent, AUD, &["read_events"]).await;
    let n2_kid = kid_of(&n2_token.access_token);
    let stdout = mark_with_cli(n2, cluster.admin_token(), &n2_kid).await;
    assert!(
        stdout.contains(&format!("key {n2_kid} marked compromised")),
        "{stdout}"
    );
    let new_key_id = stdout
        .split_whitespace()
        .skip_while(|word| *word != "new")
        .nth(2)
        .unwrap_or_else(|| panic!("no new key in the CLI output: {stdout}"))
        .to_string();
    assert_ne!(new_key_id, n2_kid);
    let n2_after = n2.issue(&agent, AUD, &["read_events"]).await;
    assert_eq!(kid_of(&n2_after.access_token), new_key_id);
    let verified = n1.verify(&n2_token.access_token, AUD).await;
    assert_eq!(
        invalid_reason_name(verified.reason),
        "TOKEN_INVALID_REASON_SIGNING_KEY_COMPROMISED"
    );

    // An unknown key is refused with its reason.
    let unknown = mark(n2, "no-such-key").await.expect_err("an unknown key");
    assert_eq!(
        error_reason(&unknown),
        "SIGNING_KEY_NOT_FOUND",
        "{unknown:?}"
    );

    // The log records both marks.
    let marks: Vec<String> = n1
        .all_events()
        .await
        .into_iter()
        .filter_map(|event| match event.kind {
            Some(Kind::SigningKeyCompromised(it)) => Some(it.key_id),
            _ => None,
        })
        .collect();
    assert_eq!(marks, [compromised, n2_kid]);
}
