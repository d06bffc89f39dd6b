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

use crate::transport::ClientOperator;

/// What the connection of the request being served proved about its caller.
#[derive(Clone, Debug, Default)]
pub struct Client {
    addr: Option<IpAddr>,
    /// The operator a verified client certificate names, if any.
    operator: Option<ClientOperator>,
}

tokio::task_local! {
    static PEER: Client;
}

/// The address of the peer whose request is being served, if known.
pub fn current() -> Option<IpAddr> {
    PEER.try_with(|peer| peer.addr).ok().flatten()
}

/// The operator the caller's verified client certificate names, if any.
pub fn operator() -> Option<ClientOperator> {
    PEER.try_with(|peer| peer.operator.clone()).ok().flatten()
}

/// Runs `future` as a request from `peer` (for servers that know the address another way).
pub fn scope<F: Future>(peer: Option<IpAddr>, future: F) -> TaskLocalFuture<Client, F> {
    PEER.scope(
        Client {
            addr: peer,
            operator: None,
        },
        future,
    )
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
    type Future = TaskLocalFuture<Client, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: axum::http::Request<B>) -> Self::Future {
        let client = Client {
            addr: request
                .extensions()
                .get::<PeerConnInfo>()
                .and_then(|conn| conn.remote_addr)
                .map(|addr| addr.ip()),
            operator: request.extensions().get::<ClientOperator>().cloned(),
        };
        PEER.scope(client, self.inner.call(request))
    }
}
