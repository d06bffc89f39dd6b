//! The OTLP logs collector the audit stream is sent to: opentelemetry-proto's tonic
//! `LogsServiceClient` over a lazily connected channel (plaintext for `http://`, TLS for
//! `https://` with the configured CA).

use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, logs_service_client::LogsServiceClient,
};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

use super::{
    AUDIT_EXPORT_CA_BYTES_MAX, AUDIT_EXPORT_CONNECT_TIMEOUT, AUDIT_EXPORT_RPC_TIMEOUT,
    AuditExportConfig,
};

/// Why the collector cannot be set up: a bad endpoint or CA. Found at start, so the node does
/// not start with an exporter that can never send.
#[derive(Debug, thiserror::Error)]
pub enum CollectorError {
    #[error(
        "audit_export.endpoint {endpoint:?} is not usable: {why}; allowed: http://host:port or \
         https://host:port"
    )]
    Endpoint { endpoint: String, why: String },
    #[error("audit_export.ca_file {path}: {why}")]
    Ca { path: String, why: String },
}

/// Why one export was not acknowledged: the batch is sent again later.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("the collector refused the batch: {0}")]
    Status(#[from] tonic::Status),
    #[error("the collector rejected {rejected} of the batch's records: {message}")]
    Partial { rejected: i64, message: String },
}

/// A client of one collector.
#[derive(Clone)]
pub struct Collector {
    client: LogsServiceClient<Channel>,
}

impl Collector {
    /// A client of `config.endpoint`; connects at the first export, and again after a failure.
    pub fn new(config: &AuditExportConfig) -> Result<Self, CollectorError> {
        let bad = |why: String| CollectorError::Endpoint {
            endpoint: config.endpoint.clone(),
            why,
        };
        let mut endpoint = Endpoint::from_shared(config.endpoint.clone())
            .map_err(|e| bad(e.to_string()))?
            .connect_timeout(AUDIT_EXPORT_CONNECT_TIMEOUT)
            .timeout(AUDIT_EXPORT_RPC_TIMEOUT);
        match config.endpoint.split_once("://").map(|(scheme, _)| scheme) {
            Some("http") => {}
            Some("https") => {
                let ca = read_ca(config)?;
                endpoint = endpoint
                    .tls_config(ClientTlsConfig::new().ca_certificate(ca))
                    .map_err(|e| bad(e.to_string()))?;
            }
            _ => return Err(bad("the scheme is neither http nor https".to_string())),
        }
        Ok(Self {
            client: LogsServiceClient::new(endpoint.connect_lazy()),
        })
    }

    /// Sends one batch; Ok only when the collector acknowledged every record of it.
    pub async fn export(&mut self, request: ExportLogsServiceRequest) -> Result<(), ExportError> {
        let reply = self.client.export(request).await?.into_inner();
        match reply.partial_success {
            Some(partial) if partial.rejected_log_records > 0 => Err(ExportError::Partial {
                rejected: partial.rejected_log_records,
                message: partial.error_message,
            }),
            _ => Ok(()),
        }
    }
}

/// The CA an https collector's certificate must chain to, bounded in size.
fn read_ca(config: &AuditExportConfig) -> Result<Certificate, CollectorError> {
    let Some(path) = &config.ca_file else {
        return Err(CollectorError::Endpoint {
            endpoint: config.endpoint.clone(),
            why: "https needs a CA: set audit_export.ca_file (or run the node with [tls], whose \
                  ca_file is used)"
                .to_string(),
        });
    };
    let ca_error = |why: String| CollectorError::Ca {
        path: path.display().to_string(),
        why,
    };
    let bytes = std::fs::metadata(path)
        .map_err(|e| ca_error(e.to_string()))?
        .len();
    if AUDIT_EXPORT_CA_BYTES_MAX < bytes {
        return Err(ca_error(format!(
            "is {bytes} bytes; allowed: at most {AUDIT_EXPORT_CA_BYTES_MAX}"
        )));
    }
    let pem = std::fs::read(path).map_err(|e| ca_error(e.to_string()))?;
    Ok(Certificate::from_pem(pem))
}
