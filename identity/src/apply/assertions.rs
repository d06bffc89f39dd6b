//! Single-use credentials: a client assertion's jti (or a digest of an upstream id_token) is
//! spent by the first accepted command it authenticates, remembered until
//! [`limits::ASSERTION_RETENTION_S`] past its expiry, then forgotten a bounded number per batch.

use warrant_proto::log::{self, RejectReason};

use super::context::{Caller, rejected};
use crate::{
    keys, limits,
    state::{Overlay, StateError, StateRead, WriteSet},
};

/// Forgets up to [`limits::ASSERTIONS_PRUNED_PER_BATCH_MAX`] spent client assertions that
/// expired more than [`limits::ASSERTION_RETENTION_S`] before `now_unix_s`: apply refuses those
/// anyway, so remembering them protects nothing. Oldest first, by key order.
pub(super) fn prune_spent(overlay: &mut Overlay<'_>, now_unix_s: u64) -> Result<(), StateError> {
    let rows = overlay.scan(
        keys::ASSERTION_BY_EXPIRY_PREFIX,
        b"",
        limits::ASSERTIONS_PRUNED_PER_BATCH_MAX,
    )?;
    let mut writes = WriteSet::new();
    for (key, _) in rows {
        let Some((expires_at_unix_s, spent_key)) = keys::assertion_from_expiry_key(&key) else {
            return Err(StateError::corrupt(
                &key,
                "not a spent-assertion expiry key",
            ));
        };
        if now_unix_s <= expires_at_unix_s.saturating_add(limits::ASSERTION_RETENTION_S) {
            break;
        }
        writes.delete(key);
        writes.delete(spent_key);
    }
    overlay.write(writes);
    Ok(())
}

/// An assertion a command will spend if it is accepted: the rows that record it.
pub(super) struct Spend {
    key: Vec<u8>,
    by_expiry: Vec<u8>,
    expires_at_unix_s: u64,
}

impl Spend {
    /// Adds the rows that mark the assertion spent to `writes`.
    pub(super) fn record(self, writes: &mut WriteSet) {
        writes.put(self.key, self.expires_at_unix_s.to_be_bytes().to_vec());
        writes.put(self.by_expiry, Vec::new());
    }
}

/// The spend of `assertion`, presented by `caller`, at `now_unix_s`; or the rejection when it
/// is too old to tell a replay, or already spent. A client assertion authenticates one command,
/// once, anywhere in the cluster.
pub(super) fn check_unspent(
    state: &dyn StateRead,
    caller: Caller<'_>,
    assertion: &log::AssertionUse,
    now_unix_s: u64,
) -> Result<Result<Spend, log::Outcome>, StateError> {
    let key = keys::assertion(&assertion.principal_id, &assertion.jti);
    let stale_after = assertion
        .expires_at_unix_s
        .saturating_add(limits::ASSERTION_RETENTION_S);
    // What the caller presented, for messages.
    let (what, whose) = match caller {
        Caller::Human(_) => ("id_token", "human"),
        _ => ("client assertion", "agent"),
    };
    if stale_after < now_unix_s {
        return Ok(Err(rejected(
            RejectReason::AssertionExpired,
            format!(
                "{what} {} of {whose} {} expired at {}, more than {} s before this batch; \
                 allowed: a fresh one",
                assertion.jti,
                assertion.principal_id,
                assertion.expires_at_unix_s,
                limits::ASSERTION_RETENTION_S
            ),
        )));
    }
    if state.get(&key)?.is_some() {
        return Ok(Err(rejected(
            RejectReason::AssertionReplayed,
            format!(
                "{what} {} of {whose} {} was already used; allowed: a new one (new jti) per \
                 request",
                assertion.jti, assertion.principal_id
            ),
        )));
    }
    let by_expiry = keys::assertion_by_expiry(
        assertion.expires_at_unix_s,
        &assertion.principal_id,
        &assertion.jti,
    );
    Ok(Ok(Spend {
        key,
        by_expiry,
        expires_at_unix_s: assertion.expires_at_unix_s,
    }))
}
