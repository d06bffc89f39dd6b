//! Fault injection for chaos-tests/, compiled only with the `chaos` feature: the failpoint
//! between apply commit and reply, its setup from `FAILPOINTS`, and the storage half of the
//! `ack_before_fsync` canary. The canaries are selected in [`warrant_identity::chaos`].

use std::{
    sync::{Arc, OnceLock, Weak},
    time::Duration,
};

use rocksdb::{DB, WriteOptions};
use warrant_identity::chaos::{Canary, canary};

use crate::error::StartError;

/// The environment variable fail-rs reads its failpoints from: `name=actions;name=actions`,
/// e.g. `apply_after_commit=20*off->1*return->off` (crash at the 21st apply).
pub const FAILPOINTS_ENV: &str = "FAILPOINTS";
/// The failpoint right after an apply's `WriteBatch` is durable and before its responses go
/// back to openraft: the client's write is committed and applied, and never answered. Its
/// `return` action aborts the process (fail-rs's other actions do what they always do: `panic`
/// panics the apply task, `sleep`/`pause` stall it, `print` logs).
pub const APPLY_AFTER_COMMIT: &str = "apply_after_commit";
/// Under `ack_before_fsync`, how long an acknowledged log append or apply may live only in a
/// memtable: each store flushes its memtables this often. A SIGKILL loses what was
/// acknowledged since the last flush; long enough that a kill right after an acknowledgement
/// almost never lands after a flush of it on any node.
pub const ACK_BEFORE_FSYNC_FLUSH_INTERVAL: Duration = Duration::from_millis(1000);

/// Configures the failpoints `FAILPOINTS` names, once per process, and logs what fault
/// injection is active. Every node start calls it; only the first does anything.
pub(crate) fn start() -> Result<(), StartError> {
    static STARTED: OnceLock<Result<(), String>> = OnceLock::new();
    STARTED
        .get_or_init(|| {
            let failpoints = std::env::var(FAILPOINTS_ENV).unwrap_or_default();
            let configured = configure_failpoints(&failpoints);
            let canaries = warrant_identity::chaos::active();
            tracing::warn!(
                failpoints = ?fail::list(),
                canaries = ?canaries.names(),
                "chaos build: fault injection compiled in; these failpoints and canaries are active"
            );
            configured
        })
        .clone()
        .map_err(StartError::Config)
}

/// Sets every `name=actions` of a `FAILPOINTS` value, as `fail::FailScenario::setup` does, but
/// answers a malformed value with an error instead of a panic, and takes no scenario lock.
fn configure_failpoints(list: &str) -> Result<(), String> {
    for item in list.split(';').map(str::trim).filter(|i| !i.is_empty()) {
        let Some((name, actions)) = item.split_once('=') else {
            return Err(format!(
                "{FAILPOINTS_ENV} item {item:?} is not name=actions"
            ));
        };
        fail::cfg(name.trim(), actions.trim())
            .map_err(|e| format!("{FAILPOINTS_ENV} item {item:?}: {e}"))?;
    }
    Ok(())
}

/// Every crash failpoint, where the storage catalogue puts them (reliability.md): each aborts
/// the process when its `return` action fires. [`APPLY_AFTER_COMMIT`] is the one between apply
/// commit and reply.
pub const CRASH_POINTS: [&str; 8] = [
    LOG_APPEND_BEFORE_FSYNC,
    LOG_APPEND_AFTER_FSYNC,
    VOTE_SAVED,
    APPLY_BEFORE_COMMIT,
    APPLY_AFTER_COMMIT,
    SNAPSHOT_BUILT,
    SNAPSHOT_INSTALLED,
    PURGED,
];
/// Before appended log entries are written and synced.
pub const LOG_APPEND_BEFORE_FSYNC: &str = "log_append_before_fsync";
/// After appended entries are synced, before openraft hears of it.
pub const LOG_APPEND_AFTER_FSYNC: &str = "log_append_after_fsync";
/// After a vote is synced, before it is answered.
pub const VOTE_SAVED: &str = "vote_saved";
/// After an apply is decided, before its `WriteBatch` is written.
pub const APPLY_BEFORE_COMMIT: &str = "apply_before_commit";
/// After a snapshot is built and recorded, before openraft hears of it.
pub const SNAPSHOT_BUILT: &str = "snapshot_built";
/// After a received snapshot is installed, before openraft hears of it.
pub const SNAPSHOT_INSTALLED: &str = "snapshot_installed";
/// After the log is purged up to a snapshot, before openraft hears of it.
pub const PURGED: &str = "purged";

/// What a crash failpoint does when it fires: the process dies at once, as a crash would.
pub(crate) fn crash(name: &str) -> ! {
    eprintln!("failpoint {name} fired: aborting");
    std::process::abort()
}

/// Whether the `ack_before_fsync` canary is active.
pub(crate) fn ack_before_fsync() -> bool {
    canary(Canary::AckBeforeFsync)
}

/// Write options for what the `ack_before_fsync` canary acknowledges before it is durable: no
/// WAL and no sync, so the rows live only in a memtable until the next flush. Page-cache data
/// survives a process kill, so skipping the fsync alone would lose nothing there.
pub(crate) fn unlogged_write_options() -> WriteOptions {
    let mut write_options = WriteOptions::default();
    write_options.disable_wal(true);
    write_options.set_sync(false);
    write_options
}

/// Flushes the memtables of `cfs` in `db`: what makes unlogged writes durable.
pub(crate) fn flush_memtables(db: &DB, cfs: &[&str]) -> Result<(), rocksdb::Error> {
    for name in cfs {
        if let Some(cf) = db.cf_handle(name) {
            db.flush_cf(cf)?;
        }
    }
    Ok(())
}

/// Starts a thread that flushes the memtables of `cfs` in the database `current` finds in
/// `store` every [`ACK_BEFORE_FSYNC_FLUSH_INTERVAL`], until the store is dropped.
pub(crate) fn spawn_memtable_flusher<S: Send + Sync + 'static>(
    name: &str,
    store: Weak<S>,
    current: fn(&Arc<S>) -> Arc<DB>,
    cfs: &'static [&'static str],
) {
    let spawned = std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            loop {
                std::thread::sleep(ACK_BEFORE_FSYNC_FLUSH_INTERVAL);
                let Some(store) = store.upgrade() else {
                    return;
                };
                if let Err(error) = flush_memtables(&current(&store), cfs) {
                    tracing::warn!(%error, "ack_before_fsync canary: memtable flush failed");
                }
            }
        });
    if let Err(error) = spawned {
        tracing::error!(%error, "ack_before_fsync canary: no memtable flusher thread");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_malformed_failpoints_value_is_an_error_naming_the_item() {
        let error = configure_failpoints("chaos_test_malformed").expect_err("no =");
        assert!(error.contains("chaos_test_malformed"), "{error}");
        let error = configure_failpoints("chaos_test_bad_action=sometimes").expect_err("action");
        assert!(error.contains("chaos_test_bad_action"), "{error}");
    }

    #[test]
    fn failpoints_are_configured_from_the_list() {
        configure_failpoints(" chaos_test_a=off ; chaos_test_b=2*off->return ;").expect("valid");
        let listed = fail::list();
        for (name, actions) in [("chaos_test_a", "off"), ("chaos_test_b", "2*off->return")] {
            assert!(
                listed.iter().any(|(n, a)| n == name && a == actions),
                "{name} in {listed:?}"
            );
        }
        let fired: Vec<bool> = (0..3)
            .map(|_| fail::eval("chaos_test_b", |_| ()).is_some())
            .collect();
        assert_eq!(fired, [false, false, true]);
    }
}
