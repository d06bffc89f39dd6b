//! The one ending of revoking a token, revoking a delegation and ending a session: mark the row
//! (once: doing it again is an accepted no-op) and record the event.

use prost::Message;
use warrant_proto::{
    log::event::Kind as EventKind,
    state::{DelegationRow, SessionRow, TokenRow},
};

use super::context::Change;

/// A row that can be revoked once, remembering when and why.
pub(super) trait Revocable: Message + Sized {
    fn is_revoked(&self) -> bool;
    fn mark_revoked(&mut self, seq: u64, reason: String);
}

/// Tokens and delegations keep the same three revocation fields.
macro_rules! revocable_by_revoked_fields {
    ($($row:ty),*) => {$(
        impl Revocable for $row {
            fn is_revoked(&self) -> bool {
                self.revoked
            }

            fn mark_revoked(&mut self, seq: u64, reason: String) {
                self.revoked = true;
                self.revoked_seq = seq;
                self.revoke_reason = reason;
            }
        }
    )*};
}

revocable_by_revoked_fields!(TokenRow, DelegationRow);

impl Revocable for SessionRow {
    fn is_revoked(&self) -> bool {
        self.ended
    }

    fn mark_revoked(&mut self, seq: u64, reason: String) {
        self.ended = true;
        self.ended_seq = seq;
        self.end_reason = reason;
    }
}

/// Revokes `row`, stored under `key`, at `seq` for `reason`, recording `event`; `None` (a
/// no-op) when it already was.
pub(super) fn revoke<R: Revocable>(
    mut row: R,
    key: Vec<u8>,
    seq: u64,
    reason: &str,
    event: EventKind,
) -> Option<Change> {
    if row.is_revoked() {
        return None;
    }
    row.mark_revoked(seq, reason.to_owned());
    Some(Change::one_row(event, key, row.encode_to_vec()))
}
