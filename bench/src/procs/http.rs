//! A bare HTTP/1.1 GET over loopback, for etcd's `/health` and `/metrics`: no HTTP client
//! dependency for two plain-text endpoints.

use std::time::Duration;

use anyhow::Context as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// How long one request may take, connect to last byte.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// The largest response read: etcd's /metrics is about 100 KiB.
const RESPONSE_BYTES_MAX: u64 = 4 << 20;

/// GETs `path` from `addr` (host:port): (status code, body).
pub async fn get(addr: &str, path: &str) -> anyhow::Result<(u16, String)> {
    tokio::time::timeout(REQUEST_TIMEOUT, get_unbounded(addr, path))
        .await
        .with_context(|| format!("GET http://{addr}{path} took over {REQUEST_TIMEOUT:?}"))?
}

async fn get_unbounded(addr: &str, path: &str) -> anyhow::Result<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .with_context(|| format!("connect to {addr}"))?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    stream
        .take(RESPONSE_BYTES_MAX)
        .read_to_end(&mut response)
        .await?;
    parse_response(&String::from_utf8_lossy(&response))
}

/// The status code and body of a raw HTTP/1.1 response (no chunked bodies: etcd sends
/// `Content-Length` for both endpoints used here; a chunked body keeps its chunk sizes, which
/// the callers' substring checks tolerate).
fn parse_response(response: &str) -> anyhow::Result<(u16, String)> {
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .context("no HTTP status line")?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_status_and_body() {
        let (status, body) =
            parse_response("HTTP/1.1 200 OK\r\nContent-Length: 16\r\n\r\n{\"health\":\"true\"}")
                .expect("parses");
        assert_eq!(status, 200);
        assert_eq!(body, "{\"health\":\"true\"}");
        assert!(parse_response("garbage").is_err());
    }
}
