//! The peer client: openraft's AppendEntries, Vote and snapshots over tonic, plus the two calls
//! a follower makes to the leader on a client's behalf (forwarding a write, asking for a read
//! index). [`crate::peer_server`] is the other side.
//!
//! openraft's own request and response types travel postcard-encoded inside a protobuf `bytes`
//! field. Channels are created lazily and cached per peer, because openraft asks for a client on
//! every election round and every linearizable read; snapshots get a channel of their own so a
//! long transfer never delays heartbeats. Every request names the node it is meant for, and a
//! node refuses requests meant for another: a misconfigured address must not make a leader
//! replicate to the wrong node.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use openraft::{
    RaftNetwork, RaftNetworkFactory,
    error::{
        Fatal, NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError, ReplicationClosed,
        StreamingError, Timeout, Unreachable,
    },
    network::RPCOption,
    raft::{
        AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
    },
};
use serde::{Serialize, de::DeserializeOwned};
use tokio::{fs::File, io::AsyncReadExt, sync::mpsc};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use warrant_proto::{
    log,
    raft::{
        ForwardRequest, PeerError, RaftReply, RaftRequest, ReadIndexRequest, SnapshotChunk,
        SnapshotHeader, TakeLeadershipReply, TakeLeadershipRequest, forward_reply, peer_error,
        raft_reply, raft_service_client::RaftServiceClient, read_index_reply, snapshot_chunk,
    },
};

use crate::{
    error::{ProposeError, ReadError},
    limits::{
        APPEND_ENTRIES_BYTES_MAX, PEER_MESSAGE_BYTES_MAX, QUEUE_LEN_MAX, SNAPSHOT_CHUNK_BYTES,
        SNAPSHOT_CHUNKS_AHEAD_MAX,
    },
    peer_auth::{PeerSecurity, PeerTls, node_name},
    proposer::{BATCH_BYTES_MAX, Proposal},
    trace_context,
    types::{
        Entry, MemberNode, NodeId, Snapshot, StorageIOError, Succession, TypeConfig, Vote,
        entry_bytes_max,
    },
};

// Any entry the proposer makes fits one AppendEntries, with room for its stamp and framing;
// and an AppendEntries leaves the peer message limit room for the request around its entries.
const _: () = assert!(2 * BATCH_BYTES_MAX <= APPEND_ENTRIES_BYTES_MAX);
const _: () = assert!(2 * APPEND_ENTRIES_BYTES_MAX <= PEER_MESSAGE_BYTES_MAX);

/// A snapshot transfer may take this long plus [`SNAPSHOT_SECONDS_PER_GIB`] per GiB; beyond it
/// the sender gives up and openraft retries.
const SNAPSHOT_TRANSFER_BASE: Duration = Duration::from_secs(60);
/// Allows for a 2-core machine that is writing, fsyncing and installing at the same time.
const SNAPSHOT_SECONDS_PER_GIB: u64 = 300;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

type RpcResult<T> = Result<T, RPCError<NodeId, MemberNode, RaftError<NodeId>>>;

/// Which of a peer's two connections a call uses.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Lane {
    /// AppendEntries, Vote, forwarding and read indexes: small, latency-sensitive.
    Control,
    /// Snapshots: large and slow.
    Snapshot,
}

/// One cached channel per peer id, address and lane.
type ChannelMap = BTreeMap<(NodeId, String, Lane), Channel>;

/// The cached channels, and the TLS material they were made with: new material (a reload)
/// empties the cache, so every later call dials with it.
#[derive(Default)]
struct ChannelCache {
    channels: ChannelMap,
    tls: Option<Arc<PeerTls>>,
}

/// Creates peer clients over cached, lazily connected channels: openraft's network factory,
/// and the node's way to forward writes and ask for read indexes. Cheap to clone.
#[derive(Clone)]
pub(crate) struct PeerClientFactory {
    source: NodeId,
    channels: Arc<Mutex<ChannelCache>>,
    security: PeerSecurity,
}

impl PeerClientFactory {
    pub(crate) fn new(source: NodeId, security: PeerSecurity) -> Self {
        PeerClientFactory {
            source,
            channels: Arc::default(),
            security,
        }
    }

    fn channel(&self, target: NodeId, addr: &str, lane: Lane) -> Result<Channel, String> {
        let mut cache = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        let tls = match &self.security {
            PeerSecurity::MutualTls(material) => Some(material.borrow().clone()),
            PeerSecurity::SharedSecrets(_) => None,
        };
        if let (Some(now), Some(cached)) = (&tls, &cache.tls)
            && !Arc::ptr_eq(now, cached)
        {
            cache.channels.clear();
        }
        cache.tls = tls.clone();
        let key = (target, addr.to_string(), lane);
        if let Some(channel) = cache.channels.get(&key) {
            return Ok(channel.clone());
        }
        let channel = peer_endpoint(target, addr, tls.as_deref())?.connect_lazy();
        cache.channels.insert(key, channel.clone());
        Ok(channel)
    }

    fn request<T>(&self, message: T) -> tonic::Request<T> {
        self.security.request(message)
    }

    fn client(
        &self,
        target: NodeId,
        addr: &str,
        lane: Lane,
    ) -> Result<RaftServiceClient<Channel>, String> {
        Ok(RaftServiceClient::new(self.channel(target, addr, lane)?)
            .max_decoding_message_size(PEER_MESSAGE_BYTES_MAX)
            .max_encoding_message_size(PEER_MESSAGE_BYTES_MAX))
    }

    /// Hands a command to the leader (`target`) and returns its committed outcome. The call is
    /// a client span whose trace context travels in the request, so the leader's spans for the
    /// command join the caller's trace.
    #[tracing::instrument(
        name = "raft.forward",
        skip_all,
        fields(
            otel.name = "warrant.raft.v1.RaftService/Forward",
            otel.kind = "client",
            rpc.system = "grpc",
            rpc.service = "warrant.raft.v1.RaftService",
            rpc.method = "Forward",
            leader_id = target,
            hops,
        )
    )]
    pub(crate) async fn forward(
        &self,
        target: NodeId,
        addr: &str,
        command: log::Command,
        hops: u32,
        wait_max: Duration,
    ) -> Result<Proposal, ForwardError> {
        let mut client = self.client(target, addr, Lane::Control).map_err(|e| {
            ForwardError::Failed(ProposeError::NotLeader {
                leader_id: Some(target),
                leader_addr: Some(format!("{addr} ({e})")),
            })
        })?;
        let mut request = self.request(ForwardRequest {
            target_node_id: target,
            source_node_id: self.source,
            hops,
            command: Some(command),
        });
        request.set_timeout(wait_max);
        with_trace_context(&mut request);
        let reply = client
            .forward(request)
            .await
            .map_err(|status| forward_call_error(target, addr, &status))?;
        match reply.into_inner().result {
            Some(forward_reply::Result::Proposal(p)) => Ok(Proposal {
                outcome: p.outcome.unwrap_or_default(),
                log_index: p.log_index,
                batch_time_ms: p.batch_time_ms,
            }),
            Some(forward_reply::Result::Error(e)) => Err(ForwardError::Failed(propose_error(e))),
            None => Err(ForwardError::Failed(ProposeError::Indeterminate(format!(
                "leader {target} sent an empty forward reply"
            )))),
        }
    }

    /// Asks the leader (`target`) for a read index confirmed by a quorum.
    #[tracing::instrument(
        name = "raft.read_index",
        skip_all,
        fields(
            otel.name = "warrant.raft.v1.RaftService/ReadIndex",
            otel.kind = "client",
            rpc.system = "grpc",
            rpc.service = "warrant.raft.v1.RaftService",
            rpc.method = "ReadIndex",
            leader_id = target,
        )
    )]
    pub(crate) async fn read_index(
        &self,
        target: NodeId,
        addr: &str,
        wait_max: Duration,
    ) -> Result<u64, ReadError> {
        let unreachable = |why: String| {
            ReadError::NoQuorum(format!(
                "the leader (node {target} at {addr}) did not confirm a read index: {why}"
            ))
        };
        let mut client = self
            .client(target, addr, Lane::Control)
            .map_err(unreachable)?;
        let mut request = self.request(ReadIndexRequest {
            target_node_id: target,
            source_node_id: self.source,
        });
        request.set_timeout(wait_max);
        with_trace_context(&mut request);
        let reply = client
            .read_index(request)
            .await
            .map_err(|status| unreachable(status.message().to_string()))?;
        match reply.into_inner().result {
            Some(read_index_reply::Result::ReadIndex(index)) => Ok(index),
            Some(read_index_reply::Result::Error(e)) => Err(read_error(e)),
            None => Err(unreachable("empty reply".to_string())),
        }
    }
}

/// Puts the current span's W3C trace context into `request`'s metadata.
fn with_trace_context<T>(request: &mut tonic::Request<T>) {
    let mut headers = std::mem::take(request.metadata_mut()).into_headers();
    let context = tracing_opentelemetry::OpenTelemetrySpanExt::context(&tracing::Span::current());
    trace_context::inject(&context, &mut headers);
    *request.metadata_mut() = tonic::metadata::MetadataMap::from_headers(headers);
}

impl PeerClientFactory {
    /// Asks voter `target` to take over this node's leadership (see [`crate::transfer`]).
    /// Errors are the call's, as text.
    pub(crate) async fn take_leadership(
        &self,
        target: NodeId,
        addr: &str,
        succession: Succession,
        wait_max: Duration,
    ) -> Result<TakeLeadershipReply, String> {
        let mut client = self.client(target, addr, Lane::Control)?;
        let mut request = self.request(TakeLeadershipRequest {
            target_node_id: target,
            source_node_id: self.source,
            term: succession.term,
            last_log_index: succession.last_log_index,
            leader_lease_left_ms: u64::try_from(succession.leader_lease_left.as_millis())
                .unwrap_or(u64::MAX),
        });
        request.set_timeout(wait_max);
        client
            .take_leadership(request)
            .await
            .map(tonic::Response::into_inner)
            .map_err(|status| format!("{}: {}", status.code(), status.message()))
    }
}

/// The endpoint of `target`'s peer listener at `addr`: mutual TLS when `tls` is given, the
/// server's certificate checked for `target`'s [`node_name`], so a misdirected address or
/// another member's certificate is refused in the handshake.
fn peer_endpoint(target: NodeId, addr: &str, tls: Option<&PeerTls>) -> Result<Endpoint, String> {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut endpoint = Endpoint::from_shared(format!("{scheme}://{addr}"))
        .map_err(|e| format!("invalid peer address {addr:?}: {e}"))?
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(20));
    if let Some(tls) = tls {
        let config = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&tls.ca_pem))
            .identity(Identity::from_pem(&tls.cert_pem, &tls.key_pem))
            .domain_name(node_name(target))
            .assume_http2(true);
        endpoint = endpoint
            .tls_config(config)
            .map_err(|e| format!("TLS for peer {target} at {addr}: {e}"))?;
    }
    Ok(endpoint)
}

/// Why forwarding a command failed.
#[derive(Debug)]
pub(crate) enum ForwardError {
    /// No connection to the leader could be made, so the request never left this node and the
    /// command was not proposed. The caller may wait for a leader change and try again.
    NotSent(String),
    /// The call failed after the request may have been sent (the command may have committed),
    /// or the leader answered with an error: reported as it is.
    Failed(ProposeError),
}

/// What a failed `Forward` call means. Only a call that never had a connection is `NotSent`:
/// tonic reports it as `Unavailable` with a [`tonic::ConnectError`] (refused, reset or timed out
/// while connecting) in the status's source chain. Everything else — a deadline (`Cancelled`
/// from the client's `grpc-timeout`, `DeadlineExceeded` from the server), a connection reset
/// after the request was written, an unknown error — may have reached the leader, so its outcome
/// is unknown.
fn forward_call_error(target: NodeId, addr: &str, status: &tonic::Status) -> ForwardError {
    if never_connected(status) {
        return ForwardError::NotSent(format!(
            "leader {target} at {addr} could not be reached: {}",
            status.message()
        ));
    }
    ForwardError::Failed(ProposeError::Indeterminate(format!(
        "forwarding to leader {target} at {addr} failed: {}",
        status.message()
    )))
}

/// Whether `status` is tonic's report of a connection that could not be made, so the request
/// was never sent. The message ("tcp connect error") is not relied on: only the typed source.
fn never_connected(status: &tonic::Status) -> bool {
    if status.code() != tonic::Code::Unavailable {
        return false;
    }
    let mut source = std::error::Error::source(status);
    while let Some(error) = source {
        if error.is::<tonic::ConnectError>() {
            return true;
        }
        source = error.source();
    }
    false
}

fn propose_error(e: PeerError) -> ProposeError {
    match peer_error::Kind::try_from(e.kind) {
        Ok(peer_error::Kind::NotLeader) => ProposeError::NotLeader {
            leader_id: e.has_leader.then_some(e.leader_id),
            leader_addr: (e.has_leader && !e.leader_addr.is_empty()).then_some(e.leader_addr),
        },
        Ok(peer_error::Kind::Overloaded) => ProposeError::Overloaded {
            queue_len_max: QUEUE_LEN_MAX,
        },
        Ok(peer_error::Kind::Stopped) => ProposeError::Stopped(e.message),
        _ => ProposeError::Indeterminate(e.message),
    }
}

fn read_error(e: PeerError) -> ReadError {
    match peer_error::Kind::try_from(e.kind) {
        Ok(peer_error::Kind::NotLeader) => ReadError::NotLeader {
            leader_id: e.has_leader.then_some(e.leader_id),
            leader_addr: (e.has_leader && !e.leader_addr.is_empty()).then_some(e.leader_addr),
        },
        Ok(peer_error::Kind::Stopped) => ReadError::Stopped(e.message),
        _ => ReadError::NoQuorum(e.message),
    }
}

impl RaftNetworkFactory<TypeConfig> for PeerClientFactory {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &MemberNode) -> PeerClient {
        PeerClient {
            source: self.source,
            target,
            security: self.security.clone(),
            control: self.client(target, &node.peer_addr, Lane::Control),
            snapshot: self.client(target, &node.peer_addr, Lane::Snapshot),
        }
    }
}

/// openraft's client for one peer.
pub(crate) struct PeerClient {
    source: NodeId,
    target: NodeId,
    security: PeerSecurity,
    /// An invalid address is reported on every call as unreachable, not at creation: openraft's
    /// `new_client` cannot fail.
    control: Result<RaftServiceClient<Channel>, String>,
    snapshot: Result<RaftServiceClient<Channel>, String>,
}

fn unreachable_because(why: impl Into<String>) -> Unreachable {
    Unreachable::new(&std::io::Error::other(why.into()))
}

impl PeerClient {
    async fn call<Req, Resp>(
        &self,
        method: PeerMethod,
        rpc: &Req,
        option: &RPCOption,
    ) -> RpcResult<Resp>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
    {
        let mut client = self
            .control
            .clone()
            .map_err(|e| RPCError::Unreachable(unreachable_because(e)))?;
        let payload =
            postcard::to_allocvec(rpc).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let mut request = self.security.request(RaftRequest {
            target_node_id: self.target,
            source_node_id: self.source,
            payload: payload.into(),
        });
        request.set_timeout(option.hard_ttl());
        let reply = match method {
            PeerMethod::AppendEntries => client.append_entries(request).await,
            PeerMethod::Vote => client.vote(request).await,
        };
        let reply = reply.map_err(|status| match status.code() {
            tonic::Code::Unavailable | tonic::Code::FailedPrecondition => {
                RPCError::Unreachable(Unreachable::new(&status))
            }
            _ => RPCError::Network(NetworkError::new(&status)),
        })?;
        match reply.into_inner().result {
            Some(raft_reply::Result::Ok(bytes)) => {
                postcard::from_bytes(&bytes).map_err(|e| RPCError::Network(NetworkError::new(&e)))
            }
            Some(raft_reply::Result::Error(bytes)) => {
                let error: RaftError<NodeId> = postcard::from_bytes(&bytes)
                    .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
                Err(RPCError::RemoteError(RemoteError::new(self.target, error)))
            }
            None => Err(RPCError::Network(NetworkError::new(
                &std::io::Error::other("empty raft reply"),
            ))),
        }
    }

    /// Streams the snapshot file: a header, then chunks read from disk no faster than the
    /// network takes them.
    async fn send_snapshot(
        &self,
        vote: Vote,
        snapshot: Snapshot,
    ) -> Result<SnapshotResponse<NodeId>, SnapshotStreamError> {
        let mut client = self
            .snapshot
            .clone()
            .map_err(|e| StreamingError::Unreachable(unreachable_because(e)))?;
        let (file, total_bytes) = open_snapshot_file(&snapshot).await?;
        let header = SnapshotHeader {
            target_node_id: self.target,
            source_node_id: self.source,
            vote: encode_header_field(&vote)?,
            meta: encode_header_field(&snapshot.meta)?,
            total_bytes,
        };
        let (chunks, receiver) = mpsc::channel(SNAPSHOT_CHUNKS_AHEAD_MAX);
        let _ = chunks
            .send(SnapshotChunk {
                chunk: Some(snapshot_chunk::Chunk::Header(header)),
            })
            .await;
        let reader = tokio::spawn(stream_snapshot_chunks(file, chunks, self.target));
        let mut request = self
            .security
            .request(tokio_stream::wrappers::ReceiverStream::new(receiver));
        let deadline = snapshot_transfer_deadline(total_bytes);
        request.set_timeout(deadline);
        let started = std::time::Instant::now();
        let reply = client.install_snapshot(request).await;
        reader.abort();
        let reply = reply
            .map_err(|status| self.snapshot_call_error(&status, deadline))?
            .into_inner();
        if let Some(raft_reply::Result::Ok(_)) = &reply.result {
            tracing::info!(
                target = self.target,
                bytes = total_bytes,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "sent snapshot"
            );
        }
        self.snapshot_response(reply)
    }

    /// What a failed `InstallSnapshot` call means to openraft.
    fn snapshot_call_error(
        &self,
        status: &tonic::Status,
        deadline: Duration,
    ) -> SnapshotStreamError {
        match status.code() {
            tonic::Code::DeadlineExceeded => StreamingError::Timeout(Timeout {
                action: openraft::network::RPCTypes::InstallSnapshot,
                id: self.source,
                target: self.target,
                timeout: deadline,
            }),
            tonic::Code::Unavailable | tonic::Code::FailedPrecondition => {
                StreamingError::Unreachable(Unreachable::new(status))
            }
            _ => StreamingError::Network(NetworkError::new(status)),
        }
    }

    /// The receiver's answer to a snapshot: openraft's response, or the fatal error it reported.
    fn snapshot_response(
        &self,
        reply: RaftReply,
    ) -> Result<SnapshotResponse<NodeId>, SnapshotStreamError> {
        let decode_err = |e: postcard::Error| StreamingError::Network(NetworkError::new(&e));
        match reply.result {
            Some(raft_reply::Result::Ok(bytes)) => postcard::from_bytes(&bytes).map_err(decode_err),
            Some(raft_reply::Result::Error(bytes)) => {
                let fatal: Fatal<NodeId> = postcard::from_bytes(&bytes).map_err(decode_err)?;
                Err(StreamingError::RemoteError(RemoteError::new(
                    self.target,
                    fatal,
                )))
            }
            None => Err(StreamingError::Network(NetworkError::new(
                &std::io::Error::other("empty snapshot reply"),
            ))),
        }
    }
}

/// What sending a snapshot fails with, as openraft takes it.
type SnapshotStreamError = StreamingError<TypeConfig, Fatal<NodeId>>;

/// Opens the snapshot's file and returns it with its length.
async fn open_snapshot_file(snapshot: &Snapshot) -> Result<(File, u64), SnapshotStreamError> {
    let storage_err = |e: std::io::Error| {
        StreamingError::StorageError(
            StorageIOError::read_snapshot(Some(snapshot.meta.signature()), &e).into(),
        )
    };
    let file = File::open(&snapshot.snapshot.path)
        .await
        .map_err(storage_err)?;
    let total_bytes = file.metadata().await.map_err(storage_err)?.len();
    Ok((file, total_bytes))
}

/// Reads `file` in [`SNAPSHOT_CHUNK_BYTES`] chunks into `chunks` until the end of the file, a
/// read error, or the call ending.
async fn stream_snapshot_chunks(
    mut file: File,
    chunks: mpsc::Sender<SnapshotChunk>,
    target: NodeId,
) {
    loop {
        let mut buffer = bytes::BytesMut::zeroed(SNAPSHOT_CHUNK_BYTES);
        let mut filled = 0;
        while filled < SNAPSHOT_CHUNK_BYTES {
            match file.read(&mut buffer[filled..]).await {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) => {
                    // Ending the stream short makes the receiver refuse it.
                    tracing::error!(target, error = %e, "reading the snapshot to send failed");
                    return;
                }
            }
        }
        if filled == 0 {
            return;
        }
        buffer.truncate(filled);
        let chunk = SnapshotChunk {
            chunk: Some(snapshot_chunk::Chunk::Data(buffer.freeze())),
        };
        if chunks.send(chunk).await.is_err() {
            return; // the call ended
        }
    }
}

/// How long a snapshot of `total_bytes` may take to send.
fn snapshot_transfer_deadline(total_bytes: u64) -> Duration {
    let gib = total_bytes.div_ceil(1 << 30);
    SNAPSHOT_TRANSFER_BASE + Duration::from_secs(gib * SNAPSHOT_SECONDS_PER_GIB)
}

fn encode_header_field<T: Serialize>(value: &T) -> Result<bytes::Bytes, SnapshotStreamError> {
    postcard::to_allocvec(value)
        .map(bytes::Bytes::from)
        .map_err(|e| StreamingError::Network(NetworkError::new(&e)))
}

/// How many of `entries`, from the first, fit in `bytes_max` encoded, when not all of them do:
/// the hint openraft gets with `PayloadTooLarge`. The log store already reads a lagging
/// follower's entries within the bound (`limited_get_log_entries`): this is the guard at the
/// network, whatever the entries came from. At least one, since a single entry is always
/// sent (it cannot be split, and every entry the proposer makes fits the peer message limit).
/// `None` when all fit, or there is only one.
fn entries_fitting(entries: &[Entry], bytes_max: usize) -> Option<u64> {
    if entries.len() <= 1 {
        return None;
    }
    let mut n_bytes = 0usize;
    for (n_fitting, entry) in entries.iter().enumerate() {
        n_bytes = n_bytes.saturating_add(entry_bytes_max(entry));
        if bytes_max < n_bytes {
            return Some((n_fitting as u64).max(1));
        }
    }
    None
}

#[derive(Clone, Copy)]
enum PeerMethod {
    AppendEntries,
    Vote,
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>> {
        // A lagging follower is sent up to `max_payload_entries` at once, which at full batches
        // is far beyond what one message may carry or one heartbeat interval may take: openraft
        // retries at once with the entries hinted, for its next few AppendEntries.
        if let Some(n_fitting) = entries_fitting(&rpc.entries, APPEND_ENTRIES_BYTES_MAX) {
            return Err(RPCError::PayloadTooLarge(
                PayloadTooLarge::new_entries_hint(n_fitting),
            ));
        }
        self.call(PeerMethod::AppendEntries, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>> {
        self.call(PeerMethod::Vote, &rpc, &option).await
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl std::future::Future<Output = ReplicationClosed> + openraft::OptionalSend + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<NodeId>, SnapshotStreamError> {
        // openraft wraps this call in no timeout of its own; `send_snapshot` sets the deadline.
        tokio::select! {
            result = self.send_snapshot(vote, snapshot) => result,
            closed = cancel => Err(StreamingError::Closed(closed)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io;

    use openraft::EntryPayload;

    use super::*;
    use crate::limits::ENTRY_OVERHEAD_BYTES_MAX;

    fn factory() -> PeerClientFactory {
        PeerClientFactory::new(
            1,
            PeerSecurity::SharedSecrets(crate::peer_auth::SharedSecrets::single(
                "peer-client-test-secret",
            )),
        )
    }

    const WAIT_MAX: Duration = Duration::from_millis(300);
    /// Far above `WAIT_MAX` and `CONNECT_TIMEOUT`: a forward that hangs fails the test.
    const TEST_WAIT_MAX: Duration = Duration::from_secs(10);

    async fn forward_to(addr: &str) -> Result<Proposal, ForwardError> {
        let peers = factory();
        let forwarded = peers.forward(2, addr, log::Command::default(), 1, WAIT_MAX);
        tokio::time::timeout(TEST_WAIT_MAX, forwarded)
            .await
            .expect("forward returned within the test's wait")
    }

    const MIB: usize = 1024 * 1024;

    /// An entry whose batch is `n_bytes` long, at the largest log id postcard can encode, so
    /// its length prefixes and varints are as long as they get.
    fn entry_of(n_bytes: usize) -> Entry {
        Entry {
            log_id: openraft::LogId::new(
                openraft::CommittedLeaderId::new(u64::MAX, u64::MAX),
                u64::MAX,
            ),
            payload: EntryPayload::Normal(crate::types::BatchPayload(vec![0xa5; n_bytes])),
        }
    }

    fn append_entries_of(entries: Vec<Entry>) -> AppendEntriesRequest<TypeConfig> {
        AppendEntriesRequest {
            vote: Vote::new_committed(3, 1),
            prev_log_id: None,
            leader_commit: None,
            entries,
        }
    }

    fn encoded_len(entries: &[Entry]) -> usize {
        postcard::to_allocvec(entries).expect("encode").len()
    }

    #[test]
    fn the_entry_estimate_is_never_below_the_encoding() {
        for n_bytes in [
            0,
            1,
            127,
            128,
            16_383,
            16_384,
            MIB,
            BATCH_BYTES_MAX + 64 * 1024,
        ] {
            let entry = entry_of(n_bytes);
            let encoded = postcard::experimental::serialized_size(&entry).expect("size");
            assert!(encoded <= entry_bytes_max(&entry), "{n_bytes}: {encoded}");
        }
    }

    #[test]
    fn full_batches_beyond_the_bound_are_refused_with_a_hint_that_fits() {
        // More full batches than one peer message holds (openraft would send up to 256).
        let n_entries = PEER_MESSAGE_BYTES_MAX / BATCH_BYTES_MAX + 8;
        let entries: Vec<Entry> = (0..n_entries).map(|_| entry_of(BATCH_BYTES_MAX)).collect();
        let hint = entries_fitting(&entries, APPEND_ENTRIES_BYTES_MAX).expect("too large");
        let hint = usize::try_from(hint).expect("small");
        // The hinted prefix fits, and one more entry would not: fewer would waste round trips.
        assert!(
            encoded_len(&entries[..hint]) <= APPEND_ENTRIES_BYTES_MAX,
            "{hint}"
        );
        assert!(
            APPEND_ENTRIES_BYTES_MAX < encoded_len(&entries[..hint + 1]),
            "{hint}"
        );
        assert_eq!(
            hint,
            APPEND_ENTRIES_BYTES_MAX / (BATCH_BYTES_MAX + ENTRY_OVERHEAD_BYTES_MAX)
        );
    }

    #[test]
    fn entries_within_the_bound_and_single_entries_are_sent() {
        let small: Vec<Entry> = (0..256).map(|_| entry_of(1024)).collect();
        assert_eq!(entries_fitting(&small, APPEND_ENTRIES_BYTES_MAX), None);
        assert_eq!(entries_fitting(&[], APPEND_ENTRIES_BYTES_MAX), None);
        // One entry larger than the bound cannot be split: it goes as it is.
        let huge = entry_of(2 * APPEND_ENTRIES_BYTES_MAX);
        assert_eq!(
            entries_fitting(std::slice::from_ref(&huge), APPEND_ENTRIES_BYTES_MAX),
            None
        );
        // Followed by others, it goes alone.
        let entries = vec![huge, entry_of(1024)];
        assert_eq!(entries_fitting(&entries, APPEND_ENTRIES_BYTES_MAX), Some(1));
    }

    /// Through openraft's network trait: the client answers `PayloadTooLarge` before it touches
    /// the network (this one has no address, so a call would be refused as unreachable).
    #[tokio::test]
    async fn a_big_append_entries_is_payload_too_large_and_a_small_one_is_sent() {
        let mut client = PeerClient {
            source: 1,
            target: 2,
            security: factory().security,
            control: Err("no address in this test".to_string()),
            snapshot: Err("no address in this test".to_string()),
        };
        let option = RPCOption::new(Duration::from_secs(1));
        let big = (0..8).map(|_| entry_of(BATCH_BYTES_MAX)).collect();
        match client
            .append_entries(append_entries_of(big), option.clone())
            .await
        {
            Err(RPCError::PayloadTooLarge(too_large)) => assert_eq!(too_large.entries_hint(), 3),
            other => panic!("expected PayloadTooLarge, got {other:?}"),
        }
        let small = (0..8).map(|_| entry_of(1024)).collect();
        match client
            .append_entries(append_entries_of(small), option)
            .await
        {
            Err(RPCError::Unreachable(_)) => {}
            other => panic!("expected an attempt to send, got {other:?}"),
        }
    }

    #[test]
    fn a_connect_error_in_the_source_chain_means_never_sent() {
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        let status = tonic::Status::from_error(Box::new(tonic::ConnectError(Box::new(refused))));
        assert_eq!(status.code(), tonic::Code::Unavailable);
        assert!(never_connected(&status));
    }

    #[test]
    fn deadlines_and_bare_unavailable_statuses_may_have_been_sent() {
        // The message tonic uses for a refused connection, without the typed source: not enough.
        assert!(!never_connected(&tonic::Status::unavailable(
            "tcp connect error"
        )));
        assert!(!never_connected(&tonic::Status::deadline_exceeded(
            "deadline"
        )));
        assert!(!never_connected(&tonic::Status::cancelled(
            "Timeout expired"
        )));
        // A connect error under any other code is not taken as never sent.
        let mut status = tonic::Status::from_error(Box::new(tonic::ConnectError(Box::new(
            io::Error::from(io::ErrorKind::ConnectionReset),
        ))));
        assert!(never_connected(&status));
        status = tonic::Status::new(tonic::Code::Unknown, status.message().to_string());
        assert!(!never_connected(&status));
    }

    #[tokio::test]
    async fn forwarding_to_a_closed_port_is_not_sent() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("local addr").to_string();
        drop(listener);
        match forward_to(&addr).await {
            Err(ForwardError::NotSent(why)) => assert!(why.contains(&addr), "{why}"),
            other => panic!("expected NotSent, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn forwarding_to_a_leader_that_never_answers_is_indeterminate() {
        // Accepts the connection and reads whatever comes, never answering: the request is sent
        // and the deadline passes, so the command may have been committed.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("local addr").to_string();
        let silent = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.expect("accept");
            let mut sink = Vec::new();
            let _ = socket.read_to_end(&mut sink).await;
        });
        match forward_to(&addr).await {
            Err(ForwardError::Failed(ProposeError::Indeterminate(why))) => {
                assert!(why.contains(&addr), "{why}")
            }
            other => panic!("expected an unknown outcome, got {other:?}"),
        }
        silent.abort();
    }
}
