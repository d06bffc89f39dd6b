//! What the `warrant audit` verbs share: a client of one node's AuditService with the CLI's TLS
//! settings, requests carrying the CLI's credential, refusals printed as `policy_cli` prints
//! them, JSON output, and times read and written as RFC 3339 or unix milliseconds. A leaf
//! module, so that the verbs (`audit_cli`, `audit_verify_cli`, `audit_bisect`, `audit_access`)
//! depend on it and not on one another.

use anyhow::Context as _;
use tonic::{Status, transport::Channel};
use warrant_proto::api::audit_service_client::AuditServiceClient;

use crate::{client::authed, policy_cli::Common};

/// A client of the AuditService of the node `common` names, over the CLI's TLS settings.
pub async fn audit_client(common: &Common) -> anyhow::Result<AuditServiceClient<Channel>> {
    let channel = common.auth.channel().await?;
    Ok(AuditServiceClient::new(channel))
}

/// `message` as a request carrying the CLI's credential.
pub fn req<T>(common: &Common, message: T) -> anyhow::Result<tonic::Request<T>> {
    Ok(authed(&common.auth.authorization()?, message))
}

/// A refused call: what, the status, the reason code and the message.
pub fn refused(what: &str, status: &Status) -> anyhow::Error {
    crate::policy_cli::refused(what, status)
}

/// `value` pretty-printed on stdout (`-o json`).
pub fn print_json(value: &serde_json::Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// A time given as RFC 3339 or as unix milliseconds, in unix milliseconds.
pub fn parse_time_ms(text: &str) -> anyhow::Result<u64> {
    if let Ok(ms) = text.parse::<u64>() {
        return Ok(ms);
    }
    let at = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .with_context(|| format!("{text:?} is neither RFC 3339 nor unix milliseconds"))?;
    u64::try_from(at.unix_timestamp_nanos() / 1_000_000)
        .with_context(|| format!("{text:?} is before 1970"))
}

/// Unix milliseconds as RFC 3339 (UTC), or the number when it is out of range.
pub fn format_time_ms(ms: u64) -> String {
    i128::from(ms)
        .checked_mul(1_000_000)
        .and_then(|ns| time::OffsetDateTime::from_unix_timestamp_nanos(ns).ok())
        .and_then(|at| {
            at.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ms.to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_parse_as_rfc_3339_or_unix_ms() {
        assert_eq!(
            super::parse_time_ms("1700000000123").ok(),
            Some(1_700_000_000_123)
        );
        assert_eq!(
            super::parse_time_ms("2023-11-14T22:13:20.123Z").ok(),
            Some(1_700_000_000_123)
        );
        assert!(super::parse_time_ms("yesterday").is_err());
        assert_eq!(
            super::format_time_ms(1_700_000_000_123),
            "2023-11-14T22:13:20.123Z"
        );
    }
}
