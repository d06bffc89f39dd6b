//! The process around a node: systemd notifications (`Type=notify`) and dying with the parent
//! that started it (`warrant local-cluster`, `warrant demo`).
//!
//! systemd: `READY=1` once the node is SERVING (a leader is known and its signing key is
//! published), or at once when the node belongs to no cluster yet, so that a fresh unit's start
//! does not time out while it waits for `warrant cluster init`; `STATUS=` says which.
//! `STOPPING=1` when a stop begins, before the drain. `WATCHDOG=1` every half of
//! `WATCHDOG_USEC` while Raft's core runs: a node whose core stopped on a fatal error stops
//! pinging (it is also on its way out with a non-zero exit). Without `NOTIFY_SOCKET` all of
//! this does nothing.

use std::{future::Future, time::Duration};

use anyhow::Context as _;
use sd_notify::NotifyState;
use tokio::sync::watch;
use warrant_api::{ServeError, Warrant};
use warrant_raft::RaftNode;

/// The environment variable through which `local_cluster` tells a child `warrant server` its
/// parent's pid. Not `WARRANT_*`: the server's config loader reads those as config keys.
pub const PARENT_PID_ENV: &str = "LOCAL_CLUSTER_PARENT_PID";

/// For a child of `warrant local-cluster` or `warrant demo` (told by [`PARENT_PID_ENV`]): asks
/// the kernel for SIGTERM when the parent dies (`PR_SET_PDEATHSIG`; a graceful stop), then
/// refuses to start if the parent already died before that request took effect. The signal
/// comes when the parent's *thread* that spawned this process exits: `local_cluster` spawns
/// from the thread that runs the whole command, so that is when the parent exits.
pub fn die_with_parent() -> anyhow::Result<()> {
    let Some(raw) = std::env::var_os(PARENT_PID_ENV) else {
        return Ok(());
    };
    let parent: i32 = raw
        .to_str()
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("{PARENT_PID_ENV} is {raw:?}, not a process id"))?;
    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM)
        .context("ask for SIGTERM when the parent process dies (PR_SET_PDEATHSIG)")?;
    let now = nix::unistd::getppid();
    anyhow::ensure!(
        now.as_raw() == parent,
        "the process that started this node ({parent}) has already exited (the parent is now \
         {now}); not starting"
    );
    Ok(())
}

/// `signal`, followed by `STOPPING=1`: what `Warrant::run` stops on.
pub async fn stopping_on(signal: impl Future<Output = ()>) {
    signal.await;
    notify(&[
        NotifyState::Stopping,
        NotifyState::Status("stopping: draining calls"),
    ]);
}

/// Starts the readiness notification and the watchdog for a node that has just started.
pub fn started(warrant: &Warrant) {
    tokio::spawn(notify_ready(warrant.node.clone(), warrant.serving.clone()));
    if let Some(timeout) = sd_notify::watchdog_enabled() {
        tokio::spawn(watchdog(warrant.node.clone(), timeout / 2));
    }
}

/// A stop that did not finish in time exits at once, without waiting for the runtime's
/// blocking tasks (a stuck disk): the exit status is what the supervisor acts on.
pub fn exit_if_stop_timed_out(result: &Result<(), ServeError>) {
    if matches!(result, Err(ServeError::StopTimeout)) {
        std::process::exit(1);
    }
}

async fn notify_ready(node: RaftNode, mut serving: watch::Receiver<bool>) {
    if !node.is_initialized().await && !*serving.borrow() {
        notify(&[
            NotifyState::Ready,
            NotifyState::Status("waiting for `warrant cluster init` or to be added as a member"),
        ]);
        if serving.wait_for(|s| *s).await.is_ok() {
            notify(&[NotifyState::Status("serving")]);
        }
        return;
    }
    if serving.wait_for(|s| *s).await.is_ok() {
        notify(&[NotifyState::Ready, NotifyState::Status("serving")]);
    }
}

/// Pings every `interval` until Raft's core stops on a fatal error.
async fn watchdog(node: RaftNode, interval: Duration) {
    let mut ticks = tokio::time::interval(interval);
    let fatal = node.fatal();
    tokio::pin!(fatal);
    loop {
        tokio::select! {
            _ = ticks.tick() => notify(&[NotifyState::Watchdog]),
            fatal = &mut fatal => {
                let status = format!("stopping on a fatal error: {fatal}");
                notify(&[NotifyState::Stopping, NotifyState::Status(&status)]);
                return;
            }
        }
    }
}

/// Sends `state` to systemd when it listens; a failure is logged, never fatal.
fn notify(state: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(state) {
        tracing::warn!(error = %e, "systemd notification failed");
    }
}
