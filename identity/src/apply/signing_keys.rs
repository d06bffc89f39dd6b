//! Nodes' signing keys: a node publishes its own public key through the log, and retires it
//! when it rotates; a retired key stays listed until the last token it signed expires. An admin
//! may mark a key compromised: it is then listed nowhere and signs nothing more, and no token it
//! signed is in force ([`crate::validity::token`]).

use prost::Message;
use warrant_proto::{
    log::{self, RejectReason, event::Kind as EventKind},
    state::SigningKeyRow,
};

use super::{
    context::{Caller, Change, Context, Decision, reject},
    permissions::require_operator,
};
use crate::{
    check, keys, query,
    state::{StateRead, WriteSet},
};

pub(super) fn publish_signing_key(
    state: &dyn StateRead,
    context: &Context<'_>,
    command: &log::PublishSigningKey,
) -> Decision {
    check::publish_signing_key(command)?;
    match context.caller {
        Caller::Admin => {}
        // A node publishes only its own keys: a key attributed to another node would let one
        // node sign tokens that verify as another's.
        Caller::Node(_) if context.caller.is_node(command.node_id) => {}
        Caller::Node(_) => {
            return Err(reject(
                RejectReason::PermissionDenied,
                format!(
                    "node {} may publish only its own keys, not node {}'s",
                    context.actor.id, command.node_id
                ),
            ));
        }
        _ => {
            return Err(reject(
                RejectReason::PermissionDenied,
                "only a node or an admin may publish signing keys",
            ));
        }
    }
    let published = log::SigningKeyPublished {
        key_id: command.key_id.clone(),
        node_id: command.node_id,
        algorithm: command.algorithm,
        public_key: command.public_key.clone(),
    };
    if let Some(existing) = query::signing_key(state, &command.key_id)? {
        // Republishing the same key is what a node does after a restart: harmless.
        if existing.key.as_ref() == Some(&published) {
            return Ok(None);
        }
        return Err(reject(
            RejectReason::SigningKeyConflict,
            format!(
                "signing key {} is already published with different content",
                command.key_id
            ),
        ));
    }
    let row = SigningKeyRow {
        key: Some(published.clone()),
        published_seq: context.seq,
        published_unix_ms: context.time_unix_ms,
        ..SigningKeyRow::default()
    };
    let mut writes = WriteSet::new();
    writes.put(keys::signing_key(&command.key_id), row.encode_to_vec());
    // Indexed apart from the key table, which keeps every key ever published: readers list the
    // keys in force from the index, whatever the history.
    writes.put(keys::signing_key_in_force(&command.key_id), Vec::new());
    Ok(Some(Change::new(
        EventKind::SigningKeyPublished(published),
        writes,
    )))
}

pub(super) fn retire_signing_key(
    state: &dyn StateRead,
    context: &Context<'_>,
    command: &log::RetireSigningKey,
) -> Decision {
    check::retire_signing_key(command)?;
    let Some(mut row) = query::signing_key(state, &command.key_id)? else {
        return Err(reject(
            RejectReason::SigningKeyNotFound,
            format!("signing key {} is not published", command.key_id),
        ));
    };
    let published = row.key.clone().unwrap_or_default();
    if !(context.caller.is_admin() || context.caller.is_node(published.node_id)) {
        return Err(reject(
            RejectReason::PermissionDenied,
            format!(
                "only an admin or node {} may retire its key {}",
                published.node_id, command.key_id
            ),
        ));
    }
    if row.retired {
        return Ok(None);
    }
    row.retired = true;
    row.retired_seq = context.seq;
    let event = log::SigningKeyRetired {
        key_id: command.key_id.clone(),
        node_id: published.node_id,
        keep_until_unix_s: row.last_token_expires_at_unix_s,
    };
    let mut writes = WriteSet::new();
    writes.put(keys::signing_key(&command.key_id), row.encode_to_vec());
    // A retired key signs nothing more, so its last expiry is final: it is listed until then,
    // and a reader starting its scan at "now" skips every key whose tokens have all expired.
    writes.delete(keys::signing_key_in_force(&command.key_id));
    writes.put(
        keys::signing_key_retired(row.last_token_expires_at_unix_s, &command.key_id),
        Vec::new(),
    );
    Ok(Some(Change::new(
        EventKind::SigningKeyRetired(event),
        writes,
    )))
}

pub(super) fn mark_signing_key_compromised(
    state: &dyn StateRead,
    context: &Context<'_>,
    command: &log::MarkSigningKeyCompromised,
) -> Decision {
    require_operator(context, "mark a signing key compromised")?;
    check::mark_signing_key_compromised(command)?;
    let Some(mut row) = query::signing_key(state, &command.key_id)? else {
        return Err(reject(
            RejectReason::SigningKeyNotFound,
            format!("signing key {} is not published", command.key_id),
        ));
    };
    if row.compromised {
        return Ok(None);
    }
    let mut writes = WriteSet::new();
    // Out of both indexes, whichever holds it, so no reader lists it from this seq on.
    writes.delete(keys::signing_key_in_force(&command.key_id));
    writes.delete(keys::signing_key_retired(
        row.last_token_expires_at_unix_s,
        &command.key_id,
    ));
    // Also retired, so every rule about retired keys holds for it; retired_seq keeps the first
    // retirement, if there was one.
    if !row.retired {
        row.retired = true;
        row.retired_seq = context.seq;
    }
    row.compromised = true;
    row.compromised_seq = context.seq;
    writes.put(keys::signing_key(&command.key_id), row.encode_to_vec());
    let event = log::SigningKeyCompromised {
        key_id: command.key_id.clone(),
        node_id: row.key.as_ref().map_or(0, |key| key.node_id),
        reason: command.reason.clone(),
    };
    Ok(Some(Change::new(
        EventKind::SigningKeyCompromised(event),
        writes,
    )))
}
