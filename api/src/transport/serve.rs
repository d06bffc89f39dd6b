//! Serving accepted connections with hyper: HTTP/2 for gRPC (public and peer), HTTP/1.1 for the
//! HTTP side, each with its limits, and a graceful drain on stop.
//!
//! tonic's own `Server` is not used: it cannot give a listener a connection cap, a TLS config
//! that reloads, or a place to fill in `ErrorInfo` on the statuses it raises itself (its
//! deadline and error recovery run outside any layer). Serving tonic's `Routes` directly on
//! hyper keeps all of that in our hands; the limits tonic set are set here, named.

use std::{
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::{
    sync::{Semaphore, mpsc, watch},
    task::{JoinHandle, JoinSet},
};

use super::incoming::Conn;
use crate::limits::{
    CONCURRENCY_PER_CONNECTION_MAX, HTTP_HEADER_READ_TIMEOUT, HTTP_READ_BUFFER_BYTES_MAX,
    HTTP2_HEADER_LIST_BYTES_MAX, HTTP2_KEEPALIVE_INTERVAL, HTTP2_KEEPALIVE_TIMEOUT,
    HTTP2_PENDING_RESETS_MAX, HTTP2_SILENT_CLIENT_TIMEOUT, STREAMS_PER_CONNECTION_MAX,
};

/// How long open connections get to finish their requests once the node stops.
pub const DRAIN_WAIT_MAX: Duration = Duration::from_secs(5);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Which protocol a listener speaks.
#[derive(Clone, Copy, Debug)]
pub enum Protocol {
    /// gRPC: HTTP/2 only.
    Http2,
    /// The HTTP side: HTTP/1.1.
    Http1,
}

/// Serves every connection `conns` yields with `service` until `stop`, then lets open
/// connections drain for at most [`DRAIN_WAIT_MAX`].
pub fn serve<S, B>(
    mut conns: mpsc::Receiver<Conn>,
    service: S,
    protocol: Protocol,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()>
where
    S: tower_service::Service<http::Request<Incoming>, Response = http::Response<B>>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    tokio::spawn(async move {
        let mut connections = JoinSet::new();
        let connection_stop = stop.clone();
        loop {
            tokio::select! {
                _ = stop.wait_for(|stop| *stop) => break,
                conn = conns.recv() => match conn {
                    Some(conn) => {
                        connections.spawn(serve_one(conn, service.clone(), protocol, connection_stop.clone()));
                    }
                    None => break,
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        while connections.join_next().await.is_some() {}
    })
}

/// Serves one connection: every request gets the connection's [`warrant_raft::PeerConnInfo`]
/// as an extension, and at most [`CONCURRENCY_PER_CONNECTION_MAX`] run at once.
async fn serve_one<S, B>(conn: Conn, service: S, protocol: Protocol, stop: watch::Receiver<bool>)
where
    S: tower_service::Service<http::Request<Incoming>, Response = http::Response<B>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let info = conn.info;
    let operator = conn.operator.clone();
    let heard = conn.heard();
    let in_flight = Arc::new(Semaphore::new(CONCURRENCY_PER_CONNECTION_MAX));
    let handler = hyper::service::service_fn(move |mut request: http::Request<Incoming>| {
        request.extensions_mut().insert(info);
        if let Some(operator) = &operator {
            request.extensions_mut().insert(operator.clone());
        }
        let service = service.clone();
        let in_flight = in_flight.clone();
        async move {
            let _permit = in_flight.acquire_owned().await;
            tower::ServiceExt::oneshot(service, request).await
        }
    });
    let io = TokioIo::new(conn);
    match protocol {
        Protocol::Http2 => {
            let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
            builder
                .timer(TokioTimer::new())
                .max_concurrent_streams(STREAMS_PER_CONNECTION_MAX)
                .max_header_list_size(HTTP2_HEADER_LIST_BYTES_MAX)
                .max_pending_accept_reset_streams(HTTP2_PENDING_RESETS_MAX)
                .keep_alive_interval(HTTP2_KEEPALIVE_INTERVAL)
                .keep_alive_timeout(HTTP2_KEEPALIVE_TIMEOUT);
            let connection = builder.serve_connection(io, handler);
            drive(connection, |c| c.graceful_shutdown(), stop, Some(heard)).await;
        }
        Protocol::Http1 => {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(HTTP_HEADER_READ_TIMEOUT)
                .max_buf_size(HTTP_READ_BUFFER_BYTES_MAX);
            let connection = builder.serve_connection(io, handler);
            // The header-read timeout already closes a silent HTTP/1.1 client.
            drive(connection, |c| c.graceful_shutdown(), stop, None).await;
        }
    }
}

/// Runs a connection until it ends, or until `stop`, then asks it to finish gracefully and
/// waits at most [`DRAIN_WAIT_MAX`]. With `heard`, a client that has sent nothing within
/// [`HTTP2_SILENT_CLIENT_TIMEOUT`] is dropped: it would hold its connection slot forever.
async fn drive<C>(
    connection: C,
    graceful: fn(Pin<&mut C>),
    mut stop: watch::Receiver<bool>,
    heard: Option<Arc<AtomicBool>>,
) where
    C: Future<Output = Result<(), hyper::Error>>,
{
    let mut connection = std::pin::pin!(connection);
    let silent = async {
        let Some(heard) = heard else {
            return std::future::pending().await;
        };
        tokio::time::sleep(HTTP2_SILENT_CLIENT_TIMEOUT).await;
        if heard.load(Ordering::Relaxed) {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            return;
        }
        _ = silent => {
            tracing::debug!("closed a connection whose client sent nothing");
            return;
        }
        _ = stop.wait_for(|stop| *stop) => {}
    }
    graceful(connection.as_mut());
    let _ = tokio::time::timeout(DRAIN_WAIT_MAX, connection).await;
}
