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
/// How long an HTTP/2 client may stay silent after connecting (TLS done): it must send its
/// connection preface at once, so one that sends nothing for this long is closed, and its
/// connection slot freed. (HTTP/1.1's equivalent is the header-read timeout.)
pub const HTTP2_SILENT_CLIENT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// How long an HTTP/1.1 client may take to send a request's headers.
pub const HTTP_HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// HTTP/1.1 read buffer: headers and a body of `REQUEST_BYTES_MAX` fit.
pub const HTTP_READ_BUFFER_BYTES_MAX: usize = 128 * 1024;

// Authentication cost. Argon2id (m=19 MiB, t=2) takes tens of milliseconds of one core per
// check, so a flood of wrong secrets is a flood of CPU work: these bound it.

/// Threads that run argon2 for secret checks, at most: half the node's cores (at least one), so
/// a flood of checks leaves the rest to Raft's log appends and apply and to the runtime.
pub const ARGON2_THREADS_MAX: usize = 4;
/// Secret checks waiting for an argon2 thread. A check arriving at a full queue is refused at
/// once (RESOURCE_EXHAUSTED, `AUTH_BUSY`) rather than queued behind work it would wait out.
pub const ARGON2_QUEUE_MAX: usize = 32;
/// How long a caller waits for its secret check, queueing included, before it is refused with
/// `AUTH_BUSY`. A check whose callers have all given up is dropped unstarted.
pub const ARGON2_WAIT_MAX: std::time::Duration = std::time::Duration::from_secs(2);
/// The window the failure limits count in.
pub const AUTH_FAILURE_WINDOW: std::time::Duration = std::time::Duration::from_secs(60);
/// Costly authentication attempts (an argon2 check or a catch-up to the leader) that may fail
/// per principal named, per window. An attempt is counted when it starts and forgiven when it
/// succeeds. A secret this node has verified before costs nothing and is never refused.
pub const AUTH_FAILURES_PER_PRINCIPAL_MAX: u32 = 10;
/// The same, per peer address (an IPv6 address counts by its /64).
pub const AUTH_FAILURES_PER_ADDRESS_MAX: u32 = 100;
/// Principals, and separately addresses, whose failures are tracked at once. When a table is
/// full, windows that have ended are dropped; if none has, the table starts afresh.
pub const AUTH_FAILURE_KEYS_MAX: usize = 100_000;

// Access decisions.

/// ASYNC receipts decided on this node and waiting for their commit. A full queue pushes back:
/// an ASYNC Authorize waits [`RECEIPT_QUEUE_WAIT_MAX`] for room, then is refused with
/// `RECEIPT_QUEUE_FULL` before anything is decided. A node crash loses at most this many
/// receipts (those queued and not yet committed).
pub const RECEIPT_QUEUE_MAX: usize = 16_384;
/// How long an ASYNC Authorize waits for room in a full receipt queue.
pub const RECEIPT_QUEUE_WAIT_MAX: std::time::Duration = std::time::Duration::from_secs(1);
/// Receipts per `RecordAccessDecisions` command (apply's own bound is the same number).
pub const RECEIPTS_PER_RECORD_MAX: usize = 256;
/// Encoded receipt bytes per `RecordAccessDecisions` command: half a Raft batch
/// (`warrant_raft`'s 1 MiB), so a record always fits one with room for other commands. A single
/// receipt larger than this still goes, alone.
pub const RECEIPTS_RECORD_BYTES_MAX: usize = 512 * 1024;
/// How long the drain waits after a batch's first receipt for others to join it, unless the
/// batch is full: what a crash can lose grows by at most this much of decisions.
pub const RECEIPT_BATCH_LINGER: std::time::Duration = std::time::Duration::from_millis(5);
/// How long a stopping node keeps committing the receipts still queued, after its listeners
/// stopped; what is left then is lost (and logged with its count).
pub const RECEIPT_DRAIN_ON_STOP_MAX: std::time::Duration = std::time::Duration::from_secs(10);
/// Backoff between attempts to commit a batch of receipts, doubling from the first to the last.
pub const RECEIPT_RETRY_BACKOFF_MIN: std::time::Duration = std::time::Duration::from_millis(50);
pub const RECEIPT_RETRY_BACKOFF_MAX: std::time::Duration = std::time::Duration::from_secs(2);

// Policies.

/// The largest request to `PolicyService`: a policy text may be 256 KiB
/// (`warrant_identity::limits::POLICY_TEXT_BYTES_MAX`), beyond the API's 64 KiB, plus the
/// request's other fields. A text somewhat over its limit still reaches the handler, which
/// refuses it as `FIELD_TOO_LONG` naming the limit; a larger request is the transport's
/// `REQUEST_TOO_LARGE`. No more, because a request is decoded before its caller is
/// authenticated.
pub const POLICY_REQUEST_BYTES_MAX: usize =
    warrant_identity::limits::POLICY_TEXT_BYTES_MAX + REQUEST_BYTES_MAX;
/// Events one `ShadowReport` call scans at most; it says where to continue.
pub const SHADOW_REPORT_EVENTS_SCANNED_MAX: usize = 10_000;

// AuthZEN (`crate::authzen`).

/// Evaluations in one AuthZEN Access Evaluations request (`POST /access/v1/evaluations`). Each
/// is one Authorize (a SYNC one is a log entry), so a batch is bounded like a request list.
pub const AUTHZEN_EVALUATIONS_MAX: usize = 64;
/// Members of one AuthZEN `context` object, each a caller attribute: the same bound as
/// `warrant_identity::limits::CALLER_ATTRIBUTES_MAX`, checked here first so a large context is
/// refused before anything is read into an Authorize.
pub const AUTHZEN_CONTEXT_MEMBERS_MAX: usize = 32;

// Failed-authentication aggregates (`crate::auth::failure_log`).

/// Distinct (claimed kind, claimed id, reason) keys the aggregator holds between flushes; more
/// fold into one "(other)" entry per (kind, reason), so the map holds at most this many named
/// keys plus one per kind and reason code.
pub const AUTH_FAILURE_LOG_KEYS_MAX: usize = 1024;
/// How often the aggregates are proposed as one RecordAuthFailures command.
pub const AUTH_FAILURE_FLUSH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);
/// Entries in one RecordAuthFailures (each becomes one event): the largest counts first, the
/// rest folded into one "(other)" entry. So unauthenticated traffic adds at most this many
/// events per node per flush interval.
pub const AUTH_FAILURES_PER_RECORD_MAX: usize = 64;

// Checkpoints (`crate::audit`).

/// How often a node signs a checkpoint when its tree grew.
pub const CHECKPOINT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);
/// The least time between two signatures on demand (`GetCheckpoint` with `fresh`): within it
/// the latest checkpoint is returned, so a flood of fresh requests costs at most 4 signatures
/// and record writes a second.
pub const CHECKPOINT_SIGN_INTERVAL_MIN: std::time::Duration = std::time::Duration::from_millis(250);
/// Leaves recomputed from their event records per verification step on a blocking thread:
/// about a few milliseconds of work, so a stop or a waiting request is never held long.
pub const VERIFY_LEAVES_PER_STEP: usize = 4096;

// The auditor's log (`services::audit`).

/// Events one `Query` page returns at most (0 in the request means
/// [`QUERY_PAGE_DEFAULT`]).
pub const QUERY_PAGE_MAX: usize = 1000;
/// Events one `Query` page returns when the request names no limit.
pub const QUERY_PAGE_DEFAULT: usize = 100;
/// Events one `Query` call reads at most, matching or not: a selective filter over a long log
/// returns a short (even empty) page with a cursor, instead of scanning the whole log in one
/// call.
pub const QUERY_EVENTS_SCANNED_MAX: usize = 100_000;
/// `Watch` and `Export` streams one node serves at once (one shared pool): each holds a reader
/// and a buffer, so their number is bounded like connections. Beyond it RESOURCE_EXHAUSTED
/// `WATCHERS_BUSY`.
pub const WATCHERS_MAX: usize = 64;
/// Events in one `WatchResponse`, at most.
pub const WATCH_EVENTS_PER_MESSAGE_MAX: usize = 256;
/// Messages a `Watch` stream buffers for its client, at most: a slow client holds the reader
/// back (it reads no further than the buffer has room for), never a growing queue.
pub const WATCH_BUFFER_MESSAGES: usize = 4;
/// Bytes of whole JSON lines in one `ExportChunk`, at most (a single line larger than this goes
/// alone: a line is never split).
pub const EXPORT_CHUNK_BYTES: usize = 256 * 1024;
/// Chunks an `Export` stream buffers for its client, at most (as [`WATCH_BUFFER_MESSAGES`]).
pub const EXPORT_BUFFER_CHUNKS: usize = 4;
/// Events one `Export` reads from the store per page: the export holds one page (at most 64
/// records of a few hundred KiB at worst, a policy text) and one chunk in memory, never the log.
pub const EXPORT_EVENTS_PER_PAGE: usize = 64;
