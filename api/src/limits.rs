//! Limits on what the API accepts and lists, shared by more than one module. Field rules live in
//! `warrant_identity::limits`, so apply and the API agree on them; these are the edge's own
//! bounds on requests, connections and listings. A leaf: it imports nothing from this crate.

/// The largest public request accepted, over gRPC and HTTP. Access tokens are at most 8 KiB
/// (`warrant_token::jwt::TOKEN_LEN_MAX`) and id_tokens 16 KiB; nothing legitimate comes close.
pub const REQUEST_BYTES_MAX: usize = 64 * 1024;
/// Concurrent RPCs per client connection.
pub const CONCURRENCY_PER_CONNECTION_MAX: usize = 256;
/// Concurrent HTTP/2 streams per connection.
pub const STREAMS_PER_CONNECTION_MAX: u32 = 512;
/// Keys listed in one JWKS document, and read when retiring a node's earlier keys. Each node
/// publishes one key per rotation, so this is far beyond any real cluster.
pub const JWKS_KEYS_MAX: usize = 1024;
/// Client secrets (and local passwords at registration): long enough to resist guessing, short
/// enough to hash cheaply.
pub const CLIENT_SECRET_LEN_MIN: usize = 24;
pub const CLIENT_SECRET_LEN_MAX: usize = 256;
/// Open connections per listener. Beyond them a new connection is closed as it is accepted.
pub const PUBLIC_CONNECTIONS_MAX: usize = 4096;
pub const HTTP_CONNECTIONS_MAX: usize = 1024;
/// Peers are the other members (each opens two connections) and a few reconnecting ones.
pub const PEER_CONNECTIONS_MAX: usize = 64;
/// The most header bytes (all metadata) an HTTP/2 request may carry: 16 KiB, as gRPC's default.
pub const HTTP2_HEADER_LIST_BYTES_MAX: u32 = 16 * 1024;
/// Streams a client may reset before the server has accepted them (the "rapid reset" bound).
pub const HTTP2_PENDING_RESETS_MAX: usize = 20;
/// HTTP/2 pings: a connection silent for the interval is pinged, and closed if the ping is not
/// answered within the timeout.
pub const HTTP2_KEEPALIVE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(30);
pub const HTTP2_KEEPALIVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);
/// How long an HTTP/1.1 client may take to send a request's headers.
pub const HTTP_HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// HTTP/1.1 read buffer: headers and a body of `REQUEST_BYTES_MAX` fit.
pub const HTTP_READ_BUFFER_BYTES_MAX: usize = 128 * 1024;
