//! W3C trace context (`traceparent`, `tracestate`) in gRPC metadata: read from a call that
//! arrives, written into a call that leaves (the `Forward` of a write to the leader), so one
//! trace crosses nodes.
//!
//! Both go through OpenTelemetry's global propagator. The binary sets it to W3C TraceContext
//! when traces are on; otherwise it is the no-op propagator, which reads and writes nothing.

use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::{
    Context,
    propagation::{Extractor, Injector},
};

/// The remote parent named by `headers`, or an empty context (a new trace) when they name none
/// or a malformed one. Never the context current on this thread: a call does not become the
/// child of whatever the transport was doing when it arrived.
pub fn remote_parent(headers: &HeaderMap) -> Context {
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.extract_with_context(&Context::new(), &HeaderExtractor(headers))
    })
}

/// Writes `context` (a span's, from `OpenTelemetrySpanExt::context`) into `headers`; nothing
/// when traces are off or the span is not recorded.
pub fn inject(context: &Context, headers: &mut HeaderMap) {
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(context, &mut HeaderInjector(headers))
    });
}

struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

struct HeaderInjector<'a>(&'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        // The propagator writes only its own header names and printable values; anything else
        // is dropped rather than sent malformed.
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(key.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}
