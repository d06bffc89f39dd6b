//! The HTTP side: `/.well-known/jwks.json` for services that verify tokens offline, and
//! `/healthz`.
//!
//! JWKS lists every signing key published through the log, so every node serves the same set and
//! a token signed by any node verifies against any node's JWKS.

use axum::{Json, Router, extract::State, http::StatusCode, response::IntoResponse, routing::get};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use warrant_identity::query;
use warrant_proto::log::SigningAlgorithm;
use warrant_raft::RaftNode;

/// Keys listed in one JWKS document. Each node publishes one key per rotation, so this is far
/// beyond any real cluster.
pub const JWKS_KEYS_MAX: usize = 1024;

pub fn router(node: RaftNode) -> Router {
    Router::new()
        .route("/.well-known/jwks.json", get(jwks))
        .route("/healthz", get(healthz))
        .with_state(node)
}

async fn jwks(State(node): State<RaftNode>) -> impl IntoResponse {
    match query::signing_keys(&node.reader(), JWKS_KEYS_MAX) {
        Ok(rows) => {
            let keys: Vec<Value> = rows
                .into_iter()
                .filter_map(|row| row.key)
                .filter(|key| key.algorithm == SigningAlgorithm::Ed25519 as i32)
                .map(|key| {
                    json!({
                        "kty": "OKP",
                        "crv": "Ed25519",
                        "x": URL_SAFE_NO_PAD.encode(&key.public_key),
                        "kid": key.key_id,
                        "alg": "EdDSA",
                        "use": "sig",
                    })
                })
                .collect();
            (StatusCode::OK, Json(json!({ "keys": keys }))).into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "read signing keys for JWKS");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "error": "signing keys unavailable" })),
            )
                .into_response()
        }
    }
}

async fn healthz(State(node): State<RaftNode>) -> impl IntoResponse {
    let status = node.status();
    let body = json!({
        "node_id": status.node_id,
        "role": status.role,
        "leader_id": status.leader_id,
        "applied_seq": status.applied.seq,
    });
    let code = if status.leader_id.is_some() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body))
}
