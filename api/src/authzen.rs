//! OpenID AuthZEN Authorization API 1.0 on the HTTP port, mapped onto `AuthzService.Authorize`:
//! - `POST /access/v1/evaluation`: one Access Evaluation;
//! - `POST /access/v1/evaluations`: Access Evaluations (boxcarred), with the top-level
//!   `subject`, `action`, `resource` and `context` as defaults each item may replace, and
//!   `options.evaluations_semantic` (`execute_all`, `deny_on_first_deny`,
//!   `permit_on_first_permit`);
//! - `GET /.well-known/authzen-configuration`: the PDP metadata document.
//!
//! The mapping: the subject carries the access token the agent presented in
//! `properties.token` (its `type` and `id` are required by the spec and not trusted: the token
//! names the principal); the resource is a tool, `{type: "tool", id: "<tool>", properties:
//! {service: "<service_id>"}}` or `{type: "tool", id: "<service_id>/<tool>"}`; the action is
//! `{name: "call"}`; each `context` member is a caller attribute (string, integer or boolean).
//! Other `properties` of the subject, resource and action are ignored. The caller (the PEP)
//! authenticates with `Authorization` as on gRPC; `x-warrant-audit: async` asks for ASYNC, the
//! default is SYNC. A decision is always 200 (a DENY is `decision: false`); 4xx and 5xx are for
//! requests that could not be decided at all, with a JSON body `{error, message,
//! warrant_reason}`.

use std::sync::Arc;

use axum::{
    Json,
    body::Bytes,
    extract::{State, rejection::BytesRejection},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::{Map, Value, json};
use tonic::{Code, metadata::MetadataMap};
use warrant_proto::{api, log};

use crate::{
    ApiError,
    auth::Caller,
    context::Context,
    limits::{AUTHZEN_CONTEXT_MEMBERS_MAX, AUTHZEN_EVALUATIONS_MAX, REQUEST_BYTES_MAX},
};

pub const EVALUATION_PATH: &str = "/access/v1/evaluation";
pub const EVALUATIONS_PATH: &str = "/access/v1/evaluations";
pub const CONFIGURATION_PATH: &str = "/.well-known/authzen-configuration";
/// Selects the audit mode: `sync` (the default) or `async`.
pub const AUDIT_HEADER: &str = "x-warrant-audit";
/// The spec's request identifier, echoed on the response.
pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// The only subject property read: the access token the agent presented.
pub const TOKEN_PROPERTY: &str = "token";
/// The resource property naming the tool's service.
pub const SERVICE_PROPERTY: &str = "service";
/// The only resource type: a tool of a service.
pub const TOOL_RESOURCE_TYPE: &str = "tool";
/// The only action Authorize decides.
pub const CALL_ACTION: &str = "call";

/// `options.evaluations_semantic`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Semantic {
    /// Every evaluation, one decision each, in request order (the default).
    ExecuteAll,
    /// In order, stopping after the first deny (or failure), which is the last result.
    DenyOnFirstDeny,
    /// In order, stopping after the first permit, which is the last result.
    PermitOnFirstPermit,
}

/// A parsed Access Evaluations request.
#[derive(Debug, PartialEq)]
pub struct Evaluations {
    pub requests: Vec<api::AuthorizeRequest>,
    pub semantic: Semantic,
    /// False when the request had no (or an empty) `evaluations` array: the spec then treats
    /// it as a single Access Evaluation, answered with a single decision.
    pub boxcarred: bool,
}

/// Why a request could not be read: a 400 with `error` = `code`.
#[derive(Debug, PartialEq, Eq)]
pub struct BadRequest {
    pub code: &'static str,
    pub message: String,
}

fn bad(code: &'static str, message: impl Into<String>) -> BadRequest {
    BadRequest {
        code,
        message: message.into(),
    }
}

fn invalid(message: impl Into<String>) -> BadRequest {
    bad("invalid_request", message)
}

/// An Access Evaluation request body as one Authorize.
pub fn parse_evaluation(
    body: &[u8],
    audit: api::AuditMode,
) -> Result<api::AuthorizeRequest, BadRequest> {
    let top = parse_object(body)?;
    let get = |key: &str| top.get(key);
    evaluation(
        "",
        [
            get("subject"),
            get("action"),
            get("resource"),
            get("context"),
        ],
        audit,
    )
}

/// An Access Evaluations request body as Authorizes, each item merged with the top-level
/// defaults (an item's member replaces the default whole, as the spec says).
pub fn parse_evaluations(body: &[u8], audit: api::AuditMode) -> Result<Evaluations, BadRequest> {
    let top = parse_object(body)?;
    let semantic = semantic(top.get("options"))?;
    let items = match top.get("evaluations") {
        None | Some(Value::Null) => &Vec::new(),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(invalid("evaluations must be an array of objects")),
    };
    if AUTHZEN_EVALUATIONS_MAX < items.len() {
        return Err(bad(
            "too_many_evaluations",
            format!(
                "evaluations holds {} items; allowed: at most {AUTHZEN_EVALUATIONS_MAX}",
                items.len()
            ),
        ));
    }
    const KEYS: [&str; 4] = ["subject", "action", "resource", "context"];
    let default = |key: &str| top.get(key);
    if items.is_empty() {
        let request = evaluation("", KEYS.map(default), audit)?;
        return Ok(Evaluations {
            requests: vec![request],
            semantic,
            boxcarred: false,
        });
    }
    let mut requests = Vec::with_capacity(items.len());
    for (idx, item) in items.iter().enumerate() {
        let path = format!("evaluations[{idx}].");
        let Value::Object(item) = item else {
            return Err(invalid(format!("evaluations[{idx}] must be an object")));
        };
        let merged = KEYS.map(|key| item.get(key).or_else(|| default(key)));
        requests.push(evaluation(&path, merged, audit)?);
    }
    Ok(Evaluations {
        requests,
        semantic,
        boxcarred: true,
    })
}

fn parse_object(body: &[u8]) -> Result<Map<String, Value>, BadRequest> {
    if REQUEST_BYTES_MAX < body.len() {
        return Err(too_large(body.len()));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(invalid("the request body must be a JSON object")),
        Err(e) => Err(invalid(format!("the request body is not JSON: {e}"))),
    }
}

fn too_large(len: usize) -> BadRequest {
    bad(
        "request_too_large",
        format!("the request body is {len} bytes; allowed: at most {REQUEST_BYTES_MAX}"),
    )
}

fn semantic(options: Option<&Value>) -> Result<Semantic, BadRequest> {
    let options = match options {
        None | Some(Value::Null) => return Ok(Semantic::ExecuteAll),
        Some(Value::Object(options)) => options,
        Some(_) => return Err(invalid("options must be an object")),
    };
    match options.get("evaluations_semantic") {
        None => Ok(Semantic::ExecuteAll),
        Some(Value::String(name)) => match name.as_str() {
            "execute_all" => Ok(Semantic::ExecuteAll),
            "deny_on_first_deny" => Ok(Semantic::DenyOnFirstDeny),
            "permit_on_first_permit" => Ok(Semantic::PermitOnFirstPermit),
            other => Err(invalid(format!(
                "options.evaluations_semantic {other:?} is not supported; allowed: \
                 execute_all, deny_on_first_deny, permit_on_first_permit"
            ))),
        },
        Some(_) => Err(invalid("options.evaluations_semantic must be a string")),
    }
}

/// One evaluation from its (subject, action, resource, context); `path` prefixes the field
/// names in errors (`evaluations[2].`).
fn evaluation(
    path: &str,
    [subject, action, resource, context]: [Option<&Value>; 4],
    audit: api::AuditMode,
) -> Result<api::AuthorizeRequest, BadRequest> {
    let token = subject_token(path, subject)?;
    check_action(path, action)?;
    let (service_id, tool) = tool(path, resource)?;
    let attributes = attributes(path, context)?;
    Ok(api::AuthorizeRequest {
        idempotency_key: String::new(),
        token,
        service_id,
        tool,
        attributes,
        read: None,
        audit: audit as i32,
    })
}

/// A Subject or Resource: its `type`, `id` and `properties`.
struct Entity<'a> {
    kind: &'a str,
    id: &'a str,
    properties: Option<&'a Map<String, Value>>,
}

/// `value` as an object with a string `type` and `id` (REQUIRED in every Subject and
/// Resource).
fn entity<'a>(path: &str, what: &str, value: Option<&'a Value>) -> Result<Entity<'a>, BadRequest> {
    let Some(value) = value else {
        return Err(invalid(format!("{path}{what} is required")));
    };
    let Value::Object(object) = value else {
        return Err(invalid(format!("{path}{what} must be an object")));
    };
    let string = |key: &str| match object.get(key) {
        Some(Value::String(text)) if !text.is_empty() => Ok(text.as_str()),
        Some(Value::String(_)) => Err(invalid(format!("{path}{what}.{key} is empty"))),
        Some(_) => Err(invalid(format!("{path}{what}.{key} must be a string"))),
        None => Err(invalid(format!("{path}{what}.{key} is required"))),
    };
    let properties = match object.get("properties") {
        None | Some(Value::Null) => None,
        Some(Value::Object(properties)) => Some(properties),
        Some(_) => {
            return Err(invalid(format!(
                "{path}{what}.properties must be an object"
            )));
        }
    };
    Ok(Entity {
        kind: string("type")?,
        id: string("id")?,
        properties,
    })
}

fn subject_token(path: &str, subject: Option<&Value>) -> Result<String, BadRequest> {
    let properties = entity(path, "subject", subject)?.properties;
    let field = format!("{path}subject.properties.{TOKEN_PROPERTY}");
    match properties.and_then(|p| p.get(TOKEN_PROPERTY)) {
        Some(Value::String(token)) if !token.is_empty() => {
            if warrant_token::jwt::TOKEN_LEN_MAX < token.len() {
                return Err(invalid(format!(
                    "{field} is {} bytes; allowed: at most {}",
                    token.len(),
                    warrant_token::jwt::TOKEN_LEN_MAX
                )));
            }
            Ok(token.clone())
        }
        Some(Value::String(_)) => Err(invalid(format!("{field} is empty"))),
        Some(_) => Err(invalid(format!("{field} must be a string"))),
        None => Err(invalid(format!(
            "{field} is required: the access token the agent presented"
        ))),
    }
}

fn check_action(path: &str, action: Option<&Value>) -> Result<(), BadRequest> {
    let Some(action) = action else {
        return Err(invalid(format!("{path}action is required")));
    };
    let Value::Object(action) = action else {
        return Err(invalid(format!("{path}action must be an object")));
    };
    match action.get("name") {
        Some(Value::String(name)) if name == CALL_ACTION => Ok(()),
        Some(Value::String(name)) => Err(bad(
            "unsupported_action",
            format!("{path}action.name {name:?} is not supported; allowed: {CALL_ACTION:?}"),
        )),
        Some(_) => Err(invalid(format!("{path}action.name must be a string"))),
        None => Err(invalid(format!("{path}action.name is required"))),
    }
}

/// (service id, tool) of the resource: `properties.service` with the tool as `id`, or an `id`
/// of the form `<service_id>/<tool>` (service ids never contain '/').
fn tool(path: &str, resource: Option<&Value>) -> Result<(String, String), BadRequest> {
    let Entity {
        kind,
        id,
        properties,
    } = entity(path, "resource", resource)?;
    if kind != TOOL_RESOURCE_TYPE {
        return Err(bad(
            "unsupported_resource_type",
            format!(
                "{path}resource.type {kind:?} is not supported; allowed: {TOOL_RESOURCE_TYPE:?}"
            ),
        ));
    }
    let field = format!("{path}resource.properties.{SERVICE_PROPERTY}");
    match properties.and_then(|p| p.get(SERVICE_PROPERTY)) {
        Some(Value::String(service)) if !service.is_empty() => {
            Ok((service.clone(), id.to_string()))
        }
        Some(Value::String(_)) => Err(invalid(format!("{field} is empty"))),
        Some(_) => Err(invalid(format!("{field} must be a string"))),
        None => match id.split_once('/') {
            Some((service, tool)) if !service.is_empty() && !tool.is_empty() => {
                Ok((service.to_string(), tool.to_string()))
            }
            _ => Err(invalid(format!(
                "{path}resource names no service: give {field}, or an id of the form \
                 <service_id>/<tool>"
            ))),
        },
    }
}

/// The context's members as caller attributes, in name order.
fn attributes(
    path: &str,
    context: Option<&Value>,
) -> Result<Vec<log::CallerAttribute>, BadRequest> {
    use log::caller_attribute::Value as Attribute;
    let context = match context {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Object(context)) => context,
        Some(_) => return Err(invalid(format!("{path}context must be an object"))),
    };
    if AUTHZEN_CONTEXT_MEMBERS_MAX < context.len() {
        return Err(invalid(format!(
            "{path}context holds {} members; allowed: at most {AUTHZEN_CONTEXT_MEMBERS_MAX}",
            context.len()
        )));
    }
    let mut attributes = Vec::with_capacity(context.len());
    for (name, value) in context {
        let value = match value {
            Value::String(text) => Attribute::StringValue(text.clone()),
            Value::Bool(flag) => Attribute::BoolValue(*flag),
            Value::Number(number) => match number.as_i64() {
                Some(long) => Attribute::LongValue(long),
                None => {
                    return Err(unsupported_value(
                        path,
                        name,
                        "a number that is not a 64-bit integer",
                    ));
                }
            },
            Value::Null => return Err(unsupported_value(path, name, "null")),
            Value::Array(_) => return Err(unsupported_value(path, name, "an array")),
            Value::Object(_) => return Err(unsupported_value(path, name, "an object")),
        };
        attributes.push(log::CallerAttribute {
            name: name.clone(),
            value: Some(value),
        });
    }
    attributes.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(attributes)
}

fn unsupported_value(path: &str, name: &str, what: &str) -> BadRequest {
    bad(
        "unsupported_context_value",
        format!("{path}context.{name} is {what}; allowed: a string, a 64-bit integer or a boolean"),
    )
}

/// The audit mode `x-warrant-audit` asks for.
pub fn audit_mode(headers: &HeaderMap) -> Result<api::AuditMode, BadRequest> {
    let Some(value) = headers.get(AUDIT_HEADER) else {
        return Ok(api::AuditMode::Sync);
    };
    match value.to_str().map(str::to_ascii_lowercase).as_deref() {
        Ok("sync") => Ok(api::AuditMode::Sync),
        Ok("async") => Ok(api::AuditMode::Async),
        _ => Err(invalid(format!(
            "{AUDIT_HEADER} must be \"sync\" or \"async\""
        ))),
    }
}

/// An Access Evaluation Response for a decision: `decision`, and a `context` naming the
/// receipt (`id`: the decision id), why (`reason_admin`, a Reason Field; `deny_reason`), the
/// policy version and where the receipt is.
pub fn decision_json(response: &api::AuthorizeResponse) -> Value {
    let receipt = response.decision.clone().unwrap_or_default();
    let mut context = json!({
        "id": receipt.decision_id,
        "receipt_seq": response.receipt_seq,
        "receipt_pending": response.receipt_pending,
        "policy_version": receipt.policy_version,
        "determining_policies": receipt.determining_policy_ids,
    });
    if !response.allowed {
        let deny = log::AccessDenyReason::try_from(receipt.deny_reason)
            .unwrap_or(log::AccessDenyReason::Unspecified);
        let deny = deny
            .as_str_name()
            .trim_start_matches("ACCESS_DENY_REASON_")
            .to_string();
        let reason = if receipt.message.is_empty() {
            deny.clone()
        } else {
            format!("{deny}: {}", receipt.message)
        };
        context["deny_reason"] = json!(deny);
        context["reason_admin"] = json!({ "en": reason });
    }
    json!({ "decision": response.allowed, "context": context })
}

/// An evaluation of a boxcar that could not be decided: closed (`decision: false`), with the
/// error in its context, as the spec's per-evaluation errors.
pub fn error_decision_json(error: &ApiError) -> Value {
    json!({
        "decision": false,
        "context": {
            "error": {
                "status": http_status(error).as_u16(),
                "message": error.message,
                "warrant_reason": error.reason.as_str(),
            }
        }
    })
}

/// The PDP metadata document for the PDP at `issuer` (this cluster's issuer URL). Parameters
/// with no value (the search endpoints, which are not served) are omitted, as the spec requires.
pub fn configuration(issuer: &str) -> Value {
    let base = issuer.trim_end_matches('/');
    json!({
        "policy_decision_point": base,
        "access_evaluation_endpoint": format!("{base}{EVALUATION_PATH}"),
        "access_evaluations_endpoint": format!("{base}{EVALUATIONS_PATH}"),
    })
}

/// The results of `requests` under `semantic`, decided in order by `decide`: every one, or up
/// to and including the first deny (an error counts as one), or the first permit.
pub async fn run<F, Fut>(
    requests: Vec<api::AuthorizeRequest>,
    semantic: Semantic,
    mut decide: F,
) -> Vec<Value>
where
    F: FnMut(api::AuthorizeRequest) -> Fut,
    Fut: Future<Output = Result<api::AuthorizeResponse, ApiError>>,
{
    let mut results = Vec::with_capacity(requests.len());
    for request in requests {
        let (result, allowed) = match decide(request).await {
            Ok(response) => (decision_json(&response), response.allowed),
            Err(error) => (error_decision_json(&error), false),
        };
        results.push(result);
        let stop = match semantic {
            Semantic::ExecuteAll => false,
            Semantic::DenyOnFirstDeny => !allowed,
            Semantic::PermitOnFirstPermit => allowed,
        };
        if stop {
            break;
        }
    }
    results
}

pub async fn configuration_handler(State(context): State<Arc<Context>>) -> Response {
    Json(configuration(&context.issuer)).into_response()
}

pub async fn evaluation_handler(
    State(context): State<Arc<Context>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let request_id = headers.get(REQUEST_ID_HEADER).cloned();
    let parsed = body_bytes(body).and_then(|body| {
        let audit = audit_mode(&headers)?;
        parse_evaluation(&body, audit)
    });
    let response = match parsed {
        Err(bad) => bad_request(bad),
        Ok(request) => match caller(&context, headers).await {
            Err(error) => api_error(&error),
            Ok(caller) => {
                match crate::services::authz::authorize(&context, &caller, request).await {
                    Ok(decided) => Json(decision_json(&decided)).into_response(),
                    Err(error) => api_error(&error),
                }
            }
        },
    };
    with_request_id(response, request_id)
}

pub async fn evaluations_handler(
    State(context): State<Arc<Context>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let request_id = headers.get(REQUEST_ID_HEADER).cloned();
    let parsed = body_bytes(body).and_then(|body| {
        let audit = audit_mode(&headers)?;
        parse_evaluations(&body, audit)
    });
    let response = match parsed {
        Err(bad) => bad_request(bad),
        Ok(evaluations) => match caller(&context, headers).await {
            Err(error) => api_error(&error),
            Ok(caller) => evaluations_response(&context, &caller, evaluations).await,
        },
    };
    with_request_id(response, request_id)
}

async fn evaluations_response(
    context: &Context,
    caller: &Caller,
    evaluations: Evaluations,
) -> Response {
    let decide =
        |request| async move { crate::services::authz::authorize(context, caller, request).await };
    if !evaluations.boxcarred {
        let mut results = run(evaluations.requests, Semantic::ExecuteAll, decide).await;
        return match results.pop() {
            Some(result) => Json(result).into_response(),
            None => api_error(&ApiError::internal("no evaluation was decided")),
        };
    }
    let results = run(evaluations.requests, evaluations.semantic, decide).await;
    Json(json!({ "evaluations": results })).into_response()
}

/// The PEP, authenticated as on gRPC. Authorize is a read for the caller: an assertion, which
/// only a write could spend, is refused.
async fn caller(context: &Context, headers: HeaderMap) -> Result<Caller, ApiError> {
    let caller = context.caller(&MetadataMap::from_headers(headers)).await?;
    caller.require_reusable_credential()?;
    Ok(caller)
}

fn body_bytes(body: Result<Bytes, BytesRejection>) -> Result<Bytes, BadRequest> {
    body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            bad(
                "request_too_large",
                format!("the request body is over {REQUEST_BYTES_MAX} bytes; allowed: at most {REQUEST_BYTES_MAX}"),
            )
        } else {
            invalid(format!("the request body could not be read: {rejection}"))
        }
    })
}

fn bad_request(bad: BadRequest) -> Response {
    let body = json!({
        "error": bad.code,
        "message": bad.message,
        "warrant_reason": crate::Reason::FieldInvalid.as_str(),
    });
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

/// The HTTP status of a request that could not be decided.
fn http_status(error: &ApiError) -> StatusCode {
    match error.code {
        Code::InvalidArgument | Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unavailable | Code::DeadlineExceeded => StatusCode::SERVICE_UNAVAILABLE,
        Code::FailedPrecondition | Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn api_error(error: &ApiError) -> Response {
    let status = http_status(error);
    let code = match status {
        StatusCode::BAD_REQUEST => "invalid_request",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::TOO_MANY_REQUESTS => "too_many_requests",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        StatusCode::CONFLICT => "conflict",
        _ => "server_error",
    };
    let body = json!({
        "error": code,
        "message": error.message,
        "warrant_reason": error.reason.as_str(),
    });
    let mut response = (status, Json(body)).into_response();
    if status == StatusCode::UNAUTHORIZED {
        // RFC 9110 §11.6.1: a 401 names the schemes it accepts.
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"warrant\", Basic realm=\"warrant\""),
        );
    }
    response
}

fn with_request_id(mut response: Response, request_id: Option<HeaderValue>) -> Response {
    if let Some(request_id) = request_id {
        response.headers_mut().insert(REQUEST_ID_HEADER, request_id);
    }
    response
}

#[cfg(test)]
mod tests;
