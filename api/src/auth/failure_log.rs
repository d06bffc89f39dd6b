//! Failed authentications as audit facts, at a bounded rate.
//!
//! Every refused authentication (wrong secret, unknown principal, bad, expired or replayed
//! assertion, bad session token, missing or malformed credential, rate-limited, retired
//! bootstrap token, disabled principal) is counted here per (claimed kind, claimed id, reason
//! code), never with the credential itself. The map is bounded ([`AUTH_FAILURE_LOG_KEYS_MAX`]):
//! a key that does not fit is folded into one entry per (kind, reason) whose claimed id is
//! [`OTHER`]. Every [`AUTH_FAILURE_FLUSH_INTERVAL`] the node proposes what it counted as one
//! RecordAuthFailures, acting as itself, with at most [`AUTH_FAILURES_PER_RECORD_MAX`] entries
//! (the largest counts first, the rest folded into one [`OTHER`] entry). So unauthenticated
//! traffic adds at most that many events per node per interval, however much of it there is.
//! A failed flush is retried with the same command (same idempotency key) until it commits;
//! meanwhile new failures aggregate into the next one. A crash loses what was not yet flushed.

use std::{collections::BTreeMap, sync::Mutex, time::Duration};

use prost::Message;
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use warrant_proto::log::{self, PrincipalKind};

use crate::{
    context::Context,
    error::{ApiError, Reason},
    limits::{
        AUTH_FAILURE_FLUSH_INTERVAL, AUTH_FAILURE_LOG_KEYS_MAX, AUTH_FAILURES_PER_RECORD_MAX,
    },
};

/// The claimed id of entries that fold many claimed principals into one.
pub const OTHER: &str = "(other)";
/// The claimed id when the credential names no principal that could be read (missing,
/// malformed, or an opaque bearer token that is not the admin token).
pub const UNNAMED: &str = "(unnamed)";
/// The reason of a folded flush entry whose parts had different reasons.
pub const VARIOUS: &str = "(various)";

/// Who a refused credential claimed to be. Never the credential.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Claimed {
    pub kind: PrincipalKind,
    pub id: String,
}

impl Claimed {
    pub fn new(kind: PrincipalKind, id: &str) -> Claimed {
        // Only ids in the id charset are kept: anything else could be a secret pasted in the
        // wrong place, and is counted without a name.
        let id = if warrant_identity::limits::validate_id("claimed", id).is_ok() {
            id
        } else {
            UNNAMED
        };
        Claimed {
            kind,
            id: id.to_string(),
        }
    }

    pub fn unnamed(kind: PrincipalKind) -> Claimed {
        Claimed {
            kind,
            id: UNNAMED.to_string(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    kind: i32,
    id: String,
    reason: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Tally {
    count: u64,
    first_unix_ms: u64,
    last_unix_ms: u64,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.count = self.count.saturating_add(other.count);
        self.first_unix_ms = self.first_unix_ms.min(other.first_unix_ms);
        self.last_unix_ms = self.last_unix_ms.max(other.last_unix_ms);
    }
}

/// The aggregates since the last flush.
pub struct FailureLog {
    keys_max: usize,
    tallies: Mutex<BTreeMap<Key, Tally>>,
}

impl Default for FailureLog {
    fn default() -> Self {
        FailureLog::new(AUTH_FAILURE_LOG_KEYS_MAX)
    }
}

impl FailureLog {
    pub fn new(keys_max: usize) -> FailureLog {
        FailureLog {
            keys_max,
            tallies: Mutex::new(BTreeMap::new()),
        }
    }

    /// Counts the refusal `error` of a credential claiming to be `claimed`, if it is an
    /// authentication failure (not this node's own trouble: a busy pool, a storage error).
    pub fn record_error(&self, claimed: &Claimed, error: &ApiError, now_unix_ms: u64) {
        if counts(error) {
            self.record(claimed, error.reason.as_str(), now_unix_ms);
        }
    }

    /// Counts one failure.
    pub fn record(&self, claimed: &Claimed, reason: &str, now_unix_ms: u64) {
        let mut key = Key {
            kind: claimed.kind as i32,
            id: claimed.id.clone(),
            reason: reason.to_string(),
        };
        let mut tallies = self.tallies.lock().unwrap_or_else(|e| e.into_inner());
        if !tallies.contains_key(&key) && self.keys_max <= named(&tallies) {
            key.id = OTHER.to_string();
        }
        let tally = Tally {
            count: 1,
            first_unix_ms: now_unix_ms,
            last_unix_ms: now_unix_ms,
        };
        tallies
            .entry(key)
            .and_modify(|it| it.add(tally))
            .or_insert(tally);
    }

    /// Takes everything counted so far as at most `entries_max` (≥ 1) entries of `node_id`:
    /// the largest counts first (ties in key order), the rest folded into one [`OTHER`] entry.
    pub fn take(&self, node_id: u64, entries_max: usize) -> Vec<log::AuthFailures> {
        let tallies = std::mem::take(&mut *self.tallies.lock().unwrap_or_else(|e| e.into_inner()));
        let mut entries: Vec<(Key, Tally)> = tallies.into_iter().collect();
        // Stable: equal counts keep the map's key order, so the result is a function of the counts.
        entries.sort_by_key(|entry| std::cmp::Reverse(entry.1.count));
        let entries_max = entries_max.max(1);
        if entries_max < entries.len() {
            let mut rest = entries.split_off(entries_max - 1).into_iter();
            if let Some(first) = rest.next() {
                entries.push(fold(first, rest));
            }
        }
        entries
            .into_iter()
            .map(|(key, tally)| log::AuthFailures {
                claimed_kind: key.kind,
                claimed_id: key.id,
                reason: key.reason,
                count: tally.count,
                first_unix_ms: tally.first_unix_ms,
                last_unix_ms: tally.last_unix_ms,
                node_id,
            })
            .collect()
    }

    /// Whether nothing is waiting to be flushed.
    pub fn is_empty(&self) -> bool {
        self.tallies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
    }
}

/// Keys naming a claimed principal (not the folded ones).
fn named(tallies: &BTreeMap<Key, Tally>) -> usize {
    tallies.keys().filter(|key| key.id != OTHER).count()
}

/// One entry for many: their kind and reason when all share it, else unspecified and
/// [`VARIOUS`].
fn fold(
    (first_key, mut tally): (Key, Tally),
    rest: impl Iterator<Item = (Key, Tally)>,
) -> (Key, Tally) {
    let mut key = Key {
        id: OTHER.to_string(),
        ..first_key
    };
    for (other, other_tally) in rest {
        tally.add(other_tally);
        if other.kind != key.kind {
            key.kind = PrincipalKind::Unspecified as i32;
        }
        if other.reason != key.reason {
            key.reason = VARIOUS.to_string();
        }
    }
    (key, tally)
}

/// Whether a refused authentication counts as a failure of the caller's.
fn counts(error: &ApiError) -> bool {
    use tonic::Code;
    match error.reason {
        Reason::AuthBusy => false,
        Reason::AuthRateLimited => true,
        _ => matches!(error.code, Code::Unauthenticated | Code::PermissionDenied),
    }
}

/// The command that records `failures` as `node_id`. Its idempotency key is new per flush: a
/// retry of the same flush reuses the command, so it records once.
pub fn record_command(node_id: u64, failures: Vec<log::AuthFailures>) -> log::Command {
    let kind = log::RecordAuthFailures { failures };
    let request_digest = Sha256::digest(kind.encode_to_vec()).to_vec();
    log::Command {
        idempotency_key: format!("auth-failures-{node_id}-{}", uuid::Uuid::now_v7()),
        request_digest,
        actor: Some(log::Actor {
            kind: PrincipalKind::Node as i32,
            id: node_id.to_string(),
            on_behalf_of: vec![],
        }),
        assertion: None,
        credential: None,
        kind: Some(log::command::Kind::RecordAuthFailures(kind)),
    }
}

/// Flushes the authenticator's failure log every [`AUTH_FAILURE_FLUSH_INTERVAL`] until `stop`.
pub async fn flush_forever(context: std::sync::Arc<Context>, mut stop: watch::Receiver<bool>) {
    let mut interval = tokio::time::interval(AUTH_FAILURE_FLUSH_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = stop.wait_for(|stop| *stop) => return,
        }
        let log = context.auth.failure_log();
        if log.is_empty() {
            continue;
        }
        let node_id = context.node.node_id();
        let command = record_command(node_id, log.take(node_id, AUTH_FAILURES_PER_RECORD_MAX));
        if !commit_until_stopped(&context, command, &mut stop).await {
            return;
        }
    }
}

/// Proposes `command` until it commits (accepted or rejected: either is final) or `stop`.
/// Returns false when stopped first.
async fn commit_until_stopped(
    context: &Context,
    command: log::Command,
    stop: &mut watch::Receiver<bool>,
) -> bool {
    let mut backoff = Duration::from_millis(200);
    loop {
        match context.node.propose(command.clone()).await {
            Ok(proposal) => {
                if let Some(log::outcome::Result::Rejected(rejected)) = proposal.outcome.result {
                    tracing::error!(
                        reason = rejected.reason,
                        message = %rejected.message,
                        "recording authentication failures was rejected"
                    );
                }
                return true;
            }
            Err(error) => {
                tracing::warn!(%error, "recording authentication failures failed; retrying")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.wait_for(|stop| *stop) => return false,
        }
        backoff = (backoff * 2).min(AUTH_FAILURE_FLUSH_INTERVAL);
    }
}

#[cfg(test)]
mod tests {
    use tonic::Code;

    use super::*;

    fn agent(id: &str) -> Claimed {
        Claimed::new(PrincipalKind::Agent, id)
    }

    fn summary(entries: &[log::AuthFailures]) -> Vec<(i32, &str, &str, u64, u64, u64)> {
        entries
            .iter()
            .map(|e| {
                (
                    e.claimed_kind,
                    e.claimed_id.as_str(),
                    e.reason.as_str(),
                    e.count,
                    e.first_unix_ms,
                    e.last_unix_ms,
                )
            })
            .collect()
    }

    const AGENT: i32 = PrincipalKind::Agent as i32;

    #[test]
    fn failures_aggregate_per_claimed_principal_and_reason() {
        let log = FailureLog::new(8);
        log.record(&agent("bot"), "CREDENTIAL_INVALID", 10);
        log.record(&agent("bot"), "CREDENTIAL_INVALID", 30);
        log.record(&agent("bot"), "AUTH_RATE_LIMITED", 20);
        log.record(&agent("eve"), "CREDENTIAL_INVALID", 15);
        let taken = log.take(3, 64);
        assert_eq!(
            summary(&taken),
            vec![
                (AGENT, "bot", "CREDENTIAL_INVALID", 2, 10, 30),
                (AGENT, "bot", "AUTH_RATE_LIMITED", 1, 20, 20),
                (AGENT, "eve", "CREDENTIAL_INVALID", 1, 15, 15),
            ]
        );
        assert!(taken.iter().all(|e| e.node_id == 3));
        assert!(log.is_empty(), "take drains");
        assert!(log.take(3, 64).is_empty());
    }

    #[test]
    fn keys_beyond_the_bound_fold_into_other() {
        let log = FailureLog::new(4);
        for idx in 0..1000 {
            log.record(&agent(&format!("a{idx}")), "CREDENTIAL_INVALID", idx);
        }
        // A principal already counted keeps its own key even when the map is full.
        log.record(&agent("a0"), "CREDENTIAL_INVALID", 2000);
        let taken = log.take(1, 64);
        assert_eq!(
            summary(&taken),
            vec![
                (AGENT, OTHER, "CREDENTIAL_INVALID", 996, 4, 999),
                (AGENT, "a0", "CREDENTIAL_INVALID", 2, 0, 2000),
                (AGENT, "a1", "CREDENTIAL_INVALID", 1, 1, 1),
                (AGENT, "a2", "CREDENTIAL_INVALID", 1, 2, 2),
                (AGENT, "a3", "CREDENTIAL_INVALID", 1, 3, 3),
            ]
        );
        assert_eq!(taken.iter().map(|e| e.count).sum::<u64>(), 1001);
    }

    #[test]
    fn a_flush_holds_at_most_its_bound_largest_first_and_loses_no_count() {
        let log = FailureLog::new(1024);
        for idx in 0..100u64 {
            for _ in 0..=idx {
                log.record(&agent(&format!("a{idx}")), "CREDENTIAL_INVALID", idx);
            }
        }
        log.record(
            &Claimed::unnamed(PrincipalKind::Human),
            "CREDENTIAL_MISSING",
            7,
        );
        let taken = log.take(1, 4);
        assert_eq!(
            summary(&taken),
            vec![
                (AGENT, "a99", "CREDENTIAL_INVALID", 100, 99, 99),
                (AGENT, "a98", "CREDENTIAL_INVALID", 99, 98, 98),
                (AGENT, "a97", "CREDENTIAL_INVALID", 98, 97, 97),
                (
                    PrincipalKind::Unspecified as i32,
                    OTHER,
                    VARIOUS,
                    (1..=97).sum::<u64>() + 1,
                    0,
                    96
                ),
            ]
        );
        assert_eq!(
            taken.iter().map(|e| e.count).sum::<u64>(),
            (1..=100).sum::<u64>() + 1
        );
    }

    #[test]
    fn only_the_callers_failures_count_and_never_a_secret_as_a_name() {
        let log = FailureLog::new(8);
        let error = |code, reason| ApiError::new(code, reason, "x");
        let claimed = agent("bot");
        log.record_error(
            &claimed,
            &error(Code::Unauthenticated, Reason::CredentialInvalid),
            1,
        );
        log.record_error(
            &claimed,
            &error(Code::ResourceExhausted, Reason::AuthRateLimited),
            1,
        );
        log.record_error(
            &claimed,
            &error(Code::PermissionDenied, Reason::AgentDisabled),
            1,
        );
        log.record_error(
            &claimed,
            &error(Code::ResourceExhausted, Reason::AuthBusy),
            1,
        );
        log.record_error(&claimed, &ApiError::internal("storage"), 1);
        let reasons: Vec<String> = log.take(1, 64).into_iter().map(|e| e.reason).collect();
        assert_eq!(
            reasons,
            ["AGENT_DISABLED", "AUTH_RATE_LIMITED", "CREDENTIAL_INVALID"]
        );
        // Something that is not an id (a secret pasted as a name, say) is not kept.
        assert_eq!(agent("s3cret:with spaces").id, UNNAMED);
        assert_eq!(agent("").id, UNNAMED);
    }

    #[test]
    fn the_command_is_the_nodes_and_names_its_entries() {
        let failures = vec![log::AuthFailures {
            claimed_kind: AGENT,
            claimed_id: "bot".into(),
            reason: "CREDENTIAL_INVALID".into(),
            count: 3,
            first_unix_ms: 1,
            last_unix_ms: 2,
            node_id: 2,
        }];
        let command = record_command(2, failures.clone());
        let actor = command.actor.expect("an actor");
        assert_eq!(
            (actor.kind, actor.id.as_str()),
            (PrincipalKind::Node as i32, "2")
        );
        assert!(command.idempotency_key.starts_with("auth-failures-2-"));
        assert_eq!(
            command.kind,
            Some(log::command::Kind::RecordAuthFailures(
                log::RecordAuthFailures { failures }
            ))
        );
        assert_ne!(
            record_command(2, vec![]).idempotency_key,
            command.idempotency_key
        );
    }
}
