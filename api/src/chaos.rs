//! The API's planted bugs for chaos-tests/, compiled only with the `chaos` feature and each
//! inert unless `CHAOS_CANARY` names it (see [`warrant_identity::chaos`]).

use warrant_identity::{
    StateRead,
    chaos::{Canary, canary},
    validity::{self, LapseKind},
};
use warrant_raft::{RaftNode, ReadConsistency};
use warrant_token::jwt::{Expectations, Invalid};

use crate::{
    error::ApiError,
    storage::storage,
    tokens::{self, Checked},
};

/// What the `skip_follower_revocation` canary ignores: every lapse a `Revoke` (by jti,
/// session or delegation) can cause.
const REVOCATION_LAPSES: [LapseKind; 4] = [
    LapseKind::TokenRevoked,
    LapseKind::SessionEnded,
    LapseKind::DelegationRevoked,
    LapseKind::DelegationNotFound,
];

/// The consistency a client read gets: what it asked for, unless the
/// `linearizable_read_local` canary answers LINEARIZABLE from local state.
pub(crate) fn read_consistency(asked: ReadConsistency) -> ReadConsistency {
    if asked == ReadConsistency::Linearizable && canary(Canary::LinearizableReadLocal) {
        // Planted bug: no read index, no leader confirmation; a partitioned or lagging node
        // answers from whatever it has applied.
        return ReadConsistency::Local;
    }
    asked
}

/// Verify's check of a presented token: [`tokens::check`], unless the
/// `skip_follower_revocation` canary is active and `node` does not lead, in which case
/// revocations are not looked at.
pub(crate) fn verify_token(
    node: &RaftNode,
    state: &dyn StateRead,
    token: &str,
    expect: &Expectations<'_>,
) -> Result<Result<Checked, Invalid>, ApiError> {
    if !canary(Canary::SkipFollowerRevocation) || node.is_leader() {
        return tokens::check(state, token, expect);
    }
    let checked = match tokens::check_issuance(state, token, expect)? {
        Ok(checked) => checked,
        Err(invalid) => return Ok(Err(invalid)),
    };
    // Planted bug: a follower treats a revoked token, session or delegation as in force.
    let mut row = checked.row.clone();
    row.revoked = false;
    match validity::token(state, &row, expect.now_unix_s).map_err(storage)? {
        Err(lapse) if !REVOCATION_LAPSES.contains(&lapse.kind) => Ok(Err(Invalid {
            reason: lapse.kind.token_invalid_reason(),
            message: lapse.message,
        })),
        _ => Ok(Ok(checked)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_keep_their_consistency_without_the_canary() {
        // Tests run without CHAOS_CANARY.
        for asked in [
            ReadConsistency::Local,
            ReadConsistency::AtLeast(7),
            ReadConsistency::Linearizable,
        ] {
            assert_eq!(read_consistency(asked), asked);
        }
    }
}
