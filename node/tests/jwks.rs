//! Offline verification: a token issued by the real binary verifies with nothing but the keys the
//! node publishes at `/.well-known/jwks.json`, through jsonwebtoken's own JWK handling.

#![allow(clippy::unwrap_used)]

mod support;

use jsonwebtoken::{Algorithm, DecodingKey, Validation, jwk::JwkSet};
use serde_json::Value;
use support::{Node, tamper_signature};

const AUDIENCE: &str = "https://calendar.example/mcp";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_verify_against_the_published_jwks() {
    let node = Node::start().await;
    let issued = node.issue_calendar_token(AUDIENCE, &["read_events"]).await;

    let (status, body) = node.http_get("/.well-known/jwks.json");
    assert_eq!(status, 200, "JWKS: {body}");
    let jwks: JwkSet = serde_json::from_str(&body).expect("a JWK set");
    assert_eq!(jwks.keys.len(), 1, "one node, one key: {body}");

    let header = jsonwebtoken::decode_header(&issued.access_token).expect("token header");
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    let kid = header.kid.expect("kid");
    let jwk = jwks.find(&kid).expect("the token's kid is in the JWKS");
    let key = DecodingKey::from_jwk(jwk).expect("a usable key");
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_audience(&[AUDIENCE]);
    validation.set_issuer(&[node.issuer()]);
    let claims = jsonwebtoken::decode::<Value>(&issued.access_token, &key, &validation)
        .expect("verifies offline")
        .claims;
    assert_eq!(claims["sub"], "alice-assistant");
    assert_eq!(claims["client_id"], "alice-assistant");
    assert_eq!(claims["scope"], "read_events");
    assert_eq!(claims["jti"], issued.jti.as_str());

    // A token tampered with after signing fails offline too.
    let tampered = tamper_signature(&issued.access_token);
    assert!(jsonwebtoken::decode::<Value>(&tampered, &key, &validation).is_err());

    let (status, body) = node.http_get("/healthz");
    assert_eq!(status, 200, "healthz: {body}");
    assert!(body.contains("\"role\":\"LEADER\""), "healthz: {body}");
}
