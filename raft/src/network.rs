//! The peer transport: openraft's AppendEntries and Vote over tonic.
//!
//! openraft's own request and response types travel postcard-encoded inside a protobuf `bytes`
//! field. Channels are created lazily and cached per peer, because openraft asks for a client on
//! every election round and every linearizable read (openraft-notes §4). Every request names the
//! node it is meant for, and a node refuses requests meant for another: a misconfigured address
//! must not make a leader replicate to the wrong node.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use openraft::{
    BasicNode, RaftNetwork, RaftNetworkFactory,
    error::{
        Fatal, NetworkError, RPCError, RaftError, RemoteError, ReplicationClosed, StreamingError,
        Unreachable,
    },
    network::RPCOption,
    raft::{
        AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
    },
};
use serde::{Serialize, de::DeserializeOwned};
use tonic::transport::{Channel, Endpoint};
use warrant_proto::raft::{
    RaftReply, RaftRequest, raft_reply,
    raft_service_client::RaftServiceClient,
    raft_service_server::{RaftService, RaftServiceServer},
};

use crate::types::{NodeId, Raft, Snapshot, TypeConfig, Vote};

/// The largest peer message accepted: a full AppendEntries of `max_payload_entries` batches.
pub const PEER_MESSAGE_BYTES_MAX: usize = 64 * 1024 * 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

type RpcResult<T> = Result<T, RPCError<NodeId, BasicNode, RaftError<NodeId>>>;

/// Creates peer clients over cached, lazily connected channels.
#[derive(Clone)]
pub struct NetworkFactory {
    source: NodeId,
    channels: Arc<Mutex<BTreeMap<(NodeId, String), Channel>>>,
}

impl NetworkFactory {
    pub fn new(source: NodeId) -> Self {
        NetworkFactory {
            source,
            channels: Arc::default(),
        }
    }

    fn channel(&self, target: NodeId, addr: &str) -> Result<Channel, tonic::transport::Error> {
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(channel) = channels.get(&(target, addr.to_string())) {
            return Ok(channel.clone());
        }
        let channel = Endpoint::from_shared(format!("http://{addr}"))?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .connect_lazy();
        channels.insert((target, addr.to_string()), channel.clone());
        Ok(channel)
    }
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> PeerClient {
        let channel = self.channel(target, &node.addr).map_err(|e| e.to_string());
        PeerClient {
            source: self.source,
            target,
            channel,
        }
    }
}

/// A client for one peer.
pub struct PeerClient {
    source: NodeId,
    target: NodeId,
    /// An invalid address is reported on every call as unreachable, not at creation: openraft's
    /// `new_client` cannot fail.
    channel: Result<Channel, String>,
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
        let channel = self
            .channel
            .clone()
            .map_err(|e| RPCError::Unreachable(Unreachable::new(&std::io::Error::other(e))))?;
        let payload =
            postcard::to_allocvec(rpc).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let mut request = tonic::Request::new(RaftRequest {
            target_node_id: self.target,
            source_node_id: self.source,
            payload: payload.into(),
        });
        request.set_timeout(option.hard_ttl());
        let mut client = RaftServiceClient::new(channel)
            .max_decoding_message_size(PEER_MESSAGE_BYTES_MAX)
            .max_encoding_message_size(PEER_MESSAGE_BYTES_MAX);
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
        _vote: Vote,
        _snapshot: Snapshot,
        _cancel: impl std::future::Future<Output = ReplicationClosed> + openraft::OptionalSend + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<NodeId>, StreamingError<TypeConfig, Fatal<NodeId>>> {
        // A single-node cluster never sends a snapshot. Streaming snapshots to peers belongs to
        // multi-node support; until then a peer that needs one is reported unreachable, which
        // makes openraft back off and retry rather than fail.
        Err(StreamingError::Unreachable(Unreachable::new(
            &std::io::Error::other("snapshot streaming to peers is not supported by this version"),
        )))
    }
}

/// The server side: hands peer requests to the local Raft after checking they are for us.
pub struct RaftPeerService {
    node_id: NodeId,
    raft: Raft,
}

impl RaftPeerService {
    pub fn new(node_id: NodeId, raft: Raft) -> Self {
        RaftPeerService { node_id, raft }
    }

    pub fn into_server(self) -> RaftServiceServer<Self> {
        RaftServiceServer::new(self)
            .max_decoding_message_size(PEER_MESSAGE_BYTES_MAX)
            .max_encoding_message_size(PEER_MESSAGE_BYTES_MAX)
    }

    fn check_target(&self, request: &RaftRequest) -> Result<(), tonic::Status> {
        if request.target_node_id == self.node_id {
            return Ok(());
        }
        Err(tonic::Status::failed_precondition(format!(
            "this is node {}, not node {}: check the peer address configuration",
            self.node_id, request.target_node_id
        )))
    }
}

fn decode_payload<T: DeserializeOwned>(request: &RaftRequest) -> Result<T, tonic::Status> {
    postcard::from_bytes(&request.payload)
        .map_err(|e| tonic::Status::invalid_argument(format!("undecodable raft payload: {e}")))
}

fn encode_reply<T: Serialize>(
    result: Result<T, RaftError<NodeId>>,
) -> Result<tonic::Response<RaftReply>, tonic::Status> {
    let result = match result {
        Ok(value) => raft_reply::Result::Ok(
            postcard::to_allocvec(&value)
                .map_err(|e| tonic::Status::internal(e.to_string()))?
                .into(),
        ),
        Err(error) => raft_reply::Result::Error(
            postcard::to_allocvec(&error)
                .map_err(|e| tonic::Status::internal(e.to_string()))?
                .into(),
        ),
    };
    Ok(tonic::Response::new(RaftReply {
        result: Some(result),
    }))
}

#[tonic::async_trait]
impl RaftService for RaftPeerService {
    async fn append_entries(
        &self,
        request: tonic::Request<RaftRequest>,
    ) -> Result<tonic::Response<RaftReply>, tonic::Status> {
        let request = request.into_inner();
        self.check_target(&request)?;
        let rpc: AppendEntriesRequest<TypeConfig> = decode_payload(&request)?;
        encode_reply(self.raft.append_entries(rpc).await)
    }

    async fn vote(
        &self,
        request: tonic::Request<RaftRequest>,
    ) -> Result<tonic::Response<RaftReply>, tonic::Status> {
        let request = request.into_inner();
        self.check_target(&request)?;
        let rpc: VoteRequest<NodeId> = decode_payload(&request)?;
        encode_reply(self.raft.vote(rpc).await)
    }
}
