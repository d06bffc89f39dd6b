//! The peer address of the request being served, for the failure limits.
//!
//! A layer around the gRPC services and the HTTP router reads the connection's address (which
//! `transport::serve` puts in every request's extensions) and sets it for the duration of the request, so authentication can
//! count failures per address without every RPC handler passing it along. It is never read from
//! anything the client sends, so a client cannot pick its own address. A request served outside
//! the layer (tests) has no address, and only its principal is counted.

use std::{
    net::IpAddr,
    task::{Context, Poll},
};

use tokio::task::futures::TaskLocalFuture;
use warrant_raft::PeerConnInfo;

tokio::task_local! {
    static PEER: Option<IpAddr>;
}

/// The address of the peer whose request is being served, if known.
pub fn current() -> Option<IpAddr> {
    PEER.try_with(|peer| *peer).ok().flatten()
}

/// Runs `future` as a request from `peer` (for servers that know the address another way).
pub fn scope<F: Future>(peer: Option<IpAddr>, future: F) -> TaskLocalFuture<Option<IpAddr>, F> {
    PEER.scope(peer, future)
}

/// Sets [`current`] for each request from its connection's address.
#[derive(Clone, Copy, Debug, Default)]
pub struct PeerAddrLayer;

impl<S> tower_layer::Layer<S> for PeerAddrLayer {
    type Service = PeerAddr<S>;

    fn layer(&self, inner: S) -> PeerAddr<S> {
        PeerAddr { inner }
    }
}

#[derive(Clone, Debug)]
pub struct PeerAddr<S> {
    inner: S,
}

impl<S, B> tower_service::Service<axum::http::Request<B>> for PeerAddr<S>
where
    S: tower_service::Service<axum::http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = TaskLocalFuture<Option<IpAddr>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: axum::http::Request<B>) -> Self::Future {
        let peer = request
            .extensions()
            .get::<PeerConnInfo>()
            .and_then(|conn| conn.remote_addr)
            .map(|addr| addr.ip());
        PEER.scope(peer, self.inner.call(request))
    }
}
