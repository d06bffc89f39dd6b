//! A failed read of the node's state, as the API reports it. A leaf, so that token checks,
//! authentication and the services can all map read failures the same way.

use crate::error::ApiError;

/// A failed read of the state: an internal error, since the client can do nothing about it.
pub(crate) fn storage(e: warrant_identity::StateError) -> ApiError {
    ApiError::internal(format!("read state: {e}"))
}
