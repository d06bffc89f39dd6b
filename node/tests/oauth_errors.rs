//! The token endpoint's errors as RFC 6749 §5.2 has them, against the real binary: a refused
//! client gets 401 `invalid_client` with a `WWW-Authenticate` challenge in the scheme it used,
//! and so does a disabled agent with a right secret (not `invalid_scope`: it asked for no scope
//! it lacks); a scope the agent lacks is 400 `invalid_scope`, without a challenge.

mod support;

use support::{AgentCredential, Node, basic_auth, form_urlencode};
use warrant_proto::{api, log::EntityKind};

const AUD: &str = "https://calendar.example/mcp";

/// The status, the `WWW-Authenticate` header (if any) and the JSON body of a token request.
struct Answer {
    status: u16,
    www_authenticate: Option<String>,
    body: serde_json::Value,
}

/// POSTs a client_credentials request for `scope` with `authorization` to the token endpoint.
fn token_request(node: &Node, authorization: &str, scope: &str) -> Answer {
    let body = form_urlencode(&[
        ("grant_type", "client_credentials"),
        ("resource", AUD),
        ("scope", scope),
    ]);
    let request = format!(
        "POST /oauth2/token HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\
         Authorization: {authorization}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let response = node.http_exchange(&request);
    let (head, body) = response.split_once("\r\n\r\n").expect("a head and a body");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("a status line");
    let www_authenticate = head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("www-authenticate")
            .then(|| value.trim().to_string())
    });
    Answer {
        status,
        www_authenticate,
        body: serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_endpoint_errors_follow_rfc_6749() {
    let node = Node::start().await;
    node.register_human("owner").await;
    node.register_service("calendar", AUD, &["read_events"])
        .await;
    let agent = AgentCredential::new("bot");
    node.register_agent(&agent.agent_id, "owner", &agent.secret)
        .await;

    let ok = token_request(&node, &agent.auth(), "read_events");
    assert_eq!(ok.status, 200, "{}", ok.body);

    let wrong_secret = basic_auth(&agent.agent_id, "not-the-secret-but-long-enough");
    let refused = token_request(&node, &wrong_secret, "read_events");
    assert_eq!(
        (refused.status, refused.body["error"].as_str()),
        (401, Some("invalid_client")),
        "{}",
        refused.body
    );
    assert_eq!(
        refused.www_authenticate.as_deref(),
        Some("Basic realm=\"warrant\"")
    );

    let beyond = token_request(&node, &agent.auth(), "delete_everything");
    assert_eq!(
        (beyond.status, beyond.body["error"].as_str()),
        (400, Some("invalid_scope")),
        "{}",
        beyond.body
    );
    assert_eq!(beyond.www_authenticate, None);

    let disable = api::SetStatusRequest {
        entity: EntityKind::Agent as i32,
        id: agent.agent_id.clone(),
        disabled: true,
        reason: "kill switch".into(),
        ..Default::default()
    };
    node.identity()
        .set_status(node.admin(disable))
        .await
        .expect("SetStatus");
    let disabled = token_request(&node, &agent.auth(), "read_events");
    assert_eq!(
        (disabled.status, disabled.body["error"].as_str()),
        (401, Some("invalid_client")),
        "{}",
        disabled.body
    );
    assert_eq!(disabled.body["warrant_reason"], "AGENT_DISABLED");
    assert_eq!(
        disabled.www_authenticate.as_deref(),
        Some("Basic realm=\"warrant\"")
    );
}
