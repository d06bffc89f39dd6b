//! How much a member may make this node hold at once: a bound on the peer requests in flight
//! and on each one's body, decided from the method before the body is read.
//!
//! Authentication keeps strangers out; this keeps a member (or a stolen member certificate)
//! from making a node buffer gigabytes: 50 concurrent 60 MiB AppendEntries from one member
//! certificate held 2.9 GB before this bound. Raft's large messages (AppendEntries, snapshot
//! chunks) are few at a time in a healthy cluster (one replication stream per peer), so they
//! share a small number of slots at the full message size; everything else (Forward, Vote,
//! ReadIndex) is small, and is held to [`PEER_SMALL_MESSAGE_BYTES_MAX`] with many slots.

use std::{
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use bytes::Bytes;
use http_body::{Body, Frame};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::Status;
use tonic_types::StatusExt;

use crate::limits::PEER_MESSAGE_BYTES_MAX;

/// AppendEntries and InstallSnapshot requests in flight at once on this node, from all peers.
pub const PEER_LARGE_IN_FLIGHT_MAX: usize = 4;
/// Other peer requests (Forward, Vote, ReadIndex) in flight at once on this node.
pub const PEER_SMALL_IN_FLIGHT_MAX: usize = 1024;
/// The body of a Forward, Vote or ReadIndex: a forwarded command is at most a public request
/// (64 KiB) plus its envelope.
pub const PEER_SMALL_MESSAGE_BYTES_MAX: usize = 256 * 1024;
/// So the largest a node holds for its peers is about 4 × 64 MiB + 1024 × 256 KiB = 512 MiB.
const _: () = assert!(
    PEER_LARGE_IN_FLIGHT_MAX * PEER_MESSAGE_BYTES_MAX
        + PEER_SMALL_IN_FLIGHT_MAX * PEER_SMALL_MESSAGE_BYTES_MAX
        <= 512 * 1024 * 1024
);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The `ErrorInfo` reason of a body over its limit: the API's row of the same name.
const REQUEST_TOO_LARGE: &str = "REQUEST_TOO_LARGE";

/// The two pools of slots. Cheap to clone.
#[derive(Clone)]
pub struct PeerBudget {
    large: Arc<Semaphore>,
    small: Arc<Semaphore>,
}

impl Default for PeerBudget {
    fn default() -> Self {
        PeerBudget {
            large: Arc::new(Semaphore::new(PEER_LARGE_IN_FLIGHT_MAX)),
            small: Arc::new(Semaphore::new(PEER_SMALL_IN_FLIGHT_MAX)),
        }
    }
}

/// A request's admission: its slot, held until its response, and its body's limit.
pub struct Admission {
    pub _slot: OwnedSemaphorePermit,
    pub body_bytes_max: usize,
}

impl PeerBudget {
    /// A slot for a request to `path`, or RESOURCE_EXHAUSTED when its pool is full: the peer
    /// retries (openraft resends AppendEntries; a forwarded write rides on).
    pub fn admit(&self, path: &str, busy: impl Fn(String) -> Status) -> Result<Admission, Status> {
        let large = path.ends_with("/AppendEntries") || path.ends_with("/InstallSnapshot");
        let (pool, in_flight_max, body_bytes_max) = if large {
            (
                &self.large,
                PEER_LARGE_IN_FLIGHT_MAX,
                PEER_MESSAGE_BYTES_MAX,
            )
        } else {
            (
                &self.small,
                PEER_SMALL_IN_FLIGHT_MAX,
                PEER_SMALL_MESSAGE_BYTES_MAX,
            )
        };
        match pool.clone().try_acquire_owned() {
            Ok(slot) => Ok(Admission {
                _slot: slot,
                body_bytes_max,
            }),
            Err(_) => Err(busy(format!(
                "{in_flight_max} peer requests like {path} are in flight on this node; retry"
            ))),
        }
    }
}

/// A request body that fails once it has carried more than its limit. A stream
/// (InstallSnapshot) is held to the limit per message by tonic; a unary call's whole body is
/// one message, so the limit bounds what decoding it can buffer.
pub struct LimitedBody<B> {
    inner: B,
    remaining: usize,
    limit: usize,
    /// Streams are bounded per message by tonic; only unary bodies are counted here.
    counted: bool,
}

impl<B> LimitedBody<B> {
    pub fn new(inner: B, limit: usize, counted: bool) -> Self {
        LimitedBody {
            inner,
            remaining: limit,
            limit,
            counted,
        }
    }
}

impl<B> Body for LimitedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let len = frame.data_ref().map_or(0, Bytes::len);
                if this.counted && len > this.remaining {
                    let status = Status::with_error_details(
                        tonic::Code::ResourceExhausted,
                        format!(
                            "the request body is over {} bytes; allowed: at most {} for this \
                             method",
                            this.limit, this.limit
                        ),
                        tonic_types::ErrorDetails::with_error_info(
                            REQUEST_TOO_LARGE,
                            "warrant.dev",
                            std::collections::HashMap::new(),
                        ),
                    );
                    return Poll::Ready(Some(Err(Box::new(status))));
                }
                this.remaining = this.remaining.saturating_sub(len);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::{BodyExt, Full, StreamBody};

    use super::*;

    fn busy(message: String) -> Status {
        Status::resource_exhausted(message)
    }

    #[test]
    fn large_requests_share_few_slots_and_small_ones_many() {
        let budget = PeerBudget::default();
        let path = "/warrant.raft.v1.RaftService/AppendEntries";
        let held: Vec<_> = (0..PEER_LARGE_IN_FLIGHT_MAX)
            .map(|_| budget.admit(path, busy).expect("a slot"))
            .collect();
        let Err(refused) = budget.admit(path, busy) else {
            panic!("the pool is full yet admitted");
        };
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        let small = budget
            .admit("/warrant.raft.v1.RaftService/Forward", busy)
            .expect("small requests have their own pool");
        assert_eq!(small.body_bytes_max, PEER_SMALL_MESSAGE_BYTES_MAX);
        drop(held);
        budget
            .admit(path, busy)
            .expect("a slot once one is released");
    }

    #[tokio::test]
    async fn a_counted_body_fails_past_its_limit_and_passes_within_it() {
        let within = LimitedBody::new(Full::new(Bytes::from(vec![0u8; 100])), 100, true);
        assert_eq!(
            within.collect().await.expect("within").to_bytes().len(),
            100
        );
        let frames = futures::stream::iter(
            (0..3).map(|_| Ok::<_, std::io::Error>(Frame::data(Bytes::from(vec![0u8; 60])))),
        );
        let over = LimitedBody::new(StreamBody::new(frames), 100, true);
        let Err(error) = over.collect().await else {
            panic!("over the limit yet collected");
        };
        let status = error.downcast::<Status>().expect("a status");
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
    }
}
