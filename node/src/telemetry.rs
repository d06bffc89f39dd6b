//! Logs and traces: the `tracing` subscriber every command logs through, and for `server` the
//! OpenTelemetry layer that exports its spans over OTLP/gRPC.
//!
//! Traces are configured only by the standard `OTEL_*` variables and are off unless
//! `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set (and neither
//! `OTEL_SDK_DISABLED=true` nor `OTEL_TRACES_EXPORTER=none` turns them off). The exporter reads
//! the endpoint, headers, timeout and compression variables itself; the batch span processor
//! reads `OTEL_BSP_*`, the sampler `OTEL_TRACES_SAMPLER`, the resource `OTEL_SERVICE_NAME` and
//! `OTEL_RESOURCE_ATTRIBUTES`. This module adds `service.instance.id` (the node id), the default
//! service name `warrant`, TLS from `OTEL_EXPORTER_OTLP[_TRACES]_CERTIFICATE` (and the client
//! certificate variables) for an `https` endpoint, and the W3C TraceContext propagator.

use std::{path::PathBuf, time::Duration};

use anyhow::{Context as _, bail};
use opentelemetry::{KeyValue, trace::TracerProvider as _};
use opentelemetry_otlp::WithTonicConfig as _;
use opentelemetry_sdk::{
    Resource,
    propagation::TraceContextPropagator,
    runtime,
    trace::{SdkTracerProvider, span_processor_with_async_runtime::BatchSpanProcessor},
};
use tonic::transport::{Certificate, ClientTlsConfig, Identity};
use tracing_subscriber::{
    EnvFilter, Layer, Registry,
    filter::{LevelFilter, Targets},
    layer::SubscriberExt as _,
    util::SubscriberInitExt as _,
};

/// `service.name` when neither `OTEL_SERVICE_NAME` nor `OTEL_RESOURCE_ATTRIBUTES` names one.
const SERVICE_NAME_DEFAULT: &str = "warrant";
/// The instrumentation scope of Warrant's spans.
const TRACER_NAME: &str = "warrant";
/// Log filter when `RUST_LOG` is unset.
const LOG_FILTER_DEFAULT: &str = "info,openraft=warn";
/// The crates whose spans (at INFO and above) are traced: Warrant's own. openraft's and the
/// transport stack's spans are too many and too fine for a trace of a request.
const TRACED_CRATES: &str = "warrant";
/// How long stopping waits for the last spans to reach the collector. A collector that is down
/// must not hold the node's exit.
const FLUSH_WAIT_MAX: Duration = Duration::from_secs(5);

/// Keeps traces exporting; [`Telemetry::shutdown`] sends what is left when the node stops.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Flushes the spans not yet exported and stops the exporter, within [`FLUSH_WAIT_MAX`].
    pub async fn shutdown(self) {
        let Some(provider) = self.provider else {
            return;
        };
        // The batch processor's shutdown blocks until its worker (a task on this runtime) has
        // exported: run it off the runtime's threads.
        let stopped = tokio::task::spawn_blocking(move || provider.shutdown());
        match tokio::time::timeout(FLUSH_WAIT_MAX, stopped).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "traces: final export failed"),
            Ok(Err(e)) => tracing::warn!(error = %e, "traces: final export failed"),
            Err(_) => tracing::warn!(
                wait_max_ms = FLUSH_WAIT_MAX.as_millis() as u64,
                "traces: the collector did not take the last spans in time; they are dropped"
            ),
        }
    }
}

/// Logs to stderr in `format` (`json` or text), filtered by `RUST_LOG`; no traces.
pub fn init_logging(format: &str) {
    // Only fails when a subscriber is already installed, which nothing here does twice.
    let _ = tracing_subscriber::registry()
        .with(log_layer(format))
        .try_init();
}

/// Logs as [`init_logging`] does and, when the `OTEL_*` variables ask for it, exports traces
/// with `node_id` as `service.instance.id`. Must run inside the tokio runtime.
pub fn init(format: &str, node_id: u64) -> anyhow::Result<Telemetry> {
    let settings = TraceSettings::from_env(&|name| std::env::var(name).ok())?;
    let provider = match &settings {
        Some(settings) => Some(tracer_provider(settings, node_id)?),
        None => None,
    };
    let traces = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer(TRACER_NAME))
            .with_filter(trace_filter())
    });
    tracing_subscriber::registry()
        .with(log_layer(format))
        .with(traces)
        .try_init()
        .context("install the log subscriber")?;
    if let Some(settings) = &settings {
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        tracing::info!(endpoint = %settings.endpoint, "traces: exporting over OTLP/gRPC");
    }
    Ok(Telemetry { provider })
}

fn log_layer(format: &str) -> Box<dyn Layer<Registry> + Send + Sync> {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(LOG_FILTER_DEFAULT));
    let layer = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if format == "json" {
        layer
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_filter(filter)
            .boxed()
    } else {
        layer.with_filter(filter).boxed()
    }
}

/// Warrant's spans and events at INFO and above, except the untraced Raft peer RPCs.
fn trace_filter() -> Targets {
    Targets::new()
        .with_target(TRACED_CRATES, LevelFilter::INFO)
        .with_target(
            warrant_api::transport::grpc_edge::UNTRACED_TARGET,
            LevelFilter::OFF,
        )
}

/// What the `OTEL_*` variables ask of traces, when they ask for any.
#[derive(Debug, PartialEq)]
struct TraceSettings {
    /// The collector, as the exporter will read it (signal-specific variable first).
    endpoint: String,
    /// TLS for an `https` endpoint.
    tls: Option<TlsFiles>,
}

#[derive(Debug, PartialEq)]
struct TlsFiles {
    ca_file: PathBuf,
    client: Option<(PathBuf, PathBuf)>,
}

impl TraceSettings {
    /// `None` when traces are off. An unsupported exporter or protocol is an error naming what
    /// is allowed, not a silent "off".
    fn from_env(var: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<Option<TraceSettings>> {
        let set = |name: &str| {
            var(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        if set("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            return Ok(None);
        }
        match set("OTEL_TRACES_EXPORTER").as_deref() {
            None | Some("otlp") => {}
            Some("none") => return Ok(None),
            Some(other) => {
                bail!("OTEL_TRACES_EXPORTER is {other:?}; allowed: otlp (the default) or none")
            }
        }
        let Some(endpoint) = set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .or_else(|| set("OTEL_EXPORTER_OTLP_ENDPOINT"))
        else {
            return Ok(None);
        };
        for name in [
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        ] {
            if let Some(protocol) = set(name) {
                if protocol != "grpc" {
                    bail!(
                        "{name} is {protocol:?}; allowed: grpc (Warrant exports OTLP over gRPC only)"
                    );
                }
                break;
            }
        }
        let signal_or_general = |suffix: &str| {
            set(&format!("OTEL_EXPORTER_OTLP_TRACES_{suffix}"))
                .or_else(|| set(&format!("OTEL_EXPORTER_OTLP_{suffix}")))
                .map(PathBuf::from)
        };
        let tls = if endpoint.starts_with("https://") {
            let Some(ca_file) = signal_or_general("CERTIFICATE") else {
                bail!(
                    "the OTLP endpoint {endpoint} is https but OTEL_EXPORTER_OTLP_CERTIFICATE (or \
                     OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE) names no CA file; set it to the PEM \
                     file of the CA that signed the collector's certificate"
                );
            };
            let client = match (
                signal_or_general("CLIENT_CERTIFICATE"),
                signal_or_general("CLIENT_KEY"),
            ) {
                (Some(cert), Some(key)) => Some((cert, key)),
                (None, None) => None,
                _ => bail!(
                    "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE and OTEL_EXPORTER_OTLP_CLIENT_KEY go \
                     together; set both or neither"
                ),
            };
            Some(TlsFiles { ca_file, client })
        } else {
            None
        };
        Ok(Some(TraceSettings { endpoint, tls }))
    }
}

fn tracer_provider(settings: &TraceSettings, node_id: u64) -> anyhow::Result<SdkTracerProvider> {
    let mut exporter = opentelemetry_otlp::SpanExporter::builder().with_tonic();
    if let Some(tls) = &settings.tls {
        exporter = exporter.with_tls_config(client_tls(tls)?);
    }
    let exporter = exporter
        .build()
        .with_context(|| format!("traces: the OTLP exporter for {}", settings.endpoint))?;
    let processor = BatchSpanProcessor::builder(exporter, runtime::Tokio).build();
    Ok(SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_resource(resource(node_id))
        .build())
}

/// The detected resource (`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`), named `warrant`
/// when neither names the service, with this node as `service.instance.id`.
fn resource(node_id: u64) -> Resource {
    let detected = Resource::builder().build();
    let named = detected
        .get(&opentelemetry::Key::from_static_str("service.name"))
        .is_some_and(|name| !name.as_str().starts_with("unknown_service"));
    let mut builder = Resource::builder();
    if !named {
        builder = builder.with_service_name(SERVICE_NAME_DEFAULT);
    }
    builder
        .with_attribute(KeyValue::new("service.instance.id", node_id.to_string()))
        .build()
}

fn client_tls(files: &TlsFiles) -> anyhow::Result<ClientTlsConfig> {
    let read = |path: &PathBuf| {
        std::fs::read(path).with_context(|| format!("traces: read {}", path.display()))
    };
    let mut tls =
        ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read(&files.ca_file)?));
    if let Some((cert, key)) = &files.client {
        tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?));
    }
    Ok(tls)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use opentelemetry::trace::TraceContextExt as _;

    use super::*;

    fn settings(vars: &[(&str, &str)]) -> anyhow::Result<Option<TraceSettings>> {
        let vars: BTreeMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        TraceSettings::from_env(&|name| vars.get(name).cloned())
    }

    #[test]
    fn traces_are_off_unless_an_endpoint_is_set() {
        assert_eq!(settings(&[]).expect("valid"), None);
        assert_eq!(
            settings(&[("OTEL_SERVICE_NAME", "x")]).expect("valid"),
            None
        );
        let on = settings(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317")]).expect("valid");
        assert_eq!(on.map(|s| s.endpoint).as_deref(), Some("http://c:4317"));
        let signal = settings(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://general:4317"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://traces:4317"),
        ])
        .expect("valid");
        assert_eq!(
            signal.map(|s| s.endpoint).as_deref(),
            Some("http://traces:4317")
        );
        for off in [
            ("OTEL_SDK_DISABLED", "true"),
            ("OTEL_TRACES_EXPORTER", "none"),
        ] {
            let vars = [("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"), off];
            assert_eq!(settings(&vars).expect("valid"), None, "{off:?}");
        }
    }

    #[test]
    fn unsupported_protocols_and_exporters_are_refused_naming_what_is_allowed() {
        let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317");
        let error = settings(&[endpoint, ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")])
            .expect_err("http is not supported");
        assert!(error.to_string().contains("allowed: grpc"), "{error}");
        let error = settings(&[endpoint, ("OTEL_TRACES_EXPORTER", "zipkin")])
            .expect_err("zipkin is not supported");
        assert!(error.to_string().contains("allowed: otlp"), "{error}");
        // The signal-specific protocol wins over the general one.
        let ok = settings(&[
            endpoint,
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc"),
        ]);
        assert!(ok.expect("valid").is_some());
    }

    #[test]
    fn an_https_endpoint_needs_a_ca_file() {
        let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://c:4317");
        let error = settings(&[endpoint]).expect_err("no CA");
        assert!(
            error.to_string().contains("OTEL_EXPORTER_OTLP_CERTIFICATE"),
            "{error}"
        );
        let with_ca = settings(&[endpoint, ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/ca.pem")])
            .expect("valid")
            .expect("on");
        assert_eq!(
            with_ca.tls,
            Some(TlsFiles {
                ca_file: "/ca.pem".into(),
                client: None
            })
        );
        let half = settings(&[
            endpoint,
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/ca.pem"),
            ("OTEL_EXPORTER_OTLP_CLIENT_KEY", "/key.pem"),
        ]);
        assert!(half.is_err());
    }

    /// The propagator the binary installs, with the carriers the edge and the peer client use:
    /// a `traceparent` read from one call's headers is written unchanged into the next call's.
    #[test]
    fn the_propagator_round_trips_a_traceparent() {
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let mut incoming = http::HeaderMap::new();
        incoming.insert("traceparent", traceparent.parse().expect("header value"));
        incoming.insert("tracestate", "vendor=opaque".parse().expect("header value"));
        let parent = warrant_raft::trace_context::remote_parent(&incoming);
        let remote = parent.span().span_context().clone();
        assert!(remote.is_valid() && remote.is_remote());
        assert_eq!(
            remote.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        let mut outgoing = http::HeaderMap::new();
        warrant_raft::trace_context::inject(&parent, &mut outgoing);
        assert_eq!(
            outgoing.get("traceparent").map(|v| v.as_bytes()),
            Some(traceparent.as_bytes())
        );
        assert_eq!(
            outgoing.get("tracestate").map(|v| v.as_bytes()),
            Some(&b"vendor=opaque"[..])
        );
        // No trace context, or a malformed one: a new trace, not the current context.
        let mut malformed = http::HeaderMap::new();
        malformed.insert("traceparent", "00-zz-00-01".parse().expect("header value"));
        for headers in [http::HeaderMap::new(), malformed] {
            let parent = warrant_raft::trace_context::remote_parent(&headers);
            assert!(!parent.span().span_context().is_valid());
        }
    }
}
