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
/// Keys not retired, and retired keys still kept, each listed in one JWKS document (and the
/// first read when retiring a node's earlier keys). Counted among keys in force, never among
/// every key ever published: each node has one current key, and a retired key is kept only
/// until its last token expires, so this is far beyond any real cluster.
pub const JWKS_KEYS_MAX: usize = 1024;
/// Client secrets (and local passwords at registration): long enough to resist guessing, short
/// enough to hash cheaply.
pub const CLIENT_SECRET_LEN_MIN: usize = 24;
pub const CLIENT_SECRET_LEN_MAX: usize = 256;
