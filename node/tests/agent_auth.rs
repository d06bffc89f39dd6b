//! Agents and humans authenticating without shared secrets, against real `warrant` processes:
//!
//! - RFC 7523 `private_key_jwt`: an agent signs a short-lived client assertion with an Ed25519
//!   key registered as one of its credentials. An assertion works once, cluster-wide (also when
//!   the same one is submitted to two nodes at once: bad-input row 29); one signed by
//!   another key, expired, or living too long is refused; none of the refusals adds an event.
//! - Federated humans: an id_token from a configured upstream issuer (JWKS from a file, or from
//!   a URL the node fetches) starts a session whose token authenticates the human; a wrong
//!   nonce, an unconfigured issuer or an unregistered subject is refused, and tokens naming an
//!   unknown key cannot turn into a stream of JWKS fetches.
//! - Discovery and the HTTP token endpoint: the metadata documents name the issuer, JWKS and
//!   token endpoint; `client_credentials` with a client assertion gives a token Verify accepts,
//!   and replaying the assertion over HTTP is `invalid_client`.

mod support;

use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

use aws_lc_rs::{
    rand::SystemRandom,
    signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use support::{
    AgentCredential, AgentKey, Node, cluster::Cluster, error_reason, now_unix_s, with_assertion,
    with_auth,
};
use tonic::{Code, Status};
use warrant_proto::{
    api::{
        self, delegation_service_client::DelegationServiceClient,
        session_service_client::SessionServiceClient,
    },
    log::event::Kind,
};

const AUD: &str = "https://calendar.example/mcp";
const TOOLS: [&str; 2] = ["read_events", "create_event"];
/// The client assertion type of RFC 7523 §2.2.
const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The agent issues a token for itself, authenticated by `assertion` alone.
async fn issue_with(node: &Node, assertion: &str) -> Result<api::IssueResponse, Status> {
    node.tokens()
        .issue(with_assertion(
            assertion,
            api::IssueRequest {
                audience: AUD.into(),
                scopes: vec!["read_events".into()],
                ttl_seconds: 600,
                ..Default::default()
            },
        ))
        .await
        .map(tonic::Response::into_inner)
}

/// A refusal before apply leaves the state as it was (`before` and `after` are (sha256, applied
/// seq)), but for the failed-authentication aggregates a node flushes every 10 s, which may land
/// between the two digests: then every event added must be one of those.
async fn assert_only_refusal_facts(
    node: &Node,
    before: (&str, u64),
    after: (&str, u64),
    what: &str,
) {
    if before == after {
        return;
    }
    assert!(
        before.1 < after.1,
        "{what}: the state changed with no event: {before:?} -> {after:?}"
    );
    let events = node.events_after(before.1).await;
    support::only_refusal_facts(&events, None)
        .unwrap_or_else(|problem| panic!("{what}: the refusal changed the state: {problem}"));
}

/// The digest every node agrees on once converged: (sha256, applied seq).
async fn settled_digest(cluster: &Cluster) -> (String, u64) {
    let digests = cluster.digests().await;
    let (first_id, first) = digests.first().expect("a live node");
    for (id, digest) in &digests {
        assert_eq!(
            (&digest.sha256_hex, digest.applied_seq),
            (&first.sha256_hex, first.applied_seq),
            "nodes {first_id} and {id} differ after converging"
        );
    }
    (first.sha256_hex.clone(), first.applied_seq)
}

/// The jtis of every TokenIssued event, in log order.
async fn issued_jtis(node: &Node) -> Vec<String> {
    node.all_events()
        .await
        .into_iter()
        .filter_map(|event| match event.kind {
            Some(Kind::TokenIssued(issued)) => Some(issued.jti),
            _ => None,
        })
        .collect()
}

/// `result` is an error with exactly `code` and ErrorInfo reason `reason`.
fn assert_refused<T: std::fmt::Debug>(
    what: &str,
    result: Result<T, Status>,
    code: Code,
    reason: &str,
) {
    match result {
        Ok(reply) => panic!("{what}: want {code:?}/{reason}, got OK {reply:?}"),
        Err(status) => assert_eq!(
            (status.code(), error_reason(&status).as_str()),
            (code, reason),
            "{what}: {}",
            status.message()
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn client_assertions_authenticate_once_cluster_wide_and_only_with_the_registered_key() {
    let cluster = Cluster::start(3).await;
    let (n1, n2, n3) = (cluster.node(1), cluster.node(2), cluster.node(3));
    let issuer = n1.issuer().to_string();
    n1.register_human("owner").await;
    let key = AgentKey::generate("robot", "key-1");
    n1.identity()
        .register_agent(n1.admin(api::RegisterAgentRequest {
            agent_id: key.agent_id.clone(),
            owner_human_id: "owner".into(),
            kind: "worker".into(),
            credentials: vec![key.credential()],
            ..Default::default()
        }))
        .await
        .expect("RegisterAgent with an Ed25519 credential only");
    n1.register_service("calendar", AUD, &TOOLS).await;

    // A fresh assertion is the whole credential: Issue on a follower or the leader alike. Both
    // audiences RFC 7523 allows are accepted: the issuer and the token endpoint.
    let first = key.assertion(&issuer);
    let issued = issue_with(n2, &first)
        .await
        .expect("Issue with a fresh assertion");
    let verified = n3.verify(&issued.access_token, AUD).await;
    assert!(verified.active, "{}", verified.reason_message);
    assert_eq!(verified.subject, "robot");
    assert_eq!(verified.agent_id, "robot");
    let for_endpoint = key.assertion(&format!("{issuer}/oauth2/token"));
    issue_with(n3, &for_endpoint)
        .await
        .expect("Issue with an assertion for the token endpoint");

    // Refusals: each is UNAUTHENTICATED with its own reason and adds nothing to the state.
    let now = now_unix_s();
    let unknown_kid = AgentKey::generate("robot", "key-unknown");
    let impostor = AgentKey::generate("robot", "key-1");
    let cases = [
        (
            "replay on another node",
            first.clone(),
            n3,
            "ASSERTION_REPLAYED",
        ),
        (
            "replay on the same node",
            first.clone(),
            n2,
            "ASSERTION_REPLAYED",
        ),
        (
            "kid of a credential the agent does not have",
            unknown_kid.assertion(&issuer),
            n1,
            "CREDENTIAL_INVALID",
        ),
        (
            "the registered kid, signed by another key",
            impostor.assertion(&issuer),
            n2,
            "ASSERTION_BAD_SIGNATURE",
        ),
        (
            "expired (iat now - 400, exp now - 100)",
            key.assertion_at(&issuer, now - 400, now - 100),
            n3,
            "ASSERTION_EXPIRED",
        ),
        (
            "10-minute lifetime",
            key.assertion_at(&issuer, now, now + 600),
            n1,
            "ASSERTION_LIFETIME_TOO_LONG",
        ),
        (
            "another cluster's audience",
            key.assertion("https://other-warrant.example"),
            n2,
            "ASSERTION_AUDIENCE_MISMATCH",
        ),
    ];
    for (what, assertion, node, reason) in cases {
        let before = settled_digest(&cluster).await;
        let result = issue_with(node, &assertion).await;
        assert_refused(what, result, Code::Unauthenticated, reason);
        let after = settled_digest(&cluster).await;
        assert_only_refusal_facts(n1, (&before.0, before.1), (&after.0, after.1), what).await;
    }

    // Row 29: the same fresh assertion submitted to node 1 and node 3 at once. Exactly one call
    // succeeds, the other is told the assertion was already used, and exactly one issuance is
    // logged. A few rounds, so both the early check and apply get their chance to refuse.
    for round in 0..3 {
        let before = issued_jtis(n1).await;
        let assertion = key.assertion(&issuer);
        let (one, three) = tokio::join!(issue_with(n1, &assertion), issue_with(n3, &assertion));
        let (winner, loser) = match (one, three) {
            (Ok(winner), Err(loser)) | (Err(loser), Ok(winner)) => (winner, loser),
            (one, three) => panic!(
                "round {round}: want exactly one OK, got node 1 {:?} and node 3 {:?}",
                one.map(|r| r.jti).map_err(|s| error_reason(&s)),
                three.map(|r| r.jti).map_err(|s| error_reason(&s))
            ),
        };
        assert_refused::<()>(
            &format!("round {round}: the second submission"),
            Err(loser),
            Code::Unauthenticated,
            "ASSERTION_REPLAYED",
        );
        cluster.converged().await;
        let after = issued_jtis(n1).await;
        assert_eq!(
            after.len(),
            before.len() + 1,
            "round {round}: want exactly one new TokenIssued"
        );
        assert_eq!(after.last(), Some(&winner.jti), "round {round}");
        let verified = n2.verify(&winner.access_token, AUD).await;
        assert!(
            verified.active,
            "round {round}: {}",
            verified.reason_message
        );
    }

    // Discovery: both metadata documents name the issuer, its JWKS and the token endpoint.
    let mut documents = Vec::new();
    for path in [
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
    ] {
        let (status, body) = n2.http_get(path);
        assert_eq!(status, 200, "{path}: {body}");
        let document: Value = serde_json::from_str(&body).expect("metadata is JSON");
        assert_eq!(document["issuer"], issuer.as_str(), "{path}: {body}");
        assert_eq!(
            document["jwks_uri"],
            format!("{issuer}/.well-known/jwks.json"),
            "{path}: {body}"
        );
        assert_eq!(
            document["token_endpoint"],
            format!("{issuer}/oauth2/token"),
            "{path}: {body}"
        );
        documents.push(document);
    }
    assert_eq!(
        documents[0], documents[1],
        "the two metadata documents differ"
    );
    let token_endpoint = documents[0]["token_endpoint"]
        .as_str()
        .expect("token_endpoint is a string")
        .to_string();

    // The token endpoint: client_credentials authenticated by an assertion for the endpoint.
    let assertion = key.assertion(&token_endpoint);
    let form = [
        ("grant_type", "client_credentials"),
        ("client_assertion_type", ASSERTION_TYPE),
        ("client_assertion", assertion.as_str()),
        ("resource", AUD),
        ("scope", "read_events"),
    ];
    let (status, body) = n2.http_post_form("/oauth2/token", &form);
    assert_eq!(status, 200, "token endpoint: {body}");
    let reply: Value = serde_json::from_str(&body).expect("a JSON token response");
    assert_eq!(reply["token_type"], "Bearer", "{body}");
    assert_eq!(reply["scope"], "read_events", "{body}");
    let access_token = reply["access_token"]
        .as_str()
        .expect("an access_token")
        .to_string();
    let verified = n3.verify(&access_token, AUD).await;
    assert!(verified.active, "{}", verified.reason_message);
    assert_eq!(verified.subject, "robot");
    assert_eq!(verified.scopes, ["read_events"]);

    // The same assertion again, over HTTP on another node: invalid_client, and nothing logged.
    let before = settled_digest(&cluster).await;
    let (status, body) = n1.http_post_form("/oauth2/token", &form);
    assert_eq!(status, 401, "replayed assertion: {body}");
    let reply: Value = serde_json::from_str(&body).expect("a JSON error response");
    assert_eq!(reply["error"], "invalid_client", "{body}");
    assert_eq!(reply["warrant_reason"], "ASSERTION_REPLAYED", "{body}");
    assert!(reply.get("access_token").is_none(), "{body}");

    // Requests the endpoint does not take get RFC 6749 error bodies, and change nothing: an
    // unknown grant type, a password grant, and a body over the request limit.
    let fresh = key.assertion(&token_endpoint);
    for (grant_type, expected_status, expected_error) in [
        ("authorization_code", 400, "unsupported_grant_type"),
        ("password", 400, "unsupported_grant_type"),
    ] {
        let form = [
            ("grant_type", grant_type),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", fresh.as_str()),
        ];
        let (status, body) = n1.http_post_form("/oauth2/token", &form);
        assert_eq!(status, expected_status, "{grant_type}: {body}");
        let reply: Value = serde_json::from_str(&body).expect("a JSON error response");
        assert_eq!(reply["error"], expected_error, "{body}");
    }
    let oversize = "x".repeat(128 * 1024);
    let (status, body) = n1.http_post_form(
        "/oauth2/token",
        &[("grant_type", "client_credentials"), ("scope", &oversize)],
    );
    assert_eq!(status, 400, "an oversize body: {body}");
    let reply: Value = serde_json::from_str(&body).expect("a JSON error response");
    assert_eq!(reply["error"], "invalid_request", "{body}");
    assert_eq!(settled_digest(&cluster).await, before);
}

// ---------------------------------------------------------------------------------------------
// Federated humans
// ---------------------------------------------------------------------------------------------

const IDP: &str = "https://idp.test";
const IDP_AUDIENCE: &str = "warrant-test";
const IDP2: &str = "https://idp2.test";
const IDP2_AUDIENCE: &str = "warrant-test-2";

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// An upstream issuer's signing key: ES256 (P-256) or EdDSA (Ed25519).
enum IdpKey {
    Es256(EcdsaKeyPair),
    EdDsa(Ed25519KeyPair),
}

impl IdpKey {
    fn es256() -> IdpKey {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .expect("generate a P-256 key");
        IdpKey::Es256(
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
                .expect("parse the P-256 key"),
        )
    }

    fn eddsa() -> IdpKey {
        let pkcs8 =
            Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).expect("generate an Ed25519 key");
        IdpKey::EdDsa(Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("parse the Ed25519 key"))
    }

    fn alg(&self) -> &'static str {
        match self {
            IdpKey::Es256(_) => "ES256",
            IdpKey::EdDsa(_) => "EdDSA",
        }
    }

    /// The public JWK, as the issuer would publish it.
    fn jwk(&self, kid: &str) -> Value {
        match self {
            IdpKey::Es256(key) => {
                let point = key.public_key().as_ref();
                assert_eq!(point.len(), 65, "an uncompressed P-256 point");
                json!({
                    "kty": "EC", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..]),
                    "kid": kid, "alg": "ES256", "use": "sig",
                })
            }
            IdpKey::EdDsa(key) => json!({
                "kty": "OKP", "crv": "Ed25519", "x": b64(key.public_key().as_ref()),
                "kid": kid, "alg": "EdDSA", "use": "sig",
            }),
        }
    }

    /// An id_token with these claims, under `kid`.
    fn id_token(&self, kid: &str, claims: &Value) -> String {
        let header = json!({"alg": self.alg(), "typ": "JWT", "kid": kid});
        let input = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
        let signature = match self {
            IdpKey::Es256(key) => key
                .sign(&SystemRandom::new(), input.as_bytes())
                .expect("ES256 sign")
                .as_ref()
                .to_vec(),
            IdpKey::EdDsa(key) => key.sign(input.as_bytes()).as_ref().to_vec(),
        };
        format!("{input}.{}", b64(signature))
    }
}

/// Claims of a fresh id_token.
fn id_claims(iss: &str, sub: &str, aud: &str, nonce: &str) -> Value {
    let now = now_unix_s();
    json!({"iss": iss, "sub": sub, "aud": aud, "iat": now, "exp": now + 300, "nonce": nonce})
}

/// A tiny HTTP server on loopback that answers every GET with a JWKS, counting what it served.
/// Its thread is woken and joined on drop.
struct JwksServer {
    port: u16,
    served: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl JwksServer {
    fn start(jwks: String) -> JwksServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the JWKS server");
        let port = listener.local_addr().expect("local addr").port();
        let served = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (served, stop) = (served.clone(), stop.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    if let Ok(stream) = stream {
                        serve_one(stream, &jwks, &served);
                    }
                }
            })
        };
        JwksServer {
            port,
            served,
            stop,
            thread: Some(thread),
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/jwks.json", self.port)
    }

    fn served(&self) -> usize {
        self.served.load(Ordering::SeqCst)
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept so the thread sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve_one(mut stream: TcpStream, jwks: &str, served: &AtomicUsize) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut request = Vec::new();
    let mut buffer = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buffer[..n]),
        }
    }
    if !request.starts_with(b"GET ") {
        let _ = stream.write_all(
            b"HTTP/1.1 405 Method Not Allowed\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
        );
        return;
    }
    served.fetch_add(1, Ordering::SeqCst);
    let _ = write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{jwks}",
        jwks.len()
    );
}

fn federation_entry(issuer: &str, audience: &str, source: (&str, String)) -> toml::Value {
    let mut entry = toml::Table::new();
    entry.insert("issuer".into(), issuer.into());
    entry.insert("audience".into(), audience.into());
    entry.insert(source.0.into(), source.1.into());
    toml::Value::Table(entry)
}

async fn start_session(
    node: &Node,
    id_token: &str,
    nonce: &str,
) -> Result<api::StartSessionResponse, Status> {
    SessionServiceClient::new(node.channel())
        .start_session(api::StartSessionRequest {
            id_token: id_token.into(),
            nonce: nonce.into(),
            ..Default::default()
        })
        .await
        .map(tonic::Response::into_inner)
}

async fn register_federated(node: &Node, human_id: &str, issuer: &str, subject: &str) {
    node.identity()
        .register_human(node.admin(api::RegisterHumanRequest {
            human_id: human_id.into(),
            display_name: format!("Human {human_id}"),
            email: format!("{human_id}@example.com"),
            federated_issuer: issuer.into(),
            federated_subject: subject.into(),
            ..Default::default()
        }))
        .await
        .expect("RegisterHuman (federated)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn federated_humans_log_in_with_an_upstream_id_token() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Issuer 1: an ES256 key, its JWKS in a file.
    let idp = IdpKey::es256();
    let jwks_path = dir.path().join("idp-jwks.json");
    std::fs::write(
        &jwks_path,
        json!({"keys": [idp.jwk("idp-key-1")]}).to_string(),
    )
    .expect("write the issuer's JWKS");
    // Issuer 2: an EdDSA key, its JWKS served over HTTP on loopback.
    let idp2 = IdpKey::eddsa();
    let server = JwksServer::start(json!({"keys": [idp2.jwk("idp2-key-1")]}).to_string());

    let mut extra = toml::Table::new();
    extra.insert(
        "federation".into(),
        toml::Value::Array(vec![
            federation_entry(
                IDP,
                IDP_AUDIENCE,
                ("jwks_file", jwks_path.display().to_string()),
            ),
            federation_entry(IDP2, IDP2_AUDIENCE, ("jwks_url", server.url())),
        ]),
    );
    let node = Node::start_with(extra).await;
    register_federated(&node, "fed-human", IDP, "upstream-123").await;
    register_federated(&node, "fed-human-2", IDP2, "upstream-456").await;
    let helper = AgentCredential::new("helper");
    node.register_agent(&helper.agent_id, "fed-human", &helper.secret)
        .await;
    node.register_service("calendar", AUD, &TOOLS).await;

    // A good login gives a session token that authenticates the human.
    let nonce = hex::encode(rand::random::<[u8; 12]>());
    let good = idp.id_token(
        "idp-key-1",
        &id_claims(IDP, "upstream-123", IDP_AUDIENCE, &nonce),
    );
    let session = start_session(&node, &good, &nonce)
        .await
        .expect("StartSession with a good id_token");
    assert_eq!(session.principal_id, "fed-human");
    assert!(!session.access_token.is_empty(), "no session token");
    // An id_token is single-use: the same one again (captured, say) starts no second session,
    // and adds no event.
    let before_replay = node.digest().await;
    let replayed = start_session(&node, &good, &nonce)
        .await
        .expect_err("a replayed id_token");
    assert_eq!(
        replayed.code(),
        tonic::Code::Unauthenticated,
        "{replayed:?}"
    );
    assert_eq!(
        error_reason(&replayed),
        "ASSERTION_REPLAYED",
        "{replayed:?}"
    );
    let after_replay = node.digest().await;
    assert_only_refusal_facts(
        &node,
        (&before_replay.sha256_hex, before_replay.applied_seq),
        (&after_replay.sha256_hex, after_replay.applied_seq),
        "a replayed id_token",
    )
    .await;
    let delegation = DelegationServiceClient::new(node.channel())
        .create_delegation(with_auth(
            Some(&format!("Bearer {}", session.access_token)),
            api::CreateDelegationRequest {
                grantee_agent_id: helper.agent_id.clone(),
                scopes: vec!["read_events".into()],
                audiences: vec![AUD.into()],
                expires_at_unix_s: now_unix_s() + 600,
                ..Default::default()
            },
        ))
        .await
        .expect("CreateDelegation as the federated human")
        .into_inner()
        .delegation
        .expect("a delegation");
    assert_eq!(delegation.root_human_id, "fed-human");
    assert_eq!(delegation.grantor_id, "fed-human");

    // Refusals: UNAUTHENTICATED with the observed reason, and no state change.
    let other_key = IdpKey::es256();
    let cases = [
        (
            "wrong nonce",
            idp.id_token(
                "idp-key-1",
                &id_claims(IDP, "upstream-123", IDP_AUDIENCE, "another-nonce"),
            ),
            "ID_TOKEN_NONCE_MISMATCH",
        ),
        (
            "issuer not configured",
            idp.id_token(
                "idp-key-1",
                &id_claims(
                    "https://unknown-idp.test",
                    "upstream-123",
                    IDP_AUDIENCE,
                    &nonce,
                ),
            ),
            "ISSUER_NOT_CONFIGURED",
        ),
        (
            "unregistered subject",
            idp.id_token(
                "idp-key-1",
                &id_claims(IDP, "nobody-registered", IDP_AUDIENCE, &nonce),
            ),
            "CREDENTIAL_INVALID",
        ),
        (
            "our kid, another key",
            other_key.id_token(
                "idp-key-1",
                &id_claims(IDP, "upstream-123", IDP_AUDIENCE, &nonce),
            ),
            "ID_TOKEN_BAD_SIGNATURE",
        ),
        (
            "another client's audience",
            idp.id_token(
                "idp-key-1",
                &id_claims(IDP, "upstream-123", "someone-else", &nonce),
            ),
            "ID_TOKEN_AUDIENCE_MISMATCH",
        ),
    ];
    for (what, id_token, reason) in cases {
        let before = node.digest().await;
        let result = start_session(&node, &id_token, &nonce).await;
        assert_refused(what, result, Code::Unauthenticated, reason);
        let after = node.digest().await;
        assert_only_refusal_facts(
            &node,
            (&before.sha256_hex, before.applied_seq),
            (&after.sha256_hex, after.applied_seq),
            what,
        )
        .await;
    }

    // Issuer 2, keys fetched from its URL: a login works.
    let fetched_at_start = server.served();
    assert!(
        fetched_at_start >= 1,
        "the node did not fetch the URL-sourced JWKS at start"
    );
    let nonce2 = hex::encode(rand::random::<[u8; 12]>());
    let good2 = idp2.id_token(
        "idp2-key-1",
        &id_claims(IDP2, "upstream-456", IDP2_AUDIENCE, &nonce2),
    );
    let session2 = start_session(&node, &good2, &nonce2)
        .await
        .expect("StartSession with an id_token from the URL-sourced issuer");
    assert_eq!(session2.principal_id, "fed-human-2");

    // Five tokens naming a kid the issuer never published: each refused, and together they
    // cause at most one refetch (the node refetches at most every 30 s).
    let stranger = IdpKey::eddsa();
    for i in 0..5 {
        let token = stranger.id_token(
            "idp2-key-rotated-away",
            &id_claims(IDP2, "upstream-456", IDP2_AUDIENCE, &nonce2),
        );
        let result = start_session(&node, &token, &nonce2).await;
        assert_refused(
            &format!("unknown kid #{i}"),
            result,
            Code::Unauthenticated,
            "ID_TOKEN_UNKNOWN_KEY",
        );
    }
    let served = server.served();
    assert!(
        served <= fetched_at_start + 1 && served <= 2,
        "5 tokens with an unknown kid made {} JWKS fetches (after {fetched_at_start} at start)",
        served - fetched_at_start
    );
    // The known key still works afterwards (a fresh id_token: each is single-use).
    let nonce3 = hex::encode(rand::random::<[u8; 12]>());
    let good3 = idp2.id_token(
        "idp2-key-1",
        &id_claims(IDP2, "upstream-456", IDP2_AUDIENCE, &nonce3),
    );
    start_session(&node, &good3, &nonce3)
        .await
        .expect("the URL-sourced issuer's key still verifies");
}
