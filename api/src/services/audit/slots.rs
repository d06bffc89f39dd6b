//! The slots `Watch` and `Export` streams hold while they run: [`WATCHERS_MAX`] per node,
//! shared by both (`Context::audit_streams`). A stream takes its slot before it reads anything
//! and gives it back when its task ends, which is when the client goes away or the stream is
//! done.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::Code;

use crate::{
    error::{ApiError, Reason},
    limits::WATCHERS_MAX,
};

/// A slot, or RESOURCE_EXHAUSTED `WATCHERS_BUSY` at once: a stream is never queued behind others
/// that may run for hours.
pub(super) fn take(slots: &Arc<Semaphore>) -> Result<OwnedSemaphorePermit, ApiError> {
    slots.clone().try_acquire_owned().map_err(|_| {
        ApiError::new(
            Code::ResourceExhausted,
            Reason::WatchersBusy,
            format!(
                "this node serves {WATCHERS_MAX} Watch and Export streams already; retry later or \
                 on another node"
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_slots_are_shared_and_freed_when_a_stream_ends() {
        let slots = Arc::new(Semaphore::new(WATCHERS_MAX));
        let held: Vec<_> = (0..WATCHERS_MAX)
            .map(|_| take(&slots).expect("a free slot"))
            .collect();
        let refused = take(&slots).expect_err("all taken");
        assert_eq!(
            (refused.code, refused.reason),
            (Code::ResourceExhausted, Reason::WatchersBusy)
        );
        drop(held);
        assert!(take(&slots).is_ok(), "freed");
    }
}
