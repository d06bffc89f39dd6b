//! The HTTP side, for OAuth clients and services that verify offline:
//! - `/.well-known/jwks.json`: every signing key in force, of every node, from the log (so every
//!   node serves the same set). A retired key stays until the last token it signed expires.
//! - `/.well-known/oauth-authorization-server` (RFC 8414) and `/.well-known/openid-configuration`
//!   (the same document, for clients that only look there): the issuer, JWKS and token endpoint.
//! - `/oauth2/token`: RFC 6749 `client_credentials` (an agent for itself) and RFC 8693 token
//!   exchange, with `private_key_jwt` (RFC 7523) or `client_secret_basic` client authentication.
//!   Both run the same code as the gRPC `Issue` and `Exchange`.
//! - `/healthz`.
//! - `/metrics`: Prometheus metrics (`crate::metrics`).
//! - AuthZEN (`crate::authzen`): `/access/v1/evaluation`, `/access/v1/evaluations` and
//!   `/.well-known/authzen-configuration`.

use std::sync::Arc;

use axum::{
    Form, Json, Router,
    extract::{DefaultBodyLimit, State, rejection::FormRejection},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::Deserialize;
use serde_json::{Value, json};
use tonic::{Code, metadata::MetadataMap};
use warrant_identity::{limits, query};
use warrant_proto::{api, log, log::SigningAlgorithm};
use warrant_token::assertion::ASSERTION_TYPE;

use crate::{
    ApiError, Reason,
    auth::{Caller, now_unix_s},
    authzen,
    context::Context,
    services::{
        mint::{ACCESS_TOKEN_TYPE_URN, issue_and_sign},
        token::{JWT_TOKEN_TYPE_URN, TOKEN_EXCHANGE_GRANT, exchange, scope_list},
    },
};

/// The challenges of a 401 from the token endpoint, one per scheme it accepts in `authorization`.
const BASIC_CHALLENGE: &str = "Basic realm=\"warrant\"";
const BEARER_CHALLENGE: &str = "Bearer realm=\"warrant\"";

/// The token endpoint's path under the issuer.
pub const TOKEN_ENDPOINT_PATH: &str = "/oauth2/token";
/// RFC 6749 §4.4.
pub const CLIENT_CREDENTIALS_GRANT: &str = "client_credentials";

/// The token endpoint's URL for `issuer`: a client assertion may name it as its audience.
pub fn token_endpoint(issuer: &str) -> String {
    format!("{}{TOKEN_ENDPOINT_PATH}", issuer.trim_end_matches('/'))
}

pub fn router(context: Arc<Context>) -> Router {
    Router::new()
        .route("/.well-known/jwks.json", get(jwks))
        .route("/.well-known/oauth-authorization-server", get(metadata))
        .route("/.well-known/openid-configuration", get(metadata))
        .route(TOKEN_ENDPOINT_PATH, post(token))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route(authzen::EVALUATION_PATH, post(authzen::evaluation_handler))
        .route(
            authzen::EVALUATIONS_PATH,
            post(authzen::evaluations_handler),
        )
        .route(
            authzen::CONFIGURATION_PATH,
            get(authzen::configuration_handler),
        )
        // The same bound as a gRPC request: a token request is a few KiB at most.
        .layer(DefaultBodyLimit::max(crate::limits::REQUEST_BYTES_MAX))
        .with_state(context)
}

async fn jwks(State(context): State<Arc<Context>>) -> Response {
    // A retired key stays listed while a token it signed may still be accepted: until its last
    // expiry plus the leeway verifiers allow.
    let retired_kept_from_unix_s = now_unix_s().saturating_sub(context.clock_leeway_s);
    match query::signing_keys_in_force(
        &context.node.reader(),
        retired_kept_from_unix_s,
        crate::limits::JWKS_KEYS_MAX,
    ) {
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

async fn metadata(State(context): State<Arc<Context>>) -> Response {
    let issuer = context.issuer.trim_end_matches('/');
    Json(json!({
        "issuer": context.issuer,
        "jwks_uri": format!("{issuer}/.well-known/jwks.json"),
        "token_endpoint": token_endpoint(&context.issuer),
        "grant_types_supported": [CLIENT_CREDENTIALS_GRANT, TOKEN_EXCHANGE_GRANT],
        "token_endpoint_auth_methods_supported": ["private_key_jwt", "client_secret_basic"],
        "token_endpoint_auth_signing_alg_values_supported": ["EdDSA"],
        // No authorization endpoint: humans log in upstream and through SessionService.
        "response_types_supported": [],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["EdDSA"],
        "token_types_supported": [
            ACCESS_TOKEN_TYPE_URN,
            JWT_TOKEN_TYPE_URN,
        ],
    }))
    .into_response()
}

/// The form of a token request (RFC 6749 §4.4.2, RFC 7523 §2.2, RFC 8693 §2.1).
#[derive(Debug, Default, Deserialize)]
struct TokenForm {
    #[serde(default)]
    grant_type: String,
    #[serde(default)]
    client_assertion_type: String,
    #[serde(default)]
    client_assertion: String,
    #[serde(default)]
    resource: String,
    #[serde(default)]
    scope: String,
    #[serde(default)]
    subject_token: String,
    #[serde(default)]
    subject_token_type: String,
    #[serde(default)]
    actor_token: String,
    #[serde(default)]
    actor_token_type: String,
}

async fn token(
    State(context): State<Arc<Context>>,
    headers: HeaderMap,
    form: Result<Form<TokenForm>, FormRejection>,
) -> Response {
    let challenge = challenge(&headers);
    let form = match form {
        Ok(Form(form)) => form,
        Err(rejection) => {
            return oauth_error(
                challenge,
                ApiError::new(
                    Code::InvalidArgument,
                    crate::Reason::FieldInvalid,
                    format!(
                        "the request body is not a token request ({rejection}); allowed: an \
                     application/x-www-form-urlencoded body of at most {} bytes",
                        crate::limits::REQUEST_BYTES_MAX
                    ),
                ),
            );
        }
    };
    if !matches!(
        form.grant_type.as_str(),
        CLIENT_CREDENTIALS_GRANT | TOKEN_EXCHANGE_GRANT
    ) {
        let body = json!({
            "error": "unsupported_grant_type",
            "error_description": format!(
                "grant_type {:?} is not supported; allowed: {CLIENT_CREDENTIALS_GRANT}, \
                 {TOKEN_EXCHANGE_GRANT}",
                form.grant_type
            ),
            "warrant_reason": crate::Reason::FieldInvalid.as_str(),
        });
        return (
            StatusCode::BAD_REQUEST,
            [("cache-control", "no-store")],
            Json(body),
        )
            .into_response();
    }
    match token_reply(&context, headers, form).await {
        Ok(reply) => {
            let mut body = json!({
                "access_token": reply.access_token,
                "token_type": reply.token_type,
                "expires_in": reply.expires_in,
                "scope": reply.scope,
            });
            if !reply.issued_token_type.is_empty() {
                body["issued_token_type"] = json!(reply.issued_token_type);
            }
            (StatusCode::OK, [("cache-control", "no-store")], Json(body)).into_response()
        }
        Err(error) => oauth_error(challenge, error),
    }
}

async fn token_reply(
    context: &Context,
    headers: HeaderMap,
    form: TokenForm,
) -> Result<api::IssueResponse, ApiError> {
    let caller = client(context, headers, &form).await?;
    match form.grant_type.as_str() {
        CLIENT_CREDENTIALS_GRANT => {
            let Caller::Agent { agent_id, .. } = &caller else {
                return Err(ApiError::new(
                    Code::PermissionDenied,
                    crate::Reason::PermissionDenied,
                    "client_credentials is for agents",
                ));
            };
            limits::validate_audience("resource", &form.resource)?;
            let scopes = scope_list(&form.scope);
            crate::validate::list_len("scope", scopes.len(), 1, limits::SCOPES_PER_TOKEN_MAX)?;
            let request = api::IssueRequest {
                audience: form.resource.clone(),
                scopes: scopes.clone(),
                ..Default::default()
            };
            let issue = log::IssueToken {
                jti: uuid::Uuid::now_v7().to_string(),
                agent_id: agent_id.clone(),
                audience: form.resource,
                scopes,
                ttl_seconds: context.token_ttl_default_s,
                ..Default::default()
            };
            issue_and_sign(context, &caller, "", "Issue", &request, issue).await
        }
        _ => {
            let mut request = api::ExchangeRequest {
                grant_type: form.grant_type,
                subject_token: form.subject_token,
                subject_token_type: form.subject_token_type,
                actor_token: String::new(),
                actor_token_type: form.actor_token_type,
                resource: form.resource,
                scope: form.scope,
                ..Default::default()
            };
            exchange(context, &caller, &mut request).await
        }
    }
}

/// Authenticates the client: an RFC 7523 assertion in the form (or as the RFC 8693 actor token),
/// else the `authorization` header.
async fn client(
    context: &Context,
    headers: HeaderMap,
    form: &TokenForm,
) -> Result<Caller, ApiError> {
    let assertion = if !form.client_assertion.is_empty() {
        if form.client_assertion_type != ASSERTION_TYPE {
            return Err(ApiError::invalid_field(
                crate::Reason::FieldInvalid,
                "client_assertion_type",
                format!("client_assertion_type must be {ASSERTION_TYPE}"),
            ));
        }
        Some(form.client_assertion.as_str())
    } else if !form.actor_token.is_empty() {
        Some(form.actor_token.as_str())
    } else {
        None
    };
    match assertion {
        Some(assertion) => context.assertion_caller(assertion).await,
        None => context.caller(&MetadataMap::from_headers(headers)).await,
    }
}

/// The `WWW-Authenticate` challenge of a 401 from the token endpoint: the scheme the client
/// used in `authorization` (RFC 6749 §5.2: "matching the authentication scheme used by the
/// client"), or `Basic`, the header scheme it may use, when it sent none (an assertion).
fn challenge(headers: &HeaderMap) -> &'static str {
    let scheme = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once(' '))
        .map(|(scheme, _)| scheme);
    match scheme {
        Some(scheme) if scheme.eq_ignore_ascii_case("bearer") => BEARER_CHALLENGE,
        _ => BASIC_CHALLENGE,
    }
}

/// RFC 6749 §5.2 error responses; the stable Warrant reason rides along. A 401 carries
/// `challenge` in `WWW-Authenticate`, as §5.2 requires.
fn oauth_error(challenge: &'static str, error: ApiError) -> Response {
    let (status, code) = oauth_error_code(&error);
    let body = json!({
        "error": code,
        "error_description": error.message,
        "warrant_reason": error.reason.as_str(),
    });
    let mut response = (status, [("cache-control", "no-store")], Json(body)).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(challenge),
        );
    }
    response
}

/// The HTTP status and RFC 6749 §5.2 error code of `error`: by its reason where the reason
/// decides, else by its gRPC status.
fn oauth_error_code(error: &ApiError) -> (StatusCode, &'static str) {
    match error.reason {
        // The client authenticated, but a disabled client may not act at all: to the client
        // that is failed client authentication, not a scope it asked for.
        Reason::AgentDisabled => return (StatusCode::UNAUTHORIZED, "invalid_client"),
        // The client may not use this grant, or act this way at all (RFC 6749 §5.2).
        Reason::PermissionDenied => return (StatusCode::BAD_REQUEST, "unauthorized_client"),
        _ => {}
    }
    match error.code {
        Code::Unauthenticated => (StatusCode::UNAUTHORIZED, "invalid_client"),
        Code::InvalidArgument => (StatusCode::BAD_REQUEST, "invalid_request"),
        // What is left: scopes and audiences beyond what the client may ask for.
        Code::PermissionDenied => (StatusCode::BAD_REQUEST, "invalid_scope"),
        Code::NotFound | Code::FailedPrecondition => (StatusCode::BAD_REQUEST, "invalid_grant"),
        Code::Unavailable | Code::ResourceExhausted => {
            (StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable")
        }
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "server_error"),
    }
}

/// Prometheus text format 0.0.4. Unauthenticated, like etcd's: no label carries a secret or a
/// principal.
async fn metrics(State(context): State<Arc<Context>>) -> Response {
    let pool = context.auth.pool();
    let argon2 = crate::metrics::Argon2Load {
        queue_depth: pool.queue_depth(),
        queue_capacity: pool.queue_capacity(),
    };
    let text = crate::metrics::render(&context.node, argon2);
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

async fn healthz(State(context): State<Arc<Context>>) -> impl IntoResponse {
    let status = context.node.status();
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

#[cfg(test)]
mod tests {
    use super::*;

    /// (status, WWW-Authenticate, body `error`) of the token endpoint's answer to `error`.
    fn answer(headers: &HeaderMap, error: ApiError) -> (StatusCode, Option<String>, String) {
        let response = oauth_error(challenge(headers), error);
        let status = response.status();
        let www_authenticate = response
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .map(|value| value.to_str().expect("ASCII").to_string());
        let body = response.into_body();
        let bytes = body_bytes(body);
        let body: Value = serde_json::from_slice(&bytes).expect("a JSON body");
        let code = body["error"].as_str().expect("an error code").to_string();
        (status, www_authenticate, code)
    }

    fn body_bytes(body: axum::body::Body) -> Vec<u8> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        runtime
            .block_on(axum::body::to_bytes(body, usize::MAX))
            .expect("the body")
            .to_vec()
    }

    fn with_authorization(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(value).expect("a header value"),
        );
        headers
    }

    fn basic() -> Option<String> {
        Some(BASIC_CHALLENGE.to_string())
    }

    #[test]
    fn a_401_carries_a_challenge_in_the_scheme_the_client_used() {
        let refused = || {
            ApiError::new(
                Code::Unauthenticated,
                Reason::CredentialInvalid,
                "wrong secret",
            )
        };
        let cases = [
            (with_authorization("Basic Ym90OnNlY3JldA=="), basic()),
            (
                with_authorization("Bearer eyJ.x.y"),
                Some(BEARER_CHALLENGE.to_string()),
            ),
            // No header (a client assertion): the header scheme the endpoint accepts.
            (HeaderMap::new(), basic()),
        ];
        for (headers, challenge) in cases {
            assert_eq!(
                answer(&headers, refused()),
                (StatusCode::UNAUTHORIZED, challenge, "invalid_client".into())
            );
        }
    }

    #[test]
    fn errors_map_to_rfc_6749_codes_by_reason_then_status() {
        let headers = with_authorization("Basic Ym90OnNlY3JldA==");
        let cases = [
            // A disabled agent, refused at authentication (PERMISSION_DENIED) or at apply.
            (
                ApiError::new(Code::PermissionDenied, Reason::AgentDisabled, "disabled"),
                (StatusCode::UNAUTHORIZED, basic(), "invalid_client"),
            ),
            (
                ApiError::new(Code::FailedPrecondition, Reason::AgentDisabled, "disabled"),
                (StatusCode::UNAUTHORIZED, basic(), "invalid_client"),
            ),
            (
                ApiError::new(
                    Code::PermissionDenied,
                    Reason::PermissionDenied,
                    "for agents",
                ),
                (StatusCode::BAD_REQUEST, None, "unauthorized_client"),
            ),
            (
                ApiError::new(
                    Code::PermissionDenied,
                    Reason::ScopeNotAllowed,
                    "no such tool",
                ),
                (StatusCode::BAD_REQUEST, None, "invalid_scope"),
            ),
            (
                ApiError::new(Code::InvalidArgument, Reason::FieldInvalid, "bad form"),
                (StatusCode::BAD_REQUEST, None, "invalid_request"),
            ),
            (
                ApiError::new(
                    Code::FailedPrecondition,
                    Reason::SubjectTokenInactive,
                    "revoked",
                ),
                (StatusCode::BAD_REQUEST, None, "invalid_grant"),
            ),
        ];
        for (error, (status, challenge, code)) in cases {
            let context = format!("{:?}", error.reason);
            assert_eq!(
                answer(&headers, error),
                (status, challenge, code.to_string()),
                "{context}"
            );
        }
    }
}
