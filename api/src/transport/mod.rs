//! The node's listeners, below the services: TLS with rustls (reloadable), accepting with a
//! connection cap, serving HTTP/2 and HTTP/1.1 connections with hyper, and the edge every gRPC
//! call passes (deadline, span, `ErrorInfo` on statuses the stack raises).
//!
//! A node has up to three listeners: public gRPC (`listen_addr`; TLS, client certificates
//! optional), the peer listener (`peer_listen_addr`; mutual TLS required, only the peer
//! service), and HTTP (`http_listen_addr`; TLS). With `insecure_plaintext` all three are
//! plaintext and peers prove themselves with shared secrets instead (tests and development).

pub mod grpc_edge;
pub mod incoming;
pub mod serve;
pub mod tls;

pub use grpc_edge::GrpcEdge;
pub use incoming::{ClientOperator, Conn, ListenerSpec, OPERATOR_NAME_DOMAIN, Role, accept};
pub use serve::{Protocol, serve};
pub use tls::{TlsError, TlsFiles, TlsState};
