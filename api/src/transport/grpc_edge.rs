//! What every gRPC call passes through before and after its service: a span with the node and a
//! request id, the caller's deadline (`grpc-timeout`, parsed strictly and enforced here), and
//! `ErrorInfo` on every non-OK status, including those the gRPC stack raises itself.
//!
//! The span is also the call's OpenTelemetry server span (named `package.Service/Method`, with
//! the RPC semantic conventions' `rpc.system`, `rpc.service`, `rpc.method` and, once the final
//! status is known, `rpc.grpc.status_code`), the child of the caller's W3C `traceparent` when it
//! sent one. The final status (in the headers of a trailers-only response, else in the trailers)
//! also goes to [`crate::metrics::rpc_finished`], once per call. No header value other than the
//! request id and the trace context is read into the span: never a credential.
//!
//! tonic answers some calls before any handler runs: an unknown method (UNIMPLEMENTED), a
//! message over the size limit (OUT_OF_RANGE), an undecodable one. Those statuses carry no
//! `ErrorInfo`, which the API promises on every status. [`with_error_info`] gives each one its
//! row of the reason table, and sends an over-limit message as RESOURCE_EXHAUSTED, the code
//! gRPC specifies for it.

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::{Duration, Instant},
};

use http::HeaderMap;
use tonic::{Code, Status, body::Body};
use tonic_types::StatusExt as _;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::{
    error::{ApiError, Reason},
    metrics::{RpcOutcome, rpc_finished},
};

/// The longest deadline honoured; a longer one is shortened to it. A call never needs an hour.
pub const DEADLINE_MAX: Duration = Duration::from_secs(3600);
/// Request ids longer than this are replaced by a fresh one.
const REQUEST_ID_LEN_MAX: usize = 128;
/// The header gRPC sends error details in.
const DETAILS_HEADER: &str = "grpc-status-details-bin";
/// A request path longer than this, or not of the form `/package.Service/Method`, is named
/// [`OTHER`] in spans and metrics: a client does not choose unbounded span names.
const RPC_PATH_LEN_MAX: usize = 256;
/// The service and method of a path that names none.
const OTHER: &str = "_OTHER";
/// Raft's own peer RPCs (heartbeats, votes, snapshots) are logged like any call but are not
/// traced: a heartbeat every few milliseconds would bury the traces of real requests. Their
/// spans have this target, which the trace layer's filter leaves out; `Forward` and `ReadIndex`
/// carry a client's request and are traced.
pub const UNTRACED_TARGET: &str = "warrant_api::transport::raft_internal";
/// The peer service; of its methods only these carry a client's request.
const RAFT_SERVICE: &str = "warrant.raft.v1.RaftService";
const RAFT_TRACED_METHODS: [&str; 2] = ["Forward", "ReadIndex"];

/// Wraps a gRPC service (tonic's routes, or the peer service behind its auth layer).
#[derive(Clone)]
pub struct GrpcEdge<S> {
    inner: S,
    node_id: u64,
}

impl<S> GrpcEdge<S> {
    pub fn new(inner: S, node_id: u64) -> Self {
        GrpcEdge { inner, node_id }
    }
}

type EdgeFuture = Pin<Box<dyn Future<Output = Result<http::Response<Body>, Infallible>> + Send>>;

impl<S, B> tower_service::Service<http::Request<B>> for GrpcEdge<S>
where
    S: tower_service::Service<
            http::Request<B>,
            Response = http::Response<Body>,
            Error = Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = EdgeFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> EdgeFuture {
        let started = Instant::now();
        let name = RpcName::of(request.uri().path());
        let span = rpc_span(self.node_id, &name, &request);
        let call_done = CallDone {
            span: span.clone(),
            name,
            started,
        };
        let deadline = match deadline(request.headers()) {
            Ok(deadline) => deadline,
            Err(error) => {
                let response = call_done.watch(error_response(error));
                return Box::pin(std::future::ready(Ok(response)));
            }
        };
        let call = self.inner.call(request);
        Box::pin(
            async move {
                let response = match deadline {
                    None => call.await,
                    Some(deadline) => match tokio::time::timeout(deadline, call).await {
                        Ok(response) => response,
                        Err(_) => {
                            let response = error_response(deadline_exceeded(deadline));
                            return Ok(call_done.watch(response));
                        }
                    },
                };
                Ok(response
                    .map(with_error_info)
                    .map(|response| call_done.watch(response))
                    .unwrap_or_else(|e| match e {}))
            }
            .instrument(span),
        )
    }
}

/// A call's service and method, from its path `/package.Service/Method`.
struct RpcName {
    service: String,
    method: String,
}

impl RpcName {
    fn of(path: &str) -> RpcName {
        let named = path
            .strip_prefix('/')
            .filter(|_| path.len() <= RPC_PATH_LEN_MAX)
            .and_then(|rest| rest.split_once('/'))
            .filter(|(service, method)| is_name(service) && is_name(method));
        match named {
            Some((service, method)) => RpcName {
                service: service.to_string(),
                method: method.to_string(),
            },
            None => RpcName {
                service: OTHER.to_string(),
                method: OTHER.to_string(),
            },
        }
    }

    fn traced(&self) -> bool {
        self.service != RAFT_SERVICE || RAFT_TRACED_METHODS.contains(&self.method.as_str())
    }
}

/// A protobuf (package-qualified) identifier.
fn is_name(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
}

/// Every request runs in a span naming the node and a request id (the caller's `x-request-id`
/// when it sent a short one), so one request's logs can be followed. Traced, it is the call's
/// server span, parented by the caller's trace context.
fn rpc_span<B>(node_id: u64, name: &RpcName, request: &http::Request<B>) -> tracing::Span {
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.len() <= REQUEST_ID_LEN_MAX)
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let method = request.uri().path();
    // An integer attribute for OpenTelemetry, which records a u64 field as text. Node ids are
    // far below i64::MAX.
    let node_id = i64::try_from(node_id).unwrap_or(i64::MAX);
    if !name.traced() {
        return tracing::info_span!(target: UNTRACED_TARGET, "rpc", node_id, method = %method, request_id = %request_id);
    }
    let span = tracing::info_span!(
        "rpc",
        node_id,
        method = %method,
        request_id = %request_id,
        otel.name = %format_args!("{}/{}", name.service, name.method),
        otel.kind = "server",
    );
    span.set_attribute("rpc.system", "grpc");
    span.set_attribute("rpc.service", name.service.clone());
    span.set_attribute("rpc.method", name.method.clone());
    // Always set, so a call without a trace context starts a trace of its own instead of
    // joining whatever span the transport has open.
    let _ = span.set_parent(warrant_raft::trace_context::remote_parent(
        request.headers(),
    ));
    span
}

/// What is left to do once a call's final status is known: record it on the span and in the
/// metrics. Done exactly once per call: when the status is in the response headers, at once;
/// else when the trailers pass; for a response dropped before them (the client went away), as
/// CANCELLED.
struct CallDone {
    span: tracing::Span,
    name: RpcName,
    started: Instant,
}

impl CallDone {
    /// `response` with its final status watched for.
    fn watch(self, response: http::Response<Body>) -> http::Response<Body> {
        let call_done = match Status::from_header_map(response.headers()) {
            Some(status) => {
                self.finish(&status);
                None
            }
            None => Some(self),
        };
        response.map(|body| Body::new(TrailersWithErrorInfo { body, call_done }))
    }

    fn finish(self, status: &Status) {
        let code = status.code();
        let details = (code != Code::Ok).then(|| status.get_error_details());
        let reason = details
            .as_ref()
            .and_then(|d| d.error_info())
            .map(|info| info.reason.as_str());
        self.span.set_attribute("rpc.grpc.status_code", code as i64);
        if let Some(reason) = reason {
            self.span.set_attribute("error.type", reason.to_string());
        }
        if is_server_error(code) {
            self.span.set_status(opentelemetry::trace::Status::error(
                reason.unwrap_or("server error").to_string(),
            ));
        }
        rpc_finished(&RpcOutcome {
            service: &self.name.service,
            method: &self.name.method,
            code,
            reason,
            elapsed: self.started.elapsed(),
        });
    }
}

/// The codes the gRPC semantic conventions count as a server span's error; the others (a
/// refused argument, a missing permission) are the caller's.
fn is_server_error(code: Code) -> bool {
    matches!(
        code,
        Code::Unknown
            | Code::DeadlineExceeded
            | Code::Unimplemented
            | Code::Internal
            | Code::Unavailable
            | Code::DataLoss
    )
}

fn error_response(error: ApiError) -> http::Response<Body> {
    Status::from(error).into_http()
}

fn deadline_exceeded(deadline: Duration) -> ApiError {
    ApiError::new(
        Code::DeadlineExceeded,
        Reason::DeadlineExceeded,
        format!(
            "the call did not finish within its deadline of {} ms (grpc-timeout)",
            deadline.as_millis()
        ),
    )
}

/// The caller's deadline: `grpc-timeout` is 1 to 8 ASCII digits and a unit (gRPC over HTTP/2).
/// Anything else is refused, not ignored, so a client never believes it set a deadline it did
/// not. Longer than [`DEADLINE_MAX`] is shortened to it.
pub fn deadline(headers: &HeaderMap) -> Result<Option<Duration>, ApiError> {
    let mut values = headers.get_all("grpc-timeout").iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    let invalid = |why: &str| {
        ApiError::new(
            Code::InvalidArgument,
            Reason::DeadlineInvalid,
            format!(
                "grpc-timeout {why}; allowed: 1 to 8 digits followed by one of H, M, S, m, u, n"
            ),
        )
        .with("field", "grpc-timeout")
    };
    if values.next().is_some() {
        return Err(invalid("is sent more than once"));
    }
    let text = value.as_bytes();
    let Some((&unit, digits)) = text.split_last() else {
        return Err(invalid("is empty"));
    };
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(invalid("is malformed"));
    }
    // At most 8 digits: fits a u64 with room to spare.
    let amount = digits
        .iter()
        .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
    let duration = match unit {
        b'H' => Duration::from_secs(amount.saturating_mul(3600)),
        b'M' => Duration::from_secs(amount.saturating_mul(60)),
        b'S' => Duration::from_secs(amount),
        b'm' => Duration::from_millis(amount),
        b'u' => Duration::from_micros(amount),
        b'n' => Duration::from_nanos(amount),
        _ => return Err(invalid("has an unknown unit")),
    };
    Ok(Some(duration.min(DEADLINE_MAX)))
}

/// A non-OK status without `ErrorInfo` (one tonic raised) gets its reason; everything else
/// passes unchanged.
pub fn with_error_info(response: http::Response<Body>) -> http::Response<Body> {
    match error_info_for(response.headers()) {
        Some(error) => error_response(error),
        None => response,
    }
}

/// A streamed response's final status travels in its trailers, where tonic puts the errors a
/// stream yields (reflection's NOT_FOUND, say): they get `ErrorInfo` by the same rule. The call
/// is done when they pass (or, for a body that ends without them, when it ends).
struct TrailersWithErrorInfo {
    body: Body,
    call_done: Option<CallDone>,
}

impl TrailersWithErrorInfo {
    fn finish(&mut self, status: &Status) {
        if let Some(call_done) = self.call_done.take() {
            call_done.finish(status);
        }
    }
}

impl Drop for TrailersWithErrorInfo {
    fn drop(&mut self) {
        self.finish(&Status::cancelled(
            "the response was dropped before its status",
        ));
    }
}

impl http_body::Body for TrailersWithErrorInfo {
    type Data = tonic::codegen::Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let frame = match std::task::ready!(Pin::new(&mut self.body).poll_frame(cx)) {
            Some(Ok(frame)) => frame,
            Some(Err(status)) => {
                self.finish(&status);
                return Poll::Ready(Some(Err(status)));
            }
            None => {
                self.finish(&Status::unknown("the response ended without a status"));
                return Poll::Ready(None);
            }
        };
        let mut trailers = match frame.into_trailers() {
            Ok(trailers) => trailers,
            Err(frame) => return Poll::Ready(Some(Ok(frame))),
        };
        if let Some(error) = error_info_for(&trailers) {
            for name in ["grpc-status", "grpc-message", DETAILS_HEADER] {
                trailers.remove(name);
            }
            // `add_header` fails only on a message that is no header value; ours are text.
            let _ = Status::from(error).add_header(&mut trailers);
        }
        let status = Status::from_header_map(&trailers)
            .unwrap_or_else(|| Status::unknown("the trailers carry no status"));
        self.finish(&status);
        Poll::Ready(Some(Ok(http_body::Frame::trailers(trailers))))
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// The error a non-OK status without `ErrorInfo` (in headers or trailers) stands for, or `None`
/// when the status is OK, absent, or already carries its details.
fn error_info_for(headers: &HeaderMap) -> Option<ApiError> {
    if headers.contains_key(DETAILS_HEADER) {
        return None;
    }
    let status = Status::from_header_map(headers)?;
    if status.code() == Code::Ok {
        return None;
    }
    let error = match status.code() {
        Code::OutOfRange => ApiError::new(
            Code::ResourceExhausted,
            Reason::RequestTooLarge,
            format!("{}; send a smaller request", status.message()),
        ),
        Code::Unimplemented => ApiError::new(
            Code::Unimplemented,
            Reason::MethodNotFound,
            "no such method on this listener: it serves the public Warrant API, gRPC health \
             and reflection; peer RPCs are served only on the peer listener"
                .to_string(),
        ),
        // tonic-prost reports a body that does not decode as INTERNAL; it is bad input.
        Code::Internal if status.message().starts_with("failed to decode") => ApiError::new(
            Code::InvalidArgument,
            Reason::MessageUndecodable,
            format!(
                "{}; send a protobuf message of the method's request type",
                status.message()
            ),
        ),
        // Warrant's handlers always send their own NOT_FOUND with a reason; one without is
        // reflection's, for a symbol it does not serve.
        Code::NotFound => ApiError::new(
            Code::NotFound,
            Reason::SymbolNotFound,
            format!(
                "{}; this port describes the public API and health only",
                status.message()
            ),
        ),
        Code::DeadlineExceeded | Code::Cancelled => ApiError::new(
            status.code(),
            Reason::DeadlineExceeded,
            status.message().to_string(),
        ),
        code => ApiError::new(code, Reason::TransportError, status.message().to_string()),
    };
    Some(error)
}

#[cfg(test)]
mod tests {
    use tonic_types::StatusExt;

    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append("grpc-timeout", value.parse().expect("a header value"));
        }
        headers
    }

    #[test]
    fn deadlines_are_parsed_strictly() {
        let ok = [
            (vec![], None),
            (vec!["1n"], Some(Duration::from_nanos(1))),
            (vec!["250m"], Some(Duration::from_millis(250))),
            (vec!["30S"], Some(Duration::from_secs(30))),
            (vec!["2M"], Some(Duration::from_secs(120))),
            (vec!["99999999H"], Some(DEADLINE_MAX)),
        ];
        for (values, expected) in ok {
            assert_eq!(
                deadline(&headers(&values)).expect("valid"),
                expected,
                "{values:?}"
            );
        }
        let refused = [
            vec![""],
            vec!["S"],
            vec!["123456789S"],
            vec!["10"],
            vec!["10s"],
            vec!["-1S"],
            vec!["1.5S"],
            vec![" 1S"],
            vec!["1S", "2S"],
        ];
        for values in refused {
            let error = deadline(&headers(&values)).expect_err("malformed");
            assert_eq!(error.reason, Reason::DeadlineInvalid, "{values:?}");
            assert_eq!(error.code, Code::InvalidArgument);
        }
    }

    fn status_of(response: &http::Response<Body>) -> Status {
        Status::from_header_map(response.headers()).expect("a status")
    }

    #[test]
    fn statuses_tonic_raises_get_their_reason() {
        let cases = [
            (
                Status::out_of_range("Error, decoded message length too large"),
                Code::ResourceExhausted,
                "REQUEST_TOO_LARGE",
            ),
            (
                Status::unimplemented("/x.Y/Z"),
                Code::Unimplemented,
                "METHOD_NOT_FOUND",
            ),
            (
                Status::internal("failed to decode Protobuf message: invalid varint"),
                Code::InvalidArgument,
                "MESSAGE_UNDECODABLE",
            ),
            (
                Status::internal("h2 protocol error"),
                Code::Internal,
                "TRANSPORT_ERROR",
            ),
        ];
        for (raised, code, reason) in cases {
            let status = status_of(&with_error_info(raised.into_http()));
            assert_eq!(status.code(), code);
            assert_eq!(
                status
                    .get_error_details()
                    .error_info()
                    .map(|i| i.reason.as_str()),
                Some(reason)
            );
        }
    }

    #[test]
    fn rpc_names_come_from_well_formed_paths_only() {
        let named = RpcName::of("/warrant.v1.TokenService/Issue");
        assert_eq!(
            (named.service.as_str(), named.method.as_str()),
            ("warrant.v1.TokenService", "Issue")
        );
        let long = format!("/a.B/{}", "x".repeat(RPC_PATH_LEN_MAX));
        for path in [
            "/", "//", "/x", "/a.B/", "/a.B/c/d", "/a B/c", "/a.B/c?d", &long,
        ] {
            let other = RpcName::of(path);
            assert_eq!(
                (other.service.as_str(), other.method.as_str()),
                (OTHER, OTHER),
                "{path}"
            );
        }
        // Raft's heartbeats, votes and snapshots are not traced; the calls carrying a client's
        // request are, as is everything else.
        for (path, traced) in [
            ("/warrant.raft.v1.RaftService/AppendEntries", false),
            ("/warrant.raft.v1.RaftService/Vote", false),
            ("/warrant.raft.v1.RaftService/InstallSnapshot", false),
            ("/warrant.raft.v1.RaftService/Forward", true),
            ("/warrant.raft.v1.RaftService/ReadIndex", true),
            ("/grpc.health.v1.Health/Check", true),
        ] {
            assert_eq!(RpcName::of(path).traced(), traced, "{path}");
        }
    }

    #[test]
    fn statuses_with_details_and_ok_responses_pass_unchanged() {
        let ours: Status = ApiError::new(Code::NotFound, Reason::AgentNotFound, "no agent").into();
        let status = status_of(&with_error_info(ours.into_http()));
        assert_eq!(status.code(), Code::NotFound);
        assert_eq!(
            status
                .get_error_details()
                .error_info()
                .map(|i| i.reason.as_str()),
            Some("AGENT_NOT_FOUND")
        );
        let ok = http::Response::new(Body::empty());
        assert!(with_error_info(ok).headers().is_empty());
    }
}
