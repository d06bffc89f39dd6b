//! The skeleton every identity write shares: authenticate, validate, build the command (each
//! handler's own part), then commit it and read back the row it wrote. And the paging every list
//! shares.

use prost::Message;
use warrant_identity::limits;
use warrant_proto::{api, log};
use warrant_raft::ReadConsistency;

use super::replies::ReadBack;
use crate::{
    auth::Caller,
    context::{Context, ReadView, command},
    error::ApiError,
    storage::storage,
    validate,
};

/// Page size when a list request names none.
const PAGE_SIZE_DEFAULT: u64 = 100;

/// Validates the client's idempotency key and takes it out of the request, so the request digest
/// covers the request without it.
pub(super) fn take_idempotency_key(key: &mut String) -> Result<String, ApiError> {
    validate::optional_idempotency_key(key)?;
    Ok(std::mem::take(key))
}

/// Commits `kind` for `caller` (see [`command`] for the digest), then reads back the row named
/// `id` that it wrote, at least at the write's seq (read-your-writes). Returns the row and seq.
pub(super) async fn commit_and_read_back<T: ReadBack>(
    context: &Context,
    caller: &Caller,
    idempotency_key: &str,
    method: &str,
    request_without_key: &impl Message,
    kind: log::command::Kind,
    id: &str,
) -> Result<(T, u64), ApiError> {
    let accepted = context
        .commit(command(
            caller,
            idempotency_key,
            method,
            request_without_key,
            kind,
        ))
        .await?;
    let row = read_back(context, id, accepted.seq).await?;
    Ok((row, accepted.seq))
}

/// The row named `id`, read at least at `seq`: a committed write's row, which must be there.
pub(super) async fn read_back<T: ReadBack>(
    context: &Context,
    id: &str,
    seq: u64,
) -> Result<T, ApiError> {
    let reader = context.read(ReadConsistency::AtLeast(seq)).await?;
    T::lookup(&reader, id)
        .map_err(storage)?
        .map(T::reply)
        .ok_or_else(|| {
            ApiError::internal(format!(
                "committed {} is missing from the projection",
                T::WHAT
            ))
        })
}

/// A validated page request, past its read barrier: the page reads `reader`, the applied state
/// or the state as of the point the request names.
pub(super) struct Page {
    pub reader: ReadView,
    pub size: usize,
    /// List rows after this id (the previous page's token).
    pub after: String,
}

impl Page {
    /// Validates a page request and passes the read barrier.
    pub(super) async fn read(
        context: &Context,
        request: api::ListRequest,
    ) -> Result<Page, ApiError> {
        if !request.page_token.is_empty() {
            limits::validate_id("page_token", &request.page_token)?;
        }
        let page_size = if request.page_size == 0 {
            PAGE_SIZE_DEFAULT
        } else {
            u64::from(request.page_size)
        };
        validate::in_range("page_size", page_size, 1, limits::LIST_PAGE_MAX as u64)?;
        let reader = context
            .read_view(validate::read_options(request.read.as_ref())?)
            .await?;
        Ok(Page {
            reader,
            size: page_size as usize,
            after: request.page_token,
        })
    }

    /// The next page's token: the last row's id when this page is full, else none.
    pub(super) fn next_token(&self, len: usize, last_id: Option<&String>) -> String {
        match last_id {
            Some(id) if len == self.size => id.clone(),
            _ => String::new(),
        }
    }

    /// The seq the page was read at: the as-of seq, or the applied seq.
    pub(super) fn applied_seq(&self) -> Result<u64, ApiError> {
        self.reader.seq()
    }
}
