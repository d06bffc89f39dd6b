//! The peer server: hands peer requests to the local node after checking that they are meant
//! for this node and come from the node the caller's certificate names. Whether the caller is a
//! member at all is decided before this, by [`crate::peer_auth::PeerAuthLayer`], which the peer
//! listener runs in front of this service. [`crate::peer_client`] is the other side.
//!
//! Everything here comes from the network, so nothing here may panic on what a peer sends:
//! payloads that do not decode are refused with INVALID_ARGUMENT, and a snapshot stream is
//! checked against its announced length and [`SNAPSHOT_BYTES_MAX`] as it arrives.

use std::path::PathBuf;

use serde::{Serialize, de::DeserializeOwned};
use tokio::io::AsyncWriteExt;
use tonic::{Request, Response, Status, Streaming};
use warrant_proto::raft::{
    ForwardReply, ForwardRequest, PeerError, RaftReply, RaftRequest, ReadIndexReply,
    ReadIndexRequest, SnapshotChunk, TakeLeadershipReply, TakeLeadershipRequest, forward_reply,
    peer_error, raft_reply,
    raft_service_server::{RaftService, RaftServiceServer},
    read_index_reply, snapshot_chunk,
};

use crate::{
    error::{ProposeError, ReadError},
    limits::{
        FORWARD_HOPS_MAX, PEER_MESSAGE_BYTES_MAX, SNAPSHOT_BYTES_MAX, SNAPSHOT_CHUNK_WAIT_MAX,
    },
    node::RaftNode,
    peer_auth::{PeerAuthLayer, check_source},
    read_index::WaitError,
    state_machine::INCOMING_FILE_PREFIX,
    types::{NodeId, Snapshot, SnapshotFile, SnapshotMeta, Vote},
};

impl RaftNode {
    /// The gRPC service peers call, and the layer that must run in front of it on the peer
    /// listener. Defined here, not in `node`, so that the server depends on the node and not
    /// the reverse.
    pub fn peer_service(&self) -> (PeerAuthLayer, RaftServiceServer<PeerServer>) {
        let layer = self.peer_security().layer();
        (layer, PeerServer { node: self.clone() }.into_server())
    }
}

/// The Raft service of one node, as its peers call it.
pub struct PeerServer {
    node: RaftNode,
}

impl PeerServer {
    fn into_server(self) -> RaftServiceServer<Self> {
        RaftServiceServer::new(self)
            .max_decoding_message_size(PEER_MESSAGE_BYTES_MAX)
            .max_encoding_message_size(PEER_MESSAGE_BYTES_MAX)
    }

    fn check_target(&self, target_node_id: NodeId) -> Result<(), Status> {
        let node_id = self.node.node_id();
        if target_node_id == node_id {
            return Ok(());
        }
        Err(Status::failed_precondition(format!(
            "this is node {node_id}, not node {target_node_id}: check the peer address configuration"
        )))
    }

    /// Receives a snapshot stream into a file in the snapshot directory, fsynced, and returns
    /// it with the header's vote and metadata. The file is removed if anything goes wrong.
    async fn receive_snapshot(
        &self,
        mut stream: Streaming<SnapshotChunk>,
        certified: Option<crate::peer_auth::PeerConnInfo>,
    ) -> Result<(Vote, SnapshotMeta, IncomingFile), Status> {
        let header = match next_chunk(&mut stream).await? {
            Some(snapshot_chunk::Chunk::Header(header)) => header,
            Some(snapshot_chunk::Chunk::Data(_)) => {
                return Err(Status::invalid_argument(
                    "a snapshot stream must start with its header",
                ));
            }
            None => return Err(Status::invalid_argument("empty snapshot stream")),
        };
        self.check_target(header.target_node_id)?;
        crate::peer_auth::check_certified_source(certified, header.source_node_id)?;
        if header.total_bytes > SNAPSHOT_BYTES_MAX {
            return Err(Status::invalid_argument(format!(
                "snapshot of {} bytes is larger than the {SNAPSHOT_BYTES_MAX} bytes allowed",
                header.total_bytes
            )));
        }
        let vote: Vote = decode(&header.vote, "snapshot vote")?;
        let meta: SnapshotMeta = decode(&header.meta, "snapshot meta")?;
        let path = self.node.snapshot_dir().join(format!(
            "{INCOMING_FILE_PREFIX}{}-{}.partial",
            header.source_node_id,
            uuid::Uuid::new_v4()
        ));
        let incoming = IncomingFile(path);
        let io_err = |e: std::io::Error| Status::internal(format!("write incoming snapshot: {e}"));
        // 0600, like every file of the data dir.
        let file = crate::private_fs::create_private_file(&incoming.0).map_err(io_err)?;
        let mut file = tokio::fs::File::from_std(file);
        let mut received = 0u64;
        while let Some(chunk) = next_chunk(&mut stream).await? {
            let snapshot_chunk::Chunk::Data(data) = chunk else {
                return Err(Status::invalid_argument(
                    "a snapshot stream has exactly one header",
                ));
            };
            received += data.len() as u64;
            if received > header.total_bytes {
                return Err(Status::invalid_argument(format!(
                    "snapshot stream runs past its announced {} bytes",
                    header.total_bytes
                )));
            }
            file.write_all(&data).await.map_err(io_err)?;
        }
        if received != header.total_bytes {
            return Err(Status::invalid_argument(format!(
                "snapshot stream ended after {received} of {} bytes",
                header.total_bytes
            )));
        }
        file.flush().await.map_err(io_err)?;
        file.sync_all().await.map_err(io_err)?;
        Ok((vote, meta, incoming))
    }
}

/// A received snapshot file, deleted when dropped unless the install moved it away.
struct IncomingFile(PathBuf);

impl Drop for IncomingFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

async fn next_chunk(
    stream: &mut Streaming<SnapshotChunk>,
) -> Result<Option<snapshot_chunk::Chunk>, Status> {
    match tokio::time::timeout(SNAPSHOT_CHUNK_WAIT_MAX, stream.message()).await {
        Err(_) => Err(Status::deadline_exceeded(format!(
            "no snapshot data for {} s",
            SNAPSHOT_CHUNK_WAIT_MAX.as_secs()
        ))),
        Ok(Err(status)) => Err(status),
        Ok(Ok(None)) => Ok(None),
        Ok(Ok(Some(SnapshotChunk { chunk: None }))) => {
            Err(Status::invalid_argument("empty snapshot chunk"))
        }
        Ok(Ok(Some(SnapshotChunk { chunk: Some(chunk) }))) => Ok(Some(chunk)),
    }
}

fn decode<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, Status> {
    postcard::from_bytes(bytes)
        .map_err(|e| Status::invalid_argument(format!("undecodable {what}: {e}")))
}

fn encode_reply<T: Serialize, E: Serialize>(
    result: Result<T, E>,
) -> Result<Response<RaftReply>, Status> {
    let encode = |bytes: Result<Vec<u8>, postcard::Error>| {
        bytes
            .map(bytes::Bytes::from)
            .map_err(|e| Status::internal(e.to_string()))
    };
    let result = match result {
        Ok(value) => raft_reply::Result::Ok(encode(postcard::to_allocvec(&value))?),
        Err(error) => raft_reply::Result::Error(encode(postcard::to_allocvec(&error))?),
    };
    Ok(Response::new(RaftReply {
        result: Some(result),
    }))
}

fn not_leader(
    leader_id: Option<NodeId>,
    leader_addr: Option<String>,
    message: String,
) -> PeerError {
    PeerError {
        kind: peer_error::Kind::NotLeader as i32,
        has_leader: leader_id.is_some(),
        leader_id: leader_id.unwrap_or(0),
        leader_addr: leader_addr.unwrap_or_default(),
        message,
    }
}

fn peer_error(kind: peer_error::Kind, message: String) -> PeerError {
    PeerError {
        kind: kind as i32,
        message,
        ..PeerError::default()
    }
}

#[tonic::async_trait]
impl RaftService for PeerServer {
    async fn append_entries(
        &self,
        request: Request<RaftRequest>,
    ) -> Result<Response<RaftReply>, Status> {
        check_source(&request, request.get_ref().source_node_id)?;
        let request = request.into_inner();
        self.check_target(request.target_node_id)?;
        let rpc = decode(&request.payload, "AppendEntries")?;
        encode_reply(self.node.raft().append_entries(rpc).await)
    }

    async fn vote(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        check_source(&request, request.get_ref().source_node_id)?;
        let request = request.into_inner();
        self.check_target(request.target_node_id)?;
        let rpc = decode(&request.payload, "Vote")?;
        encode_reply(self.node.raft().vote(rpc).await)
    }

    async fn install_snapshot(
        &self,
        request: Request<Streaming<SnapshotChunk>>,
    ) -> Result<Response<RaftReply>, Status> {
        let started = std::time::Instant::now();
        let certified = request
            .extensions()
            .get::<crate::peer_auth::PeerConnInfo>()
            .copied();
        let (vote, meta, incoming) = self
            .receive_snapshot(request.into_inner(), certified)
            .await?;
        let bytes = std::fs::metadata(&incoming.0).map(|m| m.len()).unwrap_or(0);
        tracing::info!(
            snapshot_id = %meta.snapshot_id,
            bytes,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "received snapshot; installing"
        );
        let snapshot = Snapshot {
            meta,
            snapshot: Box::new(SnapshotFile {
                path: incoming.0.clone(),
            }),
        };
        let result = self.node.raft().install_full_snapshot(vote, snapshot).await;
        drop(incoming);
        encode_reply(result)
    }

    async fn forward(
        &self,
        request: Request<ForwardRequest>,
    ) -> Result<Response<ForwardReply>, Status> {
        check_source(&request, request.get_ref().source_node_id)?;
        let request = request.into_inner();
        self.check_target(request.target_node_id)?;
        if request.hops == 0 || request.hops > FORWARD_HOPS_MAX {
            return Err(Status::invalid_argument(format!(
                "forward hops is {}; allowed: 1 to {FORWARD_HOPS_MAX}",
                request.hops
            )));
        }
        let command = request
            .command
            .ok_or_else(|| Status::invalid_argument("forward request without a command"))?;
        let result = match self.node.propose_hops(command, request.hops).await {
            Ok(p) => forward_reply::Result::Proposal(warrant_proto::raft::Proposal {
                outcome: Some(p.outcome),
                log_index: p.log_index,
                batch_time_ms: p.batch_time_ms,
            }),
            Err(e) => forward_reply::Result::Error(match e {
                ProposeError::NotLeader {
                    leader_id,
                    leader_addr,
                } => not_leader(
                    leader_id,
                    leader_addr,
                    format!(
                        "not the leader, and the command has been forwarded {} times already",
                        request.hops
                    ),
                ),
                ProposeError::Overloaded { queue_len_max } => peer_error(
                    peer_error::Kind::Overloaded,
                    format!(
                        "the leader's proposal queue is full ({queue_len_max} commands waiting)"
                    ),
                ),
                ProposeError::Indeterminate(why) => {
                    peer_error(peer_error::Kind::Indeterminate, why)
                }
                ProposeError::Stopped(why) => peer_error(peer_error::Kind::Stopped, why),
            }),
        };
        Ok(Response::new(ForwardReply {
            result: Some(result),
        }))
    }

    async fn take_leadership(
        &self,
        request: Request<TakeLeadershipRequest>,
    ) -> Result<Response<TakeLeadershipReply>, Status> {
        check_source(&request, request.get_ref().source_node_id)?;
        let request = request.into_inner();
        self.check_target(request.target_node_id)?;
        let succession = crate::types::Succession {
            term: request.term,
            last_log_index: request.last_log_index,
            leader_lease_left: std::time::Duration::from_millis(request.leader_lease_left_ms),
        };
        let reply = self
            .node
            .take_leadership(request.source_node_id, succession)
            .await;
        Ok(Response::new(reply))
    }

    async fn read_index(
        &self,
        request: Request<ReadIndexRequest>,
    ) -> Result<Response<ReadIndexReply>, Status> {
        check_source(&request, request.get_ref().source_node_id)?;
        let request = request.into_inner();
        self.check_target(request.target_node_id)?;
        // Through the leader's batcher: concurrent requests of all followers and the leader's
        // own reads share heartbeat rounds.
        let wait_max = self.node.read_wait_max();
        let result = match tokio::time::timeout(wait_max, self.node.leader_read_index()).await {
            Err(_) => read_index_reply::Result::Error(peer_error(
                peer_error::Kind::NoQuorum,
                format!(
                    "leadership not confirmed within {} ms",
                    wait_max.as_millis()
                ),
            )),
            Ok(Ok(index)) => read_index_reply::Result::ReadIndex(index),
            Ok(Err(WaitError::Full { waiters_max })) => {
                read_index_reply::Result::Error(peer_error(
                    peer_error::Kind::Overloaded,
                    format!("{waiters_max} reads are already waiting for a read index"),
                ))
            }
            Ok(Err(WaitError::Round(e))) => read_index_reply::Result::Error(match e {
                ReadError::NotLeader {
                    leader_id,
                    leader_addr,
                } => not_leader(
                    leader_id,
                    leader_addr,
                    "this node is no longer the leader".to_string(),
                ),
                ReadError::Stopped(why) => peer_error(peer_error::Kind::Stopped, why),
                e @ (ReadError::NoQuorum(_) | ReadError::Timeout { .. }) => {
                    peer_error(peer_error::Kind::NoQuorum, e.to_string())
                }
            }),
        };
        Ok(Response::new(ReadIndexReply {
            result: Some(result),
        }))
    }
}
